"""Command line of `leed-export` (`leed-eval` is in evaluate/cli.py, `leed-bench` in bench/cli.py)."""

from __future__ import annotations

from pathlib import Path

import click
import onnx
from google.protobuf.message import DecodeError

from leed_export.export import ExportConfig, check_export, run_export
from leed_runtime.backends.table import engine_kinds
from leed_runtime.errors import LeedError, OneLineCommand, handle_errors
from leed_runtime.manifest import read_manifest
from leed_train.cli import os_error_line

EXPORT_EXAMPLE = """
\b
Examples:
  leed-export runs/small --out exports/small
  leed-export runs/small --out exports/small-fp16 --fp16 --engine tensorrt-rtx --batch 1:8:32
  leed-export --check exports/small
"""


@click.command(cls=OneLineCommand, epilog=EXPORT_EXAMPLE, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("run_dir", required=False)
@click.option("--out", default="", help="Export folder (written whole at the end, or not at all).")
@click.option("--fp16", is_flag=True, help="Also FP16 graphs, normalisation and output layers kept FP32.")
@click.option("--engine", type=click.Choice(["none", *engine_kinds()]), default="none", show_default=True)
@click.option("--batch", default="1:8:32", show_default=True, help="min:opt:max batch of the engine profile.")
@click.option("--opset", type=int, default=None, help="ONNX opset (default: the exporter's).")
@click.option("--data", default="", help="Dataset folder, if the run's data_dir has moved (parity uses real crops).")
@click.option("--samples", type=int, default=8, show_default=True, help="Real crops per parity check.")
@click.option("--force", is_flag=True, help="Replace a non-empty --out.")
@click.option("--opencv", is_flag=True, help="Also batch-1 reference/edit graphs for OpenCV DNN hosts (samples/cpp).")
@click.option(
    "--residual-edit",
    is_flag=True,
    help="Not in the paper: `edit` puts back the detail D loses, D(I(c, a dexp)) + G(x) - D(I(c, 0)) "
    "(the shipped model's export).",
)
@click.option(
    "--residual-gate",
    type=float,
    default=0.1,
    show_default=True,
    help="With --residual-edit: fade that detail out where D changes the face by this much "
    "(mean RGB change in [-1, 1] units, blurred 9x9), so a moved brow leaves no ghost; 0: never.",
)
@click.option(
    "--residual-base",
    type=click.Choice(["neutral", "input"]),
    default="neutral",
    show_default=True,
    help="With --residual-edit: put back the detail of G(face) (neutral) or of the input face itself (input: "
    "a neutralizer's traces never show where the decoder changes nothing; the real-face model's export).",
)
@click.option(
    "--warp-edit",
    is_flag=True,
    help="Not in the paper (a --warp run): `edit` moves the face's own pixels by the displacement D predicts "
    "(base: --residual-base) and paints on what D changes beyond the motion (--warp-paint). The real-face "
    "model's export.",
)
@click.option(
    "--warp-paint",
    type=float,
    default=1.0,
    show_default=True,
    help="With --warp-edit: how much of D's change beyond the motion (teeth, creases) is painted on; 0: none.",
)
@click.option("--check", "check_dir", default=None, metavar="EXPORT_DIR", help="Re-verify an export folder and exit.")
@handle_errors
def main(run_dir: str | None, check_dir: str | None, **opts: object) -> None:
    """Export a trained run to ONNX (and FP16, TensorRT), checked against PyTorch."""
    if check_dir is not None:
        if run_dir is not None:
            raise LeedError(
                f"--check {check_dir} takes no RUN_DIR ({run_dir}); run the check and the export separately"
            )
        folder = Path(check_dir)
        try:
            check_export(folder)
        except DecodeError:  # a graph file cut short (its manifest hashed it so): name it
            raise LeedError(_unreadable_graph(folder)) from None
        return
    if run_dir is None:
        raise LeedError("RUN_DIR is missing: leed-export RUN_DIR --out EXPORT_DIR (or leed-export --check EXPORT_DIR)")
    cfg = ExportConfig(run_dir=run_dir, **opts)  # type: ignore[arg-type]
    try:
        run_export(cfg)
    except OSError as exc:  # a full disk, a read-only folder: one line; run_export removed its temp folder
        raise LeedError(os_error_line(exc, "--out", Path(cfg.out), " (nothing was written)")) from None


def _unreadable_graph(folder: Path) -> str:
    """The line for an export whose ONNX graph does not parse: the first such file of the manifest."""
    for art in read_manifest(folder).artifacts.values():
        if art.format == "onnx":
            try:
                onnx.load(str(folder / art.file))
            except DecodeError as exc:
                return f"{folder / art.file}: not a readable ONNX graph (cut off or corrupt: {exc}); re-run leed-export"
    return f"{folder}: an ONNX graph is not readable (cut off or corrupt); re-run leed-export"
