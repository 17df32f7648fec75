"""Check the C++ sample against Python: run the same crops through the export's `reference` and
`edit` graphs with onnxruntime (the runtime's onnxruntime-cpu backend) and compare with `leed_edit_image --raw OUT.bin`.

    python samples/cpp/compare.py EXPORT_DIR FACE_CROP.png REF_CROP.png ALPHA OUT.bin [--tolerance 1e-3]

Prints the max and mean abs error of the edited crop (range [-1, 1]) and exits 1 above the
tolerance. The default 1e-3 is ~1/8 of one 8-bit level (2/255); OpenCV's DNN module and
onnxruntime measured ~1e-5 apart on these graphs, so a real divergence (wrong color order,
scaling, binding by position) shows as errors of 1e-1 and more.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

from leed_runtime.backends.table import open_backend
from leed_runtime.manifest import read_manifest, verify


def to_input(path: Path, size: int, lo: float, hi: float) -> np.ndarray:
    """An 8-bit crop file -> (1, 3, size, size) float32 RGB in [lo, hi], as the runtime feeds it."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None or bgr.shape[:2] != (size, size):
        sys.exit(f"{path}: not a readable {size}x{size} image")
    rgb = bgr[:, :, ::-1].transpose(2, 0, 1)[None].astype(np.float32)
    return np.ascontiguousarray(lo + rgb * np.float32((hi - lo) / 255.0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("export_dir", type=Path)
    parser.add_argument("face", type=Path)
    parser.add_argument("reference", type=Path)
    parser.add_argument("alpha", type=float)
    parser.add_argument("raw", type=Path, help="leed_edit_image --raw output (float32 NCHW)")
    parser.add_argument("--tolerance", type=float, default=1e-3)
    args = parser.parse_args()

    manifest = read_manifest(args.export_dir)
    # The artifacts leed_edit_image uses: the OpenCV variant where the export has one.
    reference, edit = (f"{n}.opencv" if f"{n}.opencv" in manifest.artifacts else n for n in ("reference", "edit"))
    verify(args.export_dir, manifest, [reference, edit])
    size = manifest.image["size"]
    lo, hi = manifest.image["range"]

    def run(name: str, feeds: dict[str, np.ndarray], output: str) -> np.ndarray:
        with open_backend("onnxruntime-cpu", args.export_dir, manifest, name) as backend:
            return np.array(backend.infer(feeds)[output])

    dexp = run(reference, {"reference": to_input(args.reference, size, lo, hi)}, "dexp")
    alpha = np.array([args.alpha], np.float32)
    if any(t.name == "alpha" for t in manifest.artifact(edit).inputs):
        feeds = {"face": to_input(args.face, size, lo, hi), "dexp": dexp, "alpha": alpha}
    else:  # the OpenCV variant takes alpha * dexp
        feeds = {"face": to_input(args.face, size, lo, hi), "dexp": alpha[0] * dexp}
    expected = run(edit, feeds, "edited")

    got = np.fromfile(args.raw, dtype=np.float32)
    if got.size != expected.size:
        sys.exit(f"{args.raw}: {got.size} floats, expected {expected.size} ({list(expected.shape)})")
    err = np.abs(got.reshape(expected.shape) - expected)
    print(
        f"C++ ({args.raw}) vs onnxruntime {ort.__version__} on {reference}, {edit}: "
        f"max abs error {err.max():.3g}, mean {err.mean():.3g} (tolerance {args.tolerance:g})"
    )
    if not err.max() <= args.tolerance:
        sys.exit(f"max abs error {err.max():.3g} is above the tolerance {args.tolerance:g}")


if __name__ == "__main__":
    main()
