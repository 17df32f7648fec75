"""`leed-run` end to end on onnxruntime-cpu, with PyTorch blocked: video, image, API, errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from leed_runtime.video import VideoReader, VideoWriter


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from leed_train.data.synth import render_video

    out = tmp_path_factory.mktemp("clip") / "in.mp4"
    render_video(out, identity=3, seconds=1.0, fps=29.97, size=(480, 320), seed=0)
    return out


@pytest.fixture(scope="module")
def reference(synth_faces: Path) -> Path:
    return next(synth_faces.glob("Rafd090_01_*_happy_frontal.jpg"))


@pytest.fixture(scope="module")
def edited(
    tiny_export: Path, clip: Path, reference: Path, tmp_path_factory: pytest.TempPathFactory, leed_run
) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("run") / "out.mp4"
    summary = out.with_suffix(".json")
    proc = leed_run(
        "--video", str(clip), "--ref", str(reference), "--model", str(tiny_export), "--out", str(out),
        "--backend", "onnxruntime-cpu", "--summary-json", str(summary), "--strip", str(out.with_suffix(".png")),
        "--strip-frames", "3",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "onnxruntime-cpu" in proc.stdout and "frames" in proc.stdout
    return out, json.loads(summary.read_text())


def _face_boxes(clip: Path) -> list[tuple[int, int, int, int]]:
    """Per frame, a generous box around the drawn face from leed-synth's landmarks."""
    rows = list(csv.DictReader(Path(str(clip) + ".landmarks.csv").read_text().splitlines()))
    boxes = []
    for r in rows:
        pts = np.array([float(r[k]) for k in list(r)[1:]]).reshape(5, 2)
        c, d = pts.mean(0), np.linalg.norm(pts[1] - pts[0])
        boxes.append((int(c[0] - 2.5 * d), int(c[1] - 3 * d), int(c[0] + 2.5 * d), int(c[1] + 3 * d)))
    return boxes


def test_video_keeps_frames_rate_and_audio(edited: tuple[Path, dict], clip: Path) -> None:
    out, summary = edited
    src, dst = VideoReader(clip), VideoReader(out)
    assert dst.fps == src.fps and str(dst.fps) == "30000/1001"
    assert dst.frames == src.frames == summary["frames"] == 30
    assert (dst.width, dst.height) == (src.width, src.height)
    assert dst.has_audio
    assert summary["faces_edited"] >= 25 and summary["frames_without_face"] <= 5
    assert set(summary["ms_per_stage"]) >= {"decode", "detect", "align", "edit", "paste", "encode"}


def test_strip_shows_reference_and_three_frames(edited: tuple[Path, dict], clip: Path) -> None:
    import cv2

    from leed_runtime.strip import TILE

    strip = cv2.imread(str(edited[0].with_suffix(".png")))
    assert strip is not None and strip.shape[0] == 2 * TILE + 6
    frame_w = round(480 * TILE / 320)
    # a square reference as tall as the strip, then 3 (input over edit) columns, 6 px gaps
    assert strip.shape[1] == (2 * TILE + 6) + 3 * (frame_w + 6)
    assert edited[1]["config"]["strip"] == str(edited[0].with_suffix(".png"))
    x0 = 2 * TILE + 6 + 6  # first frame column
    top, bottom = strip[:TILE, x0 : x0 + frame_w], strip[TILE + 6 :, x0 : x0 + frame_w]
    assert np.abs(top.astype(np.int16) - bottom).mean() > 1.0  # input above, the edit below


def test_only_the_face_changes(edited: tuple[Path, dict], clip: Path, tmp_path: Path) -> None:
    """Away from the face the output equals a plain re-encode of the input (same codec
    noise); on the face the model's edit is far larger than that noise."""
    out, _ = edited
    plain = tmp_path / "plain.mp4"
    src = VideoReader(clip)
    with VideoWriter(plain, src.fps, (src.width, src.height)) as w:
        for frame in src:
            w.write(frame)
    inside, outside = [], []
    for (x0, y0, x1, y1), a, b in zip(_face_boxes(clip), VideoReader(plain), VideoReader(out), strict=True):
        diff = np.abs(a.astype(np.int16) - b.astype(np.int16)).sum(-1)
        mask = np.zeros(diff.shape, bool)
        mask[max(y0, 0) : y1, max(x0, 0) : x1] = True
        inside.append(diff[mask].mean())
        outside.append(diff[~mask].mean())
    assert np.mean(outside) < 0.5, np.mean(outside)
    assert np.mean(inside) > 20 * max(np.mean(outside), 0.1), (np.mean(inside), np.mean(outside))


def test_image_mode_and_python_api(
    tiny_export: Path, synth_faces: Path, reference: Path, tmp_path: Path, leed_run
) -> None:
    face = next(synth_faces.glob("Rafd090_02_*_neutral_frontal.jpg"))
    out = tmp_path / "edited.png"
    proc = leed_run("--image", str(face), "--ref", str(reference), "--model", str(tiny_export), "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    from leed_runtime.image import read_image
    from leed_runtime.pipeline import Editor

    with Editor(tiny_export, backend="onnxruntime-cpu") as editor:
        editor.set_reference(read_image(reference))
        frame = read_image(face)
        result = editor(frame.copy())
    assert result.shape == frame.shape and np.abs(result.astype(int) - frame.astype(int)).max() > 0
    assert np.abs(read_image(out).astype(int) - result.astype(int)).mean() < 1.0  # PNG: the same edit


def test_frames_without_a_face_pass_through(tiny_export: Path, reference: Path, tmp_path: Path, leed_run) -> None:
    blank = tmp_path / "blank.mp4"
    with VideoWriter(blank, 25, (160, 120)) as w:
        for i in range(10):
            w.write(np.full((120, 160, 3), 40 + 10 * i, np.uint8))
    out, summary = tmp_path / "out.mp4", tmp_path / "s.json"
    proc = leed_run(
        "--video",
        str(blank),
        "--ref",
        str(reference),
        "--model",
        str(tiny_export),
        "--out",
        str(out),
        "--summary-json",
        str(summary),
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    s = json.loads(summary.read_text())
    assert s["frames"] == 10 and s["frames_without_face"] == 10 and VideoReader(out).frames == 10


@pytest.mark.parametrize(
    ("case", "needle"),
    [
        ("missing-video", "no such input file"),
        ("unreadable-video", "not a readable video"),
        ("ref-without-face", "no face found"),
        ("no-manifest", "manifest.json"),
        ("tensorrt-here", "tensorrt"),
    ],
)
def test_bad_input_is_one_line_and_leaves_nothing(
    case: str, needle: str, tiny_export: Path, clip: Path, reference: Path, tmp_path: Path, leed_run
) -> None:
    video, ref, model, extra = str(clip), str(reference), str(tiny_export), []
    if case == "missing-video":
        video = str(tmp_path / "nope.mp4")
    elif case == "unreadable-video":
        video = str(tmp_path / "junk.mp4")
        Path(video).write_bytes(b"\x00" * 64)
    elif case == "ref-without-face":
        import cv2

        ref = str(tmp_path / "wall.png")
        cv2.imwrite(ref, np.full((200, 200, 3), 128, np.uint8))
    elif case == "no-manifest":
        model = str(tmp_path)
    elif case == "tensorrt-here":
        extra = ["--backend", "tensorrt"]
    out = tmp_path / "out.mp4"
    proc = leed_run("--video", video, "--ref", ref, "--model", model, "--out", str(out), *extra)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in proc.stderr
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]
