"""ONNX Runtime backend: CPU (`onnxruntime`) or CUDA (`onnxruntime-gpu`, never a silent CPU
fall-back).

CUDA path (measured on the H100, see NOTES.md): the pipeline's one stream passed as
`user_compute_stream`, EXHAUSTIVE cuDNN search, optional CUDA graphs and NHWC kernels, and
IOBinding on device buffers allocated once at `max_batch`; numpy feeds go through pinned
staging buffers, `DeviceArray` feeds are bound where they lie.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import math
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from leed_runtime import cuda
from leed_runtime.backends.base import Backend, BackendRow
from leed_runtime.errors import LeedError, one_line
from leed_runtime.manifest import Artifact, TensorSpec


class _Slot:
    """One tensor's device buffer and pinned staging buffer; grows only for dimensions
    other than the batch (unknown until the first call), never per call at a steady shape."""

    def __init__(self, dtype: str) -> None:
        self.dtype = np.dtype(dtype)
        self.device: Any = None
        self.pinned: Any = None

    def ensure(self, shape: tuple[int, ...]) -> None:
        count = math.prod(shape)
        if self.pinned is None or count > self.pinned.array.size:
            self.close()
            self.device = cuda.DeviceBuffer(count * self.dtype.itemsize)
            self.pinned = cuda.PinnedBuffer((count,), self.dtype)

    def close(self) -> None:
        for buf in (self.device, self.pinned):
            if buf is not None:
                buf.close()
        self.device = self.pinned = None


class OnnxRuntimeBackend(Backend):
    """Run one ONNX artifact with onnxruntime on the CPU or through the CUDA execution provider."""

    def __init__(
        self,
        folder: Path,
        artifact: Artifact,
        artifact_name: str,
        device: str = "cpu",
        threads: int = 0,
        cuda_graph: bool = False,
        prefer_nhwc: bool = False,
        conv_search: str = "auto",
        stream: Any = None,
        max_batch: int = 32,
        outputs_on_device: bool = False,
        verify: bool = True,
    ) -> None:
        super().__init__(folder, artifact, artifact_name)
        if device not in ROWS:
            raise LeedError(f"onnxruntime device {device!r} is unknown; choose {' or '.join(ROWS)}")
        self.row = ROWS[device]
        if artifact.format != self.row.format:
            raise LeedError(
                f"artifact {artifact_name!r} ({artifact.file}) is a {artifact.format}, not an ONNX graph; "
                "onnxruntime runs the .onnx artifacts"
            )
        if max_batch < 1:
            raise LeedError(f"max_batch must be >= 1, got {max_batch}")
        self.name = self.row.kind
        self.device = device
        self.threads = threads
        self.cuda_graph = cuda_graph
        self.cuda_graph_refused = ""  # why onnxruntime would not capture this graph (it then runs uncaptured)
        self.prefer_nhwc = prefer_nhwc
        if conv_search not in CONV_SEARCH:
            raise LeedError(f"conv_search {conv_search!r} is unknown; choose one of {', '.join(CONV_SEARCH)}")
        self.conv_search = conv_search
        self.stream = stream
        self.max_batch = max_batch
        self.outputs_on_device = outputs_on_device
        self.verify = verify
        self.session: Any = None
        self._ort: Any = None
        self._own_stream: Any = None
        self._binding: Any = None
        self._slots: dict[str, _Slot] = {}
        self._run_options: dict[tuple[tuple[int, ...], ...], Any] = {}  # input shapes -> RunOptions

    # -- activation ------------------------------------------------------------------------
    def _activate(self) -> None:
        path = self.check_file(self.verify)
        ort = self._ort = self.row.load()
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = self.threads
        # A pipeline runs several sessions one after the other on few cores: threads that
        # spin-wait after a run steal the cores the next session needs.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3  # errors only: warnings about CPU shape nodes are expected
        providers: list[Any] = [self.row.provider]
        if self.row.uses_cuda:
            # `_cuda_options` checks the provider with `cuda_provider_problem`, which loads the CUDA
            # libraries once per process (then proves a session runs) before this session opens
            providers = [(self.row.provider, self._cuda_options(ort))]
        try:
            session, self.cuda_graph_refused = open_session(ort, str(path), options, providers)
            self.cuda_graph = self.cuda_graph and not self.cuda_graph_refused
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/RuntimeException types
            raise LeedError(
                f"{path}: onnxruntime {ort.__version__} cannot load it ({one_line(str(exc))[:300]}); re-run leed-export"
            ) from None
        if self.row.provider not in session.get_providers():
            raise LeedError(
                f"{path}: onnxruntime fell back to {session.get_providers()} instead of {self.row.provider} "
                f"(CUDA or cuDNN libraries not loadable); {GPU_FIX}"
            )
        self._check_names(session, path)
        self.session = session
        if self.row.uses_cuda:
            self._allocate()

    @classmethod
    def library_problem(cls, row: BackendRow, module: ModuleType) -> str | None:
        """onnxruntime without the kind's execution provider (the CPU wheel for onnxruntime-cuda),
        or, for CUDA, a provider that is listed but cannot load: the onnxruntime-gpu wheel always
        lists CUDAExecutionProvider, so a real session on a tiny graph decides (once)."""
        providers = module.get_available_providers()
        if row.provider not in providers:
            return f"onnxruntime {module.__version__} has no {row.provider} (has {', '.join(providers)}); {row.install}"
        if row.uses_cuda:
            if not cuda.cuda_available():
                return None  # "no GPU" is said by backend selection, with its own reason
            return cuda_provider_problem(module)
        return None

    def _cuda_options(self, ort: Any) -> dict[str, str]:
        problem = self.library_problem(self.row, ort)
        if problem is not None:
            raise LeedError(f"--backend {self.name}: {problem} (onnxruntime-gpu in place of onnxruntime)")
        if not cuda.cuda_available():
            raise LeedError(f"--backend {self.name}: no CUDA GPU here (cuda-python sees none); check `leed-doctor`")
        if self.stream is None:
            self._own_stream = self.stream = cuda.Stream()
        return {
            "device_id": "0",
            "user_compute_stream": str(int(self.stream)),
            "has_user_compute_stream": "1",
            "cudnn_conv_algo_search": self._conv_search(),
            # FP32 graphs compute in FP32 (onnxruntime's default TF32 missed parity with the CPU by
            # 5e-4 on the H200); the FP16 graphs are the fast path
            "use_tf32": "0",
            "enable_cuda_graph": "1" if self.cuda_graph else "0",
            "prefer_nhwc": "1" if self.prefer_nhwc else "0",
        }

    def _conv_search(self) -> str:
        """cuDNN's algorithm search, run once per new input shape: EXHAUSTIVE (timed, best) for
        graphs whose shapes settle (the face graphs: the batch is the faces of a frame), HEURISTIC
        where every frame brings new shapes (P-net's image pyramid: any height and width), since
        an exhaustive search per new shape costs more than it saves. The detector opens all three
        of its graphs with "heuristic" (R-net's and O-net's batch is the candidates of each frame)."""
        if self.conv_search != "auto":
            return self.conv_search.upper()
        batch_dims = {t.shape[0] for t in self.inputs if t.shape and isinstance(t.shape[0], str)}
        varying = any(isinstance(d, str) and d not in batch_dims for t in self.inputs for d in t.shape[1:])
        return "HEURISTIC" if varying else "EXHAUSTIVE"

    def _check_names(self, session: Any, path: Path) -> None:
        for kind, got, specs in (
            ("inputs", session.get_inputs(), self.inputs),
            ("outputs", session.get_outputs(), self.outputs),
        ):
            names, want = sorted(t.name for t in got), sorted(t.name for t in specs)
            if names != want:
                raise LeedError(f"{path}: graph {kind} {names} differ from the manifest's {want}; re-run leed-export")

    def _allocate(self) -> None:
        """Device and pinned buffers for every input and output, at `max_batch` where the
        shape is known up to the batch; the rest on the first call."""
        self._binding = self.session.io_binding()
        for spec in [*self.inputs, *self.outputs]:
            slot = self._slots[spec.name] = _Slot(spec.dtype)
            shape = self._max_shape(spec)
            if shape is not None:
                slot.ensure(shape)
            elif self.cuda_graph:
                raise LeedError(
                    f"{self.artifact.file}: tensor {spec.name!r} has dynamic dimensions {spec.shape} beyond the "
                    "batch; CUDA graphs need fixed shapes (drop cuda_graph for this graph)"
                )

    def _max_shape(self, spec: TensorSpec) -> tuple[int, ...] | None:
        batch_dims = {t.shape[0] for t in self.inputs if t.shape and isinstance(t.shape[0], str)}
        shape = [self.max_batch if d in batch_dims else d for d in spec.shape]
        return tuple(shape) if all(isinstance(d, int) for d in shape) else None  # type: ignore[misc]

    def _deactivate(self) -> None:
        for slot in self._slots.values():
            slot.close()
        self._slots.clear()
        self._run_options.clear()
        self._binding = self.session = self._ort = None
        if self._own_stream is not None:
            self._own_stream.close()
            self._own_stream = self.stream = None

    # -- inference -------------------------------------------------------------------------
    def _infer(self, feeds: dict[str, Any], dims: dict[str, int]) -> dict[str, Any]:
        if self.row.uses_cuda:
            return self._infer_cuda(feeds, dims)
        return self._infer_cpu(feeds)

    def _infer_cpu(self, feeds: dict[str, Any]) -> dict[str, np.ndarray]:
        arrays = {}
        for name, value in feeds.items():
            if not isinstance(value, np.ndarray):
                raise LeedError(
                    f"{self.name}: input {name!r} is a {type(value).__name__}; feed numpy arrays on the CPU"
                )
            arrays[name] = np.ascontiguousarray(value)
        names = [t.name for t in self.outputs]
        return dict(zip(names, self.session.run(names, arrays), strict=True))

    def _infer_cuda(self, feeds: dict[str, Any], dims: dict[str, int]) -> dict[str, Any]:
        batch = max((dims[s.shape[0]] for s in self.inputs if s.shape and isinstance(s.shape[0], str)), default=1)
        if batch > self.max_batch:
            raise LeedError(
                f"{self.artifact.file}: batch {batch} exceeds this backend's max_batch {self.max_batch} "
                f"(open it with max_batch={batch})"
            )
        binding = self._binding
        shapes = []
        staged_from_host = False
        for spec in self.inputs:
            value, slot = feeds[spec.name], self._slots[spec.name]
            shape = tuple(int(d) for d in value.shape)
            shapes.append(shape)
            if isinstance(value, cuda.DeviceArray) and not self.cuda_graph:
                ptr = value.ptr
            else:
                self._ensure(slot, shape, spec)
                if isinstance(value, cuda.DeviceArray):  # CUDA graphs replay fixed addresses
                    cuda.memcpy_dtod_async(slot.device.ptr, value.ptr, value.nbytes, self.stream)
                elif isinstance(value, np.ndarray):
                    staged_from_host = True
                    staged = slot.pinned.array[: math.prod(shape)].reshape(shape)
                    np.copyto(staged, value)
                    cuda.memcpy_htod_async(slot.device.ptr, staged, self.stream)
                else:
                    raise LeedError(
                        f"{self.name}: input {spec.name!r} is a {type(value).__name__}; feed numpy arrays or DeviceArrays"
                    )
                ptr = slot.device.ptr
            binding.bind_input(spec.name, "cuda", 0, slot.dtype, shape, ptr)
        out_shapes: dict[str, tuple[int, ...] | None] = {}
        for spec in self.outputs:
            shape = _resolve(spec, dims)
            out_shapes[spec.name] = shape
            slot = self._slots[spec.name]
            if shape is None:  # a size only the graph knows (e.g. a detector's map): ORT allocates
                binding.bind_output(spec.name, "cuda", 0)
            else:
                self._ensure(slot, shape, spec)
                binding.bind_output(spec.name, "cuda", 0, slot.dtype, shape, slot.device.ptr)
        key = tuple(shapes) if self.cuda_graph else ()
        run_options = self._run_options.get(key)
        if run_options is None:  # once per input shape: one captured CUDA graph each
            run_options = self._run_options[key] = self._ort.RunOptions()
            # no host sync at the end of every Run: this backend waits on its stream only where
            # the host needs the result (below), so a chain kept on the GPU syncs once per frame
            run_options.add_run_config_entry("disable_synchronize_execution_providers", "1")
            if self.cuda_graph:
                run_options.add_run_config_entry("gpu_graph_id", str(len(self._run_options)))
        try:
            self.session.run_with_iobinding(binding, run_options)
        except Exception as exc:
            raise LeedError(f"{self.artifact.file}: {self.name} run failed: {one_line(str(exc))[:300]}") from None
        values = binding.get_outputs()  # OrtValues in binding order (= self.outputs)
        out: dict[str, Any] = {}
        for spec, value in zip(self.outputs, values, strict=True):
            slot, shape = self._slots[spec.name], out_shapes[spec.name]
            if shape is None:
                shape = tuple(int(d) for d in value.shape())
                self._ensure(slot, shape, spec)
                cuda.memcpy_dtod_async(
                    slot.device.ptr, value.data_ptr(), math.prod(shape) * slot.dtype.itemsize, self.stream
                )
            if self.outputs_on_device:
                out[spec.name] = cuda.DeviceArray(slot.device, shape, slot.dtype, self.stream)
            else:
                host = slot.pinned.array[: math.prod(shape)].reshape(shape)
                cuda.memcpy_dtoh_async(host, slot.device.ptr, self.stream)
                out[spec.name] = host
        if staged_from_host or not self.outputs_on_device or any(s is None for s in out_shapes.values()):
            # host inputs sit in pinned buffers the next call overwrites, host outputs are read
            # now, ORT-allocated outputs are freed with the binding: wait here; a chain fed and
            # read on the device runs on without a host sync
            self.stream.synchronize()
        return out

    def _ensure(self, slot: _Slot, shape: tuple[int, ...], spec: TensorSpec) -> None:
        if self.cuda_graph and slot.pinned is not None and math.prod(shape) > slot.pinned.array.size:
            raise LeedError(f"{self.artifact.file}: tensor {spec.name!r} {shape} outgrows its CUDA-graph buffer")
        slot.ensure(shape)


def _resolve(spec: TensorSpec, dims: dict[str, int]) -> tuple[int, ...] | None:
    """A tensor's shape with symbolic dimensions filled from the inputs; None if one is unknown."""
    shape = [dims.get(d) if isinstance(d, str) else d for d in spec.shape]
    return None if any(d is None for d in shape) else tuple(shape)  # type: ignore[misc]


# The rows of the backend table (backends/table.py) this class serves, by `device`.
ONNXRUNTIME_CUDA = BackendRow(
    kind="onnxruntime-cuda",
    title="ONNX Runtime (CUDA)",
    backend=OnnxRuntimeBackend,
    params={"device": "cuda"},
    library="onnxruntime",
    module="onnxruntime",
    extra="leed[gpu]",
    suffix=".onnx",
    uses_cuda=True,
    provider="CUDAExecutionProvider",
    options=frozenset(
        {"threads", "cuda_graph", "prefer_nhwc", "conv_search", "stream", "max_batch", "outputs_on_device", "verify"}
    ),
)
ONNXRUNTIME_CPU = BackendRow(
    kind="onnxruntime-cpu",
    title="ONNX Runtime (CPU)",
    backend=OnnxRuntimeBackend,
    params={"device": "cpu"},
    library="onnxruntime",
    module="onnxruntime",
    extra="leed[runtime]",
    suffix=".onnx",
    uses_cuda=False,
    provider="CPUExecutionProvider",
    options=frozenset({"threads", "max_batch", "verify"}),
)
ROWS = {"cuda": ONNXRUNTIME_CUDA, "cpu": ONNXRUNTIME_CPU}

CONV_SEARCH = ("auto", "exhaustive", "heuristic", "default")  # cuDNN's algorithm search (CUDA only)

# y = Conv(x, w), x: float[1,1,4,4], w: 3x3 of 1/9, pads 1: the smallest graph that proves a CUDA
# session runs, cuDNN included (a Relu probe passed on the H200 while every Conv failed with
# CUDNN_STATUS_SUBLIBRARY_VERSION_MISMATCH); its output's centre is 1 for an input of ones
_PROBE = base64.b64decode(
    "CAg6mgEKIgoBeAoBdxIBeSIEQ29udioRCgRwYWRzQAFAAUABQAGgAQcSBXByb2JlKjMIAQgBCAMIAxABQgF3SiQ5juM9OY7jPTmO4z05juM9"
    "OY7jPTmO4z05juM9OY7jPTmO4z1aGwoBeBIWChQIARIQCgIIAQoCCAEKAggECgIIBGIbCgF5EhYKFAgBEhAKAggBCgIIAQoCCAQKAggEQgQK"
    "ABAN"
)
# The CUDA libraries onnxruntime-gpu dlopens, in dependency order, as the pip `nvidia-*` wheels
# (torch's among them) ship them under site-packages/nvidia/*/lib.
CUDA_LIBRARIES = (
    "libcudart.so",
    "libnvrtc",
    "libnvJitLink",
    "libcublasLt.so",
    "libcublas.so",
    "libcufft",
    "libcurand",
    "libcudnn",
)


def preload_cuda_libraries(ort: ModuleType) -> list[str]:
    """Make the CUDA libraries loadable before the first CUDA session: onnxruntime's own
    `preload_dlls()` (1.21+; it looks beside its own package), then every matching library
    under any `site-packages/nvidia/*/lib` on sys.path, loaded globally with ctypes. Without it
    onnxruntime-gpu finds libcudnn / libcublasLt only if torch was imported first, and the
    session silently gets the CPU provider. Returns the files loaded by ctypes."""
    preload = getattr(ort, "preload_dlls", None)
    if preload is not None:
        with contextlib.suppress(Exception):  # a partial preload is fine: the ctypes pass below completes it
            preload()
    pending = cuda_library_files(sys.path)
    loaded: list[str] = []
    while pending:  # a library whose own dependency comes later loads on a later pass
        failed = []
        for file in pending:
            try:
                ctypes.CDLL(str(file), mode=ctypes.RTLD_GLOBAL)
                loaded.append(str(file))
            except OSError:
                failed.append(file)
        if len(failed) == len(pending):
            break
        pending = failed
    return loaded


def cuda_library_files(path: list[str]) -> list[Path]:
    """The files to preload, in CUDA_LIBRARIES order: each library from the first
    `site-packages/nvidia/*/lib` folder on `path` that has it, and every part of it from that one
    folder. cuDNN's parts must all be of one version: on the H200 torch's cuDNN 9.19 sat beside
    the system's 9.14, and a part missing from the preload (its runtime-compiled engines need
    NVRTC) was then found in the system's, which cuDNN refuses (SUBLIBRARY_VERSION_MISMATCH)."""
    chosen: dict[str, list[Path]] = {}
    for entry in path:
        for lib_dir in sorted(Path(entry).glob("nvidia/*/lib")) if entry else []:
            files = sorted(lib_dir.glob("lib*.so*"))
            for name in CUDA_LIBRARIES:
                if name not in chosen and any(f.name.startswith(name) for f in files):
                    chosen[name] = [f for f in files if f.name.startswith(name)]
    return [f for name in CUDA_LIBRARIES for f in chosen.get(name, [])]


def open_session(ort: Any, path: str, options: Any, providers: list[Any]) -> tuple[Any, str]:
    """An InferenceSession, and "" or why onnxruntime refused to capture CUDA graphs for it.

    onnxruntime captures a graph only when every node runs on CUDA; a graph with shape arithmetic
    left on the CPU (on the H200: the neutralizer) is opened again without capture, not refused."""
    try:
        return ort.InferenceSession(path, options, providers=providers), ""
    except Exception as exc:
        first = providers[0]
        if not (isinstance(first, tuple) and first[1].get("enable_cuda_graph") == "1" and "graph capture" in str(exc)):
            raise
        retry = [(first[0], {**first[1], "enable_cuda_graph": "0"}), *providers[1:]]
        return ort.InferenceSession(path, options, providers=retry), one_line(str(exc))[:200]


_PROBED: dict[int, str | None] = {}


def cuda_provider_problem(ort: ModuleType) -> str | None:
    """None when a CUDA session really runs here; else why, with the fix (probed once)."""
    if id(ort) not in _PROBED:
        _PROBED[id(ort)] = _probe_cuda_session(ort)
    return _PROBED[id(ort)]


def _probe_cuda_session(ort: ModuleType) -> str | None:
    preload_cuda_libraries(ort)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(_PROBE, options, providers=["CUDAExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime's own error types
        return f"onnxruntime {ort.__version__} cannot open a CUDA session ({one_line(str(exc))[:160]}); {GPU_FIX_LIBS}"
    if "CUDAExecutionProvider" not in session.get_providers():
        return (
            f"onnxruntime {ort.__version__} lists CUDAExecutionProvider but its session fell back to the CPU "
            f"(CUDA or cuDNN libraries not loadable); {GPU_FIX_LIBS}"
        )
    try:
        y = session.run(None, {"x": np.ones((1, 1, 4, 4), np.float32)})[0]
    except Exception as exc:  # noqa: BLE001
        return f"onnxruntime {ort.__version__} cannot run a convolution on CUDA ({one_line(str(exc))[:200]}); {GPU_FIX_LIBS}"
    if abs(float(y[0, 0, 1, 1]) - 1.0) > 1e-3:
        return (
            f"onnxruntime {ort.__version__}: a convolution on CUDA gave {float(y[0, 0, 1, 1])}, not 1; {GPU_FIX_LIBS}"
        )
    return None


GPU_FIX = f"{ONNXRUNTIME_CUDA.install} (onnxruntime-gpu in place of onnxruntime) and check `leed-doctor`"
GPU_FIX_LIBS = (
    "install the CUDA 12/13 and cuDNN 9 libraries (pip install 'nvidia-cudnn-cu12' 'nvidia-cublas-cu12', or the "
    "system's), or put their folders on LD_LIBRARY_PATH"
)
