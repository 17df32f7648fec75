"""Shared fixtures: a tiny synthetic RaFD-format set and a tiny trained run, built once.

Markers: slow, gpu, tensorrt (see pyproject). Crop caches go to a per-session temp dir.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session", autouse=True)
def _crop_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    os.environ["LEED_CACHE"] = str(tmp_path_factory.mktemp("crop-cache"))


@pytest.fixture(scope="session")
def synth_faces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 identities x 8 expressions x 3 gazes, frontal camera, 128 px (96 images)."""
    from leed_train.data.synth import render_faces

    out = tmp_path_factory.mktemp("synth") / "faces"
    render_faces(out, identities=4, seed=0, size=128, angles=("090",), workers=1)
    return out


@pytest.fixture(scope="session")
def synth_psi_faces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Other people (ids 101-103, seed 1) for training Psi, as the paper uses another dataset."""
    from leed_train.data.synth import render_faces

    out = tmp_path_factory.mktemp("synth-psi") / "faces"
    render_faces(out, identities=3, seed=1, size=128, angles=("090",), first_id=101, workers=1)
    return out


TINY = ["--preset", "tiny", "--device", "cpu", "--workers", "0", "--perceptual", "pixels"]


def train_cli(args: list[str]) -> None:
    """Run `leed-train ARGS` in-process and fail the test with its output on error."""
    from click.testing import CliRunner

    from leed_train.cli import train_main

    result = CliRunner().invoke(train_main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output


@pytest.fixture(scope="session")
def tiny_run(synth_faces: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny trained run: neutralizer + a few LEED steps on `synth_faces`. Its neutralizer is
    built as the shipped model's is (`--gan-pair-only --gan-mask`), so every export, engine and
    runtime test runs the masked G's graph; the StarGAN recipe has its own tests."""
    out = tmp_path_factory.mktemp("runs") / "tiny"
    train_cli([
        str(synth_faces), "--out", str(out), "--stage", "neutralizer", "--gan-iters", "4", "--gan-pair-only",
        "--gan-mask", *TINY,
    ])  # fmt: skip
    train_cli(
        [
            str(synth_faces),
            "--out",
            str(out),
            "--stage",
            "leed",
            "--max-steps",
            "4",
            "--no-q",
            "--batch-size",
            "4",
            *TINY,
        ]
    )
    return out


@pytest.fixture(scope="session")
def tiny_warp_run(tiny_run: Path, synth_faces: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`tiny_run`'s neutralizer with a stage 2 trained as the shipped model's is: `--warp` (the
    decoder's flow head, L_warp) from `tiny_run`'s stage-2 weights (`--init`)."""
    import shutil

    out = tmp_path_factory.mktemp("runs") / "tiny-warp"
    shutil.copytree(tiny_run, out, ignore=shutil.ignore_patterns("leed-*", "tensorboard", "samples"))
    train_cli([
        str(synth_faces), "--out", str(out), "--stage", "leed", "--max-steps", "4", "--no-q",
        "--batch-size", "4", "--warp", "--init", str(tiny_run), *TINY,
    ])  # fmt: skip
    return out


@pytest.fixture(scope="session")
def tiny_export(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An FP32 ONNX export of `tiny_run` (with the detector and the --opencv variants)."""
    from leed_export.export import ExportConfig, run_export

    out = tmp_path_factory.mktemp("exports") / "tiny-fp32"
    run_export(ExportConfig(run_dir=str(tiny_run), out=str(out), samples=4, opencv=True))
    return out


BLOCK_TORCH = """
import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is blocked: the runtime must not need it")
sys.meta_path.insert(0, _Block())
"""


@pytest.fixture(scope="session")
def python_without_torch() -> Callable[..., subprocess.CompletedProcess]:
    """run(code, *argv): `python -c code *argv` in a fresh interpreter where importing torch fails."""
    root = Path(__file__).resolve().parents[1]

    def run(code: str, *argv: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-c", BLOCK_TORCH + code, *argv], capture_output=True, text=True, cwd=root, timeout=timeout
        )

    return run


RUN_MAIN = """
from leed_runtime.cli import run_main
sys.argv[0] = "leed-run"
run_main()
"""


@pytest.fixture(scope="session")
def leed_run(
    python_without_torch: Callable[..., subprocess.CompletedProcess],
) -> Callable[..., subprocess.CompletedProcess]:
    """`leed-run ARGS` in a fresh interpreter where importing torch fails."""
    return lambda *args: python_without_torch(RUN_MAIN, *args)
