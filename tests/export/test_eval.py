"""leed-eval: each metric on cases with a known answer, and the report end to end on a tiny run."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from leed_export.evaluate import metrics
from leed_export.evaluate.cli import eval_main
from leed_export.evaluate.config import EvalConfig
from leed_export.evaluate.data import as_tensor, load_data
from leed_export.evaluate.editors import open_model, run_edits
from leed_export.evaluate.run import ORACLE_ROW, run_eval
from leed_runtime.errors import LeedError

FAST = ["--faces", "6", "--classifier-epochs", "1", "--subjects", "2"]


def test_identical_images_give_ssim_one_and_capped_psnr() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    assert metrics.ssim(image, image) == pytest.approx(1.0)
    assert metrics.psnr(image, image) == metrics.PSNR_CAP
    float_image = torch.from_numpy(image).permute(2, 0, 1).float() / 127.5 - 1
    assert metrics.ssim(float_image, float_image) == pytest.approx(1.0)
    noisy = np.clip(image.astype(int) + rng.integers(-20, 21, image.shape), 0, 255).astype(np.uint8)
    assert metrics.ssim(image, noisy) < 1.0
    assert 10 < metrics.psnr(image, noisy) < 40


def test_psnr_matches_its_definition_for_both_ranges() -> None:
    a = np.zeros((8, 8, 3), np.uint8)
    b = np.full((8, 8, 3), 10, np.uint8)  # MSE 100
    assert metrics.psnr(a, b) == pytest.approx(10 * np.log10(255**2 / 100))
    fa = torch.zeros(3, 8, 8)
    fb = torch.full((3, 8, 8), 0.2)  # MSE 0.04, range 2
    assert metrics.psnr(fa, fb) == pytest.approx(10 * np.log10(4 / 0.04), rel=1e-5)


def test_frechet_distance_of_identical_and_shifted_gaussians() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4000, 4))
    assert metrics.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    shift = np.array([1.0, -2.0, 0.5, 0.0])
    assert metrics.frechet_distance(a, a + shift) == pytest.approx(float((shift**2).sum()), abs=1e-6)
    b = rng.normal(size=(4000, 4)) + shift
    assert metrics.frechet_distance(a, b) == pytest.approx(float((shift**2).sum()), rel=0.05, abs=0.05)


def test_verification_accuracy_of_separated_and_swapped_identities() -> None:
    probe = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.1]])
    same = np.array([[2.0, 0.1], [0.1, 3.0], [1.0, 0.0]])
    other = np.array([[0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    assert metrics.verification_accuracy(probe, same, other) == 1.0
    assert metrics.verification_accuracy(probe, other, same) == 0.0


def test_classifier_separates_separable_data() -> None:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(2), 32)
    images = torch.from_numpy(rng.normal(0, 0.05, (64, 3, 32, 32)).astype(np.float32))
    images[labels == 0, 0] += 0.8  # class 0 red, class 1 blue
    images[labels == 1, 2] += 0.8
    model = metrics.train_classifier(images, labels, 2, width=8, epochs=8, batch_size=16)
    assert metrics.accuracy(model, images, labels) == 1.0
    preds, feats = metrics.predict(model, images)
    assert preds.shape == (64,) and feats.shape == (64, 64)


@pytest.fixture(scope="module")
def tiny_run(synth_faces: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Stage 1 (4 GAN iterations) then stage 2 (4 steps, --no-q) on the tiny preset."""
    from leed_train.cli import train_main

    out = tmp_path_factory.mktemp("eval") / "run"
    common = [str(synth_faces), "--out", str(out), "--preset", "tiny", "--device", "cpu", "--workers", "0"]
    runner = CliRunner()
    for extra in (
        ["--stage", "neutralizer", "--gan-iters", "4", "--perceptual", "pixels"],
        ["--stage", "leed", "--max-steps", "4", "--no-q", "--batch-size", "4", "--perceptual", "pixels"],
    ):
        result = runner.invoke(train_main, common + extra, catch_exceptions=False)
        assert result.exit_code == 0, result.output
    return out


def _is_png(path: Path) -> bool:
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and cv2.imread(str(path)) is not None


def test_report_end_to_end(tiny_run: Path, synth_faces: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    args = [str(tiny_run), str(synth_faces), "--out", str(out), "--baselines", str(tiny_run), *FAST]
    result = CliRunner().invoke(eval_main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "report in" in result.output
    doc = json.loads((out / "metrics.json").read_text())
    rows = ["LEED", "Linear (Eq. 1+5)", f"w/o Q ({tiny_run.name})", ORACLE_ROW, "Ground truth (ceiling)"]
    assert set(doc["methods"]) == set(rows)
    assert doc["data"]["pairs"] > 0 and doc["data"]["held_out_subjects"]
    assert 0 <= doc["R"] <= 100
    for name, m in doc["methods"].items():
        assert -1 <= m["ssim"] <= 1 and 0 < m["psnr"] <= metrics.PSNR_CAP, name
        assert all(0 <= m[k] <= 100 for k in ("G", "R+G", "id_verification")), name
        assert m["fd_expr"] >= 0 and m["pairs"] == doc["data"]["pairs"]
    truth = doc["methods"]["Ground truth (ceiling)"]
    assert truth["ssim"] == pytest.approx(1.0) and truth["psnr"] == metrics.PSNR_CAP
    for name in ("grid", "strips", "tsne", "ablation"):
        assert _is_png(out / doc["figures"][name]), name
    neutralizer = doc["neutralizer"]  # stage 1 alone, against each face's own neutral photo
    assert neutralizer["faces"] > 0
    assert neutralizer["own neutral photo (ceiling)"]["ssim"] == pytest.approx(1.0)
    assert neutralizer["input x unchanged"]["ssim"] < 1.0
    for row in ("G(x, neutral)", "input x unchanged", "own neutral photo (ceiling)"):
        assert 0 <= neutralizer[row]["classified_neutral"] <= 100, row
    report = (out / "report.md").read_text()
    assert "| LEED |" in report and "| LEED (paper) | 38.2 | 0.8833 | 88.67 | 93.25 |" in report
    assert "## Neutralizer (stage 1)" in report and "| G(x, neutral) |" in report
    table = [line.split(" | ")[0][2:] for line in report.splitlines() if line.startswith("| ")]
    assert [r for r in table if r in rows] == rows  # the table's order
    assert "Not comparable" in report
    saved = json.loads((out / "eval_config.json").read_text())
    assert saved["model_dir"] == str(tiny_run) and saved["faces"] == 6


def test_report_is_deterministic(tiny_run: Path, synth_faces: Path, tmp_path: Path) -> None:
    cfg = {"model_dir": str(tiny_run), "data_dir": str(synth_faces), "faces": 3, "classifier_epochs": 1}
    a = run_eval(EvalConfig(out=str(tmp_path / "a"), **cfg))
    b = run_eval(EvalConfig(out=str(tmp_path / "b"), **cfg))
    assert a["methods"]["LEED"]["ssim"] == b["methods"]["LEED"]["ssim"]
    assert a["data"] == b["data"]


def test_alpha_scales_every_edit(tiny_run: Path, synth_faces: Path, tmp_path: Path) -> None:
    """--alpha reaches every edit: at 0 an input's edits no longer depend on the reference (the
    model's chain and the oracle's alike), at 1 they do; the report says which alpha it used."""
    cfg = EvalConfig(model_dir=str(tiny_run), data_dir=str(synth_faces), out=str(tmp_path / "r"), alpha=0.0)
    editors, split = open_model(str(tiny_run), cfg)
    leed = editors[0]
    data = load_data(cfg, split)
    face, refs = np.array([0, 0]), np.array([1, 2])  # one input, two references
    for alpha in (0.0, 1.0):
        a, b = run_edits(leed, data.crops, face, refs, alpha)
        crops = as_tensor(data.crops[[0, 0, 1, 2]])
        c, d = leed.edit_from_neutrals(crops[:2], crops[2:], crops[:2].flip(3), alpha)
        assert torch.equal(a, b) == torch.equal(c, d) == (alpha == 0), alpha
    for e in editors:
        e.close()
    doc = run_eval(dataclasses.replace(cfg, faces=3, classifier_epochs=1, subjects=2))
    assert doc["alpha"] == 0.0
    assert "Every edit at alpha 0 " in (tmp_path / "r" / "report.md").read_text()


def test_inception_option_reports_fid(tiny_run: Path, synth_faces: Path, tmp_path: Path) -> None:
    feature_model = torch.jit.script(torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(4), torch.nn.Flatten()))
    path = tmp_path / "fake-inception.pt"
    feature_model.save(str(path))
    cfg = EvalConfig(str(tiny_run), str(synth_faces), str(tmp_path / "r"), faces=3, classifier_epochs=1)
    cfg.inception = str(path)
    doc = run_eval(cfg)
    assert doc["methods"]["LEED"]["fid"] >= 0 and doc["methods"]["Ground truth (ceiling)"]["fid"] >= 0
    assert "| FID |" in (tmp_path / "r" / "report.md").read_text()


def test_missing_model_dir_is_a_one_line_error(synth_faces: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(eval_main, [str(tmp_path / "nope"), str(synth_faces), "--out", str(tmp_path / "r")])
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and "MODEL_DIR" in result.output


def test_folder_that_is_neither_run_nor_export(synth_faces: Path, tmp_path: Path) -> None:
    with pytest.raises(LeedError, match="neither a training run"):
        run_eval(EvalConfig(str(tmp_path), str(synth_faces), str(tmp_path / "r")))


def test_no_held_out_subjects_is_a_one_line_error(tiny_run: Path, synth_faces: Path, tmp_path: Path) -> None:
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    split = json.loads((run / "split.json").read_text())
    split["train"] += split["val"]
    split["val"] = []
    (run / "split.json").write_text(json.dumps(split))
    result = CliRunner().invoke(eval_main, [str(run), str(synth_faces), "--out", str(tmp_path / "r")])
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and "held-out subject" in result.output


def test_export_folder_on_onnxruntime(tiny_run: Path, synth_faces: Path, tmp_path: Path) -> None:
    export = pytest.importorskip(
        "leed_export.export", reason="leed_export.export.run_export has not landed: the ONNX path is untested"
    )
    if not hasattr(export, "run_export"):
        pytest.skip("leed_export.export.run_export has not landed: the ONNX path is untested")
    folder = tmp_path / "export"
    export.run_export(export.ExportConfig(run_dir=str(tiny_run), out=str(folder)))
    cfg = {"data_dir": str(synth_faces), "faces": 3, "classifier_epochs": 1}
    doc = run_eval(EvalConfig(str(folder), out=str(tmp_path / "onnx"), **cfg))
    assert set(doc["methods"]) == {"LEED (ONNX)", "Ground truth (ceiling)"}
    assert doc["figures"]["tsne"] == "tsne.png"
    torch_doc = run_eval(EvalConfig(str(tiny_run), out=str(tmp_path / "torch"), **cfg))
    assert doc["data"] == torch_doc["data"]  # the manifest's run_dir gives the same split and pairs
    assert doc["methods"]["LEED (ONNX)"]["ssim"] == pytest.approx(torch_doc["methods"]["LEED"]["ssim"], abs=1e-3)
    onnx_g, torch_g = doc["neutralizer"]["G(x, neutral)"], torch_doc["neutralizer"]["G(x, neutral)"]
    assert onnx_g["ssim"] == pytest.approx(torch_g["ssim"], abs=1e-3)
