"""Engine backends: onnxruntime on tiny graphs, backend choice, TensorRT refusals, CUDA helpers.

GPU paths (onnxruntime-cuda, TensorRT) run only under the `gpu` marker on a machine with one.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from leed_runtime import cuda
from leed_runtime.backends import select
from leed_runtime.backends.select import artifact_for_backend, choose_backend, engine_artifact_name
from leed_runtime.backends.table import open_backend
from leed_runtime.backends.tensorrt import TENSORRT_RTX, TensorRTBackend, engine_problem, rebuild_command
from leed_runtime.errors import LeedError
from leed_runtime.manifest import EngineInfo, Manifest, TensorSpec, artifact_for, read_manifest

rtx_supports = TENSORRT_RTX.runs_on

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
RUN_DIR = "runs/tiny"
INPUTS = [TensorSpec("x", ["batch", 2, 4, 4], "float32"), TensorSpec("alpha", ["batch"], "float32")]
OUTPUTS = [TensorSpec("y", ["batch", 3, 4, 4], "float32"), TensorSpec("s", ["batch"], "float32")]
RNG = np.random.default_rng(0)
W = RNG.standard_normal((3, 2, 1, 1)).astype(np.float32)
B = RNG.standard_normal(3).astype(np.float32)


def _graph(path: Path) -> None:
    """y = relu(conv1x1(x) + b), s = 2 alpha; the graph lists its outputs as (s, y), the
    manifest as (y, s): outputs must be matched by name."""
    nodes = [
        helper.make_node("Conv", ["x", "W", "B"], ["c"]),
        helper.make_node("Relu", ["c"], ["y"]),
        helper.make_node("Add", ["alpha", "alpha"], ["s"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info(t.name, TensorProto.FLOAT, t.shape) for t in INPUTS],
        [helper.make_tensor_value_info(t.name, TensorProto.FLOAT, t.shape) for t in reversed(OUTPUTS)],
        [numpy_helper.from_array(W, "W"), numpy_helper.from_array(B, "B")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)


def _reference(x: np.ndarray, alpha: np.ndarray) -> dict[str, np.ndarray]:
    y = np.einsum("oc,bchw->bohw", W[:, :, 0, 0], x) + B[:, None, None]
    return {"y": np.maximum(y, 0), "s": 2 * alpha}


def _manifest(folder: Path, artifacts: dict) -> Manifest:
    manifest = Manifest(
        leed_version="0.1.0",
        created="2026-11-25T00:00:00Z",
        preset="tiny",
        source={"run_dir": RUN_DIR},
        image={"size": 4},
        code={"channels": 2, "size": 4},
        artifacts=artifacts,
    )
    manifest.save(folder)
    return read_manifest(folder)


def _engine(folder: Path, name: str, library: str, version: str, cc: str | None = None, fp16: bool = True):
    """A fake plan artifact (random bytes) with its EngineInfo."""
    file = f"engines/{library}/{name}.plan"
    (folder / file).parent.mkdir(parents=True, exist_ok=True)
    (folder / file).write_bytes(b"not a real plan")
    info = EngineInfo(library, version, None, cc, {"min": 1, "opt": 8, "max": 32})
    return artifact_for(
        folder, file, format="plan", precision="fp16" if fp16 else "fp32", inputs=INPUTS, outputs=OUTPUTS, engine=info
    )


@pytest.fixture()
def export(tmp_path: Path) -> tuple[Path, Manifest]:
    _graph(tmp_path / "edit.onnx")
    art = artifact_for(tmp_path, "edit.onnx", format="onnx", precision="fp32", opset=17, inputs=INPUTS, outputs=OUTPUTS)
    return tmp_path, _manifest(tmp_path, {"edit": art})


def _feeds(batch: int) -> dict[str, np.ndarray]:
    return {
        "x": RNG.standard_normal((batch, 2, 4, 4)).astype(np.float32),
        "alpha": np.linspace(0, 1, batch, dtype=np.float32),
    }


# ---------------------------------------------------------------------------------------------
# onnxruntime-cpu


@pytest.mark.parametrize("batch", [1, 5])
def test_cpu_matches_numpy_by_name(export: tuple[Path, Manifest], batch: int) -> None:
    folder, manifest = export
    with open_backend("onnxruntime-cpu", folder, manifest, "edit", threads=1) as engine:
        feeds = _feeds(batch)
        out = engine.infer(feeds)
        assert list(out) == ["y", "s"]  # the manifest's order and names, not the graph's
        ref = _reference(**feeds)
        for name in ("y", "s"):
            assert out[name].shape == ref[name].shape
            np.testing.assert_allclose(out[name], ref[name], atol=1e-5)
        assert engine.latency_ms > 0
        out2 = engine.infer(_feeds(3))  # the batch changes between calls
        assert out2["y"].shape == (3, 3, 4, 4)


@pytest.mark.filterwarnings("ignore")  # the legacy exporter's deprecation and tracer warnings
def test_cpu_matches_torch(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.InstanceNorm2d(4, affine=True), torch.nn.Tanh()
    )
    net.eval()
    torch.onnx.export(
        net,
        (torch.zeros(1, 3, 8, 8),),
        str(tmp_path / "net.onnx"),
        input_names=["face"],
        output_names=["edited"],
        dynamic_axes={"face": {0: "batch"}, "edited": {0: "batch"}},
        dynamo=False,
    )
    art = artifact_for(
        tmp_path,
        "net.onnx",
        format="onnx",
        precision="fp32",
        inputs=[TensorSpec("face", ["batch", 3, 8, 8], "float32")],
        outputs=[TensorSpec("edited", ["batch", 4, 8, 8], "float32")],
    )
    manifest = _manifest(tmp_path, {"net": art})
    x = np.random.default_rng(1).standard_normal((4, 3, 8, 8)).astype(np.float32)
    with torch.no_grad():
        ref = net(torch.from_numpy(x)).numpy()
    with open_backend("onnxruntime-cpu", tmp_path, manifest, "net") as engine:
        np.testing.assert_allclose(engine.infer({"face": x})["edited"], ref, atol=1e-5)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.update(z=f.pop("x")), "missing ['x'], unknown ['z']"),
        (lambda f: f.update(x=f["x"].astype(np.float64)), "'x' must be float32, got float64"),
        (lambda f: f.update(x=f["x"][:, :1]), "'x' must have shape ['batch', 2, 4, 4], got [2, 1, 4, 4]"),
        (lambda f: f.update(alpha=f["alpha"][:1]), "'alpha' has batch=1, other inputs have batch=2"),
        (lambda f: f.update(alpha=[0.5, 0.5]), "'alpha' must be float32, got list"),
    ],
)
def test_feeds_checked(export: tuple[Path, Manifest], change, message: str) -> None:
    folder, manifest = export
    feeds = _feeds(2)
    change(feeds)
    with open_backend("onnxruntime-cpu", folder, manifest, "edit") as engine, pytest.raises(LeedError) as err:
        engine.infer(feeds)
    assert message in str(err.value)


def test_tampered_and_missing_files_refused(export: tuple[Path, Manifest]) -> None:
    folder, manifest = export
    path = folder / "edit.onnx"
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(LeedError, match="sha256 differs"):
        open_backend("onnxruntime-cpu", folder, manifest, "edit").activate()
    path.unlink()
    with pytest.raises(LeedError, match="edit.onnx: missing"):
        open_backend("onnxruntime-cpu", folder, manifest, "edit", verify=False).activate()


def test_used_before_activate(export: tuple[Path, Manifest]) -> None:
    folder, manifest = export
    with pytest.raises(RuntimeError, match="before activate"):
        open_backend("onnxruntime-cpu", folder, manifest, "edit").infer(_feeds(1))


def test_cpu_refuses_cuda_options_and_plans(export: tuple[Path, Manifest]) -> None:
    folder, manifest = export
    with pytest.raises(LeedError, match="onnxruntime-cpu takes no CUDA options"):
        open_backend("onnxruntime-cpu", folder, manifest, "edit", cuda_graph=True)
    manifest.artifacts["edit.fp16.rtx"] = _engine(folder, "edit.fp16", "tensorrt_rtx", "1.7.1.116")
    with pytest.raises(LeedError, match="not an ONNX graph"):
        open_backend("onnxruntime-cpu", folder, manifest, "edit.fp16.rtx")


# ---------------------------------------------------------------------------------------------
# Backend choice


def test_engine_artifact_names() -> None:
    assert engine_artifact_name("edit", "tensorrt_rtx", True) == "edit.fp16.rtx"
    assert engine_artifact_name("edit", "tensorrt", False) == "edit.trt"
    assert engine_artifact_name("pnet", "tensorrt-rtx", False) == "pnet.rtx"
    with pytest.raises(LeedError, match="unknown"):
        engine_artifact_name("edit", "openvino", False)


def test_artifact_for_backend(tmp_path: Path) -> None:
    _graph(tmp_path / "edit.onnx")
    onnx_art = artifact_for(tmp_path, "edit.onnx", format="onnx", precision="fp32", inputs=INPUTS, outputs=OUTPUTS)
    manifest = _manifest(tmp_path, {"edit": onnx_art, "edit.fp16": onnx_art})
    assert artifact_for_backend("onnxruntime-cpu", manifest, "edit") == "edit"  # FP16 buys nothing on a CPU
    assert artifact_for_backend("onnxruntime-cuda", manifest, "edit") == "edit.fp16"
    assert artifact_for_backend("onnxruntime-cuda", manifest, "edit", "fp32") == "edit"
    assert artifact_for_backend("onnxruntime-cpu", manifest, "edit", "fp16") == "edit.fp16"
    with pytest.raises(LeedError, match="no edit.fp16.trt or edit.trt .* --engine tensorrt"):
        artifact_for_backend("tensorrt", manifest, "edit")


@pytest.mark.skipif(cuda.cuda_available(), reason="this machine has a CUDA GPU")
def test_auto_without_gpu_is_cpu_with_reason(export: tuple[Path, Manifest]) -> None:
    folder, manifest = export
    manifest.artifacts["edit.fp16.rtx"] = _engine(folder, "edit.fp16", "tensorrt_rtx", "1.7.1.116")
    assert choose_backend("auto", folder, manifest, "edit") == ("onnxruntime-cpu", "onnxruntime-cpu: no CUDA GPU here")
    assert select.available_backends(folder, manifest, "edit")[0] == "onnxruntime-cpu"  # (openvino may follow)
    assert "onnxruntime-cpu" in select.available_backends()
    assert choose_backend("onnxruntime-cpu", folder, manifest, "edit")[0] == "onnxruntime-cpu"


@pytest.mark.skipif(cuda.cuda_available(), reason="this machine has a CUDA GPU")
@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("onnxruntime-cuda", "--backend onnxruntime-cuda: no CUDA GPU here"),
        ("tensorrt-rtx", "--backend tensorrt-rtx: no CUDA GPU here"),
        ("tensorrt", "--backend tensorrt: no CUDA GPU here"),
        ("tensor-rt", "--backend 'tensor-rt' is unknown"),
    ],
)
def test_explicit_request_that_cannot_work_is_refused(export: tuple[Path, Manifest], kind: str, message: str) -> None:
    folder, manifest = export
    manifest.artifacts["edit.fp16.rtx"] = _engine(folder, "edit.fp16", "tensorrt_rtx", "1.7.1.116")
    manifest.artifacts["edit.fp16"] = manifest.artifacts["edit"]
    with pytest.raises(LeedError) as err:
        choose_backend(kind, folder, manifest, "edit")
    assert str(err.value).startswith(message)
    assert "\n" not in str(err.value)


def test_auto_explains_skipped_engines(export: tuple[Path, Manifest], monkeypatch: pytest.MonkeyPatch) -> None:
    """A GPU is faked: an engine built by another TensorRT-RTX version is skipped, and the
    reason says so with the rebuild command; with no onnxruntime-gpu, the CPU is chosen."""
    rtx = pytest.importorskip("tensorrt_rtx_bindings")
    folder, manifest = export
    monkeypatch.setattr(cuda, "cuda_available", lambda: True)
    monkeypatch.setattr(cuda, "cuda_info", lambda: cuda.CudaInfo((cuda.Gpu("RTX 4090", "8.9"),)))
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # not installed
    manifest.artifacts["edit.fp16.rtx"] = _engine(folder, "edit.fp16", "tensorrt_rtx", "0.9")
    kind, reason = choose_backend("auto", folder, manifest, "edit")
    assert kind == "onnxruntime-cpu"
    assert "tensorrt not used: the export has no edit.fp16.trt or edit.trt" in reason
    assert f"was built with tensorrt_rtx 0.9, this is {rtx.__version__}" in reason
    assert f"leed-export {RUN_DIR} --out {folder} --engine tensorrt-rtx --fp16 --batch 1:8:32" in reason
    assert "onnxruntime-cuda not used: onnxruntime" in reason and "pip install 'leed[gpu]'" in reason
    manifest.artifacts["edit.fp16.rtx"] = _engine(folder, "edit.fp16", "tensorrt_rtx", rtx.__version__)
    assert choose_backend("auto", folder, manifest, "edit")[0] == "tensorrt-rtx"
    monkeypatch.setattr(cuda, "cuda_info", lambda: cuda.CudaInfo((cuda.Gpu("H100", "9.0"),)))
    with pytest.raises(LeedError, match="TensorRT-RTX does not run on this GPU .compute capability 9.0"):
        choose_backend("tensorrt-rtx", folder, manifest, "edit")


# ---------------------------------------------------------------------------------------------
# TensorRT refusals (no GPU needed)


def _plan(folder: Path, library: str = "tensorrt_rtx", version: str = "1.7.1.116", cc: str | None = None):
    art = _engine(folder, "edit.fp16", library, version, cc)
    _manifest(folder, {"edit.fp16.rtx": art})
    return art


def test_engine_problem(tmp_path: Path) -> None:
    art = _plan(tmp_path, "tensorrt", "10.12.0.36", cc="8.6")
    rebuild = rebuild_command(tmp_path, art, "tensorrt", RUN_DIR)
    assert rebuild == f"leed-export {RUN_DIR} --out {tmp_path} --engine tensorrt --fp16 --batch 1:8:32"
    assert engine_problem(art, "tensorrt", "10.12.0.36", "8.6", rebuild) is None
    assert "built with tensorrt, not tensorrt_rtx" in engine_problem(art, "tensorrt_rtx", "10.12.0.36", "8.6", rebuild)
    assert "built with tensorrt 10.12.0.36, this is 10.13.0.35" in engine_problem(
        art, "tensorrt", "10.13.0.35", "8.6", rebuild
    )
    problem = engine_problem(art, "tensorrt", "10.12.0.36", "9.0", rebuild)
    assert "built for compute capability 8.6" in problem and problem.endswith(rebuild)
    rtx = _plan(tmp_path, "tensorrt_rtx", "1.7.1.116")  # cc None: the library's default targets
    assert engine_problem(rtx, "tensorrt_rtx", "1.7.1.116", "12.0", rebuild) is None
    assert "does not run on this GPU" in engine_problem(rtx, "tensorrt_rtx", "1.7.1.116", "9.0", rebuild)
    assert [rtx_supports(c) for c in ("7.5", "8.0", "8.6", "8.9", "12.1", "9.0", "7.0", "10.0")] == [True] * 5 + [
        False
    ] * 3


def test_tensorrt_missing_library_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    art = _plan(tmp_path, "tensorrt", "10.12.0.36")
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with pytest.raises(LeedError, match=r"tensorrt is not importable .*pip install 'leed\[tensorrt\]'"):
        TensorRTBackend(tmp_path, art, "edit.fp16.trt", library="tensorrt").activate()


def test_tensorrt_refusals_on_activate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rtx = pytest.importorskip("tensorrt_rtx_bindings")
    art = _plan(tmp_path, "tensorrt_rtx", "1.0.0")
    backend = TensorRTBackend(tmp_path, art, "edit.fp16.rtx", library="tensorrt_rtx")
    if not cuda.cuda_available():
        with pytest.raises(LeedError, match="--backend tensorrt-rtx: no CUDA GPU here"):
            backend.activate()
    monkeypatch.setattr(cuda, "cuda_available", lambda: True)
    monkeypatch.setattr(cuda, "cuda_info", lambda: cuda.CudaInfo((cuda.Gpu("RTX 4090", "8.9"),)))
    with pytest.raises(LeedError) as err:
        backend.activate()
    assert f"built with tensorrt_rtx 1.0.0, this is {rtx.__version__}" in str(err.value)
    assert f"rebuild it: leed-export {RUN_DIR} --out {tmp_path} --engine tensorrt-rtx --fp16" in str(err.value)
    art = _plan(tmp_path, "tensorrt_rtx", rtx.__version__)
    with pytest.raises(LeedError, match="built with tensorrt_rtx, not tensorrt"):
        TensorRTBackend(tmp_path, art, "edit.fp16.rtx", library="tensorrt").check_compatible("10.12.0.36", "8.9")
    monkeypatch.setattr(cuda, "cuda_info", lambda: cuda.CudaInfo((cuda.Gpu("H100", "9.0"),)))
    with pytest.raises(LeedError, match="compute capability 9.0"):
        TensorRTBackend(tmp_path, art, "edit.fp16.rtx", library="tensorrt_rtx").activate()
    assert not backend.active


# ---------------------------------------------------------------------------------------------
# CUDA helpers


def test_cuda_available_matches_the_runtime() -> None:
    try:
        from cuda.bindings import runtime
    except ImportError:
        assert cuda.cuda_available() is False
        return
    err, count = runtime.cudaGetDeviceCount()
    assert cuda.cuda_available() is (err == runtime.cudaError_t.cudaSuccess and count > 0)


def test_check_names_the_cuda_error() -> None:
    runtime = pytest.importorskip("cuda.bindings.runtime")
    assert cuda.check((runtime.cudaError_t.cudaSuccess, 7)) == 7
    assert cuda.check((runtime.cudaError_t.cudaSuccess,)) is None
    with pytest.raises(LeedError, match="cudaErrorInsufficientDriver"):
        cuda.check((runtime.cudaError_t.cudaErrorInsufficientDriver, None))


# ---------------------------------------------------------------------------------------------
# onnxruntime-cuda's code path, simulated: host memory plays device memory, ORT's CPU provider
# plays the CUDA one (IOBinding on raw pointers works on both). Checks the flow, not CUDA.


class _FakeBuffer:
    def __init__(self, nbytes: int) -> None:
        self.nbytes = int(nbytes)
        self._mem = np.zeros(max(self.nbytes, 1), np.uint8)
        self.ptr = self._mem.ctypes.data

    def close(self) -> None:
        self.ptr = 0


class _FakePinned:
    def __init__(self, shape: tuple[int, ...], dtype: np.dtype) -> None:
        self.array = np.zeros(shape, dtype)
        self.nbytes = self.array.nbytes

    def view(self, shape: tuple[int, ...]) -> np.ndarray:
        return self.array.reshape(-1)[: int(np.prod(shape))].reshape(shape)

    def close(self) -> None:
        pass


class _FakeStream:
    ptr = 0

    def __int__(self) -> int:
        return 0

    def synchronize(self) -> None:
        pass

    def close(self) -> None:
        pass


def _memmove(dst: int, src: int, nbytes: int) -> None:
    import ctypes

    ctypes.memmove(dst, src, nbytes)


@pytest.fixture()
def fake_gpu(monkeypatch: pytest.MonkeyPatch) -> dict:
    import onnxruntime

    seen: dict = {"bound": []}
    real_session = onnxruntime.InferenceSession

    class Binding:
        def __init__(self, binding) -> None:
            self.binding = binding

        def bind_input(self, name, device, device_id, dtype, shape, ptr) -> None:
            seen["bound"].append((name, device, tuple(shape)))
            self.binding.bind_input(name, "cpu", device_id, dtype, shape, ptr)

        def bind_output(self, name, device, device_id=0, dtype=None, shape=None, ptr=None) -> None:
            seen["bound"].append((name, device, None if shape is None else tuple(shape)))
            if shape is None:
                self.binding.bind_output(name, "cpu")
            else:
                self.binding.bind_output(name, "cpu", device_id, dtype, shape, ptr)

        def get_outputs(self):
            return self.binding.get_outputs()

    class Session:
        def __init__(self, path, options, providers) -> None:
            seen["providers"] = providers
            self.session = real_session(path, options, providers=["CPUExecutionProvider"])

        def get_providers(self) -> list[str]:
            return ["CUDAExecutionProvider", "CPUExecutionProvider"]

        def io_binding(self) -> Binding:
            return Binding(self.session.io_binding())

        def run_with_iobinding(self, binding, options) -> None:
            seen["graph_id"] = (
                options.get_run_config_entry("gpu_graph_id")
                if seen["providers"][0][1]["enable_cuda_graph"] == "1"
                else None
            )
            self.session.run_with_iobinding(binding.binding, options)

        def __getattr__(self, name):
            return getattr(self.session, name)

    monkeypatch.setattr(onnxruntime, "InferenceSession", Session)
    monkeypatch.setattr(
        onnxruntime, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"]
    )
    monkeypatch.setattr(cuda, "cuda_available", lambda: True)
    monkeypatch.setattr(cuda, "Stream", _FakeStream)
    monkeypatch.setattr(cuda, "DeviceBuffer", _FakeBuffer)
    monkeypatch.setattr(cuda, "PinnedBuffer", _FakePinned)
    monkeypatch.setattr(
        cuda,
        "memcpy_htod_async",
        lambda dst, src, stream=None: _memmove(dst, np.ascontiguousarray(src).ctypes.data, src.nbytes),
    )
    monkeypatch.setattr(
        cuda, "memcpy_dtoh_async", lambda dst, src, stream=None: _memmove(dst.ctypes.data, src, dst.nbytes)
    )
    monkeypatch.setattr(cuda, "memcpy_dtod_async", lambda dst, src, nbytes, stream=None: _memmove(dst, src, nbytes))
    return seen


@pytest.mark.parametrize("cuda_graph", [False, True])
def test_cuda_path_simulated(export: tuple[Path, Manifest], fake_gpu: dict, cuda_graph: bool) -> None:
    folder, manifest = export
    options = {"max_batch": 4, "cuda_graph": cuda_graph, "prefer_nhwc": True}
    with open_backend("onnxruntime-cuda", folder, manifest, "edit", **options) as engine:
        provider, provider_options = fake_gpu["providers"][0]
        assert provider == "CUDAExecutionProvider"
        assert provider_options["cudnn_conv_algo_search"] == "EXHAUSTIVE"
        assert provider_options["enable_cuda_graph"] == ("1" if cuda_graph else "0")
        assert provider_options["prefer_nhwc"] == "1" and "user_compute_stream" in provider_options
        slots = {name: slot.device.ptr for name, slot in engine._slots.items()}
        for batch, graph_id in ((1, "1"), (4, "2"), (1, "1")):
            feeds = _feeds(batch)
            out = engine.infer(feeds)
            ref = _reference(**feeds)
            assert list(out) == ["y", "s"]
            for name in ("y", "s"):
                np.testing.assert_allclose(out[name], ref[name], atol=1e-5)
            assert fake_gpu["graph_id"] == (graph_id if cuda_graph else None)
        assert {name: slot.device.ptr for name, slot in engine._slots.items()} == slots  # allocated once
        assert ("y", "cuda", (1, 3, 4, 4)) in fake_gpu["bound"]
        with pytest.raises(LeedError, match="batch 5 exceeds this backend's max_batch 4"):
            engine.infer(_feeds(5))
    assert not engine._slots


def test_cuda_path_simulated_device_arrays(export: tuple[Path, Manifest], fake_gpu: dict) -> None:
    folder, manifest = export
    feeds = _feeds(3)
    buffers = {k: cuda.DeviceBuffer(v.nbytes) for k, v in feeds.items()}
    for k, v in feeds.items():
        cuda.memcpy_htod_async(buffers[k].ptr, v)
    device_feeds = {k: cuda.DeviceArray(buffers[k], v.shape, v.dtype) for k, v in feeds.items()}
    with open_backend("onnxruntime-cuda", folder, manifest, "edit", outputs_on_device=True) as engine:
        out = engine.infer(device_feeds)
        assert isinstance(out["y"], cuda.DeviceArray) and out["y"].shape == (3, 3, 4, 4)
        np.testing.assert_allclose(out["y"].to_host(stream=_FakeStream()), _reference(**feeds)["y"], atol=1e-5)
        np.testing.assert_allclose(out["s"].to_host(stream=_FakeStream()), _reference(**feeds)["s"], atol=1e-5)


def test_cuda_path_simulated_graph_sized_output(export: tuple[Path, Manifest], fake_gpu: dict) -> None:
    """An output size only the graph knows (a detector's map) is allocated by onnxruntime and
    copied into the backend's own buffer; CUDA graphs refuse such a graph up front."""
    folder, manifest = export
    art = manifest.artifacts["edit"]
    art.outputs = [OUTPUTS[0], TensorSpec("s", ["n"], "float32")]
    with open_backend("onnxruntime-cuda", folder, manifest, "edit") as engine:
        feeds = _feeds(2)
        out = engine.infer(feeds)
        assert ("s", "cuda", None) in fake_gpu["bound"]
        np.testing.assert_allclose(out["s"], _reference(**feeds)["s"], atol=1e-6)
    with pytest.raises(LeedError, match="'s' has dynamic dimensions .* CUDA graphs need fixed shapes"):
        open_backend("onnxruntime-cuda", folder, manifest, "edit", cuda_graph=True).activate()


def test_cuda_path_refuses_cpu_onnxruntime(export: tuple[Path, Manifest], monkeypatch: pytest.MonkeyPatch) -> None:
    folder, manifest = export
    monkeypatch.setattr(cuda, "cuda_available", lambda: True)
    # the CPU wheel on any machine, also one that has onnxruntime-gpu (whose list has CUDA)
    ort = pytest.importorskip("onnxruntime")
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    with pytest.raises(LeedError, match=r"has no CUDAExecutionProvider .*pip install 'leed\[gpu\]'"):
        open_backend("onnxruntime-cuda", folder, manifest, "edit").activate()


# ---------------------------------------------------------------------------------------------
# Boundaries


IMPORT_BACKENDS = """
import leed_runtime.cuda, leed_runtime.backends.base, leed_runtime.backends.onnxruntime
import leed_runtime.backends.tensorrt, leed_runtime.backends.select
from leed_runtime.backends.select import available_backends
print(available_backends())
assert "torch" not in sys.modules
"""


def test_backends_import_without_torch(python_without_torch) -> None:  # noqa: ANN001
    proc = python_without_torch(IMPORT_BACKENDS)
    assert proc.returncode == 0, proc.stderr
    assert "onnxruntime-cpu" in proc.stdout


# ---------------------------------------------------------------------------------------------
# GPU (skipped without one)


def _needs_ort_cuda() -> None:
    import onnxruntime

    if not cuda.cuda_available():
        pytest.skip("no CUDA GPU")
    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        pytest.skip("onnxruntime without CUDAExecutionProvider (pip install 'leed[gpu]')")


@pytest.mark.gpu
@pytest.mark.parametrize("cuda_graph", [False, True])
def test_onnxruntime_cuda_matches_cpu(export: tuple[Path, Manifest], cuda_graph: bool) -> None:
    _needs_ort_cuda()
    folder, manifest = export
    with cuda.Stream() as stream:
        options = {"stream": stream, "cuda_graph": cuda_graph, "max_batch": 8}
        with open_backend("onnxruntime-cuda", folder, manifest, "edit", **options) as engine:
            for batch in (1, 4, 4, 1):
                feeds = _feeds(batch)
                out = engine.infer(feeds)
                ref = _reference(**feeds)
                for name in ("y", "s"):
                    np.testing.assert_allclose(out[name], ref[name], atol=1e-4)
            with pytest.raises(LeedError, match="exceeds this backend's max_batch 8"):
                engine.infer(_feeds(9))


@pytest.mark.gpu
def test_onnxruntime_cuda_device_arrays(export: tuple[Path, Manifest]) -> None:
    _needs_ort_cuda()
    folder, manifest = export
    feeds = _feeds(3)
    with cuda.Stream() as stream:
        buffers = {k: cuda.DeviceBuffer(v.nbytes) for k, v in feeds.items()}
        for k, v in feeds.items():
            cuda.memcpy_htod_async(buffers[k].ptr, v, stream)
        stream.synchronize()
        device_feeds = {k: cuda.DeviceArray(buffers[k], v.shape, v.dtype) for k, v in feeds.items()}
        options = {"stream": stream, "outputs_on_device": True}
        with open_backend("onnxruntime-cuda", folder, manifest, "edit", **options) as engine:
            out = engine.infer(device_feeds)
            assert isinstance(out["y"], cuda.DeviceArray)
            np.testing.assert_allclose(out["y"].to_host(stream=stream), _reference(**feeds)["y"], atol=1e-4)
        for b in buffers.values():
            b.close()


@pytest.mark.gpu
def test_cuda_buffers_round_trip() -> None:
    if not cuda.cuda_available():
        pytest.skip("no CUDA GPU")
    assert cuda.cuda_info().gpus[0].compute_capability.count(".") == 1
    with cuda.Stream() as stream:
        pinned = cuda.PinnedBuffer((2, 3), np.float32)
        pinned.array[:] = np.arange(6, dtype=np.float32).reshape(2, 3)
        device = cuda.DeviceBuffer(pinned.nbytes)
        cuda.memcpy_htod_async(device.ptr, pinned.array, stream)
        back = cuda.DeviceArray(device, (2, 3), np.float32).to_host(stream=stream)
        np.testing.assert_array_equal(back, pinned.array)
        device.close()
        pinned.close()
