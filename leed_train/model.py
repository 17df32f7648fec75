"""`Leed`: the model (paper Fig. 2, Eq. 1-5), as nanoGPT's `GPT` owns `generate`.

One definition of the chain D(I(E(G(x)), alpha X(E(R), E(G(R))))) for everything that runs it:
training samples (`stage_leed.sample_grid`), `TrainedRun`, the export graphs
(`leed_export.graphs`), `leed-eval` and `leed-bench --torch`. Every method is plain tensor ops
on its inputs, so the ONNX graphs are traces of these methods (dynamo exporter, opset 18+) and
what a run measures in PyTorch is what its export computes. No gradient mode is set here:
callers wrap inference in `torch.no_grad()`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

RESIDUAL_BASES = ("neutral", "input")  # whose detail the residual edit puts back
RESIDUAL_GATE = {"min": 0, "max": 2}  # --residual-gate's range: 0 (off) .. 2, in [-1, 1] image units
DEFAULT_RESIDUAL_GATE = 0.1  # leed-export's --residual-gate default


class Leed(nn.Module):
    """G (image -> neutral face: the neutralizer's generator with its target fixed to "neutral"; None
    where neutral faces are given), E (image -> code), X (code, neutral code -> dexp),
    I (neutral code, dexp -> code), D (code -> image). Images are NCHW in [-1, 1], codes
    C x H/16 x W/16. Holds the networks it is given (shared, not copied); an export graph
    holds only those it runs (None for the rest)."""

    def __init__(
        self, G: nn.Module | None, E: nn.Module, X: nn.Module | None, I: nn.Module | None, D: nn.Module | None
    ) -> None:
        super().__init__()
        self.G, self.E, self.X, self.I, self.D = G, E, X, I, D

    def with_neutralizer(self, G: nn.Module) -> Leed:
        """The same E, X, I, D behind another neutralizer (the export's constant-plane G)."""
        return Leed(G, self.E, self.X, self.I, self.D)

    @staticmethod
    def scale(dexp: Tensor, alpha: Tensor | float) -> Tensor:
        """alpha * dexp: `alpha` one value per sample ((B,) tensor) or one float; 1.0 leaves
        dexp as it is (no Mul in a traced graph)."""
        if isinstance(alpha, Tensor):
            return alpha[:, None, None, None] * dexp
        return dexp if alpha == 1.0 else alpha * dexp

    def reference(self, image: Tensor, linear: bool = False) -> Tensor:
        """A reference's expression code dexp = X(E(R), E(G(R))); `linear`: the code difference
        E(R) - E(G(R)) of Eq. 1 (the paper's pseudo label, the linear baseline's dexp)."""
        code, neutral_code = self.E(image), self.E(self.G(image))
        return code - neutral_code if linear else self.X(code, neutral_code)

    def edit(
        self,
        face: Tensor,
        dexp: Tensor,
        alpha: Tensor | float = 1.0,
        residual: bool = False,
        gate: float = 0.0,
        linear: bool = False,
        base: str = "neutral",
    ) -> Tensor:
        """`face` edited toward `dexp` (from `reference`) with strength `alpha` (see `scale`):
        D(I(E(G(face)), alpha dexp)), or with `linear` Eq. 5's D(E(G(face)) + alpha dexp);
        `residual`, `gate`: see `decode_edit`. `base` (with `residual`, not in the paper): whose
        detail is put back, "neutral" (G(face)) or "input" (the face itself, so a neutralizer that
        leaves traces, e.g. pale patches where it painted, never shows where the decoder changes
        nothing). Not clamped (D ends in tanh; the residual edit can leave [-1, 1] by a little)."""
        if base not in RESIDUAL_BASES:
            raise ValueError(f"base must be one of {RESIDUAL_BASES}, got {base!r}")
        scaled = self.scale(dexp, alpha)
        neutral = self.G(face)
        return self.decode_edit(self.E(neutral), scaled, face if base == "input" else neutral, residual, gate, linear)

    def decode_edit(
        self,
        code: Tensor,
        dexp: Tensor,
        neutral: Tensor | None = None,
        residual: bool = False,
        gate: float = 0.0,
        linear: bool = False,
    ) -> Tensor:
        """The end of `edit` from the neutral face's code E(G(face)) and dexp already scaled by
        alpha: E1 = D(I(code, dexp)) (`linear`: D(code + dexp)).

        `residual` (`leed-export --residual-edit`, not in the paper) needs the neutral face
        G(face) and puts back the detail D loses: E1 + (1 - m) (G(face) - E0), E0 the same
        decode at dexp 0, so alpha 0 gives G(face) (D and I run twice). `gate` > 0
        (`--residual-gate`): m = min(1, blur(change) / gate), the change |E1 - E0| averaged over
        RGB and box-blurred 9x9, in [-1, 1] units: where a brow or mouth moved the detail fades
        out and leaves no ghost of its old place; `gate` 0: m = 0 everywhere. Written with the
        ops OpenCV 4.6's DNN importer loads (channel Slice/Add, not a mean; ReLU, not Clip)."""
        edited = self.D(self._interpolate(code, dexp, linear))
        if not residual:
            return edited
        assert neutral is not None, "the residual edit needs the neutral face G(face)"
        base = self.D(self._interpolate(code, dexp * 0.0, linear))
        detail = neutral - base
        if gate > 0:
            change = (edited - base).abs()
            change = (change[:, 0:1] + change[:, 1:2] + change[:, 2:3]) / 3
            detail = detail * torch.relu(1 - nn.functional.avg_pool2d(change, 9, 1, 4) / gate)
        return edited + detail

    def _interpolate(self, code: Tensor, dexp: Tensor, linear: bool) -> Tensor:
        return code + dexp if linear else self.I(code, dexp)

    def edit_from_neutrals(
        self,
        face_neutral: Tensor,
        reference: Tensor,
        reference_neutral: Tensor,
        alpha: Tensor | float = 1.0,
        residual: bool = False,
        gate: float = 0.0,
        linear: bool = False,
    ) -> Tensor:
        """The chain with given neutral faces in place of G's (stage 2 alone: training samples
        from the neutral-face cache, leed-eval's oracle row):
        D(I(E(N_A), alpha X(E(R_B), E(N_B)))); `linear`, `residual`, `gate` as in `edit`."""
        code, ref_code, ref_neutral_code = self.E(face_neutral), self.E(reference), self.E(reference_neutral)
        dexp = ref_code - ref_neutral_code if linear else self.X(ref_code, ref_neutral_code)
        return self.decode_edit(code, self.scale(dexp, alpha), face_neutral, residual, gate, linear)

    def forward(
        self, face: Tensor, reference: Tensor, alpha: Tensor | float = 1.0, residual: bool = False, gate: float = 0.0
    ) -> Tensor:
        """The whole chain from images: `edit(face, reference(reference), alpha, ...)`."""
        return self.edit(face, self.reference(reference), alpha, residual, gate)
