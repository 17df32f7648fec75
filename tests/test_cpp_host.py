"""The C++ host sample (samples/cpp): builds with CMake against the system OpenCV, edits two
real face crops like onnxruntime does, and edits a short clip frame by frame.

It runs on the OpenCV variant of the fused graphs (`reference.opencv`, `edit.opencv`: batch 1,
constant label planes, alpha folded into dexp) that `leed-export --opencv` writes, from a real
tiny training run. Skipped without cmake, g++, OpenCV and nlohmann-json dev files
(`.ci/install-system.sh` installs them), except in CI (CI=true), where it must run.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from leed_runtime.face.align import LANDMARK_COLUMNS, crop_face

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples" / "cpp"


def _missing() -> str | None:
    for tool in ("cmake", "g++", "pkg-config"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if subprocess.run(["pkg-config", "--exists", "opencv4"]).returncode != 0:
        return "OpenCV dev files are missing (pkg-config opencv4)"
    if not Path("/usr/include/nlohmann/json.hpp").is_file():
        return "nlohmann-json3-dev is not installed"
    return None


pytestmark = pytest.mark.skipif(
    _missing() is not None and os.environ.get("CI") != "true",
    reason=f"C++ sample: {_missing()}; run .ci/install-system.sh",
)


def _run(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cpp-build")
    for step in (["cmake", "-S", SAMPLES, "-B", out], ["cmake", "--build", out, "-j2"]):
        r = _run(*step)
        assert r.returncode == 0, r.stdout + r.stderr
    return out


@pytest.fixture(scope="module", params=["plain", "residual-edit"])
def export(request: pytest.FixtureRequest, tiny_export: Path, tiny_run: Path, tmp_path_factory) -> Path:
    """The real exporter's output for a tiny run (it includes the --opencv variants), as the
    paper's chain and with `--residual-edit` (the shipped model's kind)."""
    if request.param == "plain":
        return tiny_export
    from leed_export.export import ExportConfig, run_export

    out = tmp_path_factory.mktemp("exports") / "tiny-residual"
    run_export(ExportConfig(run_dir=str(tiny_run), out=str(out), samples=4, opencv=True, residual_edit=True))
    return out


@pytest.fixture(scope="module")
def crops(synth_faces: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A neutral face crop and a happy reference crop of another identity, aligned as in use."""
    with open(synth_faces / "landmarks.csv") as f:
        rows = {r["filename"]: r for r in csv.DictReader(f)}
    out = tmp_path_factory.mktemp("cpp-crops")
    paths = []
    for name in ("Rafd090_01_Kid_male_neutral_frontal.jpg", "Rafd090_02_*_happy_frontal.jpg"):
        (file,) = [f for f in rows if Path(f).match(name)] if "*" in name else [name]
        landmarks = np.array([float(rows[file][c]) for c in LANDMARK_COLUMNS]).reshape(5, 2)
        crop, _ = crop_face(cv2.imread(str(synth_faces / file)), landmarks)
        paths.append(out / f"{Path(file).stem}.png")
        cv2.imwrite(str(paths[-1]), crop)
    return paths[0], paths[1]


def test_edit_image_matches_onnxruntime(build: Path, export: Path, crops: tuple[Path, Path], tmp_path: Path) -> None:
    face, ref = crops
    out, raw = tmp_path / "edited.png", tmp_path / "edited.bin"
    r = _run(build / "leed_edit_image", export, face, ref, "0.8", out, "--raw", raw)
    assert r.returncode == 0, r.stderr
    assert cv2.imread(str(out)).shape == (128, 128, 3)
    r = _run(sys.executable, SAMPLES / "compare.py", export, face, ref, "0.8", raw, "--tolerance", "1e-3")
    print(r.stdout)
    assert r.returncode == 0, r.stdout + r.stderr
    assert float(re.search(r"max abs error (\S+),", r.stdout).group(1)) <= 1e-3


def test_edit_video_keeps_every_frame(build: Path, export: Path, crops: tuple[Path, Path], tmp_path: Path) -> None:
    from leed_train.data.synth import render_video

    clip, out = tmp_path / "clip.mp4", tmp_path / "edited.mp4"
    render_video(clip, seconds=0.5, size=(320, 240), audio=False)
    r = _run(build / "leed_edit_video", export, clip, crops[1], "1.0", out, "96", "48", "144")
    assert r.returncode == 0, r.stderr
    print(r.stdout)

    def frames(path: Path) -> int:
        cap, n = cv2.VideoCapture(str(path)), 0
        while cap.read()[0]:
            n += 1
        return n

    assert frames(out) == frames(clip) == 15
    assert re.search(r"15 frames, \S+ ms/frame edit", r.stdout)


def test_errors_are_one_clear_line(build: Path, export: Path, crops: tuple[Path, Path], tmp_path: Path) -> None:
    face, ref = crops
    r = _run(build / "leed_edit_image", tmp_path / "nope", face, ref, "1", tmp_path / "o.png")
    assert r.returncode == 1 and "no such export folder" in r.stderr
    r = _run(build / "leed_edit_image", export, face, ref, "one", tmp_path / "o.png")
    assert r.returncode == 1 and "ALPHA 'one' is not a number" in r.stderr
    small = tmp_path / "small.png"
    cv2.imwrite(str(small), np.zeros((64, 64, 3), np.uint8))
    r = _run(build / "leed_edit_image", export, small, ref, "1", tmp_path / "o.png")
    assert r.returncode == 1 and "crop is 64x64" in r.stderr
    r = _run(build / "leed_edit_video", export, tmp_path / "none.mp4", ref, "1", tmp_path / "o.mp4", "0", "0", "64")
    assert r.returncode == 1 and "cannot open it as a video" in r.stderr
    r = _run(build / "leed_edit_image", export)
    assert r.returncode == 2 and "usage:" in r.stderr
