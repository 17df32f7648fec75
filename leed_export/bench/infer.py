"""`leed-bench infer`: each graph of an export's chain, the four chained and the fused `edit`,
through a runtime backend, per batch size (see the package doc); `bench_torch` times the same
networks in PyTorch eager on the run's weights for comparison.

`compare` times other backends (or the same one with other options) in the same run: each
call of the primary backend is followed by the same call on each compared one (interleaved
rounds, so a load change on a shared machine hits all alike), on the same inputs. Their rows
carry `speedup` (primary ms / this ms) and the error of their output against the primary's
(`max_abs_vs_primary`, `psnr_db_vs_primary`, peak-to-peak 2 as for [-1, 1] images).
A compared setup is `KIND[:OPTION=VALUE,...]`, e.g. `openvino:precision=bf16`."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from leed_export.bench.common import gpus, graph_flops, machine, peak_tflops, rates, time_calls
from leed_export.export import recorded_style
from leed_runtime.backends.base import Backend
from leed_runtime.backends.select import artifact_for_backend, choose_backend
from leed_runtime.backends.table import backend_row, open_backend
from leed_runtime.cuda import Stream
from leed_runtime.errors import LeedError
from leed_runtime.manifest import read_manifest, verify
from leed_train.model import EditStyle
from leed_train.trained import load_trained

CHAIN = ("neutralizer", "encoder", "interpolator", "decoder")


@dataclass
class InferConfig:
    """Options of `leed-bench infer`."""

    export_dir: str
    backend: str = "auto"
    batches: tuple[int, ...] = (1, 8, 64)
    precision: str = "auto"  # auto | fp16 | fp32 graphs
    cuda_graph: bool = False
    nhwc: bool = False
    threads: int = 0  # onnxruntime intra-op threads (0: onnxruntime's default); also torch's
    warmup: int = 5
    iters: int = 50
    torch_run: str | None = None  # a training run: time the same chain in PyTorch eager
    compare: tuple[str, ...] = ()  # other setups timed in the same run: KIND[:OPTION=VALUE,...]


@dataclass
class Setup:
    """One backend with its options, opened on every graph of the chain and `edit`."""

    label: str
    kind: str
    options: dict[str, Any]
    names: dict[str, str]  # graph -> artifact
    engines: dict[str, Backend] = field(default_factory=dict)


def parse_setup(spec: str) -> tuple[str, dict[str, Any]]:
    """`KIND[:OPTION=VALUE,...]` -> (kind, options); values: integers, true/false, or text."""
    kind, _, rest = spec.partition(":")
    options: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise LeedError(f"--compare {spec!r}: give KIND or KIND:OPTION=VALUE,..., e.g. openvino:precision=bf16")
        lowered = value.strip().lower()
        options[key.strip()] = (
            int(lowered)
            if lowered.lstrip("-").isdigit()
            else {"true": True, "false": False}.get(lowered, value.strip())
        )
    return kind.strip(), options


def bench_infer(cfg: InferConfig) -> dict[str, Any]:
    """Time each graph of the chain, the chain and `edit` per batch size (see the package doc)."""
    if not cfg.batches or min(cfg.batches) < 1:
        raise LeedError(f"--batch {','.join(map(str, cfg.batches))}: give batch sizes >= 1, e.g. 1,8,64")
    if cfg.warmup < 0 or cfg.iters < 1:
        raise LeedError("--iters must be >= 1 and --warmup >= 0")
    folder = Path(cfg.export_dir)
    manifest = verify(folder, read_manifest(folder))
    kind, reason = choose_backend(cfg.backend, folder, manifest, "edit", cfg.precision)
    uses_cuda = backend_row(kind).uses_cuda
    graphs = (*CHAIN, "edit")
    names = {g: artifact_for_backend(kind, manifest, g, cfg.precision) for g in graphs}
    precision = manifest.artifacts[names["edit"]].precision
    found = gpus() if uses_cuda else []
    gpu = found[0]["name"] if found else None
    peak = peak_tflops(gpu, precision)
    others = []  # validated before any stream is made
    for spec in cfg.compare:
        other, given = parse_setup(spec)
        other = choose_backend(other, folder, manifest, "edit", cfg.precision)[0]  # refuses what cannot work here
        others.append(
            (spec, other, given, {g: artifact_for_backend(other, manifest, g, cfg.precision) for g in graphs})
        )
    setups = [Setup(kind, kind, _backend_options(cfg, kind), names)]
    setups += [Setup(spec, k, {**_backend_options(cfg, k), **given}, n) for spec, k, given, n in others]
    rows: list[dict[str, Any]] = []
    compared: list[list[dict[str, Any]]] = [[] for _ in setups[1:]]
    refused: dict[str, str] = {}
    try:
        for setup in setups:
            for g, n in setup.names.items():  # open_backend refuses options the kind does not take
                setup.engines[g] = open_backend(setup.kind, folder, manifest, n, **setup.options)
            for engine in setup.engines.values():
                engine.activate()
        engines = setups[0].engines
        # graphs onnxruntime would not capture (nodes left on the CPU) ran uncaptured: say which
        refused = {g: e.cuda_graph_refused for g, e in engines.items() if getattr(e, "cuda_graph_refused", "")}
        for batch in cfg.batches:
            feeds = _chain_feeds(engines, manifest.image["size"], manifest.code["channels"], batch)
            flops = {g: graph_flops(folder / manifest.artifacts[names[g]].file, batch) for g in graphs}
            flops["chain"] = None if any(flops[g] is None for g in CHAIN) else sum(flops[g] for g in CHAIN)
            calls = [_calls(setup.engines, feeds) for setup in setups]
            for graph in (*CHAIN, "edit", "chain"):
                timings = _time_interleaved([c[graph] for c in calls], cfg.warmup, cfg.iters)
                rows.append(rates({"graph": graph, "batch": batch, **timings[0]}, flops[graph], peak))
                primary = _host(_first(calls[0][graph]())) if len(setups) > 1 else None
                for i, timing in enumerate(timings[1:]):
                    row = rates({"graph": graph, "batch": batch, **timing}, flops[graph], peak)
                    row["speedup"] = timings[0]["median_ms"] / timing["median_ms"]
                    row.update(_error(primary, _host(_first(calls[i + 1][graph]()))))
                    compared[i].append(row)
    finally:
        for setup in setups:
            for engine in setup.engines.values():
                engine.deactivate()
            if setup.options.get("stream") is not None:
                setup.options["stream"].close()
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
    if cfg.cuda_graph:
        result["cuda_graph_refused"] = refused
    if cfg.compare:
        result["compare"] = [
            {
                "label": setup.label,
                "backend": setup.kind,
                "options": {k: v for k, v in setup.options.items() if k != "stream"},
                "artifacts": setup.names,
                "results": found_rows,
            }
            for setup, found_rows in zip(setups[1:], compared, strict=True)
        ]
    if cfg.torch_run:
        style = recorded_style(manifest.source)
        device = "cuda" if uses_cuda else "cpu"
        result["torch"] = bench_torch(cfg, device, style)  # the same `edit` graph as the export's
        by_key = {(r["graph"], r["batch"]): r for r in result["torch"]["results"]}
        for row in rows:
            ref = by_key.get((row["graph"], row["batch"]))
            row["torch_median_ms"] = ref["median_ms"] if ref else None
            row["speedup_vs_torch"] = ref["median_ms"] / row["median_ms"] if ref else None
    return result


def _backend_options(cfg: InferConfig, kind: str) -> dict[str, Any]:
    """Backend constructor options: those the config gives (threads, CUDA graphs, NHWC), and for
    a CUDA kind one stream for the whole chain with its outputs left on the GPU (and buffers for
    the largest batch where the kind takes `max_batch`). `open_backend` refuses what `kind`
    does not take, naming the kinds that do (the backend table's options)."""
    row = backend_row(kind)
    given = {"threads": cfg.threads, "cuda_graph": cfg.cuda_graph, "prefer_nhwc": cfg.nhwc}
    options: dict[str, Any] = {k: v for k, v in given.items() if v}
    if row.uses_cuda:
        options.update(stream=Stream(), outputs_on_device=True)  # one stream, chain stays on the GPU
        if "max_batch" in row.options:
            options["max_batch"] = max(cfg.batches)
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


def _calls(engines: dict[str, Any], feeds: dict[str, dict[str, Any]]) -> dict[str, Callable[[], Any]]:
    calls: dict[str, Callable[[], Any]] = {g: _call(engines[g], feeds[g]) for g in (*CHAIN, "edit")}
    calls["chain"] = _chain_call(engines, feeds)
    return calls


def _first(out: Any) -> Any:
    """A graph's first output (by the manifest's order), or the chain's image."""
    return next(iter(out.values())) if isinstance(out, dict) else out


def _time_interleaved(calls: list[Callable[[], Any]], warmup: int, iters: int) -> list[dict[str, Any]]:
    """`common.time_calls` for several calls at once: each round runs every call once, in turn."""
    for _ in range(warmup):
        for call in calls:
            call()
    ms: list[list[float]] = [[] for _ in calls]
    for _ in range(iters):
        for i, call in enumerate(calls):
            start = time.perf_counter()
            call()
            ms[i].append((time.perf_counter() - start) * 1e3)
    return [
        {
            "median_ms": float(np.median(m)),
            "p99_ms": float(np.percentile(m, 99)),
            "mean_ms": float(np.mean(m)),
            "min_ms": float(np.min(m)),
            "iters": iters,
        }
        for m in ms
    ]


def _error(reference: np.ndarray, candidate: np.ndarray) -> dict[str, float]:
    """Max abs error and PSNR (peak-to-peak 2, as for [-1, 1] images) of `candidate` vs `reference`."""
    diff = np.asarray(candidate, np.float64) - np.asarray(reference, np.float64)
    mse = float(np.mean(diff**2))
    return {
        "max_abs_vs_primary": float(np.max(np.abs(diff))),
        "psnr_db_vs_primary": float("inf") if mse == 0 else float(10 * np.log10(4 / mse)),
    }


def _chain_call(engines: dict[str, Any], feeds: dict[str, dict[str, Any]]) -> Callable[[], Any]:
    """The four per-module graphs back to back, each fed the previous one's output."""
    dexp = feeds["interpolator"]["dexp"]

    def chain() -> Any:
        neutral = engines["neutralizer"].infer(feeds["neutralizer"])["neutral"]
        code = engines["encoder"].infer({"image": neutral})["code"]
        edited = engines["interpolator"].infer({"neutral_code": code, "dexp": dexp})["code"]
        return engines["decoder"].infer({"code": edited})["image"]

    return chain


def bench_torch(cfg: InferConfig, device: str, style: EditStyle = EditStyle()) -> dict[str, Any]:
    """The same networks, chain and `edit` (`style`: as leed-export built the export's) in PyTorch eager (FP32): the run's `Leed`, which the export's graphs trace."""
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
                "edit": lambda f=face, d=dexp, a=alpha: leed.edit(f, d, a, style),
                "chain": lambda f=face, d=dexp: leed.edit(f, d),  # D(I(E(G(f)), d)), as the four graphs chained
            }
            for graph, call in calls.items():
                row = {"graph": graph, "batch": batch, **time_calls(call, cfg.warmup, cfg.iters, sync)}
                rows.append(rates(row, None, None))
    return {
        "run": str(cfg.torch_run),
        "device": device,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "results": rows,
    }
