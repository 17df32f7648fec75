"""`leed-train DATA --check`: decode every image and report what training would see."""

from __future__ import annotations

import hashlib
import statistics
from collections import defaultdict
from pathlib import Path

from leed_runtime.errors import LeedError
from leed_runtime.image import decode_image
from leed_train.data.index import DatasetIndex, load_landmarks, scan, split_by_subject
from leed_train.data.names import LANDMARKS_FILE, Sample, landmarks_problem

NEED_LABELS = ("neutral", "none")
_SHOW = 10  # list at most this many files per finding


def check_dataset(
    root: str | Path,
    fmt: str = "auto",
    angles: tuple[str, ...] = (),
    gazes: tuple[str, ...] = (),
    need_labels: str = "neutral",
    val_fraction: float = 0.1,
    seed: int = 0,
) -> str:
    """A readable report on the dataset in `root`.

    Raises LeedError on an empty folder, a folder with no decodable image, or (with
    need_labels="neutral", what the neutralizer needs) a dataset without neutral and expressive images.
    """
    if need_labels not in NEED_LABELS:
        raise ValueError(f"need_labels must be one of {NEED_LABELS}, got {need_labels!r}")
    index = scan(root, fmt, angles, gazes)
    unreadable, sizes, by_hash, unusable = [], defaultdict(int), defaultdict(list), []
    for s in index.samples:
        try:
            data = s.path.read_bytes()
        except OSError:
            data = b""
        try:
            image = decode_image(data, str(s.path))
        except LeedError:
            unreadable.append(s)
            continue
        sizes[f"{image.shape[1]}x{image.shape[0]}"] += 1
        by_hash[hashlib.sha1(data).hexdigest()].append(s)
        why = None if s.landmarks is None else landmarks_problem(s.landmarks, image.shape[1], image.shape[0])
        if why:
            unusable.append(f"{s.path.relative_to(index.root)}: {why}")
    if len(unreadable) == len(index.samples):
        raise LeedError(
            f"{index.root}: none of the {len(unreadable)} image files can be decoded (e.g. {unreadable[0].path.name}); "
            "replace them with real .jpg/.png images"
        )
    bad = set(unreadable)
    readable = [s for s in index.samples if s not in bad]
    if need_labels == "neutral":
        _require_neutral_labels(index.root, readable)
    duplicates = [group for group in by_hash.values() if len(group) > 1]
    return _report(index, readable, unreadable, unusable, sizes, duplicates, val_fraction, seed)


def _require_neutral_labels(root: Path, samples: list[Sample]) -> None:
    flags = {s.neutral for s in samples}
    how = (
        "put neutral faces in a `neutral/` folder or list them in neutral.csv (one file name per line), "
        "or use RaFD/CFEED file names"
    )
    if flags == {None}:
        raise LeedError(f"{root}: no image is labelled neutral or expressive, which the neutralizer needs; {how}")
    if True not in flags:
        raise LeedError(f"{root}: no image is labelled neutral, which the neutralizer needs; {how}")
    if False not in flags:
        raise LeedError(f"{root}: every image is labelled neutral; the neutralizer also needs expressive faces")


def _counts_line(title: str, counts: dict[str, int]) -> str:
    return f"{title}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))


def _listing(title: str, items: list[str]) -> list[str]:
    if not items:
        return []
    more = [f"    ... and {len(items) - _SHOW} more"] if len(items) > _SHOW else []
    return [f"{title} ({len(items)}):", *(f"    {item}" for item in items[:_SHOW]), *more]


def _report(
    index: DatasetIndex,
    readable: list[Sample],
    unreadable: list[Sample],
    unusable: list[str],
    sizes: dict[str, int],
    duplicates: list[list[Sample]],
    val_fraction: float,
    seed: int,
) -> str:
    view = DatasetIndex(index.root, index.format, readable)
    per_subject = view.counts("subject")
    n = list(per_subject.values())
    lines = [
        f"dataset: {index.root}",
        f"format: {index.format}",
        f"images: {len(readable)} readable, {len(unreadable)} unreadable",
        f"subjects: {len(per_subject)} (images per subject: min {min(n)}, median {statistics.median(n):g}, max {max(n)})",
    ]
    if len(per_subject) <= 20:
        lines.append("  " + _counts_line("per subject", per_subject))
    neutral = {"True": "neutral", "False": "expressive", "None": "unknown"}
    lines.append(_counts_line("neutral flag", {neutral[k]: v for k, v in view.counts("neutral").items()}))
    for attribute in ("expression", "angle", "gaze"):
        counts = view.counts(attribute)
        if set(counts) != {"None"}:
            lines.append(_counts_line(f"per {attribute}", counts))
    lines.append(_counts_line("image sizes", sizes))
    no_landmarks = sum(s.landmarks is None for s in readable)
    table = load_landmarks(index.root)
    from_csv = sum(s.path.relative_to(index.root).as_posix() in table for s in readable)
    lines.append(
        f"landmarks: {from_csv} from {LANDMARKS_FILE}, {len(readable) - from_csv - no_landmarks} found by MTCNN (cached)"
    )
    lines.append(
        f"without landmarks: {no_landmarks} of {len(readable)}"
        + (" (no face found: these get the centre crop; add landmarks.csv to align them)" if no_landmarks else "")
    )
    train, val = split_by_subject(readable, val_fraction, seed)
    lines.append(
        f"split (by subject, seed {seed}, --val-fraction {val_fraction:g}): train {len(train)} images / {len({s.subject for s in train})} subjects, "
        f"val {len(val)} images / {len({s.subject for s in val})} subjects"
    )
    root = index.root
    lines += _listing(
        "unreadable files (remove or fix them before training)", [str(s.path.relative_to(root)) for s in unreadable]
    )
    lines += _listing(
        "duplicate files (same content)",
        [", ".join(str(s.path.relative_to(root)) for s in group) for group in duplicates],
    )
    lines += _listing(f"unusable landmarks (fix or delete their rows in {LANDMARKS_FILE} before training)", unusable)
    lines += _listing(
        f"ignored image files (names that do not parse as {index.format}; rename them to train on them)",
        index.ignored,
    )
    lines += _listing("problems", [p for p in index.problems if p not in index.ignored])
    stops = [what for what, found in (("unreadable files", unreadable), ("unusable landmarks", unusable)) if found]
    ignored = f" ({len(index.ignored)} image files ignored, listed above)" if index.ignored else ""
    lines.append(f"not ok: {' and '.join(stops)} would stop training" if stops else f"ok{ignored}")
    return "\n".join(lines)
