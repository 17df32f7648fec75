"""`leed-bench`: how fast an export runs, a real `leed-run` goes, and stage 2 trains.

- `bench_infer`: each graph of the per-frame chain (neutralizer -> encoder -> interpolator ->
  decoder), the four chained, and the fused `edit` graph, through a runtime backend with its
  own options (threads, CUDA graphs, NHWC, FP16 graphs), per batch size: warm-up, then many
  calls (GPU backends synchronise their stream in every call), median and p99. FLOPs are
  counted from the ONNX graph at that batch; on a GPU also the fraction of its peak.
  `torch_run` times the same chain in PyTorch eager on the run's weights (torch is imported
  only then).
- `bench_video`: `leed_runtime.run.run` on a real video, its per-stage split.
- `bench_train`: the real stage-2 step (`stage_leed.leed_step`) on random data of the
  preset's shapes: images/s and peak memory.
"""

from __future__ import annotations

import importlib.metadata
import math
import os
import platform
import resource
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from leed_runtime.errors import LeedError

CHAIN = ("neutralizer", "encoder", "interpolator", "decoder")
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


# -- shared -------------------------------------------------------------------------------------
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
    """Visible GPUs (cuda-python), [] when there is none or no cuda-python."""
    try:
        from leed_runtime.cuda import cuda_available, device_info

        return device_info() if cuda_available() else []
    except ImportError:
        return []


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


def graph_flops(path: Path | str, batch: int) -> float | None:
    """FLOPs of one call of an ONNX graph at `batch`: 2 x the MACs of its Conv, ConvTranspose,
    Gemm and MatMul nodes, shapes from onnx shape inference; None if a shape stays unknown."""
    import onnx

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


# -- infer --------------------------------------------------------------------------------------
@dataclass
class InferConfig:
    """Options of `leed-bench infer`."""

    export_dir: str
    backend: str = "auto"
    batches: tuple[int, ...] = (1, 8, 64)
    precision: str = "auto"  # auto | fp16 | fp32 graphs
    cuda_graph: bool = False
    nhwc: bool = False
    threads: int = 0  # onnxruntime-cpu intra-op threads (0: onnxruntime's default); also torch's
    warmup: int = 5
    iters: int = 50
    torch_run: str | None = None  # a training run: time the same chain in PyTorch eager


def bench_infer(cfg: InferConfig) -> dict[str, Any]:
    """Time each graph of the chain, the chain and `edit` per batch size (see module doc)."""
    from leed_runtime.backends.select import artifact_for_backend, choose_backend
    from leed_runtime.backends.table import open_backend
    from leed_runtime.manifest import read_manifest, verify

    if not cfg.batches or min(cfg.batches) < 1:
        raise LeedError(f"--batch {','.join(map(str, cfg.batches))}: give batch sizes >= 1, e.g. 1,8,64")
    if cfg.warmup < 0 or cfg.iters < 1:
        raise LeedError("--iters must be >= 1 and --warmup >= 0")
    folder = Path(cfg.export_dir)
    manifest = verify(folder, read_manifest(folder))
    kind, reason = choose_backend(cfg.backend, folder, manifest, "edit", cfg.precision)
    options = _backend_options(cfg, kind)
    names = {g: artifact_for_backend(kind, manifest, g, cfg.precision) for g in (*CHAIN, "edit")}
    precision = manifest.artifacts[names["edit"]].precision
    gpu = gpus()[0]["name"] if kind != "onnxruntime-cpu" and gpus() else None
    peak = peak_tflops(gpu, precision)
    engines = {g: open_backend(kind, folder, manifest, n, **options) for g, n in names.items()}
    rows: list[dict[str, Any]] = []
    try:
        for engine in engines.values():
            engine.activate()
        for batch in cfg.batches:
            feeds = _chain_feeds(engines, manifest.image["size"], manifest.code["channels"], batch)
            calls: dict[str, Callable[[], Any]] = {g: _call(engines[g], feeds[g]) for g in (*CHAIN, "edit")}
            calls["chain"] = _chain_call(engines, feeds)
            flops = {g: graph_flops(folder / manifest.artifacts[names[g]].file, batch) for g in (*CHAIN, "edit")}
            flops["chain"] = None if any(flops[g] is None for g in CHAIN) else sum(flops[g] for g in CHAIN)
            for graph, call in calls.items():
                row = {"graph": graph, "batch": batch, **time_calls(call, cfg.warmup, cfg.iters)}
                rows.append(_rates(row, flops[graph], peak))
    finally:
        for engine in engines.values():
            engine.deactivate()
        if options.get("stream") is not None:
            options["stream"].close()
    result = {
        "kind": "infer",
        "machine": machine(),
        "export": str(folder),
        "preset": manifest.preset,
        "backend": kind,
        "backend_reason": reason,
        "artifacts": names,
        "precision": precision,
        "options": {k: v for k, v in asdict(cfg).items() if k not in ("export_dir", "torch_run")},
        "gpu": gpu,
        "peak_tflops": peak,
        "results": rows,
    }
    if cfg.torch_run:
        residual, gate = manifest.source.get("residual_edit", False), manifest.source.get("residual_gate", 0.0)
        device = "cpu" if kind == "onnxruntime-cpu" else "cuda"
        result["torch"] = bench_torch(cfg, device, residual, gate)  # the same `edit` graph as the export's
        by_key = {(r["graph"], r["batch"]): r for r in result["torch"]["results"]}
        for row in rows:
            ref = by_key.get((row["graph"], row["batch"]))
            row["torch_median_ms"] = ref["median_ms"] if ref else None
            row["speedup_vs_torch"] = ref["median_ms"] / row["median_ms"] if ref else None
    return result


def _backend_options(cfg: InferConfig, kind: str) -> dict[str, Any]:
    """Backend constructor options for `kind`; refuses options that backend does not take."""
    if (cfg.cuda_graph or cfg.nhwc) and kind != "onnxruntime-cuda":
        raise LeedError(f"--cuda-graph and --nhwc are onnxruntime-cuda options; the backend here is {kind}")
    if kind == "onnxruntime-cpu":
        return {"threads": cfg.threads}
    if cfg.threads:
        raise LeedError(f"--threads sets onnxruntime-cpu's intra-op threads; the backend here is {kind}")
    from leed_runtime.cuda import Stream

    options: dict[str, Any] = {"stream": Stream(), "outputs_on_device": True}  # one stream, chain stays on the GPU
    if kind == "onnxruntime-cuda":
        options.update(cuda_graph=cfg.cuda_graph, prefer_nhwc=cfg.nhwc, max_batch=max(cfg.batches))
    return options


def _chain_feeds(engines: dict[str, Any], size: int, channels: int, batch: int) -> dict[str, dict[str, Any]]:
    """Inputs of every graph at `batch`: a random face in [-1, 1], the rest computed from it."""
    rng = np.random.default_rng(0)
    face = rng.uniform(-1, 1, (batch, 3, size, size)).astype(np.float32)
    dexp = (0.1 * rng.standard_normal((batch, channels, size // 16, size // 16))).astype(np.float32)
    neutral = _host(engines["neutralizer"].infer({"image": face})["neutral"])
    code = _host(engines["encoder"].infer({"image": neutral})["code"])
    edited = _host(engines["interpolator"].infer({"neutral_code": code, "dexp": dexp})["code"])
    return {
        "neutralizer": {"image": face},
        "encoder": {"image": neutral},
        "interpolator": {"neutral_code": code, "dexp": dexp},
        "decoder": {"code": edited},
        "edit": {"face": face, "dexp": dexp, "alpha": np.ones(batch, np.float32)},
    }


def _host(value: Any) -> np.ndarray:
    """A backend output as a numpy copy (device arrays are copied back)."""
    return np.array(value.to_host() if hasattr(value, "to_host") else value, copy=True)


def _call(engine: Any, feeds: dict[str, Any]) -> Callable[[], Any]:
    return lambda: engine.infer(feeds)


def _chain_call(engines: dict[str, Any], feeds: dict[str, dict[str, Any]]) -> Callable[[], Any]:
    """The four per-module graphs back to back, each fed the previous one's output."""
    dexp = feeds["interpolator"]["dexp"]

    def chain() -> Any:
        neutral = engines["neutralizer"].infer(feeds["neutralizer"])["neutral"]
        code = engines["encoder"].infer({"image": neutral})["code"]
        edited = engines["interpolator"].infer({"neutral_code": code, "dexp": dexp})["code"]
        return engines["decoder"].infer({"code": edited})["image"]

    return chain


def _rates(row: dict[str, Any], flops: float | None, peak: float | None) -> dict[str, Any]:
    """Per-frame time, frames/s, GFLOP/frame, achieved TFLOP/s and fraction of the GPU's peak."""
    seconds, batch = row["median_ms"] / 1e3, row["batch"]
    row["ms_per_frame"] = row["median_ms"] / batch
    row["fps"] = batch / seconds
    row["gflop_per_frame"] = flops / batch / 1e9 if flops is not None else None
    row["tflops"] = flops / seconds / 1e12 if flops is not None else None
    row["peak_fraction"] = row["tflops"] / peak if peak and row["tflops"] is not None else None
    return row


def bench_torch(cfg: InferConfig, device: str, residual: bool = False, gate: float = 0.0) -> dict[str, Any]:
    """The same networks, chain and `edit` (`residual`, `gate`: as `--residual-edit` built the
    export's) in PyTorch eager (FP32): the run's `Leed`, which the export's graphs trace."""
    import torch

    from leed_train.trained import load_trained

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    run = load_trained(cfg.torch_run, device)
    leed = run.leed
    sync = torch.cuda.synchronize if device == "cuda" else None
    size, channels = run.cfg.net.image_size, run.cfg.net.code_channels
    rows = []
    with torch.inference_mode():
        for batch in cfg.batches:
            gen = torch.Generator().manual_seed(0)
            face = (torch.rand(batch, 3, size, size, generator=gen) * 2 - 1).to(device)
            dexp = (0.1 * torch.randn(batch, channels, size // 16, size // 16, generator=gen)).to(device)
            alpha = torch.ones(batch, device=device)
            neutral = leed.G(face)
            code = leed.E(neutral)
            edited = leed.I(code, dexp)
            calls: dict[str, Callable[[], Any]] = {
                "neutralizer": lambda f=face: leed.G(f),
                "encoder": lambda n=neutral: leed.E(n),
                "interpolator": lambda c=code, d=dexp: leed.I(c, d),
                "decoder": lambda e=edited: leed.D(e),
                "edit": lambda f=face, d=dexp, a=alpha: leed.edit(f, d, a, residual=residual, gate=gate),
                "chain": lambda f=face, d=dexp: leed.edit(f, d),  # D(I(E(G(f)), d)), as the four graphs chained
            }
            for graph, call in calls.items():
                row = {"graph": graph, "batch": batch, **time_calls(call, cfg.warmup, cfg.iters, sync)}
                rows.append(_rates(row, None, None))
    return {
        "run": str(cfg.torch_run),
        "device": device,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "results": rows,
    }


# -- video --------------------------------------------------------------------------------------
def bench_video(
    export_dir: str, video: str, refs: list[str], backend: str = "auto", max_frames: int = 0
) -> dict[str, Any]:
    """One real `leed-run` (output to a temp file): its summary plus the per-stage split."""
    from leed_runtime.run import RunConfig, run

    with tempfile.TemporaryDirectory(prefix="leed-bench-") as tmp:
        summary = run(
            RunConfig(
                video=video,
                refs=list(refs),
                model=export_dir,
                out=str(Path(tmp) / "out.mp4"),
                backend=backend,
                max_frames=max_frames,
            )
        )
    stages = summary["ms_per_stage"]
    per_frame = sum(v["mean"] * v["count"] for v in stages.values()) / max(summary["frames"], 1)
    split = {s: v["mean"] * v["count"] / max(summary["frames"], 1) / per_frame for s, v in stages.items()}
    summary.pop("output")
    return {
        "kind": "video",
        "machine": machine(),
        "export": export_dir,
        **summary,
        "ms_per_frame_staged": per_frame,
        "fps_staged": 1e3 / per_frame if per_frame > 0 else 0.0,
        "stage_share": split,
    }


# -- train --------------------------------------------------------------------------------------
@dataclass
class TrainBenchConfig:
    """Options of `leed-bench train`."""

    preset: str = "paper"
    batch_size: int = 24
    device: str = "auto"
    steps: int = 10
    warmup: int = 2
    perceptual: str = "random-vgg19"  # same FLOPs as ImageNet VGG19, needs no weights
    use_q: bool = True
    threads: int = 0


def bench_train(cfg: TrainBenchConfig) -> dict[str, Any]:
    """Images/s of `stage_leed.leed_step` on random data (batch_size pairs per step) and peak memory."""
    import torch

    from leed_train import stage_leed
    from leed_train.config import TrainConfig
    from leed_train.features import ResNet18, build_perceptual
    from leed_train.loop import Run, _pick_device
    from leed_train.losses import FeatureReducer

    if cfg.steps < 1 or cfg.warmup < 0:
        raise LeedError("--steps must be >= 1 and --warmup >= 0")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    tcfg = TrainConfig(
        preset=cfg.preset, batch_size=cfg.batch_size, perceptual=cfg.perceptual, use_q=cfg.use_q, device=cfg.device
    ).resolved()
    device = _pick_device(cfg.device, 0)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory(prefix="leed-bench-") as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # random weights are the point here: no quality warnings
        run = Run(cfg=tcfg, dir=Path(tmp), device=device)
        nets, opts = stage_leed.build(run)
        phi = build_perceptual(tcfg.perceptual, device)
        psi, reducer = None, None
        if tcfg.use_q:  # Psi with random weights: the same ResNet-18 cost as a trained one
            resnet = ResNet18(8, tcfg.net.psi_width).to(device).eval().requires_grad_(False)
            psi = resnet.features
            size = tcfg.net.image_size
            with torch.no_grad():
                sample = psi(torch.rand(64, 3, size, size, device=device) * 2 - 1).float().cpu()
            reducer = FeatureReducer(dim=tcfg.net.q_out // 2).fit(sample).to(device)
        size, n = tcfg.net.image_size, tcfg.batch_size
        batch = {k: torch.rand(n, 3, size, size) * 2 - 1 for k in ("ia", "ia_n", "rb", "rb_n")}
        cuda = device.type == "cuda"
        if cuda:
            torch.cuda.reset_peak_memory_stats(device)
        timing = time_calls(
            lambda: stage_leed.leed_step(run, nets, opts, phi, psi, reducer, batch),
            cfg.warmup,
            cfg.steps,
            (lambda: torch.cuda.synchronize(device)) if cuda else None,
        )
    memory = (
        {"gpu_max_allocated_mb": torch.cuda.max_memory_allocated(device) / 2**20}
        if cuda
        else {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    )
    return {
        "kind": "train",
        "machine": machine(),
        "preset": cfg.preset,
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
        "options": asdict(cfg),
        "step": timing,
        "images_per_s": n / (timing["median_ms"] / 1e3),
        **memory,
    }
