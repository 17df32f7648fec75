"""TensorRT backend for plans built by `tensorrt` (10/11) or TensorRT-RTX (`tensorrt_rtx_bindings`).

An engine is tied to one library, one version and (unless built for the library's default
targets) one GPU architecture: the manifest records all three and activation refuses any
mismatch with the exact rebuild command. Then, as in NVIDIA's common_runtime.py with
cuda-python: deserialize, one execution context, device and pinned buffers allocated ONCE at
the profile's max shape, tensors bound by NAME (`set_input_shape`, `set_tensor_address`),
`execute_async_v3` on the pipeline's stream, outputs read by name (never by position).
"""

from __future__ import annotations

import math
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from leed_runtime import cuda
from leed_runtime.backends.base import Backend, BackendRow
from leed_runtime.errors import LeedError
from leed_runtime.manifest import Artifact, Manifest, read_manifest


def _row(library: str) -> BackendRow:
    """The row of `library` ("tensorrt" | "tensorrt_rtx", the manifest's engine.library)."""
    if library not in ROWS:
        raise LeedError(f"engine library {library!r} is unknown; choose one of {', '.join(ROWS)}")
    return ROWS[library]


def rebuild_command(folder: Path | str, artifact: Artifact, library: str, run_dir: str | None = None) -> str:
    """The `leed-export` line that rebuilds this engine with `library` for the GPU at hand."""
    profile = artifact.engine.profile if artifact.engine else {}
    batch = (
        f" --batch {profile['min']}:{profile['opt']}:{profile['max']}" if {"min", "opt", "max"} <= set(profile) else ""
    )
    fp16 = " --fp16" if artifact.precision == "fp16" else ""
    return f"leed-export {run_dir or 'RUN_DIR'} --out {folder} --engine {_row(library).kind}{fp16}{batch}"


def engine_problem(
    artifact: Artifact, library: str, installed_version: str, compute_capability: str | None, rebuild: str
) -> str | None:
    """Why this engine cannot run with `library` `installed_version` on a GPU of
    `compute_capability` (None: no GPU here, so only the library and version are checked),
    with the fix; None when it can."""
    row = _row(library)
    engine = artifact.engine
    if artifact.format != row.format or engine is None:
        return f"{artifact.file} is not a TensorRT engine (format {artifact.format}); re-run leed-export --engine ..."
    if engine.library != library:
        return f"{artifact.file} was built with {engine.library}, not {library}; rebuild it: {rebuild}"
    if engine.version != installed_version:
        return (
            f"{artifact.file} was built with {library} {engine.version}, this is {installed_version} "
            f"(engines are tied to one version); rebuild it: {rebuild}"
        )
    if compute_capability is None:
        return None
    if not row.runs_on(compute_capability):
        return (
            f"{row.title} does not run on this GPU (compute capability {compute_capability}; it targets "
            f"{', '.join(row.compute_capabilities)}); choose another --backend (`leed-doctor` lists those that run here)"
        )
    if engine.compute_capability is not None and engine.compute_capability != compute_capability:
        return (
            f"{artifact.file} was built for compute capability {engine.compute_capability} "
            f"({engine.gpu or 'another GPU'}), this GPU is {compute_capability}; rebuild it here: {rebuild}"
        )
    return None


class TensorRTBackend(Backend):
    """Run one serialized engine (`.plan`) with TensorRT or TensorRT-RTX."""

    def __init__(
        self,
        folder: Path,
        artifact: Artifact,
        artifact_name: str,
        library: str = "tensorrt",
        stream: Any = None,
        outputs_on_device: bool = False,
        verify: bool = True,
        run_dir: str | None = None,
    ) -> None:
        super().__init__(folder, artifact, artifact_name)
        self.row = _row(library)
        self.library = library
        self.name = self.row.kind
        self.stream = stream
        self.outputs_on_device = outputs_on_device
        self.verify = verify
        self.run_dir = run_dir
        self._own_stream: Any = None
        self._runtime: Any = None
        self._engine: Any = None
        self._context: Any = None
        self._buffers: dict[str, tuple[Any, Any]] = {}  # name -> (DeviceBuffer, PinnedBuffer)
        self._max_shapes: dict[str, tuple[int, ...]] = {}
        self._min_shapes: dict[str, tuple[int, ...]] = {}
        self._shapes: dict[str, tuple[int, ...]] = {}  # last input shapes set on the context
        self._addresses: dict[str, int] = {}  # last address bound per tensor

    # -- activation ------------------------------------------------------------------------
    @classmethod
    def artifact_problem(
        cls,
        row: BackendRow,
        folder: Path,
        manifest: Manifest,
        artifact_name: str,
        module: ModuleType,
        compute_capability: str | None,
    ) -> str | None:
        artifact = manifest.artifacts[artifact_name]
        rebuild = rebuild_command(folder, artifact, row.library, manifest.source.get("run_dir"))
        return engine_problem(artifact, row.library, row.version(module), compute_capability, rebuild)

    def check_compatible(self, installed_version: str, compute_capability: str) -> None:
        """Refuse an engine built for another library, version or GPU (with the rebuild line)."""
        problem = engine_problem(self.artifact, self.library, installed_version, compute_capability, self._rebuild())
        if problem is not None:
            raise LeedError(f"--backend {self.name}: {problem}")

    def _rebuild(self) -> str:
        run_dir = self.run_dir
        if run_dir is None:
            try:
                run_dir = read_manifest(self.folder).source.get("run_dir")
            except LeedError:  # only the hint loses its run dir; activation still refuses
                run_dir = None
        return rebuild_command(self.folder, self.artifact, self.library, run_dir)

    def _activate(self) -> None:
        path = self.check_file(self.verify)
        trt = self.row.load()
        if not cuda.cuda_available():
            raise LeedError(f"--backend {self.name}: no CUDA GPU here (cuda-python sees none); check `leed-doctor`")
        self.check_compatible(self.row.version(trt), cuda.cuda_info().gpus[0].compute_capability)
        self._runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self._engine = self._runtime.deserialize_cuda_engine(path.read_bytes())
        if self._engine is None:
            raise LeedError(
                f"{path}: {self.library} {trt.__version__} could not deserialize it (see its messages above); "
                f"rebuild it: {self._rebuild()}"
            )
        self._context = self._engine.create_execution_context()
        if self._context is None:
            raise LeedError(f"{path}: no execution context (GPU memory exhausted?); check `nvidia-smi`")
        if self.stream is None:
            self._own_stream = self.stream = cuda.Stream()
        self._check_io(trt, path)
        self._allocate(trt)

    def _check_io(self, trt: Any, path: Path) -> None:
        """The engine's tensors must be the manifest's, by name, direction and dtype."""
        engine = self._engine
        got = {engine.get_tensor_name(i) for i in range(engine.num_io_tensors)}
        want = {t.name for t in [*self.inputs, *self.outputs]}
        if got != want:
            raise LeedError(
                f"{path}: engine tensors {sorted(got)} differ from the manifest's {sorted(want)}; {self._rebuild()}"
            )
        for specs, mode in ((self.inputs, trt.TensorIOMode.INPUT), (self.outputs, trt.TensorIOMode.OUTPUT)):
            for spec in specs:
                if engine.get_tensor_mode(spec.name) != mode:
                    raise LeedError(
                        f"{path}: tensor {spec.name!r} is not an engine {mode.name.lower()}; {self._rebuild()}"
                    )
                dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(spec.name)))
                if dtype != np.dtype(spec.dtype):
                    raise LeedError(
                        f"{path}: tensor {spec.name!r} is {dtype} in the engine, {spec.dtype} in the manifest"
                    )

    def _allocate(self, trt: Any) -> None:
        """Device + pinned buffers for every tensor at the profile's max shape, bound by name."""
        engine, context = self._engine, self._context
        for spec in self.inputs:
            shape = tuple(engine.get_tensor_shape(spec.name))
            low = shape
            if -1 in shape:
                low, _, high = engine.get_tensor_profile_shape(spec.name, 0)
                low, shape = tuple(low), tuple(high)
            self._min_shapes[spec.name], self._max_shapes[spec.name] = low, shape
            if not context.set_input_shape(spec.name, shape):
                raise LeedError(f"{self.artifact.file}: input {spec.name!r} rejects its profile max shape {shape}")
            self._shapes[spec.name] = shape
        for spec in self.outputs:
            shape = tuple(context.get_tensor_shape(spec.name))
            if any(d < 0 for d in shape):
                raise LeedError(f"{self.artifact.file}: output {spec.name!r} has a data-dependent shape {shape}")
            self._max_shapes[spec.name] = shape
        for spec in [*self.inputs, *self.outputs]:
            shape = self._max_shapes[spec.name]
            device = cuda.DeviceBuffer(math.prod(shape) * np.dtype(spec.dtype).itemsize)
            self._buffers[spec.name] = (device, cuda.PinnedBuffer(shape, spec.dtype))
            self._bind(spec.name, device.ptr)

    def _bind(self, name: str, ptr: int) -> None:
        if self._addresses.get(name) != ptr:
            if not self._context.set_tensor_address(name, ptr):
                raise LeedError(f"{self.artifact.file}: cannot bind tensor {name!r}")
            self._addresses[name] = ptr

    def _deactivate(self) -> None:
        if self.stream is not None:
            self.stream.synchronize()
        self._context = self._engine = self._runtime = None  # context before engine before runtime
        for device, pinned in self._buffers.values():
            device.close()
            pinned.close()
        self._buffers.clear()
        self._shapes.clear()
        self._addresses.clear()
        if self._own_stream is not None:
            self._own_stream.close()
            self._own_stream = self.stream = None

    # -- inference -------------------------------------------------------------------------
    def _infer(self, feeds: dict[str, Any], dims: dict[str, int]) -> dict[str, Any]:
        context = self._context
        staged_from_host = False
        for spec in self.inputs:
            value, (device, pinned) = feeds[spec.name], self._buffers[spec.name]
            shape = tuple(int(d) for d in value.shape)
            low, high = self._min_shapes[spec.name], self._max_shapes[spec.name]
            if any(s < a or s > b for s, a, b in zip(shape, low, high, strict=True)):
                raise LeedError(
                    f"{self.artifact.file}: input {spec.name!r} {shape} is outside the engine profile {low}..{high}; "
                    f"rebuild with a larger --batch: {self._rebuild()}"
                )
            if isinstance(value, cuda.DeviceArray):
                self._bind(spec.name, value.ptr)
            elif isinstance(value, np.ndarray):
                staged_from_host = True
                staged = pinned.view(shape)
                np.copyto(staged, value)
                cuda.memcpy_htod_async(device.ptr, staged, self.stream)
                self._bind(spec.name, device.ptr)
            else:
                raise LeedError(
                    f"{self.name}: input {spec.name!r} is a {type(value).__name__}; feed numpy arrays or DeviceArrays"
                )
            if self._shapes.get(spec.name) != shape:
                if not context.set_input_shape(spec.name, shape):
                    raise LeedError(f"{self.artifact.file}: input {spec.name!r} rejects shape {shape}")
                self._shapes[spec.name] = shape
        if not context.execute_async_v3(self.stream.ptr):
            raise LeedError(f"{self.artifact.file}: {self.name} execute_async_v3 failed (see its messages above)")
        out: dict[str, Any] = {}
        for spec in self.outputs:
            device, pinned = self._buffers[spec.name]
            shape = tuple(int(d) for d in context.get_tensor_shape(spec.name))
            if self.outputs_on_device:
                out[spec.name] = cuda.DeviceArray(device, shape, spec.dtype, self.stream)
            else:
                host = pinned.view(shape)
                cuda.memcpy_dtoh_async(host, device.ptr, self.stream)
                out[spec.name] = host
        if staged_from_host or not self.outputs_on_device:
            # host inputs sit in pinned buffers the next call overwrites, host outputs are read
            # now: wait here; a chain fed and read on the device runs on without a host sync
            self.stream.synchronize()
        return out


# The rows of the backend table (backends/table.py) this class serves, by `library`.
_ENGINE_OPTIONS = frozenset({"stream", "outputs_on_device", "verify", "run_dir"})
TENSORRT = BackendRow(
    kind="tensorrt",
    title="TensorRT",
    backend=TensorRTBackend,
    params={"library": "tensorrt"},
    library="tensorrt",
    module="tensorrt",
    extra="leed[tensorrt]",
    suffix=".plan",
    uses_cuda=True,
    options=_ENGINE_OPTIONS,
    engine_tag="trt",
    timing_cache=True,
)
TENSORRT_RTX = BackendRow(
    kind="tensorrt-rtx",
    title="TensorRT-RTX",
    backend=TensorRTBackend,
    params={"library": "tensorrt_rtx"},
    library="tensorrt_rtx",
    module="tensorrt_rtx_bindings",
    extra="leed[tensorrt-rtx]",
    suffix=".plan",
    uses_cuda=True,
    options=_ENGINE_OPTIONS,
    engine_tag="rtx",
    # 7.5 (Turing) only for engines built for it: 1.7's default targets are 8.0 8.6 8.9 12.0 12.1 (NOTES.md)
    compute_capabilities=("7.5", "8.0", "8.6", "8.9", "12.x"),
)
ROWS = {row.library: row for row in (TENSORRT, TENSORRT_RTX)}
