"""Dataset index: which images, whose face, which labels; subject-disjoint splits.

`scan(DATA)` lists the images of a folder, detects its layout (RaFD, faces-tw, CFEED or a
plain folder, see those modules), attaches five landmarks from `DATA/landmarks.csv` when
that file exists (any format) or from the MTCNN detector (`landmarks.py`, cached), and
returns a `DatasetIndex`. `check.py` decodes every image, `cache.py` crops them.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from leed_runtime.atomic import atomic_write
from leed_runtime.errors import LeedError
from leed_runtime.face.align import LANDMARK_COLUMNS
from leed_train.data import cfeed, facestw, folder, rafd
from leed_train.data.landmarks import detect_missing_landmarks
from leed_train.data.names import FORMATS, IMAGE_SUFFIXES, LANDMARKS_FILE, Sample

SPLIT_VERSION = 1


@dataclass
class DatasetIndex:
    """The images of one dataset folder and the problems met while reading it; `ignored` are
    those that name an image file it left out and why (a name its layout cannot read, e.g. a
    `Rafd*` name with a bad field)."""

    root: Path
    format: str
    samples: list[Sample]
    problems: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def subjects(self) -> list[str]:
        """Distinct subject ids, sorted."""
        return sorted({s.subject for s in self.samples})

    def counts(self, attribute: str) -> dict[str, int]:
        """Images per value of a Sample attribute (`subject`, `expression`, `angle`, `gaze`, `neutral`)."""
        return dict(sorted(Counter(str(getattr(s, attribute)) for s in self.samples).items()))

    def ignored_note(self, shown: int = 3) -> str:
        """`N image files ignored (bad names, e.g. A, B, C; ...)` for a start line; "" when none is."""
        if not self.ignored:
            return ""
        names = ", ".join(Path(p.split(": ", 1)[0]).name for p in self.ignored[:shown])
        more = ", ..." if len(self.ignored) > shown else ""
        return (
            f"{len(self.ignored)} image file(s) ignored (their names do not parse as {self.format}, e.g. "
            f"{names}{more}; `leed-train {self.root} --check` lists them)"
        )


def list_images(root: Path) -> list[Path]:
    """Image files under `root` (recursive, hidden files and folders skipped), relative and sorted."""
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if not name.startswith(".") and Path(name).suffix.lower() in IMAGE_SUFFIXES:
                files.append((Path(dirpath) / name).relative_to(root))
    return sorted(files, key=lambda p: p.as_posix())


def scan(
    root: str | Path,
    fmt: str = "auto",
    angles: tuple[str, ...] = (),
    gazes: tuple[str, ...] = (),
    detect: bool = True,
) -> DatasetIndex:
    """Index the images of `root`; `fmt` is auto | rafd | faces-tw | cfeed | folder.

    Landmarks come from `root/landmarks.csv`; with `detect`, images it does not cover get
    theirs from the MTCNN detector the runtime uses (`landmarks.py`, cached), so training crops
    are aligned exactly as `leed-run` aligns a face.

    `angles` and `gazes` filter RaFD images (e.g. ("045", "090", "135"), ("frontal",)).
    Raises LeedError on a missing, unreadable or empty folder, or when nothing is left.
    """
    root = Path(root)
    if fmt not in FORMATS:
        raise LeedError(f"--format {fmt!r} is unknown; choose one of {', '.join(FORMATS)}")
    if not root.exists():
        raise LeedError(f"{root}: folder not found; give the dataset folder, e.g. `leed-train data/synth --check`")
    if not root.is_dir():
        raise LeedError(f"{root}: is a file, not a folder; give the folder that holds the images")
    if not os.access(root, os.R_OK | os.X_OK):
        raise LeedError(f"{root}: cannot read this folder (permission denied); fix its permissions")
    files = list_images(root)
    if not files:
        raise LeedError(
            f"{root}: no images found (looked for {', '.join(IMAGE_SUFFIXES)} in all subfolders); "
            "put the dataset's images there or render some with `leed-synth faces`"
        )
    if fmt == "auto":
        fmt = (
            "rafd"
            if rafd.looks_like(files)
            else "faces-tw"
            if facestw.looks_like(files)
            else "cfeed"
            if cfeed.detect(files)
            else "folder"
        )
    if fmt != "rafd" and (angles or gazes):
        raise LeedError(
            f"{root}: --angles/--gazes only apply to RaFD file names, but this is a {fmt} dataset; drop them"
        )
    if fmt == "rafd":
        samples, problems = rafd.samples(root, files, angles, gazes)
    elif fmt == "faces-tw":
        samples, problems = facestw.samples(root, files)
    elif fmt == "cfeed":
        samples, problems = cfeed.samples(root, files)
    else:
        samples, problems = folder.samples(root, files)
    if not samples:
        why = "after the --angles/--gazes filter" if angles or gazes else f"as a {fmt} dataset"
        first = f" (first problem: {problems[0]})" if problems else ""
        raise LeedError(f"{root}: no usable image {why}{first}; run `leed-train {root} --check`")
    listed = {f.as_posix() for f in files}
    ignored = [p for p in problems if p.split(": ", 1)[0] in listed]  # the layout's word on a file it left out
    problems += _attach_landmarks(root, samples)
    if detect:
        problems += detect_missing_landmarks(samples)
    return DatasetIndex(root, fmt, samples, problems, ignored)


def load_landmarks(root: Path) -> dict[str, np.ndarray]:
    """`root/landmarks.csv` as {relative posix path: 5x2 float64}; {} when the file is absent."""
    path = root / LANDMARKS_FILE
    if not path.is_file():
        return {}
    out = {}
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in ("filename", *LANDMARK_COLUMNS) if c not in (reader.fieldnames or [])]
            if missing:
                raise LeedError(
                    f"{path}: missing column(s) {', '.join(missing)}; the header must be "
                    f"filename,{','.join(LANDMARK_COLUMNS)}"
                )
            for line, row in enumerate(reader, start=2):
                try:
                    points = np.array([float(row[c]) for c in LANDMARK_COLUMNS], dtype=np.float64).reshape(5, 2)
                except (TypeError, ValueError):
                    raise LeedError(f"{path}: line {line} has a non-numeric landmark; fix or delete that row") from None
                if not np.isfinite(points).all():
                    raise LeedError(f"{path}: line {line} has a non-finite landmark; fix or delete that row")
                out[Path(row["filename"]).as_posix()] = points
    except OSError as exc:
        raise LeedError(f"{path}: cannot read ({exc.strerror}); fix its permissions or delete it") from None
    return out


def _attach_landmarks(root: Path, samples: list[Sample]) -> list[str]:
    table = load_landmarks(root)
    if not table:
        return []
    used = 0
    for s in samples:
        s.landmarks = table.get(s.path.relative_to(root).as_posix())
        used += s.landmarks is not None
    unused = len(table) - used
    return [f"{LANDMARKS_FILE}: {unused} row(s) name images that are not in the dataset"] if unused > 0 else []


def split_by_subject(
    samples: list[Sample], val_fraction: float = 0.1, seed: int = 0
) -> tuple[list[Sample], list[Sample]]:
    """Deterministic subject-disjoint (train, val) split.

    Subjects are ordered by a hash of (seed, subject), so the split does not depend on the
    sample order; with >= 2 subjects and val_fraction > 0 at least one subject is held out.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    subjects = sorted({s.subject for s in samples})
    subjects.sort(key=lambda subj: hashlib.sha256(f"{seed}:{subj}".encode()).hexdigest())
    n_val = round(val_fraction * len(subjects))
    if val_fraction > 0 and len(subjects) >= 2:
        n_val = min(max(n_val, 1), len(subjects) - 1)
    held_out = set(subjects[:n_val])
    return [s for s in samples if s.subject not in held_out], [s for s in samples if s.subject in held_out]


def _sample_to_json(s: Sample, root: Path) -> dict:
    return {
        "path": s.path.relative_to(root).as_posix(),
        "subject": s.subject,
        "neutral": s.neutral,
        "expression": s.expression,
        "angle": s.angle,
        "gaze": s.gaze,
        "landmarks": None if s.landmarks is None else np.asarray(s.landmarks).tolist(),
    }


def _sample_from_json(d: dict, root: Path) -> Sample:
    landmarks = None if d["landmarks"] is None else np.asarray(d["landmarks"], dtype=np.float64).reshape(5, 2)
    return Sample(root / d["path"], d["subject"], d["neutral"], d["expression"], d["angle"], d["gaze"], landmarks)


def save_split(path: str | Path, train: list[Sample], val: list[Sample], root: str | Path) -> None:
    """Save a split as JSON with paths relative to `root` (atomic write)."""
    root = Path(root)
    doc = {
        "version": SPLIT_VERSION,
        "train": [_sample_to_json(s, root) for s in train],
        "val": [_sample_to_json(s, root) for s in val],
    }
    data = (json.dumps(doc, indent=1) + "\n").encode()
    atomic_write(Path(path), lambda fh: fh.write(data))


def load_split(path: str | Path, root: str | Path) -> tuple[list[Sample], list[Sample]]:
    """Read a split written by `save_split`, joining its paths to `root`."""
    path, root = Path(path), Path(root)
    try:
        doc = json.loads(path.read_text())
        train = [_sample_from_json(d, root) for d in doc["train"]]
        val = [_sample_from_json(d, root) for d in doc["val"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise LeedError(f"{path}: not a readable split file ({exc}); delete it to split the dataset again") from None
    missing = [s.path for s in train + val if not s.path.is_file()]
    if missing:
        raise LeedError(
            f"{path}: {len(missing)} image(s) of the split are gone from {root} (e.g. {missing[0]}); "
            "delete the split file to split the dataset again"
        )
    return train, val
