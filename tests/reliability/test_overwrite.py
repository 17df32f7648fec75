"""Nothing the user had is overwritten: leed-run's --out and --strip never name an input, each
other, a folder or a device; leed-export --force never replaces a folder that holds the run, nor
one that is not an earlier export."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from leed_export.export import ExportConfig
from leed_runtime.errors import LeedError
from leed_runtime.run import RunConfig
from leed_train.cli import train_main

ROOT = Path(__file__).resolve().parents[2]
VIDEO, REF = ROOT / "samples" / "real" / "talk.mp4", ROOT / "samples" / "real" / "surprised.jpg"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda t: RunConfig(video=str(VIDEO), refs=[str(REF)], out=str(REF)), "would overwrite the reference"),
        (lambda t: RunConfig(image=str(REF), refs=[str(REF)], out=str(REF)), "would overwrite the input image"),
        (lambda t: RunConfig(video=str(VIDEO), refs=[str(REF)], out=str(VIDEO)), "would overwrite the input video"),
        (
            lambda t: RunConfig(video=str(VIDEO), refs=[str(REF)], out=str(t / "s.png"), strip=str(t / "s.png")),
            "also --out",
        ),
        (lambda t: RunConfig(video=str(VIDEO), refs=[str(REF)], out=str(t)), "is a folder"),
        (lambda t: RunConfig(video=str(VIDEO), refs=[str(REF)], out=os.devnull), "not a regular file"),
        (lambda t: RunConfig(video=str(VIDEO), refs=[str(REF)], out=str(t / "o.mp4"), strip=str(REF)), "--strip"),
    ],
)
def test_leed_run_refuses_outputs_that_would_replace_what_the_user_has(make, message: str, tmp_path: Path) -> None:  # noqa: ANN001
    with pytest.raises(LeedError, match=message):
        make(tmp_path).validate()


def test_leed_run_refuses_a_link_to_a_device(tmp_path: Path) -> None:
    link = tmp_path / "out.mp4"
    link.symlink_to(os.devnull)
    with pytest.raises(LeedError, match="not a regular file"):
        RunConfig(video=str(VIDEO), refs=[str(REF)], out=str(link)).validate()


def test_leed_export_never_replaces_the_run_or_a_folder_that_is_not_an_export(tmp_path: Path) -> None:
    run = tmp_path / "runs" / "r"
    run.mkdir(parents=True)
    (run / "config.json").write_text("{}")
    with pytest.raises(LeedError, match="contains RUN_DIR"):
        ExportConfig(run_dir=str(run), out=str(tmp_path / "runs"), force=True).validate()
    other = tmp_path / "photos"
    other.mkdir()
    (other / "holiday.jpg").write_bytes(b"x")
    with pytest.raises(LeedError, match="not an earlier export"):
        ExportConfig(run_dir=str(run), out=str(other), force=True).validate()
    assert (other / "holiday.jpg").is_file() and (run / "config.json").is_file()


def test_a_refused_leed_train_writes_nothing(tmp_path: Path) -> None:
    """A run refused for its data leaves no config.json or split.json for the next run to trip over."""
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "run"
    args = [str(empty), "--out", str(out), "--preset", "tiny", "--device", "cpu", "--perceptual", "pixels", "--no-q"]
    result = CliRunner().invoke(train_main, args)
    assert result.exit_code == 2 and "no images found" in result.output
    assert not out.exists()
