"""The images `leed-eval` measures and the edits it plans on them.

`load_data`: a model's held-out subjects (from its split.json or its manifest's ids) and its
training images, as aligned crops. `plan_pairs` (exact protocol): each chosen input I_A x every
other expression b with a ground truth, a reference R_B of another subject showing b.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from leed_export.evaluate.config import EvalConfig
from leed_runtime.errors import LeedError
from leed_train.data.cache import CropCache
from leed_train.data.index import load_split, scan, split_by_subject
from leed_train.data.names import EXPRESSIONS, Sample


@dataclass
class Pairs:
    """Edits to measure, as indices into the image pool."""

    face: np.ndarray  # I_A
    ref: np.ndarray  # R_B
    truth: np.ndarray  # I_A's subject with R_B's expression, same angle and gaze
    target: np.ndarray  # expression index of R_B
    skipped: int = 0  # (I_A, expression) combinations without a ground-truth image


@dataclass
class EvalData:
    """Held-out images measured (`pool[:n_held]`, then reference stand-ins) and training images."""

    pool: list[Sample]
    crops: np.ndarray  # uint8 (len(pool),128,128,3)
    n_held: int
    train: list[Sample]
    train_crops: np.ndarray
    notes: list[str] = field(default_factory=list)


def as_tensor(crops: np.ndarray) -> torch.Tensor:
    """uint8 NHWC -> float NCHW in [-1, 1]."""
    return torch.from_numpy(np.array(crops, np.uint8, copy=True)).permute(0, 3, 1, 2).float() / 127.5 - 1


def load_data(cfg: EvalConfig, split_path: Path | list[str] | None) -> EvalData:
    """The run's held-out subjects (first `cfg.subjects` of a seeded shuffle) and its training images.

    `split_path` is the run's split.json, or a list of held-out subject ids (from an export's
    manifest: DATA_DIR's images of those subjects are held out, the rest count as training)."""
    data_dir = Path(cfg.data_dir)
    notes = []
    if isinstance(split_path, list):
        heldout = set(split_path)
        samples = scan(data_dir).samples
        train = [s for s in samples if s.subject not in heldout]
        val = [s for s in samples if s.subject in heldout]
        if not val:
            raise LeedError(
                f"{data_dir}: none of the model's held-out subjects ({', '.join(sorted(heldout))}) is here; "
                "evaluate on the data it was trained on (see its MODEL_CARD.md)"
            )
    elif split_path is not None and split_path.is_file():
        train, val = load_split(split_path, data_dir)
    else:
        train, val = split_by_subject(scan(data_dir).samples, 0.1, cfg.seed)
        notes.append(f"no split.json of the trained run found: subjects split 90/10 with seed {cfg.seed}")
    val = [s for s in val if s.expression in EXPRESSIONS]
    train = [s for s in train if s.expression in EXPRESSIONS]
    if not val:
        raise LeedError(
            f"{split_path or data_dir}: no held-out subject with an expression label; "
            "evaluation needs the run's validation subjects (RaFD or CFEED names)"
        )
    if not train:
        raise LeedError(f"{data_dir}: no training image with an expression label to train the classifiers on")
    rng = np.random.default_rng(cfg.seed)
    subjects = sorted({s.subject for s in val})
    chosen = set(rng.permutation(subjects)[: max(cfg.subjects, 1)].tolist())
    held = [s for s in val if s.subject in chosen]
    stand_ins: list[Sample] = []
    if len(chosen) < 2:  # references must come from other people: borrow some training subjects
        borrowed = set(rng.permutation(sorted({s.subject for s in train}))[:5].tolist())
        stand_ins = [s for s in train if s.subject in borrowed]
        notes.append(f"one held-out subject only: references are drawn from {len(borrowed)} training subjects")
    cache = CropCache()
    pool = held + stand_ins
    crops = cache.load_crops(pool)
    return EvalData(pool, np.asarray(crops), len(held), train, cache.load_crops(train), notes)


def _key(s: Sample, expression: str | None = None) -> tuple:
    return (s.subject, s.angle, s.gaze, expression or s.expression)


def plan_pairs(data: EvalData, max_faces: int, seed: int) -> Pairs:
    """Each of up to `max_faces` held-out inputs x every other expression with a ground truth."""
    rng = np.random.default_rng(seed + 1)
    pool = data.pool
    where = {}
    for i, s in enumerate(pool[: data.n_held]):
        where.setdefault(_key(s), i)
    refs_by = {}
    for i, s in enumerate(pool):
        refs_by.setdefault(s.expression, []).append(i)
    faces, refs, truths, targets, skipped = [], [], [], [], 0
    for f in rng.permutation(data.n_held)[:max_faces]:
        a = pool[f]
        for b, expression in enumerate(EXPRESSIONS):
            if expression == a.expression:
                continue
            truth = where.get(_key(a, expression))
            others = [j for j in refs_by.get(expression, []) if pool[j].subject != a.subject]
            if truth is None or not others:
                skipped += 1
                continue
            same_angle = [j for j in others if pool[j].angle == a.angle]
            faces.append(f)
            refs.append(int(rng.choice(same_angle or others)))
            truths.append(truth)
            targets.append(b)
    if not faces:
        raise LeedError(f"{data.pool[0].path.parent}: no held-out image has a ground truth for another expression")
    return Pairs(*(np.asarray(v, np.int64) for v in (faces, refs, truths, targets)), skipped=skipped)


def verification_triplets(data: EvalData, pairs: Pairs, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per pair: a real image of I_A's subject (not I_A, not the truth) and one of another subject."""
    rng = np.random.default_rng(seed + 3)
    by_subject: dict[str, list[int]] = {}
    for i, s in enumerate(data.pool):
        by_subject.setdefault(s.subject, []).append(i)
    keep, same, other = [], [], []
    for p, (f, t) in enumerate(zip(pairs.face, pairs.truth, strict=True)):
        subject = data.pool[f].subject
        own = [j for j in by_subject[subject] if j not in (f, t)]
        rest = [j for s, js in by_subject.items() if s != subject for j in js]
        if own and rest:
            keep.append(p)
            same.append(int(rng.choice(own)))
            other.append(int(rng.choice(rest)))
    return np.asarray(keep, np.int64), np.asarray(same, np.int64), np.asarray(other, np.int64)


def true_neutrals(pairs: Pairs, targets: np.ndarray, has: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Each pair's input and reference as their subjects' own neutral photos (`targets`, `has`:
    `neutral_targets` of the pool), for the oracle row; None if any pair lacks one."""
    if not (has[pairs.face].all() and has[pairs.ref].all()):
        return None
    return targets[pairs.face], targets[pairs.ref]
