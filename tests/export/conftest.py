"""A tiny trained run (neutralizer + a few LEED steps on the synthetic set), built once."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from leed_train.cli import train_main

TINY = ["--preset", "tiny", "--device", "cpu", "--workers", "0", "--perceptual", "l1"]


def _train(args: list[str]) -> None:
    result = CliRunner().invoke(train_main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output


@pytest.fixture(scope="session")
def tiny_run(synth_faces: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("export-runs") / "tiny"
    _train([str(synth_faces), "--out", str(out), "--stage", "neutralizer", "--gan-iters", "4", *TINY])
    _train([
        str(synth_faces), "--out", str(out), "--stage", "leed", "--max-steps", "4", "--no-q", "--batch-size", "4", *TINY,
    ])  # fmt: skip
    return out
