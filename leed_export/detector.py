"""MTCNN (Zhang et al. 2016) as three ONNX graphs for `leed_runtime.face.detect`.

The modules and their weights are `leed_train.mtcnn`'s (facenet-pytorch 2.6.0, MIT); here
they are exported with the softmax in the graph and outputs in a fixed order named at export.

Inputs are NCHW RGB float32 images normalised as MTCNN expects: (x - 127.5) * 0.0078125.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from leed_export.onnx_export import quiet_exporter
from leed_runtime.errors import LeedError
from leed_runtime.manifest import Artifact, TensorSpec, artifact_for
from leed_train.mtcnn import NETS, OUTPUTS, WEIGHTS, load_mtcnn

__all__ = ["NETS", "OUTPUTS", "SPECS", "WEIGHTS", "export_detector", "load_mtcnn"]
PARITY_TOLERANCE = 1e-4

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
