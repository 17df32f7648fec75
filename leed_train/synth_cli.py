"""Command line of `leed-synth`: synthetic faces and a demo video, without PyTorch.

`leed-synth` is installed without torch, so this module imports only torch-free modules
(`tests/test_boundaries.py` checks it); `leed-train` is in `cli.py`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import click

from leed_runtime.errors import LeedError, OneLineGroup, handle_errors
from leed_train.config import SEED, check_number
from leed_train.data.synth import render_faces, render_video

SET_FILE = "meta.json"  # what every folder of `render_faces` holds


def _csv(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip()) if value else ()


SYNTH_EXAMPLE = """
\b
Examples:
  leed-synth faces data/synth --identities 60 --seed 0
  leed-synth faces data/psi --identities 30 --seed 1 --first-id 101  # other people, for psi
  leed-synth video demo.mp4 --identity 3 --seconds 10 --fps 29.97 --size 1280x720
"""


@click.group(cls=OneLineGroup, epilog=SYNTH_EXAMPLE, context_settings={"help_option_names": ["-h", "--help"]})
def synth_main() -> None:
    """Render synthetic faces in RaFD's file format, with exact ground truth."""


@synth_main.command("faces", epilog=SYNTH_EXAMPLE)
@click.argument("out_dir", type=click.Path(path_type=Path))
@click.option("--identities", type=int, default=60, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--size", type=int, default=256, show_default=True, help="Image side in pixels.")
@click.option("--angles", default="045,090,135", show_default=True, help="RaFD camera angles (090 = frontal).")
@click.option("--first-id", type=int, default=1, show_default=True, help="Number of the first identity.")
@click.option("--workers", type=int, default=0, help="Processes (0 = one per core).")
@handle_errors
def synth_faces(out_dir: Path, identities: int, seed: int, size: int, angles: str, first_id: int, workers: int) -> None:
    """Write Rafd{angle}_{id}_{ethnicity}_{gender}_{expression}_{gaze}.jpg, landmarks.csv, meta.json."""
    check_number("--seed", seed, **SEED)
    if out_dir.exists() and not out_dir.is_dir():
        raise LeedError(f"OUT_DIR {out_dir} is a file; choose a folder for the faces")
    if out_dir.is_dir() and not (out_dir / SET_FILE).is_file() and any(out_dir.iterdir()):
        raise LeedError(
            f"OUT_DIR {out_dir} is not empty and not a leed-synth set (no {SET_FILE}); choose a new or empty folder"
        )
    made, empty = not out_dir.exists(), out_dir.is_dir() and not any(out_dir.iterdir())
    try:
        render_faces(
            out_dir,
            identities=identities,
            seed=seed,
            size=size,
            angles=_csv(angles),
            first_id=first_id,
            workers=workers,
        )
    except BaseException as exc:
        # a half-rendered set is removed (--check would pass it with fewer people): OUT_DIR if this
        # run made it, what it holds if it was empty
        if made:
            shutil.rmtree(out_dir, ignore_errors=True)
        elif empty:
            for path in out_dir.iterdir():
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise LeedError(
                f"OUT_DIR {out_dir}: cannot write there ({exc.strerror or exc}); free some space or choose a "
                "writable folder (nothing was kept)"
            ) from None
        raise


@synth_main.command("video", epilog=SYNTH_EXAMPLE)
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--identity", type=int, default=1, show_default=True)
@click.option("--seconds", type=float, default=10.0, show_default=True)
@click.option("--fps", type=float, default=29.97, show_default=True, help="29.97 is written as 30000/1001.")
@click.option("--size", default="1280x720", show_default=True, help="WIDTHxHEIGHT")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--no-audio", is_flag=True, help="Write no audio track.")
@handle_errors
def synth_video(out: Path, identity: int, seconds: float, fps: float, size: str, seed: int, no_audio: bool) -> None:
    """A synthetic head moving in a larger frame, its expression changing, with audio."""
    try:
        width, height = (int(v) for v in size.lower().split("x"))
    except ValueError:
        raise LeedError(f"--size {size!r} is not WIDTHxHEIGHT, e.g. 1280x720") from None
    check_number("--seed", seed, **SEED)
    check_number("--seconds", seconds, above=0)
    if out.is_dir():
        raise LeedError(f"OUT {out} is a folder; give a video file name, e.g. {out / 'demo.mp4'}")
    try:
        render_video(
            out, identity=identity, seconds=seconds, fps=fps, size=(width, height), seed=seed, audio=not no_audio
        )
    except OSError as exc:  # the video and its landmarks are written to temp files: nothing half-written is left
        raise LeedError(
            f"OUT {out}: cannot write there ({exc.strerror or exc}); free some space or choose a writable folder"
        ) from None
