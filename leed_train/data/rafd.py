"""RaFD: labels come from the file names (see `names.py`), subject = the RaFD id.

Images may sit anywhere under DATA. A file whose name starts with `Rafd` (any case) but
does not parse is reported in the index's problems, as is any other image in the folder.
"""

from __future__ import annotations

import re
from pathlib import Path

from leed_runtime.errors import LeedError
from leed_train.data.names import ANGLES, GAZES, Sample, parse_rafd_name

_LOOKS_LIKE = re.compile(r"^rafd", re.IGNORECASE)


def looks_like(files: list[Path]) -> bool:
    """True when most image names start with `Rafd`."""
    return sum(bool(_LOOKS_LIKE.match(f.name)) for f in files) * 2 > len(files)


def _checked(values: tuple[str, ...], allowed: tuple[str, ...], flag: str, normalise=str) -> set[str]:
    out = {normalise(v) for v in values}
    bad = sorted(out - set(allowed))
    if bad:
        raise LeedError(f"{flag} {','.join(bad)}: not a RaFD value; choose from {','.join(allowed)}")
    return out


def samples(
    root: Path, files: list[Path], angles: tuple[str, ...] = (), gazes: tuple[str, ...] = ()
) -> tuple[list[Sample], list[str]]:
    """Samples of the RaFD-named `files` (relative to `root`) that pass the angle/gaze filter."""
    keep_angles = _checked(angles, ANGLES, "--angles", lambda a: str(a).zfill(3))
    keep_gazes = _checked(gazes, GAZES, "--gazes")
    out, problems = [], []
    for rel in files:
        if not _LOOKS_LIKE.match(rel.name):
            problems.append(f"{rel.as_posix()}: not a RaFD file name; ignored")
            continue
        try:
            name = parse_rafd_name(rel.name)
        except ValueError as exc:
            problems.append(f"{rel.as_posix()}: {str(exc).removeprefix(f'{rel.name!r}: ')}; ignored")
            continue
        if (keep_angles and name.angle not in keep_angles) or (keep_gazes and name.gaze not in keep_gazes):
            continue
        out.append(Sample(root / rel, f"{name.subject:02d}", name.neutral, name.expression, name.angle, name.gaze))
    return out, problems
