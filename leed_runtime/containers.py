"""What `leed-run` writes into each video container: decided from `--out`'s suffix before the
first frame is edited, so a container that cannot take a codec is never found out at the end.

| suffix            | video                                          | audio: copied when it is | else encoded to |
| ----------------- | ---------------------------------------------- | ------------------------ | --------------- |
| .mp4 .m4v         | H.264 (libx264)                                | AAC, MP3, AC-3, E-AC-3, ALAC | AAC         |
| .mov              | H.264 (libx264)                                | the above, or PCM        | AAC             |
| .mkv              | H.264 (libx264)                                | AAC, MP3, AC-3, E-AC-3, Opus, Vorbis, FLAC, PCM | AAC |
| .webm             | VP9 (libvpx-vp9)                               | Opus, Vorbis             | Opus            |
| .avi              | MPEG-4 Part 2 (FourCC XVID, no B-frames)       | (always re-encoded)      | PCM 16-bit      |

H.264 is 4:2:0 (yuv420p) when both sides are even; 4:2:0 cannot hold an odd size, so an odd
width or height is written 4:4:4 (yuv444p, H.264 High 4:4:4) at its exact size instead of being
padded (VLC, mpv and FFmpeg play it; browsers and QuickTime do not). VP9 and MPEG-4 take odd
sizes in 4:2:0. The pixel aspect ratio is written as it was, except in WebM: PyAV cannot hand
its muxer one, so non-square pixels are resampled to square ones of the same display shape,
never fewer (512x480 at 15:16 is written 512x512). AVI stores no start offsets, so its audio
is always re-written as 16-bit PCM (no encoder delay to shift it), trimmed or padded with
silence to start with the first frame. Re-encoded audio keeps its sample rate where the encoder
takes it (else 48 kHz) and its channels up to two (more are mixed down to stereo).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from leed_runtime.errors import LeedError

_PCM = frozenset(
    f"pcm_{kind}" for kind in ("s16le", "s16be", "s24le", "s24be", "s32le", "s32be", "f32le", "f32be", "f64le", "f64be")
)
_MP4_AUDIO = frozenset({"aac", "mp3", "ac3", "eac3", "alac"})


@dataclass(frozen=True)
class Container:
    """How one kind of output file is written."""

    format: str  # FFmpeg muxer name
    video_codec: str
    audio_copy: frozenset[str]  # source audio codecs copied as they are (no re-encoding)
    audio_codec: str  # encoder for any other audio
    offsets: bool = True  # the container keeps each stream's start time (AVI does not)
    keeps_sar: bool = True  # a pixel aspect ratio can be written (PyAV cannot give WebM's muxer one)
    video_tag: str | None = None  # FourCC written for the video codec (None: the muxer's default)
    odd_pix_fmt: str = "yuv420p"  # pixel format when the width or height is odd
    audio_bit_rate: int = 192_000
    video_options: dict[str, str] = field(default_factory=dict)


_H264 = {"preset": "veryfast"}

CONTAINERS: dict[str, Container] = {
    ".mp4": Container("mp4", "libx264", _MP4_AUDIO, "aac", odd_pix_fmt="yuv444p", video_options=_H264),
    ".m4v": Container("mp4", "libx264", _MP4_AUDIO, "aac", odd_pix_fmt="yuv444p", video_options=_H264),
    ".mov": Container("mov", "libx264", _MP4_AUDIO | _PCM, "aac", odd_pix_fmt="yuv444p", video_options=_H264),
    ".mkv": Container(
        "matroska",
        "libx264",
        _MP4_AUDIO | _PCM | {"opus", "vorbis", "flac", "mp2"},
        "aac",
        odd_pix_fmt="yuv444p",
        video_options=_H264,
    ),
    ".webm": Container(
        "webm",
        "libvpx-vp9",
        frozenset({"opus", "vorbis"}),
        "libopus",
        audio_bit_rate=128_000,
        keeps_sar=False,
        video_options={"deadline": "realtime", "cpu-used": "8", "row-mt": "1", "b": "0"},
    ),
    ".avi": Container("avi", "mpeg4", frozenset(), "pcm_s16le", offsets=False, audio_bit_rate=0, video_tag="XVID"),
}


def container_for(out: Path | str, flag: str = "--out") -> Container:
    """The container `out`'s suffix names, or a one-line LeedError naming `flag` and the fix."""
    suffix = Path(out).suffix.lower()
    if suffix not in CONTAINERS:
        what = f"{suffix} is not a video file name" if suffix else "a video file name needs a suffix"
        raise LeedError(
            f"{flag} {out}: {what} (a video is written for a video or webcam input); "
            f"end it in {', '.join(CONTAINERS)}, e.g. {flag} {Path(out).with_suffix('.mp4')}"
        )
    return CONTAINERS[suffix]


def video_quality(container: Container, crf: int) -> dict[str, str]:
    """Encoder options for the quality `crf` (x264's scale: 18 is visually lossless)."""
    options = dict(container.video_options)
    if container.video_codec == "libx264":
        options["crf"] = str(crf)
    elif container.video_codec == "libvpx-vp9":
        options["crf"] = str(min(63, crf + 12))  # VP9's 0..63 scale: x264 crf 18 ~ VP9 crf 30
    elif container.video_codec == "mpeg4":  # fixed quantiser: x264 crf 18 -> MPEG-4 q 2 (of 1..31)
        q = max(1, min(31, round(crf / 9)))
        options.update({"flags": "+qscale", "global_quality": str(q * 118), "bf": "0"})  # 118: FF_QP2LAMBDA
    return options
