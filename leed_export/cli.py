"""Command lines of leed_export: `leed-export` and `leed-eval` (it reads both checkpoints and
exports, so it lives in the package that imports both)."""

from __future__ import annotations

import click

from leed_runtime.errors import handle_errors, not_available_yet

EXPORT_EXAMPLE = """
\b
Examples:
  leed-export runs/small --out exports/small
  leed-export runs/small --out exports/small-fp16 --fp16 --engine tensorrt-rtx --batch 1:8:32
"""

EVAL_EXAMPLE = """
\b
Examples:
  leed-eval runs/small data/synth --out reports/small
  leed-eval exports/small data/synth --out reports/small-onnx
"""


@click.command(epilog=EXPORT_EXAMPLE, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("run_dir")
@click.option("--out", default=None, help="Export folder.")
@click.option("--fp16", is_flag=True, help="FP16 graphs with normalisation and output layers kept FP32.")
@click.option("--engine", type=click.Choice(["none", "tensorrt", "tensorrt-rtx"]), default="none", show_default=True)
@click.option("--batch", default="1:8:32", show_default=True, help="min:opt:max batch of the engine profile.")
@click.option("--opset", type=int, default=None)
@handle_errors
def main(**opts: object) -> None:
    """Export a trained run to ONNX (and FP16, TensorRT), checked against PyTorch."""
    not_available_yet("leed-export", "export")


@click.command(epilog=EVAL_EXAMPLE, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("model_dir")
@click.argument("data_dir")
@click.option("--out", default=None, help="Report folder (metrics.json, figures, report.md).")
@handle_errors
def eval_main(**opts: object) -> None:
    """Measure SSIM/PSNR, expression accuracy, FD-expr and identity preservation."""
    not_available_yet("leed-eval", "evaluation")
