"""The exported graphs: one nn.Module per graph with fixed input/output names.

Five per-module graphs (one network each) and two fused ones a C++ host loads without Python
glue: `reference` (reference crop -> expression code dexp, neutralizer inside) and `edit`
(face crop, dexp, per-sample alpha -> edited crop). Names are the contract with the runtime:

    neutralizer  image -> neutral            encoder      image -> code
    extractor    code, neutral_code -> dexp  interpolator neutral_code, dexp -> code
    decoder      code -> image               reference    reference -> dexp
    edit         face, dexp, alpha -> edited (alpha: (batch,) float32)

Images are RGB, NCHW, float32 in [-1, 1]; codes are C x 8 x 8. Axis 0 is the dynamic batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from leed_train.trained import TrainedRun

GRAPHS = ("neutralizer", "encoder", "extractor", "interpolator", "decoder", "reference", "edit")


@dataclass(frozen=True)
class GraphSpec:
    """Input and output names of one graph and the kind of each tensor ("image", "code", "alpha")."""

    name: str
    inputs: tuple[tuple[str, str], ...]
    outputs: tuple[tuple[str, str], ...]


SPECS = {
    "neutralizer": GraphSpec("neutralizer", (("image", "image"),), (("neutral", "image"),)),
    "encoder": GraphSpec("encoder", (("image", "image"),), (("code", "code"),)),
    "extractor": GraphSpec("extractor", (("code", "code"), ("neutral_code", "code")), (("dexp", "code"),)),
    "interpolator": GraphSpec("interpolator", (("neutral_code", "code"), ("dexp", "code")), (("code", "code"),)),
    "decoder": GraphSpec("decoder", (("code", "code"),), (("image", "image"),)),
    "reference": GraphSpec("reference", (("reference", "image"),), (("dexp", "code"),)),
    "edit": GraphSpec("edit", (("face", "image"), ("dexp", "code"), ("alpha", "alpha")), (("edited", "image"),)),
    # `--opencv`: batch 1, label planes constant, alpha folded into dexp by the host (OpenCV 4.6's
    # importer fails on the label Expand and on the per-sample alpha Mul of the graphs above)
    "reference.opencv": GraphSpec("reference.opencv", (("reference", "image"),), (("dexp", "code"),)),
    "edit.opencv": GraphSpec("edit.opencv", (("face", "image"), ("dexp", "code")), (("edited", "image"),)),
}
OPENCV_GRAPHS = ("reference.opencv", "edit.opencv")


def tensor_shape(kind: str, image_size: int, code_channels: int, batch: int | str = "batch") -> list[int | str]:
    """The shape of a tensor kind with the batch axis (symbolic unless given) first."""
    if kind == "image":
        return [batch, 3, image_size, image_size]
    if kind == "code":
        return [batch, code_channels, image_size // 16, image_size // 16]
    return [batch]


class Neutralizer(nn.Module):
    """image -> neutral: StarGAN's G with its target fixed to "neutral"."""

    def __init__(self, G: nn.Module) -> None:
        super().__init__()
        self.G = G

    def forward(self, image: Tensor) -> Tensor:
        return self.G(image)


class Encoder(nn.Module):
    """image -> code: E."""

    def __init__(self, E: nn.Module) -> None:
        super().__init__()
        self.E = E

    def forward(self, image: Tensor) -> Tensor:
        return self.E(image)


class Extractor(nn.Module):
    """code, neutral_code -> dexp: X."""

    def __init__(self, X: nn.Module) -> None:
        super().__init__()
        self.X = X

    def forward(self, code: Tensor, neutral_code: Tensor) -> Tensor:
        return self.X(code, neutral_code)


class Interpolator(nn.Module):
    """neutral_code, dexp -> code: I (dexp already scaled by alpha)."""

    def __init__(self, I: nn.Module) -> None:
        super().__init__()
        self.I = I

    def forward(self, neutral_code: Tensor, dexp: Tensor) -> Tensor:
        return self.I(neutral_code, dexp)


class Decoder(nn.Module):
    """code -> image: D."""

    def __init__(self, D: nn.Module) -> None:
        super().__init__()
        self.D = D

    def forward(self, code: Tensor) -> Tensor:
        return self.D(code)


class Reference(nn.Module):
    """reference -> dexp = X(E(R), E(G(R))): the neutralizer runs inside."""

    def __init__(self, G: nn.Module, E: nn.Module, X: nn.Module) -> None:
        super().__init__()
        self.G, self.E, self.X = G, E, X

    def forward(self, reference: Tensor) -> Tensor:
        return self.X(self.E(reference), self.E(self.G(reference)))


def edit_chain(
    G: nn.Module,
    E: nn.Module,
    I: nn.Module,
    D: nn.Module,
    face: Tensor,
    dexp: Tensor,
    residual: bool,
    gate: float = 0.0,
) -> Tensor:
    """D(I(E(G(face)), dexp)), dexp already scaled by alpha. With `residual` (`leed-export
    --residual-edit`, not in the paper) the detail D loses is put back: edited + (G(face) - D(I(c, 0))),
    i.e. G(face) plus the decoder's change, so the face keeps G's sharpness (alpha 0 gives G(face)
    exactly); D and I run twice. With `gate` > 0 (`--residual-gate`) the detail is faded out where
    the decoder changes the face by `gate` or more (the per-pixel change, mean over RGB, box-blurred
    9x9, in [-1, 1] units): a brow or mouth that moved then shows no ghost of its old place."""
    neutral = G(face)
    code = E(neutral)
    edited = D(I(code, dexp))
    if not residual:
        return edited
    base = D(I(code, dexp * 0.0))
    detail = neutral - base
    if gate > 0:
        change = (edited - base).abs()
        change = (change[:, 0:1] + change[:, 1:2] + change[:, 2:3]) / 3  # Slice/Add: OpenCV DNN loads it
        # 1 - min(1, blurred / gate) as a ReLU: OpenCV 4.6 cannot parse the exporter's Clip
        detail = detail * torch.relu(1 - nn.functional.avg_pool2d(change, 9, 1, 4) / gate)
    return edited + detail


class Edit(nn.Module):
    """face, dexp, alpha -> D(I(E(G(face)), alpha * dexp)), alpha one scalar per sample
    (`edit_chain`, residual or not)."""

    def __init__(
        self, G: nn.Module, E: nn.Module, I: nn.Module, D: nn.Module, residual: bool = False, gate: float = 0.0
    ) -> None:
        super().__init__()
        self.G, self.E, self.I, self.D = G, E, I, D
        self.residual, self.gate = residual, gate

    def forward(self, face: Tensor, dexp: Tensor, alpha: Tensor) -> Tensor:
        scaled = alpha[:, None, None, None] * dexp
        return edit_chain(self.G, self.E, self.I, self.D, face, scaled, self.residual, self.gate)


class ConstantPlanesNeutralizer(nn.Module):
    """The neutralizer with its "neutral" label planes stored as one (1, c_dim, H, W) constant
    concatenated to the image: no Expand for OpenCV's importer; batch 1 only."""

    def __init__(self, neutralizer: nn.Module, size: int) -> None:
        super().__init__()
        self.G = neutralizer.G
        planes = neutralizer.label[:, :, None, None].expand(1, -1, size, size).contiguous()
        self.register_buffer("planes", planes, persistent=False)

    def forward(self, image: Tensor) -> Tensor:
        return self.G.with_planes(image, self.planes)


class EditScaled(Edit):
    """face, dexp -> the edit: alpha already multiplied into dexp by the host."""

    def forward(self, face: Tensor, dexp: Tensor) -> Tensor:  # type: ignore[override]
        return edit_chain(self.G, self.E, self.I, self.D, face, dexp, self.residual, self.gate)


def build_opencv_graphs(run: TrainedRun, residual: bool = False, gate: float = 0.0) -> dict[str, nn.Module]:
    """The `--opencv` variants of `reference` and `edit` (see SPECS)."""
    G = ConstantPlanesNeutralizer(run.neutralizer(), run.cfg.net.image_size)
    E, D, X, I = (run.nets[k] for k in ("E", "D", "X", "I"))
    edit = EditScaled(G, E, I, D, residual, gate)
    return {"reference.opencv": Reference(G, E, X).eval(), "edit.opencv": edit.eval()}


def build_graphs(run: TrainedRun, residual: bool = False, gate: float = 0.0) -> dict[str, nn.Module]:
    """Every graph of GRAPHS as an eval-mode module sharing the run's weights; `residual` and
    `gate`: the `edit` graph puts back the detail the decoder loses (`edit_chain`)."""
    G = run.neutralizer()
    E, D, X, I = (run.nets[k] for k in ("E", "D", "X", "I"))
    modules: dict[str, nn.Module] = {
        "neutralizer": Neutralizer(G),
        "encoder": Encoder(E),
        "extractor": Extractor(X),
        "interpolator": Interpolator(I),
        "decoder": Decoder(D),
        "reference": Reference(G, E, X),
        "edit": Edit(G, E, I, D, residual, gate),
    }
    return {name: m.eval() for name, m in modules.items()}


@torch.no_grad()
def real_feeds(run: TrainedRun, faces: Tensor, references: Tensor, alpha: Tensor) -> dict[str, dict[str, Tensor]]:
    """Inputs of every graph computed from real crops (faces and references, same batch), so
    each graph is checked on the values it sees in use, not on noise."""
    G = run.neutralizer()
    E, X = run.nets["E"], run.nets["X"]
    ref_code, ref_neutral_code = E(references), E(G(references))
    dexp = X(ref_code, ref_neutral_code)
    face_neutral_code = E(G(faces))
    edited_code = run.nets["I"](face_neutral_code, alpha[:, None, None, None] * dexp)
    return {
        "neutralizer": {"image": faces},
        "encoder": {"image": faces},
        "extractor": {"code": ref_code, "neutral_code": ref_neutral_code},
        "interpolator": {"neutral_code": face_neutral_code, "dexp": alpha[:, None, None, None] * dexp},
        "decoder": {"code": edited_code},
        "reference": {"reference": references},
        "edit": {"face": faces, "dexp": dexp, "alpha": alpha},
    }
