"""The exported graphs: their I/O specs and one thin nn.Module per graph around `Leed`
(leed_train/model.py), which owns the chain; nothing here computes anything of its own.

Five per-module graphs (one network each) and two fused ones a C++ host loads without Python
glue: `reference` (reference crop -> expression code dexp, neutralizer inside: `Leed.reference`)
and `edit` (face crop, dexp, per-sample alpha -> edited crop: `Leed.edit`). Names are the
contract with the runtime:

    neutralizer  image -> neutral            encoder      image -> code
    extractor    code, neutral_code -> dexp  interpolator neutral_code, dexp -> code
    decoder      code -> image               reference    reference -> dexp
    edit         face, dexp, alpha -> edited (alpha: (batch,) float32)
    fit          face -> fit (batch,): how well the model knows this face (the domain guard)

Images are RGB, NCHW, float32 in [-1, 1]; codes are C x 8 x 8. Axis 0 is the dynamic batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from leed_runtime.face.paste import feather_mask
from leed_train.model import EditStyle, Leed
from leed_train.trained import TrainedRun

GRAPHS = ("neutralizer", "encoder", "extractor", "interpolator", "decoder", "reference", "edit", "fit")


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
    "fit": GraphSpec("fit", (("face", "image"),), (("fit", "alpha"),)),
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


class NeutralizerGraph(nn.Module):
    """neutralizer: image -> neutral, `Leed.G` (StarGAN's G with its target fixed to "neutral")."""

    def __init__(self, leed: Leed) -> None:
        super().__init__()
        self.G = leed.G

    def forward(self, image: Tensor) -> Tensor:
        return self.G(image)


class EncoderGraph(nn.Module):
    """encoder: image -> code, `Leed.E`."""

    def __init__(self, leed: Leed) -> None:
        super().__init__()
        self.E = leed.E

    def forward(self, image: Tensor) -> Tensor:
        return self.E(image)


class ExtractorGraph(nn.Module):
    """extractor: code, neutral_code -> dexp, `Leed.X`."""

    def __init__(self, leed: Leed) -> None:
        super().__init__()
        self.X = leed.X

    def forward(self, code: Tensor, neutral_code: Tensor) -> Tensor:
        return self.X(code, neutral_code)


class InterpolatorGraph(nn.Module):
    """interpolator: neutral_code, dexp -> code, `Leed.I` (dexp already scaled by alpha)."""

    def __init__(self, leed: Leed) -> None:
        super().__init__()
        self.I = leed.I

    def forward(self, neutral_code: Tensor, dexp: Tensor) -> Tensor:
        return self.I(neutral_code, dexp)


class DecoderGraph(nn.Module):
    """decoder: code -> image, `Leed.D`."""

    def __init__(self, leed: Leed) -> None:
        super().__init__()
        self.D = leed.D

    def forward(self, code: Tensor) -> Tensor:
        return self.D(code)


class ReferenceGraph(Leed):
    """reference: reference -> dexp, `Leed.reference` (the neutralizer runs inside); holds only
    the networks it runs."""

    def __init__(self, leed: Leed) -> None:
        super().__init__(leed.G, leed.E, leed.X, None, None)

    def forward(self, reference: Tensor) -> Tensor:  # type: ignore[override]
        return self.reference(reference)


class EditGraph(Leed):
    """edit: face, dexp, alpha -> edited, `Leed.edit` with alpha one scalar per sample, made as
    `style` says (`leed-export`'s edit options); holds only the networks it runs."""

    def __init__(self, leed: Leed, style: EditStyle = EditStyle()) -> None:
        super().__init__(leed.G, leed.E, None, leed.I, leed.D)
        self.style = style

    def forward(self, face: Tensor, dexp: Tensor, alpha: Tensor) -> Tensor:  # type: ignore[override]
        return self.edit(face, dexp, alpha, self.style)


class ScaledEditGraph(EditGraph):
    """edit.opencv: face, dexp -> edited, `Leed.edit` with alpha already multiplied into dexp
    by the host."""

    def forward(self, face: Tensor, dexp: Tensor) -> Tensor:  # type: ignore[override]
        return self.edit(face, dexp, style=self.style)


class FitGraph(nn.Module):
    """fit: face -> fit (batch,), the domain guard (not in the paper). The neutral face's
    reconstruction error, mean |D(E(G(face))) - G(face)| over the face (the paste mask), divided
    by `scale`: that error's 99th percentile on the run's own training faces, measured at export
    (`calibrate_fit`). So 1 means "as badly reconstructed as the worst 1% of what the model was
    trained on"; a cartoon, a profile, a tiny or blurred face scores far higher, and the runtime
    fades the edit out between 1 and 1.5 instead of smearing that face."""

    def __init__(self, leed: Leed, size: int, scale: float = 1.0) -> None:
        super().__init__()
        self.G, self.E, self.D = leed.G, leed.E, leed.D
        mask = torch.from_numpy(feather_mask(size))
        self.register_buffer("mask", mask / mask.sum(), persistent=False)
        self.register_buffer("scale", torch.tensor(float(scale)), persistent=False)

    def error(self, face: Tensor) -> Tensor:
        neutral = self.G(face)
        return ((self.D(self.E(neutral)) - neutral).abs().mean(1) * self.mask).sum((1, 2))

    def forward(self, face: Tensor) -> Tensor:
        return self.error(face) / self.scale


@torch.no_grad()
def calibrate_fit(graph: FitGraph, faces: Tensor, batch: int = 64) -> dict[str, float]:
    """Set `graph.scale` to the 99th percentile of the reconstruction error over `faces` (the
    run's training crops); returns the percentiles for the manifest."""
    errors = torch.cat([graph.error(faces[i : i + batch]) for i in range(0, len(faces), batch)]).double()
    q = {f"q{p}": float(torch.quantile(errors, p / 100)) for p in (50, 90, 99)}
    graph.scale.fill_(max(q["q99"], 1e-6))
    return {"scale": q["q99"], **q, "faces": len(faces)}


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


def build_opencv_graphs(run: TrainedRun, style: EditStyle = EditStyle()) -> dict[str, nn.Module]:
    """The `--opencv` variants of `reference` and `edit` (see SPECS)."""
    leed = run.leed.with_neutralizer(ConstantPlanesNeutralizer(run.leed.G, run.cfg.net.image_size))
    return {
        "reference.opencv": ReferenceGraph(leed).eval(),
        "edit.opencv": ScaledEditGraph(leed, style).eval(),
    }


def build_graphs(run: TrainedRun, style: EditStyle = EditStyle()) -> dict[str, nn.Module]:
    """Every graph of GRAPHS as an eval-mode module sharing the run's weights (`run.leed`);
    `style`: how the `edit` graph makes the edited face (`Leed.decode_edit`)."""
    leed = run.leed
    modules: dict[str, nn.Module] = {
        "neutralizer": NeutralizerGraph(leed),
        "encoder": EncoderGraph(leed),
        "extractor": ExtractorGraph(leed),
        "interpolator": InterpolatorGraph(leed),
        "decoder": DecoderGraph(leed),
        "reference": ReferenceGraph(leed),
        "edit": EditGraph(leed, style),
        "fit": FitGraph(leed, run.cfg.net.image_size),
    }
    return {name: m.eval() for name, m in modules.items()}


@torch.no_grad()
def real_feeds(run: TrainedRun, faces: Tensor, references: Tensor, alpha: Tensor) -> dict[str, dict[str, Tensor]]:
    """Inputs of every graph computed from real crops (faces and references, same batch) by
    `run.leed`'s networks, so each graph is checked on the values it sees in use, not on noise."""
    leed = run.leed
    ref_code, ref_neutral_code = leed.E(references), leed.E(leed.G(references))
    dexp = leed.reference(references)
    scaled = Leed.scale(dexp, alpha)
    face_neutral_code = leed.E(leed.G(faces))
    return {
        "neutralizer": {"image": faces},
        "encoder": {"image": faces},
        "extractor": {"code": ref_code, "neutral_code": ref_neutral_code},
        "interpolator": {"neutral_code": face_neutral_code, "dexp": scaled},
        "decoder": {"code": leed.I(face_neutral_code, scaled)},
        "reference": {"reference": references},
        "edit": {"face": faces, "dexp": dexp, "alpha": alpha},
        "fit": {"face": faces},
    }
