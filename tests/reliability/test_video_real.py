"""Real-world videos through the reader/writer (and `leed-run`): lip sync when the streams start
at different times, --max-frames cutting the audio, every AVI audio packet, phone rotation,
non-square pixels, odd sizes, containers that refuse a codec, files cut short, frame sizes that
change mid-stream. Every clip is generated here with PyAV: 64x48, a few frames, with audio."""

from __future__ import annotations

import subprocess
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from leed_runtime.errors import LeedError
from leed_runtime.video import VideoReader, VideoWriter, _timed

REF = Path(__file__).resolve().parents[2] / "samples" / "real" / "surprised.jpg"
W, H = 64, 48
MARK = (220, 30, 30)  # a red block in the top-left quarter of every coded frame: shows the orientation


def make_clip(
    path: Path,
    *,
    frames: int = 20,
    fps: int = 10,
    size: tuple[int, int] = (W, H),
    video_start: float = 0.0,
    audio_start: float = 0.0,
    audio_end: float | None = None,
    video_codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    audio_codec: str | None = "aac",
    rate: int = 48000,
    rotation: int = 0,
    sar: Fraction | None = None,
    flash: int | None = None,
    beep: float | None = None,
    options: dict | None = None,
) -> Path:
    """A clip whose video starts at `video_start` s and audio at `audio_start` s (source times).
    Frame `flash` is white; the audio is silent but for a 1 kHz beep at `beep` s (0.1 s long)."""
    width, height = size
    avi = path.suffix == ".avi"  # AVI keeps no start offsets: whole frames from 0
    with av.open(str(path), mode="w", options=options or {}) as c:
        v = c.add_stream(video_codec, rate=fps)
        v.width, v.height, v.pix_fmt = width, height, pix_fmt
        tb = Fraction(1, fps) if avi else Fraction(1, 1000)
        v.codec_context.time_base = tb
        if sar is not None:
            v.codec_context.sample_aspect_ratio = sar
        if rotation:
            v.set_display_rotation(rotation)
        a = c.add_stream(audio_codec, rate=rate, layout="mono") if audio_codec else None
        for i in range(frames):
            img = np.full((height, width, 3), 255 if i == flash else 40, np.uint8)
            img[: height // 2, : width // 2] = MARK
            vf = av.VideoFrame.from_ndarray(img, format="rgb24")
            vf.pts = round((video_start + i / fps) / tb)
            vf.time_base = tb
            c.mux(v.encode(vf))
        c.mux(v.encode())
        if a is not None:
            end = audio_end if audio_end is not None else video_start + frames / fps
            t = audio_start + np.arange(round((end - audio_start) * rate)) / rate
            wave = np.zeros(t.shape, np.float32)
            if beep is not None:
                on = (t >= beep) & (t < beep + 0.1)
                wave[on] = 0.5 * np.sin(2 * np.pi * 1000 * t[on])
            fmt = a.codec_context.format.name
            step = a.codec_context.frame_size or 1024
            for s in range(0, len(wave), step):
                chunk = wave[s : s + step][None]
                chunk = (chunk * 32767).astype(np.int16) if fmt.startswith("s16") else chunk
                af = av.AudioFrame.from_ndarray(chunk, format=fmt, layout="mono")
                af.sample_rate, af.time_base = rate, Fraction(1, rate)
                af.pts = round(audio_start * rate) + s
                c.mux(a.encode(af))
            c.mux(a.encode())
    return path


def edit_all(src: Path, out: Path, max_frames: int = 0) -> Path:
    """What `leed-run` does around the editor: read, (edit), write, with --max-frames."""
    reader = VideoReader(src)
    with VideoWriter(out, reader.fps, (reader.width, reader.height), audio_from=src) as writer:
        for i, frame in enumerate(reader):
            writer.write(frame)
            if max_frames and i + 1 >= max_frames:
                break
    return out


def frames_of(path: Path) -> list:
    with av.open(str(path)) as c:
        return [(f.time, f.to_ndarray(format="rgb24"), f.rotation) for f in c.decode(video=0)]


def audio_of(path: Path) -> tuple[np.ndarray, float, int]:
    """(mono float samples, time of the first sample, rate) as a player decodes them."""
    with av.open(str(path)) as c:
        frames = list(c.decode(audio=0))
    data = np.concatenate([f.to_ndarray().astype(np.float64).reshape(-1, f.layout.nb_channels)[:, 0] for f in frames])
    if frames[0].format.name.startswith("s16"):
        data /= 32768
    return data, float(frames[0].time), frames[0].sample_rate


def flash_time(path: Path) -> float:
    return next(t for t, img, _ in frames_of(path) if img.mean() > 200)


def beep_time(path: Path) -> float:
    data, start, rate = audio_of(path)
    return start + int(np.argmax(np.abs(data) > 0.2)) / rate


def ffmpeg_errors(path: Path) -> str:
    """What an independent FFmpeg build (the [dev] extra's) says decoding every stream of `path`."""
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg", reason="the [dev] extra's ffmpeg checks written videos")
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-v", "error", "-i", str(path), "-f", "null", "-"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60).stderr


def streams_of(path: Path) -> dict:
    with av.open(str(path)) as c:
        return {"format": c.format.name, **{s.type: s.codec_context.name for s in c.streams}}


# -- 1. lip sync -------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".webm", ".avi"])
@pytest.mark.parametrize(("video_start", "audio_start"), [(0.84, 0.0), (0.0, 0.46)])
def test_streams_that_start_apart_stay_in_sync(
    video_start: float, audio_start: float, suffix: str, tmp_path: Path
) -> None:
    """Phone/broadcast clips whose video starts 0.84 s after the audio (or the audio after the
    video): the flash frame and the beep are as far apart in the output as in the input."""
    at = video_start + 5 / 10  # the flash frame's time
    src = make_clip(tmp_path / "src.mp4", video_start=video_start, audio_start=audio_start, flash=5, beep=at)
    assert abs(flash_time(src) - beep_time(src)) < 0.01  # the input is in sync
    out = edit_all(src, tmp_path / f"out{suffix}")
    assert abs(flash_time(out) - beep_time(out)) < 0.03, (flash_time(out), beep_time(out))


# -- 2. --max-frames cuts the audio too ----------------------------------------------------------


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".webm", ".avi"])
def test_max_frames_cuts_the_audio_where_the_video_stops(suffix: str, tmp_path: Path) -> None:
    src = make_clip(tmp_path / "src.mp4", frames=30)  # 3 s of video and audio
    out = edit_all(src, tmp_path / f"out{suffix}", max_frames=12)
    times = [t for t, _, _ in frames_of(out)]
    data, start, rate = audio_of(out)
    assert len(times) == 12
    video_end = times[-1] + 0.1
    assert abs(start + len(data) / rate - video_end) < 0.05, (start + len(data) / rate, video_end)


def test_all_frames_keep_all_the_audio(tmp_path: Path) -> None:
    """No cut when every frame was written: audio that runs past the last frame is kept."""
    src = make_clip(tmp_path / "src.mp4", frames=10, audio_end=1.5)
    data, start, rate = audio_of(edit_all(src, tmp_path / "out.mp4"))
    assert start + len(data) / rate > 1.45


# -- 3. AVI input: every audio packet ---------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".avi"])
def test_avi_audio_arrives_whole_from_its_first_packet(suffix: str, tmp_path: Path) -> None:
    """An MJPEG + PCM AVI (a camera's): the beep in its first audio packet, and every sample
    after it, reach the output (MP4 gets AAC: PCM is not allowed there)."""
    src = make_clip(
        tmp_path / "cam.avi", video_codec="mjpeg", pix_fmt="yuvj420p", audio_codec="pcm_s16le", beep=0.0, flash=0
    )
    out = edit_all(src, tmp_path / f"out{suffix}")
    data, start, rate = audio_of(out)
    src_data, _, _ = audio_of(src)
    assert abs(len(data) / rate - len(src_data) / 48000) < 0.03
    assert np.abs(data[: rate // 20]).max() > 0.3  # the beep of the first packet is there
    assert abs(beep_time(out) - flash_time(out)) < 0.03


def test_audio_packets_without_timestamps_are_kept_in_order(tmp_path: Path) -> None:
    """A demuxer can hand out an audio packet with no decoding time (or none at all): it takes
    its presentation time, or follows the previous packet; none is dropped."""
    src = make_clip(tmp_path / "cam.avi", video_codec="mjpeg", pix_fmt="yuvj420p", audio_codec="pcm_s16le")
    with av.open(str(src)) as c:
        packets = [p for p in c.demux(c.streams.audio[0]) if p.size]
        expected = [p.dts * p.time_base for p in packets]
        packets[0].dts = None  # pts only
        packets[0].pts, packets[1].pts, packets[1].dts = packets[0].pts, None, None  # nothing at all
        timed = list(_timed(iter(packets), start=0))
    assert [t for _, t in timed] == expected


# -- 4. rotation, pixel aspect ratio, odd sizes ----------------------------------------------------


def test_rotated_phone_clip_is_edited_and_written_upright(tmp_path: Path) -> None:
    src = make_clip(tmp_path / "phone.mp4", rotation=90, frames=4)  # coded 64x48, displayed 48x64
    reader = VideoReader(src)
    assert (reader.width, reader.height, reader.rotation) == (H, W, 90)
    frame = next(iter(reader))
    assert frame.shape == (W, H, 3)
    # displayed upright, the coded top-left corner is at the bottom-left
    assert np.allclose(frame[-4, 4], MARK, atol=40) and np.allclose(frame[4, 4], 40, atol=20)
    out = edit_all(src, tmp_path / "out.mp4")
    _, img, rotation = frames_of(out)[0]
    assert img.shape == (W, H, 3) and rotation == 0  # written upright, no matrix left to apply
    assert np.allclose(img[-4, 4], MARK, atol=40)


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".mov", ".avi"])
def test_pixel_aspect_ratio_is_kept(suffix: str, tmp_path: Path) -> None:
    src = make_clip(tmp_path / "anamorphic.mp4", sar=Fraction(2, 1), frames=3)
    out = edit_all(src, tmp_path / f"out{suffix}")
    with av.open(str(out)) as c:
        v = c.streams.video[0]
        assert v.sample_aspect_ratio == 2 and (v.codec_context.width, v.codec_context.height) == (W, H)


def test_webm_keeps_the_display_shape_of_non_square_pixels(tmp_path: Path) -> None:
    """WebM gets no pixel aspect ratio through PyAV: 64x48 at 2:1 is written 128x48 square."""
    src = make_clip(tmp_path / "anamorphic.mp4", sar=Fraction(2, 1), frames=3)
    with av.open(str(edit_all(src, tmp_path / "out.webm"))) as c:
        v = c.streams.video[0]
        assert (v.codec_context.width, v.codec_context.height) == (2 * W, H) and v.sample_aspect_ratio in (None, 1)


def test_rotation_turns_the_pixel_aspect_ratio_too(tmp_path: Path) -> None:
    src = make_clip(tmp_path / "phone.mp4", rotation=-90, sar=Fraction(2, 1), frames=3)
    assert VideoReader(src).sar == Fraction(1, 2)
    with av.open(str(edit_all(src, tmp_path / "out.mp4"))) as c:
        assert c.streams.video[0].sample_aspect_ratio == Fraction(1, 2)


@pytest.mark.parametrize("suffix", [".mp4", ".webm", ".avi", ".mkv"])
def test_odd_sizes_are_written_at_their_exact_size(suffix: str, tmp_path: Path) -> None:
    src = make_clip(tmp_path / "odd.mp4", size=(65, 49), pix_fmt="yuv444p", frames=3)
    out = edit_all(src, tmp_path / f"out{suffix}")
    frames = frames_of(out)
    assert len(frames) == 3 and all(img.shape == (49, 65, 3) for _, img, _ in frames)


# -- 5. containers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("src_name", "kind", "suffix", "expected"),
    [
        ("pcm.mov", {"audio_codec": "pcm_s16le"}, ".mp4", {"format": "mp4", "video": "h264", "audio": "aac"}),
        ("h264.mp4", {}, ".webm", {"format": "matroska", "video": "vp9", "audio": "opus"}),
        (
            "mjpeg.avi",
            {"video_codec": "mjpeg", "pix_fmt": "yuvj420p", "audio_codec": "pcm_s16le"},
            ".mp4",
            {"format": "mp4", "video": "h264", "audio": "aac"},
        ),
        ("h264.mp4", {}, ".avi", {"format": "avi", "video": "mpeg4", "audio": "pcm_s16le"}),
        ("aac.mp4", {}, ".mkv", {"format": "matroska", "video": "h264", "audio": "aac"}),
        ("pcm.mov", {"audio_codec": "pcm_s16le"}, ".mov", {"format": "mov", "video": "h264", "audio": "pcm_s16le"}),
    ],
)
def test_each_container_gets_codecs_it_takes(
    src_name: str, kind: dict, suffix: str, expected: dict, tmp_path: Path
) -> None:
    src = make_clip(tmp_path / src_name, frames=6, **kind)
    out = edit_all(src, tmp_path / f"out{suffix}")
    found = streams_of(out)
    assert expected["format"] in found["format"].split(",")
    assert (found["video"], found["audio"]) == (expected["video"], expected["audio"])
    assert len(frames_of(out)) == 6 and abs(len(audio_of(out)[0]) / audio_of(out)[2] - 0.6) < 0.05
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp-")] == []
    assert ffmpeg_errors(out) == ""


def test_avi_output_is_a_real_avi(tmp_path: Path) -> None:
    out = edit_all(make_clip(tmp_path / "src.mp4", frames=3), tmp_path / "out.avi")
    head = out.read_bytes()[:12]
    assert head[:4] == b"RIFF" and head[8:12] == b"AVI "


def test_output_is_opened_before_the_first_frame(tmp_path: Path) -> None:
    """The container, its streams and its header exist once the writer is made: a codec the
    container refuses fails there, never after every frame was edited."""
    src = make_clip(tmp_path / "pcm.mov", frames=3, audio_codec="pcm_s16le")
    writer = VideoWriter(tmp_path / "out.mp4", 10, (W, H), audio_from=src)
    try:
        tmp = [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-out.mp4.")]
        assert len(tmp) == 1 and tmp[0].stat().st_size > 0 and b"ftyp" in tmp[0].read_bytes()[:16]
    finally:
        writer.abort()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


@pytest.mark.parametrize("name", ["x.png", "x.jpg", "x"])
def test_a_still_image_name_is_refused_for_a_video(name: str, tmp_path: Path) -> None:
    with pytest.raises(LeedError, match=r"--out .*is not a video file name|--out .*needs a suffix") as err:
        VideoWriter(tmp_path / name, 10, (W, H))
    assert "\n" not in str(err.value) and ".mp4" in str(err.value)
    assert list(tmp_path.iterdir()) == []


# -- 6. files cut short, sizes that change ---------------------------------------------------------


def test_truncated_mp4_warns_with_the_frame_count(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    whole = make_clip(tmp_path / "whole.mp4", frames=40, options={"movflags": "faststart"})
    data, cut = whole.read_bytes(), tmp_path / "cut.mp4"
    media = data.index(b"mdat")  # the header (moov) first, then the media: cut the media in half
    cut.write_bytes(data[: (media + len(data)) // 2])
    frames = list(VideoReader(cut))
    err = capsys.readouterr().err.strip().splitlines()
    assert 0 < len(frames) < 40
    assert err == [f"leed-run: {cut} ended early (truncated?): {len(frames)} of 40 frames"]
    assert len(list(VideoReader(whole))) == 40 and capsys.readouterr().err == ""  # the whole file: nothing said
    out = edit_all(cut, tmp_path / "out.mp4")  # what was there is written, with its audio
    assert len(frames_of(out)) == len(frames) and len(audio_of(out)[0]) > 0


def test_truncated_mkv_warns_from_its_track_duration(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Matroska lists no frame count: the track's duration tells a cut file from a whole one,
    also when the video starts after the audio."""
    whole = edit_all(make_clip(tmp_path / "src.mp4", frames=30, video_start=0.84), tmp_path / "whole.mkv")
    assert len(list(VideoReader(whole))) == 30 and capsys.readouterr().err == ""
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size * 2 // 3])
    frames = list(VideoReader(cut))
    assert 0 < len(frames) < 30
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"leed-run: {cut} ended early (truncated?): {len(frames)} of 30 frames"]


def test_frame_size_change_mid_stream_is_scaled_with_one_warning(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """MJPEG frames of two sizes in one AVI: every frame comes out at the first size."""
    src = tmp_path / "sizes.avi"
    with av.open(str(src), mode="w") as c:
        v = c.add_stream("mjpeg", rate=10)
        v.width, v.height, v.pix_fmt = W, H, "yuvj420p"
        big = av.CodecContext.create("mjpeg", "w")
        big.width, big.height, big.pix_fmt, big.time_base = 80, 60, "yuvj420p", Fraction(1, 10)
        for i in range(8):
            w, h = (W, H) if i < 4 else (80, 60)
            vf = av.VideoFrame.from_ndarray(np.full((h, w, 3), 100, np.uint8), format="rgb24")
            vf.pts, vf.time_base = i, Fraction(1, 10)
            for packet in v.encode(vf) if i < 4 else big.encode(vf):
                packet.stream, packet.pts, packet.dts, packet.time_base = v, i, i, Fraction(1, 10)
                c.mux(packet)
    frames = list(VideoReader(src))
    assert len(frames) == 8 and all(f.shape == (H, W, 3) for f in frames)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(src) in err[0] and "64x48 -> 80x60" in err[0]
    assert len(frames_of(edit_all(src, tmp_path / "out.mp4"))) == 8


# -- leed-run itself ------------------------------------------------------------------------------


def test_leed_run_on_a_phone_clip_with_max_frames(tmp_path: Path, leed_run) -> None:  # noqa: ANN001
    """Rotated, video 0.84 s after the audio, --max-frames 8: upright, in sync, audio cut."""
    src = make_clip(tmp_path / "phone.mp4", rotation=90, video_start=0.84, frames=20, flash=5, beep=0.84 + 0.5)
    out = tmp_path / "out.mp4"
    proc = leed_run("--video", str(src), "--ref", str(REF), "--out", str(out), "--max-frames", "8")
    assert proc.returncode == 0, proc.stderr[-2000:]
    frames = frames_of(out)
    assert len(frames) == 8 and frames[0][1].shape == (W, H, 3) and frames[0][2] == 0
    assert abs(flash_time(out) - beep_time(out)) < 0.03
    data, start, rate = audio_of(out)
    assert abs(start + len(data) / rate - (frames[-1][0] + 0.1)) < 0.05
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def test_leed_run_refuses_a_png_out_for_a_video(tmp_path: Path, leed_run) -> None:  # noqa: ANN001
    src, out = make_clip(tmp_path / "clip.mp4", frames=3), tmp_path / "x.png"
    proc: subprocess.CompletedProcess = leed_run("--video", str(src), "--ref", str(REF), "--out", str(out))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "--out" in lines[0] and str(out) in lines[0] and ".mp4" in lines[0], proc.stderr
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def test_leed_run_writes_a_real_avi_from_a_camera_avi(tmp_path: Path, leed_run) -> None:  # noqa: ANN001
    src = make_clip(tmp_path / "cam.avi", video_codec="mjpeg", pix_fmt="yuvj420p", audio_codec="pcm_s16le", frames=6)
    out = tmp_path / "out.avi"
    proc = leed_run("--video", str(src), "--ref", str(REF), "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert out.read_bytes()[:4] == b"RIFF" and streams_of(out)["format"] == "avi"
    assert len(frames_of(out)) == 6 and abs(len(audio_of(out)[0]) / 48000 - 0.6) < 0.03
