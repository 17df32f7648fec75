"""MTCNN (Zhang et al. 2016) as three ONNX graphs for `leed_runtime.face.detect`.

The modules reproduce facenet-pytorch 2.6.0's `PNet`, `RNet`, `ONet` layer for layer (same
parameter names, so its state dicts load strictly; the same permute-then-flatten before
the dense layers, which the weights converted from Caffe depend on), with the softmax in
the graph and outputs in a fixed order named at export. Weights ship in
`assets/mtcnn.safetensors` (MIT, see `assets/MTCNN_LICENSE.txt`); nothing downloads.

Inputs are NCHW RGB float32 images normalised as MTCNN expects: (x - 127.5) * 0.0078125.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from leed_runtime.errors import LeedError
from leed_runtime.manifest import Artifact, TensorSpec, artifact_for

WEIGHTS = Path(__file__).resolve().parent / "assets" / "mtcnn.safetensors"
PARITY_TOLERANCE = 1e-4


class PNet(nn.Module):
    """Proposal net, fully convolutional: (B,3,H,W) -> prob (B,2,h,w), reg (B,4,h,w)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 10, kernel_size=3)
        self.prelu1 = nn.PReLU(10)
        self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(10, 16, kernel_size=3)
        self.prelu2 = nn.PReLU(16)
        self.conv3 = nn.Conv2d(16, 32, kernel_size=3)
        self.prelu3 = nn.PReLU(32)
        self.conv4_1 = nn.Conv2d(32, 2, kernel_size=1)
        self.softmax4_1 = nn.Softmax(dim=1)
        self.conv4_2 = nn.Conv2d(32, 4, kernel_size=1)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(image)))
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
        return self.softmax4_1(self.conv4_1(x)), self.conv4_2(x)


class RNet(nn.Module):
    """Refine net: (B,3,24,24) -> prob (B,2), reg (B,4)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 28, kernel_size=3)
        self.prelu1 = nn.PReLU(28)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(28, 48, kernel_size=3)
        self.prelu2 = nn.PReLU(48)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3 = nn.Conv2d(48, 64, kernel_size=2)
        self.prelu3 = nn.PReLU(64)
        self.dense4 = nn.Linear(576, 128)
        self.prelu4 = nn.PReLU(128)
        self.dense5_1 = nn.Linear(128, 2)
        self.softmax5_1 = nn.Softmax(dim=1)
        self.dense5_2 = nn.Linear(128, 4)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(image)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.prelu3(self.conv3(x))
        x = x.permute(0, 3, 2, 1).flatten(1)  # Caffe's (W, H, C) order, as the weights expect
        x = self.prelu4(self.dense4(x))
        return self.softmax5_1(self.dense5_1(x)), self.dense5_2(x)


class ONet(nn.Module):
    """Output net: (B,3,48,48) -> prob (B,2), reg (B,4), landmarks (B,10) (5 x then 5 y)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, kernel_size=3)
        self.prelu1 = nn.PReLU(32)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3)
        self.prelu2 = nn.PReLU(64)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3 = nn.Conv2d(64, 64, kernel_size=3)
        self.prelu3 = nn.PReLU(64)
        self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv4 = nn.Conv2d(64, 128, kernel_size=2)
        self.prelu4 = nn.PReLU(128)
        self.dense5 = nn.Linear(1152, 256)
        self.prelu5 = nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)
        self.softmax6_1 = nn.Softmax(dim=1)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(image)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.pool3(self.prelu3(self.conv3(x)))
        x = self.prelu4(self.conv4(x))
        x = x.permute(0, 3, 2, 1).flatten(1)  # Caffe's (W, H, C) order, as the weights expect
        x = self.prelu5(self.dense5(x))
        return self.softmax6_1(self.dense6_1(x)), self.dense6_2(x), self.dense6_3(x)


NETS: dict[str, type[nn.Module]] = {"pnet": PNet, "rnet": RNet, "onet": ONet}
OUTPUTS = {"pnet": ("prob", "reg"), "rnet": ("prob", "reg"), "onet": ("prob", "reg", "landmarks")}
# Input and output specs as the manifest records them (strings are dynamic dimensions).
SPECS: dict[str, tuple[list[TensorSpec], list[TensorSpec]]] = {
    "pnet": (
        [TensorSpec("image", ["batch", 3, "height", "width"], "float32")],
        [
            TensorSpec("prob", ["batch", 2, "out_height", "out_width"], "float32"),
            TensorSpec("reg", ["batch", 4, "out_height", "out_width"], "float32"),
        ],
    ),
    "rnet": (
        [TensorSpec("image", ["batch", 3, 24, 24], "float32")],
        [TensorSpec("prob", ["batch", 2], "float32"), TensorSpec("reg", ["batch", 4], "float32")],
    ),
    "onet": (
        [TensorSpec("image", ["batch", 3, 48, 48], "float32")],
        [
            TensorSpec("prob", ["batch", 2], "float32"),
            TensorSpec("reg", ["batch", 4], "float32"),
            TensorSpec("landmarks", ["batch", 10], "float32"),
        ],
    ),
}


def load_mtcnn(path: Path | None = None) -> dict[str, nn.Module]:
    """The three nets in eval mode, weights loaded strictly from `path` (default: the shipped file)."""
    from safetensors.torch import load_file

    path = Path(path) if path is not None else WEIGHTS
    if not path.is_file():
        raise LeedError(
            f"{path}: MTCNN weights missing; reinstall leed or rebuild them with leed_export/assets/convert_mtcnn.py"
        )
    tensors = load_file(str(path))
    nets = {}
    for name, cls in NETS.items():
        module = cls()
        prefix = f"{name}."
        module.load_state_dict({k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}, strict=True)
        nets[name] = module.eval()
    return nets


def _sample_inputs(name: str, seed: int) -> list[torch.Tensor]:
    """Parity inputs in MTCNN's normalised range; P-net at two odd sizes and batches."""
    shapes = {
        "pnet": [(1, 3, 61, 83), (3, 3, 37, 29)],
        "rnet": [(1, 3, 24, 24), (7, 3, 24, 24)],
        "onet": [(1, 3, 48, 48), (7, 3, 48, 48)],
    }
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(s, generator=g) * 2 - 1 for s in shapes[name]]


def _export_one(module: nn.Module, name: str, path: Path, opset: int) -> None:
    """Single-file ONNX with a dynamic batch (and spatial size for P-net), checked by onnx.checker."""
    import onnx

    x = _sample_inputs(name, 0)[0]
    batch = torch.export.Dim("batch", min=1, max=4096)
    dims = {0: batch}
    if name == "pnet":
        dims |= {2: torch.export.Dim("height", min=12, max=8192), 3: torch.export.Dim("width", min=12, max=8192)}
    from leed_export.onnx_export import quiet_exporter

    with quiet_exporter():
        program = torch.onnx.export(
            module,
            (x,),
            dynamo=True,
            opset_version=opset,
            input_names=["image"],
            output_names=list(OUTPUTS[name]),
            dynamic_shapes={"image": dims},
            external_data=False,
            optimize=True,
            verbose=False,
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    program.save(str(path), external_data=False)
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)


def _parity(module: nn.Module, name: str, path: Path) -> dict[str, float]:
    """Max and median abs error of onnxruntime (CPU) vs the torch module, over all outputs."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    errors = []
    for x in _sample_inputs(name, 1):
        with torch.no_grad():
            want = [t.numpy() for t in module(x)]
        got = session.run(list(OUTPUTS[name]), {"image": x.numpy()})
        errors += [np.abs(g - w).ravel() for g, w in zip(got, want, strict=True)]
    err = np.concatenate(errors)
    return {"max_abs": float(err.max()), "median_abs": float(np.median(err)), "tolerance": PARITY_TOLERANCE}


def export_detector(out_dir: Path, opset: int = 18) -> dict[str, Artifact]:
    """Write `detector/{pnet,rnet,onet}.onnx` under `out_dir`; return their manifest entries.

    Each graph is checked with onnx.checker and compared with its torch module through
    onnxruntime; a max abs error above 1e-4 raises (parity is a gate).
    """
    out_dir = Path(out_dir)
    artifacts = {}
    for name, module in load_mtcnn().items():
        file = f"detector/{name}.onnx"
        _export_one(module, name, out_dir / file, opset)
        parity = _parity(module, name, out_dir / file)
        if not parity["max_abs"] <= PARITY_TOLERANCE:
            raise LeedError(
                f"{out_dir / file}: onnxruntime differs from PyTorch by {parity['max_abs']:.3g} "
                f"(tolerance {PARITY_TOLERANCE:g}); try another --opset"
            )
        inputs, outputs = SPECS[name]
        artifacts[name] = artifact_for(
            out_dir, file, format="onnx", precision="fp32", inputs=inputs, outputs=outputs, opset=opset, parity=parity
        )
    return artifacts
