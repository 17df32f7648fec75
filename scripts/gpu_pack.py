"""`make gpu-pack`: what `scripts/gpu_check.sh` needs on a GPU machine that has only the repo,
written into the git-ignored folder `.gpu/` (carry it: the device tool's `carry: [".gpu"]`).

- `.gpu/faces-tw128/`: the real faces as aligned 128 px crops (JPEG, about 5 MB instead of
  26 MB) with a `landmarks.csv` holding the crop template's own five points, so `leed-train`
  re-aligns each crop onto itself; the file names keep the faces-tw layout (person, expression).
  Never committed: the photos' terms forbid redistributing them.
- `.gpu/torch/hub/checkpoints/`: the pretrained files (`leed_train.weights`), for TORCH_HOME.
"""

from __future__ import annotations

import csv
import shutil
import sys
from pathlib import Path

import cv2

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
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(
        f"gpu-pack: {len(samples)} crops and {len(list(hub.iterdir()))} weight files in {out} ({size / 2**20:.1f} MiB)"
    )


if __name__ == "__main__":
    main(*sys.argv[1:])
