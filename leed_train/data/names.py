"""What a dataset image is (`Sample`) and when its landmarks can align it, RaFD's vocabulary
and file-name format, shared by the synthetic renderer and the loaders.

`Rafd{angle}_{id:02d}_{ethnicity}_{gender}_{expression}_{gaze}.jpg`, e.g.
`Rafd090_07_Caucasian_female_happy_frontal.jpg`. Angle 090 is the frontal camera; 045 and
135 are the +-45 degree cameras, 000 and 180 the profiles.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from leed_runtime.image import IMAGE_SUFFIXES

EXPRESSIONS = ("angry", "contemptuous", "disgusted", "fearful", "happy", "neutral", "sad", "surprised")
GAZES = ("frontal", "left", "right")
ANGLES = ("000", "045", "090", "135", "180")
ETHNICITIES = ("Caucasian", "Moroccan", "Kid")
GENDERS = ("female", "male")
FORMATS = ("auto", "rafd", "faces-tw", "cfeed", "folder")  # dataset layouts `leed-train` reads
LANDMARKS_FILE = "landmarks.csv"  # DATA/landmarks.csv: five points per image, any layout
MIN_LANDMARK_SPREAD = 2.0  # pixels: five points closer than this to their centre align nothing


@dataclass(eq=False)
class Sample:
    """One image: its path (DATA joined with the relative path), subject id and known labels.

    Compared by identity (`eq=False`): landmark arrays make field-wise `==` ambiguous.
    """

    path: Path
    subject: str
    neutral: bool | None = None
    expression: str | None = None
    angle: str | None = None
    gaze: str | None = None
    landmarks: np.ndarray | None = None  # 5x2 float pixel coords, MTCNN order


def landmarks_problem(points: np.ndarray, width: int, height: int) -> str | None:
    """Why five landmarks cannot align a face in a `width` x `height` image, or None: not
    finite, (nearly) all at one place, or far outside the image (their centre outside it, or a
    point more than half the image beyond its edge). The alignment would crop nothing useful."""
    pts = np.asarray(points, dtype=np.float64).reshape(5, 2)
    if not np.isfinite(pts).all():
        return "landmarks are not finite"
    centre = pts.mean(0)
    if np.linalg.norm(pts - centre, axis=1).max() < MIN_LANDMARK_SPREAD:
        return f"the five landmarks are (nearly) one point, at {centre[0]:g},{centre[1]:g}"
    size = np.array([width, height], dtype=np.float64)
    if (centre < 0).any() or (centre > size).any() or (pts < -size / 2).any() or (pts > size * 1.5).any():
        corner = pts[int(np.argmax(np.abs(pts - size / 2).max(1)))]
        return f"landmarks lie far outside the {width}x{height} image (e.g. at {corner[0]:g},{corner[1]:g})"
    return None


_RAFD_RE = re.compile(
    r"^Rafd(?P<angle>\d{3})_(?P<subject>\d+)_(?P<ethnicity>[A-Za-z]+)_(?P<gender>[A-Za-z]+)_"
    r"(?P<expression>[a-z]+)_(?P<gaze>[a-z]+)\.(?P<ext>[A-Za-z]+)$"
)


@dataclass(frozen=True)
class RafdName:
    angle: str
    subject: int
    ethnicity: str
    gender: str
    expression: str
    gaze: str

    @property
    def neutral(self) -> bool:
        return self.expression == "neutral"

    def filename(self, ext: str = ".jpg") -> str:
        return format_rafd_name(self.angle, self.subject, self.ethnicity, self.gender, self.expression, self.gaze, ext)


def format_rafd_name(
    angle: str, subject: int, ethnicity: str, gender: str, expression: str, gaze: str, ext: str = ".jpg"
) -> str:
    """Build a RaFD file name; raises ValueError on a field outside RaFD's vocabulary."""
    name = RafdName(str(angle).zfill(3), int(subject), ethnicity, gender, expression, gaze)
    _validate(name)
    return f"Rafd{name.angle}_{name.subject:02d}_{ethnicity}_{gender}_{expression}_{gaze}{ext}"


def parse_rafd_name(filename: str) -> RafdName:
    """Parse a RaFD file name (no directory); raises ValueError saying which field is wrong."""
    m = _RAFD_RE.match(filename)
    if m is None:
        raise ValueError(f"{filename!r} is not a RaFD name like Rafd090_07_Caucasian_female_happy_frontal.jpg")
    if "." + m["ext"].lower() not in IMAGE_SUFFIXES:
        raise ValueError(f"{filename!r}: .{m['ext']} is not an image suffix ({', '.join(IMAGE_SUFFIXES)})")
    name = RafdName(m["angle"], int(m["subject"]), m["ethnicity"], m["gender"], m["expression"], m["gaze"])
    _validate(name, filename)
    return name


def _validate(name: RafdName, filename: str | None = None) -> None:
    where = f"{filename!r}: " if filename else ""
    for field, value, allowed in (
        ("angle", name.angle, ANGLES),
        ("ethnicity", name.ethnicity, ETHNICITIES),
        ("gender", name.gender, GENDERS),
        ("expression", name.expression, EXPRESSIONS),
        ("gaze", name.gaze, GAZES),
    ):
        if value not in allowed:
            raise ValueError(f"{where}{field} {value!r} is not one of {', '.join(allowed)}")
    if name.subject < 0:
        raise ValueError(f"{where}subject {name.subject} is negative")
