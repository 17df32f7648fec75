"""The models `leed-eval` measures, behind one interface (`Editor`): a training run's `Leed` in
PyTorch (`TorchEditor`) or an export folder's graphs on onnxruntime (`OnnxEditor`).
`open_model` tells them apart; `run_edits` edits pool images with any of them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from leed_export.evaluate.config import EvalConfig
from leed_export.evaluate.data import as_tensor
from leed_export.export import recorded_style
from leed_runtime.backends.table import open_backend
from leed_runtime.errors import LeedError
from leed_runtime.manifest import FILENAME, Manifest, read_manifest, verify
from leed_train.model import EditStyle
from leed_train.trained import TrainedRun, load_trained


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
    """A training run's `Leed` in PyTorch: D(I(E(G(I_A)), alpha X(E(R_B), E(G(R_B))))), made as
    `style` says (as leed-export builds the export's `edit` graph), or with `linear` the code
    arithmetic of Eq. 1+5: D(E(G(I_A)) + alpha (E(R_B) - E(G(R_B))))."""

    def __init__(
        self, run: TrainedRun, label: str, batch_size: int, linear: bool = False, style: EditStyle = EditStyle()
    ) -> None:
        self.label, self.batch_size, self.linear, self.style = label, batch_size, linear, style
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
        bases, neutral_code = [], []  # each face through G and E once, `Leed.decode_edit` per pair
        for f in self._batches(faces, f"{self.label}: inputs"):
            n = self.leed.G(f)
            bases.append((f if self.style.base == "input" else n).cpu())
            neutral_code.append(self.leed.E(n).cpu())
        neutrals = torch.cat(bases) if self.style.needs_base else None
        neutral_codes = torch.cat(neutral_code)
        out = []
        for i in tqdm(range(0, len(face_idx), self.batch_size), desc=f"{self.label}: edits", leave=False):
            sl = slice(i, i + self.batch_size)
            a = torch.as_tensor(alpha[sl], dtype=torch.float32).to(self.device)
            dexp = self.leed.scale(codes[ref_idx[sl]].to(self.device), a)
            n = neutrals[face_idx[sl]].to(self.device) if neutrals is not None else None
            edited = self.leed.decode_edit(
                neutral_codes[face_idx[sl]].to(self.device), dexp, n, self.style, self.linear
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
            edited = self.leed.edit_from_neutrals(fn, r, rn, alpha, self.style, self.linear)
            out.append(edited.float().clamp(-1, 1).cpu())
        return torch.cat(out)


class OnnxEditor(Editor):
    """An export folder's `reference` and `edit` graphs on onnxruntime (CPU)."""

    def __init__(self, folder: Path, manifest: Manifest, batch_size: int) -> None:
        style = recorded_style(manifest.source)
        on_input = " on the input" if style.needs_base and style.base == "input" else ""
        kind = "residual edit" if style.residual else "warp edit" if style.warp else ""
        self.label = f"LEED (ONNX, {kind}{on_input})" if kind else "LEED (ONNX)"
        self.batch_size = batch_size
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
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return load_trained(path, device)


def _check_export_residual(path: Path, manifest: Manifest, cfg: EvalConfig) -> None:
    """`--residual-edit` sets a run's edit; an export's was fixed by leed-export: refuse a different one."""
    if not cfg.residual_edit:
        return
    residual, gate = manifest.source.get("residual_edit", False), manifest.source.get("residual_gate")
    if not residual or gate != cfg.residual_gate:
        built = f"--residual-edit --residual-gate {gate}" if residual else "without --residual-edit"
        raise LeedError(
            f"MODEL_DIR {path}: an export's edit graph is fixed by leed-export (this one was built {built}); "
            "drop --residual-edit/--residual-gate, or give the training run"
        )


def open_model(model_dir: str, cfg: EvalConfig) -> tuple[list[Editor], Path | list[str] | None]:
    """The editors of MODEL_DIR (a run: LEED, with `cfg.residual_edit`/`cfg.residual_gate` as
    leed-export builds `edit`, and its linear baseline; an export: LEED on ONNX) and what says
    which subjects it never saw: for an export the held-out subject ids its manifest records
    (else its run's split file), for a run its split file; None when unknown."""
    path = Path(model_dir)
    if not path.exists():
        raise LeedError(f"MODEL_DIR {path}: not found; give a training run (leed-train --out) or an export folder")
    if (path / FILENAME).is_file():
        manifest = verify(path, read_manifest(path), ["reference", "edit"])
        _check_export_residual(path, manifest, cfg)
        source = Path(str(manifest.source.get("run_dir", ""))) / "split.json"
        # the manifest's held-out ids work on any copy of the data; older exports have only run_dir
        heldout = [str(s) for s in manifest.source.get("heldout_subjects", [])]
        return [OnnxEditor(path, manifest, cfg.batch_size)], heldout or (source if source.is_file() else None)
    if (path / "config.json").is_file():
        run = _load_run(path, cfg.device)
        style = EditStyle(cfg.residual_edit, cfg.residual_gate if cfg.residual_edit else 0.0)
        return [
            TorchEditor(run, "LEED (residual edit)" if style.residual else "LEED", cfg.batch_size, style=style),
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


def run_edits(
    editor: Editor, crops: np.ndarray, face: np.ndarray, ref: np.ndarray, alpha: np.ndarray | float = 1.0
) -> torch.Tensor:
    """Edit pool images `face` toward pool images `ref` (each unique image encoded once)."""
    faces, face_idx = np.unique(face, return_inverse=True)
    refs, ref_idx = np.unique(ref, return_inverse=True)
    codes = editor.reference_codes(as_tensor(crops[refs]))
    alpha = np.broadcast_to(np.asarray(alpha, np.float32), face.shape).copy()
    return editor.edit_pairs(as_tensor(crops[faces]), codes, face_idx, ref_idx, alpha)
