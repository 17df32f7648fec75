"""The Taiwanese facial expression image database layout ("faces-tw"): labels from file names.

`PPTVESS.jpg`: `PP` performer id (the subject), `T` performance type (1 theatrical, 2 Ekman's
FACS criteria, 3 personal event; 0 on neutral photos), `V` view point (1 front, 2 3/4, 3
profile), `E` the expression performed: `a` calm/neutral, `b` happy, `c` sad, `d` angry, `e`
disgusted, `f` fearful, `g` surprised (some performers' neutral photos use `0`), `SS` a serial
number. The expression is what the performer was asked to show, not a rating. Images may sit
anywhere under DATA; other image names are reported in the index's problems.
"""

from __future__ import annotations

import re
from pathlib import Path

from leed_train.data.names import Sample

EXPRESSION_LETTERS = {
    "a": "neutral",
    "0": "neutral",
    "b": "happy",
    "c": "sad",
    "d": "angry",
    "e": "disgusted",
    "f": "fearful",
    "g": "surprised",
}
VIEWS = {"1": "front", "2": "three-quarter", "3": "profile"}
_NAME = re.compile(r"^(?P<subject>\d{2})(?P<type>[0-3])(?P<view>[1-3])(?P<expr>[a-g0])(?P<serial>\d{2})\.[A-Za-z]+$")


def looks_like(files: list[Path]) -> bool:
    """True when most image names follow `PPTVESS`."""
    return sum(bool(_NAME.match(f.name)) for f in files) * 2 > len(files)


def samples(root: Path, files: list[Path]) -> tuple[list[Sample], list[str]]:
    """Samples of the `PPTVESS`-named `files` (relative to `root`); the view goes into `angle`."""
    out, problems = [], []
    for rel in files:
        m = _NAME.match(rel.name)
        if m is None:
            problems.append(f"{rel.as_posix()}: not a faces-tw name like 0111b01.jpg (PPTVESS); ignored")
            continue
        expression = EXPRESSION_LETTERS[m["expr"]]
        out.append(Sample(root / rel, m["subject"], expression == "neutral", expression, VIEWS[m["view"]], None))
    return out, problems
