"""Plain folders: any images, found recursively; labels are optional.

- Images: every .jpg/.jpeg/.png/.bmp/.webp under DATA, at any depth (names starting with
  `.` are skipped).
- Neutral flags (the neutralizer needs them; stage 2 needs no labels at all), first rule that applies:
  1. `DATA/neutral.csv`: either one file name per line (those images are neutral), or a
     header with a `filename` column and an optional `neutral` column of 0/1 (rows without
     `neutral` count as 1). Names are relative to DATA, e.g. `s01/img_003.jpg`. Images not
     listed are expressive.
  2. A folder named `neutral` anywhere in an image's path (`DATA/neutral/...` or
     `DATA/<subject>/neutral/...`): those images are neutral, all others expressive.
  3. Otherwise neutral is unknown.
- Subject, first rule that applies:
  1. `DATA/subjects.csv` with rows `filename,subject` (header optional).
  2. The first folder of the image's path below DATA that is not named `neutral`
     (`DATA/<subject>/...` or `DATA/neutral/<subject>/...`).
  3. Otherwise (images directly in DATA or DATA/neutral) each image is its own subject.
"""

from __future__ import annotations

import csv
from pathlib import Path

from leed_runtime.errors import LeedError
from leed_train.data.names import Sample

NEUTRAL_FILE = "neutral.csv"
SUBJECTS_FILE = "subjects.csv"


def _rows(path: Path) -> list[list[str]]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            return [[c.strip() for c in row] for row in csv.reader(fh) if row and any(c.strip() for c in row)]
    except (OSError, UnicodeDecodeError) as exc:
        raise LeedError(f"{path}: cannot read ({exc}); fix or delete it") from None


def _neutral_table(path: Path) -> dict[str, bool]:
    rows = _rows(path)
    if not rows:
        return {}
    header = [c.lower() for c in rows[0]]
    if "filename" not in header:
        return {Path(row[0]).as_posix(): True for row in rows}
    name_col = header.index("filename")
    flag_col = header.index("neutral") if "neutral" in header else None
    table = {}
    for line, row in enumerate(rows[1:], start=2):
        flag = row[flag_col] if flag_col is not None and flag_col < len(row) else "1"
        if flag not in ("0", "1"):
            raise LeedError(f"{path}: line {line}: neutral must be 0 or 1, got {flag!r}")
        table[Path(row[name_col]).as_posix()] = flag == "1"
    return table


def _subject_table(path: Path) -> dict[str, str]:
    rows = _rows(path)
    if rows and [c.lower() for c in rows[0][:2]] == ["filename", "subject"]:
        rows = rows[1:]
    table = {}
    for line, row in enumerate(rows, start=1):
        if len(row) < 2 or not row[1]:
            raise LeedError(f"{path}: line {line} is not `filename,subject`")
        table[Path(row[0]).as_posix()] = row[1]
    return table


def samples(root: Path, files: list[Path]) -> tuple[list[Sample], list[str]]:
    """Samples of a plain image folder (`files` relative to `root`)."""
    problems = []
    names = {f.as_posix() for f in files}
    neutral_csv = _neutral_table(root / NEUTRAL_FILE) if (root / NEUTRAL_FILE).is_file() else None
    subjects_csv = _subject_table(root / SUBJECTS_FILE) if (root / SUBJECTS_FILE).is_file() else {}
    for file, table in ((NEUTRAL_FILE, neutral_csv or {}), (SUBJECTS_FILE, subjects_csv)):
        unknown = sorted(set(table) - names)
        if unknown:
            problems.append(f"{file}: {len(unknown)} row(s) name images not found (e.g. {unknown[0]})")
    has_neutral_dir = any(_in_neutral_dir(f) for f in files)
    out = []
    for rel in files:
        key = rel.as_posix()
        if neutral_csv is not None:
            neutral = neutral_csv.get(key, False)
        else:
            neutral = _in_neutral_dir(rel) if has_neutral_dir else None
        out.append(Sample(root / rel, subjects_csv.get(key) or _subject_from_path(rel), neutral))
    return out, problems


def _in_neutral_dir(rel: Path) -> bool:
    return any(part.lower() == "neutral" for part in rel.parts[:-1])


def _subject_from_path(rel: Path) -> str:
    folders = [p for p in rel.parts[:-1] if p.lower() != "neutral"]
    return folders[0] if folders else rel.with_suffix("").as_posix()
