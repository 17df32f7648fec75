"""`make gpu-check`'s CPU dry run: every step is listed, and on a machine without a GPU each GPU
step says it is skipped and why (the script itself only runs for real on a CUDA machine)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STEPS = ("train-stage1", "train-stage2", "export", "doctor", "gpu-tests", "bench-train-small", "bench-train-paper",
         "bench-torch", "bench-ort-cuda", "bench-ort-cuda-graph", "run-cuda", "run-cpu")  # fmt: skip


def test_gpu_check_dry_run_lists_every_step_and_why_it_is_skipped(tmp_path: Path) -> None:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OUT": str(tmp_path), "PYTHON": sys.executable}
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "gpu_check.sh"), "--dry-run"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    for step in STEPS:
        assert any(line.startswith(f"=== {step}:") for line in lines), f"{step} missing:\n{proc.stdout}"
    gpu_steps = [s for s in STEPS if s not in ("doctor", "run-cpu")]
    for step in gpu_steps:
        line = next(line for line in lines if line.startswith(f"=== {step}:"))
        assert "skipped: no CUDA GPU" in line, line
    assert any(line.startswith("=== doctor: would run") for line in lines)
    assert not any("broken" in line for line in lines), proc.stdout  # every step's command can start
    assert (tmp_path / "log.txt").read_text().count("===") == len(STEPS)
    assert not (tmp_path / "steps.txt").exists()  # a dry run runs nothing
