"""Every console script: installed, --help shows a real example, stubs say so and exit 2."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = ["leed-train", "leed-export", "leed-run", "leed-eval", "leed-synth", "leed-doctor", "leed-bench"]
BIN = Path(sys.executable).parent


def _run(script: str, *args: str) -> subprocess.CompletedProcess:
    exe = shutil.which(script, path=str(BIN)) or shutil.which(script)
    assert exe, f"{script} is not installed as a console script"
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_shows_an_example(script: str) -> None:
    proc = _run(script, "--help")
    assert proc.returncode == 0, proc.stderr
    assert "Example" in proc.stdout and script in proc.stdout


def test_user_errors_are_one_line_without_traceback(tmp_path: Path) -> None:
    proc = _run("leed-train", str(tmp_path / "missing"), "--check")
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert str(tmp_path / "missing") in proc.stderr
    proc = _run("leed-synth", "video", str(tmp_path / "v.mp4"), "--size", "12x34x5")
    assert proc.returncode == 2 and "--size" in proc.stderr and not (tmp_path / "v.mp4").exists()


def test_dry_run_prints_the_resolved_config(tmp_path: Path) -> None:
    import json

    proc = _run(
        "leed-train",
        str(tmp_path),
        "--preset",
        "small",
        "--no-q",
        "--n-critic",
        "2",
        "--dry-run",
        "--out",
        str(tmp_path / "run"),
    )
    assert proc.returncode == 0, proc.stderr
    cfg = json.loads(proc.stdout)
    assert cfg["net"]["preset"] == "small" and cfg["use_q"] is False and cfg["lambda_s"] == 1000.0
    assert cfg["n_critic"] == 2 and cfg["perceptual"] == "vgg19"
    assert not (tmp_path / "run").exists()  # a dry run writes nothing


def test_resume_with_more_epochs_keeps_the_run_s_options(tmp_path: Path) -> None:
    """`--resume --epochs N` extends a run: the saved options stay, only the epochs change
    (the shipped model was trained so); a config saved with the old name `l1` still loads."""
    import json

    from leed_train.config import TrainConfig

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(
        TrainConfig(preset="tiny", epochs=14, lr=2e-4, lambda_recon=1000.0, perceptual="l1", out=str(run)).to_json()
    )
    proc = _run("leed-train", str(tmp_path), "--out", str(run), "--resume", "--epochs", "50", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    cfg = json.loads(proc.stdout)
    assert cfg["epochs"] == 50 and cfg["lr"] == 2e-4 and cfg["lambda_recon"] == 1000.0
    assert cfg["net"]["preset"] == "tiny" and cfg["perceptual"] == "pixels"


@pytest.mark.parametrize(
    ("script", "args", "needle"),
    [
        ("leed-export", ["missing-run"], "missing-run"),
        ("leed-run", ["--video", "missing.mp4", "--ref", "missing.jpg"], "missing.jpg"),
        ("leed-run", ["--ref", "x.jpg"], "--video"),
    ],
)
def test_bad_arguments_name_the_file_or_flag(script: str, args: list[str], needle: str) -> None:
    proc = _run(script, *args)
    assert proc.returncode == 2 and needle in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
