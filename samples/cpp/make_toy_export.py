"""A stand-in export folder for the C++ sample, holding the OpenCV variant of the fused graphs
that OpenCV 4.6's ONNX importer loads (artifacts `reference.opencv` and `edit.opencv`):

- batch fixed to 1;
- the neutralizer's "neutral" label planes stored as one constant (1, c_dim, 128, 128)
  tensor concatenated to the image (the Expand/ConstantOfShape/Where chain torch exports
  for `label.expand(...)` fails in OpenCV 4.6);
- `edit` takes `face` and `dexp` already scaled by alpha (OpenCV 4.6 cannot broadcast the
  per-sample alpha over dexp: "Mul ... axis != outShape.size()"); the host multiplies.

    python samples/cpp/make_toy_export.py OUT_DIR [--dynamo]

The networks are the `tiny` preset's, untrained (weights jittered so none are equal, as after
training): meaningless faces, but the operators, shapes and names leed-export writes.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path

import torch
from torch import Tensor, nn

from leed_runtime.face.align import template
from leed_runtime.manifest import Manifest, TensorSpec, artifact_for
from leed_train.config import NetConfig
from leed_train.networks import build_leed_networks
from leed_train.stargan import Generator, Neutralizer

C_DIM, NEUTRAL = 2, 0  # the "binary" label space
OPSET = 18


class ConstantLabelNeutralizer(nn.Module):
    """Neutralizer with its label planes precomputed for one image."""

    def __init__(self, neutralizer: Neutralizer, size: int) -> None:
        super().__init__()
        self.main = neutralizer.G.main
        planes = neutralizer.label[:, :, None, None].expand(1, -1, size, size).contiguous()
        self.register_buffer("planes", planes, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.main(torch.cat([x, self.planes], dim=1))


class Reference(nn.Module):
    """reference -> dexp = X(E(R), E(G(R)))."""

    def __init__(self, G: nn.Module, E: nn.Module, X: nn.Module) -> None:
        super().__init__()
        self.G, self.E, self.X = G, E, X

    def forward(self, reference: Tensor) -> Tensor:
        return self.X(self.E(reference), self.E(self.G(reference)))


class ScaledEdit(nn.Module):
    """face, dexp (already alpha * dexp) -> D(I(E(G(face)), dexp))."""

    def __init__(self, G: nn.Module, E: nn.Module, I: nn.Module, D: nn.Module) -> None:  # noqa: E741
        super().__init__()
        self.G, self.E, self.I, self.D = G, E, I, D

    def forward(self, face: Tensor, dexp: Tensor) -> Tensor:
        return self.D(self.I(self.E(self.G(face)), dexp))


def export_graph(module: nn.Module, feeds: dict[str, Tensor], output: str, path: Path, dynamo: bool) -> None:
    options = {"external_data": False} if dynamo else {}
    torch.onnx.export(
        module,
        tuple(feeds.values()),
        path,
        input_names=list(feeds),
        output_names=[output],
        dynamo=dynamo,
        opset_version=OPSET,
        **options,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--dynamo", action="store_true", help="torch.export-based exporter (default: legacy)")
    args = parser.parse_args()

    torch.manual_seed(0)
    net = NetConfig.from_preset("tiny")
    size, channels, code = net.image_size, net.code_channels, net.image_size // 16
    G = Generator(net, C_DIM)
    nets = build_leed_networks(net)
    E, D, X, I = (nets[k] for k in ("E", "D", "X", "I"))  # noqa: E741
    with torch.no_grad():
        for p in [*G.parameters(), *E.parameters(), *D.parameters(), *X.parameters(), *I.parameters()]:
            p.add_(torch.randn_like(p) * 1e-3)
    neutral = ConstantLabelNeutralizer(Neutralizer(G, C_DIM, NEUTRAL), size)
    reference, edit = Reference(neutral, E, X).eval(), ScaledEdit(neutral, E, I, D).eval()

    image = torch.rand(1, 3, size, size) * 2 - 1
    dexp = torch.randn(1, channels, code, code)
    args.out.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        export_graph(reference, {"reference": image}, "dexp", args.out / "reference.opencv.onnx", args.dynamo)
        export_graph(edit, {"face": image, "dexp": dexp}, "edited", args.out / "edit.opencv.onnx", args.dynamo)

    def spec(name: str, shape: list[int | str]) -> TensorSpec:
        return TensorSpec(name=name, shape=shape, dtype="float32")

    common = {"format": "onnx", "precision": "fp32", "opset": OPSET}
    image_shape, code_shape = [1, 3, size, size], [1, channels, code, code]
    manifest = Manifest(
        leed_version="0.1.0",
        created=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        preset="tiny",
        source={"run_dir": None, "checkpoint": None, "step": 0},
        image={
            "size": size,
            "layout": "NCHW",
            "color": "RGB",
            "dtype": "float32",
            "range": [-1.0, 1.0],
            "template": template(size).tolist(),
        },
        code={"channels": channels, "size": code},
        artifacts={
            "reference.opencv": artifact_for(
                args.out,
                "reference.opencv.onnx",
                inputs=[spec("reference", image_shape)],
                outputs=[spec("dexp", code_shape)],
                **common,
            ),
            "edit.opencv": artifact_for(
                args.out,
                "edit.opencv.onnx",
                inputs=[spec("face", image_shape), spec("dexp", code_shape)],
                outputs=[spec("edited", image_shape)],
                **common,
            ),
        },
    )
    print(manifest.save(args.out))


if __name__ == "__main__":
    main()
