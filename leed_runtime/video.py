"""Video in and out through PyAV (FFmpeg in the wheel, libx264/libvpx/opus included), frame by frame.

- `VideoReader`: exact frame rate as a Fraction (29.97 is 30000/1001, never `int()`-ed),
  upright size, frame count, whether there is audio; frames decoded in a background thread so
  decoding frame t+1 overlaps the caller's work on frame t; never holds the whole video.
  A display-matrix rotation (phone clips) is applied: frames come out upright. A frame whose
  size changes mid-stream is scaled to the first frame's size (one warning line); a file that
  ends before the frames its header lists (cut short) ends with one warning line.
- `VideoWriter`: the container and its codecs are chosen from the output's suffix
  (`leed_runtime.containers`), and the file is opened and its header written when the writer
  is made, before any frame is edited: a container that cannot take a codec fails there, not
  at the end. Frames are encoded at the input's exact rate and pixel aspect ratio into a temp
  file next to the output, the source's audio interleaved as they go (copied when the container
  takes its codec, else re-encoded) with the same start offsets as in the source (lip sync), and
  cut where the video stops when fewer frames were written than the source has (`--max-frames`).
  `close()` renames the file into place. A failed or interrupted run leaves no output file; a
  killed one leaves only `.tmp-{name}.{pid}.*`, removed by the next run writing that output.
"""

from __future__ import annotations

import contextlib
import functools
import queue
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
from tqdm import tqdm

from leed_runtime.atomic import atomic_path
from leed_runtime.containers import container_for, video_quality
from leed_runtime.errors import LeedError
from leed_runtime.image import MAX_PIXELS

NTSC = {23.976: Fraction(24000, 1001), 29.97: Fraction(30000, 1001), 59.94: Fraction(60000, 1001)}
OFFSET_STEPS = 100  # a video start offset is kept to 1/100 of a frame


def exact_rate(fps: float | Fraction) -> Fraction:
    """29.97 -> 30000/1001 (and the other NTSC rates); otherwise the nearest fraction /1001."""
    if isinstance(fps, Fraction):
        return fps
    for approx, rate in NTSC.items():
        if abs(fps - approx) < 5e-3:
            return rate
    return Fraction(fps).limit_denominator(1001)


def warn(message: str) -> None:
    """One warning line on stderr (the run goes on), on its own line under a progress bar."""
    tqdm.write(f"leed-run: {message}", file=sys.stderr)


def _av():  # noqa: ANN202 - the av module
    """PyAV, or a one-line LeedError naming the fix (it is in leed's base install, but a machine
    that got leed by PYTHONPATH, like a bare GPU host, may lack it)."""
    try:
        import av
    except ImportError:
        raise LeedError(
            "video needs PyAV, which is not installed here: pip install 'av>=14' (part of `pip install leed`); "
            "--image works without it"
        ) from None
    return av


def _open(path: Path, need_video: bool = True):  # noqa: ANN202 - av.container.InputContainer
    av = _av()

    path = Path(path)
    if not path.is_file():
        raise LeedError(f"{path}: no such video file")
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise LeedError(
            f"{path}: not a readable video ({exc.__class__.__name__}); check the file or re-encode it with ffmpeg"
        ) from None
    if need_video and not container.streams.video:
        container.close()
        raise LeedError(f"{path}: has no video stream")
    return container


# -- what a file holds ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Probe:
    """A file's streams, as its header and first frame say: timing, display and audio."""

    fps: Fraction | None  # None: no video stream, or it has no rate
    width: int  # upright: after `turns`
    height: int
    turns: int  # quarter turns counter-clockwise that make a decoded frame upright (display matrix)
    sar: Fraction  # pixel aspect ratio of the upright frame (1 when the file does not say)
    frames: int | None  # video frames the container lists (None: it does not say)
    video_start: Fraction | None  # seconds
    video_end: Fraction | None  # seconds: where the video stream's duration says it ends
    audio_start: Fraction | None
    audio_codec: str | None  # None: no audio stream
    variable_rate: bool

    @property
    def has_video(self) -> bool:
        return self.width > 0


def _seconds(ticks: int | None, time_base: Fraction | None) -> Fraction | None:
    return None if ticks is None or time_base is None else ticks * Fraction(time_base)


def _tag_seconds(text: str | None) -> Fraction | None:
    """Matroska's per-track DURATION tag, `HH:MM:SS.nnnnnnnnn` (None when absent)."""
    try:
        h, m, s = (text or "").split(":")
        return Fraction(int(h) * 3600 + int(m) * 60) + Fraction(s)
    except ValueError:
        return None


def _quarter_turns(rotation: float) -> int:
    return round(rotation / 90) % 4


def probe(path: Path | str, need_video: bool = True) -> Probe:
    """Read `path`'s header (and decode its first frame, for the display rotation). Cached by
    path, size and modification time: the reader and the writer ask about the same source."""
    path = Path(path)
    if not path.is_file():
        raise LeedError(f"{path}: no such video file")
    stat = path.stat()
    found = _probe(str(path), stat.st_mtime_ns, stat.st_size)
    if need_video and not found.has_video:
        raise LeedError(f"{path}: has no video stream")
    return found


@functools.lru_cache(maxsize=8)
def _probe(path: str, _mtime: int, _size: int) -> Probe:
    av = _av()

    with _open(Path(path), need_video=False) as c:
        audio = c.streams.audio[0] if c.streams.audio else None
        audio_start = _seconds(audio.start_time, audio.time_base) if audio is not None else None
        audio_codec = audio.codec_context.name if audio is not None else None
        if not c.streams.video:
            return Probe(None, 0, 0, 0, Fraction(1), None, None, None, audio_start, audio_codec, False)
        v = c.streams.video[0]
        rate = v.average_rate or v.guessed_rate or v.base_rate
        fps = Fraction(rate.numerator, rate.denominator) if rate else None
        start = _seconds(v.start_time, v.time_base)
        end = None
        if v.duration:
            end = (start or 0) + _seconds(v.duration, v.time_base)
        else:  # Matroska: the track's DURATION tag, which is where it ends (not how long it is)
            end = _tag_seconds(v.metadata.get("DURATION"))
        width, height = v.codec_context.width, v.codec_context.height
        turns = 0
        try:  # the display matrix (phone clips) rides on the decoded frames; a picture over 8K is
            # refused by its header size, so none is decoded here
            first = next(c.decode(v), None) if width * height <= MAX_PIXELS else None
            turns = _quarter_turns(first.rotation) if first is not None else 0
        except (av.error.FFmpegError, ValueError):
            pass  # an undecodable first frame is reported when the frames are read
        sar = v.sample_aspect_ratio or Fraction(1)
        if turns % 2:
            width, height, sar = height, width, 1 / sar
        return Probe(
            fps=fps,
            width=width,
            height=height,
            turns=turns,
            sar=sar,
            frames=int(v.frames) or None,
            video_start=start,
            video_end=end,
            audio_start=audio_start,
            audio_codec=audio_codec,
            variable_rate=bool(v.average_rate and v.guessed_rate and v.average_rate != v.guessed_rate),
        )


def _count_video_packets(path: Path) -> int | None:
    """Frames in the source's video stream, by reading its packets (no decoding); None when the
    file cannot be read to its end (damaged or cut short)."""
    av = _av()

    try:
        with _open(path) as c:
            return sum(1 for p in c.demux(c.streams.video[0]) if p.size)
    except (LeedError, av.error.FFmpegError, OSError):
        return None


# -- decoding ------------------------------------------------------------------------------------

# swscale's flags for yuv420p -> rgb24 (libswscale/swscale.h): bilinear chroma upsampling,
# ACCURATE_RND (exact rounding: without it every pixel comes out ~0.75 levels dark),
# FULL_CHR_H_INT and FULL_CHR_H_INP (full-resolution chroma on both sides of the conversion)
_SWS_EXACT = 0x2 | 0x40000 | 0x2000 | 0x4000


def to_rgb24(frame) -> np.ndarray:  # noqa: ANN001 - av.VideoFrame
    """RGB uint8 of a decoded frame with the frame's own colour matrix and range (unspecified:
    BT.601 limited range, as FFmpeg assumes), rounded exactly. FFmpeg's default yuv420p->rgb24
    path darkens every pixel by about 0.75 levels; these flags do not (mean error 0.01 levels
    against an exact float conversion, 1 level at the 99th percentile, on a 720p frame) and take
    5.5 ms where the float conversion in numpy took 30 ms (2026-11-28, 2 loaded cores)."""
    if frame.format.name not in ("yuv420p", "yuvj420p"):
        return frame.to_ndarray(format="rgb24")
    full = frame.format.name == "yuvj420p" or int(frame.color_range or 0) == 2
    converted = frame.reformat(
        format="rgb24",
        # AVColorSpace codes index swscale's coefficient table directly; 0 / 2 (unspecified): BT.601
        src_colorspace=int(frame.colorspace or 0) if int(frame.colorspace or 0) in (1, 4, 5, 6, 7, 9) else 5,
        src_color_range=2 if full else 1,
        dst_color_range=2,
        interpolation=_SWS_EXACT,
    )
    return converted.to_ndarray()


@dataclass
class _Note:  # a warning from the decoding thread, printed by the consumer
    text: str


@dataclass
class _End:  # decoding reached the end (or stopped on an error after some frames)
    last_time: float | None
    error: Exception | None = None


class VideoReader:
    """Iterate upright RGB uint8 frames (H, W, 3) of a video file, all of the first frame's size."""

    def __init__(self, path: Path | str, prefetch: int = 4) -> None:
        self.path = Path(path)
        self.prefetch = prefetch
        self.probe = probe(self.path)
        if not self.probe.fps:
            raise LeedError(f"{self.path}: the video stream has no frame rate")
        self.fps = self.probe.fps
        self.width, self.height = self.probe.width, self.probe.height  # upright
        self.frames = self.probe.frames  # None when the container does not say
        self.has_audio = self.probe.audio_codec is not None
        self.variable_rate = self.probe.variable_rate
        self.rotation = 90 * self.probe.turns  # degrees counter-clockwise applied to every frame
        self.sar = self.probe.sar  # pixel aspect ratio of the upright frames
        self.decoded = 0  # frames handed out by the latest iteration

    def _upright(self, frame, notes: list) -> np.ndarray:  # noqa: ANN001 - av.VideoFrame
        import cv2

        rgb = to_rgb24(frame)
        if self.probe.turns:
            rgb = np.ascontiguousarray(np.rot90(rgb, self.probe.turns))
        if rgb.shape[:2] != (self.height, self.width):
            if not notes:
                notes.append(
                    f"{self.path} changes frame size mid-stream ({self.width}x{self.height} -> "
                    f"{rgb.shape[1]}x{rgb.shape[0]}); such frames are scaled to {self.width}x{self.height}"
                )
            rgb = cv2.resize(rgb, (self.width, self.height), interpolation=cv2.INTER_AREA)
        return rgb

    def __iter__(self) -> Iterator[np.ndarray]:
        av = _av()
        q: queue.Queue = queue.Queue(maxsize=self.prefetch)
        stop = threading.Event()

        def put(item: object) -> bool:
            """Queue `item` unless the consumer has stopped (never blocks past `stop`)."""
            while not stop.is_set():
                try:
                    q.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def decode() -> None:
            last, notes, n = None, [], 0
            try:
                with _open(self.path) as c:
                    stream = c.streams.video[0]
                    stream.thread_type = "AUTO"
                    for frame in c.decode(stream):
                        rgb = self._upright(frame, notes)
                        if len(notes) == 1:
                            if not put(_Note(notes[0])):
                                return
                            notes.append(None)
                        if not put(rgb):
                            return
                        n += 1
                        last = frame.time if frame.time is not None else last
                put(_End(last))
            except av.error.FFmpegError as exc:  # cut or damaged: keep what was decoded, say so
                put(_End(last, exc) if n else exc)
            except Exception as exc:  # handed to the consumer, raised there as one line
                put(exc)

        worker = threading.Thread(target=decode, name="leed-decode", daemon=True)
        worker.start()
        self.decoded = 0
        try:
            while True:
                item = q.get()
                if isinstance(item, _Note):
                    warn(item.text)
                    continue
                if isinstance(item, _End):
                    self._say_if_cut_short(item)
                    return
                if isinstance(item, LeedError):
                    raise item
                if isinstance(item, Exception):
                    raise LeedError(f"{self.path}: decoding failed ({item}); the file may be truncated") from None
                self.decoded += 1
                yield item
        finally:
            stop.set()
            # unblock a producer waiting on a full queue; bounded: when this generator is finalized
            # at interpreter exit (a run stopped by a signal), the daemon worker may already be
            # frozen and never end, and an unbounded wait hung the exit (seen in CI, 1 run in 5)
            deadline = time.monotonic() + 5.0
            while worker.is_alive() and time.monotonic() < deadline:
                try:
                    q.get_nowait()
                except queue.Empty:
                    worker.join(timeout=0.05)

    def _say_if_cut_short(self, end: _End) -> None:
        """One warning line when the file ended before the frames (or the duration) its header
        lists: a download or copy cut short. Nothing is said for a file read to its end."""
        n, listed, fps = self.decoded, self.frames, self.fps
        stop = self.probe.video_end
        if end.error is None and listed is not None and n >= listed:
            return
        if end.error is None and (stop is None or end.last_time is None or end.last_time + 1.5 / fps >= stop):
            return  # no header count to miss, or the last frame is where the stream ends
        total = listed or (round((stop - (self.probe.video_start or 0)) * fps) if stop is not None else None)
        of = f"{n} of {total}" if total else f"{n}"
        why = f" ({end.error.__class__.__name__})" if end.error is not None else ""
        warn(f"{self.path} ended early (truncated?): {of} frames{why}")


# -- encoding ------------------------------------------------------------------------------------


class VideoWriter:
    """Encode RGB frames at an exact rate into `out`'s container, with the audio of `audio_from`.

    `audio_from` is the source video (or an audio file): its first audio track is carried over,
    aligned as in the source, and its video stream's pixel aspect ratio is kept unless `sar` is
    given. Everything that can fail for a container/codec reason fails here, before frame 1."""

    def __init__(
        self,
        out: Path | str,
        fps: Fraction | float,
        size: tuple[int, int],
        audio_from: Path | str | None = None,
        crf: int = 18,
        sar: Fraction | None = None,
    ) -> None:
        self.out = Path(out)
        self.container = container_for(self.out)  # refuses a suffix that is not a video container
        self.fps = exact_rate(fps)
        self.width, self.height = size
        self.audio_from = Path(audio_from) if audio_from else None
        self.crf = crf
        self.frames = 0
        src = probe(self.audio_from, need_video=False) if self.audio_from is not None else None
        self._src = src
        self.sar = sar or (src.sar if src is not None and src.fps else Fraction(1))
        self.audio = src is not None and src.audio_codec is not None
        self.audio_copied = self.audio and src.audio_codec in self.container.audio_copy
        # one timeline for both streams: source seconds minus t0, so each keeps its offset
        starts = [s for s in (src.video_start, src.audio_start if self.audio else None) if s is not None] if src else []
        video_start = src.video_start if src is not None and src.video_start is not None else None
        if self.container.offsets:
            self._t0 = min(starts) if starts else Fraction(0)
        else:  # AVI keeps no start offsets: the video starts at 0, the audio is trimmed/padded to it
            self._t0 = video_start if video_start is not None else (min(starts) if starts else Fraction(0))
        self._video_start = video_start if video_start is not None else self._t0  # source seconds of frame 0
        self._video_offset = self._video_start - self._t0  # output seconds of frame 0
        self._out_container = None
        self._atomic = atomic_path(self.out)
        self._tmp = self._atomic.__enter__()
        try:
            try:
                self._open_output()
            except LeedError:
                if not self.audio_copied:
                    raise
                self.audio_copied = False  # the container refused the copied track: encode it instead
                self._close_output()
                self._open_output()
        except BaseException as exc:
            self._close_output()
            self._atomic.__exit__(type(exc), exc, exc.__traceback__)
            raise

    # -- setup

    def _open_output(self) -> None:
        av = _av()
        c = self.container
        try:
            self._out_container = out = av.open(str(self._tmp), mode="w", format=c.format)
            self._video_stream(out)
            self._audio_stream(out)
            out.start_encoding()  # header written now: a refused codec fails here, before frame 1
        except (av.error.FFmpegError, ValueError, OSError) as exc:
            audio = ""
            if self.audio:
                audio = f" + audio {self._src.audio_codec}" + (
                    " copied" if self.audio_copied else f" as {c.audio_codec}"
                )
            raise LeedError(
                f"{self.out}: cannot write {c.format} with {c.video_codec}{audio} ({exc}); "
                "try another --out suffix (.mp4, .mkv)"
            ) from None

    def _video_stream(self, out) -> None:  # noqa: ANN001 - av.container.OutputContainer
        c = self.container
        stream = out.add_stream(c.video_codec, rate=self.fps)
        width, height = self.width, self.height
        self._square = None  # (width, height) frames are resampled to, for square pixels
        if self.sar != 1 and not c.keeps_sar:
            width, height = (round(width * self.sar), height) if self.sar > 1 else (width, round(height / self.sar))
            self._square = (width, height)
        elif self.sar != 1:
            stream.codec_context.sample_aspect_ratio = self.sar
        stream.width, stream.height = width, height
        stream.pix_fmt = c.odd_pix_fmt if width % 2 or height % 2 else "yuv420p"
        stream.codec_context.time_base = 1 / self.fps
        if c.video_tag:
            stream.codec_context.codec_tag = c.video_tag
        stream.options = video_quality(c, self.crf)
        # packets are re-stamped from the encoder's 1/fps onto this finer clock when the video
        # starts later than the audio (containers that keep start offsets)
        self._v_steps = OFFSET_STEPS if (self._video_offset and c.offsets) else 1
        self._v_tb = 1 / (self.fps * self._v_steps)
        self._v_shift = round(self._video_offset / self._v_tb) if c.offsets else 0
        stream.time_base = self._v_tb
        self._video = stream

    def _audio_stream(self, out) -> None:  # noqa: ANN001
        av = _av()
        self._a_src_container = self._a_src = self._a_out = self._a_iter = self._a_next = None
        self._a_pos = None  # transcoding: next output sample, at the source's rate
        self._a_skip = 0  # transcoding into AVI: source samples before the first frame, dropped
        self._a_cut = None  # transcoding: output sample where the audio stops (--max-frames)
        if not self.audio:
            return
        src = self._a_src_container = _open(self.audio_from, need_video=False)
        self._a_src = src.streams.audio[0]
        if self.audio_copied:
            self._a_out = out.add_stream_from_template(self._a_src)
        else:
            codec = av.Codec(self.container.audio_codec, "w")
            rate = self._a_src.codec_context.sample_rate or 48000
            if codec.audio_rates and rate not in codec.audio_rates:
                rate = 48000 if 48000 in codec.audio_rates else codec.audio_rates[0]
            layout = "mono" if self._a_src.codec_context.layout.nb_channels == 1 else "stereo"
            self._a_out = out.add_stream(self.container.audio_codec, rate=rate, layout=layout)
            if self.container.audio_bit_rate:
                self._a_out.bit_rate = self.container.audio_bit_rate
        start = round(self._src.audio_start / self._a_src.time_base) if self._src.audio_start is not None else 0
        self._a_iter = _timed(src.demux(self._a_src), start)

    def _close_output(self) -> None:
        for attr in ("_out_container", "_a_src_container"):
            c = getattr(self, attr, None)
            setattr(self, attr, None)
            if c is not None:
                with contextlib.suppress(Exception):  # closing what is being thrown away
                    c.close()

    # -- frames

    def write(self, frame: np.ndarray) -> None:
        """Encode `frame` (RGB uint8, the writer's size). (Encoding in a thread of its own gained
        1.05x end to end and a run stopped by a signal then hung at exit in 1 CI run of 4: removed.)"""
        if frame.shape[:2] != (self.height, self.width):
            raise ValueError(f"frame {frame.shape[:2]} is not {(self.height, self.width)}")
        av = _av()
        if self._square is not None:
            import cv2

            frame = cv2.resize(frame, self._square, interpolation=cv2.INTER_CUBIC)
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        vf.pts = self.frames
        vf.time_base = 1 / self.fps
        try:
            for packet in self._video.encode(vf):
                self._mux_video(packet)
            self.frames += 1
            self._pump(until=self._video_start + Fraction(self.frames) / self.fps)
        except (av.error.FFmpegError, OSError) as exc:  # a full disk mid-video: one line, not a traceback
            raise LeedError(
                f"{self.out}: could not write frame {self.frames + 1} ({exc}); check the free space there"
            ) from None

    def _mux_video(self, packet) -> None:  # noqa: ANN001 - av.Packet
        if self._v_steps != 1 or self._v_shift:
            k, shift = self._v_steps, self._v_shift
            packet.pts = packet.pts * k + shift if packet.pts is not None else None
            packet.dts = packet.dts * k + shift if packet.dts is not None else None
            packet.duration = (packet.duration or 0) * k
            packet.time_base = self._v_tb
        self._out_container.mux(packet)

    # -- audio

    def _pump(self, until: Fraction | None, cut: Fraction | None = None) -> None:
        """Mux the source audio before `until` (source seconds; None: to its end), stopping for
        good at `cut`. A damaged audio track ends the audio with one warning, never the run."""
        av = _av()

        while self._a_iter is not None:
            if self._a_next is None:
                try:
                    self._a_next = next(self._a_iter)
                except StopIteration:
                    self._a_iter = None
                    break
                except av.error.FFmpegError as exc:
                    warn(f"{self.audio_from}: its audio could not be read past here ({exc}); the rest is silent")
                    self._a_iter = None
                    break
            packet, t = self._a_next
            if until is not None and t >= until:
                break
            if cut is not None and t >= cut:
                self._a_iter = None
                break
            self._a_next = None
            if self.audio_copied:
                shift = round(self._t0 / packet.time_base)
                packet.pts -= shift
                packet.dts -= shift
                packet.stream = self._a_out
                self._out_container.mux(packet)
            else:
                try:
                    frames = self._a_src.decode(packet)
                except av.error.FFmpegError:
                    continue  # one undecodable audio packet: a short gap, as a player would
                for f in frames:
                    self._encode_audio(f)

    def _encode_audio(self, frame) -> None:  # noqa: ANN001 - av.AudioFrame or None (flush)
        """Place a decoded source frame on the output timeline (sample-exact), trim it to the
        start (AVI) and the cut, and encode it."""
        if frame is None:
            self._out_container.mux(self._a_out.encode(None))
            return
        rate = frame.sample_rate
        if self._a_pos is None:
            t = _seconds(frame.pts, frame.time_base)
            t = t if t is not None else (self._src.audio_start or self._t0)
            self._a_pos = round((t - self._t0) * rate)
            if not self.container.offsets and self._a_pos > 0:  # AVI: silence up to the audio's start
                self._emit_audio(_silence(frame, self._a_pos), 0)
            elif not self.container.offsets:
                self._a_skip, self._a_pos = -self._a_pos, 0
        samples = frame.samples
        start = min(self._a_skip, samples)
        self._a_skip -= start
        stop = samples if self._a_cut is None else max(start, min(samples, start + self._a_cut - self._a_pos))
        if stop <= start:
            return
        if (start, stop) != (0, samples):
            frame = _slice_audio(frame, start, stop)
        self._emit_audio(frame, self._a_pos)

    def _emit_audio(self, frame, pos: int) -> None:  # noqa: ANN001 - av.AudioFrame
        frame.pts = pos
        frame.time_base = Fraction(1, frame.sample_rate)
        self._a_pos = pos + frame.samples
        self._out_container.mux(self._a_out.encode(frame))

    # -- the end

    def close(self) -> Path:
        """Flush, finish the audio (cut where the video stops if it stopped early), rename into
        place; returns the output path."""
        try:
            for packet in self._video.encode():
                self._mux_video(packet)
            cut = None
            if self.audio and self._src.fps:  # a video source: stop the audio with the video
                listed = self._src.frames or _count_video_packets(self.audio_from)
                if listed is None or self.frames < listed:  # stopped early (or cannot tell: cut)
                    cut = self._video_start + Fraction(self.frames) / self.fps
            if cut is not None and not self.audio_copied:
                self._a_cut = round((cut - self._t0) * (self._a_src.codec_context.sample_rate or 1))
            self._pump(until=None, cut=cut)
            if self.audio and not self.audio_copied:
                with contextlib.suppress(_av().error.FFmpegError):  # a damaged tail: what was decoded stays
                    for f in self._a_src.decode(None):  # the decoder's last frames (trimmed at the cut)
                        self._encode_audio(f)
                self._encode_audio(None)
            self._out_container.close()
            self._out_container = None
        except BaseException as exc:
            self._close_output()
            self._atomic.__exit__(type(exc), exc, exc.__traceback__)
            if isinstance(exc, (_av().error.FFmpegError, OSError)):
                raise LeedError(f"{self.out}: could not finish writing ({exc}); check the free space there") from None
            raise
        self._close_output()
        try:
            self._atomic.__exit__(None, None, None)
        except OSError as exc:
            raise LeedError(f"{self.out}: could not finish writing ({exc}); check the free space there") from None
        return self.out

    def abort(self) -> None:
        """Drop everything written so far (no output file appears)."""
        self._close_output()
        if not self._tmp.exists():
            return  # closed or aborted already
        err = RuntimeError("aborted")
        self._atomic.__exit__(RuntimeError, err, None)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def _timed(packets, start: int) -> Iterator[tuple[object, Fraction]]:  # noqa: ANN001 - av packets
    """(packet, source seconds) of every packet holding data, in order. A packet without a
    decoding time takes its presentation time, one with neither follows the previous packet
    (or starts the stream): none is dropped for a missing timestamp (an AVI's first audio packet
    can lack one). Only packets the demuxer marks corrupt (cut off by a truncated file) are left out."""
    end = None
    for p in packets:
        if not p.size or p.is_corrupt:
            continue  # the demuxer's end-of-stream marker, or a packet cut off by a truncated file
        if p.dts is None and p.pts is None:
            p.pts = p.dts = end if end is not None else start
        elif p.dts is None:
            p.dts = p.pts
        elif p.pts is None:
            p.pts = p.dts
        end = p.dts + (p.duration or 0)
        yield p, p.dts * Fraction(p.time_base)


def _audio_array(frame) -> np.ndarray:  # noqa: ANN001 - av.AudioFrame
    """(channels, samples) for planar formats, (1, samples * channels) for packed ones."""
    return frame.to_ndarray()


def _rebuild(frame, data: np.ndarray):  # noqa: ANN001, ANN202 - av.AudioFrame
    av = _av()

    out = av.AudioFrame.from_ndarray(np.ascontiguousarray(data), format=frame.format.name, layout=frame.layout.name)
    out.sample_rate = frame.sample_rate
    return out


def _slice_audio(frame, start: int, stop: int):  # noqa: ANN001, ANN202
    data = _audio_array(frame)
    k = 1 if frame.format.is_planar else frame.layout.nb_channels
    return _rebuild(frame, data[:, start * k : stop * k])


def _silence(like, samples: int):  # noqa: ANN001, ANN202
    data = _audio_array(like)
    k = 1 if like.format.is_planar else like.layout.nb_channels
    return _rebuild(like, np.zeros((data.shape[0], samples * k), data.dtype))
