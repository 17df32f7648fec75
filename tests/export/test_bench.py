"""leed-bench smoke tests: tiny preset, CPU, a few iterations; the JSON's shape, never a time."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from leed_export.bench.cli import bench_main
from leed_export.bench.common import graph_flops
from leed_export.bench.infer import CHAIN

ROWS = {"graph", "batch", "median_ms", "p99_ms", "ms_per_frame", "fps", "gflop_per_frame", "tflops", "peak_fraction"}


def _bench(args: list[str], out: Path) -> dict:
    result = CliRunner().invoke(bench_main, [*args, "--json", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(out.read_text())


def test_infer_json(tiny_export: Path, tiny_run: Path, tmp_path: Path) -> None:
    data = _bench(
        ["infer", str(tiny_export), "--batch", "1,2", "--iters", "2", "--warmup", "1", "--torch", str(tiny_run)],
        tmp_path / "infer.json",
    )
    assert data["backend"] == "onnxruntime-cpu" and data["peak_tflops"] is None
    assert {"date", "cpu", "versions"} <= set(data["machine"])
    graphs = {(r["graph"], r["batch"]) for r in data["results"]}
    assert graphs == {(g, b) for g in (*CHAIN, "edit", "chain") for b in (1, 2)}
    for row in data["results"]:
        assert ROWS | {"torch_median_ms", "speedup_vs_torch"} <= set(row)
        assert row["peak_fraction"] is None and row["gflop_per_frame"] > 0
    chain = {r["batch"]: r["gflop_per_frame"] for r in data["results"] if r["graph"] == "chain"}
    assert chain[1] == pytest.approx(chain[2])  # FLOPs per frame do not depend on the batch
    assert len(data["torch"]["results"]) == len(data["results"])


def test_flops_scale_with_batch(tiny_export: Path) -> None:
    one, four = graph_flops(tiny_export / "encoder.onnx", 1), graph_flops(tiny_export / "encoder.onnx", 4)
    assert one and four == pytest.approx(4 * one)


def test_video_json(tiny_export: Path, synth_faces: Path, tmp_path: Path) -> None:
    from leed_train.data.synth import render_video

    video = tmp_path / "in.mp4"
    render_video(video, identity=1, seconds=0.2, fps=10, size=(256, 192))
    ref = next(synth_faces.glob("*_happy_frontal.jpg"))
    data = _bench(["video", str(tiny_export), "--video", str(video), "--ref", str(ref)], tmp_path / "video.json")
    assert data["frames"] == 2 and data["fps"] > 0
    assert {"detect", "edit"} <= set(data["stage_share"]) and sum(data["stage_share"].values()) == pytest.approx(1)


def test_train_json(tmp_path: Path) -> None:
    data = _bench(
        ["train", "--preset", "tiny", "--batch-size", "2", "--steps", "1", "--warmup", "0", "--perceptual", "pixels"],
        tmp_path / "train.json",
    )
    assert data["device"] == "cpu" and data["images_per_s"] > 0 and data["peak_rss_mb"] > 0
    assert data["step"]["iters"] == 1


def test_bad_batch_is_one_line(tiny_export: Path) -> None:
    result = CliRunner().invoke(bench_main, ["infer", str(tiny_export), "--batch", "1,x"])
    assert result.exit_code == 2 and "--batch" in result.output and "Traceback" not in result.output


def test_options_the_backend_does_not_take_are_one_line(tiny_export: Path) -> None:
    """The backend table's options decide: onnxruntime-cpu takes no CUDA graphs (open_backend refuses)."""
    args = ["infer", str(tiny_export), "--backend", "onnxruntime-cpu", "--cuda-graph", "--iters", "1"]
    result = CliRunner().invoke(bench_main, args)
    assert result.exit_code == 2 and result.output.count("\n") == 1, result.output
    assert "onnxruntime-cpu takes no CUDA options (cuda_graph)" in result.output and "onnxruntime-cuda" in result.output
