"""`leed-bench video`: one real `leed-run` of a video, its summary and per-stage split."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from leed_export.bench.common import machine
from leed_runtime.run import RunConfig, run


def bench_video(
    export_dir: str, video: str, refs: list[str], backend: str = "auto", max_frames: int = 0
) -> dict[str, Any]:
    """One real `leed-run` (output to a temp file): its summary plus the per-stage split."""
    with tempfile.TemporaryDirectory(prefix="leed-bench-") as tmp:
        summary = run(
            RunConfig(
                video=video,
                refs=list(refs),
                model=export_dir,
                out=str(Path(tmp) / "out.mp4"),
                backend=backend,
                max_frames=max_frames,
            )
        )
    stages = summary["ms_per_stage"]
    per_frame = sum(v["mean"] * v["count"] for v in stages.values()) / max(summary["frames"], 1)
    split = {s: v["mean"] * v["count"] / max(summary["frames"], 1) / per_frame for s, v in stages.items()}
    summary.pop("output")
    return {
        "kind": "video",
        "machine": machine(),
        "export": export_dir,
        **summary,
        "ms_per_frame_staged": per_frame,
        "fps_staged": 1e3 / per_frame if per_frame > 0 else 0.0,
        "stage_share": split,
    }
