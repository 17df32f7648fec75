"""The bad-input corpus, generated (never committed): each function writes one case into a
folder and returns its path. Faces come from `leed_train.data.synth.render_faces` output
(the session's `synth_faces`), so the cases are realistic and tiny.
"""

from __future__ import annotations

import json
import shutil
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np


def face_rgb(faces: Path, index: int = 0) -> np.ndarray:
    """One rendered face (RGB uint8, 128 px) of the synthetic set, by identity order."""
    files = sorted(faces.glob("Rafd090_*_happy_frontal.jpg"))
    return cv2.cvtColor(cv2.imread(str(files[index % len(files)])), cv2.COLOR_BGR2RGB)


def _write(path: Path, rgb_or_raw: np.ndarray, convert: bool = True) -> Path:
    image = cv2.cvtColor(rgb_or_raw, cv2.COLOR_RGB2BGR) if convert else rgb_or_raw
    assert cv2.imwrite(str(path), image)
    return path


# -- images ------------------------------------------------------------------------------------


def empty_file(folder: Path, name: str) -> Path:
    """A 0-byte file (`empty.jpg`, `empty.png`, `empty.mp4`)."""
    path = folder / name
    path.write_bytes(b"")
    return path


def truncated(source: Path, folder: Path, fraction: float = 0.5) -> Path:
    """The first `fraction` of a valid file (a download cut short)."""
    data = source.read_bytes()
    path = folder / f"truncated{source.suffix}"
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


def face_jpg(faces: Path, folder: Path) -> Path:
    return _write(folder / "face.jpg", face_rgb(faces))


def face_png(faces: Path, folder: Path) -> Path:
    return _write(folder / "face.png", face_rgb(faces))


def grayscale_png(faces: Path, folder: Path) -> Path:
    return _write(folder / "gray.png", cv2.cvtColor(face_rgb(faces), cv2.COLOR_RGB2GRAY), convert=False)


def rgba_png(faces: Path, folder: Path) -> Path:
    rgb = face_rgb(faces)
    bgra = np.dstack([cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), np.full(rgb.shape[:2], 200, np.uint8)])
    return _write(folder / "rgba.png", bgra, convert=False)


def png16(faces: Path, folder: Path) -> Path:
    bgr = cv2.cvtColor(face_rgb(faces), cv2.COLOR_RGB2BGR).astype(np.uint16) * 257
    return _write(folder / "deep16.png", bgr, convert=False)


def huge_png(folder: Path, side: int = 8000) -> Path:
    """An 8000x8000 image (64 megapixels): flat grey, so it is small on disk and fast to write."""
    path = folder / "huge.png"
    assert cv2.imwrite(str(path), np.full((side, side, 3), 90, np.uint8), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    return path


def no_face_png(folder: Path) -> Path:
    """A smooth gradient: nothing face-like."""
    ramp = np.linspace(0, 255, 256, dtype=np.uint8)
    return _write(folder / "wall.png", np.dstack([np.tile(ramp, (192, 1))] * 3))


def five_faces_png(faces: Path, folder: Path) -> Path:
    """Five different synthetic faces side by side in one frame."""
    row = np.concatenate([face_rgb(faces, i) for i in range(5)], axis=1)
    return _write(folder / "five.png", row)


def edge_face_png(faces: Path, folder: Path) -> Path:
    """A face whose left third is cut off by the frame's edge."""
    face = face_rgb(faces)
    frame = np.full((160, 200, 3), 40, np.uint8)
    frame[16:144, :88] = face[:, 40:]
    return _write(folder / "edge.png", frame)


# -- videos ------------------------------------------------------------------------------------


def face_video(faces: Path, folder: Path, frames: int = 12, fps: int = 10, name: str = "clip.mp4") -> Path:
    """A short H.264 clip of one face drifting sideways."""
    import av

    path = folder / name
    face = face_rgb(faces)
    with av.open(str(path), mode="w") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = 192, 160, "yuv420p"
        for i in range(frames):
            frame = np.full((160, 192, 3), 60, np.uint8)
            frame[16:144, 8 + 4 * (i % 12) : 136 + 4 * (i % 12)] = face
            for p in s.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def audio_only_mp4(folder: Path) -> Path:
    """An .mp4 with one AAC audio stream and no video stream."""
    import av

    path = folder / "audio_only.mp4"
    rate = 48000
    with av.open(str(path), mode="w") as c:
        s = c.add_stream("aac", rate=rate)
        t = np.arange(rate // 2) / rate
        tone = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
        frame = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
        frame.sample_rate = rate
        for p in s.encode(frame):
            c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def vfr_mp4(faces: Path, folder: Path) -> Path:
    """Variable frame rate: frames 1/30 s apart, then 1/10 s apart (timestamps in ms)."""
    import av

    path = folder / "vfr.mp4"
    face = face_rgb(faces)
    pts = [0, 33, 67, 100, 200, 300, 400, 433, 467, 500]
    with av.open(str(path), mode="w") as c:
        s = c.add_stream("libx264", rate=30)
        s.width, s.height, s.pix_fmt = 160, 160, "yuv420p"
        s.time_base = Fraction(1, 1000)
        s.codec_context.time_base = Fraction(1, 1000)
        for t in pts:
            frame = np.full((160, 160, 3), 60, np.uint8)
            frame[16:144, 16:144] = face
            vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
            vf.pts, vf.time_base = t, Fraction(1, 1000)
            for p in s.encode(vf):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


# -- export folders and runs -------------------------------------------------------------------


def copy_export(export: Path, folder: Path) -> Path:
    out = folder / "export"
    shutil.copytree(export, out)
    return out


def corrupt_manifest(export: Path, folder: Path, text: str = '{"schema": 1, "artifacts": [') -> Path:
    """An export folder whose manifest.json is cut off (or holds `text`)."""
    out = copy_export(export, folder)
    (out / "manifest.json").write_text(text)
    return out


def edit_manifest(folder: Path, change: callable) -> None:  # type: ignore[valid-type]
    """Apply `change(dict)` to `folder/manifest.json` (JSON in, JSON out)."""
    path = folder / "manifest.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data, indent=2))


def foreign_engine(export: Path, folder: Path, version: str = "0.0.1") -> Path:
    """An export folder listing TensorRT-RTX plans (`edit.rtx`, `reference.rtx`) built with
    another library version than the installed one."""
    import hashlib

    out = copy_export(export, folder)
    plan = out / "engines" / "tensorrt-rtx" / "edit.plan"
    plan.parent.mkdir(parents=True)
    plan.write_bytes(b"not a real engine, built elsewhere")

    def change(data: dict) -> None:
        for graph in ("edit", "reference"):
            art = dict(data["artifacts"][graph])
            art.update(
                file=str(plan.relative_to(out)),
                sha256=hashlib.sha256(plan.read_bytes()).hexdigest(),
                bytes=plan.stat().st_size,
                format="plan",
                source=graph,
                engine={
                    "library": "tensorrt_rtx",
                    "version": version,
                    "gpu": None,
                    "compute_capability": None,
                    "profile": {"min": 1, "opt": 8, "max": 32},
                },
            )
            data["artifacts"][f"{graph}.rtx"] = art

    edit_manifest(out, change)
    return out


def nan_checkpoint(run: Path, folder: Path, stage: str = "leed") -> Path:
    """A copy of a training run whose last `stage` checkpoint has NaN in one weight."""
    import safetensors.numpy

    out = folder / "run"
    shutil.copytree(run, out)
    ckpt = sorted((out / "checkpoints").glob(f"{stage}-*"))[-1]
    weights = safetensors.numpy.load_file(str(ckpt / "weights.safetensors"))
    key = next(k for k, v in weights.items() if v.dtype.kind == "f" and v.size > 1)
    weights[key] = weights[key].copy()
    weights[key].flat[0] = np.nan
    safetensors.numpy.save_file(weights, str(ckpt / "weights.safetensors"))
    return out


def junk_dataset(faces: Path, folder: Path, images: int = 24) -> Path:
    """A dataset folder: real RaFD-named faces plus text files, a 0-byte .jpg, a directory
    named like an image, a truncated PNG, and files with non-image extensions."""
    out = folder / "junk"
    out.mkdir()
    for src in sorted(faces.glob("Rafd*.jpg"))[:images]:
        shutil.copy(src, out / src.name)
    (out / "README.txt").write_text("not an image\n")
    (out / "notes.jpg.txt").write_text("also not an image\n")
    (out / "Rafd090_09_Caucasian_female_happy_frontal.jpg").write_bytes(b"")
    (out / "Rafd090_09_Caucasian_female_sad_frontal.jpg").mkdir()
    png = _write(out / "whole.png", face_rgb(faces))
    (out / "Rafd090_09_Caucasian_female_angry_frontal.png").write_bytes(png.read_bytes()[:300])
    png.unlink()
    (out / "clip.mp4").write_bytes(b"\x00" * 64)
    (out / "image.gif").write_bytes(b"GIF89a")
    (out / "data.bin").write_bytes(np.arange(256, dtype=np.uint8).tobytes())
    return out
