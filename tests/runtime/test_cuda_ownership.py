"""Ownership and streams of the torch-free CUDA host code (`leed_runtime/cuda.py`), on a fake
CUDA runtime (these machines have no GPU): pinned memory outlives a closed buffer while a
caller still holds an output view of it, a device array of a freed buffer is refused, and a
copy back to the host runs on the stream that wrote the array, not on the legacy default one."""

from __future__ import annotations

import ctypes
import gc
from enum import Enum
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from leed_runtime import cuda
from leed_runtime.backends.base import Backend
from leed_runtime.errors import LeedError


class _Err(Enum):
    cudaSuccess = 0


class _Kind(Enum):
    cudaMemcpyHostToDevice = 1
    cudaMemcpyDeviceToHost = 2
    cudaMemcpyDeviceToDevice = 3


class FakeRuntime:
    """cudaMallocHost/cudaMalloc from ctypes buffers, copies with memmove, calls recorded."""

    cudaError_t = _Err
    cudaMemcpyKind = _Kind
    cudaStreamNonBlocking = 1

    def __init__(self) -> None:
        self.blocks: dict[int, Any] = {}
        self.freed: list[int] = []
        self.copies: list[tuple[str, Any]] = []
        self.syncs: list[Any] = []

    def _alloc(self, n: int) -> tuple[_Err, int]:
        block = ctypes.create_string_buffer(n)
        self.blocks[ctypes.addressof(block)] = block
        return _Err.cudaSuccess, ctypes.addressof(block)

    def cudaMallocHost(self, n: int) -> tuple[_Err, int]:
        return self._alloc(n)

    def cudaMalloc(self, n: int) -> tuple[_Err, int]:
        return self._alloc(n)

    def _free(self, ptr: int) -> tuple[_Err]:
        self.freed.append(ptr)
        return (_Err.cudaSuccess,)

    cudaFreeHost = cudaFree = _free

    def cudaMemcpyAsync(self, dst: int, src: int, n: int, kind: _Kind, stream: Any) -> tuple[_Err]:
        ctypes.memmove(dst, src, n)
        self.copies.append((kind.name, stream))
        return (_Err.cudaSuccess,)

    def cudaStreamCreateWithFlags(self, flags: int) -> tuple[_Err, str]:
        return _Err.cudaSuccess, "stream-1"

    def cudaStreamSynchronize(self, handle: Any) -> tuple[_Err]:
        self.syncs.append(handle)
        return (_Err.cudaSuccess,)

    def cudaDeviceSynchronize(self) -> tuple[_Err]:
        self.syncs.append("device")
        return (_Err.cudaSuccess,)

    def cudaStreamDestroy(self, handle: Any) -> tuple[_Err]:
        return (_Err.cudaSuccess,)


@pytest.fixture
def rt(monkeypatch: pytest.MonkeyPatch) -> FakeRuntime:
    fake = FakeRuntime()
    monkeypatch.setattr(cuda, "_rt", lambda: fake)
    return fake


def test_pinned_memory_lives_while_a_caller_holds_a_view_of_it(rt: FakeRuntime) -> None:
    buffer = cuda.PinnedBuffer((4,), np.float32)
    ptr = buffer.ptr
    buffer.array[:] = [1, 2, 3, 4]
    kept = buffer.view((2,))  # an output a caller kept past the backend's close
    buffer.close()
    gc.collect()
    assert ptr not in rt.freed and kept.tolist() == [1.0, 2.0]
    del kept
    gc.collect()
    assert rt.freed == [ptr]  # freed once, when the last view went


def test_a_device_array_of_a_freed_buffer_is_refused(rt: FakeRuntime) -> None:
    device = cuda.DeviceBuffer(16)
    array = cuda.DeviceArray(device, (4,), np.float32)
    device.close()
    with pytest.raises(LeedError, match="freed"):
        array.to_host()


def test_to_host_copies_on_the_stream_that_wrote_the_array(rt: FakeRuntime) -> None:
    stream = cuda.Stream()
    device = cuda.DeviceBuffer(16)
    cuda.memcpy_htod_async(device.ptr, np.arange(4, dtype=np.float32), stream)
    array = cuda.DeviceArray(device, (4,), np.float32, stream)
    assert array.to_host().tolist() == [0.0, 1.0, 2.0, 3.0]
    assert rt.copies[-1] == ("cudaMemcpyDeviceToHost", "stream-1")  # not the legacy stream 0
    assert rt.syncs == ["stream-1"]


def test_a_backend_that_fails_to_open_frees_what_it_made() -> None:
    closed: list[str] = []

    class Failing(Backend):
        def __init__(self) -> None:
            self.active = False

        def _activate(self) -> None:
            self.stream = SimpleNamespace(close=lambda: closed.append("stream"))
            raise LeedError("cannot load the graph")

        def _deactivate(self) -> None:
            self.stream.close()

        def _infer(self, feeds: dict, dims: dict) -> dict:
            return {}

    backend = Failing()
    with pytest.raises(LeedError, match="cannot load"):
        backend.activate()
    assert closed == ["stream"] and not backend.active
