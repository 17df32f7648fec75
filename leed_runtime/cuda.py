"""CUDA host code without torch: cuda-python's runtime API (`cuda.bindings.runtime`).

NVIDIA's samples/python/common_runtime.py pattern: every status checked (`check`), RAII
buffers (`DeviceBuffer`, `PinnedBuffer`) freed on `close()` or `__del__`, one `Stream` per
pipeline. cuda-python is imported lazily, so importing this module needs nothing but numpy.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
from typing import Any

import numpy as np

from leed_runtime.errors import LeedError

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


def cuda_available() -> bool:
    """True when cuda-python is installed and sees at least one GPU. No driver (error 35),
    no device (error 100) and any exception all mean False."""
    try:
        rt = _rt()
        err, count = rt.cudaGetDeviceCount()
        return err == rt.cudaError_t.cudaSuccess and count > 0
    except Exception:
        return False


def device_info() -> list[dict[str, Any]]:
    """Every visible GPU: `{"name": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0"}`."""
    rt = _rt()
    gpus = []
    for i in range(check(rt.cudaGetDeviceCount())):
        prop = check(rt.cudaGetDeviceProperties(i))
        name = prop.name.split(b"\0", 1)[0].decode(errors="replace") if isinstance(prop.name, bytes) else str(prop.name)
        gpus.append({"name": name, "compute_capability": f"{prop.major}.{prop.minor}"})
    return gpus


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


class PinnedBuffer:
    """Page-locked host memory (cudaMallocHost) for `shape` x `dtype`; `.array` views it."""

    def __init__(self, shape: tuple[int, ...] | list[int], dtype: np.dtype | str) -> None:
        self.dtype = np.dtype(dtype)
        self.shape = tuple(int(d) for d in shape)
        self.nbytes = math.prod(self.shape) * self.dtype.itemsize
        self.ptr: int = check(_rt().cudaMallocHost(max(self.nbytes, 1)))
        raw = (ctypes.c_byte * max(self.nbytes, 1)).from_address(self.ptr)
        self.array = np.frombuffer(raw, dtype=np.uint8, count=self.nbytes).view(self.dtype).reshape(self.shape)

    def view(self, shape: tuple[int, ...]) -> np.ndarray:
        """The first `prod(shape)` elements as an array of `shape` (a smaller batch)."""
        return self.array.reshape(-1)[: math.prod(shape)].reshape(shape)

    def close(self) -> None:
        if self.ptr:
            self.array = np.empty(0, self.dtype)
            check(_rt().cudaFreeHost(self.ptr))
            self.ptr = 0

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()


class DeviceArray:
    """A tensor on the GPU: a pointer into `buffer` with a shape and dtype (no ownership
    beyond keeping `buffer` alive). Backends accept these as feeds and can return them."""

    def __init__(self, buffer: DeviceBuffer | int, shape: tuple[int, ...] | list[int], dtype: np.dtype | str) -> None:
        self.buffer = buffer
        self.shape = tuple(int(d) for d in shape)
        self.dtype = np.dtype(dtype)
        self.nbytes = math.prod(self.shape) * self.dtype.itemsize
        capacity = getattr(buffer, "nbytes", None)
        if capacity is not None and self.nbytes > capacity:
            raise ValueError(f"DeviceArray {self.shape} {self.dtype} needs {self.nbytes} bytes, buffer has {capacity}")

    @property
    def ptr(self) -> int:
        return self.buffer.ptr if isinstance(self.buffer, DeviceBuffer) else int(self.buffer)

    def to_host(self, out: np.ndarray | None = None, stream: Stream | None = None) -> np.ndarray:
        """Copy to `out` (or a new array) and wait for it."""
        out = np.empty(self.shape, self.dtype) if out is None else out
        memcpy_dtoh_async(out, self.ptr, stream)
        _synchronize(stream)
        return out

    def __repr__(self) -> str:
        return f"DeviceArray(shape={self.shape}, dtype={self.dtype}, ptr={self.ptr:#x})"


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
