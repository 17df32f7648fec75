"""What every `leed-bench` benchmark shares: the machine it ran on, the GPU's peak, timing of
calls, FLOPs of an ONNX graph and the rates derived from them."""

from __future__ import annotations

import importlib.metadata
import math
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from leed_runtime.cuda import cuda_info

# Dense FP16 tensor-core and plain FP32 peak TFLOP/s; the first name contained in the GPU's wins.
PEAK_TFLOPS: dict[str, tuple[float, float]] = {
    "H200": (989.0, 67.0),
    "H100 PCIe": (756.0, 51.0),
    "H100": (790.0, 67.0),  # NOTES.md's yardstick figure for the lent H100
    "A100": (312.0, 19.5),
    "L40S": (362.0, 91.6),
    "L4": (121.0, 30.3),
    "A10": (125.0, 31.2),
    "RTX 4090": (165.2, 82.6),
    "V100": (125.0, 15.7),
    "T4": (65.0, 8.1),
}
VERSIONS = ("numpy", "onnx", "onnxruntime", "onnxruntime-gpu", "opencv-python-headless", "torch")


def machine() -> dict[str, Any]:
    """Date, host, CPU, GPUs and library versions (read from package metadata: no imports)."""
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [ln.split(":", 1)[1].strip() for ln in cpuinfo.read_text().splitlines() if ln.startswith("model name")]
        cpu = names[0] if names else cpu
    versions = {"python": platform.python_version()}
    for name in VERSIONS:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "host": platform.node(),
        "os": platform.platform(),
        "cpu": cpu,
        "cpu_count": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "load_average_1min": os.getloadavg()[0],  # other work on the machine makes timings noisy
        "gpus": gpus(),
        "versions": versions,
    }


def gpus() -> list[dict[str, Any]]:
    """Visible GPUs (`cuda_info()`, the one GPU query) as dicts; [] when there is none or no cuda-python."""
    return [asdict(g) for g in cuda_info().gpus]


def peak_tflops(gpu_name: str | None, precision: str) -> float | None:
    """The GPU's peak TFLOP/s for `precision` (fp16 | fp32), None on a CPU or an unknown GPU."""
    for key, (fp16, fp32) in PEAK_TFLOPS.items():
        if gpu_name and key in gpu_name:
            return fp16 if precision == "fp16" else fp32
    return None


def time_calls(fn: Callable[[], Any], warmup: int, iters: int, sync: Callable[[], None] | None = None) -> dict:
    """Milliseconds per call of `fn` after `warmup` calls: median, p99, mean, min."""
    for _ in range(warmup):
        fn()
    if sync:
        sync()
    ms = []
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        if sync:
            sync()
        ms.append((time.perf_counter() - start) * 1e3)
    return {
        "median_ms": float(np.median(ms)),
        "p99_ms": float(np.percentile(ms, 99)),
        "mean_ms": float(np.mean(ms)),
        "min_ms": float(np.min(ms)),
        "iters": iters,
    }


def rates(row: dict[str, Any], flops: float | None, peak: float | None) -> dict[str, Any]:
    """Per-frame time, frames/s, GFLOP/frame, achieved TFLOP/s and fraction of the GPU's peak."""
    seconds, batch = row["median_ms"] / 1e3, row["batch"]
    row["ms_per_frame"] = row["median_ms"] / batch
    row["fps"] = batch / seconds
    row["gflop_per_frame"] = flops / batch / 1e9 if flops is not None else None
    row["tflops"] = flops / seconds / 1e12 if flops is not None else None
    row["peak_fraction"] = row["tflops"] / peak if peak and row["tflops"] is not None else None
    return row


def graph_flops(path: Path | str, batch: int) -> float | None:
    """FLOPs of one call of an ONNX graph at `batch`: 2 x the MACs of its Conv, ConvTranspose,
    Gemm and MatMul nodes, shapes from onnx shape inference; None if a shape stays unknown."""
    import onnx  # the [train] extra's: only FLOP counting needs it here

    model = onnx.load(str(path))
    for value in model.graph.input:
        dims = value.type.tensor_type.shape.dim
        if dims and not dims[0].dim_value:
            dims[0].dim_value = batch
    graph = onnx.shape_inference.infer_shapes(model, data_prop=True).graph
    shapes: dict[str, list[int]] = {init.name: list(init.dims) for init in graph.initializer}
    for value in [*graph.input, *graph.value_info, *graph.output]:
        dims = value.type.tensor_type.shape.dim
        if all(d.dim_value > 0 for d in dims):
            shapes[value.name] = [d.dim_value for d in dims]
    macs = 0
    for node in graph.node:
        if node.op_type not in ("Conv", "ConvTranspose", "Gemm", "MatMul"):
            continue
        a, b, out = (shapes.get(name) for name in (node.input[0], node.input[1], node.output[0]))
        if a is None or b is None or out is None:
            return None
        if node.op_type == "Conv":  # weight (Cout, Cin/group, kh, kw): each output sums Cin/group*kh*kw
            macs += math.prod(out) * math.prod(b[1:])
        elif node.op_type == "ConvTranspose":  # weight (Cin, Cout/group, kh, kw): each input scatters
            macs += math.prod(a) * math.prod(b[1:])
        elif node.op_type == "Gemm":
            trans_a = next((attr.i for attr in node.attribute if attr.name == "transA"), 0)
            macs += math.prod(out) * (a[0] if trans_a else a[1])
        else:
            macs += math.prod(out) * a[-1]
    return 2.0 * macs
