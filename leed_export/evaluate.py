"""`leed-eval`: how well a trained run (or its ONNX export) edits expressions, measured on
held-out subjects whose every edit has a ground truth (paper Sec. 4, Tables 1-2, Figs. 3-5, 7, 11).

Pairs: each chosen input I_A of a held-out subject is edited toward every other expression b,
with a reference R_B of *another* subject showing b (same camera angle when there is one);
the ground truth is I_A's subject with expression b at I_A's angle and gaze. Combinations
without that image (RaFD's gaps) are skipped and counted. Everything is deterministic for
`EvalConfig.seed`. Expression labels are read here, never in training.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from tqdm import tqdm

from leed_export import figures, metrics
from leed_runtime.errors import LeedError
from leed_train.data.names import EXPRESSIONS, Sample
from leed_train.loop import write_json

if TYPE_CHECKING:
    from leed_runtime.manifest import Manifest
    from leed_train.trained import TrainedRun

ALPHAS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5)  # Fig. 7: interpolation and extrapolation
PROFILE_ANGLES = ("045", "135")
ORACLE_ROW = "LEED from true neutral faces (oracle stage 1)"
PAPER_RAFD = {  # Tables 1-2 of the paper, RaFD (R is listed once per dataset)
    "StarGAN": {"fid": 62.51, "ssim": 0.8563, "G": 82.37, "R+G": 88.48},
    "GANimation": {"fid": 45.55, "ssim": 0.8686, "G": 84.36, "R+G": 92.31},
    "LEED (paper)": {"fid": 38.20, "ssim": 0.8833, "G": 88.67, "R+G": 93.25},
}
PAPER_RAFD_R = 92.21


@dataclass
class EvalConfig:
    """Every option of `leed-eval`; saved as `eval_config.json` in the report folder."""

    model_dir: str
    data_dir: str
    out: str
    subjects: int = 6  # held-out subjects measured (the first N of a seeded shuffle)
    faces: int = 48  # inputs I_A; each is edited toward every other expression that has a ground truth
    baselines: tuple[str, ...] = ()  # runs trained with --no-q / --no-siamese (PyTorch run folders)
    inception: str = ""  # TorchScript/ONNX Inception features (B,3,299,299 in [-1,1] -> B,2048) for real FID
    seed: int = 0
    alpha: float = 1.0  # edit strength of every measured edit (the paper's tables: 1)
    device: str = "cpu"  # cpu | cuda | auto (PyTorch runs; exports run on onnxruntime's CPU provider)
    batch_size: int = 32
    classifier_size: int = 64  # classifiers see crops downsampled to this size (speed)
    classifier_width: int = 16  # ResNet-18 stem width
    classifier_epochs: int = 6
    classifier_images: int = 2000  # training images per classifier (seeded subsample)
    tsne_points: int = 400
    figure_inputs: int = 4


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


# ---------------------------------------------------------------------------------------------
# models
# ---------------------------------------------------------------------------------------------


class Editor:
    """An expression editor: reference images -> codes, then (face, code, alpha) -> edited face."""

    label = "model"

    def reference_codes(self, refs: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def edit_pairs(
        self, faces: torch.Tensor, codes: torch.Tensor, face_idx: np.ndarray, ref_idx: np.ndarray, alpha: np.ndarray
    ) -> torch.Tensor:
        raise NotImplementedError

    def features(self, x: torch.Tensor) -> dict[str, np.ndarray]:
        """Fig. 4's feature sets of images `x`, flattened, by name."""
        raise NotImplementedError

    def neutral(self, x: torch.Tensor) -> torch.Tensor:
        """The neutralizer's output G(x, neutral) for images `x`."""
        raise NotImplementedError

    def close(self) -> None:
        """Release sessions (exports)."""


class TorchEditor(Editor):
    """A training run's `Leed` in PyTorch: D(I(E(G(I_A)), alpha X(E(R_B), E(G(R_B))))), with
    `residual`, `gate` as `leed-export --residual-edit`/`--residual-gate` build the export's
    `edit` graph, or with `linear` the code arithmetic of Eq. 1+5: D(E(G(I_A)) + alpha (E(R_B) - E(G(R_B))))."""

    def __init__(
        self,
        run: TrainedRun,
        label: str,
        batch_size: int,
        linear: bool = False,
        residual: bool = False,
        gate: float = 0.0,
    ) -> None:
        self.label, self.batch_size, self.linear = label, batch_size, linear
        self.residual, self.gate = residual, gate
        self.leed = run.leed
        self.device = next(self.leed.E.parameters()).device

    def _batches(self, x: torch.Tensor, desc: str) -> Iterator[torch.Tensor]:
        for i in tqdm(range(0, len(x), self.batch_size), desc=desc, leave=False):
            yield x[i : i + self.batch_size].to(self.device)

    @torch.no_grad()
    def reference_codes(self, refs: torch.Tensor) -> torch.Tensor:
        batches = self._batches(refs, f"{self.label}: references")
        return torch.cat([self.leed.reference(r, linear=self.linear).cpu() for r in batches])

    @torch.no_grad()
    def edit_pairs(
        self, faces: torch.Tensor, codes: torch.Tensor, face_idx: np.ndarray, ref_idx: np.ndarray, alpha: np.ndarray
    ) -> torch.Tensor:
        neutral, neutral_code = [], []  # each face through G and E once, `Leed.decode_edit` per pair
        for f in self._batches(faces, f"{self.label}: inputs"):
            n = self.leed.G(f)
            neutral.append(n.cpu() if self.residual else None)
            neutral_code.append(self.leed.E(n).cpu())
        neutrals = torch.cat(neutral) if self.residual else None
        neutral_codes = torch.cat(neutral_code)
        out = []
        for i in tqdm(range(0, len(face_idx), self.batch_size), desc=f"{self.label}: edits", leave=False):
            sl = slice(i, i + self.batch_size)
            a = torch.as_tensor(alpha[sl], dtype=torch.float32).to(self.device)
            dexp = self.leed.scale(codes[ref_idx[sl]].to(self.device), a)
            n = neutrals[face_idx[sl]].to(self.device) if neutrals is not None else None
            edited = self.leed.decode_edit(
                neutral_codes[face_idx[sl]].to(self.device), dexp, n, self.residual, self.gate, self.linear
            )
            out.append(edited.float().clamp(-1, 1).cpu())
        return torch.cat(out)

    @torch.no_grad()
    def features(self, x: torch.Tensor) -> dict[str, np.ndarray]:
        enc, res, ext = [], [], []
        E, G, X = self.leed.E, self.leed.G, self.leed.X
        for b in self._batches(x, f"{self.label}: features"):
            c, cn = E(b), E(G(b))
            enc.append(c.flatten(1).cpu())
            res.append((c - cn).flatten(1).cpu())
            ext.append(X(c, cn).flatten(1).cpu())
        return {
            "Encoder E(I)": torch.cat(enc).numpy(),
            "Residual E(I)-E(G(I))": torch.cat(res).numpy(),
            "Extractor X": torch.cat(ext).numpy(),
        }

    @torch.no_grad()
    def neutral(self, x: torch.Tensor) -> torch.Tensor:
        batches = self._batches(x, f"{self.label}: neutral")
        return torch.cat([self.leed.G(b).float().clamp(-1, 1).cpu() for b in batches])

    @torch.no_grad()
    def edit_from_neutrals(
        self, faces_n: torch.Tensor, refs: torch.Tensor, refs_n: torch.Tensor, alpha: float = 1.0
    ) -> torch.Tensor:
        """The chain with given neutral faces in place of G's: `Leed.edit_from_neutrals`."""
        out = []
        for i in tqdm(range(0, len(faces_n), self.batch_size), desc=f"{self.label}: given neutrals", leave=False):
            fn, r, rn = (t[i : i + self.batch_size].to(self.device) for t in (faces_n, refs, refs_n))
            edited = self.leed.edit_from_neutrals(fn, r, rn, alpha, self.residual, self.gate, self.linear)
            out.append(edited.float().clamp(-1, 1).cpu())
        return torch.cat(out)


class OnnxEditor(Editor):
    """An export folder's `reference` and `edit` graphs on onnxruntime (CPU)."""

    def __init__(self, folder: Path, manifest: Manifest, batch_size: int) -> None:
        from leed_runtime.backends.table import open_backend

        residual = manifest.source.get("residual_edit", False)
        self.label, self.batch_size = "LEED (ONNX, residual edit)" if residual else "LEED (ONNX)", batch_size
        self.ref = open_backend("onnxruntime-cpu", folder, manifest, "reference")
        self.edit = open_backend("onnxruntime-cpu", folder, manifest, "edit")
        self.ref.activate()
        self.edit.activate()
        self.ref_in, self.ref_out = self.ref.inputs[0].name, self.ref.outputs[0].name
        self.edit_out = self.edit.outputs[0].name
        self.folder, self.manifest = folder, manifest

    def reference_codes(self, refs: torch.Tensor) -> torch.Tensor:
        out = []
        for i in tqdm(range(0, len(refs), self.batch_size), desc="ONNX: references", leave=False):
            x = refs[i : i + self.batch_size].numpy().astype(np.float32)
            out.append(torch.from_numpy(np.array(self.ref.infer({self.ref_in: x})[self.ref_out])))
        return torch.cat(out)

    def edit_pairs(
        self, faces: torch.Tensor, codes: torch.Tensor, face_idx: np.ndarray, ref_idx: np.ndarray, alpha: np.ndarray
    ) -> torch.Tensor:
        out = []
        for i in tqdm(range(0, len(face_idx), self.batch_size), desc="ONNX: edits", leave=False):
            sl = slice(i, i + self.batch_size)
            feeds = {
                "face": faces[face_idx[sl]].numpy().astype(np.float32),
                "dexp": codes[ref_idx[sl]].numpy().astype(np.float32),
                "alpha": np.asarray(alpha[sl], np.float32),
            }
            out.append(torch.from_numpy(np.array(self.edit.infer(feeds)[self.edit_out])).clamp(-1, 1))
        return torch.cat(out)

    def features(self, x: torch.Tensor) -> dict[str, np.ndarray]:
        return {"Extractor X": self.reference_codes(x).flatten(1).numpy()}

    def neutral(self, x: torch.Tensor) -> torch.Tensor:
        from leed_runtime.backends.table import open_backend

        g = open_backend("onnxruntime-cpu", self.folder, self.manifest, "neutralizer")
        g.activate()
        try:
            name, out = g.inputs[0].name, g.outputs[0].name
            batches = range(0, len(x), self.batch_size)
            return torch.cat([
                torch.from_numpy(np.array(g.infer({name: x[i : i + self.batch_size].numpy().astype(np.float32)})[out]))
                for i in batches
            ]).clamp(-1, 1)  # fmt: skip
        finally:
            g.deactivate()

    def close(self) -> None:
        self.ref.deactivate()
        self.edit.deactivate()


def _load_run(path: Path, device: str) -> TrainedRun:
    from leed_train.trained import load_trained

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return load_trained(path, device)


def open_model(model_dir: str, cfg: EvalConfig) -> tuple[list[Editor], Path | list[str] | None]:
    """The editors of MODEL_DIR (a run: LEED + its linear baseline; an export: LEED on ONNX) and
    what says which subjects it never saw: for an export the held-out subject ids its manifest
    records (else its run's split file), for a run its split file; None when unknown."""
    from leed_runtime.manifest import FILENAME, read_manifest, verify

    path = Path(model_dir)
    if not path.exists():
        raise LeedError(f"MODEL_DIR {path}: not found; give a training run (leed-train --out) or an export folder")
    if (path / FILENAME).is_file():
        manifest = verify(path, read_manifest(path), ["reference", "edit"])
        source = Path(str(manifest.source.get("run_dir", ""))) / "split.json"
        # the manifest's held-out ids work on any copy of the data; older exports have only run_dir
        heldout = [str(s) for s in manifest.source.get("heldout_subjects", [])]
        return [OnnxEditor(path, manifest, cfg.batch_size)], heldout or (source if source.is_file() else None)
    if (path / "config.json").is_file():
        run = _load_run(path, cfg.device)
        return [
            TorchEditor(run, "LEED", cfg.batch_size),
            TorchEditor(run, "Linear (Eq. 1+5)", cfg.batch_size, linear=True),
        ], path / "split.json"
    raise LeedError(
        f"MODEL_DIR {path}: neither a training run (no config.json) nor an export folder (no manifest.json)"
    )


def baseline_editor(run_dir: str, cfg: EvalConfig) -> Editor:
    """A run given with --baselines, labelled by its ablation switches (Fig. 3)."""
    path = Path(run_dir)
    if not (path / "config.json").is_file():
        raise LeedError(f"--baselines {path}: not a training run (no config.json); give a leed-train --out folder")
    run = _load_run(path, cfg.device)
    off = [name for name, on in (("Q", run.cfg.use_q), ("S", run.cfg.use_siamese)) if not on]
    return TorchEditor(run, f"w/o {', '.join(off)} ({path.name})" if off else path.name, cfg.batch_size)


# ---------------------------------------------------------------------------------------------
# data and pairs
# ---------------------------------------------------------------------------------------------


def load_data(cfg: EvalConfig, split_path: Path | list[str] | None) -> EvalData:
    """The run's held-out subjects (first `cfg.subjects` of a seeded shuffle) and its training images.

    `split_path` is the run's split.json, or a list of held-out subject ids (from an export's
    manifest: DATA_DIR's images of those subjects are held out, the rest count as training)."""
    from leed_train.data.cache import CropCache
    from leed_train.data.index import load_split, scan, split_by_subject

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


def as_tensor(crops: np.ndarray) -> torch.Tensor:
    """uint8 NHWC -> float NCHW in [-1, 1]."""
    return torch.from_numpy(np.array(crops, np.uint8, copy=True)).permute(0, 3, 1, 2).float() / 127.5 - 1


def run_edits(
    editor: Editor, crops: np.ndarray, face: np.ndarray, ref: np.ndarray, alpha: np.ndarray | float = 1.0
) -> torch.Tensor:
    """Edit pool images `face` toward pool images `ref` (each unique image encoded once)."""
    faces, face_idx = np.unique(face, return_inverse=True)
    refs, ref_idx = np.unique(ref, return_inverse=True)
    codes = editor.reference_codes(as_tensor(crops[refs]))
    alpha = np.broadcast_to(np.asarray(alpha, np.float32), face.shape).copy()
    return editor.edit_pairs(as_tensor(crops[faces]), codes, face_idx, ref_idx, alpha)


# ---------------------------------------------------------------------------------------------
# metrics
# ---------------------------------------------------------------------------------------------


def _subsample(n: int, cap: int, rng: np.random.Generator) -> np.ndarray:
    return np.sort(rng.permutation(n)[:cap])


def fit_classifiers(cfg: EvalConfig, data: EvalData) -> dict:
    """The expression classifier R (Table 2) and the identity probe, both on training images."""
    rng = np.random.default_rng(cfg.seed + 2)
    idx = _subsample(len(data.train), cfg.classifier_images, rng)
    x = metrics.downsample(data.train_crops[idx], cfg.classifier_size)
    expr = np.array([EXPRESSIONS.index(data.train[i].expression) for i in idx])
    people = sorted({data.train[i].subject for i in idx})
    who = np.array([people.index(data.train[i].subject) for i in idx])
    kw = {"width": cfg.classifier_width, "epochs": cfg.classifier_epochs, "seed": cfg.seed}
    return {
        "train_x": x,
        "train_y": expr,
        "expr": metrics.train_classifier(x, expr, len(EXPRESSIONS), desc="expression classifier (R)", **kw),
        "probe": metrics.train_classifier(x, who, len(people), desc="identity probe", **kw),
        "probe_subjects": len(people),
    }


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


def method_metrics(
    cfg: EvalConfig, images: torch.Tensor, truth: np.ndarray, pairs: Pairs, clf: dict, real: dict, inception
) -> dict:
    """SSIM/PSNR against the ground truth, G and R+G accuracy, FD-expr, identity verification."""
    truth_t = as_tensor(truth)
    small = metrics.downsample(images, cfg.classifier_size)
    _, feats = metrics.predict(clf["expr"], small)
    rg = metrics.train_classifier(
        torch.cat([clf["train_x"], small]),
        np.concatenate([clf["train_y"], pairs.target]),
        len(EXPRESSIONS),
        width=cfg.classifier_width,
        epochs=cfg.classifier_epochs,
        seed=cfg.seed,
        desc="classifier (R+G)",
    )
    keep, _, _ = real["triplets"]
    _, id_feats = metrics.predict(clf["probe"], small[keep])
    out = {
        "pairs": len(images),
        "ssim": float(np.mean([metrics.ssim(a, b) for a, b in zip(images, truth_t, strict=True)])),
        "psnr": float(np.mean([metrics.psnr(a, b) for a, b in zip(images, truth_t, strict=True)])),
        "G": 100 * metrics.accuracy(clf["expr"], small, pairs.target),
        "R+G": 100 * metrics.accuracy(rg, real["test_x"], real["test_y"]),
        "fd_expr": metrics.frechet_distance(real["expr_feats"], feats),
        "id_verification": 100 * metrics.verification_accuracy(id_feats, real["id_same"], real["id_other"]),
    }
    if inception is not None:
        out["fid"] = metrics.frechet_distance(real["inception"], inception_features(inception, images))
    return out


def true_neutrals(pairs: Pairs, targets: np.ndarray, has: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Each pair's input and reference as their subjects' own neutral photos (`targets`, `has`:
    `neutral_targets` of the pool), for the oracle row; None if any pair lacks one."""
    if not (has[pairs.face].all() and has[pairs.ref].all()):
        return None
    return targets[pairs.face], targets[pairs.ref]


def neutralizer_metrics(
    cfg: EvalConfig, editor: Editor, data: EvalData, clf: dict, targets: np.ndarray, has: np.ndarray
) -> dict | None:
    """Stage 1 on its own: every held-out expressive image with its subject's neutral photo at
    the same angle and gaze (re-warped into its crop), neutralized by the model. How often the
    expression classifier calls the output neutral, and its SSIM to that photo; the same for
    the input left unchanged and for the photo itself (the ceiling). None without such pairs.
    `targets`, `has`: `neutral_targets` of the pool."""
    held = data.pool[: data.n_held]
    idx = np.flatnonzero(has[: data.n_held] & np.array([s.expression != "neutral" for s in held]))
    if not len(idx):
        return None
    neutral_class = EXPRESSIONS.index("neutral")

    def measure(images: torch.Tensor) -> dict:
        pred, _ = metrics.predict(clf["expr"], metrics.downsample(images, cfg.classifier_size))
        truth = as_tensor(targets[idx])
        return {
            "classified_neutral": 100 * float(np.mean(pred == neutral_class)),
            "ssim": float(np.mean([metrics.ssim(a, b) for a, b in zip(images, truth, strict=True)])),
        }

    inputs = as_tensor(data.crops[idx])
    return {
        "faces": len(idx),
        "G(x, neutral)": measure(editor.neutral(inputs)),
        "input x unchanged": measure(inputs),
        "own neutral photo (ceiling)": measure(as_tensor(targets[idx])),
    }


@torch.no_grad()
def inception_features(model, images: torch.Tensor) -> np.ndarray:
    """Pooled Inception features of 128x128 images resized to 299x299."""
    big = torch.nn.functional.interpolate(images, size=(299, 299), mode="bilinear", align_corners=False)
    return torch.cat([model(big[i : i + 32]).flatten(1).cpu() for i in range(0, len(big), 32)]).numpy()


# ---------------------------------------------------------------------------------------------
# figures
# ---------------------------------------------------------------------------------------------


def _pick(data: EvalData, subject: str | None, expression: str, angle: str | None, exclude: str | None = None):
    """Index of a pool image of `subject` (or any subject but `exclude`) with `expression`,
    at `angle` when there is one, frontal gaze first."""
    found = [
        i
        for i, s in enumerate(data.pool)
        if s.expression == expression
        and (subject is None or s.subject == subject)
        and (exclude is None or s.subject != exclude)
    ]
    found.sort(key=lambda i: (data.pool[i].angle != angle, data.pool[i].gaze != "frontal", i))
    return found[0] if found else None


def transfer_grid(
    path: Path, editor: Editor, data: EvalData, inputs: list[int], ref_angle: str | None, alpha: float = 1.0
) -> Path:
    """Fig. 11 (and Fig. 5 for profile inputs): per input, a row of references (another subject,
    each expression), the edits at `alpha` and the ground truth."""
    rows: list[tuple[str, list]] = []
    for f in inputs:
        a = data.pool[f]
        refs = [_pick(data, None, e, ref_angle or a.angle, exclude=a.subject) for e in EXPRESSIONS]
        truths = [_pick(data, a.subject, e, a.angle) for e in EXPRESSIONS]
        truths = [t if t is not None and data.pool[t].angle == a.angle else None for t in truths]
        valid = [j for j, r in enumerate(refs) if r is not None]
        edit_row: list[np.ndarray | None] = [None] * len(EXPRESSIONS)
        if valid:
            edits = run_edits(editor, data.crops, np.full(len(valid), f), np.array([refs[j] for j in valid]), alpha)
            for j, image in zip(valid, figures.to_uint8(edits), strict=True):
                edit_row[j] = image
        label = f"{a.subject} {a.angle or ''}".strip()
        rows += [
            ("references", [None] + [data.crops[r] if r is not None else None for r in refs]),
            (f"edit {label}", [data.crops[f], *edit_row]),
            ("ground truth", [None] + [data.crops[t] if t is not None else None for t in truths]),
        ]
    return figures.image_grid(path, rows, ["input", *EXPRESSIONS])


def figure_inputs(data: EvalData, n: int, angles: tuple[str | None, ...]) -> list[int]:
    """Neutral (else any) frontal-gaze faces of different held-out subjects at the given angles."""
    chosen: list[int] = []
    subjects = sorted({s.subject for s in data.pool[: data.n_held]})
    for k, subject in enumerate(subjects * len(angles)):
        if len(chosen) >= n:
            break
        angle = angles[k % len(angles)]
        i = _pick(data, subject, "neutral", angle)
        if i is None:
            i = next((j for j in range(data.n_held) if data.pool[j].subject == subject), None)
        if i is not None and i not in chosen and (angle is None or data.pool[i].angle == angle):
            chosen.append(i)
    return chosen


def strips(path: Path, editor: Editor, data: EvalData, pairs: Pairs, n: int) -> Path:
    """Fig. 7: input, reference, edits at alpha 0 .. 1.5, ground truth (alpha 1)."""
    by_face = [np.flatnonzero(pairs.face == f) for f in dict.fromkeys(pairs.face.tolist())][:n]
    first = [int(rows[(3 * k) % len(rows)]) for k, rows in enumerate(by_face)]  # varied targets
    face = np.repeat(pairs.face[first], len(ALPHAS))
    ref = np.repeat(pairs.ref[first], len(ALPHAS))
    edits = figures.to_uint8(run_edits(editor, data.crops, face, ref, np.tile(ALPHAS, len(first))))
    rows = []
    for k, p in enumerate(first):
        row = [data.crops[pairs.face[p]], data.crops[pairs.ref[p]], *edits[k * len(ALPHAS) : (k + 1) * len(ALPHAS)]]
        rows.append((f"to {EXPRESSIONS[pairs.target[p]]}", [*row, data.crops[pairs.truth[p]]]))
    return figures.image_grid(path, rows, ["input", "reference", *(f"a={a:g}" for a in ALPHAS), "truth"])


def tsne_figure(path: Path, editor: Editor, data: EvalData, cfg: EvalConfig) -> Path:
    """Fig. 4: t-SNE of encoder, residual and extractor features, coloured by expression."""
    from sklearn.manifold import TSNE

    idx = _subsample(data.n_held, cfg.tsne_points, np.random.default_rng(cfg.seed + 4))
    labels = np.array([EXPRESSIONS.index(data.pool[i].expression) for i in idx])
    panels = {}
    for name, feats in editor.features(as_tensor(data.crops[idx])).items():
        perplexity = float(min(30.0, max(2.0, (len(idx) - 1) / 3)))
        panels[name] = TSNE(2, perplexity=perplexity, init="pca", random_state=cfg.seed).fit_transform(feats)
    return figures.scatter_panels(path, panels, labels, list(EXPRESSIONS))


# ---------------------------------------------------------------------------------------------
# the report
# ---------------------------------------------------------------------------------------------


def run_eval(cfg: EvalConfig) -> dict:
    """Measure, draw and write `metrics.json`, the PNG figures and `report.md`; return the metrics."""
    start = time.perf_counter()
    torch.manual_seed(cfg.seed)
    out = Path(cfg.out)
    editors, split_path = open_model(cfg.model_dir, cfg)
    editors += [baseline_editor(b, cfg) for b in cfg.baselines]
    labels = [e.label for e in editors]
    if len(set(labels)) < len(labels):
        raise LeedError(f"--baselines: rows {labels} repeat a name; give each run once, in folders named apart")
    try:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "eval_config.json", asdict(cfg))
        data = load_data(cfg, split_path)
        pairs = plan_pairs(data, cfg.faces, cfg.seed)

        # classifiers on real training images; everything real they are compared against
        clf = fit_classifiers(cfg, data)
        held = list(range(data.n_held))
        test_x = metrics.downsample(data.crops[held], cfg.classifier_size)
        test_y = np.array([EXPRESSIONS.index(data.pool[i].expression) for i in held])
        _, expr_feats = metrics.predict(clf["expr"], test_x)
        triplets = verification_triplets(data, pairs, cfg.seed)
        _, id_same = metrics.predict(clf["probe"], metrics.downsample(data.crops[triplets[1]], cfg.classifier_size))
        _, id_other = metrics.predict(clf["probe"], metrics.downsample(data.crops[triplets[2]], cfg.classifier_size))
        inception = None
        if cfg.inception:
            from leed_train.features import load_feature_model

            inception = load_feature_model(cfg.inception, "cpu")
        real = {"test_x": test_x, "test_y": test_y, "expr_feats": expr_feats, "triplets": triplets}
        real.update(id_same=id_same, id_other=id_other)
        if inception is not None:
            real["inception"] = inception_features(inception, as_tensor(data.crops[held]))

        # every method's edits of the same pairs, measured the same way; the truth as a ceiling
        truth = data.crops[pairs.truth]
        edits = {e.label: run_edits(e, data.crops, pairs.face, pairs.ref, cfg.alpha) for e in editors}
        rows = {
            label: method_metrics(cfg, images, truth, pairs, clf, real, inception) for label, images in edits.items()
        }
        from leed_train.stage_neutralizer import neutral_targets

        targets, has = neutral_targets(data.pool, data.crops)  # each image's own neutral photo, warped once
        neutrals = true_neutrals(pairs, targets, has) if isinstance(editors[0], TorchEditor) else None
        if neutrals is not None:  # stage 2 alone: what a perfect stage 1 would give this run
            oracle = editors[0].edit_from_neutrals(
                as_tensor(neutrals[0]), as_tensor(data.crops[pairs.ref]), as_tensor(neutrals[1]), cfg.alpha
            )
            rows[ORACLE_ROW] = method_metrics(cfg, oracle, truth, pairs, clf, real, inception)
        rows["Ground truth (ceiling)"] = method_metrics(cfg, as_tensor(truth), truth, pairs, clf, real, inception)
        neutralizer = neutralizer_metrics(cfg, editors[0], data, clf, targets, has)
        if neutralizer is None:
            data.notes.append("no held-out expressive image has its subject's neutral photo: neutralizer not measured")

        # figures (the first editor is MODEL_DIR's LEED)
        main = editors[0]
        drawn = {
            "grid": transfer_grid(
                out / "grid.png", main, data, figure_inputs(data, cfg.figure_inputs, ("090",)), None, cfg.alpha
            )
        }
        profile = figure_inputs(data, 2, PROFILE_ANGLES)
        if profile:
            drawn["profile"] = transfer_grid(out / "profile.png", main, data, profile, "090", cfg.alpha)
        else:
            data.notes.append("no held-out image at angles 045/135: profile figure skipped")
        drawn["strips"] = strips(out / "strips.png", main, data, pairs, cfg.figure_inputs)
        drawn["tsne"] = tsne_figure(out / "tsne.png", main, data, cfg)
        shown = np.arange(min(8, len(pairs.face)))
        ablation = [("input", list(data.crops[pairs.face[shown]])), ("reference", list(data.crops[pairs.ref[shown]]))]
        ablation += [(label, list(figures.to_uint8(images[shown]))) for label, images in edits.items()]
        ablation.append(("ground truth", list(truth[shown])))
        drawn["ablation"] = figures.image_grid(
            out / "ablation.png", ablation, [f"to {EXPRESSIONS[t]}" for t in pairs.target[shown]]
        )
    finally:
        for e in editors:
            e.close()

    result = {
        "model_dir": cfg.model_dir,
        "alpha": cfg.alpha,
        "data": {
            "data_dir": cfg.data_dir,
            "held_out_subjects": sorted({s.subject for s in data.pool[: data.n_held]}),
            "held_out_images": data.n_held,
            "reference_pool": "held-out" if len(data.pool) == data.n_held else "held-out + training stand-ins",
            "pairs": int(len(pairs.face)),
            "pairs_without_truth_skipped": pairs.skipped,
            "notes": data.notes,
        },
        "classifiers": {
            "size": cfg.classifier_size,
            "width": cfg.classifier_width,
            "epochs": cfg.classifier_epochs,
            "training_images": len(clf["train_x"]),
            "probe_subjects": clf["probe_subjects"],
        },
        "R": 100 * metrics.accuracy(clf["expr"], test_x, test_y),
        "methods": rows,
        "neutralizer": neutralizer,
        "fid": "computed" if inception is not None else "not computed (no --inception checkpoint)",
        "figures": {k: v.name for k, v in drawn.items()},
        "seconds": round(time.perf_counter() - start, 1),
    }
    write_json(out / "metrics.json", result)
    (out / "report.md").write_text(render_report(result))
    return result


def _neutralizer_section(neutralizer: dict | None) -> list[str]:
    if not neutralizer:
        return []
    rows = [(k, v) for k, v in neutralizer.items() if isinstance(v, dict)]
    return [
        "## Neutralizer (stage 1)",
        "",
        f"{neutralizer['faces']} held-out expressive faces, each with its subject's neutral photo at the same "
        "angle and gaze. Every edit starts from G(x, neutral): an expression it leaves in stays in the edit.",
        "",
        "| image | classified neutral (%) | SSIM to the own neutral photo |",
        "| --- | --- | --- |",
        *(f"| {k} | {v['classified_neutral']:.1f} | {v['ssim']:.4f} |" for k, v in rows),
        "",
    ]


def render_report(result: dict) -> str:
    """report.md: our table, the paper's RaFD numbers, the figures and what differs."""
    has_fid = any("fid" in m for m in result["methods"].values())
    head = "| method | pairs | SSIM | PSNR (dB) | G (%) | R+G (%) | FD-expr | ID verif. (%) |" + (
        " FID |" if has_fid else ""
    )
    lines = [
        f"# leed-eval report: `{result['model_dir']}`",
        "",
        f"Held-out subjects {', '.join(result['data']['held_out_subjects'])} of `{result['data']['data_dir']}` "
        f"({result['data']['held_out_images']} images, {result['data']['pairs']} edit pairs with a ground truth, "
        f"{result['data']['pairs_without_truth_skipped']} without one skipped); {result['seconds']} s.",
        "",
        f"R (expression classifier on real held-out images): **{result['R']:.2f}%**",
        "",
        *(
            [f"Every edit at alpha {result['alpha']:g} (the paper's tables: 1); the ground truth is alpha 1's.", ""]
            if result.get("alpha", 1.0) != 1.0
            else []
        ),
        head,
        "|" + " --- |" * (head.count("|") - 1),
    ]
    for name, m in result["methods"].items():
        row = (
            f"| {name} | {m['pairs']} | {m['ssim']:.4f} | {m['psnr']:.2f} | {m['G']:.2f} | {m['R+G']:.2f} | "
            f"{m['fd_expr']:.3f} | {m['id_verification']:.1f} |"
        )
        lines.append(row + (f" {m['fid']:.2f} |" if has_fid else ""))
    lines += [
        "",
        f"The paper on RaFD (Tables 1-2; FID with an ImageNet Inception, R = {PAPER_RAFD_R} for every method):",
        "",
        "| method | FID | SSIM | G (%) | R+G (%) |",
        "| --- | --- | --- | --- | --- |",
        *(f"| {k} | {v['fid']} | {v['ssim']} | {v['G']} | {v['R+G']} |" for k, v in PAPER_RAFD.items()),
        "",
        "**Not comparable in absolute terms**: ours are measured on the data given (synthetic faces "
        "unless it is RaFD), with small classifiers trained here on 64x64 crops, FD-expr in that "
        "classifier's feature space instead of FID (no Inception here), and SSIM against an exact "
        "ground truth. Compare rows of this table with each other; the ground-truth row is what a "
        "perfect editor would score.",
        "",
        *(f"- {note}" for note in result["data"]["notes"]),
        "",
        *_neutralizer_section(result.get("neutralizer")),
        "## Figures",
        "",
        *(f"- {k}: ![{k}]({v})" for k, v in result["figures"].items()),
        "",
    ]
    return "\n".join(lines)
