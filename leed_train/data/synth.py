"""Synthetic faces in RaFD's file format with exact ground truth (`leed-synth`).

`render_faces` writes every identity x camera angle x expression x gaze, plus landmarks.csv
and meta.json; images of one (identity, angle, gaze) differ only inside the face.
`render_video` writes an H.264 + AAC clip of one moving head; `sample_grid` a labelled grid.
The drawing itself lives in `synth_draw`.
"""

from __future__ import annotations

import csv
import io
import json
import math
import multiprocessing
import os
import tempfile
import time
from dataclasses import asdict
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from leed_runtime.atomic import atomic_write_bytes
from leed_runtime.errors import LeedError
from leed_runtime.face.align import LANDMARK_COLUMNS
from leed_runtime.video import VideoWriter
from leed_train.data.names import ANGLES, EXPRESSIONS, GAZES, format_rafd_name
from leed_train.data.synth_draw import (
    EXPRESSION_PARAMS,
    GAZE_SHIFT,
    GENERATOR_VERSION,
    FaceRenderer,
    Identity,
    Rendered,
    Scene,
    background,
    make_identity,
    make_scene,
)

LANDMARK_HEADER = list(LANDMARK_COLUMNS)
JPEG_QUALITY = 95
SUPERSAMPLE = 4
_NTSC = {23.976: Fraction(24000, 1001), 29.97: Fraction(30000, 1001), 59.94: Fraction(60000, 1001)}


def yaw_of(angle: str) -> float:
    """Head yaw in degrees for a RaFD camera angle (090 frontal, 045 -> -45, 135 -> +45)."""
    return float(int(angle) - 90)


def render_set(seed: int, number: int, angle: str, size: int, ss: int = SUPERSAMPLE) -> dict[tuple[str, str], Rendered]:
    """All expressions x gazes of one identity at one camera angle, un-encoded."""
    renderer = FaceRenderer(make_identity(seed, number), make_scene(seed, number, angle), yaw_of(angle), size, ss)
    return {(e, g): renderer.render(EXPRESSION_PARAMS[e], GAZE_SHIFT[g]) for e in EXPRESSIONS for g in GAZES}


def _encode_jpeg(rgb: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()


def _render_task(task: tuple[int, int, str, int, str]) -> tuple[list[list], int]:
    seed, number, angle, size, out_dir = task
    cv2.setNumThreads(1)
    ident = make_identity(seed, number)
    rows, nbytes = [], 0
    for (expression, gaze), r in render_set(seed, number, angle, size).items():
        name = format_rafd_name(angle, number, ident.ethnicity, ident.gender, expression, gaze)
        data = _encode_jpeg(r.image)
        atomic_write_bytes(Path(out_dir) / name, data)
        nbytes += len(data)
        rows.append([name, *(f"{v:.3f}" for v in r.landmarks.reshape(-1))])
    return rows, nbytes


def _check_faces_args(
    identities: int, size: int, angles: tuple[str, ...], first_id: int, workers: int
) -> tuple[str, ...]:
    if identities < 1:
        raise LeedError(f"--identities {identities}: need at least 1")
    if size < 64:
        raise LeedError(f"--size {size}: images must be at least 64 pixels, e.g. --size 256")
    if first_id < 0:
        raise LeedError(f"--first-id {first_id}: identity numbers start at 0 or more")
    if workers < 0:
        raise LeedError(f"--workers {workers}: use 0 (one per core) or a positive count")
    norm = tuple(str(a).strip().zfill(3) for a in angles)
    bad = [a for a in norm if a not in ANGLES]
    if not norm or bad:
        raise LeedError(
            f"--angles {','.join(angles)!s}: each angle must be one of {','.join(ANGLES)}, e.g. 045,090,135"
        )
    return tuple(dict.fromkeys(norm))


def render_faces(
    out_dir: Path,
    identities: int = 60,
    seed: int = 0,
    size: int = 256,
    angles: tuple[str, ...] = ("045", "090", "135"),
    first_id: int = 1,
    workers: int = 0,
) -> dict:
    """Write the RaFD-named images, landmarks.csv and meta.json; return n_images, seconds, bytes."""
    angles = _check_faces_args(identities, size, tuple(angles), first_id, workers)
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LeedError(f"OUT_DIR {out_dir}: cannot create it ({exc.strerror}); pick a writable folder") from None
    start = time.perf_counter()
    numbers = range(first_id, first_id + identities)
    tasks = [(seed, n, a, size, str(out_dir)) for n in numbers for a in angles]
    workers = workers or os.cpu_count() or 1
    per_task = len(EXPRESSIONS) * len(GAZES)
    rows: list[list] = []
    nbytes = 0
    with tqdm(total=len(tasks) * per_task, unit="img", desc="leed-synth faces") as bar:
        if workers == 1 or len(tasks) == 1:
            results = map(_render_task, tasks)
            pool = None
        else:
            pool = multiprocessing.get_context("spawn").Pool(min(workers, len(tasks)))
            results = pool.imap_unordered(_render_task, tasks)
        try:
            for task_rows, task_bytes in results:
                rows.extend(task_rows)
                nbytes += task_bytes
                bar.update(per_task)
        finally:
            if pool is not None:
                pool.terminate()
    rows.sort(key=lambda r: r[0])
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["filename", *LANDMARK_HEADER])
    writer.writerows(rows)
    atomic_write_bytes(out_dir / "landmarks.csv", text.getvalue().encode())
    meta = {
        "generator": GENERATOR_VERSION,
        "seed": seed,
        "size": size,
        "angles": list(angles),
        "expressions": list(EXPRESSIONS),
        "gazes": list(GAZES),
        "identities": {str(n): asdict(make_identity(seed, n)) for n in numbers},
    }
    atomic_write_bytes(out_dir / "meta.json", (json.dumps(meta, indent=1) + "\n").encode())
    return {"n_images": len(rows), "seconds": round(time.perf_counter() - start, 2), "bytes": nbytes}


def sample_grid(out_path: Path, identities: int = 6, seed: int = 0, size: int = 96) -> Path:
    """A labelled JPEG grid: one row per identity, one column per expression (frontal camera)."""
    head, side = 20, 78
    canvas = np.full((head + identities * size, side + len(EXPRESSIONS) * size, 3), 255, np.uint8)
    font = cv2.FONT_HERSHEY_SIMPLEX
    for j, expression in enumerate(EXPRESSIONS):
        cv2.putText(canvas, expression[:9], (side + j * size + 4, 14), font, 0.38, (0, 0, 0), 1, cv2.LINE_AA)
    for i in range(identities):
        number = i + 1
        ident = make_identity(seed, number)
        renders = render_set(seed, number, "090", size)
        y = head + i * size
        for j, expression in enumerate(EXPRESSIONS):
            canvas[y : y + size, side + j * size : side + (j + 1) * size] = renders[(expression, "frontal")].image
        for k, text in enumerate((f"id {number:02d}", ident.ethnicity, ident.gender)):
            cv2.putText(canvas, text, (4, y + 30 + 16 * k), font, 0.38, (0, 0, 0), 1, cv2.LINE_AA)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out_path, _encode_jpeg(canvas, 85))
    return out_path


def fps_fraction(fps: float) -> Fraction:
    """Exact frame rate: the NTSC rates 23.976, 29.97, 59.94 -> N000/1001, else a close Fraction."""
    for approx, exact in _NTSC.items():
        if abs(fps - approx) < 0.006:
            return exact
    return Fraction(fps).limit_denominator(1001)


def _smooth(x: float) -> float:
    x = min(max(x, 0.0), 1.0)
    return x * x * (3 - 2 * x)


def expression_at(t: float, order: list[str], segment: float = 1.6, hold: float = 0.7) -> np.ndarray:
    """Expression parameters at time t: hold each expression of `order`, then blend to the next."""
    k = int(t // segment)
    a, b = order[k % len(order)], order[(k + 1) % len(order)]
    w = _smooth((t - k * segment - hold) / (segment - hold))
    return EXPRESSION_PARAMS[a] * (1 - w) + EXPRESSION_PARAMS[b] * w


def _audio_track(path: Path, seconds: float, rate: int = 48000) -> None:
    """A mono AAC track (a few notes and a chirp) of `seconds`, encoded in process with PyAV."""
    import av

    t = np.arange(int(round(seconds * rate))) / rate
    notes = np.array([261.63, 329.63, 392.0, 523.25, 440.0, 349.23])
    seg = (t // 0.8).astype(int)
    phase_t = t - seg * 0.8
    env = np.minimum(1, phase_t / 0.02) * np.exp(-phase_t * 3)
    tone = np.sin(2 * np.pi * notes[seg % len(notes)] * t) * env
    chirp = np.sin(2 * np.pi * (200 * t + 40 * t**2))
    pcm = (np.clip(0.3 * tone + 0.05 * chirp, -1, 1) * 32767).astype(np.int16)
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("aac", rate=rate, layout="mono")
        stream.bit_rate = 128_000
        for start in range(0, len(pcm), 1024):
            frame = av.AudioFrame.from_ndarray(pcm[None, start : start + 1024], format="s16", layout="mono")
            frame.sample_rate, frame.pts = rate, start
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def _check_video_args(out: Path, identity: int, seconds: float, fps: float, size: tuple[int, int]) -> None:
    width, height = size
    if width < 64 or height < 64 or width % 2 or height % 2:
        raise LeedError(f"--size {width}x{height}: width and height must be even and at least 64, e.g. 1280x720")
    if not seconds > 0:
        raise LeedError(f"--seconds {seconds}: must be more than 0")
    if not 0 < fps <= 240:
        raise LeedError(f"--fps {fps}: must be in (0, 240], e.g. 29.97")
    if identity < 0:
        raise LeedError(f"--identity {identity}: must be 0 or more")
    if not Path(out).parent.exists():
        raise LeedError(f"OUT {out}: folder {Path(out).parent} does not exist; create it first")


def render_video(
    out: Path,
    identity: int = 1,
    seconds: float = 10.0,
    fps: float = 29.97,
    size: tuple[int, int] = (1280, 720),
    seed: int = 0,
    audio: bool = True,
) -> None:
    """Write an H.264/yuv420p (+ AAC 48 kHz) clip of one moving synthetic head, and OUT.landmarks.csv.

    Encoded with leed-run's own `VideoWriter` (PyAV): temp file, audio muxed, renamed when done."""
    out = Path(out)
    _check_video_args(out, identity, seconds, fps, size)
    width, height = size
    rate = fps_fraction(fps)
    n_frames = max(1, round(seconds * rate))
    ident = make_identity(seed, identity)
    scene = make_scene(seed, identity, "video")
    rng = np.random.default_rng([seed, identity, 99])
    order = ["neutral", *rng.permutation([e for e in EXPRESSIONS if e != "neutral"]).tolist()]
    side = 2 * int(0.6 * height)
    margin = side
    bg = background(scene, width + 2 * margin, height + 2 * margin)
    rows = []
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.stem}.") as tmp:
        track = Path(tmp) / "audio.m4a"
        if audio:
            _audio_track(track, float(n_frames / rate))
        with VideoWriter(out, rate, (width, height), audio_from=track if audio else None, crf=20) as writer:
            for i in tqdm(range(n_frames), unit="frame", desc="leed-synth video"):
                frame, lm = _video_frame(ident, scene, bg, margin, (width, height), side, float(i / rate), order)
                writer.write(frame)
                rows.append([i, *(f"{v:.3f}" for v in lm.reshape(-1))])
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["frame", *LANDMARK_HEADER])
    writer.writerows(rows)
    atomic_write_bytes(out.with_name(out.name + ".landmarks.csv"), text.getvalue().encode())


def _video_frame(
    ident: Identity,
    scene: Scene,
    bg: np.ndarray,
    margin: int,
    size: tuple[int, int],
    side: int,
    t: float,
    order: list[str],
) -> tuple[np.ndarray, np.ndarray]:
    """One RGB video frame at time t and its 5 landmarks in frame pixels."""
    width, height = size
    two_pi = 2 * math.pi
    yaw = 18 * math.sin(two_pi * t / 7.3) + 2 * math.sin(two_pi * t / 2.9)
    cx = width / 2 + 0.05 * width * math.sin(two_pi * t / 5.1)
    cy = height * 0.5 + 0.04 * height * math.sin(two_pi * t / 6.7 + 1)
    scale = 0.3 * height / ident.head_b * (1 + 0.06 * math.sin(two_pi * t / 4.3))
    ox, oy = int(math.floor(cx - side / 2)), int(math.floor(cy - side / 2))
    crop = bg[oy + margin : oy + margin + side, ox + margin : ox + margin + side]
    renderer = FaceRenderer(ident, scene, yaw, side, 2, crop, (cx - ox, cy - oy), scale)
    r = renderer.render(expression_at(t, order), 0.8 * math.sin(two_pi * t / 3.9))
    frame = bg[margin : margin + height, margin : margin + width].copy()
    x0, y0, x1, y1 = max(ox, 0), max(oy, 0), min(ox + side, width), min(oy + side, height)
    frame[y0:y1, x0:x1] = r.image[y0 - oy : y1 - oy, x0 - ox : x1 - ox]
    return frame, r.landmarks + [ox, oy]
