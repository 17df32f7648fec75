"""What the paste changes: only the face, through a feathered mask built from the face's own
landmarks (the template ellipse put 13-20% of its weight outside the face box on
samples/real/talk.mp4: hair, ears, neck, shirt), and never more colour than the input had
(a black-and-white photo stays black and white)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from leed_runtime.face.align import apply_affine, crop_face, template
from leed_runtime.face.paste import face_mask, keep_colourfulness
from leed_runtime.image import read_image
from leed_runtime.pipeline import Editor
from leed_runtime.run import DEFAULT_MODEL
from leed_runtime.video import VideoReader

REAL = Path(__file__).resolve().parents[2] / "samples" / "real"


@pytest.fixture(scope="module")
def real_faces() -> list[np.ndarray]:
    """Frames 0, 60 and 120 of the real clip (neutral, puffed cheeks, smiling) and the two real
    references (wide eyes and open mouth): people the model never saw."""
    frames = [f for i, f in zip(range(121), VideoReader(REAL / "talk.mp4"), strict=False) if i in (0, 60, 120)]
    return frames + [read_image(REAL / "surprised.jpg"), read_image(REAL / "open.jpg")]


@pytest.fixture
def editor():  # noqa: ANN201 - an Editor on the shipped model, with the real surprised reference
    with Editor(DEFAULT_MODEL, backend="onnxruntime-cpu", smooth=False) as ed:
        ed.set_reference(read_image(REAL / "surprised.jpg"))
        yield ed


def _outside_box(weight: np.ndarray, box: np.ndarray) -> float:
    """Share of `weight` (H, W) outside the face box x1, y1, x2, y2."""
    x1, y1, x2, y2 = (int(round(float(v))) for v in box)
    inside = np.zeros(weight.shape, bool)
    inside[max(y1, 0) : y2, max(x1, 0) : x2] = True
    return float(weight[~inside].sum() / weight.sum())


def test_the_paste_mask_stays_on_the_face_of_real_people(editor: Editor, real_faces: list[np.ndarray]) -> None:
    for image in real_faces:
        face = editor.detector.detect(image)[0]
        _, m = crop_face(image, face.landmarks, 128)
        eyes, mouth = face.landmarks[:2].mean(0), face.landmarks[3:].mean(0)
        mask = face_mask(apply_affine(m, face.landmarks), 128)
        h, w = image.shape[:2]
        weight = cv2.warpAffine(mask, m, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
        assert _outside_box(weight, face.box) < 0.05  # the template ellipse: 0.13-0.20
        brows = eyes + 0.3 * (eyes - mouth)
        for x, y in [*face.landmarks, brows]:  # eyes, nose, mouth corners and brows are pasted whole
            assert weight[int(round(y)), int(round(x))] > 0.95


def test_an_edited_frame_changes_only_inside_the_face(editor: Editor, real_faces: list[np.ndarray]) -> None:
    frame = real_faces[0]
    box = editor.detector.detect(frame)[0].box
    change = np.abs(editor(frame.copy()).astype(float) - frame).sum(-1)
    assert change.sum() > 0 and _outside_box(change, box) < 0.05


def test_the_mask_follows_the_landmarks() -> None:
    points = template(128)
    mask = face_mask(points)
    assert mask.dtype == np.float32 and mask.shape == (128, 128) and mask.min() >= 0 and mask.max() <= 1
    assert mask[0].max() == mask[-1].max() == mask[:, 0].max() == mask[:, -1].max() == 0  # no seam
    shifted = face_mask(points + np.array([6.0, -4.0]))
    assert np.abs(shifted[20:100, 20:100] - np.roll(mask, (-4, 6), axis=(0, 1))[20:100, 20:100]).max() < 0.02
    centre = points.mean(0)
    turn = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), 30, 1.0)
    rotated = face_mask(apply_affine(turn, points))
    expected = cv2.warpAffine(mask, turn, (128, 128))
    assert np.abs(rotated - expected)[10:118, 10:118].mean() < 0.01
    wide = face_mask(points * np.array([1.3, 1.0]) - np.array([0.15 * 64, 0]))  # eyes further apart: a wider mask
    assert (wide > 0.5).sum(1).max() > (mask > 0.5).sum(1).max()


def test_the_edit_never_adds_colour() -> None:
    rng = np.random.default_rng(0)
    grey = np.repeat(rng.integers(40, 220, (64, 64, 1), dtype=np.uint8), 3, axis=2)
    coloured = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    mask = np.ones((64, 64), np.float32)
    out = keep_colourfulness(coloured, grey, mask)
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()  # exactly grey
    luma = cv2.cvtColor(coloured, cv2.COLOR_RGB2YCrCb)[..., 0]
    assert np.abs(out[..., 0].astype(int) - luma).max() <= 1  # its brightness kept

    def colourfulness(rgb: np.ndarray) -> float:
        c = cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb).astype(float)[..., 1:] - 128
        return float(np.hypot(c[..., 0], c[..., 1]).mean())

    pale = cv2.addWeighted(coloured, 0.3, grey, 0.7, 0)
    assert colourfulness(keep_colourfulness(coloured, pale, mask)) == pytest.approx(colourfulness(pale), rel=0.05)
    assert keep_colourfulness(pale, coloured, mask) is pale  # less colourful than its input: as it is


def test_a_black_and_white_photo_stays_black_and_white(editor: Editor) -> None:
    grey = cv2.cvtColor(cv2.cvtColor(read_image(REAL / "open.jpg"), cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
    out = editor(grey.copy())
    assert editor.faces == 1 and np.abs(out.astype(int) - grey).mean() > 0.5  # edited...
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()  # ...and still grey
