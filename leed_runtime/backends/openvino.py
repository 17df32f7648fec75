"""OpenVINO backend: the export's ONNX graphs on the CPU with OpenVINO (`pip install 'leed[openvino]'`).

The graph is read by OpenVINO's ONNX frontend (no conversion step, no IR files) and compiled
for the CPU with the LATENCY hint (one stream on all cores: frames come one batch at a time),
threads not pinned to cores (the pipeline's other stages share them).

Precision (`precision=` option):
- `fp32` (default): asked for explicitly with INFERENCE_PRECISION_HINT, because on CPUs with
  AVX512_BF16 or AMX OpenVINO silently computes in bf16 when nothing is said.
- `bf16`: only on CPUs OpenVINO lists BF16 for (native AVX512_BF16 / AMX), refused elsewhere
  with the reason. It is gated when the backend opens: the same graph compiled in FP32 and in
  bf16 runs on deterministic inputs made from the manifest's specs (images uniform in [-1, 1],
  other float inputs 0.1 x N(0, 1), 1-D inputs such as alpha 1.0), and bf16 is refused with the
  measured error unless every output passes BF16_GATE (errors of unbounded outputs, codes,
  are divided by their FP32 peak magnitude when it exceeds 1, as leed-export's parity gates do).

The MTCNN detector graphs (P-net's input size changes with every pyramid level, which makes
OpenVINO reshape per level) are better left on onnxruntime: see docs/benchmarks.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from leed_runtime.backends.base import Backend, BackendRow, gate_feeds  # noqa: F401 - gate_feeds re-exported
from leed_runtime.errors import LeedError, one_line
from leed_runtime.manifest import Artifact

PRECISIONS = ("fp32", "bf16")
_HINT = {"fp32": "f32", "bf16": "bf16"}  # INFERENCE_PRECISION_HINT values


@dataclass(frozen=True)
class Bf16Gate:
    """The bf16 parity gate against FP32 (errors on the [-1, 1] image scale).

    Measured (OpenVINO 2026.4, AMD EPYC Zen 4, 8 crops each) bf16 vs FP32:
    - `edit` of tw-tiny: real face crops median 2.9e-3, PSNR 43.8 dB; uniform-noise images
      (the gate's inputs) median 3.1e-3, PSNR 39.5 dB; max 0.27 (real) .. 0.58 (smooth
      synthetic): the residual edit's gate flips a few pixels, so the max is no gate.
    - `edit` of the compact export: real median 2.0e-3, PSNR 48.8 dB; noise 2.9e-3, 39.3 dB.
    - `reference`, `fit`, the MTCNN graphs: PSNR >= 46 dB (`fit` of compact on real crops:
      median 9e-3 of a per-face score).
    - `edit` of a `small` export from a 2-step smoke run (near-random weights): median 1.2e-2
      (real crops 1.1e-2), PSNR 39.6 dB: refused by the median gate.
    The median gate keeps the typical pixel within one 8-bit level (2/255); the PSNR gate
    (RMS error <= 0.036, 4.5 levels) has >= 3 dB headroom over the worst measurement; the max
    gate catches outputs bf16 really breaks (black, saturated or inverted: errors ~1-2),
    as does the NaN/Inf check."""

    median_abs: float = 2 / 255
    psnr_db: float = 35.0  # peak-to-peak 2 ([-1, 1] images)
    max_abs: float = 1.0

    def problem(self, reference: dict[str, np.ndarray], candidate: dict[str, np.ndarray]) -> str | None:
        """None if `candidate` (bf16) passes against `reference` (FP32); else the failing
        output with its measured errors and the tolerance."""
        for name, ref in reference.items():
            stats = bf16_error(ref, candidate[name])
            if (
                stats["nonfinite"]
                or stats["median_abs"] > self.median_abs
                or stats["psnr_db"] < self.psnr_db
                or stats["max_abs"] > self.max_abs
            ):
                return (
                    f"output {name!r}: bf16 vs FP32 median abs {stats['median_abs']:.2e}, PSNR {stats['psnr_db']:.1f} dB, "
                    f"max abs {stats['max_abs']:.2e}, {stats['nonfinite']} NaN/Inf (tolerance: median <= "
                    f"{self.median_abs:.1e}, PSNR >= {self.psnr_db:g} dB, max <= {self.max_abs:g}, no NaN/Inf)"
                )
        return None


BF16_GATE = Bf16Gate()


def bf16_error(reference: np.ndarray, candidate: np.ndarray) -> dict[str, float]:
    """Max and median abs error, PSNR (peak-to-peak 2) and NaN/Inf count of `candidate` vs
    `reference`; divided by the reference's peak magnitude where it exceeds 1 (codes)."""
    ref = np.asarray(reference, dtype=np.float64)
    got = np.asarray(candidate, dtype=np.float64)
    nonfinite = int(np.count_nonzero(~np.isfinite(got)))
    scale = max(1.0, float(np.max(np.abs(ref)))) if ref.size else 1.0
    err = np.abs(np.nan_to_num(got, nan=np.inf) - ref) / scale
    mse = float(np.mean(err**2)) if err.size else 0.0
    return {
        "max_abs": float(err.max()) if err.size else 0.0,
        "median_abs": float(np.median(err)) if err.size else 0.0,
        "psnr_db": float("inf") if mse == 0 else (float(10 * np.log10(4 / mse)) if np.isfinite(mse) else 0.0),
        "nonfinite": nonfinite,
    }


class OpenVINOBackend(Backend):
    """Run one ONNX artifact with OpenVINO on the CPU, in FP32 or (where the CPU has it) bf16."""

    def __init__(
        self,
        folder: Path,
        artifact: Artifact,
        artifact_name: str,
        device: str = "CPU",
        precision: str = "fp32",
        threads: int = 0,
        verify: bool = True,
    ) -> None:
        super().__init__(folder, artifact, artifact_name)
        self.row = OPENVINO
        self.name = self.row.kind
        if artifact.format != self.row.format:
            raise LeedError(
                f"artifact {artifact_name!r} ({artifact.file}) is a {artifact.format}, not an ONNX graph; "
                f"{self.name} runs the .onnx artifacts"
            )
        if precision not in PRECISIONS:
            raise LeedError(f"{self.name} option precision={precision!r} is unknown; choose {' or '.join(PRECISIONS)}")
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
            raise LeedError(f"{self.name} option threads={threads!r}: give a whole number >= 0 (0: all cores)")
        self.device = device
        self.precision = precision
        self.threads = threads
        self.verify = verify
        self.gate: dict[str, float] | None = None  # the bf16 gate's measured errors (worst output)
        self._compiled: Any = None
        self._request: Any = None
        self._outputs: dict[str, Any] = {}

    # -- activation ------------------------------------------------------------------------
    def _activate(self) -> None:
        path = self.check_file(self.verify)
        ov = self.row.load()
        if self.precision == "bf16":
            problem = bf16_problem(ov, self.device)
            if problem is not None:
                raise LeedError(f"{self.name} precision=bf16: {problem}; use precision=fp32")
        model = read_onnx(ov, path)
        self._check_names(model, path)
        compiled = self._compile(ov, model, path, self.precision)
        if self.precision == "bf16":
            self.gate = self._bf16_gate(ov, model, compiled, path)
        self._compiled = compiled
        self._request = compiled.create_infer_request()
        self._outputs = {spec.name: compiled.output(spec.name) for spec in self.outputs}

    def _compile(self, ov: ModuleType, model: Any, path: Path, precision: str) -> Any:
        config: dict[str, Any] = {
            "INFERENCE_PRECISION_HINT": _HINT[precision],
            "PERFORMANCE_HINT": "LATENCY",
            # threads pinned to cores slowed the rest of leed-run (detector, paste, encode) on
            # 2 shared cores: 13.2 -> 15.0 fps end to end unpinned (docs/benchmarks.md)
            "ENABLE_CPU_PINNING": False,
        }
        if self.threads:
            config["INFERENCE_NUM_THREADS"] = self.threads
        try:
            compiled = core(ov).compile_model(model, self.device, config)
        except Exception as exc:  # OpenVINO raises RuntimeError and its own exception types
            raise LeedError(
                f"{path}: openvino {ov.get_version()} cannot compile it for the {self.device} ({ov_reason(exc)}); "
                "use --backend onnxruntime-cpu"
            ) from None
        got = compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()  # "f32", "bf16"
        if got != _HINT[precision]:  # never silently another precision than asked for
            raise LeedError(
                f"{path}: openvino compiled it in {got}, not {_HINT[precision]}; use --backend onnxruntime-cpu"
            )
        return compiled

    def _bf16_gate(self, ov: ModuleType, model: Any, compiled: Any, path: Path) -> dict[str, float]:
        """bf16 against FP32 on `gate_feeds`: the worst output's errors; LeedError beyond BF16_GATE."""
        feeds = gate_feeds(self.inputs)
        names = [spec.name for spec in self.outputs]
        fp32 = _run(self._compile(ov, model, path, "fp32"), feeds, names)
        bf16 = _run(compiled, feeds, names)
        problem = BF16_GATE.problem(fp32, bf16)
        if problem is not None:
            raise LeedError(f"{path}: bf16 refused by its parity gate, {problem}; use precision=fp32")
        worst = [bf16_error(fp32[n], bf16[n]) for n in names]
        return {
            "median_abs": max(s["median_abs"] for s in worst),
            "max_abs": max(s["max_abs"] for s in worst),
            "psnr_db": min(s["psnr_db"] for s in worst),
        }

    def _check_names(self, model: Any, path: Path) -> None:
        for kind, ports, specs in (("inputs", model.inputs, self.inputs), ("outputs", model.outputs, self.outputs)):
            names = sorted(name for port in ports for name in port.get_names())
            want = sorted(t.name for t in specs)
            if not set(want) <= set(names) or len(ports) != len(want):
                raise LeedError(f"{path}: graph {kind} {names} differ from the manifest's {want}; re-run leed-export")

    def _deactivate(self) -> None:
        self._request = self._compiled = None
        self._outputs = {}

    # -- inference -------------------------------------------------------------------------
    def _infer(self, feeds: dict[str, Any], dims: dict[str, int]) -> dict[str, Any]:
        arrays = {}
        for name, value in feeds.items():
            if not isinstance(value, np.ndarray):
                raise LeedError(f"{self.name}: input {name!r} is a {type(value).__name__}; feed numpy arrays")
            arrays[name] = np.ascontiguousarray(value)
        try:
            result = self._request.infer(arrays, share_inputs=True)
        except Exception as exc:
            raise LeedError(f"{self.artifact.file}: {self.name} run failed: {ov_reason(exc)}") from None
        return {name: result[port] for name, port in self._outputs.items()}

    # -- checks before choosing a kind -------------------------------------------------------
    @classmethod
    def library_problem(cls, row: BackendRow, module: ModuleType) -> str | None:
        """OpenVINO without a CPU device (a build for other devices only)."""
        devices = core(module).available_devices
        if "CPU" not in devices:
            return (
                f"openvino {module.get_version()} has no CPU device (has {', '.join(devices) or 'none'}); {row.install}"
            )
        return None


def _run(compiled: Any, feeds: dict[str, np.ndarray], names: list[str]) -> dict[str, np.ndarray]:
    result = compiled.create_infer_request().infer(feeds)
    return {name: np.array(result[compiled.output(name)]) for name in names}


@cache
def core(ov: ModuleType) -> Any:
    """One `openvino.Core` per process (it holds the loaded device plugins)."""
    return ov.Core()


def read_onnx(ov: ModuleType, path: Path) -> Any:
    """The ONNX graph as an OpenVINO model, through the ONNX frontend only (`Core.read_model`
    tries every frontend on a bad file and the TensorFlow one prints parse errors)."""
    try:
        frontend = ov.frontend.FrontEndManager().load_by_framework("onnx")
        return frontend.convert(frontend.load(str(path)))
    except Exception as exc:
        raise LeedError(
            f"{path}: openvino {ov.get_version()} cannot read it ({ov_reason(exc)}); "
            "use --backend onnxruntime-cpu or re-run leed-export"
        ) from None


def bf16_problem(ov: ModuleType, device: str = "CPU") -> str | None:
    """None when OpenVINO computes bf16 natively on this CPU (AVX512_BF16 or AMX); else why."""
    try:
        capabilities = list(core(ov).get_property(device, "OPTIMIZATION_CAPABILITIES"))
        name = str(core(ov).get_property(device, "FULL_DEVICE_NAME"))
    except Exception as exc:
        return f"openvino cannot list the {device}'s capabilities ({ov_reason(exc)})"
    if "BF16" not in capabilities:
        return f"this CPU ({name}) has no native bf16 (OpenVINO lists {', '.join(capabilities)})"
    return None


def ov_reason(exc: BaseException) -> str:
    """OpenVINO's message on one line: its summary where it gives one (the operators it cannot
    convert), without its source-file prefixes."""
    text = one_line(str(exc))
    if "Summary:" in text:
        text = text.split("Summary:", 1)[1].strip(" -")
    text = re.sub(r"(Exception from \S+:\d+:|Check '.*?' failed at \S+:\d+:)\s*", "", text)
    return (text or type(exc).__name__)[:300]


# The row of the backend table (backends/table.py) this class serves.
OPENVINO = BackendRow(
    kind="openvino",
    title="OpenVINO (CPU)",
    backend=OpenVINOBackend,
    params={"device": "CPU"},
    library="openvino",
    module="openvino",
    extra="leed[openvino]",
    suffix=".onnx",
    uses_cuda=False,
    options=frozenset({"precision", "threads", "verify"}),
    detector=False,
)
