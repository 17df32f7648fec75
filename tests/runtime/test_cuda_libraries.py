"""onnxruntime-gpu on a machine without torch: its CUDA libraries are loaded from the pip
`nvidia-*` folders first, and a CUDA provider that is listed but cannot run is found by a real
session, not by the provider list (which the onnxruntime-gpu wheel always fills)."""

from __future__ import annotations

import ctypes
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from leed_runtime import cuda
from leed_runtime.backends import onnxruntime as ortb
from leed_runtime.errors import LeedError
from leed_runtime.face.detect import MTCNNDetector
from leed_runtime.manifest import read_manifest


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


def test_each_cuda_library_comes_whole_from_one_folder(tmp_path: Path) -> None:
    """Two cuDNN versions on the path (torch's wheel and another): every part from the first
    folder, none from the second, so cuDNN never finds a part of another version; NVRTC (which
    cuDNN's runtime-compiled engines need) before cuDNN."""
    first, second = tmp_path / "a", tmp_path / "b"
    for site, version in ((first, "9.19"), (second, "9.14")):
        lib = site / "nvidia" / "cudnn" / "lib"
        lib.mkdir(parents=True)
        for part in ("libcudnn.so.9", "libcudnn_ops.so.9", "libcudnn_engines_runtime_compiled.so.9"):
            (lib / part).write_text(version)
    (second / "nvidia" / "cu13" / "lib").mkdir(parents=True)
    (second / "nvidia" / "cu13" / "lib" / "libnvrtc.so.13").write_bytes(b"")
    files = ortb.cuda_library_files([str(first), str(second)])
    cudnn = [f for f in files if f.name.startswith("libcudnn")]
    assert len(cudnn) == 3 and all(f.read_text() == "9.19" for f in cudnn)
    assert files[0].name == "libnvrtc.so.13"


def test_preload_retries_a_library_whose_dependency_comes_later(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lib = tmp_path / "nvidia" / "cudnn" / "lib"
    lib.mkdir(parents=True)
    for part in ("libcudnn.so.9", "libcudnn_adv.so.9"):
        (lib / part).write_bytes(b"")
    loaded: list[str] = []

    def cdll(path: str, mode: int = 0) -> None:
        if Path(path).name == "libcudnn.so.9" and "libcudnn_adv.so.9" not in loaded:
            raise OSError("needs adv")  # stands for a dependency that sorts later
        loaded.append(Path(path).name)

    monkeypatch.setattr(sys, "path", [str(tmp_path)])
    monkeypatch.setattr(ctypes, "CDLL", cdll)
    assert [Path(p).name for p in ortb.preload_cuda_libraries(SimpleNamespace())] == loaded
    assert loaded == ["libcudnn_adv.so.9", "libcudnn.so.9"]


def test_the_probe_graph_is_a_convolution_whose_centre_is_one() -> None:
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(ortb._PROBE, providers=["CPUExecutionProvider"])
    y = session.run(None, {"x": np.ones((1, 1, 4, 4), np.float32)})[0]
    assert y.shape == (1, 1, 4, 4) and abs(float(y[0, 0, 1, 1]) - 1.0) < 1e-6 and float(y[0, 0, 0, 0]) < 0.5


class _Session:
    def __init__(self, providers: list[str], run_error: str = "") -> None:
        self._providers, self._run_error = providers, run_error

    def get_providers(self) -> list[str]:
        return self._providers

    def run(self, outputs: object, feeds: dict) -> list:
        if self._run_error:
            raise RuntimeError(self._run_error)
        return [np.ones((1, 1, 4, 4), np.float32)]


def _fake_ort(session_providers: list[str], run_error: str = "") -> SimpleNamespace:
    return SimpleNamespace(
        __version__="9.9.9",
        get_available_providers=lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"],
        SessionOptions=lambda: SimpleNamespace(log_severity_level=0),
        InferenceSession=lambda model, options, providers: _Session(session_providers, run_error),
    )


def test_a_cuda_session_whose_convolution_fails_is_a_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the H200 showed: the session opens on CUDA, its first Conv fails in cuDNN."""
    monkeypatch.setattr(cuda, "cuda_available", lambda: True)
    monkeypatch.setattr(ortb, "preload_cuda_libraries", lambda ort: [])
    ortb._PROBED.clear()
    broken = _fake_ort(
        ["CUDAExecutionProvider"], run_error="CUDNN failure 1002: CUDNN_STATUS_SUBLIBRARY_VERSION_MISMATCH"
    )
    problem = ortb.OnnxRuntimeBackend.library_problem(ortb.ONNXRUNTIME_CUDA, broken)
    ortb._PROBED.clear()
    assert problem is not None and "cannot run a convolution" in problem and "SUBLIBRARY_VERSION_MISMATCH" in problem


def test_a_graph_onnxruntime_will_not_capture_opens_uncaptured() -> None:
    opened: list[str] = []

    def session(path: str, options: object, providers: list) -> str:
        opened.append(providers[0][1]["enable_cuda_graph"])
        if providers[0][1]["enable_cuda_graph"] == "1":
            raise RuntimeError("This session cannot use the graph capture feature as requested by the user")
        return "session"

    ort = SimpleNamespace(InferenceSession=session)
    providers = [("CUDAExecutionProvider", {"enable_cuda_graph": "1", "device_id": "0"})]
    got, refused = ortb.open_session(ort, "g.onnx", None, providers)
    assert got == "session" and "graph capture" in refused and opened == ["1", "0"]
    opened.clear()
    assert ortb.open_session(ort, "g.onnx", None, [("CUDAExecutionProvider", {"enable_cuda_graph": "0"})]) == (
        "session",
        "",
    )

    def other_error(path: str, options: object, providers: list) -> str:
        raise RuntimeError("Invalid model")

    with pytest.raises(RuntimeError, match="Invalid model"):
        ortb.open_session(SimpleNamespace(InferenceSession=other_error), "g.onnx", None, providers)


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


def test_cudnn_search_is_exhaustive_only_where_shapes_settle() -> None:
    """P-net takes any image size (a new shape almost every frame): heuristic search; the face
    graphs (only the batch varies) keep the exhaustive one; an explicit choice wins."""
    folder = Path(__file__).resolve().parents[2] / "samples" / "models" / "tw-tiny"
    manifest = read_manifest(folder)

    def search(name: str, **options: str) -> str:
        return ortb.OnnxRuntimeBackend(folder, manifest.artifacts[name], name, device="cuda", **options)._conv_search()

    assert search("pnet") == "HEURISTIC"
    assert search("edit") == "EXHAUSTIVE"
    assert search("rnet", conv_search="heuristic") == "HEURISTIC"
    with pytest.raises(LeedError, match="conv_search 'fast' is unknown"):
        search("edit", conv_search="fast")


def test_the_detector_asks_for_the_heuristic_search_on_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    folder = Path(__file__).resolve().parents[2] / "samples" / "models" / "tw-tiny"
    detector = MTCNNDetector(folder, read_manifest(folder), backend="onnxruntime-cuda")  # constructed, not opened
    assert {name: net._conv_search() for name, net in detector.nets.items()} == {
        "pnet": "HEURISTIC",
        "rnet": "HEURISTIC",
        "onet": "HEURISTIC",
    }
