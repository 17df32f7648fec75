"""Accuracy gates (Polygraphy's comparator): per-output max and median absolute error, a
NaN/Inf check, and one PASSED/FAILED line with the numbers.

Errors are absolute. Images live in [-1, 1], so they are compared as they are; codes are
unbounded, so their error is divided by the reference's peak magnitude when that exceeds 1
(`scale`), which makes one tolerance fit every graph and every preset.

Tolerances:
- FP32 (ONNX Runtime vs PyTorch eval): max 1e-3, median 1e-4. One 8-bit pixel level is
  2/255 = 7.8e-3 in [-1, 1]. Measured on real crops of the tiny preset: max 3e-7 (extractor)
  .. 8e-5 (edit), 1.1e-4 for the five graphs chained (kernel reordering only), so 1e-3 has
  ~9x headroom and stays 8x below one visible level; real export bugs (wrong norm mode,
  layout, weights) give errors >> 1e-2.
- FP16 (ONNX Runtime FP16 graph vs PyTorch FP32): max 1e-1, median 5e-3. Measured on 8 real
  crops of the tiny preset: per graph max 4e-4 (interpolator) .. 4.6e-2 (edit), median
  5e-5 .. 1.6e-3; the five graphs chained: max 5.9e-2, median 2.2e-3. The median gate keeps
  the average drift under one 8-bit level; the max gate (a few pixels off by ~13 levels at
  most) has 1.7x headroom over the worst measurement and still catches what FP16 breaks for
  real (NaN/Inf, black or saturated frames: errors ~1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Tolerance:
    max_abs: float
    median_abs: float


FP32 = Tolerance(max_abs=1e-3, median_abs=1e-4)
FP16 = Tolerance(max_abs=1e-1, median_abs=5e-3)


@dataclass
class OutputStats:
    name: str
    max_abs: float
    median_abs: float
    scale: float  # errors were divided by this (peak |reference| when above 1, else 1)
    nonfinite: int  # NaN or Inf values in the candidate
    tolerance: Tolerance

    @property
    def passed(self) -> bool:
        return (
            self.nonfinite == 0
            and self.max_abs <= self.tolerance.max_abs
            and self.median_abs <= self.tolerance.median_abs
        )

    def line(self, label: str) -> str:
        status = "PASSED" if self.passed else "FAILED"
        nan = f" {self.nonfinite} NaN/Inf" if self.nonfinite else ""
        scaled = f" (/{self.scale:.3g})" if self.scale != 1.0 else ""
        return (
            f"{status} | {label} | output {self.name!r} | max abs {self.max_abs:.2e} (<= {self.tolerance.max_abs:.0e}) "
            f"median {self.median_abs:.2e} (<= {self.tolerance.median_abs:.0e}){scaled}{nan}"
        )


@dataclass
class Comparison:
    label: str
    outputs: list[OutputStats]

    @property
    def passed(self) -> bool:
        return all(o.passed for o in self.outputs)

    @property
    def max_abs(self) -> float:
        return max(o.max_abs for o in self.outputs)

    @property
    def median_abs(self) -> float:
        return max(o.median_abs for o in self.outputs)

    def lines(self) -> list[str]:
        return [o.line(self.label) for o in self.outputs]

    def record(self) -> dict[str, float]:
        """The numbers kept in the manifest."""
        tol = self.outputs[0].tolerance
        return {
            "max_abs": self.max_abs,
            "median_abs": self.median_abs,
            "tolerance_max_abs": tol.max_abs,
            "tolerance_median_abs": tol.median_abs,
            "nonfinite": float(sum(o.nonfinite for o in self.outputs)),
        }


def compare(
    reference: dict[str, np.ndarray], candidate: dict[str, np.ndarray], tolerance: Tolerance, label: str
) -> Comparison:
    """Per-output error stats of `candidate` against `reference` (same names, same shapes)."""
    if set(reference) != set(candidate):
        raise ValueError(f"{label}: outputs differ: {sorted(reference)} vs {sorted(candidate)}")
    stats = []
    for name in sorted(reference):
        ref = np.asarray(reference[name], dtype=np.float64)
        got = np.asarray(candidate[name], dtype=np.float64)
        if ref.shape != got.shape:
            raise ValueError(f"{label}: output {name!r} has shape {list(got.shape)}, expected {list(ref.shape)}")
        finite = np.isfinite(got)
        scale = max(1.0, float(np.abs(ref).max()))
        err = np.abs(np.where(finite, got, 0.0) - ref) / scale
        stats.append(
            OutputStats(
                name=name,
                max_abs=float(err.max()),
                median_abs=float(np.median(err)),
                scale=scale,
                nonfinite=int((~finite).sum()),
                tolerance=tolerance,
            )
        )
    return Comparison(label=label, outputs=stats)
