"""Command lines of leed_runtime: `leed-run` and `leed-doctor` (no torch anywhere)."""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import click

from leed_runtime.backends.table import backend_kinds
from leed_runtime.batch import folder_input, run_folder
from leed_runtime.doctor import collect, render
from leed_runtime.errors import LeedError, OneLineCommand, handle_errors
from leed_runtime.run import LIMITS, RunConfig, run

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


class _Number(click.ParamType):
    """A numeric flag checked against its range in `run.LIMITS` as it is parsed: NaN, inf and
    values out of range are refused naming the flag."""

    def __init__(self, field: str) -> None:
        self.limit = LIMITS[field]
        self.name = "integer" if self.limit.integer else "float"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int | float:
        flag = param.opts[0] if param is not None else self.name
        return self.limit.check(flag, value)


def _number(flag: str, default: int | float | None, text: str) -> Callable:
    """`@click.option` for a numeric flag of `leed-run`, its range (from `run.LIMITS`) in its help."""
    field = flag.removeprefix("--").replace("-", "_")
    limit = LIMITS[field]
    return click.option(
        flag, type=_Number(field), default=default, show_default=default is not None, help=f"{text} [{limit.text()}]"
    )


def _weights(ctx: click.Context, param: click.Parameter, value: str | None) -> list[float] | None:
    """--ref-weights 0.7,0.3 -> [0.7, 0.3]; their range is checked with the references' count."""
    if value is None:
        return None
    try:
        return [float(w) for w in value.split(",")]
    except ValueError:
        raise LeedError(
            f"--ref-weights {value}: not a comma-separated list of numbers; give one per --ref, e.g. 0.7,0.3"
        ) from None


class _Terminated(BaseException):
    """SIGTERM or SIGHUP during a run: unwinds as Ctrl-C does (every temp file removed)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def _signals_end_cleanly() -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP stop the run the same way: the exception unwinds every writer
    (temp files removed, nothing renamed into place), further signals are ignored until that is
    done, then the exit status is 130 (SIGINT, via `handle_errors`), 143 or 129."""
    stops = [signal.SIGINT, signal.SIGTERM, *([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])]
    if threading.current_thread() is not threading.main_thread():  # only the main thread handles signals
        yield
        return

    def stop(signum: int, frame: object) -> None:
        for s in stops:
            signal.signal(s, signal.SIG_IGN)  # a second signal must not cut the clean-up short
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise _Terminated(signum)

    previous = {s: signal.signal(s, stop) for s in stops}
    try:
        yield
    except _Terminated as exc:
        name = signal.Signals(exc.signum).name
        click.echo(f"interrupted by {name}: nothing half-written was kept", err=True)
        sys.exit(128 + exc.signum)
    finally:
        for s in stops:  # first all ignored: a late signal must not raise outside this block
            signal.signal(s, signal.SIG_IGN)
        for s, handler in previous.items():
            signal.signal(s, handler)


@click.command(
    cls=OneLineCommand,
    epilog=RUN_EXAMPLE,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "--video", default=None, help="Input video file (fps, size, frame count and audio are kept), or a folder of them."
)
@click.option("--image", default=None, help="Input image instead of a video, or a folder of them.")
@_number("--webcam", None, "Camera index instead of a file.")
@click.option("--ref", "refs", multiple=True, help="Reference photo whose expression is transferred (repeatable).")
@click.option(
    "--ref-weights",
    default=None,
    callback=_weights,
    help="Blend several --ref with these weights, e.g. 0.7,0.3 [finite, non-negative, a positive sum].",
)
@_number("--ref-switch", 0.0, "Cycle through the --ref photos every N seconds.")
@click.option("--model", default=None, help="Export folder with manifest.json [default: the shipped model].")
@click.option(
    "--out", default=None, help="Output file [default: INPUT.leed.mp4 / INPUT.leed.jpg]; a folder for a folder input."
)
@_number("--alpha", 1.0, "Expression intensity.")
@click.option(
    "--backend",
    type=click.Choice(["auto", *backend_kinds()]),
    default="auto",
    show_default=True,
)
@_number("--max-faces", 4, "Edit at most this many faces per frame, the largest and most central first.")
@_number("--detect-every", 4, "Full face detection every N frames; tracked in between.")
@click.option("--no-smooth", is_flag=True, help="Do not smooth landmarks over time.")
@click.option("--cuda-graph", is_flag=True, help="onnxruntime-cuda: replay the face graphs as CUDA graphs.")
@click.option("--nhwc", is_flag=True, help="onnxruntime-cuda: prefer NHWC convolution kernels.")
@click.option(
    "--bf16", is_flag=True, help="openvino: the face graphs in bf16 (CPUs with AVX512-BF16/AMX; parity-gated)."
)
@click.option("--preview", is_flag=True, help="Show the result in a window while it runs.")
@_number("--max-frames", 0, "Stop after N frames.")
@click.option(
    "--strip", default=None, help="Also write a PNG: the reference(s), then input over edited for a few frames."
)
@_number("--strip-frames", 4, "Frames shown in --strip.")
@click.option("--summary-json", default=None, help="Also write the run summary (timings) as JSON here.")
@handle_errors
def run_main(refs: tuple[str, ...], ref_weights: list[float] | None, no_smooth: bool, **opts: object) -> None:
    """Give every face in a video (or image, or webcam) the expression of a reference photo."""
    cfg = RunConfig(refs=list(refs), ref_weights=ref_weights, smooth=not no_smooth, **opts)
    with _signals_end_cleanly():
        if folder_input(cfg) is None:
            run(cfg)
        elif run_folder(cfg)["failed"]:
            sys.exit(1)  # the batch went on past its bad files, each named on stderr: say so to scripts


@click.command(
    cls=OneLineCommand, context_settings={"help_option_names": ["-h", "--help"]}, epilog="\b\nExample:\n  leed-doctor"
)
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
@handle_errors
def doctor_main(as_json: bool) -> None:
    """Say which libraries and GPUs are here, and which leed commands will therefore work."""
    findings = collect()
    if as_json:
        click.echo(json.dumps(findings, indent=2))
    else:
        click.echo(render(findings))
