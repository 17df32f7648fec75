"""Figures of `leed-eval`, drawn with OpenCV: labelled image grids (Figs. 3, 5, 7, 11), t-SNE
scatter panels (Fig. 4) and the real protocol's grid."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from leed_export.evaluate.config import EvalConfig
from leed_export.evaluate.data import EvalData, Pairs, as_tensor
from leed_export.evaluate.editors import Editor, run_edits
from leed_export.evaluate.metrics import subsample
from leed_runtime.atomic import atomic_write_bytes
from leed_train.data.names import EXPRESSIONS

ALPHAS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5)  # Fig. 7: interpolation and extrapolation
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


def _pick(data: EvalData, subject: str | None, expression: str, angle: str | None, exclude: str | None = None):
    """Index of a pool image of `subject` (or any subject but `exclude`) with `expression`,
    at `angle` when there is one, frontal gaze first."""
    found = [
        i
        for i, s in enumerate(data.pool)
        if s.expression == expression
        and (subject is None or s.subject == subject)
        and (exclude is None or s.subject != exclude)
    ]
    found.sort(key=lambda i: (data.pool[i].angle != angle, data.pool[i].gaze != "frontal", i))
    return found[0] if found else None


def transfer_grid(
    path: Path, editor: Editor, data: EvalData, inputs: list[int], ref_angle: str | None, alpha: float = 1.0
) -> Path:
    """Fig. 11 (and Fig. 5 for profile inputs): per input, a row of references (another subject,
    each expression), the edits at `alpha` and the ground truth."""
    rows: list[tuple[str, list]] = []
    for f in inputs:
        a = data.pool[f]
        refs = [_pick(data, None, e, ref_angle or a.angle, exclude=a.subject) for e in EXPRESSIONS]
        truths = [_pick(data, a.subject, e, a.angle) for e in EXPRESSIONS]
        truths = [t if t is not None and data.pool[t].angle == a.angle else None for t in truths]
        valid = [j for j, r in enumerate(refs) if r is not None]
        edit_row: list[np.ndarray | None] = [None] * len(EXPRESSIONS)
        if valid:
            edits = run_edits(editor, data.crops, np.full(len(valid), f), np.array([refs[j] for j in valid]), alpha)
            for j, image in zip(valid, to_uint8(edits), strict=True):
                edit_row[j] = image
        label = f"{a.subject} {a.angle or ''}".strip()
        rows += [
            ("references", [None] + [data.crops[r] if r is not None else None for r in refs]),
            (f"edit {label}", [data.crops[f], *edit_row]),
            ("ground truth", [None] + [data.crops[t] if t is not None else None for t in truths]),
        ]
    return image_grid(path, rows, ["input", *EXPRESSIONS])


def figure_inputs(data: EvalData, n: int, angles: tuple[str | None, ...]) -> list[int]:
    """Neutral (else any) frontal-gaze faces of different held-out subjects at the given angles."""
    chosen: list[int] = []
    subjects = sorted({s.subject for s in data.pool[: data.n_held]})
    for k, subject in enumerate(subjects * len(angles)):
        if len(chosen) >= n:
            break
        angle = angles[k % len(angles)]
        i = _pick(data, subject, "neutral", angle)
        if i is None:
            i = next((j for j in range(data.n_held) if data.pool[j].subject == subject), None)
        if i is not None and i not in chosen and (angle is None or data.pool[i].angle == angle):
            chosen.append(i)
    return chosen


def strips(path: Path, editor: Editor, data: EvalData, pairs: Pairs, n: int) -> Path:
    """Fig. 7: input, reference, edits at alpha 0 .. 1.5, ground truth (alpha 1)."""
    by_face = [np.flatnonzero(pairs.face == f) for f in dict.fromkeys(pairs.face.tolist())][:n]
    first = [int(rows[(3 * k) % len(rows)]) for k, rows in enumerate(by_face)]  # varied targets
    face = np.repeat(pairs.face[first], len(ALPHAS))
    ref = np.repeat(pairs.ref[first], len(ALPHAS))
    edits = to_uint8(run_edits(editor, data.crops, face, ref, np.tile(ALPHAS, len(first))))
    rows = []
    for k, p in enumerate(first):
        row = [data.crops[pairs.face[p]], data.crops[pairs.ref[p]], *edits[k * len(ALPHAS) : (k + 1) * len(ALPHAS)]]
        rows.append((f"to {EXPRESSIONS[pairs.target[p]]}", [*row, data.crops[pairs.truth[p]]]))
    return image_grid(path, rows, ["input", "reference", *(f"a={a:g}" for a in ALPHAS), "truth"])


def tsne_figure(path: Path, editor: Editor, data: EvalData, cfg: EvalConfig) -> Path:
    """Fig. 4: t-SNE of encoder, residual and extractor features, coloured by expression."""
    from sklearn.manifold import TSNE  # scikit-learn: heavy, and only this figure needs it

    idx = subsample(data.n_held, cfg.tsne_points, np.random.default_rng(cfg.seed + 4))
    labels = np.array([EXPRESSIONS.index(data.pool[i].expression) for i in idx])
    panels = {}
    for name, feats in editor.features(as_tensor(data.crops[idx])).items():
        perplexity = float(min(30.0, max(2.0, (len(idx) - 1) / 3)))
        panels[name] = TSNE(2, perplexity=perplexity, init="pca", random_state=cfg.seed).fit_transform(feats)
    return scatter_panels(path, panels, labels, list(EXPRESSIONS))


def tile_columns(path: Path, columns: list[list[np.ndarray]], quality: int = 90) -> None:
    """A JPEG of equal-sized uint8 RGB tiles, one list of tiles (top to bottom) per column
    (the real protocol's grid: input, reference, each model's edit, the person's own photo)."""
    image = np.concatenate([np.concatenate(tiles, axis=0) for tiles in columns], axis=1)
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if ok:
        path.write_bytes(data.tobytes())
