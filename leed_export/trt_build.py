"""ONNX -> serialized TensorRT plan, one builder for `tensorrt` (10.12+, 11) and TensorRT-RTX
(`tensorrt_rtx_bindings`): the two share this API.

Strongly typed networks only: precision comes from the ONNX graph (FP16 graphs give FP16
engines), so there is no BuilderFlag.FP16 and no `max_workspace_size` (gone in TensorRT 10).
Steps, Polygraphy-style: `load_library` -> `parse_onnx` -> `make_config` (optimisation profile
over the batch axis, timing cache) -> `build_plan`. Plans stay plain plans (no metadata glued
in front); what describes them is the manifest.

What each `--engine` value means (module, manifest library name, pip extra, timing cache) is
its row in the runtime's backend table (leed_runtime/backends/table.py); the runtime imports
the library the same way (`BackendRow.load`) and compares the same version.
"""

from __future__ import annotations

import re
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from leed_runtime.backends.base import BackendRow
from leed_runtime.backends.table import engine_kinds, engine_rows
from leed_runtime.cuda import cuda_info
from leed_runtime.errors import LeedError

# --engine value -> (module, manifest library name, pip extra): a view of the backend table
# kept for leed_export/export.py until it reads `engine_row(engine)` itself
LIBRARIES = {row.kind: (row.module, row.library, row.extra) for row in engine_rows()}


@dataclass(frozen=True)
class BatchProfile:
    min: int
    opt: int
    max: int

    def as_dict(self) -> dict[str, int]:
        return {"min": self.min, "opt": self.opt, "max": self.max}


def parse_batch(text: str) -> BatchProfile:
    """`--batch min:opt:max` (e.g. 1:8:32), 1 <= min <= opt <= max; LeedError otherwise."""
    match = re.fullmatch(r"\s*(\d+):(\d+):(\d+)\s*", text)
    if not match:
        raise LeedError(f"--batch {text!r} is not min:opt:max (e.g. --batch 1:8:32)")
    lo, opt, hi = (int(g) for g in match.groups())
    if not 1 <= lo <= opt <= hi:
        raise LeedError(f"--batch {text}: need 1 <= min <= opt <= max (e.g. --batch 1:8:32)")
    return BatchProfile(lo, opt, hi)


def engine_row(engine: str) -> BackendRow:
    """The backend-table row of an `--engine` value; LeedError listing the choices otherwise."""
    for row in engine_rows():
        if row.kind == engine:
            return row
    raise LeedError(f"--engine {engine!r} is unknown; choose none, {' or '.join(engine_kinds())}")


def load_library(engine: str) -> ModuleType:
    """Import the library `--engine` names (as the runtime does); LeedError with the pip extra
    when it is missing or broken."""
    try:
        return engine_row(engine).load()
    except LeedError as exc:
        raise LeedError(f"--engine {engine}: {exc}") from None


def library_version(trt: ModuleType) -> str:
    """The version recorded in the manifest: the getter of the library's table row."""
    for row in engine_rows():
        if row.module == trt.__name__:
            return row.version(trt)
    raise LeedError(f"{trt.__name__} is not an engine library of the backend table ({', '.join(engine_kinds())})")


def has_timing_cache(engine: str) -> bool:
    """TensorRT keeps a builder timing cache; in TensorRT-RTX (>= 1.2) its calls are no-ops
    (tactics are picked at run time; the runtime cache belongs to the runtime)."""
    return engine_row(engine).timing_cache


def gpu_info() -> tuple[str | None, str | None]:
    """(name, compute capability "8.6") of CUDA device 0 from `cuda_info()`, or (None, None)
    without one: leed_export/export.py's view until it reads `cuda_info()` itself."""
    gpus = cuda_info().gpus
    return (gpus[0].name, gpus[0].compute_capability) if gpus else (None, None)


def parse_onnx(trt: ModuleType, logger: Any, onnx_path: Path) -> tuple[Any, Any, Any]:
    """(builder, network, parser) of a strongly typed network; every parser error is logged,
    one per line, then LeedError."""
    builder = trt.Builder(logger)
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes(), str(onnx_path)):
        for i in range(parser.num_errors):
            print(f"  {onnx_path.name}: ONNX parser: {' '.join(str(parser.get_error(i)).split())}", file=sys.stderr)
        raise LeedError(
            f"{onnx_path.name}: the {trt.__name__} ONNX parser rejected it ({parser.num_errors} error(s) above); "
            "try another --opset or --engine"
        )
    return builder, network, parser


def make_config(
    trt: ModuleType, builder: Any, network: Any, profile: BatchProfile, timing_cache: bytes | None
) -> tuple[Any, Any]:
    """Builder config with one optimisation profile (every input's batch axis over
    min/opt/max) and, when given, the timing cache (b"" starts an empty one)."""
    config = builder.create_builder_config()
    opt_profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        shape = tuple(tensor.shape)
        if shape[0] != -1 or any(d < 0 for d in shape[1:]):
            raise LeedError(f"input {tensor.name!r} has shape {list(shape)}: only axis 0 (batch) may be dynamic")
        rest = shape[1:]
        opt_profile.set_shape(tensor.name, (profile.min, *rest), (profile.opt, *rest), (profile.max, *rest))
    config.add_optimization_profile(opt_profile)
    cache = None
    if timing_cache is not None:
        cache = config.create_timing_cache(timing_cache)
        config.set_timing_cache(cache, ignore_mismatch=False)
    return config, cache


def build_plan(engine: str, onnx_path: Path, plan_path: Path, profile: BatchProfile, timing_cache_path: Path) -> None:
    """Build `plan_path` from `onnx_path`; the timing cache (TensorRT only) is loaded from and
    saved to `timing_cache_path`. LeedError when parsing or building fails."""
    trt = load_library(engine)
    logger = trt.Logger(trt.Logger.WARNING)  # warnings and errors, on stderr
    builder, network, _parser = parse_onnx(trt, logger, onnx_path)
    use_cache = has_timing_cache(engine)
    cache_bytes = (timing_cache_path.read_bytes() if timing_cache_path.is_file() else b"") if use_cache else None
    config, _cache = make_config(trt, builder, network, profile, cache_bytes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise LeedError(f"{onnx_path.name}: {trt.__name__} could not build an engine (see its log above)")
    plan_path.parent.mkdir(parents=True, exist_ok=True)
    plan_path.write_bytes(memoryview(plan))
    if use_cache:
        timing_cache_path.write_bytes(memoryview(config.get_timing_cache().serialize()))
