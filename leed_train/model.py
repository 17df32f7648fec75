"""`Leed`: the model (paper Fig. 2, Eq. 1-5), as nanoGPT's `GPT` owns `generate`.

One definition of the chain D(I(E(G(x)), alpha X(E(R), E(G(R))))) for everything that runs it:
training samples (`stage_leed.sample_grid`), `TrainedRun`, the export graphs
(`leed_export.graphs`), `leed-eval` and `leed-bench --torch`. Every method is plain tensor ops
on its inputs, so the ONNX graphs are traces of these methods (dynamo exporter, opset 18+) and
what a run measures in PyTorch is what its export computes. No gradient mode is set here:
callers wrap inference in `torch.no_grad()`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from leed_runtime.face.paste import feather_mask

RESIDUAL_BASES = ("neutral", "input")  # whose detail the residual edit puts back
RESIDUAL_GATE = {"min": 0, "max": 2}  # --residual-gate's range: 0 (off) .. 2, in [-1, 1] image units
DEFAULT_RESIDUAL_GATE = 0.1  # leed-export's --residual-gate default
WARP_PAINT = {"min": 0, "max": 2}  # --warp-paint's range
FOLD_LIMIT = 0.7  # the most a warp's displacement may change per unit of distance (1 would fold)
DEFAULT_WARP_PAINT = 1.0


@dataclass(frozen=True)
class EditStyle:
    """How `Leed.decode_edit` makes the edited face from the decoder's output: the one record of
    `leed-export`'s edit options (stored in the manifest), passed whole to every graph and editor.

    - default: the paper's edit, the decoded face D(I(code, dexp)) itself.
    - `residual` (`--residual-edit`): the decoded face plus the detail D loses, faded out by
      `gate` where D changes the face; `base` says whose detail ("neutral": G(face), "input").
    - `warp` (`--warp-edit`, a `--warp` run): `base`'s own pixels moved by the difference of D's
      displacement fields at dexp and at 0, plus `paint` times what D changes beyond the motion.
    """

    residual: bool = False
    gate: float = 0.0
    base: str = "neutral"
    warp: bool = False
    paint: float = DEFAULT_WARP_PAINT

    def __post_init__(self) -> None:
        if self.base not in RESIDUAL_BASES:
            raise ValueError(f"base must be one of {RESIDUAL_BASES}, got {self.base!r}")
        if self.residual and self.warp:
            raise ValueError("choose one of the residual and the warp edit")

    @property
    def needs_base(self) -> bool:
        """Whether the edit reads an image besides the codes (G(face) or the face)."""
        return self.residual or self.warp


def identity_grid(height: int, width: int, like: Tensor) -> Tensor:
    """grid_sample's grid (1,H,W,2) that samples every pixel at its own centre (align_corners=False)."""
    ys = (torch.arange(height, device=like.device, dtype=like.dtype) * 2 + 1) / height - 1
    xs = (torch.arange(width, device=like.device, dtype=like.dtype) * 2 + 1) / width - 1
    return torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)[None]


def face_region(like: Tensor) -> Tensor:
    """The aligned crop's face region (brows to chin, feathered; the runtime's paste mask of the
    template's landmarks) as a (1,1,H,W) tensor like `like` (a constant in an exported graph)."""
    return _region(like.shape[-1]).to(like.device, like.dtype)[None, None]


@functools.cache
def _region(size: int) -> Tensor:
    """`feather_mask(size)` as a tensor, drawn once per size (every training step and edit reads it)."""
    return torch.from_numpy(feather_mask(size))


def face_motion(flow: Tensor, flow0: Tensor, like: Tensor) -> Tensor:
    """The displacement an edit applies (`--warp`; `Leed.decode_edit` and L_warp alike): the
    difference of two codes' flows (B,2,h,w), confined to the face region (`face_region` of a
    crop like `like`) with its mean over the face removed, so features move within the face,
    nothing outside it moves and the face as a whole never shifts (photos of one person never
    line up exactly, so a whole-face shift is what a flow learnt from them would otherwise carry
    over from a reference), scaled down as a whole where it would fold the face (FOLD_LIMIT)."""
    region = nn.functional.interpolate(face_region(like), size=flow.shape[-2:], mode="area")
    moved = flow - flow0
    centre = (moved * region).sum(dim=(2, 3), keepdim=True) / region.sum()
    moved = (moved - centre) * region
    # never fold the face: where neighbouring displacements differ by more than FOLD_LIMIT of the
    # distance between them the warp would squeeze features over each other (swirls, seen on
    # real video); the whole move is scaled down until none does (per face, in grid units)
    height, width = moved.shape[-2:]
    steep = torch.maximum(
        (moved[..., :, 1:] - moved[..., :, :-1]).abs().amax(dim=(1, 2, 3)) * (width / 2),
        (moved[..., 1:, :] - moved[..., :-1, :]).abs().amax(dim=(1, 2, 3)) * (height / 2),
    )
    return moved * torch.clamp(FOLD_LIMIT / (steep + 1e-6), max=1.0)[:, None, None, None]


def warp(image: Tensor, flow: Tensor) -> Tensor:
    """`image` (B,3,H,W) resampled at its own grid plus `flow` (B,2,h,w, grid_sample's [-1, 1]
    units, upsampled bilinearly to H x W): out(p) = image(p + flow(p)), bicubic (a bilinear
    sample half a pixel off halves the finest detail), borders repeated."""
    height, width = image.shape[-2:]
    flow = nn.functional.interpolate(flow, size=(height, width), mode="bilinear", align_corners=False)
    grid = identity_grid(height, width, image) + flow.permute(0, 2, 3, 1)
    return nn.functional.grid_sample(image, grid, mode="bicubic", padding_mode="border", align_corners=False)


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
        style: EditStyle = EditStyle(),
        linear: bool = False,
    ) -> Tensor:
        """`face` edited toward `dexp` (from `reference`) with strength `alpha` (see `scale`):
        D(I(E(G(face)), alpha dexp)), or with `linear` Eq. 5's D(E(G(face)) + alpha dexp), made
        into the edited face as `style` says (`decode_edit`). Not clamped (D ends in tanh; the
        residual and warp edits can leave [-1, 1] by a little)."""
        neutral = self.G(face)
        base = face if style.base == "input" else neutral
        return self.decode_edit(self.E(neutral), self.scale(dexp, alpha), base, style, linear)

    def decode_edit(
        self,
        code: Tensor,
        dexp: Tensor,
        base: Tensor | None = None,
        style: EditStyle = EditStyle(),
        linear: bool = False,
    ) -> Tensor:
        """The end of `edit` from the neutral face's code E(G(face)) and dexp already scaled by
        alpha: E1 = D(I(code, dexp)) (`linear`: D(code + dexp)); `base` is the image whose detail
        the residual or warp edit keeps (G(face) or the face, by `style.base`).

        `style.residual` (`leed-export --residual-edit`, not in the paper): E1 + (1 - m) (base - E0),
        E0 the same decode at dexp 0, so alpha 0 gives the base (D and I run twice). `style.gate`
        > 0: m = min(1, blur(change) / gate), the change |E1 - E0| averaged over RGB and
        box-blurred 9x9, in [-1, 1] units: where a brow or mouth moved the detail fades out and
        leaves no ghost of its old place; gate 0: m = 0 everywhere. Written with the ops OpenCV
        4.6's DNN importer loads (channel Slice/Add, not a mean; ReLU, not Clip).

        `style.warp` (`--warp-edit`, a `--warp` run; not in the paper): the base moved by
        d = `face_motion`(flow(E1's code), flow(E0's code)), plus paint m (E1 - E0 moved by d),
        what D changes beyond the motion (teeth, creases); m is the face region of the crop
        template (`face_region`), so hair, ears and background never move or get painted. alpha
        0 gives the base exactly."""
        if not style.needs_base:
            return self.D(self._interpolate(code, dexp, linear))
        assert base is not None, "the residual and warp edits need the base image"
        if style.warp:
            target, source = self._interpolate(code, dexp, linear), self._interpolate(code, dexp * 0.0, linear)
            if not style.paint:  # the flows alone: D's image layers never run
                return warp(base, face_motion(self.D.flow(target), self.D.flow(source), base))
            (edited, flow), (start, flow0) = self.D.with_flow(target), self.D.with_flow(source)
            moved = face_motion(flow, flow0, base)
            return warp(base, moved) + (style.paint * face_region(base)) * (edited - warp(start, moved))
        edited = self.D(self._interpolate(code, dexp, linear))
        start = self.D(self._interpolate(code, dexp * 0.0, linear))
        detail = base - start
        if style.gate > 0:
            change = (edited - start).abs()
            change = (change[:, 0:1] + change[:, 1:2] + change[:, 2:3]) / 3
            detail = detail * torch.relu(1 - nn.functional.avg_pool2d(change, 9, 1, 4) / style.gate)
        return edited + detail

    def _interpolate(self, code: Tensor, dexp: Tensor, linear: bool) -> Tensor:
        return code + dexp if linear else self.I(code, dexp)

    def edit_from_neutrals(
        self,
        face_neutral: Tensor,
        reference: Tensor,
        reference_neutral: Tensor,
        alpha: Tensor | float = 1.0,
        style: EditStyle = EditStyle(),
        linear: bool = False,
    ) -> Tensor:
        """The chain with given neutral faces in place of G's (stage 2 alone: training samples
        from the neutral-face cache, leed-eval's oracle row):
        D(I(E(N_A), alpha X(E(R_B), E(N_B)))); `style`, `linear` as in `edit` (the base is N_A)."""
        code, ref_code, ref_neutral_code = self.E(face_neutral), self.E(reference), self.E(reference_neutral)
        dexp = ref_code - ref_neutral_code if linear else self.X(ref_code, ref_neutral_code)
        return self.decode_edit(code, self.scale(dexp, alpha), face_neutral, style, linear)

    def forward(
        self, face: Tensor, reference: Tensor, alpha: Tensor | float = 1.0, style: EditStyle = EditStyle()
    ) -> Tensor:
        """The whole chain from images: `edit(face, reference(reference), alpha, style)`."""
        return self.edit(face, self.reference(reference), alpha, style)
