"""onnxruntime-gpu on a machine without torch: its CUDA libraries are loaded from the pip
`nvidia-*` folders first, and a CUDA provider that is listed but cannot run is found by a real
session, not by the provider list (which the onnxruntime-gpu wheel always fills)."""

from __future__ import annotations

import ctypes
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from leed_runtime import cuda
from leed_runtime.backends import onnxruntime as ortb


def test_cuda_libraries_are_loaded_from_the_nvidia_wheels_in_dependency_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site-packages"
    for sub, name in (("cudnn", "libcudnn.so.9"), ("cublas", "libcublasLt.so.13"), ("cublas", "libcublas.so.13"),
                      ("cuda_runtime", "libcudart.so.13"), ("cudnn", "libcudnn_ops.so.9")):  # fmt: skip
        (site / "nvidia" / sub / "lib").mkdir(parents=True, exist_ok=True)
        (site / "nvidia" / sub / "lib" / name).write_bytes(b"")
    loaded: list[str] = []
    monkeypatch.setattr(sys, "path", [str(site)])
    monkeypatch.setattr(ctypes, "CDLL", lambda path, mode=0: loaded.append(Path(path).name))
    preloaded: list[bool] = []
    fake_ort = SimpleNamespace(preload_dlls=lambda: preloaded.append(True))
    returned = ortb.preload_cuda_libraries(fake_ort)
    names = loaded
    assert [Path(p).name for p in returned] == names
    assert preloaded == [True]
    assert names[0].startswith("libcudart") and names.index("libcublasLt.so.13") < names.index("libcublas.so.13")
    assert names.index("libcublas.so.13") < names.index("libcudnn.so.9")
    assert "libcudnn_ops.so.9" in names


class _Session:
    def __init__(self, providers: list[str]) -> None:
        self._providers = providers

    def get_providers(self) -> list[str]:
        return self._providers


def _fake_ort(session_providers: list[str]) -> SimpleNamespace:
    return SimpleNamespace(
        __version__="9.9.9",
        get_available_providers=lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"],
        SessionOptions=lambda: SimpleNamespace(log_severity_level=0),
        InferenceSession=lambda model, options, providers: _Session(session_providers),
    )


def test_a_listed_cuda_provider_that_falls_back_is_a_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cuda, "cuda_available", lambda: True)
    monkeypatch.setattr(ortb, "preload_cuda_libraries", lambda ort: [])
    ortb._PROBED.clear()
    broken = _fake_ort(["CPUExecutionProvider"])  # what onnxruntime-gpu does without libcudnn
    problem = ortb.OnnxRuntimeBackend.library_problem(ortb.ONNXRUNTIME_CUDA, broken)
    assert problem is not None and "fell back to the CPU" in problem and "cuDNN" in problem
    ortb._PROBED.clear()
    working = _fake_ort(["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert ortb.OnnxRuntimeBackend.library_problem(ortb.ONNXRUNTIME_CUDA, working) is None
    ortb._PROBED.clear()
