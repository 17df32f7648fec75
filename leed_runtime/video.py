"""Video in and out through PyAV (FFmpeg in the wheel, libx264 included), frame by frame.

- `VideoReader`: exact frame rate as a Fraction (29.97 is 30000/1001, never `int()`-ed),
  size, frame count, whether there is audio; frames decoded in a background thread so
  decoding frame t+1 overlaps the caller's work on frame t; never holds the whole video.
- `VideoWriter`: H.264 (yuv420p) at the input's exact rate into a temp file; `close()`
  then muxes the source's audio track back in (packets copied, not re-encoded) and renames
  the result into place. A failed or interrupted run leaves no output file; a killed one
  leaves only `.tmp-{name}.{pid}.*`, removed by the next run writing that output.
"""

from __future__ import annotations

import contextlib
import os
import queue
import tempfile
import threading
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np

from leed_runtime.atomic import atomic_path, clean_stale, tmp_prefix
from leed_runtime.errors import LeedError

NTSC = {23.976: Fraction(24000, 1001), 29.97: Fraction(30000, 1001), 59.94: Fraction(60000, 1001)}


def exact_rate(fps: float | Fraction) -> Fraction:
    """29.97 -> 30000/1001 (and the other NTSC rates); otherwise the nearest fraction /1001."""
    if isinstance(fps, Fraction):
        return fps
    for approx, rate in NTSC.items():
        if abs(fps - approx) < 5e-3:
            return rate
    return Fraction(fps).limit_denominator(1001)


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


def _open(path: Path):  # noqa: ANN202 - av.container.InputContainer
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
    if not container.streams.video:
        container.close()
        raise LeedError(f"{path}: has no video stream")
    return container


# Y'CbCr -> R'G'B' for 8-bit limited range ("tv"), by colour matrix (AVColorSpace codes).
_KR_KB = {1: (0.2126, 0.0722), 5: (0.299, 0.114), 6: (0.299, 0.114)}  # BT.709, BT.601 (470BG, 170M)


def _yuv_matrix(colorspace: int, full_range: bool) -> np.ndarray:
    """3x4 affine matrix taking (Y, Cb, Cr) 0..255 to (R, G, B) 0..255."""
    kr, kb = _KR_KB.get(colorspace, _KR_KB[5])  # unspecified: BT.601, as FFmpeg assumes
    kg = 1 - kr - kb
    ys, cs, y0 = (1.0, 1.0, 0.0) if full_range else (255 / 219, 255 / 224, 16.0)
    m = np.array(
        [
            [ys, 0.0, 2 * (1 - kr) * cs],
            [ys, -2 * (1 - kb) * kb / kg * cs, -2 * (1 - kr) * kr / kg * cs],
            [ys, 2 * (1 - kb) * cs, 0.0],
        ]
    )
    offset = -m @ np.array([y0, 128.0, 128.0])
    return np.hstack([m, offset[:, None]]).astype(np.float32)


def to_rgb24(frame) -> np.ndarray:  # noqa: ANN001 - av.VideoFrame
    """RGB uint8 of a decoded frame. 8-bit 4:2:0 is converted here with the frame's own colour
    matrix and range, rounding correctly: FFmpeg's default yuv420p->rgb24 path (swscale without
    accurate rounding) darkens every pixel by about one level. Other formats go through FFmpeg."""
    if frame.format.name not in ("yuv420p", "yuvj420p") or frame.width % 2 or frame.height % 2:
        return frame.to_ndarray(format="rgb24")
    import cv2

    h, w = frame.height, frame.width
    planes = [np.frombuffer(p, np.uint8).reshape(-1, p.line_size) for p in frame.planes]
    y = planes[0][:h, :w]
    cb = cv2.resize(planes[1][: h // 2, : w // 2], (w, h), interpolation=cv2.INTER_LINEAR)
    cr = cv2.resize(planes[2][: h // 2, : w // 2], (w, h), interpolation=cv2.INTER_LINEAR)
    full = frame.format.name == "yuvj420p" or int(frame.color_range or 0) == 2
    m = _yuv_matrix(int(frame.colorspace or 2), full)
    rgb = cv2.transform(np.dstack([y, cb, cr]).astype(np.float32), m)
    return np.clip(rgb + 0.5, 0, 255).astype(np.uint8)


class VideoReader:
    """Iterate RGB uint8 frames (H, W, 3) of a video file."""

    def __init__(self, path: Path | str, prefetch: int = 4) -> None:
        self.path = Path(path)
        self.prefetch = prefetch
        with _open(self.path) as c:
            v = c.streams.video[0]
            rate = v.average_rate or v.guessed_rate or v.base_rate
            if not rate:
                raise LeedError(f"{self.path}: the video stream has no frame rate")
            self.fps = Fraction(rate.numerator, rate.denominator)
            self.width, self.height = v.codec_context.width, v.codec_context.height
            self.frames = int(v.frames) or None  # None when the container does not say
            self.has_audio = bool(c.streams.audio)
            self.variable_rate = bool(v.average_rate and v.guessed_rate and v.average_rate != v.guessed_rate)

    def __iter__(self) -> Iterator[np.ndarray]:
        q: queue.Queue = queue.Queue(maxsize=self.prefetch)
        stop = threading.Event()
        done = object()

        def decode() -> None:
            try:
                with _open(self.path) as c:
                    stream = c.streams.video[0]
                    stream.thread_type = "AUTO"
                    for frame in c.decode(stream):
                        if stop.is_set():
                            return
                        q.put(to_rgb24(frame))
                q.put(done)
            except Exception as exc:  # handed to the consumer, raised there as one line
                q.put(exc)

        worker = threading.Thread(target=decode, name="leed-decode", daemon=True)
        worker.start()
        try:
            while True:
                item = q.get()
                if item is done:
                    return
                if isinstance(item, LeedError):
                    raise item
                if isinstance(item, Exception):
                    raise LeedError(f"{self.path}: decoding failed ({item}); the file may be truncated") from None
                yield item
        finally:
            stop.set()
            while worker.is_alive():  # unblock a producer waiting on a full queue
                try:
                    q.get_nowait()
                except queue.Empty:
                    worker.join(timeout=0.05)


class VideoWriter:
    """Encode RGB frames to H.264 at an exact rate; audio copied from `audio_from` on close."""

    def __init__(
        self,
        out: Path | str,
        fps: Fraction | float,
        size: tuple[int, int],
        audio_from: Path | str | None = None,
        crf: int = 18,
    ) -> None:
        av = _av()

        self.out = Path(out)
        self.fps = exact_rate(fps)
        self.width, self.height = size
        self.audio_from = Path(audio_from) if audio_from else None
        self.frames = 0
        self.out.parent.mkdir(parents=True, exist_ok=True)
        clean_stale(self.out)  # what a killed run left
        fd, name = tempfile.mkstemp(dir=self.out.parent, prefix=tmp_prefix(self.out), suffix=".video.mp4")
        os.close(fd)
        self._video_tmp = Path(name)  # video only; muxed with the audio into `out` on close
        self._container = av.open(str(self._video_tmp), mode="w")
        self._stream = self._container.add_stream("libx264", rate=self.fps)
        self._stream.width, self._stream.height = self.width + self.width % 2, self.height + self.height % 2
        self._stream.pix_fmt = "yuv420p"
        self._stream.time_base = Fraction(1, 1) / self.fps
        self._stream.options = {"crf": str(crf), "preset": "veryfast"}

    def write(self, frame: np.ndarray) -> None:
        av = _av()

        if frame.shape[:2] != (self.height, self.width):
            raise ValueError(f"frame {frame.shape[:2]} is not {(self.height, self.width)}")
        if self.width % 2 or self.height % 2:  # yuv420p needs even sizes: pad by one pixel
            frame = np.pad(frame, ((0, self.height % 2), (0, self.width % 2), (0, 0)), mode="edge")
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        vf.pts = self.frames
        for packet in self._stream.encode(vf):
            self._container.mux(packet)
        self.frames += 1

    def close(self) -> Path:
        """Flush, mux the audio, rename into place; returns the output path."""
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()
        try:
            with atomic_path(self.out) as final:
                _mux(self._video_tmp, self.audio_from, final)
        finally:
            self._video_tmp.unlink(missing_ok=True)
        return self.out

    def abort(self) -> None:
        """Drop everything written so far (no output file appears)."""
        try:
            self._container.close()
        finally:
            self._video_tmp.unlink(missing_ok=True)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def _mux(video: Path, audio_from: Path | None, out: Path) -> None:
    """Copy the video stream of `video` and the first audio stream of `audio_from` into
    `out`, interleaved by time (so the muxer buffers nothing large)."""
    av = _av()

    with contextlib.ExitStack() as stack:
        vin = stack.enter_context(av.open(str(video)))
        dst = stack.enter_context(av.open(str(out), mode="w", format=_format_of(out)))
        streams = [(vin, vin.streams.video[0])]
        if audio_from is not None:
            ain = stack.enter_context(av.open(str(audio_from)))
            if ain.streams.audio:
                streams.append((ain, ain.streams.audio[0]))
        outs = [dst.add_stream_from_template(s_in) for _, s_in in streams]
        iters = [(p for p in c.demux(s_in) if p.dts is not None) for c, s_in in streams]
        heads = [next(it, None) for it in iters]
        while any(h is not None for h in heads):
            k = min((i for i, h in enumerate(heads) if h is not None), key=lambda i: heads[i].dts * heads[i].time_base)
            packet = heads[k]
            packet.stream = outs[k]
            dst.mux(packet)
            heads[k] = next(iters[k], None)


def _format_of(path: Path) -> str:
    return {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm"}.get(
        path.suffix.lower(), "mp4"
    )
