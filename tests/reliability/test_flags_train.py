"""Bad flags and bad places to write, for leed-train, leed-export, leed-eval and leed-synth: every
numeric option refuses what lies outside the range declared next to its field (NaN and inf
included), a config.json or manifest.json with a value of the wrong kind is named with its key,
an output that is a file, someone else's folder, read-only or on a full disk is one line; each
refusal is one `error:` line naming the flag or file and the fix, exit 2, nothing written. And a
dataset's bad `Rafd*` names and unusable landmarks are reported, never silently dropped.

Full disks and read-only folders are simulated in-process (`deny_writes`): the tests may run as
root, where a folder's permissions stop no write."""

from __future__ import annotations

import builtins
import csv
import dataclasses
import errno
import hashlib
import io
import json
import math
import os
import re
import shutil
import subprocess
import sys
import typing
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from leed_export.cli import main as export_main
from leed_export.evaluate import run as eval_run
from leed_export.evaluate.cli import eval_main
from leed_runtime.errors import LeedError
from leed_runtime.manifest import read_manifest
from leed_train.cli import train_main
from leed_train.config import BOUNDS, NetConfig, TrainConfig, flag_name
from leed_train.data.cache import CropCache
from leed_train.data.check import check_dataset
from leed_train.data.index import scan
from leed_train.data.names import landmarks_problem
from leed_train.synth_cli import synth_main

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "samples" / "models" / "tiny-synth"  # a small export folder that ships with the repository
TINY = ["--preset", "tiny", "--device", "cpu", "--workers", "0", "--perceptual", "pixels", "--no-q"]


def invoke(command: object, *args: str) -> tuple[int, str, str]:
    """A leed command in-process: (exit code, stdout, stderr)."""
    result = CliRunner().invoke(command, [str(a) for a in args])  # type: ignore[arg-type]
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception  # a traceback is a failure of the test, shown whole
    return result.exit_code, result.stdout, result.stderr


def refused(code: int, stderr: str, *needles: str) -> str:
    """Exit 2, no traceback and exactly one `error: ...` line (progress bars aside), holding
    every needle; returns it."""
    lines = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert code == 2 and len(lines) == 1 and "Traceback" not in stderr, (code, stderr[-2000:])
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def console(name: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    """A console script of this environment, as users run it."""
    exe = Path(sys.executable).with_name(name)
    return subprocess.run(
        [str(exe), *map(str, args)], capture_output=True, text=True, timeout=300, env={**os.environ, **env}
    )


def deny_writes(monkeypatch: pytest.MonkeyPatch, folder: Path, code: int, only: str = "") -> None:
    """From now on, creating a folder or opening a file for writing under `folder` (whose name
    holds `only`, when given) fails with OSError `code`: a read-only folder (EACCES) or a
    full disk (ENOSPC), as the OS says it, also where root could write anyway."""
    top = Path(os.path.abspath(folder))
    real_mkdir, real_open, real_io_open = os.mkdir, os.open, io.open

    def blocked(path: object) -> bool:
        if not isinstance(path, (str, bytes, os.PathLike)):
            return False
        full = Path(os.path.abspath(os.fsdecode(path)))
        return (full == top or top in full.parents) and only in full.name

    def fail(path: object) -> OSError:
        return OSError(code, os.strerror(code), os.fsdecode(path))  # type: ignore[arg-type]

    def mkdir(path: object, *args: object, **kwargs: object) -> None:
        if blocked(path):
            raise fail(path)
        real_mkdir(path, *args, **kwargs)  # type: ignore[arg-type]

    def os_open(path: object, flags: int, *args: object, **kwargs: object) -> int:
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) and blocked(path):
            raise fail(path)
        return real_open(path, flags, *args, **kwargs)  # type: ignore[arg-type]

    def file_open(file: object, mode: str = "r", *args: object, **kwargs: object) -> typing.IO:
        if any(c in mode for c in "wax+") and blocked(file):
            raise fail(file)
        return real_io_open(file, mode, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(os, "mkdir", mkdir)
    monkeypatch.setattr(os, "open", os_open)
    monkeypatch.setattr(builtins, "open", file_open)
    monkeypatch.setattr(io, "open", file_open)


def nothing_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# -- leed-train: every numeric option, from its declared range -----------------------------------


def _numeric_options() -> list[tuple[str, type, dict]]:
    """(flag, int or float, declared range) of every numeric option of leed-train."""
    found = []
    for cls in (TrainConfig, NetConfig):
        types = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if "help" in f.metadata and types[f.name] in (int, float):
                found.append((flag_name(f), types[f.name], {k: f.metadata[k] for k in BOUNDS if k in f.metadata}))
    return found


NUMERIC = _numeric_options()


def _outside(kind: type, bounds: dict) -> list[str]:
    """Values just outside `bounds` (and, for floats, NaN and both infinities)."""
    step = 1 if kind is int else 1e-3
    values = []
    if "min" in bounds:
        values.append(bounds["min"] - step)
    if "above" in bounds:
        values.append(bounds["above"])
    if "max" in bounds:
        values.append(bounds["max"] + step)
    if "below" in bounds:
        values.append(bounds["below"])
    if kind is float:
        values += [math.nan, math.inf, -math.inf]
    return [str(v) for v in values]


def _inside(kind: type, bounds: dict) -> list[str]:
    """The edges of `bounds` that are inside it."""
    values = [bounds[k] for k in ("min", "max") if k in bounds]
    values += [bounds["above"] + 1e-3] if "above" in bounds else []
    values += [bounds["below"] - 1e-3] if "below" in bounds else []
    return [str(kind(v)) for v in values]


@pytest.mark.parametrize(
    ("flag", "value"),
    [(flag, value) for flag, kind, bounds in NUMERIC for value in _outside(kind, bounds)],
)
def test_leed_train_refuses_a_value_outside_the_declared_range(
    flag: str, value: str, synth_faces: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    code, _, err = invoke(train_main, synth_faces, "--out", out, *TINY, flag, value)
    line = refused(code, err, f"{flag} must be ")
    assert line.endswith(f", got {value}"), line
    assert not out.exists()


@pytest.mark.parametrize(
    ("flag", "value"),
    [(flag, value) for flag, kind, bounds in NUMERIC for value in _inside(kind, bounds)],
)
def test_leed_train_takes_the_edges_of_each_range(flag: str, value: str, tmp_path: Path) -> None:
    code, out, err = invoke(train_main, tmp_path / "data", "--out", tmp_path / "run", *TINY, flag, value, "--dry-run")
    assert code == 0, err
    assert not (tmp_path / "run").exists()


ISSUE_CASES = {  # issue 21's examples, as the user sees them
    ("--log-every", "0"): "--log-every must be >= 1, got 0",
    ("--checkpoint-every", "0"): "--checkpoint-every must be >= 1, got 0",
    ("--sample-every", "0"): "--sample-every must be >= 1, got 0",
    ("--gan-n-critic", "0"): "--gan-n-critic must be >= 1, got 0",
    ("--gan-lr", "nan"): "--gan-lr must be > 0, got nan",
    ("--epochs", "-1"): "--epochs must be >= 1, got -1",
    ("--gan-iters", "-5"): "--gan-iters must be >= 1, got -5",
    ("--keep-checkpoints", "0"): "--keep-checkpoints must be >= 1, got 0",
    ("--minutes", "-1"): "--minutes must be >= 0, got -1",
    ("--minutes", "nan"): "--minutes must be >= 0, got nan",
}


@pytest.mark.parametrize("case", sorted(ISSUE_CASES))
def test_the_reported_flags_are_refused_before_anything_is_written(
    case: tuple[str, str], synth_faces: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    code, _, err = invoke(train_main, synth_faces, "--out", out, *TINY, "--stage", "neutralizer", *case)
    assert refused(code, err) == f"error: {ISSUE_CASES[case]}"
    assert not out.exists()


def test_the_console_script_says_a_bad_flag_in_one_line(synth_faces: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = console("leed-train", synth_faces, "--out", out, *TINY, "--gan-n-critic", "0")
    refused(proc.returncode, proc.stderr, "--gan-n-critic must be >= 1, got 0")
    assert "Traceback" not in proc.stderr and not out.exists()


def test_check_and_describe_check_the_flags_they_read(synth_faces: Path) -> None:
    refused(*invoke(train_main, synth_faces, "--check", "--val-fraction", "nan")[::2], "--val-fraction", "got nan")
    refused(*invoke(train_main, "--describe", "--gan-repeat", "-1")[::2], "--gan-repeat must be >= 0, got -1")


# -- leed-train: the run folder's config.json ------------------------------------------------------


def _saved_run(folder: Path, change: Callable[[dict], None]) -> Path:
    """A run folder whose config.json was edited by `change`."""
    folder.mkdir(parents=True, exist_ok=True)
    data = json.loads(TrainConfig(preset="tiny", out=str(folder)).to_json())
    change(data)
    (folder / "config.json").write_text(json.dumps(data))
    return folder


SAVED = {
    "a string for a number": (lambda d: d.update(log_every="fifty"), "log_every must be a whole number, got 'fifty'"),
    "a number out of range": (lambda d: d.update(gan_n_critic=0), "gan_n_critic must be >= 1, got 0"),
    "NaN": (lambda d: d.update(lr=math.nan), "lr must be > 0, got nan"),
    "a string in net": (lambda d: d["net"].update(code_channels="64"), "net.code_channels must be a whole number"),
    "net not a table": (lambda d: d.update(net=[1]), "net must be a table"),
    "angles a string": (lambda d: d.update(angles="045"), "angles must be a list of strings"),
    "a bool as a number": (lambda d: d.update(epochs=True), "epochs must be a whole number, got True"),
    "a number as a bool": (lambda d: d.update(use_q=1), "use_q must be true or false, got 1"),
}


@pytest.mark.parametrize("case", sorted(SAVED))
def test_resume_names_the_file_and_the_key_of_a_bad_saved_value(case: str, tmp_path: Path) -> None:
    change, needle = SAVED[case]
    run = _saved_run(tmp_path / "run", change)
    before = (run / "config.json").read_bytes()
    code, _, err = invoke(train_main, tmp_path / "data", "--out", run, "--resume", *TINY)
    refused(code, err, f"{run / 'config.json'}: {needle}", "fix it in that file")
    assert nothing_in(run) == ["config.json"] and (run / "config.json").read_bytes() == before


def test_a_config_that_is_no_object_is_one_line(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("[1, 2]")
    code, _, err = invoke(train_main, tmp_path / "data", "--out", run, "--resume")
    refused(code, err, str(run / "config.json"), "not a run config")


def test_leed_export_names_the_file_and_the_key_of_a_bad_run_config(tmp_path: Path) -> None:
    run = _saved_run(tmp_path / "run", lambda d: d.update(gan_labels=3, keep_checkpoints="3"))
    out = tmp_path / "export"
    code, _, err = invoke(export_main, run, "--out", out)
    refused(code, err, f"{run / 'config.json'}: ", "must be a")
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


# -- leed-train: where it writes ---------------------------------------------------------------------


def test_leed_train_refuses_an_out_that_is_a_file_or_someone_else_s_folder(synth_faces: Path, tmp_path: Path) -> None:
    file = tmp_path / "notes.txt"
    file.write_text("mine")
    refused(*invoke(train_main, synth_faces, "--out", file, *TINY)[::2], f"--out {file} is a file")
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "holiday.jpg").write_bytes(b"x")
    refused(*invoke(train_main, synth_faces, "--out", photos, *TINY)[::2], f"--out {photos}", "no config.json")
    assert file.read_text() == "mine" and nothing_in(photos) == ["holiday.jpg"]


@pytest.mark.parametrize(
    ("code", "only"), [(errno.EACCES, ""), (errno.ENOSPC, "config.json")], ids=["read-only", "disk full"]
)
def test_leed_train_into_a_folder_it_cannot_write_is_one_line(
    code: int, only: str, synth_faces: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parent = tmp_path / "runs"
    parent.mkdir()
    out = parent / "run"
    deny_writes(monkeypatch, parent, code, only)
    exit_code, _, err = invoke(
        train_main, synth_faces, "--out", out, *TINY, "--stage", "neutralizer", "--gan-iters", "1"
    )
    refused(exit_code, err, f"--out {out}: cannot write", os.strerror(code), "choose a writable folder")
    assert nothing_in(parent) == []


def test_leed_cache_that_is_a_file_is_one_line_before_the_run_is_written(synth_faces: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.write_text("not a folder")
    out = tmp_path / "run"
    proc = console("leed-train", synth_faces, "--out", out, *TINY, "--stage", "neutralizer", LEED_CACHE=str(cache))
    refused(proc.returncode, proc.stderr, f"LEED_CACHE={cache} is a file", "point LEED_CACHE at a folder")
    assert not out.exists()


@pytest.mark.parametrize("code", [errno.EACCES, errno.ENOSPC], ids=["read-only", "disk full"])
def test_leed_cache_that_cannot_be_written_is_one_line(
    code: int, synth_faces: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    monkeypatch.setenv("LEED_CACHE", str(cache))
    samples = scan(synth_faces).samples[:4]
    deny_writes(monkeypatch, cache, code)
    with pytest.raises(LeedError, match=f"LEED_CACHE={re.escape(str(cache))}: cannot write crops.*writable folder"):
        CropCache().load_crops(samples, progress=False)
    monkeypatch.undo()
    assert nothing_in(cache) == []


# -- datasets: bad names and unusable landmarks ----------------------------------------------------


def _dataset_with_flaws(faces: Path, folder: Path) -> Path:
    """A copy of the synthetic set with two bad `Rafd*` names and two unusable landmark rows
    (all five points at one place; all at 1e6)."""
    data = folder / "data"
    shutil.copytree(faces, data)
    good = next(data.glob("Rafd090_01_*_happy_frontal.jpg"))
    shutil.copy(good, data / good.name.replace("happy", "hapy"))
    shutil.copy(good, data / good.name.replace("Rafd090", "Rafd091"))
    rows = list(csv.reader((data / "landmarks.csv").open()))
    rows[1][1:] = ["40"] * 10
    rows[2][1:] = ["1e6"] * 10
    with (data / "landmarks.csv").open("w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    return data


def test_check_reports_bad_names_and_unusable_landmarks(synth_faces: Path, tmp_path: Path) -> None:
    data = _dataset_with_flaws(synth_faces, tmp_path)
    rows = list(csv.reader((data / "landmarks.csv").open()))
    report = check_dataset(data).splitlines()
    assert "ignored image files (names that do not parse as rafd; rename them to train on them) (2):" in report
    assert any("_hapy_" in line and "expression 'hapy'" in line for line in report)
    assert any("Rafd091_" in line and "angle '091'" in line for line in report)
    unusable = report.index("unusable landmarks (fix or delete their rows in landmarks.csv before training) (2):")
    assert report[unusable + 1] == f"    {rows[1][0]}: the five landmarks are (nearly) one point, at 40,40"
    assert report[unusable + 2] == f"    {rows[2][0]}: the five landmarks are (nearly) one point, at 1e+06,1e+06"
    assert report[-1] == "not ok: unusable landmarks would stop training"
    code, out, _ = invoke(train_main, data, "--check")
    assert code == 0 and out.strip().splitlines() == report


def test_check_says_ok_with_the_count_of_ignored_files(synth_faces: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(synth_faces, data)
    good = next(data.glob("Rafd090_01_*_happy_frontal.jpg"))
    shutil.copy(good, data / good.name.replace("frontal", "upward"))
    assert check_dataset(data).splitlines()[-1] == "ok (1 image files ignored, listed above)"


def test_the_index_gives_a_start_line_note_of_the_ignored_files(synth_faces: Path, tmp_path: Path) -> None:
    data = _dataset_with_flaws(synth_faces, tmp_path)
    index = scan(data)
    note = index.ignored_note()
    assert note.startswith("2 image file(s) ignored (their names do not parse as rafd, e.g. ")
    assert "_hapy_" in note and "Rafd091_" in note and f"`leed-train {data} --check` lists them" in note
    assert len(index.samples) == 96 and scan(synth_faces).ignored_note() == ""


def test_training_refuses_unusable_landmarks_naming_the_file(synth_faces: Path, tmp_path: Path) -> None:
    data = _dataset_with_flaws(synth_faces, tmp_path)
    first = next(s for s in scan(data).samples if s.landmarks is not None and (s.landmarks == 40).all())
    with pytest.raises(
        LeedError, match=f"{re.escape(str(first.path))}: the five landmarks are .*landmarks.csv.*--check"
    ):
        CropCache(tmp_path / "cache").crop(first)


@pytest.mark.parametrize(
    ("points", "problem"),
    [
        (np.full((5, 2), 40.0), "(nearly) one point"),
        (np.full((5, 2), 1e6), "(nearly) one point"),
        (np.array([[30, 40], [70, 40], [50, 60], [35, 80], [65, 80]]) + 1e6, "far outside the 128x128 image"),
        (np.array([[30, 40], [70, 40], [50, 60], [35, 80], [65, 1000]]), "far outside the 128x128 image"),
        (np.array([[30, 40], [70, 40], [50, 60], [35, 80], [65, np.nan]]), "not finite"),
        (np.array([[30, 40], [70, 40], [50, 60], [35, 80], [65, 80]]), None),
        (np.array([[-10, 40], [30, 40], [10, 60], [-5, 80], [25, 80]]), None),  # a face cut by the edge
    ],
)
def test_landmarks_that_cannot_align_a_face(points: np.ndarray, problem: str | None) -> None:
    found = landmarks_problem(points, 128, 128)
    assert (found is None) if problem is None else (problem in found)


# -- leed-export ------------------------------------------------------------------------------------


def _fake_run(folder: Path) -> Path:
    """A folder with only a valid config.json: enough for leed-export to check its options."""
    return _saved_run(folder / "run", lambda d: None)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--samples", "0"], "--samples 0"),
        (["--samples", "-3"], "--samples -3"),
        (["--opset", "-1"], "--opset -1"),
        (["--residual-edit", "--residual-gate", "nan"], "--residual-gate must be >= 0 and <= 2, got nan"),
        (["--residual-edit", "--residual-gate", "-1"], "--residual-gate must be >= 0 and <= 2, got -1"),
        (["--engine", "tensorrt-rtx", "--batch", "0:0:0"], "--batch 0:0:0: need 1 <= min"),
    ],
)
def test_leed_export_refuses_bad_numbers(args: list[str], needle: str, tmp_path: Path) -> None:
    run, out = _fake_run(tmp_path), tmp_path / "export"
    refused(*invoke(export_main, run, "--out", out, *args)[::2], needle)
    assert not out.exists()


def test_leed_export_refuses_an_out_that_is_a_file_or_not_an_export(tmp_path: Path) -> None:
    run = _fake_run(tmp_path)
    file = tmp_path / "out.onnx"
    file.write_text("mine")
    refused(*invoke(export_main, run, "--out", file)[::2], f"--out {file} is a file")
    other = tmp_path / "photos"
    other.mkdir()
    (other / "a.jpg").write_text("x")
    refused(*invoke(export_main, run, "--out", other, "--force")[::2], f"--out {other}", "not an earlier export")
    assert file.read_text() == "mine" and nothing_in(other) == ["a.jpg"]


@pytest.mark.parametrize(
    ("code", "only"),
    [(errno.EACCES, ""), (errno.ENOSPC, "decoder.onnx")],
    ids=["read-only folder", "disk full mid-export"],
)
def test_leed_export_into_a_folder_it_cannot_write_is_one_line(
    code: int, only: str, tiny_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parent = tmp_path / "exports"
    parent.mkdir()
    out = parent / "small"
    deny_writes(monkeypatch, parent, code, only)
    exit_code, _, err = invoke(export_main, tiny_run, "--out", out, "--samples", "2")
    refused(exit_code, err, f"--out {out}: cannot write", os.strerror(code), "nothing was written")
    assert nothing_in(parent) == []


def _cut_graph(folder: Path, graph: str, rehash: bool) -> Path:
    """A copy of the shipped export whose `graph` file lost its second half (and whose manifest,
    with `rehash`, was written over the cut file, so that only parsing it finds the damage)."""
    export = folder / "export"
    shutil.copytree(SHIPPED, export)
    manifest = json.loads((export / "manifest.json").read_text())
    art = manifest["artifacts"][graph]
    path = export / art["file"]
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    if rehash:
        art.update(sha256=hashlib.sha256(path.read_bytes()).hexdigest(), bytes=path.stat().st_size)
        (export / "manifest.json").write_text(json.dumps(manifest))
    return path


@pytest.mark.parametrize("rehash", [False, True], ids=["hash differs", "hash matches the cut file"])
def test_leed_export_check_names_a_cut_graph(rehash: bool, tmp_path: Path) -> None:
    cut = _cut_graph(tmp_path, "encoder", rehash)
    proc = console("leed-export", "--check", cut.parent)
    needle = "not a readable ONNX graph (cut off or corrupt" if rehash else "sha256 differs"
    refused(proc.returncode, proc.stderr, str(cut), needle, "re-run leed-export")
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    "change",
    [
        lambda m: m["image"].pop("size"),
        lambda m: m["image"].update(size=0),
        lambda m: m["image"].update(size="128"),
        lambda m: m["code"].update(channels=-1),
        lambda m: m.update(image=[128]),
    ],
    ids=["image.size missing", "image.size 0", "image.size a string", "code.channels negative", "image a list"],
)
def test_a_manifest_without_a_usable_image_size_is_corrupt(change: Callable[[dict], None], tmp_path: Path) -> None:
    export = tmp_path / "export"
    shutil.copytree(SHIPPED, export)
    manifest = json.loads((export / "manifest.json").read_text())
    change(manifest)
    (export / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(LeedError, match=r"manifest\.json: corrupt manifest \(ValueError: (image|code)\.\w+ is"):
        read_manifest(export)
    refused(*invoke(export_main, "--check", export)[::2], str(export / "manifest.json"), "corrupt manifest")


# -- leed-eval --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flag", "value", "needle"),
    [
        ("--subjects", "0", "--subjects must be >= 1, got 0"),
        ("--faces", "-1", "--faces must be >= 1, got -1"),
        ("--classifier-epochs", "0", "--classifier-epochs must be >= 1, got 0"),
        ("--alpha", "nan", "--alpha must be >= 0 and <= 2, got nan"),
        ("--alpha", "inf", "--alpha must be >= 0 and <= 2, got inf"),
        ("--alpha", "1e300", "--alpha must be >= 0 and <= 2, got 1e+300"),
        ("--seed", "-1", "--seed must be >= 0"),
        ("--residual-gate", "nan", "--residual-gate must be >= 0 and <= 2, got nan"),
    ],
)
def test_leed_eval_refuses_bad_numbers(flag: str, value: str, needle: str, synth_faces: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    code, _, err = invoke(eval_main, SHIPPED, synth_faces, "--out", out, flag, value)
    refused(code, err, needle)
    assert not out.exists()


def test_leed_eval_refuses_an_out_that_is_a_file_someone_else_s_folder_or_in_the_data(
    synth_faces: Path, tmp_path: Path
) -> None:
    file = tmp_path / "report.md"
    file.write_text("mine")
    refused(*invoke(eval_main, SHIPPED, synth_faces, "--out", file)[::2], f"--out {file} is a file")
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a.jpg").write_text("x")
    refused(*invoke(eval_main, SHIPPED, synth_faces, "--out", photos)[::2], f"--out {photos}", "no metrics.json")
    inside = synth_faces / "report"
    refused(*invoke(eval_main, SHIPPED, synth_faces, "--out", inside)[::2], "inside DATA_DIR")
    assert file.read_text() == "mine" and nothing_in(photos) == ["a.jpg"] and not inside.exists()


@pytest.mark.parametrize("code", [errno.EACCES, errno.ENOSPC], ids=["read-only", "disk full"])
def test_leed_eval_into_a_folder_it_cannot_write_is_one_line(
    code: int, synth_faces: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parent = tmp_path / "reports"
    parent.mkdir()
    out = parent / "r"
    deny_writes(monkeypatch, parent, code)
    exit_code, _, err = invoke(eval_main, SHIPPED, synth_faces, "--out", out)
    refused(exit_code, err, f"--out {out}: cannot write", os.strerror(code))
    assert nothing_in(parent) == []


def test_leed_eval_failing_midway_leaves_no_half_report(
    synth_faces: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "reports" / "r"

    def disk_full(*args: object, **kwargs: object) -> None:
        assert (out / "eval_config.json").is_file()  # the run had started writing its report
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(out / "metrics.json"))

    monkeypatch.setattr(eval_run, "load_data", disk_full)
    exit_code, _, err = invoke(eval_main, SHIPPED, synth_faces, "--out", out)
    refused(exit_code, err, f"--out {out}: cannot write {out / 'metrics.json'}", "No space left on device")
    assert not (tmp_path / "reports").exists()

    # into an earlier report: a failing run leaves that report exactly as it was
    out.mkdir(parents=True)
    earlier = {"metrics.json": '{"earlier": true}\n', "report.md": "# the earlier report\n", "grid.jpg": "jpeg"}
    for name, text in earlier.items():
        (out / name).write_text(text)
    exit_code, _, err = invoke(eval_main, SHIPPED, synth_faces, "--out", out)
    refused(exit_code, err, "No space left on device")
    assert {p.name: p.read_text() for p in out.iterdir()} == earlier
    assert [p.name for p in out.parent.iterdir()] == ["r"]  # no .tmp-* folder left beside it


# -- leed-synth ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["faces", "{tmp}/faces", "--seed", "-1"], "--seed must be >= 0"),
        (["faces", "{tmp}/faces", "--identities", "0"], "--identities 0"),
        (["faces", "{tmp}/faces", "--size", "-5"], "--size -5"),
        (["faces", "{tmp}/faces", "--workers", "-1"], "--workers -1"),
        (["video", "{tmp}/v.mp4", "--seconds", "inf"], "--seconds must be > 0, got inf"),
        (["video", "{tmp}/v.mp4", "--seconds", "nan"], "--seconds must be > 0, got nan"),
        (["video", "{tmp}/v.mp4", "--seconds", "0"], "--seconds must be > 0, got 0"),
        (["video", "{tmp}/v.mp4", "--fps", "nan"], "--fps nan"),
        (["video", "{tmp}/v.mp4", "--seed", "-1"], "--seed must be >= 0"),
        (["video", "{tmp}/v.mp4", "--identity", "-1"], "--identity -1"),
    ],
)
def test_leed_synth_refuses_bad_numbers(args: list[str], needle: str, tmp_path: Path) -> None:
    refused(*invoke(synth_main, *(a.format(tmp=tmp_path) for a in args))[::2], needle)
    assert nothing_in(tmp_path) == []


def test_leed_synth_refuses_outputs_that_are_not_its_own(tmp_path: Path) -> None:
    file = tmp_path / "notes.txt"
    file.write_text("mine")
    refused(*invoke(synth_main, "faces", file)[::2], f"OUT_DIR {file} is a file")
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a.jpg").write_text("x")
    refused(*invoke(synth_main, "faces", photos)[::2], f"OUT_DIR {photos}", "not a leed-synth set")
    refused(*invoke(synth_main, "video", photos, "--seconds", "0.1")[::2], f"OUT {photos} is a folder")
    assert file.read_text() == "mine" and nothing_in(photos) == ["a.jpg"]


@pytest.mark.parametrize(
    ("code", "only"),
    [(errno.EACCES, ""), (errno.ENOSPC, "_sad_frontal.jpg")],
    ids=["read-only folder", "disk full midway"],
)
def test_leed_synth_into_a_folder_it_cannot_write_is_one_line(
    code: int, only: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "data" / "faces"
    deny_writes(monkeypatch, tmp_path / "data", code, only)
    args = ["faces", out, "--identities", "1", "--size", "64", "--angles", "090", "--workers", "1"]
    exit_code, _, err = invoke(synth_main, *args)
    refused(exit_code, err, f"OUT_DIR {out}", os.strerror(code), "writable folder")
    monkeypatch.undo()
    assert not out.exists() and nothing_in(tmp_path / "data") == []


def test_leed_synth_empties_the_empty_folder_it_was_given_when_the_disk_fills(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "faces"
    out.mkdir()
    deny_writes(monkeypatch, out, errno.ENOSPC, "_sad_frontal.jpg")
    args = ["faces", out, "--identities", "1", "--size", "64", "--angles", "090", "--workers", "1"]
    exit_code, _, err = invoke(synth_main, *args)
    refused(exit_code, err, f"OUT_DIR {out}: cannot write there (No space left on device)", "nothing was kept")
    monkeypatch.undo()
    assert out.is_dir() and nothing_in(out) == []


def test_training_says_how_many_files_it_ignored_in_its_start_line(synth_faces: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(synth_faces, data)
    good = next(data.glob("Rafd090_01_*_happy_frontal.jpg"))
    shutil.copy(good, data / good.name.replace("happy", "hapy"))
    args = [data, "--out", tmp_path / "run", *TINY, "--stage", "neutralizer", "--gan-iters", "1", "--gan-pair-only"]
    code, out, err = invoke(train_main, *args)
    assert code == 0, err
    (line,) = [line for line in out.splitlines() if line.startswith("leed-train: ") and "training /" in line]
    assert line.endswith(
        f"; 1 image file(s) ignored (their names do not parse as rafd, e.g. "
        f"{good.name.replace('happy', 'hapy')}; `leed-train {data} --check` lists them)"
    )
