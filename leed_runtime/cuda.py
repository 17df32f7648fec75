"""CUDA host code without torch: cuda-python's runtime API (`cuda.bindings.runtime`).

`cuda_info()` is the one GPU query (device names, compute capabilities, driver and runtime
versions) for the doctor, backend selection, the backends and the engine builder.
NVIDIA's samples/python/common_runtime.py pattern: every status checked (`check`), RAII
buffers (`DeviceBuffer`, `PinnedBuffer`) freed on `close()` or `__del__`, one `Stream` per
pipeline. cuda-python is imported lazily, so importing this module needs nothing but numpy.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from leed_runtime.errors import LeedError, one_line

INSTALL = "pip install 'leed[gpu]'"


def _rt() -> Any:
    try:
        from cuda.bindings import runtime
    except ImportError as exc:
        raise LeedError(f"cuda-python is not installed ({exc}); {INSTALL}") from None
    return runtime


def check(result: Any) -> Any:
    """Unpack a cuda-python `(err, *values)` result; raise with the CUDA error name unless
    it is `cudaSuccess`. Returns None, the single value, or a tuple of values."""
    rt = _rt()
    err, *values = result if isinstance(result, tuple) else (result,)
    if err != rt.cudaError_t.cudaSuccess:
        name = getattr(err, "name", str(err))
        raise LeedError(f"CUDA error {name} ({int(err)}); check the GPU and driver with `leed-doctor`")
    if not values:
        return None
    return values[0] if len(values) == 1 else tuple(values)


@dataclass(frozen=True)
class Gpu:
    """One visible CUDA device: `Gpu("NVIDIA H100 80GB HBM3", "9.0")`."""

    name: str
    compute_capability: str  # "major.minor"


@dataclass(frozen=True)
class CudaInfo:
    """What CUDA offers here: the GPUs (empty: none usable), the CUDA versions of the driver
    and of cuda-python's runtime ("13.0"; None when unknown), and why there is no GPU ("" with one)."""

    gpus: tuple[Gpu, ...] = ()
    driver: str | None = None
    runtime: str | None = None
    problem: str = ""


def _cuda_version(value: int) -> str | None:
    return f"{value // 1000}.{value % 1000 // 10}" if value else None


def cuda_info() -> CudaInfo:
    """The one GPU query. No cuda-python, no driver (`cudaGetDeviceCount` returns error 35),
    no device (error 100) and any exception (`cuInit` raises without a driver) all read as
    "no CUDA here": no GPUs, with the reason in `problem`. Never raises."""
    try:
        rt = _rt()
        _, runtime = rt.cudaRuntimeGetVersion()
        _, driver = rt.cudaDriverGetVersion()
        versions = {"driver": _cuda_version(driver or 0), "runtime": _cuda_version(runtime or 0)}
        err, count = rt.cudaGetDeviceCount()
        if err != rt.cudaError_t.cudaSuccess:
            return CudaInfo(problem=getattr(err, "name", str(err)), **versions)
        gpus = []
        for i in range(count):
            err, prop = rt.cudaGetDeviceProperties(i)
            if err != rt.cudaError_t.cudaSuccess:
                return CudaInfo(problem=f"device {i}: {getattr(err, 'name', err)}", **versions)
            raw = prop.name
            name = raw.split(b"\0", 1)[0].decode(errors="replace") if isinstance(raw, bytes) else str(raw)
            gpus.append(Gpu(name, f"{prop.major}.{prop.minor}"))
    except LeedError as exc:  # no cuda-python
        return CudaInfo(problem=str(exc))
    except Exception as exc:  # a broken install or driver can raise instead of returning an error
        text = one_line(str(exc))
        return CudaInfo(problem=f"{type(exc).__name__}: {text}"[:160] if text else type(exc).__name__)
    return CudaInfo(tuple(gpus), problem="" if gpus else "no GPU", **versions)


def cuda_available() -> bool:
    """True when cuda-python is installed and sees at least one GPU (`cuda_info().gpus`)."""
    return bool(cuda_info().gpus)


def device_info() -> list[dict[str, Any]]:
    """`cuda_info().gpus` as dicts, `[{"name": ..., "compute_capability": "9.0"}]`: the view
    leed_export.bench records until it reads `cuda_info()` itself."""
    return [asdict(gpu) for gpu in cuda_info().gpus]


class Stream:
    """A non-blocking CUDA stream; `int(stream)` (or `.ptr`) is the `cudaStream_t` handle."""

    def __init__(self) -> None:
        rt = _rt()
        self.handle = check(rt.cudaStreamCreateWithFlags(rt.cudaStreamNonBlocking))

    @property
    def ptr(self) -> int:
        return int(self.handle) if self.handle is not None else 0

    def __int__(self) -> int:
        return self.ptr

    def synchronize(self) -> None:
        check(_rt().cudaStreamSynchronize(self.handle))

    def close(self) -> None:
        if self.handle is not None:
            check(_rt().cudaStreamDestroy(self.handle))
            self.handle = None

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # interpreter shutdown: the driver frees it anyway
            self.close()


class DeviceBuffer:
    """`nbytes` of device memory (cudaMalloc), freed on `close()`."""

    def __init__(self, nbytes: int) -> None:
        self.nbytes = int(nbytes)
        self.ptr: int = check(_rt().cudaMalloc(max(self.nbytes, 1)))

    def close(self) -> None:
        if self.ptr:
            check(_rt().cudaFree(self.ptr))
            self.ptr = 0

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()


class _PinnedMemory:
    """One cudaMallocHost block, freed when the last numpy view of it is gone."""

    def __init__(self, nbytes: int) -> None:
        self.ptr: int = check(_rt().cudaMallocHost(max(nbytes, 1)))

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # interpreter shutdown: the driver frees it anyway
            if self.ptr:
                check(_rt().cudaFreeHost(self.ptr))
                self.ptr = 0


class PinnedBuffer:
    """Page-locked host memory (cudaMallocHost) for `shape` x `dtype`; `.array` views it.

    The memory belongs to the views, not to this object: `close()` drops this buffer's hold,
    and the block is freed once no array handed out (an output a caller kept) still views it,
    so closing a backend can never leave a caller reading freed memory."""

    def __init__(self, shape: tuple[int, ...] | list[int], dtype: np.dtype | str) -> None:
        self.dtype = np.dtype(dtype)
        self.shape = tuple(int(d) for d in shape)
        self.nbytes = math.prod(self.shape) * self.dtype.itemsize
        memory = _PinnedMemory(self.nbytes)
        self.ptr = memory.ptr
        raw = (ctypes.c_byte * max(self.nbytes, 1)).from_address(memory.ptr)
        raw._leed_memory = memory  # type: ignore[attr-defined]  # every view's base chain keeps it alive
        self.array = np.frombuffer(raw, dtype=np.uint8, count=self.nbytes).view(self.dtype).reshape(self.shape)

    def view(self, shape: tuple[int, ...]) -> np.ndarray:
        """The first `prod(shape)` elements as an array of `shape` (a smaller batch)."""
        return self.array.reshape(-1)[: math.prod(shape)].reshape(shape)

    def close(self) -> None:
        self.array = np.empty(0, self.dtype)
        self.ptr = 0


class DeviceArray:
    """A tensor on the GPU: a pointer into `buffer` with a shape and dtype, and the stream that
    writes it. It owns nothing: it keeps `buffer` alive, but a buffer closed by its backend
    (`deactivate`) is refused, not read. A backend's output is valid until that backend's next
    call: copy what you keep (`to_host`)."""

    def __init__(
        self,
        buffer: DeviceBuffer | int,
        shape: tuple[int, ...] | list[int],
        dtype: np.dtype | str,
        stream: Stream | None = None,
    ) -> None:
        self.buffer = buffer
        self.shape = tuple(int(d) for d in shape)
        self.dtype = np.dtype(dtype)
        self.stream = stream
        self.nbytes = math.prod(self.shape) * self.dtype.itemsize
        capacity = getattr(buffer, "nbytes", None)
        if capacity is not None and self.nbytes > capacity:
            raise ValueError(f"DeviceArray {self.shape} {self.dtype} needs {self.nbytes} bytes, buffer has {capacity}")

    @property
    def ptr(self) -> int:
        ptr = self.buffer.ptr if isinstance(self.buffer, DeviceBuffer) else int(self.buffer)
        if not ptr:
            raise LeedError(
                f"{self!r}: its device buffer was freed (its backend was closed); copy outputs with to_host() first"
            )
        return ptr

    def to_host(self, out: np.ndarray | None = None, stream: Stream | None = None) -> np.ndarray:
        """Copy to `out` (or a new array) on `stream` (default: the stream that wrote it, so the
        copy follows the work that produced it) and wait for it."""
        stream = stream if stream is not None else self.stream
        out = np.empty(self.shape, self.dtype) if out is None else out
        memcpy_dtoh_async(out, self.ptr, stream)
        _synchronize(stream)
        return out

    def __repr__(self) -> str:
        ptr = self.buffer.ptr if isinstance(self.buffer, DeviceBuffer) else int(self.buffer)
        return f"DeviceArray(shape={self.shape}, dtype={self.dtype}, ptr={ptr:#x})"


def _stream_handle(stream: Stream | None) -> Any:
    return stream.handle if stream is not None else 0


def _synchronize(stream: Stream | None) -> None:
    if stream is not None:
        stream.synchronize()
    else:
        check(_rt().cudaDeviceSynchronize())


def memcpy_htod_async(dst_ptr: int, src: np.ndarray, stream: Stream | None = None) -> None:
    """Host array -> device pointer on `stream` (truly asynchronous when `src` is pinned)."""
    src = np.ascontiguousarray(src)
    rt = _rt()
    check(
        rt.cudaMemcpyAsync(
            dst_ptr, src.ctypes.data, src.nbytes, rt.cudaMemcpyKind.cudaMemcpyHostToDevice, _stream_handle(stream)
        )
    )


def memcpy_dtoh_async(dst: np.ndarray, src_ptr: int, stream: Stream | None = None) -> None:
    """Device pointer -> contiguous host array `dst` on `stream`; synchronize before reading."""
    if not dst.flags.c_contiguous:
        raise ValueError("memcpy_dtoh_async needs a C-contiguous destination")
    rt = _rt()
    check(
        rt.cudaMemcpyAsync(
            dst.ctypes.data, src_ptr, dst.nbytes, rt.cudaMemcpyKind.cudaMemcpyDeviceToHost, _stream_handle(stream)
        )
    )


def memcpy_dtod_async(dst_ptr: int, src_ptr: int, nbytes: int, stream: Stream | None = None) -> None:
    """Device -> device copy on `stream`."""
    rt = _rt()
    check(
        rt.cudaMemcpyAsync(dst_ptr, src_ptr, nbytes, rt.cudaMemcpyKind.cudaMemcpyDeviceToDevice, _stream_handle(stream))
    )
