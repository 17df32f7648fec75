"""Killed jobs: SIGKILL during training checkpoints then --resume; SIGKILL and SIGINT during
`leed-run` on a video. Nothing half-written survives under a final name."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import corpus
import pytest

TINY = ["--preset", "tiny", "--device", "cpu", "--workers", "0", "--perceptual", "pixels"]


def popen(name: str, *args: str) -> subprocess.Popen:
    exe = Path(sys.executable).with_name(name)
    return subprocess.Popen([str(exe), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(predicate, proc: subprocess.Popen, timeout: float = 60) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not predicate():
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


def test_sigkill_during_checkpoints_then_resume(synth_faces: Path, tiny_run: Path, tmp_path: Path) -> None:
    from leed_train.checkpoint import FILES

    run = tmp_path / "run"
    run.mkdir()
    for name in ("config.json", "split.json", "neutrals.npy"):
        shutil.copy(tiny_run / name, run / name)
    shutil.copytree(tiny_run / "checkpoints", run / "checkpoints", ignore=shutil.ignore_patterns("leed-*"))
    args = [str(synth_faces), "--out", str(run), "--stage", "leed", "--no-q", "--batch-size", "4", *TINY]
    args += ["--checkpoint-every", "1", "--max-steps", "8", "--sample-every", "1000"]
    proc = popen("leed-train", *args)
    ckpts = run / "checkpoints"
    wait_for(lambda: len(list(ckpts.glob("leed-*"))) >= 2, proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    complete = sorted(p for p in ckpts.glob("leed-*") if all((p / f).is_file() for f in FILES))
    assert complete, "a complete checkpoint must survive the kill"
    last = int(complete[-1].name.split("-")[1])

    resumed = subprocess.run(
        [str(Path(sys.executable).with_name("leed-train")), *args, "--resume"], capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"(step {last})" in resumed.stdout, resumed.stdout
    assert not list(ckpts.glob(".tmp-*"))
    final = ckpts / "leed-00000008"
    assert json.loads((final / "state.json").read_text())["step"] == 8

    from leed_train.trained import load_trained

    assert load_trained(run).checkpoints["leed"] == final  # loads it: NaN/inf or missing files would raise
    rows = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]  # every line parses
    steps = [r["step"] for r in rows if r["stage"] == "leed"]
    assert steps[-1] >= 7 and max(steps) == steps[-1]


@pytest.fixture(scope="module")
def long_clip(synth_faces: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Long enough that no machine finishes it between the output's first bytes and the signal
    # (150 frames took 2.3 s at 65 fps: a loaded machine's scheduling delay could cover that).
    return corpus.face_video(synth_faces, tmp_path_factory.mktemp("long"), frames=1200, name="long.mp4")


def _run_video(clip: Path, ref: Path, model: Path, out: Path, *extra: str) -> subprocess.Popen:
    return popen("leed-run", "--video", str(clip), "--ref", str(ref), "--model", str(model), "--out", str(out), *extra)


def test_sigkill_mid_video_leaves_only_a_tmp_that_the_next_run_removes(
    synth_faces: Path, tiny_export: Path, long_clip: Path, tmp_path: Path
) -> None:
    ref, out = corpus.face_jpg(synth_faces, tmp_path), tmp_path / "out.mp4"
    proc = _run_video(long_clip, ref, tiny_export, out)
    wait_for(lambda: any(tmp_path.glob(".tmp-out.mp4.*")), proc)
    time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert not out.exists()
    stale = list(tmp_path.glob(".tmp-out.mp4.*"))
    assert stale and all(f".tmp-out.mp4.{proc.pid}." in p.name for p in stale)

    again = _run_video(long_clip, ref, tiny_export, out, "--max-frames", "3")
    _, err = again.communicate(timeout=120)
    assert again.returncode == 0, err[-2000:]
    assert out.is_file() and not list(tmp_path.glob(".tmp-*"))


def test_sigint_mid_video_exits_130_with_nothing_written(
    synth_faces: Path, tiny_export: Path, long_clip: Path, tmp_path: Path
) -> None:
    ref, out = corpus.face_jpg(synth_faces, tmp_path), tmp_path / "out.mp4"
    proc = _run_video(long_clip, ref, tiny_export, out)
    wait_for(lambda: any(tmp_path.glob(".tmp-out.mp4.*")), proc)
    proc.send_signal(signal.SIGINT)  # at once: the clip is far from done (see long_clip)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err and "interrupted: nothing half-written was kept" in err
    assert not out.exists() and not list(tmp_path.glob(".tmp-*"))
