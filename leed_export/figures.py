"""PNG figures of `leed-eval`, drawn with OpenCV: labelled image grids (Figs. 3, 5, 7, 11) and
t-SNE scatter panels (Fig. 4)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from leed_runtime.atomic import atomic_write_bytes

FONT = cv2.FONT_HERSHEY_SIMPLEX
LABEL_W = 96
HEAD_H = 18
# Eight distinguishable colours (RGB), one per expression.
PALETTE = (
    (230, 25, 75),
    (245, 130, 48),
    (60, 180, 75),
    (145, 30, 180),
    (255, 200, 0),
    (128, 128, 128),
    (0, 130, 200),
    (240, 50, 230),
)


def to_uint8(images: torch.Tensor | np.ndarray) -> np.ndarray:
    """float (N,3,H,W) in [-1,1] -> uint8 (N,H,W,3); uint8 NHWC passes through."""
    if isinstance(images, np.ndarray) and images.dtype == np.uint8:
        return images
    t = torch.as_tensor(images).detach().float().clamp(-1, 1)
    return ((t + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()


def write_png(path: Path, rgb: np.ndarray) -> Path:
    """Encode an RGB uint8 image as PNG and write it atomically."""
    ok, data = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError(f"PNG encoding failed for {path}")
    atomic_write_bytes(Path(path), data.tobytes())
    return Path(path)


def _text(canvas: np.ndarray, text: str, x: int, y: int, scale: float = 0.38) -> None:
    cv2.putText(canvas, text, (x, y), FONT, scale, (0, 0, 0), 1, cv2.LINE_AA)


def image_grid(path: Path, rows: list[tuple[str, list[np.ndarray | None]]], columns: list[str], tile: int = 96) -> Path:
    """A labelled grid: one (label, tiles) per row, a header of column names; None tiles are blank."""
    n_cols = max(len(columns), *(len(r[1]) for r in rows))
    canvas = np.full((HEAD_H + len(rows) * tile, LABEL_W + n_cols * tile, 3), 255, np.uint8)
    for j, name in enumerate(columns):
        _text(canvas, name[:12], LABEL_W + j * tile + 3, 13)
    for i, (label, tiles) in enumerate(rows):
        y = HEAD_H + i * tile
        _text(canvas, label[:14], 4, y + tile // 2)
        for j, image in enumerate(tiles):
            if image is not None:
                canvas[y : y + tile, LABEL_W + j * tile : LABEL_W + (j + 1) * tile] = cv2.resize(
                    image, (tile, tile), interpolation=cv2.INTER_AREA
                )
    return write_png(path, canvas)


def scatter_panels(
    path: Path, panels: dict[str, np.ndarray], labels: np.ndarray, names: list[str], size: int = 360
) -> Path:
    """Side-by-side 2-D scatter plots (one per panel), points coloured by class, with a legend."""
    legend_h = 22
    canvas = np.full((HEAD_H + size + legend_h, len(panels) * size, 3), 255, np.uint8)
    margin = 14
    for k, (title, points) in enumerate(panels.items()):
        x0 = k * size
        _text(canvas, title, x0 + 6, 13, 0.45)
        cv2.rectangle(canvas, (x0 + 4, HEAD_H), (x0 + size - 4, HEAD_H + size - 4), (200, 200, 200), 1)
        lo, hi = points.min(0), points.max(0)
        scaled = (points - lo) / np.maximum(hi - lo, 1e-9) * (size - 2 * margin) + margin
        for (px, py), label in zip(scaled, labels, strict=True):
            cv2.circle(canvas, (int(x0 + px), int(HEAD_H + py)), 3, PALETTE[int(label) % len(PALETTE)], -1, cv2.LINE_AA)
    step = canvas.shape[1] // max(len(names), 1)
    for c, name in enumerate(names):
        x, y = c * step + 6, HEAD_H + size + 14
        cv2.circle(canvas, (x + 4, y - 4), 5, PALETTE[c % len(PALETTE)], -1, cv2.LINE_AA)
        _text(canvas, name, x + 12, y)
    return write_png(path, canvas)
