"""MTCNN: shipped weights, ONNX export parity, and the torch-free numpy pipeline on
synthetic faces and real photos (skimage's astronaut, cameraman, cat)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from leed_export.detector import NETS, OUTPUTS, WEIGHTS, export_detector, load_mtcnn
from leed_runtime.errors import LeedError
from leed_runtime.face.align import LANDMARK_COLUMNS
from leed_runtime.face.detect import Face, MTCNNDetector, nms
from leed_runtime.manifest import Manifest, read_manifest

SYNTH_SIZE = 256


@pytest.fixture(scope="module")
def detector_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An export folder holding only the detector graphs and their manifest."""
    out = tmp_path_factory.mktemp("export")
    artifacts = export_detector(out)
    Manifest(
        leed_version="test", created="test", preset="none", source={}, image={}, code={}, artifacts=artifacts
    ).save(out)
    return out


@pytest.fixture(scope="module")
def detector(detector_dir: Path) -> MTCNNDetector:
    with MTCNNDetector(detector_dir, read_manifest(detector_dir)) as det:
        yield det


@pytest.fixture(scope="module")
def synth_256(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 identities x 3 camera angles x 8 expressions x 3 gazes at 256 px (216 images)."""
    from leed_train.data.synth import render_faces

    out = tmp_path_factory.mktemp("synth256") / "faces"
    render_faces(out, identities=3, size=SYNTH_SIZE, angles=("045", "090", "135"), workers=1)
    return out


def test_weights_load_strictly() -> None:
    tensors = load_file(str(WEIGHTS))
    expected = {f"{name}.{key}" for name, cls in NETS.items() for key in cls().state_dict()}
    assert set(tensors) == expected
    nets = load_mtcnn()
    assert set(nets) == {"pnet", "rnet", "onet"} and not any(n.training for n in nets.values())
    with pytest.raises(LeedError, match="MTCNN weights missing"):
        load_mtcnn(Path("/nonexistent/mtcnn.safetensors"))


def test_torch_output_shapes() -> None:
    nets = load_mtcnn()
    with torch.no_grad():
        prob, reg = nets["pnet"](torch.zeros(2, 3, 61, 83))
        assert prob.shape == (2, 2, 26, 37) and reg.shape == (2, 4, 26, 37)
        assert torch.allclose(prob.sum(1), torch.ones(2, 26, 37))
        assert [t.shape for t in nets["rnet"](torch.zeros(5, 3, 24, 24))] == [(5, 2), (5, 4)]
        assert [t.shape for t in nets["onet"](torch.zeros(5, 3, 48, 48))] == [(5, 2), (5, 4), (5, 10)]


def test_onnx_export_parity(detector_dir: Path) -> None:
    import onnx

    manifest = read_manifest(detector_dir)
    for name in NETS:
        art = manifest.artifact(name)
        assert art.file == f"detector/{name}.onnx" and art.format == "onnx" and art.opset == 18
        assert art.parity["max_abs"] < 1e-4, (name, art.parity)
        model = onnx.load(str(detector_dir / art.file))
        assert [i.name for i in model.graph.input] == ["image"]
        assert tuple(o.name for o in model.graph.output) == OUTPUTS[name]
        assert not (detector_dir / f"{art.file}.data").exists()
    dims = onnx.load(str(detector_dir / "detector/pnet.onnx")).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["batch", 3, "height", "width"]


def test_nms() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 4, 4]], dtype=np.float32)
    scores = np.array([0.9, 0.8, 0.7, 0.95], dtype=np.float32)
    assert nms(boxes, scores, 0.5).tolist() == [3, 0, 2]  # IoU(0, 1) = 0.68; box 3 overlaps 0 by 0.16
    assert nms(boxes, scores, 0.5, method="min").tolist() == [3, 2]  # box 3 lies inside 0 (overlap 1) and 64% inside 1
    assert nms(np.zeros((0, 4)), np.zeros(0), 0.5).size == 0


def _truth(folder: Path) -> dict[str, np.ndarray]:
    with open(folder / "landmarks.csv", newline="") as f:
        return {
            row["filename"]: np.array([float(row[c]) for c in LANDMARK_COLUMNS]).reshape(5, 2)
            for row in csv.DictReader(f)
        }


def test_synthetic_faces(detector: MTCNNDetector, synth_256: Path) -> None:
    """Frontal camera: one face per image, eyes and nose within 10 px at 256 px, all five
    points within 8 px on average for >= 90% of images (open "surprised" mouths are labelled
    at the upper lip, MTCNN puts their corners lower). The 45/135-degree views are out of
    MTCNN's training range (cartoon faces turned ~60 degrees): some are missed, none is
    doubled, and a detection's box holds the centre of the true landmarks."""
    import cv2

    errors: dict[str, list[np.ndarray | None]] = {"045": [], "090": [], "135": []}
    for name, truth in _truth(synth_256).items():
        image = cv2.cvtColor(cv2.imread(str(synth_256 / name)), cv2.COLOR_BGR2RGB)
        faces = detector.detect(image)
        assert len(faces) <= 1, (name, faces)
        if faces:
            box, centre = faces[0].box, truth.mean(0)
            assert (box[:2] < centre).all() and (centre < box[2:]).all(), (name, box, truth)
        errors[name[4:7]].append(np.linalg.norm(faces[0].landmarks - truth, axis=1) if faces else None)
    assert all(e is not None for e in errors["090"]), "a frontal synthetic face was missed"
    frontal = np.stack(errors["090"])
    assert frontal[:, :3].max() < 10.0, f"eye/nose error up to {frontal[:, :3].max():.1f} px"
    assert (frontal.mean(1) < 8.0).mean() >= 0.9, f"mean errors {np.sort(frontal.mean(1)).round(1)}"
    turned = [e is not None for e in errors["045"] + errors["135"]]
    assert np.mean(turned) > 0.5, f"only {np.mean(turned):.0%} of the turned faces found"


def _check_astronaut(face: Face) -> None:
    """Eyes level and apart by a plausible distance, above the nose, above the mouth."""
    left_eye, right_eye, nose, mouth_left, mouth_right = face.landmarks
    box_w = face.box[2] - face.box[0]
    assert face.score > 0.99
    assert left_eye[0] < right_eye[0] and abs(left_eye[1] - right_eye[1]) < 0.1 * box_w
    assert 0.3 * box_w < right_eye[0] - left_eye[0] < 0.7 * box_w
    assert max(left_eye[1], right_eye[1]) < nose[1] < min(mouth_left[1], mouth_right[1])
    assert left_eye[0] < nose[0] < right_eye[0] and mouth_left[0] < mouth_right[0]
    # The astronaut's eyes, read off the 512x512 image.
    assert np.linalg.norm(left_eye - (205, 102)) < 8 and np.linalg.norm(right_eye - (247, 104)) < 8


def test_real_photos(detector: MTCNNDetector) -> None:
    from skimage import data

    astronaut = data.astronaut()
    faces = detector.detect(astronaut)
    assert len(faces) == 1
    _check_astronaut(faces[0])
    # RGBA and grayscale inputs are converted.
    rgba = np.concatenate([astronaut, np.full(astronaut.shape[:2] + (1,), 255, np.uint8)], axis=2)
    assert np.allclose(detector.detect(rgba)[0].landmarks, faces[0].landmarks)
    camera = detector.detect(data.camera())  # grayscale, the cameraman's face seen from the side
    assert len(camera) == 1 and camera[0].score > 0.99
    # A cat, a coffee cup, a blank image and one too small for the pyramid: no face.
    assert detector.detect(data.chelsea()) == []
    assert detector.detect(data.coffee()) == []
    assert detector.detect(np.full((480, 640, 3), 128, np.uint8)) == []
    assert detector.detect(np.zeros((20, 20), np.uint8)) == []


def test_large_frame_and_border(detector: MTCNNDetector) -> None:
    """A 1280x720 frame; the same face cut by the left border (zero-padded crops)."""
    from skimage import data

    frame = np.full((720, 1280, 3), 90, np.uint8)
    frame[100:612, 400:912] = data.astronaut()
    faces = detector.detect(frame)
    assert len(faces) == 1
    _check_astronaut(Face(faces[0].box - (400, 100, 400, 100), faces[0].score, faces[0].landmarks - (400, 100)))
    cut = detector.detect(frame[:, 560:])  # the face box now starts about 20 px from the border
    assert len(cut) == 1
    assert np.abs(cut[0].landmarks - (faces[0].landmarks - (560, 0))).max() < 4


def test_bad_input(detector: MTCNNDetector, detector_dir: Path) -> None:
    with pytest.raises(LeedError, match="uint8"):
        detector.detect(np.zeros((64, 64, 3), np.float32))
    with pytest.raises(LeedError, match="shape"):
        detector.detect(np.zeros((64, 64, 2), np.uint8))
    with pytest.raises(LeedError, match="min_face"):
        MTCNNDetector(detector_dir, read_manifest(detector_dir), min_face=8)


def test_tracking_between_detections_follows_the_face(detector: MTCNNDetector, tmp_path: Path) -> None:
    """`track` (O-net on the last frame's boxes) lands where full detection does on a moving,
    turning synthetic head, so `leed-run --detect-every N` keeps the landmarks right."""
    import csv

    from leed_runtime.video import VideoReader
    from leed_train.data.synth import render_video

    clip = tmp_path / "clip.mp4"
    render_video(clip, identity=2, seconds=1.0, fps=30, size=(480, 320), seed=0, audio=False)
    rows = list(csv.DictReader(Path(str(clip) + ".landmarks.csv").read_text().splitlines()))
    previous, gaps, lost = [], [], 0
    for row, frame in zip(rows, VideoReader(clip), strict=True):
        truth = np.array([float(row[k]) for k in list(row)[1:]]).reshape(5, 2)
        eye = np.linalg.norm(truth[1] - truth[0])
        faces = detector.track(frame, previous) if previous else detector.detect(frame)
        if not faces:
            lost += 1
            faces = detector.detect(frame)
        assert len(faces) == 1
        gaps.append(np.linalg.norm(faces[0].landmarks[:3] - truth[:3], axis=1).max() / eye)
        previous = faces
    assert lost <= 2, lost
    assert np.median(gaps) < 0.15 and max(gaps) < 0.3, (np.median(gaps), max(gaps))
    assert detector.track(np.zeros((120, 160, 3), np.uint8), previous) == []
