"""The openvino backend: parity with onnxruntime-cpu on tiny graphs, the bf16 gate, option
checks, the path without openvino installed, and how `auto` chooses between CPU kinds (from
injected timings: no test depends on this machine's speed).

Tests that run OpenVINO skip without it; bf16 runs skip on CPUs OpenVINO lists no BF16 for.
"""

from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from leed_runtime.backends import openvino as ovb
from leed_runtime.backends import select
from leed_runtime.backends.openvino import BF16_GATE, OPENVINO, Bf16Gate, bf16_error, gate_feeds
from leed_runtime.backends.select import RACE_MIN_MS, choose_backend, pick_faster
from leed_runtime.backends.table import BACKENDS, backend_kinds, open_backend
from leed_runtime.errors import LeedError
from leed_runtime.manifest import Manifest, TensorSpec, artifact_for, read_manifest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "samples" / "models" / "tw-tiny"
INPUTS = [TensorSpec("x", ["batch", 3, 4, 4], "float32"), TensorSpec("alpha", ["batch"], "float32")]
OUTPUTS = [TensorSpec("y", ["batch", 2, 4, 4], "float32"), TensorSpec("s", ["batch"], "float32")]
RNG = np.random.default_rng(0)
W = RNG.standard_normal((2, 3, 1, 1)).astype(np.float32)
B = RNG.standard_normal(2).astype(np.float32)
UNINSTALL = """
import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name == "openvino" or name.startswith("openvino."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, _Block())
"""


def _save(nodes: list, inits: list, path: Path, opsets: tuple = (("", 17),)) -> None:
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info(t.name, TensorProto.FLOAT, t.shape) for t in INPUTS],
        [helper.make_tensor_value_info(t.name, TensorProto.FLOAT, t.shape) for t in reversed(OUTPUTS)],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets])
    model.ir_version = 8
    onnx.save(model, path)


def _graph(path: Path) -> None:
    """y = relu(conv1x1(x) + b), s = 2 alpha; outputs listed (s, y) in the graph, (y, s) in the manifest."""
    nodes = [
        helper.make_node("Conv", ["x", "W", "B"], ["c"]),
        helper.make_node("Relu", ["c"], ["y"]),
        helper.make_node("Add", ["alpha", "alpha"], ["s"]),
    ]
    _save(nodes, [numpy_helper.from_array(W, "W"), numpy_helper.from_array(B, "B")], path)


def _offset_graph(path: Path) -> None:
    """y = conv1x1(x + 300) - 300: exact in FP32, but bf16 (8-bit mantissa) rounds x + 300 to
    steps of 2, so every output is off by ~0.5: what the bf16 gate must refuse."""
    nodes = [
        helper.make_node("Add", ["x", "k"], ["a"]),
        helper.make_node("Conv", ["a", "W"], ["c"]),
        helper.make_node("Sub", ["c", "k"], ["y"]),
        helper.make_node("Add", ["alpha", "alpha"], ["s"]),
    ]
    inits = [
        numpy_helper.from_array(np.array(300, np.float32), "k"),
        numpy_helper.from_array(np.full((2, 3, 1, 1), 1 / 3, np.float32), "W"),
    ]
    _save(nodes, inits, path)


def _custom_op_graph(path: Path) -> None:
    """A graph with an operator no runtime knows (com.example.Frobnicate)."""
    nodes = [
        helper.make_node("Frobnicate", ["x"], ["t"], domain="com.example"),
        helper.make_node("Conv", ["t", "W", "B"], ["y"]),
        helper.make_node("Add", ["alpha", "alpha"], ["s"]),
    ]
    inits = [numpy_helper.from_array(W, "W"), numpy_helper.from_array(B, "B")]
    _save(nodes, inits, path, (("", 17), ("com.example", 1)))


def _manifest(folder: Path, graphs: dict[str, str]) -> Manifest:
    artifacts = {
        name: artifact_for(folder, file, format="onnx", precision="fp32", opset=17, inputs=INPUTS, outputs=OUTPUTS)
        for name, file in graphs.items()
    }
    Manifest(
        leed_version="0.1.0",
        created="2026-11-25T00:00:00Z",
        preset="tiny",
        source={"run_dir": "runs/tiny"},
        image={"size": 4},
        code={"channels": 2, "size": 4},
        artifacts=artifacts,
    ).save(folder)
    return read_manifest(folder)


@pytest.fixture()
def export(tmp_path: Path) -> tuple[Path, Manifest]:
    _graph(tmp_path / "edit.onnx")
    _offset_graph(tmp_path / "offset.onnx")
    _custom_op_graph(tmp_path / "custom.onnx")
    return tmp_path, _manifest(tmp_path, {"edit": "edit.onnx", "offset": "offset.onnx", "custom": "custom.onnx"})


@pytest.fixture()
def ov() -> types.ModuleType:
    return pytest.importorskip("openvino")


def _feeds(batch: int) -> dict[str, np.ndarray]:
    return {
        "x": RNG.uniform(-1, 1, (batch, 3, 4, 4)).astype(np.float32),
        "alpha": np.linspace(0, 1, batch, dtype=np.float32),
    }


def _needs_bf16(ov: types.ModuleType) -> None:
    problem = ovb.bf16_problem(ov)
    if problem is not None:
        pytest.skip(problem)


# ---------------------------------------------------------------------------------------------
# The table row


def test_row_is_in_the_table_after_onnxruntime_cpu() -> None:
    assert OPENVINO in BACKENDS and OPENVINO.backend is ovb.OpenVINOBackend
    assert backend_kinds().index("openvino") == backend_kinds().index("onnxruntime-cpu") + 1
    assert OPENVINO.install == "pip install 'leed[openvino]'"
    assert not OPENVINO.uses_cuda and OPENVINO.format == "onnx" and OPENVINO.engine_tag is None
    assert {"precision", "threads", "verify"} == OPENVINO.options


# ---------------------------------------------------------------------------------------------
# Parity with onnxruntime-cpu


@pytest.mark.parametrize("batch", [1, 5])
def test_matches_onnxruntime_cpu_by_name(export: tuple[Path, Manifest], ov: types.ModuleType, batch: int) -> None:
    folder, manifest = export
    feeds = _feeds(batch)
    with open_backend("onnxruntime-cpu", folder, manifest, "edit", threads=1) as ort_engine:
        expected = {k: np.array(v) for k, v in ort_engine.infer(feeds).items()}
    with open_backend("openvino", folder, manifest, "edit", threads=1) as engine:
        assert engine.name == "openvino" and engine.precision == "fp32" and engine.gate is None
        out = engine.infer(feeds)
        assert list(out) == ["y", "s"]  # the manifest's order and names, not the graph's
        for name in ("y", "s"):
            assert out[name].dtype == np.float32 and out[name].shape == expected[name].shape
            np.testing.assert_allclose(out[name], expected[name], atol=1e-5)
        assert engine.latency_ms > 0
        assert engine.infer(_feeds(3))["y"].shape == (3, 2, 4, 4)  # the batch changes between calls


def test_fp32_is_asked_for_explicitly(export: tuple[Path, Manifest], ov: types.ModuleType) -> None:
    """OpenVINO picks bf16 by itself on AVX512_BF16 CPUs: the default must compile in f32."""
    folder, manifest = export
    with open_backend("openvino", folder, manifest, "offset") as engine:
        assert engine._compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name() == "f32"
        feeds = _feeds(2)
        expected = np.repeat(feeds["x"].mean(1, keepdims=True), 2, axis=1)  # the offset cancels in FP32
        np.testing.assert_allclose(engine.infer(feeds)["y"], expected, atol=1e-4)


def test_shipped_edit_graph_matches_onnxruntime(ov: types.ModuleType) -> None:
    if not (SHIPPED / "manifest.json").is_file():
        pytest.skip("no shipped model in this checkout")
    manifest = read_manifest(SHIPPED)
    feeds = gate_feeds(manifest.artifacts["edit"].inputs, batch=2)
    with open_backend("onnxruntime-cpu", SHIPPED, manifest, "edit") as ort_engine:
        expected = np.array(ort_engine.infer(feeds)["edited"])
    with open_backend("openvino", SHIPPED, manifest, "edit") as engine:
        got = engine.infer(feeds)["edited"]
    assert np.abs(got - expected).max() < 1e-3  # leed-export's FP32 parity tolerance


# ---------------------------------------------------------------------------------------------
# Options and bad input


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"precision": "fp16"}, "openvino option precision='fp16' is unknown; choose fp32 or bf16"),
        ({"threads": -1}, "openvino option threads=-1: give a whole number >= 0"),
        ({"threads": "2"}, "openvino option threads='2': give a whole number >= 0"),
        ({"cuda_graph": True}, "openvino takes no CUDA options (cuda_graph); use --backend onnxruntime-cuda"),
        ({"max_batch": 8}, "openvino takes no options (max_batch); use --backend onnxruntime-cuda or onnxruntime-cpu"),
    ],
)
def test_bad_options_are_one_line(export: tuple[Path, Manifest], options: dict, message: str) -> None:
    """Checked when the backend is made, before openvino is imported."""
    folder, manifest = export
    with pytest.raises(LeedError) as err:
        open_backend("openvino", folder, manifest, "edit", **options)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_graph_openvino_cannot_read_is_one_line(export: tuple[Path, Manifest], ov: types.ModuleType) -> None:
    folder, manifest = export
    engine = open_backend("openvino", folder, manifest, "custom")
    with pytest.raises(LeedError) as err:
        engine.activate()
    message = str(err.value)
    assert message.startswith(f"{folder / 'custom.onnx'}: openvino ") and "Frobnicate" in message
    assert message.endswith("use --backend onnxruntime-cpu or re-run leed-export") and "\n" not in message
    assert not engine.active


def test_modified_graph_is_refused(export: tuple[Path, Manifest], ov: types.ModuleType) -> None:
    folder, manifest = export
    (folder / "edit.onnx").write_bytes((folder / "edit.onnx").read_bytes() + b"\0")
    with pytest.raises(LeedError, match="sha256 differs"):
        open_backend("openvino", folder, manifest, "edit").activate()


# ---------------------------------------------------------------------------------------------
# bf16


def test_bf16_gate_numbers() -> None:
    ref = np.linspace(-1, 1, 4096, dtype=np.float32).reshape(1, 1, 64, 64)
    assert BF16_GATE.problem({"y": ref}, {"y": ref + 1e-3}) is None
    assert bf16_error(ref, ref + 1e-3)["psnr_db"] == pytest.approx(10 * np.log10(4 / 1e-6), rel=1e-3)
    worse = BF16_GATE.problem({"y": ref}, {"y": ref + 0.02})  # 2.6 levels everywhere: the median fails
    assert worse is not None and "output 'y'" in worse and "median abs 2.00e-02" in worse
    spikes = ref.copy()
    spikes.flat[::10] += 0.2  # a tenth of the pixels off by 0.2: median passes, PSNR (30 dB) fails
    assert "PSNR 30.0 dB" in BF16_GATE.problem({"y": ref}, {"y": spikes})
    flipped = ref.copy()
    flipped.flat[0] = 1.5  # one pixel inverted (error 2.5): only the max catches it
    assert "max abs 2.50e+00" in BF16_GATE.problem({"y": ref}, {"y": flipped})
    nan = ref.copy()
    nan.flat[5] = np.nan
    assert "1 NaN/Inf" in BF16_GATE.problem({"y": ref}, {"y": nan})
    codes = 50 * ref  # unbounded outputs: errors relative to their peak magnitude (50)
    assert BF16_GATE.problem({"c": codes}, {"c": codes + 0.05}) is None


def test_gate_feeds_follow_the_specs() -> None:
    specs = [
        TensorSpec("face", ["batch", 3, 8, 8], "float32"),
        TensorSpec("dexp", ["batch", 4, 2, 2], "float32"),
        TensorSpec("alpha", ["batch"], "float32"),
        TensorSpec("image", ["batch", 3, "height", "width"], "float32"),
    ]
    feeds = gate_feeds(specs, batch=2)
    assert {k: v.shape for k, v in feeds.items()} == {
        "face": (2, 3, 8, 8),
        "dexp": (2, 4, 2, 2),
        "alpha": (2,),
        "image": (2, 3, 64, 64),
    }
    assert -1 <= feeds["face"].min() < -0.5 and 0.5 < feeds["face"].max() <= 1 and (feeds["alpha"] == 1).all()
    assert feeds["dexp"].std() < 0.5 and all(v.dtype == np.float32 for v in feeds.values())
    np.testing.assert_array_equal(gate_feeds(specs)["face"], feeds["face"])  # deterministic


def test_bf16_passes_its_gate(export: tuple[Path, Manifest], ov: types.ModuleType) -> None:
    _needs_bf16(ov)
    folder, manifest = export
    with open_backend("openvino", folder, manifest, "edit", precision="bf16") as engine:
        assert engine._compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name() == "bf16"
        assert engine.gate is not None and engine.gate["median_abs"] <= BF16_GATE.median_abs
        assert engine.gate["psnr_db"] >= BF16_GATE.psnr_db
        assert engine.infer(_feeds(2))["y"].shape == (2, 2, 4, 4)


def test_bf16_failing_its_gate_is_refused_with_the_error(export: tuple[Path, Manifest], ov: types.ModuleType) -> None:
    _needs_bf16(ov)
    folder, manifest = export
    engine = open_backend("openvino", folder, manifest, "offset", precision="bf16")
    with pytest.raises(LeedError) as err:
        engine.activate()
    message = str(err.value)
    assert message.startswith(f"{folder / 'offset.onnx'}: bf16 refused by its parity gate, output 'y': bf16 vs FP32")
    assert "median abs" in message and "tolerance: median <= 7.8e-03, PSNR >= 35 dB" in message
    assert message.endswith("use precision=fp32") and "\n" not in message and not engine.active
    with open_backend("openvino", folder, manifest, "offset") as fp32:  # FP32 runs the same graph
        assert fp32.infer(_feeds(1))["y"].shape == (1, 2, 4, 4)


def test_bf16_gate_tolerance_decides(
    export: tuple[Path, Manifest], ov: types.ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same graph that passes is refused under a gate no rounding can pass."""
    _needs_bf16(ov)
    folder, manifest = export
    monkeypatch.setattr(ovb, "BF16_GATE", Bf16Gate(median_abs=0.0, psnr_db=1000.0))
    with pytest.raises(LeedError, match=r"edit.onnx: bf16 refused by its parity gate, output '(y|s)'"):
        open_backend("openvino", folder, manifest, "edit", precision="bf16").activate()


class _NoBf16Core:
    """An OpenVINO Core on a CPU without native bf16 (what OpenVINO lists for AVX2 CPUs)."""

    available_devices = ["CPU"]

    def get_property(self, device: str, name: str) -> object:
        return {"OPTIMIZATION_CAPABILITIES": ["FP32", "INT8", "BIN"], "FULL_DEVICE_NAME": "Test CPU"}[name]


def test_bf16_refused_on_a_cpu_without_it(
    export: tuple[Path, Manifest], ov: types.ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, manifest = export
    monkeypatch.setattr(ovb, "core", lambda module: _NoBf16Core())
    assert ovb.bf16_problem(ov) == "this CPU (Test CPU) has no native bf16 (OpenVINO lists FP32, INT8, BIN)"
    with pytest.raises(LeedError) as err:
        open_backend("openvino", folder, manifest, "edit", precision="bf16").activate()
    assert str(err.value) == (
        "openvino precision=bf16: this CPU (Test CPU) has no native bf16 (OpenVINO lists FP32, INT8, BIN); "
        "use precision=fp32"
    )


# ---------------------------------------------------------------------------------------------
# Without openvino


def test_not_installed_is_one_line(export: tuple[Path, Manifest], monkeypatch: pytest.MonkeyPatch) -> None:
    folder, manifest = export
    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino -> ImportError
    with pytest.raises(LeedError) as err:
        choose_backend("openvino", folder, manifest, "edit")
    message = str(err.value)
    assert message.startswith("--backend openvino: openvino is not importable")
    assert message.endswith("pip install 'leed[openvino]'") and "\n" not in message
    with pytest.raises(LeedError, match=r"pip install 'leed\[openvino\]'"):
        open_backend("openvino", folder, manifest, "edit").activate()
    assert "openvino" not in select.available_backends(folder, manifest, "edit")
    assert choose_backend("auto", folder, manifest, "edit")[0] == "onnxruntime-cpu"


def test_everything_imports_and_doctor_reports_without_openvino() -> None:
    code = UNINSTALL + (
        "import json\n"
        "import leed_runtime.backends.openvino, leed_runtime.backends.select, leed_runtime.pipeline\n"
        "from leed_runtime import doctor\n"
        "found = doctor.collect()\n"
        "print(json.dumps([found['libraries']['openvino'], found['commands']['leed-run openvino']]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    library, command = json.loads(done.stdout.strip().splitlines()[-1])
    assert not library["present"] and library["detail"] == "not installed (pip install 'leed[openvino]')"
    assert not command["ok"] and command["detail"] == "needs openvino (pip install 'leed[openvino]')"


def test_doctor_reports_openvino(ov: types.ModuleType) -> None:
    from leed_runtime import doctor

    found = doctor.collect()
    assert found["libraries"]["openvino"]["present"] and found["libraries"]["openvino"]["version"] == ov.__version__
    assert found["commands"]["leed-run openvino"]["ok"]


# ---------------------------------------------------------------------------------------------
# auto on a CPU: the faster kind, from measured (here: injected) timings


def test_pick_faster_needs_a_clear_win() -> None:
    kind, note = pick_faster("onnxruntime-cpu", {"onnxruntime-cpu": 50.0, "openvino": 40.0}, "edit")
    assert (
        kind == "openvino" and note == "faster than onnxruntime-cpu on edit here (40.0 vs 50.0 ms per call, timed now)"
    )
    kind, note = pick_faster("onnxruntime-cpu", {"onnxruntime-cpu": 50.0, "openvino": 46.0}, "edit")  # 8%: noise
    assert kind == "onnxruntime-cpu"
    assert note == "openvino not used: not faster on edit here (46.0 vs 50.0 ms per call on onnxruntime-cpu, timed now)"
    assert pick_faster("onnxruntime-cpu", {"onnxruntime-cpu": 3.0, "openvino": 1.5}, "edit")[0] == "onnxruntime-cpu"
    kind, note = pick_faster("onnxruntime-cpu", {"onnxruntime-cpu": 50.0, "openvino": "x.onnx: cannot read it"}, "e")
    assert (kind, note) == ("onnxruntime-cpu", "openvino not used: x.onnx: cannot read it")
    assert pick_faster("onnxruntime-cpu", {"onnxruntime-cpu": 0.1}, "edit") == ("onnxruntime-cpu", "")


def _fake_openvino() -> types.ModuleType:
    """An importable `openvino` with a CPU device, for choosing without the real library."""
    module = types.ModuleType("openvino")
    module.__version__ = "2099.1.0"
    module.get_version = lambda: "2099.1.0"
    module.Core = type("Core", (), {"available_devices": ["CPU"]})
    return module


@pytest.mark.parametrize(
    ("timings", "kind", "words"),
    [
        (
            {"onnxruntime-cpu": 52.6, "openvino": 41.0},
            "openvino",
            "faster than onnxruntime-cpu on edit here (41.0 vs 52.6",
        ),
        ({"onnxruntime-cpu": 52.6, "openvino": 58.0}, "onnxruntime-cpu", "openvino not used: not faster on edit here"),
        ({"onnxruntime-cpu": 0.5}, "onnxruntime-cpu", None),  # too cheap to time the others
    ],
)
def test_auto_takes_the_measured_faster_cpu_kind(
    export: tuple[Path, Manifest], monkeypatch: pytest.MonkeyPatch, timings: dict, kind: str, words: str | None
) -> None:
    folder, manifest = export
    monkeypatch.setitem(sys.modules, "openvino", _fake_openvino())
    monkeypatch.setattr(select.cuda, "cuda_available", lambda: False)
    monkeypatch.setattr(select, "_TIMED", {})
    calls = []

    def fake_time_kinds(kinds: tuple[str, ...], *args: object) -> dict:
        calls.append(kinds)
        return timings

    monkeypatch.setattr(select, "time_kinds", fake_time_kinds)
    got, reason = choose_backend("auto", folder, manifest, "edit")
    assert got == kind and reason.startswith(f"{kind}: no CUDA GPU here")
    assert (words in reason) if words else reason == "onnxruntime-cpu: no CUDA GPU here"
    assert choose_backend("auto", folder, manifest, "edit")[0] == kind
    assert calls == [("onnxruntime-cpu", "openvino")]  # timed once per process and graph
    assert choose_backend("openvino", folder, manifest, "edit") == ("openvino", "openvino: requested")
    assert calls == [("onnxruntime-cpu", "openvino")]  # an explicit kind is never timed


def test_auto_without_openvino_times_nothing(export: tuple[Path, Manifest], monkeypatch: pytest.MonkeyPatch) -> None:
    folder, manifest = export
    monkeypatch.setitem(sys.modules, "openvino", None)
    monkeypatch.setattr(select.cuda, "cuda_available", lambda: False)
    monkeypatch.setattr(select, "time_kinds", lambda *a: pytest.fail("timed without a rival"))
    assert choose_backend("auto", folder, manifest, "edit") == ("onnxruntime-cpu", "onnxruntime-cpu: no CUDA GPU here")


def test_time_kinds_stops_at_a_cheap_graph(export: tuple[Path, Manifest], ov: types.ModuleType) -> None:
    """A graph onnxruntime runs in microseconds: openvino is not even opened."""
    folder, manifest = export
    timings = select.time_kinds(("onnxruntime-cpu", "openvino"), folder, manifest, "edit", "auto")
    if list(timings) == ["onnxruntime-cpu"]:
        assert timings["onnxruntime-cpu"] < RACE_MIN_MS
    else:  # a loaded machine stalled the one call: then both were timed
        assert set(timings) == {"onnxruntime-cpu", "openvino"} and all(v > 0 for v in timings.values())


def test_time_kinds_reports_a_kind_that_cannot_open(
    export: tuple[Path, Manifest], ov: types.ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, manifest = export
    monkeypatch.setattr(select, "RACE_MIN_MS", 0.0)  # time every kind, however cheap the graph
    timings = select.time_kinds(("onnxruntime-cpu", "openvino"), folder, manifest, "custom", "auto")
    assert isinstance(timings["onnxruntime-cpu"], str) and isinstance(timings["openvino"], str)
    assert "Frobnicate" in timings["openvino"]


def test_time_kinds_drops_a_kind_that_fails_to_run(
    export: tuple[Path, Manifest], ov: types.ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A kind that opens the graph but fails on its first call leaves the race with its line;
    the others are still timed (it used to end `--backend auto` with that error)."""
    folder, manifest = export
    monkeypatch.setattr(select, "RACE_MIN_MS", 0.0)
    real_open = select.open_backend

    def open_backend(kind: str, *args: object) -> object:
        engine = real_open(kind, *args)
        if kind == "openvino":

            def fail(feeds: dict) -> dict:
                raise LeedError("openvino: cannot run edit (simulated)")

            engine.infer = fail
        return engine

    monkeypatch.setattr(select, "open_backend", open_backend)
    timings = select.time_kinds(("onnxruntime-cpu", "openvino"), folder, manifest, "edit", "auto")
    assert isinstance(timings["onnxruntime-cpu"], float) and timings["onnxruntime-cpu"] > 0
    assert timings["openvino"] == "openvino: cannot run edit (simulated)"


# ---------------------------------------------------------------------------------------------
# leed-bench infer: openvino beside onnxruntime-cpu in one run


def test_bench_compares_backends_in_one_run(ov: types.ModuleType) -> None:
    from leed_export.bench.infer import InferConfig, bench_infer, parse_setup

    assert parse_setup("openvino:precision=bf16,threads=2") == ("openvino", {"precision": "bf16", "threads": 2})
    with pytest.raises(LeedError, match="KIND:OPTION=VALUE"):
        parse_setup("openvino:bf16")
    if not (SHIPPED / "manifest.json").is_file():
        pytest.skip("no shipped model in this checkout")
    compare = ("openvino", *(("openvino:precision=bf16",) if ovb.bf16_problem(ov) is None else ()))
    result = bench_infer(
        InferConfig(str(SHIPPED), backend="onnxruntime-cpu", batches=(1,), warmup=0, iters=1, compare=compare)
    )
    assert result["backend"] == "onnxruntime-cpu" and len(result["results"]) == 6
    assert [c["label"] for c in result["compare"]] == list(compare)
    fp32 = result["compare"][0]
    assert fp32["backend"] == "openvino" and fp32["artifacts"]["edit"] == "edit"
    for row in fp32["results"]:
        assert row["speedup"] > 0 and row["median_ms"] > 0
        assert row["max_abs_vs_primary"] < 1e-3  # FP32 against FP32
    if len(compare) == 2:
        bf16 = {r["graph"]: r for r in result["compare"][1]["results"]}
        assert result["compare"][1]["options"] == {"precision": "bf16"}
        assert bf16["edit"]["psnr_db_vs_primary"] >= BF16_GATE.psnr_db
