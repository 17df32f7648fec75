"""CFEED (Compound Facial Expressions of Emotion, Du et al. 2014) and look-alike folders.

CFEED has no standard public layout, so two are accepted. In both, every image sits
exactly one folder below DATA (`DATA/<folder>/<file>`), and an *expression word* is one of

    angry contemptuous disgusted fearful happy neutral sad surprised
    (or anger contempt disgust fear happiness sadness surprise, mapped to those),

or a CFEED compound: an adverb (happily sadly fearfully angrily disgustedly) followed by
an expression word, e.g. `happily_surprised`, or one of appalled, hatred, awed. Words are
found by splitting names, lower-cased, at every non-letter (`_`, `-`, space, digits, dot).

1. One folder per subject: `DATA/<subject>/<file>` where no subject folder name holds an
   expression word and EVERY file name holds one, e.g. `DATA/s001/neutral_01.jpg`,
   `DATA/s001/happily_surprised_2.jpg`, `DATA/s001/001_fear.png`. Subject = folder name;
   expression = the first expression word of the file name; neutral = it is `neutral`.
2. One folder per expression: `DATA/<expression>/<subject>_<anything>.jpg` where EVERY
   folder name is an expression word and there are at least two folders, e.g.
   `DATA/neutral/s001_1.jpg`, `DATA/happy/s001_2.jpg`. Expression = folder name;
   subject = the file-name part before the first `_` (the whole name if it has none);
   neutral = the folder is `neutral`.

Auto-detection tries RaFD first (file names starting with `Rafd`), then these two, then a
plain folder. With `--format cfeed` forced, layout 2 is used when most folders are
expression words, layout 1 otherwise, and files that do not fit are reported as problems.
Compound expressions keep their name (e.g. `happily_surprised`) but have no class index.
"""

from __future__ import annotations

import re
from pathlib import Path

from leed_train.data.names import EXPRESSIONS, Sample

BY_SUBJECT = "one folder per subject"
BY_EXPRESSION = "one folder per expression"

_ALIASES = {
    "anger": "angry",
    "contempt": "contemptuous",
    "disgust": "disgusted",
    "fear": "fearful",
    "happiness": "happy",
    "sadness": "sad",
    "surprise": "surprised",
}
_BASIC = {**{e: e for e in EXPRESSIONS}, **_ALIASES}
_ADVERBS = ("happily", "sadly", "fearfully", "angrily", "disgustedly")
_SINGLE_COMPOUNDS = ("appalled", "hatred", "awed")


def expression_of(text: str) -> str | None:
    """The first expression word of a file or folder name (canonical spelling), or None."""
    words = [w for w in re.split(r"[^a-z]+", text.lower()) if w]
    for k, word in enumerate(words):
        if word in _ADVERBS and k + 1 < len(words) and words[k + 1] in _BASIC:
            return f"{word}_{_BASIC[words[k + 1]]}"
        if word in _SINGLE_COMPOUNDS:
            return word
        if word in _BASIC:
            return _BASIC[word]
    return None


def detect(files: list[Path]) -> str | None:
    """BY_SUBJECT, BY_EXPRESSION, or None when `files` fit neither layout unambiguously."""
    if not files or any(len(f.parts) != 2 for f in files):
        return None
    folders = {f.parts[0] for f in files}
    if all(expression_of(d) for d in folders):
        return BY_EXPRESSION if len(folders) >= 2 else None
    if not any(expression_of(d) for d in folders) and all(expression_of(f.stem) for f in files):
        return BY_SUBJECT
    return None


def samples(root: Path, files: list[Path]) -> tuple[list[Sample], list[str]]:
    """Samples of a CFEED-style folder (`files` relative to `root`)."""
    layout = detect(files)
    if layout is None:
        two_level = [f for f in files if len(f.parts) == 2]
        folders = {f.parts[0] for f in two_level}
        by_expression = sum(bool(expression_of(d)) for d in folders) * 2 > len(folders)
        layout = BY_EXPRESSION if by_expression else BY_SUBJECT
    out, problems = [], []
    for rel in files:
        if len(rel.parts) != 2:
            problems.append(f"{rel.as_posix()}: CFEED images must sit one folder below the dataset root; ignored")
            continue
        folder, stem = rel.parts[0], rel.stem
        if layout == BY_EXPRESSION:
            expression, subject = expression_of(folder), stem.split("_", 1)[0]
        else:
            expression, subject = expression_of(stem), folder
        if expression is None:
            where = "folder name" if layout == BY_EXPRESSION else "file name"
            problems.append(f"{rel.as_posix()}: no expression word in the {where} ({layout} layout); ignored")
            continue
        out.append(Sample(root / rel, subject, expression == "neutral", expression))
    return out, problems
