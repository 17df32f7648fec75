"""Landmarks smoothed over time so the crop, and so the face, does not jitter.

The One Euro filter (Casiez et al., CHI 2012): a low-pass whose cutoff rises with speed,
so a still face is steady and a moving one does not lag. One filter per tracked face;
faces are matched frame to frame by the nearest landmark centre.
"""

from __future__ import annotations

import math

import numpy as np


class OneEuro:
    """One Euro filter over an array of any shape, sampled at `rate` Hz."""

    def __init__(self, rate: float, min_cutoff: float = 1.0, beta: float = 0.05, d_cutoff: float = 1.0) -> None:
        self.rate, self.min_cutoff, self.beta, self.d_cutoff = rate, min_cutoff, beta, d_cutoff
        self.x: np.ndarray | None = None
        self.dx: np.ndarray | None = None

    def _alpha(self, cutoff: np.ndarray | float) -> np.ndarray | float:
        tau = 1.0 / (2 * math.pi * cutoff)
        return 1.0 / (1.0 + tau * self.rate)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float64)
        if self.x is None:
            self.x, self.dx = x.copy(), np.zeros_like(x)
            return x
        dx = (x - self.x) * self.rate
        self.dx = self.dx + self._alpha(self.d_cutoff) * (dx - self.dx)
        cutoff = self.min_cutoff + self.beta * np.abs(self.dx)
        self.x = self.x + self._alpha(cutoff) * (x - self.x)
        return self.x.copy()


class LandmarkSmoother:
    """Smooth the 5-point landmarks of several faces across frames."""

    def __init__(self, fps: float, min_cutoff: float = 1.0, beta: float = 0.05, max_jump: float = 2.0) -> None:
        self.fps, self.min_cutoff, self.beta, self.max_jump = fps, min_cutoff, beta, max_jump
        self.tracks: list[tuple[np.ndarray, OneEuro]] = []

    def __call__(self, faces: list[np.ndarray]) -> list[np.ndarray]:
        """Landmarks (5x2) per face this frame -> smoothed landmarks, same order. A face whose
        centre moved more than `max_jump` x its eye distance starts a new track."""
        out, tracks = [], []
        free = list(range(len(self.tracks)))
        for lm in faces:
            centre, scale = lm.mean(0), max(np.linalg.norm(lm[1] - lm[0]), 1.0)
            best = min(free, key=lambda i: np.linalg.norm(self.tracks[i][0] - centre), default=None)
            if best is not None and np.linalg.norm(self.tracks[best][0] - centre) <= self.max_jump * scale:
                free.remove(best)
                filt = self.tracks[best][1]
            else:
                filt = OneEuro(self.fps, self.min_cutoff, self.beta)
            smoothed = filt(lm)
            out.append(smoothed)
            tracks.append((smoothed.mean(0), filt))
        self.tracks = tracks
        return out
