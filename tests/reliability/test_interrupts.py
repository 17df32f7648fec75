"""Killed jobs: SIGKILL during training checkpoints then --resume; SIGKILL, SIGINT, SIGTERM and
SIGHUP during `leed-run` on a video, always mid-video (the run waits at a frame until the
signal comes); stdout's reader going away. Nothing half-written survives under a final name."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

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


ROOT = Path(__file__).resolve().parents[2]
VIDEO, REF = ROOT / "samples" / "real" / "talk.mp4", ROOT / "samples" / "real" / "surprised.jpg"  # shipped model

# `leed-run ARGS` that stops before editing frame AT (frames 0..AT-1 already encoded into the
# output's temp file), writes MARKER, and waits until a signal ends it: the signal always comes
# mid-video, however fast or loaded the machine is. It waits in short sleeps, as a run busy with
# frames runs Python often: the kernel may hand the signal to any thread (the decoder's, a pool's),
# and Python then runs the handler in the main thread only when that thread next runs bytecode, so
# one long sleep hid the signal for an hour (the test hung in 1 of about 9 tries under load).
PAUSED_RUN = """
import os, sys, time
from pathlib import Path
from leed_runtime import pipeline
from leed_runtime.cli import run_main

marker, at = Path(sys.argv[1]), int(sys.argv[2])
edit = pipeline.Editor.__call__

def paused(self, frame, dexp=None):
    if self.frames == at:
        marker.write_text(str(os.getpid()))
        while True:
            time.sleep(0.05)
    return edit(self, frame, dexp)

pipeline.Editor.__call__ = paused
sys.argv = ["leed-run", *sys.argv[3:]]
run_main()
"""


def paused_run(tmp_path: Path, out: Path, *extra: str, at: int = 3) -> tuple[subprocess.Popen, Path]:
    """A `leed-run --video` on the real clip, held before frame `at`; returns it once it waits there."""
    marker = tmp_path / "paused"
    args = [str(marker), str(at), "--video", str(VIDEO), "--ref", str(REF), "--out", str(out), *extra]
    proc = subprocess.Popen(
        [sys.executable, "-c", PAUSED_RUN, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    wait_for(marker.exists, proc, timeout=300)  # a deadline for a broken run, not a speed assumption
    return proc, marker


def test_sigkill_mid_video_leaves_only_a_tmp_that_the_next_run_removes(tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    proc, marker = paused_run(tmp_path, out)
    assert any(tmp_path.glob(".tmp-out.mp4.*"))  # three frames are in the temp file
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert not out.exists()
    stale = list(tmp_path.glob(".tmp-out.mp4.*"))
    assert stale and all(f".tmp-out.mp4.{proc.pid}." in p.name for p in stale)

    marker.unlink()
    again = popen("leed-run", "--video", str(VIDEO), "--ref", str(REF), "--out", str(out), "--max-frames", "3")
    _, err = again.communicate(timeout=300)
    assert again.returncode == 0, err[-2000:]
    assert out.is_file() and not list(tmp_path.glob(".tmp-*"))


@pytest.mark.parametrize(
    ("signum", "code", "message"),
    [
        pytest.param(signal.SIGINT, 130, "interrupted: nothing half-written was kept", id="SIGINT"),
        pytest.param(signal.SIGTERM, 143, "interrupted by SIGTERM: nothing half-written was kept", id="SIGTERM"),
        pytest.param(signal.SIGHUP, 129, "interrupted by SIGHUP: nothing half-written was kept", id="SIGHUP"),
    ],
)
def test_a_signal_mid_video_exits_128_plus_it_with_nothing_written(
    signum: int, code: int, message: str, tmp_path: Path
) -> None:
    out, strip, summary = tmp_path / "out.mp4", tmp_path / "strip.png", tmp_path / "summary.json"
    proc, marker = paused_run(tmp_path, out, "--strip", str(strip), "--summary-json", str(summary))
    assert any(tmp_path.glob(".tmp-out.mp4.*"))  # mid-video: frames are in the temp file
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err[-2000:]
    assert "Traceback" not in err and message in err, err[-2000:]
    marker.unlink()
    assert not list(tmp_path.iterdir())  # no output, no strip, no summary, no temp file


def test_a_reader_that_goes_away_costs_the_run_nothing(tmp_path: Path) -> None:
    """`leed-run ... | head -1`: stdout's reader is gone before the first line. The run goes on,
    writes its files and exits 0, without a traceback (it used to exit 1, silently)."""
    out, summary = tmp_path / "out.jpg", tmp_path / "summary.json"
    read, write = os.pipe()
    os.close(read)  # every write to stdout now fails with EPIPE
    exe = Path(sys.executable).with_name("leed-run")
    try:
        proc = subprocess.run(
            [str(exe), "--image", str(REF), "--ref", str(REF), "--out", str(out), "--summary-json", str(summary)],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=300,
        )
    finally:
        os.close(write)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and "BrokenPipeError" not in proc.stderr, proc.stderr
    assert out.is_file() and json.loads(summary.read_text())["frames"] == 1
    assert not list(tmp_path.glob(".tmp-*"))
