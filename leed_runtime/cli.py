"""Command lines of leed_runtime: `leed-run` and `leed-doctor` (no torch anywhere)."""

from __future__ import annotations

import click

from leed_runtime.errors import handle_errors, not_available_yet

RUN_EXAMPLE = """
\b
Examples:
  leed-run --video in.mp4 --ref smile.jpg --out out.mp4
  leed-run --video in.mp4 --ref smile.jpg --alpha 1.5 --backend onnxruntime-cpu
  leed-run --image face.jpg --ref surprised.jpg --out edited.jpg
"""


@click.command(epilog=RUN_EXAMPLE, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--video", default=None, help="Input video file.")
@click.option("--image", default=None, help="Input image instead of a video.")
@click.option("--ref", "refs", multiple=True, help="Reference photo whose expression is transferred.")
@click.option("--model", default=None, help="Export folder with manifest.json.")
@click.option("--out", default=None, help="Output file.")
@click.option("--alpha", type=float, default=1.0, show_default=True, help="Expression intensity; > 1 extrapolates.")
@click.option(
    "--backend",
    type=click.Choice(["auto", "tensorrt", "tensorrt-rtx", "onnxruntime-cuda", "onnxruntime-cpu"]),
    default="auto",
    show_default=True,
)
@handle_errors
def run_main(**opts: object) -> None:
    """Give every face in a video the expression of a reference photo."""
    not_available_yet("leed-run", "runtime")


@click.command(context_settings={"help_option_names": ["-h", "--help"]}, epilog="\b\nExample:\n  leed-doctor")
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
@handle_errors
def doctor_main(as_json: bool) -> None:
    """Say which libraries and GPUs are here, and which leed commands will therefore work."""
    from leed_runtime.doctor import collect, render

    findings = collect()
    if as_json:
        import json

        click.echo(json.dumps(findings, indent=2))
    else:
        click.echo(render(findings))
