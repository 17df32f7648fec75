"""`--strip`: one PNG that shows what `leed-run` did at a glance.

Left column: the reference photo(s); then a few frames spread over the video, input on
top, edited below. Frames are picked before the run (evenly spaced over the known frame
count) and kept as copies, so the strip costs a handful of resizes, not a second pass.
"""

from __future__ import annotations

import numpy as np

TILE = 256  # height of every tile in pixels


def pick_frames(total: int | None, count: int) -> set[int]:
    """Indices of `count` frames spread evenly over `total` (the first `count` when unknown)."""
    if count <= 0:
        return set()
    if not total:
        return set(range(count))
    return {int(round(x)) for x in np.linspace(total * 0.1, total * 0.9, num=min(count, total))}


def _tile(image: np.ndarray, height: int = TILE) -> np.ndarray:
    import cv2

    h, w = image.shape[:2]
    return cv2.resize(image, (max(1, round(w * height / h)), height), interpolation=cv2.INTER_AREA)


def _column(top: np.ndarray, bottom: np.ndarray, gap: int) -> np.ndarray:
    width = max(top.shape[1], bottom.shape[1])
    out = np.full((top.shape[0] + gap + bottom.shape[0], width, 3), 255, np.uint8)
    out[: top.shape[0], : top.shape[1]] = top
    out[top.shape[0] + gap :, : bottom.shape[1]] = bottom
    return out


def contact_strip(refs: list[np.ndarray], pairs: list[tuple[np.ndarray, np.ndarray]], gap: int = 6) -> np.ndarray:
    """RGB uint8 strip: reference column (stacked, squeezed into two tiles' height) then one
    (input over edited) column per pair, white gaps between."""
    ref_h = (2 * TILE + gap - gap * (len(refs) - 1)) // max(1, len(refs))
    ref_tiles = [_tile(r, ref_h) for r in refs]
    ref_col = ref_tiles[0]
    for t in ref_tiles[1:]:
        ref_col = _column(ref_col, t, gap)
    columns = [ref_col] + [_column(_tile(a), _tile(b), gap) for a, b in pairs]
    height = max(c.shape[0] for c in columns)
    width = sum(c.shape[1] for c in columns) + gap * (len(columns) - 1)
    out = np.full((height, width, 3), 255, np.uint8)
    x = 0
    for c in columns:
        out[: c.shape[0], x : x + c.shape[1]] = c
        x += c.shape[1] + gap
    return out
