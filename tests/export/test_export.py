"""leed-export end to end on a tiny run: ONNX FP32 + FP16 (+ TensorRT-RTX plans when the
bindings are installed), parity gates, manifest, metadata, dynamic batch, --check, errors."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from click.testing import CliRunner

import leed_export.export as export_module
from leed_export import onnx_export
from leed_export.cli import main
from leed_export.export import recorded_style
from leed_export.graphs import GRAPHS, SPECS, build_graphs
from leed_export.parity import FP16, FP32, Tolerance
from leed_runtime.backends.table import open_backend
from leed_runtime.face.align import template
from leed_runtime.manifest import read_manifest, sha256_file
from leed_train.model import EditStyle, Leed
from leed_train.trained import load_trained

HAS_RTX = importlib.util.find_spec("tensorrt_rtx_bindings") is not None
HAS_TRT = importlib.util.find_spec("tensorrt") is not None


def _invoke(args: list[str]):  # noqa: ANN202 (click's Result)
    return CliRunner().invoke(main, args, catch_exceptions=False)


def _error_line(result) -> str:  # noqa: ANN001
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


@pytest.fixture(scope="module")
def exported(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("exports") / "tiny"
    args = [str(tiny_run), "--out", str(out), "--fp16"]
    if HAS_RTX:
        args += ["--engine", "tensorrt-rtx", "--batch", "1:4:8"]
    result = _invoke(args)
    assert result.exit_code == 0, result.output
    assert f"next: leed-run --model {out}" in result.output
    return out


def test_manifest_lists_every_artifact_with_hashes_and_specs(exported: Path, tiny_run: Path) -> None:
    manifest = read_manifest(exported)
    for name in GRAPHS:
        for key, precision in ((name, "fp32"), (f"{name}.fp16", "fp16")):
            art = manifest.artifacts[key]
            assert art.file == f"{key}.onnx" and art.format == "onnx" and art.precision == precision
            assert art.sha256 == sha256_file(exported / art.file) and art.bytes == (exported / art.file).stat().st_size
            assert [t.name for t in art.inputs] == [n for n, _ in SPECS[name].inputs]
            assert [t.name for t in art.outputs] == [n for n, _ in SPECS[name].outputs]
            assert all(t.shape[0] == "batch" and t.dtype == "float32" for t in art.inputs + art.outputs)
            assert art.opset and art.opset >= 18
    assert manifest.artifacts["edit"].inputs[2].shape == ["batch"]  # alpha
    assert manifest.artifacts["edit.fp16"].source == "edit"
    assert {"pnet", "rnet", "onet"} <= set(manifest.artifacts)
    assert manifest.preset == "tiny"
    assert manifest.source["checkpoint"].startswith("checkpoints/leed-")
    assert manifest.image["size"] == 128 and manifest.image["range"] == [-1.0, 1.0]
    assert manifest.image["layout"] == "NCHW" and manifest.image["color"] == "RGB"
    np.testing.assert_allclose(manifest.image["template"], template(128))
    assert manifest.code == {"channels": 64, "size": 8}
    config = json.loads((exported / "export_config.json").read_text())
    assert config["run_dir"] == str(tiny_run) and config["fp16"] is True
    assert not list(exported.parent.glob(".tmp-*"))


def test_parity_is_recorded_and_under_tolerance(exported: Path) -> None:
    manifest = read_manifest(exported)
    for name in GRAPHS:
        for key, tol in ((name, FP32), (f"{name}.fp16", FP16)):
            parity = manifest.artifacts[key].parity
            assert parity["tolerance_max_abs"] == tol.max_abs
            assert 0 <= parity["max_abs"] <= tol.max_abs and 0 <= parity["median_abs"] <= tol.median_abs
            assert parity["nonfinite"] == 0
    chain = manifest.source["chain_parity"]
    assert chain["fp32"]["max_abs"] <= FP32.max_abs and chain["fp16"]["max_abs"] <= FP16.max_abs
    assert manifest.artifacts["edit"].parity["max_abs"] < manifest.artifacts["edit.fp16"].parity["max_abs"]


def test_graphs_carry_metadata_and_weights_inside(exported: Path) -> None:
    for name, precision in (("edit", "fp32"), ("reference.fp16", "fp16"), ("encoder", "fp32")):
        model = onnx.load(str(exported / f"{name}.onnx"))
        onnx.checker.check_model(model)
        meta = {p.key: p.value for p in model.metadata_props}
        assert meta["graph"] == name.removesuffix(".fp16") and meta["precision"] == precision
        assert meta["color"] == "RGB" and meta["layout"] == "NCHW" and meta["range"] == "[-1.0, 1.0]"
        assert meta["preset"] == "tiny" and meta["leed_version"] and meta["source_checkpoint"]
        np.testing.assert_allclose(json.loads(meta["template"]), template(128), atol=1e-4)
    assert not list(exported.rglob("*.data"))  # single-file graphs


def test_fp16_graphs_keep_norms_and_io_fp32(exported: Path) -> None:
    model = onnx.load(str(exported / "edit.fp16.onnx"))
    types = {vi.name: vi.type.tensor_type.elem_type for vi in [*model.graph.input, *model.graph.output]}
    assert set(types.values()) == {onnx.TensorProto.FLOAT}
    inits = {i.name: i.data_type for i in model.graph.initializer}
    norms = [n for n in model.graph.node if n.op_type == "InstanceNormalization"]
    assert norms and all(inits.get(n.input[1], onnx.TensorProto.FLOAT) == onnx.TensorProto.FLOAT for n in norms)
    assert onnx.TensorProto.FLOAT16 in inits.values()


@pytest.mark.parametrize("name", ["edit", "edit.fp16", "reference", "decoder"])
def test_dynamic_batch(exported: Path, name: str) -> None:
    manifest = read_manifest(exported)
    art = manifest.artifacts[name]
    rng = np.random.default_rng(0)
    with open_backend("onnxruntime-cpu", exported, manifest, name) as backend:
        for batch in (1, 3):
            feeds = {t.name: rng.uniform(-1, 1, (batch, *t.shape[1:])).astype("float32") for t in art.inputs}
            (out,) = backend.infer(feeds).values()
            assert out.shape == (batch, *art.outputs[0].shape[1:]) and np.isfinite(out).all()


def test_residual_edit_puts_back_the_detail_the_decoder_loses(tiny_run: Path, tmp_path: Path) -> None:
    """--residual-edit: `edit` (and `edit.opencv`) = E1 + (1 - m) (G(x) - E0), E1 = D(I(c, alpha
    dexp)), E0 = D(I(c, 0)), m = min(1, blur9(mean_rgb |E1 - E0|) / gate), rebuilt here in numpy
    from the five single-network graphs of the same export; alpha 0 gives G(x)."""
    from scipy.ndimage import uniform_filter

    out = tmp_path / "residual"
    result = _invoke([str(tiny_run), "--out", str(out), "--residual-edit", "--opencv", "--samples", "4"])
    assert result.exit_code == 0, result.output
    manifest = read_manifest(out)
    assert manifest.source["residual_edit"] is True and manifest.source["residual_gate"] == 0.1

    def run(name: str, **feeds: np.ndarray) -> np.ndarray:
        with open_backend("onnxruntime-cpu", out, manifest, name) as backend:
            (value,) = backend.infer(feeds).values()
        return value

    rng = np.random.default_rng(0)
    face, ref = (rng.uniform(-1, 1, (2, 3, 128, 128)).astype("float32") for _ in range(2))
    dexp = run("reference", reference=ref)
    neutral = run("neutralizer", image=face)
    code = run("encoder", image=neutral)
    alpha = np.array([0.0, 3.0], np.float32)
    scaled = alpha[:, None, None, None] * dexp
    edited = run("decoder", code=run("interpolator", neutral_code=code, dexp=scaled))
    base = run("decoder", code=run("interpolator", neutral_code=code, dexp=0 * dexp))
    change = uniform_filter(np.abs(edited - base).mean(1, keepdims=True), (1, 1, 9, 9), mode="constant")
    m = np.clip(change / 0.1, 0, 1)
    want = edited + (1 - m) * (neutral - base)
    got = run("edit", face=face, dexp=dexp, alpha=alpha)
    np.testing.assert_allclose(got, want, atol=2e-4)
    np.testing.assert_allclose(got[0], neutral[0], atol=2e-4)  # alpha 0: the neutral face itself
    assert 0 < m[1].mean() < 1  # the gate is neither off nor everywhere on these inputs
    opencv = run("edit.opencv", face=face[1:], dexp=scaled[1:])
    np.testing.assert_allclose(opencv, want[1:], atol=2e-4)


def test_warp_edit_exports_with_its_flow(tiny_warp_run: Path, tmp_path: Path) -> None:
    """--warp-edit: the `edit` graph carries the decoder's flow head and a GridSample, gated to
    parity like every graph (engines too, where TensorRT-RTX is installed); its manifest records
    the edit; alpha 0 returns the input face itself (--residual-base input)."""
    out = tmp_path / "warp"
    args = [str(tiny_warp_run), "--out", str(out), "--warp-edit", "--residual-base", "input", "--warp-paint", "0.5"]
    args += ["--samples", "4"] + (["--engine", "tensorrt-rtx", "--batch", "1:2:4"] if HAS_RTX else [])
    result = _invoke(args)
    assert result.exit_code == 0, result.output
    manifest = read_manifest(out)
    source = manifest.source
    assert source["warp_edit"] is True and source["warp_paint"] == 0.5 and source["residual_base"] == "input"
    assert recorded_style(source) == EditStyle(base="input", warp=True, paint=0.5)
    ops = {n.op_type for n in onnx.load(str(out / "edit.onnx")).graph.node}
    assert "GridSample" in ops
    assert manifest.artifacts["edit"].parity["max_abs"] <= FP32.max_abs
    if HAS_RTX:
        assert (out / manifest.artifacts["edit.rtx"].file).stat().st_size > 0
    rng = np.random.default_rng(0)
    face = rng.uniform(-1, 1, (2, 3, 128, 128)).astype("float32")
    with open_backend("onnxruntime-cpu", out, manifest, "reference") as backend:
        (dexp,) = backend.infer({"reference": face[::-1].copy()}).values()
    with open_backend("onnxruntime-cpu", out, manifest, "edit") as backend:
        (got,) = backend.infer({"face": face, "dexp": dexp, "alpha": np.zeros(2, np.float32)}).values()
    np.testing.assert_allclose(got, face, atol=2e-4)


@torch.no_grad()
def test_warp_edit_graph_matches_pytorch_with_a_moving_flow(tiny_warp_run: Path) -> None:
    """The warp edit exported with a flow head that moves pixels (a few training steps barely
    move them): onnxruntime gives what `Leed.edit` gives, and the face does change."""
    run = load_trained(tiny_warp_run)
    torch.nn.init.normal_(run.nets["D"].flow_head[2].weight, std=0.5)
    style = EditStyle(base="input", warp=True, paint=0.5)
    graph = build_graphs(run, style)["edit"]
    gen = torch.Generator().manual_seed(0)  # smooth faces: on pixel noise any flow rounding is amplified
    face = torch.nn.functional.interpolate(torch.rand(2, 3, 16, 16, generator=gen) * 2 - 1, size=128, mode="bilinear")
    dexp = 2 * run.leed.reference(face.flip(0))
    feeds = {"face": face, "dexp": dexp, "alpha": torch.tensor([1.0, 0.5])}
    want = graph(**feeds).numpy()
    model = onnx_export.export_graph(graph, SPECS["edit"], feeds, None)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    got = session.run(None, {k: v.numpy() for k, v in feeds.items()})[0]
    assert np.abs(got - want).max() <= FP32.max_abs and np.median(np.abs(got - want)) <= FP32.median_abs
    assert np.abs(want - face.numpy()).max() > 1e-2


def test_residual_gate_keeps_detail_where_the_decoder_changes_nothing() -> None:
    """Leed.edit's residual semantics on stand-ins: G, E identity, I(c, d) = c + d, D a 3x3 blur. Where
    dexp is 0 the residual edit returns the sharp face itself; where dexp changes the face by more
    than the gate it returns the decoder's (blurred) edit; `gate` 0 never fades the detail."""

    class Blur(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.avg_pool2d(x, 3, 1, 1, count_include_pad=False)

    class Add(torch.nn.Module):
        def forward(self, c: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
            return c + d

    same, D, I = torch.nn.Identity(), Blur(), Add()
    leed = Leed(same, same, None, I, D)
    face = torch.rand(1, 3, 64, 64) * 2 - 1
    dexp = torch.zeros_like(face)
    dexp[..., :, 32:] = 0.5  # right half changes by 0.5 >> gate
    plain = leed.edit(face, dexp)
    gated = leed.edit(face, dexp, style=EditStyle(residual=True, gate=0.1))
    ungated = leed.edit(face, dexp, style=EditStyle(residual=True))
    left, right = (..., slice(4, 60), slice(4, 24)), (..., slice(4, 60), slice(42, 60))
    torch.testing.assert_close(gated[left], face[left])  # no change there: the sharp input
    torch.testing.assert_close(gated[right], plain[right])  # big change: the decoder's edit
    torch.testing.assert_close(ungated, plain + face - D(face))  # no gate: detail everywhere


@pytest.mark.skipif(not HAS_RTX, reason="tensorrt_rtx_bindings not installed (pip install 'leed[tensorrt-rtx]')")
def test_tensorrt_rtx_plans_for_every_graph(exported: Path) -> None:
    manifest = read_manifest(exported)
    for name in GRAPHS:
        for key, source, precision in ((f"{name}.rtx", name, "fp32"), (f"{name}.fp16.rtx", f"{name}.fp16", "fp16")):
            art = manifest.artifacts[key]
            assert art.file == f"engines/tensorrt-rtx/{source}.plan" and art.format == "plan"
            assert art.precision == precision and art.source == source
            assert (exported / art.file).stat().st_size > 0
            assert art.engine.library == "tensorrt_rtx" and art.engine.version
            assert art.engine.profile == {"min": 1, "opt": 4, "max": 8}
            assert art.engine.gpu is None and art.engine.compute_capability is None  # no GPU in CI


def test_check_passes_then_fails_on_a_tampered_file(exported: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(exported, copy)
    ok = _invoke(["--check", str(copy)])
    assert ok.exit_code == 0, ok.output
    path = copy / "decoder.onnx"
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    bad = _invoke(["--check", str(copy)])
    assert bad.exit_code == 2
    assert "decoder.onnx: sha256 differs" in _error_line(bad)


@pytest.mark.parametrize(
    ("extra", "expect"),
    [
        (["--batch", "8:1:32", "--engine", "tensorrt-rtx"], "--batch 8:1:32"),
        (["--batch", "1-8-32", "--engine", "tensorrt-rtx"], "is not min:opt:max"),
        (["--batch", "1:2:4"], "only applies to engines"),
        (["--opset", "9"], "--opset 9 is unsupported"),
        (["--samples", "1"], "--samples 1"),
        (["--data", "/nonexistent/data"], "--data /nonexistent/data"),
        (["--residual-edit", "--residual-gate", "-1"], "--residual-gate must be >= 0 and <= 2, got -1"),
        (["--residual-gate", "0.2"], "--residual-gate 0.2 only applies to --residual-edit"),
        (["--warp-paint", "0.5"], "--warp-paint 0.5 only applies to --warp-edit"),
        (["--warp-edit", "--warp-paint", "3"], "--warp-paint must be >= 0 and <= 2, got 3"),
        (["--warp-edit", "--residual-edit"], "choose one"),
        (["--warp-edit", "--opencv"], "has no GridSample"),
        (["--warp-edit"], "was trained without --warp"),
    ],
)
def test_bad_options_give_one_line(tiny_run: Path, tmp_path: Path, extra: list[str], expect: str) -> None:
    if "tensorrt-rtx" in extra and not HAS_RTX:
        pytest.skip("tensorrt_rtx_bindings not installed: the library error comes first")
    result = _invoke([str(tiny_run), "--out", str(tmp_path / "out"), *extra])
    assert result.exit_code == 2
    assert expect in _error_line(result)
    assert not (tmp_path / "out").exists()


def test_out_not_empty_needs_force_and_run_dir_must_be_a_run(tiny_run: Path, tmp_path: Path) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("x")
    result = _invoke([str(tiny_run), "--out", str(tmp_path / "full")])
    assert result.exit_code == 2 and "--force" in _error_line(result)
    assert (tmp_path / "full" / "keep.txt").exists()
    result = _invoke([str(tmp_path), "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "not a training run" in _error_line(result)
    result = _invoke([str(tiny_run), "--check", str(tmp_path)])
    assert result.exit_code == 2 and "takes no RUN_DIR" in _error_line(result)


@pytest.mark.skipif(HAS_TRT, reason="tensorrt is installed here")
def test_engine_without_library_names_the_extra(tiny_run: Path, tmp_path: Path) -> None:
    result = _invoke([str(tiny_run), "--out", str(tmp_path / "out"), "--engine", "tensorrt"])
    assert result.exit_code == 2 and "pip install 'leed[tensorrt]'" in _error_line(result)


def test_failed_parity_leaves_no_output(tiny_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(export_module, "FP32", Tolerance(max_abs=1e-12, median_abs=1e-12))
    out = tmp_path / "out"
    result = _invoke([str(tiny_run), "--out", str(out), "--samples", "2"])
    assert result.exit_code == 2
    line = _error_line(result)
    assert "neutralizer.onnx: parity FAILED" in line and "max abs" in line
    assert "FAILED | neutralizer.onnx" in result.output
    assert not out.exists() and not list(tmp_path.glob(".tmp-*"))
