"""Real-face measures for the model card, on dlib's CC0 models (the optional `[eval]` extra).

The models come from the PyPI package `face-recognition-models` (0.3.0):
`dlib_face_recognition_resnet_model_v1.dat`, a 128-D face descriptor (99.38% on LFW; two
faces are the same person when the Euclidean distance of their descriptors is below 0.6),
and `shape_predictor_68_face_landmarks.dat` (the iBUG 300-W 68 points). dlib is imported
lazily, inside the functions that need it: it is a heavy optional dependency.

Every measure works on uint8 RGB face crops as leed makes them (`leed_runtime.face.align`:
128x128, the 5-point template, frontal, the face filling most of the crop). dlib's face
detector often misses faces that tight, so nothing here detects: the shape predictor gets a
fixed rectangle (`FACE_RECT`, the box dlib's detector draws around a face aligned to leed's
template, measured on faces-tw) and the descriptor is computed on dlib's own aligned chip of
those landmarks (`get_face_chip`, 150 px, padding 0.25), as the `face_recognition` package
does. For other framings pass `rect=` to `FaceMeasures`.

- `FaceMeasures.landmarks(img)` -> (68, 2) pixels, x then y;
- `FaceMeasures.descriptor(img)` -> (128,); `same_person(a, b)` -> their distance (< 0.6: same);
- `geometry(points68)` -> expression geometry in units of the inter-ocular distance;
- `FaceMeasures.toward(input, edited, target)` -> does the edit move that geometry toward
  the subject's own photo of the target expression;
- `laplacian_ratio(edited, reference)` -> sharpness of the edit relative to its input (no dlib).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from leed_runtime.errors import LeedError
from leed_runtime.face.align import CROP_SIZE, crop_face
from leed_runtime.face.paste import feather_mask

DLIB_MISSING = "dlib is not installed: pip install 'leed[eval]' (compiles dlib, ~15 min)"
MODELS_MISSING = "face-recognition-models is not installed: pip install 'leed[eval]'"
SHAPE_MODEL = "shape_predictor_68_face_landmarks.dat"
DESCRIPTOR_MODEL = "dlib_face_recognition_resnet_model_v1.dat"
# dlib's threshold for the descriptor's Euclidean distance (set on LFW). On faces-tw (25 Taiwanese
# people, 1050 aligned 128 crops) it accepts 99.99% of same-person pairs but rejects only 42.5%
# of different-person pairs; there the equal-error threshold is 0.45 (94.7% / 94.7%).
SAME_PERSON_THRESHOLD = 0.6
CHIP_SIZE, CHIP_PADDING = 150, 0.25  # the descriptor's input chip (dlib's and face_recognition's)

# The face rectangle (left, top, right, bottom) as fractions of the crop's width and height:
# the median box of dlib's frontal detector (the kind of box the shape predictor was trained
# on) over the 1050 faces-tw photos, mapped into leed's template crop by each photo's 5-point
# alignment (per-photo spread: 0.03 of the crop on each side).
FACE_RECT = (0.21, 0.31, 0.795, 0.895)

GEOMETRY_NAMES = ("mouth_open", "mouth_width", "corner_lift", "brow_raise", "brow_inner", "eye_open")

# iBUG 68-point indices ("first" = smaller x in a frontal image, the subject's right side).
_BROWS = (range(17, 22), range(22, 27))
_EYES = (range(36, 42), range(42, 48))
_EYE_LIDS = (((37, 41), (38, 40)), ((43, 47), (44, 46)))  # upper lid point, lower lid point
_INNER_LIPS = ((61, 67), (62, 66), (63, 65))  # upper inner lip, lower inner lip
_MOUTH_CORNERS = (48, 54)


def _dlib() -> Any:
    try:
        import dlib
    except ImportError:
        raise LeedError(DLIB_MISSING) from None
    return dlib


def model_paths() -> tuple[Path, Path]:
    """(shape predictor, descriptor) files of the installed `face-recognition-models`.

    The package is located, not imported: its `__init__` needs `pkg_resources`, which recent
    setuptools no longer ship."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise LeedError(MODELS_MISSING)
    folder = Path(next(iter(spec.submodule_search_locations))) / "models"
    paths = (folder / SHAPE_MODEL, folder / DESCRIPTOR_MODEL)
    for path in paths:
        if not path.is_file():
            raise LeedError(f"{path}: model file missing; reinstall face-recognition-models (pip install 'leed[eval]')")
    return paths


def _rgb(img: np.ndarray) -> np.ndarray:
    img = np.asarray(img)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise LeedError(f"expected a uint8 RGB image (HxWx3), got {img.dtype} of shape {img.shape}")
    return np.ascontiguousarray(img)


def _face_frame(points: np.ndarray) -> tuple[np.ndarray, float]:
    """The 68 points in the face's own frame: origin between the eye centres, x along the eye
    line, y down, one unit = the inter-ocular distance (removes position, roll and scale)."""
    eyes = np.array([points[list(r)].mean(0) for r in _EYES])
    axis = eyes[1] - eyes[0]
    iod = float(np.hypot(*axis))
    if not np.isfinite(iod) or iod <= 0:
        raise LeedError("degenerate landmarks: the two eye centres coincide")
    c, s = axis / iod
    rot = np.array([[c, s], [-s, c]])  # rotates the eye line onto +x
    return (points - eyes.mean(0)) @ rot.T / iod, iod


def geometry(landmarks68: np.ndarray) -> dict[str, float]:
    """Expression geometry of 68 iBUG landmarks, in inter-ocular distances (eye centre to eye
    centre), measured after rotating the eye line level:

    - `mouth_open`: inner-lip gap (mean of the three upper/lower inner-lip point pairs);
    - `mouth_width`: corner to corner (outer lip corners 48-54);
    - `corner_lift`: height of the lip corners above the mouth centre (mean of the six inner-lip
      points between the corners); > 0 corners up (smile), < 0 corners down (frown);
    - `brow_raise`: height of each brow's mean point above its eye's centre, mean of both sides;
    - `brow_inner`: distance between the inner brow ends (17-21's 21 and 22-26's 22; frowning
      pulls them together);
    - `eye_open`: lid-to-lid opening (two upper/lower lid pairs per eye), mean of both eyes.
    """
    pts = np.asarray(landmarks68, dtype=np.float64)
    if pts.shape != (68, 2):
        raise LeedError(f"expected 68 landmarks (68x2), got shape {pts.shape}")
    p, _ = _face_frame(pts)

    def dist(i: int, j: int) -> float:
        return float(np.hypot(*(p[i] - p[j])))

    centre_y = p[[61, 62, 63, 65, 66, 67], 1].mean()
    return {
        "mouth_open": float(np.mean([dist(i, j) for i, j in _INNER_LIPS])),
        "mouth_width": dist(*_MOUTH_CORNERS),
        "corner_lift": float(centre_y - p[list(_MOUTH_CORNERS), 1].mean()),
        "brow_raise": float(
            np.mean([p[list(e), 1].mean() - p[list(b), 1].mean() for b, e in zip(_BROWS, _EYES, strict=True)])
        ),
        "brow_inner": dist(21, 22),
        "eye_open": float(np.mean([dist(i, j) for lids in _EYE_LIDS for i, j in lids])),
    }


def geometry_vector(g: dict[str, float]) -> np.ndarray:
    """A geometry dict as a vector in `GEOMETRY_NAMES` order."""
    return np.array([g[name] for name in GEOMETRY_NAMES], dtype=np.float64)


def feature_std(geometries: Sequence[dict[str, float]], groups: Sequence[Any] | None = None) -> np.ndarray:
    """Per-feature standard deviation (`GEOMETRY_NAMES` order) over a calibration set.

    With `groups` (one person id per geometry) it is the within-person std: each feature minus
    its person's mean, pooled. That scales each feature by how much expressions move it in one
    face, without the spread between faces (mouth width, brow height differ a lot between
    people and would otherwise shrink). Without groups it is the plain std over the set."""
    x = np.array([geometry_vector(g) for g in geometries])
    if len(x) < 2:
        raise LeedError(f"need at least 2 calibration faces for a feature std, got {len(x)}")
    if groups is not None:
        keys = list(groups)
        if len(keys) != len(x):
            raise LeedError(f"{len(keys)} groups for {len(x)} calibration faces")
        for key in set(keys):
            rows = [i for i, k in enumerate(keys) if k == key]
            x[rows] -= x[rows].mean(0)
        dof = len(x) - len(set(keys))
        std = np.sqrt((x**2).sum(0) / max(dof, 1))
    else:
        std = x.std(0, ddof=1)
    if not np.all(std > 0):
        raise LeedError("calibration faces do not vary in every geometry feature; give more varied faces")
    return std


@dataclass(frozen=True)
class Toward:
    """`toward`'s answer: standardised geometry distances of the input and of the edit to the
    target; `moved` (also the truth value) when the edit is strictly closer than the input."""

    d_input: float
    d_edited: float

    @property
    def moved(self) -> bool:
        return self.d_edited < self.d_input

    @property
    def score(self) -> float:
        """Fraction of the input's distance to the target that the edit removed (1: reached
        the target, 0: no progress, < 0: moved away); 0 when the input already is the target."""
        return 1.0 - self.d_edited / self.d_input if self.d_input > 0 else 0.0

    def __bool__(self) -> bool:
        return self.moved


def face_region(height: int, width: int) -> np.ndarray:
    """Boolean (height, width) mask of the face in a leed crop: the face outline of the crop
    template's landmarks that `paste_back` blends (`feather_mask` > 0.5), stretched to the image size."""
    mask = feather_mask(CROP_SIZE)
    if (height, width) != mask.shape:
        mask = cv2.resize(mask, (width, height), interpolation=cv2.INTER_LINEAR)
    return mask > 0.5


def laplacian_ratio(edited: np.ndarray, reference: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Variance of the Laplacian (OpenCV's 3x3, on grayscale) of `edited` over that of
    `reference` (the input face), both inside the face region (`face_region` unless a boolean
    `mask` is given). < 1: the edit is smoother (blurrier) than its input; nan when the
    reference is flat. The Laplacian is taken on the whole image, then only the face's pixels
    are used, so the region's edge adds nothing."""
    a, b = _rgb(edited), _rgb(reference)
    if a.shape != b.shape:
        raise LeedError(f"edited {a.shape} and reference {b.shape} differ in size")
    region = face_region(*a.shape[:2]) if mask is None else np.asarray(mask, dtype=bool)

    def lap_var(img: np.ndarray) -> float:
        gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float64)
        return float(cv2.Laplacian(gray, cv2.CV_64F)[region].var())

    ref = lap_var(b)
    return lap_var(a) / ref if ref > 0 else float("nan")


class FaceMeasures:
    """dlib's 68-point shape predictor and 128-D face descriptor, loaded once.

    `rect`: the face rectangle (left, top, right, bottom) as fractions of the image's width
    and height; the default fits leed's aligned crops. `feature_std`: the geometry scale
    `toward` uses (see `calibrate`)."""

    def __init__(
        self,
        shape_model: Path | str | None = None,
        descriptor_model: Path | str | None = None,
        rect: tuple[float, float, float, float] = FACE_RECT,
        feature_std: np.ndarray | None = None,
    ) -> None:
        self._dlib = _dlib()
        if shape_model is None or descriptor_model is None:
            default_shape, default_descriptor = model_paths()
            shape_model = shape_model or default_shape
            descriptor_model = descriptor_model or default_descriptor
        for path in (shape_model, descriptor_model):
            if not Path(path).is_file():
                raise LeedError(f"{path}: dlib model file not found")
        self._predictor = self._dlib.shape_predictor(str(shape_model))
        self._encoder = self._dlib.face_recognition_model_v1(str(descriptor_model))
        self.rect = tuple(float(v) for v in rect)
        self._detector: Any = None  # dlib's HOG face detector, loaded by `crop` on first use
        self.feature_std = None if feature_std is None else np.asarray(feature_std, dtype=np.float64)

    geometry = staticmethod(geometry)
    laplacian_ratio = staticmethod(laplacian_ratio)

    def _shape(self, img: np.ndarray) -> tuple[np.ndarray, Any]:
        img = _rgb(img)
        h, w = img.shape[:2]
        left, top, right, bottom = self.rect
        box = self._dlib.rectangle(round(left * w), round(top * h), round(right * w) - 1, round(bottom * h) - 1)
        return img, self._predictor(img, box)

    def landmarks(self, img: np.ndarray) -> np.ndarray:
        """(68, 2) float64 landmark pixels (x, y) of a uint8 RGB face crop."""
        _, shape = self._shape(img)
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)

    def descriptor(self, img: np.ndarray) -> np.ndarray:
        """(128,) float64 face descriptor of a uint8 RGB face crop (on dlib's aligned chip)."""
        img, shape = self._shape(img)
        chip = self._dlib.get_face_chip(img, shape, size=CHIP_SIZE, padding=CHIP_PADDING)
        return np.asarray(self._encoder.compute_face_descriptor(chip), dtype=np.float64)

    def crop(self, photo: np.ndarray, size: int = CROP_SIZE) -> np.ndarray | None:
        """leed's aligned `size` x `size` crop of the largest face in a full uint8 RGB photo, or
        None when dlib's frontal (HOG) detector finds none. The five alignment points come from
        the 68 landmarks (eye centres, nose tip 30, mouth corners 48 and 54), in the order
        `leed_runtime.face.align` expects. For preparing real photos (references, test faces);
        the measures themselves never detect."""
        photo = _rgb(photo)
        if self._detector is None:
            self._detector = self._dlib.get_frontal_face_detector()
        faces = list(self._detector(photo, 0)) or list(self._detector(photo, 1))
        if not faces:
            return None
        shape = self._predictor(photo, max(faces, key=lambda r: r.area()))
        p = np.array([(q.x, q.y) for q in shape.parts()], dtype=np.float64)
        five = np.array([p[36:42].mean(0), p[42:48].mean(0), p[30], p[48], p[54]])
        return crop_face(photo, five, size)[0]

    def same_person(self, a: np.ndarray, b: np.ndarray) -> float:
        """Descriptor distance of two face crops (or of two (128,) descriptors); below
        `SAME_PERSON_THRESHOLD` (0.6) dlib calls them the same person."""
        da = a if np.shape(a) == (128,) else self.descriptor(a)
        db = b if np.shape(b) == (128,) else self.descriptor(b)
        return float(np.linalg.norm(np.asarray(da, np.float64) - np.asarray(db, np.float64)))

    def _geometry_of(self, face: np.ndarray | dict[str, float]) -> dict[str, float]:
        if isinstance(face, dict):
            return face
        face = np.asarray(face)
        return geometry(face) if face.shape == (68, 2) else geometry(self.landmarks(face))

    def calibrate(
        self, faces: Sequence[np.ndarray | dict[str, float]], groups: Sequence[Any] | None = None
    ) -> np.ndarray:
        """Set (and return) `feature_std` from calibration faces (crops, 68x2 landmarks or
        geometry dicts): the within-person std when `groups` gives each face's person id, else
        the plain std (see `feature_std`). Calibrate on real photos of several people and
        expressions (not on the edits being judged), and keep it fixed across the models compared."""
        self.feature_std = feature_std([self._geometry_of(f) for f in faces], groups)
        return self.feature_std

    def toward(
        self,
        input_img: np.ndarray | dict[str, float],
        edited_img: np.ndarray | dict[str, float],
        target_img: np.ndarray | dict[str, float],
        feature_std: np.ndarray | None = None,
    ) -> Toward:
        """Does the edit move the expression geometry toward the same person's own photo of the
        target expression: Euclidean distance of standardised geometry vectors (each feature
        divided by `feature_std`, given here or set by `calibrate`), `d(edited, target) <
        d(input, target)`. Each argument is a crop, its 68 landmarks or its geometry dict.
        Truthy when it moved closer; `.score` says by how much."""
        std = self.feature_std if feature_std is None else np.asarray(feature_std, dtype=np.float64)
        if std is None:
            raise LeedError("toward needs a geometry scale: call calibrate(faces) or pass feature_std")
        x, e, t = (geometry_vector(self._geometry_of(f)) / std for f in (input_img, edited_img, target_img))
        return Toward(d_input=float(np.linalg.norm(x - t)), d_edited=float(np.linalg.norm(e - t)))
