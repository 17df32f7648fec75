"""`leed-bench`: `infer` (graphs and chain of an export), `video` (a real leed-run, per stage)
and `train` (the stage-2 step on random data). Each prints a table; `--json OUT` writes it all."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from leed_export.bench.infer import InferConfig, bench_infer
from leed_export.bench.train import TrainBenchConfig, bench_train
from leed_export.bench.video import bench_video
from leed_runtime.atomic import atomic_write_text
from leed_runtime.backends.select import PRECISIONS
from leed_runtime.backends.table import backend_kinds
from leed_runtime.errors import LeedError, OneLineGroup, handle_errors
from leed_train.config import PERCEPTUAL, PRESETS

BACKENDS = ["auto", *backend_kinds()]
EXAMPLE = """
\b
Examples:
  leed-bench infer exports/small --batch 1,8,64 --torch runs/small --json bench-infer.json
  leed-bench infer exports/paper --backend onnxruntime-cuda --precision fp16 --cuda-graph --nhwc
  leed-bench infer exports/small --backend onnxruntime-cpu --compare openvino --compare openvino:precision=bf16
  leed-bench video exports/small --video in.mp4 --ref smile.jpg --json bench-video.json
  leed-bench train --preset paper --batch-size 24 --steps 20
"""
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(cls=OneLineGroup, epilog=EXAMPLE, context_settings=CONTEXT)
def bench_main() -> None:
    """Benchmarks: inference per graph and chain, a real leed-run per stage, the training step."""


def _batches(value: str) -> tuple[int, ...]:
    try:
        return tuple(int(b) for b in value.split(",") if b.strip())
    except ValueError:
        raise LeedError(f"--batch {value!r} is not a comma-separated list of integers, e.g. 1,8,64") from None


def _write_json(path: str | None, result: dict[str, Any]) -> None:
    if path:
        atomic_write_text(Path(path), json.dumps(result, indent=2) + "\n")
        click.echo(f"  wrote {path}")


def _num(value: float | None, fmt: str) -> str:
    return "n/a" if value is None else format(value, fmt)


@bench_main.command(epilog=EXAMPLE, context_settings=CONTEXT)
@click.argument("export_dir")
@click.option("--backend", type=click.Choice(BACKENDS), default="auto", show_default=True)
@click.option("--batch", "batch", default="1,8,64", show_default=True, help="Batch sizes, comma-separated.")
@click.option("--precision", type=click.Choice(PRECISIONS), default="auto", show_default=True)
@click.option("--cuda-graph", is_flag=True, help="onnxruntime-cuda: capture and replay CUDA graphs.")
@click.option("--nhwc", is_flag=True, help="onnxruntime-cuda: prefer NHWC kernels.")
@click.option("--threads", type=int, default=0, help="onnxruntime (and --torch) threads [default: all cores].")
@click.option("--warmup", type=int, default=5, show_default=True)
@click.option("--iters", type=int, default=50, show_default=True)
@click.option("--torch", "torch_run", default=None, help="Training run: also time the chain in PyTorch eager.")
@click.option(
    "--compare",
    multiple=True,
    help="Also time KIND[:OPTION=VALUE,...] in the same run, calls interleaved (repeatable), "
    "e.g. openvino:precision=bf16.",
)
@click.option("--json", "json_out", default=None, help="Write the results as JSON here.")
@handle_errors
def infer(export_dir: str, batch: str, json_out: str | None, compare: tuple[str, ...], **opts: Any) -> None:
    """Time each graph of the chain, the chain and `edit` of EXPORT_DIR (median, p99, FLOPs)."""
    result = bench_infer(InferConfig(export_dir=export_dir, batches=_batches(batch), compare=compare, **opts))
    m = result["machine"]
    where = result["gpu"] or f"{m['cpu']}, {m['cpu_count']} cores"
    click.echo(
        f"leed-bench infer: {export_dir} (preset {result['preset']}, {result['precision']}) on {result['backend']} "
        f"({where})"
    )
    torch = "torch" in result
    header = f"  {'graph':<13}{'batch':>6}{'GFLOP/fr':>10}{'median ms':>11}{'p99 ms':>9}{'ms/frame':>10}"
    header += f"{'frames/s':>10}{'TFLOP/s':>9}{'% peak':>8}" + (f"{'torch ms':>10}{'x torch':>9}" if torch else "")
    click.echo(header)
    for r in result["results"]:
        peak = None if r["peak_fraction"] is None else 100 * r["peak_fraction"]
        line = (
            f"  {r['graph']:<13}{r['batch']:>6}{_num(r['gflop_per_frame'], '.3f'):>10}{r['median_ms']:>11.3f}"
            f"{r['p99_ms']:>9.3f}{r['ms_per_frame']:>10.3f}{r['fps']:>10.1f}{_num(r['tflops'], '.3f'):>9}"
            f"{_num(peak, '.1f'):>8}"
        )
        if torch:
            line += f"{_num(r['torch_median_ms'], '.3f'):>10}{_num(r['speedup_vs_torch'], '.2f'):>9}"
        click.echo(line)
    for setup in result.get("compare", []):
        click.echo(f"  vs {setup['label']} (same calls, interleaved; x: {result['backend']} ms / its ms)")
        click.echo(f"  {'graph':<13}{'batch':>6}{'median ms':>11}{'x':>7}{'max abs':>10}{'PSNR dB':>9}")
        for r in setup["results"]:
            click.echo(
                f"  {r['graph']:<13}{r['batch']:>6}{r['median_ms']:>11.3f}{r['speedup']:>7.2f}"
                f"{r['max_abs_vs_primary']:>10.1e}{r['psnr_db_vs_primary']:>9.1f}"
            )
    _write_json(json_out, result)


@bench_main.command(epilog=EXAMPLE, context_settings=CONTEXT)
@click.argument("export_dir")
@click.option("--video", required=True, help="Input video.")
@click.option("--ref", "refs", multiple=True, required=True, help="Reference photo (repeatable).")
@click.option("--backend", type=click.Choice(BACKENDS), default="auto", show_default=True)
@click.option("--max-frames", type=int, default=0, help="Stop after N frames.")
@click.option("--json", "json_out", default=None, help="Write the results as JSON here.")
@handle_errors
def video(export_dir: str, video: str, refs: tuple[str, ...], json_out: str | None, **opts: Any) -> None:
    """A real leed-run of VIDEO with EXPORT_DIR: fps end to end and the per-stage split."""
    result = bench_video(export_dir, video, list(refs), **opts)
    click.echo(
        f"leed-bench video: {result['frames']} frames, {result['fps']:.1f} fps end to end, "
        f"{result['fps_staged']:.1f} fps from the stages ({result['ms_per_frame_staged']:.1f} ms/frame)"
    )
    click.echo(f"  {'stage':<8}{'ms/frame':>10}{'share':>8}")
    for stage, share in result["stage_share"].items():
        click.echo(f"  {stage:<8}{share * result['ms_per_frame_staged']:>10.2f}{100 * share:>7.1f}%")
    _write_json(json_out, result)


@bench_main.command(epilog=EXAMPLE, context_settings=CONTEXT)
@click.option("--preset", type=click.Choice(PRESETS), default="paper", show_default=True)
@click.option("--batch-size", type=int, default=24, show_default=True, help="Pairs per step (paper: 24).")
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda | cuda:N")
@click.option("--steps", type=int, default=10, show_default=True, help="Timed steps.")
@click.option("--warmup", type=int, default=2, show_default=True)
@click.option("--perceptual", type=click.Choice(PERCEPTUAL), default="random-vgg19")
@click.option("--no-q", is_flag=True, help="Without L_Q (and Psi).")
@click.option("--threads", type=int, default=0, help="torch CPU threads [default: torch's].")
@click.option("--json", "json_out", default=None, help="Write the results as JSON here.")
@handle_errors
def train(no_q: bool, json_out: str | None, **opts: Any) -> None:
    """Images/s and peak memory of the real stage-2 step on random data of the preset's shapes."""
    result = bench_train(TrainBenchConfig(use_q=not no_q, **opts))
    memory = (
        f"peak RSS {result['peak_rss_mb']:.0f} MB"
        if "peak_rss_mb" in result
        else f"GPU max allocated {result['gpu_max_allocated_mb']:.0f} MB"
    )
    step = result["step"]
    click.echo(
        f"leed-bench train: preset {result['preset']}, batch {opts['batch_size']} on {result['device']}: "
        f"{result['images_per_s']:.1f} images/s (step median {step['median_ms']:.1f} ms, p99 {step['p99_ms']:.1f} ms), "
        f"{memory}"
    )
    _write_json(json_out, result)
