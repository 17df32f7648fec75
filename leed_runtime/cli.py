"""Command lines of leed_runtime: `leed-run` and `leed-doctor` (no torch anywhere)."""

from __future__ import annotations

import json

import click

from leed_runtime.backends.table import backend_kinds
from leed_runtime.doctor import collect, render
from leed_runtime.errors import LeedError, handle_errors
from leed_runtime.run import RunConfig, run

RUN_EXAMPLE = """
\b
Examples:
  leed-run --video samples/demo.mp4 --ref samples/happy.jpg --out out.mp4 --strip strip.png   # shipped model
  leed-run --video in.mp4 --ref smile.jpg --out out.mp4
  leed-run --video in.mp4 --ref happy.jpg --ref surprised.jpg --ref-switch 2   # alternate every 2 s
  leed-run --video in.mp4 --ref smile.jpg --alpha 1.5 --backend onnxruntime-cpu
  leed-run --image face.jpg --ref surprised.jpg --out edited.jpg
  leed-run --webcam 0 --ref smile.jpg --preview
"""


@click.command(epilog=RUN_EXAMPLE, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--video", default=None, help="Input video file (fps, size, frame count and audio are kept).")
@click.option("--image", default=None, help="Input image instead of a video.")
@click.option("--webcam", type=int, default=None, help="Camera index instead of a file.")
@click.option("--ref", "refs", multiple=True, help="Reference photo whose expression is transferred (repeatable).")
@click.option("--ref-weights", default=None, help="Blend several --ref with these weights, e.g. 0.7,0.3.")
@click.option("--ref-switch", type=float, default=0.0, help="Cycle through the --ref photos every N seconds.")
@click.option("--model", default=None, help="Export folder with manifest.json [default: the shipped model].")
@click.option("--out", default=None, help="Output file [default: INPUT.leed.mp4 / INPUT.leed.jpg].")
@click.option("--alpha", type=float, default=1.0, show_default=True, help="Expression intensity; > 1 extrapolates.")
@click.option(
    "--backend",
    type=click.Choice(["auto", *backend_kinds()]),
    default="auto",
    show_default=True,
)
@click.option("--max-faces", type=int, default=4, show_default=True, help="Edit at most this many faces per frame.")
@click.option(
    "--detect-every",
    type=int,
    default=4,
    show_default=True,
    help="Full face detection every N frames; tracked in between.",
)
@click.option("--no-smooth", is_flag=True, help="Do not smooth landmarks over time.")
@click.option("--preview", is_flag=True, help="Show the result in a window while it runs.")
@click.option("--max-frames", type=int, default=0, help="Stop after N frames.")
@click.option(
    "--strip", default=None, help="Also write a PNG: the reference(s), then input over edited for a few frames."
)
@click.option("--strip-frames", type=int, default=4, show_default=True, help="Frames shown in --strip.")
@click.option("--summary-json", default=None, help="Also write the run summary (timings) as JSON here.")
@handle_errors
def run_main(refs: tuple[str, ...], ref_weights: str | None, no_smooth: bool, **opts: object) -> None:
    """Give every face in a video (or image, or webcam) the expression of a reference photo."""
    weights = None
    if ref_weights:
        try:
            weights = [float(w) for w in ref_weights.split(",")]
        except ValueError:
            raise LeedError(f"--ref-weights {ref_weights!r} is not a comma-separated list of numbers") from None
    run(RunConfig(refs=list(refs), ref_weights=weights, smooth=not no_smooth, **opts))


@click.command(context_settings={"help_option_names": ["-h", "--help"]}, epilog="\b\nExample:\n  leed-doctor")
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
@handle_errors
def doctor_main(as_json: bool) -> None:
    """Say which libraries and GPUs are here, and which leed commands will therefore work."""
    findings = collect()
    if as_json:
        click.echo(json.dumps(findings, indent=2))
    else:
        click.echo(render(findings))
