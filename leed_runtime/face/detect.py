"""MTCNN face detection (P-, R-, O-net graphs of an export folder) in numpy + OpenCV.

A port of facenet-pytorch 2.6.0's `detect_face` for one image: an image pyramid through
P-net, per-scale then global NMS, box regression, square boxes, R-net on 24x24 crops,
O-net on 48x48 crops with five landmarks, then a "Min" NMS. Crops go through each net in
batches. One deliberate difference: crops that leave the image are zero-padded, as in the
original MTCNN, instead of clipped and stretched, so faces on the frame border keep their
proportions and their landmarks (decoded relative to the whole box) stay right.

Boxes are x1, y1, x2, y2 in pixels; landmarks are (5, 2) x, y in MTCNN order: left eye,
right eye, nose, mouth left, mouth right ("left" = image left).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from leed_runtime.backends.base import Backend
from leed_runtime.backends.table import backend_row, open_backend
from leed_runtime.errors import LeedError
from leed_runtime.image import to_rgb
from leed_runtime.manifest import DETECTOR_GRAPHS, Manifest

NETS = DETECTOR_GRAPHS
DEFAULT_MAX_BATCH = 512  # as facenet-pytorch, for backends that state no limit


@dataclass
class Face:
    """One detection: box (4,) x1, y1, x2, y2; score in [0, 1]; landmarks (5, 2) x, y."""

    box: np.ndarray
    score: float
    landmarks: np.ndarray


def select_faces(faces: list[Face], count: int, height: int, width: int) -> list[Face]:
    """The `count` most prominent faces of a `width` x `height` frame, most prominent first:
    the largest, and of two as large the nearer to the frame's centre (a face in a corner
    counts half its area). Not the most confident: a big foreground face always wins over a
    small background detection, whatever their scores."""
    half_diagonal = max(float(np.hypot(width, height)) / 2, 1.0)

    def prominence(face: Face) -> float:
        x1, y1, x2, y2 = (float(v) for v in face.box)
        off_centre = float(np.hypot((x1 + x2 - width) / 2, (y1 + y2 - height) / 2)) / half_diagonal
        return max(x2 - x1, 0.0) * max(y2 - y1, 0.0) * (1.0 - 0.5 * min(off_centre, 1.0))

    return sorted(faces, key=prominence, reverse=True)[:count]


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float, method: str = "union") -> np.ndarray:
    """Greedy NMS, indices kept in decreasing score order.

    "union": IoU with areas (x2 - x1) * (y2 - y1), as torchvision's nms; "min": overlap over
    the smaller area with +1 pixel sizes, as facenet-pytorch's `nms_numpy(..., 'Min')`.
    """
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    one = 1.0 if method == "min" else 0.0
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    area = (x2 - x1 + one) * (y2 - y1 + one)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + one)
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + one)
        inter = w * h
        denom = np.minimum(area[i], area[rest]) if method == "min" else area[i] + area[rest] - inter
        overlap = np.divide(inter, denom, out=np.zeros_like(inter), where=denom > 0)
        order = rest[overlap <= threshold]
    return np.asarray(keep, dtype=np.int64)


def square(boxes: np.ndarray) -> np.ndarray:
    """facenet-pytorch's `rerec`: grow each box to a square about its centre."""
    boxes = boxes.copy()
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    side = np.maximum(w, h)
    boxes[:, 0] += w * 0.5 - side * 0.5
    boxes[:, 1] += h * 0.5 - side * 0.5
    boxes[:, 2:4] = boxes[:, 0:2] + side[:, None]
    return boxes


def regress(boxes: np.ndarray, reg: np.ndarray) -> np.ndarray:
    """facenet-pytorch's `bbreg`: shift the corners by reg times the +1-pixel box size."""
    boxes = boxes.copy()
    w = boxes[:, 2] - boxes[:, 0] + 1
    h = boxes[:, 3] - boxes[:, 1] + 1
    boxes[:, :4] += reg * np.stack([w, h, w, h], axis=1)
    return boxes


def normalise(images: np.ndarray) -> np.ndarray:
    """(N,H,W,3) float RGB 0-255 -> MTCNN's NCHW input, (x - 127.5) / 128."""
    return np.ascontiguousarray(((images - 127.5) * 0.0078125).transpose(0, 3, 1, 2), dtype=np.float32)


class MTCNNDetector:
    """Faces in RGB images through the `pnet`, `rnet`, `onet` graphs of an export folder.

    `min_face` is the smallest face side searched (pixels), `thresholds` the three nets'
    score thresholds and `factor` the pyramid's scale step, as in facenet-pytorch's MTCNN;
    `backend_options` go to `open_backend` (e.g. the pipeline's CUDA stream).
    Usable as a context manager; the graphs are activated on first use.
    """

    def __init__(
        self,
        folder: Path,
        manifest: Manifest,
        backend: str = "onnxruntime-cpu",
        min_face: int = 40,
        thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7),
        factor: float = 0.709,
        backend_options: dict[str, Any] | None = None,
    ) -> None:
        self._configure(min_face, thresholds, factor)
        options = dict(backend_options or {})
        if "conv_search" in backend_row(backend).options:
            # R-/O-net's batch is the candidates of each frame, P-net's input any image size: a new
            # shape almost every frame, so cuDNN's exhaustive search per shape would never pay
            options.setdefault("conv_search", "heuristic")
        self.nets: dict[str, Backend] = {
            name: open_backend(backend, Path(folder), manifest, name, **options) for name in NETS
        }
        # Crops per R-/O-net call: an engine's profile maximum, else the backend's own limit.
        self.max_batch = {
            name: (net.artifact.engine.profile.get("max") if net.artifact.engine else None)
            or getattr(net, "max_batch", DEFAULT_MAX_BATCH)
            for name, net in self.nets.items()
        }

    @classmethod
    def from_nets(
        cls,
        nets: dict[str, Any],
        min_face: int = 40,
        thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7),
        factor: float = 0.709,
    ) -> MTCNNDetector:
        """A detector on three given nets, each with `infer(feeds) -> outputs`, `activate()`,
        `deactivate()` and optionally `max_batch` (training runs PyTorch modules this way)."""
        detector = cls.__new__(cls)
        detector._configure(min_face, thresholds, factor)
        detector.nets = {name: nets[name] for name in NETS}
        detector.max_batch = {name: getattr(net, "max_batch", DEFAULT_MAX_BATCH) for name, net in nets.items()}
        return detector

    def _configure(self, min_face: int, thresholds: tuple[float, float, float], factor: float) -> None:
        if min_face < 12:
            raise LeedError(f"detector min_face must be at least 12 pixels (P-net's window), got {min_face}")
        if not 0.0 < factor < 1.0:
            raise LeedError(f"detector factor must be in (0, 1), got {factor}")
        if len(thresholds) != 3 or not all(0.0 <= t <= 1.0 for t in thresholds):
            raise LeedError(f"detector thresholds must be three numbers in [0, 1], got {thresholds}")
        self.min_face = min_face
        self.thresholds = tuple(float(t) for t in thresholds)
        self.factor = factor

    def __enter__(self) -> MTCNNDetector:
        self.activate()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def activate(self) -> None:
        for net in self.nets.values():
            net.activate()

    def close(self) -> None:
        for net in self.nets.values():
            net.deactivate()

    # -- pipeline ------------------------------------------------------------------------------
    def detect(self, image: np.ndarray) -> list[Face]:
        """Faces in a uint8 RGB (or grayscale, RGBA) image, highest score first; [] if none."""
        self.activate()
        img = to_rgb(image, "detect")  # uint8: only P-net's first level and each crop become float
        boxes = self._propose(img)
        if len(boxes):
            boxes = self._refine(img, boxes)
        if len(boxes):
            boxes, points = self._output(img, boxes)
        if not len(boxes):
            return []
        order = np.argsort(-boxes[:, 4], kind="stable")
        return [Face(box=boxes[i, :4].copy(), score=float(boxes[i, 4]), landmarks=points[i]) for i in order]

    def track(self, image: np.ndarray, previous: list[Face]) -> list[Face]:
        """Faces near `previous` ones (the last frame's), by O-net alone on their boxes: the
        cheap step between full detections in a video (MTCNN's usual tracking). A face O-net
        no longer accepts is dropped; callers run `detect` again when one is lost."""
        if not previous:
            return []
        self.activate()
        img = to_rgb(image, "detect")
        boxes = square(np.array([[*f.box, f.score] for f in previous], dtype=np.float32))
        boxes, points = self._output(img, boxes)
        order = np.argsort(-boxes[:, 4], kind="stable") if len(boxes) else []
        return [Face(box=boxes[i, :4].copy(), score=float(boxes[i, 4]), landmarks=points[i]) for i in order]

    def scales(self, height: int, width: int) -> list[float]:
        """The pyramid: P-net's 12-px window covers `min_face` first, then faces 1/factor larger."""
        scale, side, out = 12.0 / self.min_face, min(height, width) * 12.0 / self.min_face, []
        while side >= 12:
            out.append(scale)
            scale *= self.factor
            side *= self.factor
        return out

    def _propose(self, img: np.ndarray) -> np.ndarray:
        """Stage 1: P-net over the pyramid -> (N, 5) square candidate boxes x1, y1, x2, y2, score.
        Only the first level is resized from the full frame (at 720p most of detection's time
        went to resizing the full frame once per level)."""
        h, w = img.shape[:2]
        found = []
        base = None  # the first (largest) level; later levels are resized from it, not the full frame
        for scale in self.scales(h, w):
            size = (int(w * scale + 1), int(h * scale + 1))
            small = cv2.resize(img.astype(np.float32) if base is None else base, size, interpolation=cv2.INTER_AREA)
            base = small if base is None else base
            out = self.nets["pnet"].infer({"image": normalise(small[None])})
            prob, reg = out["prob"][0, 1], out["reg"][0]
            ys, xs = np.nonzero(prob >= self.thresholds[0])
            if not len(ys):
                continue
            cell = np.stack([xs, ys], axis=1).astype(np.float32)
            q1, q2 = np.floor((2 * cell + 1) / scale), np.floor((2 * cell + 12) / scale)
            cand = np.concatenate([q1, q2, prob[ys, xs, None], reg[:, ys, xs].T], axis=1)
            found.append(cand[nms(cand[:, :4], cand[:, 4], 0.5)])
        if not found:
            return np.zeros((0, 5), dtype=np.float32)
        boxes = np.concatenate(found)
        boxes = boxes[nms(boxes[:, :4], boxes[:, 4], 0.7)]
        size = np.stack([boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]] * 2, axis=1)
        return square(np.concatenate([boxes[:, :4] + boxes[:, 5:9] * size, boxes[:, 4:5]], axis=1))

    def _refine(self, img: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """Stage 2: R-net rescoring, NMS and regression of the candidates."""
        boxes, crops = self._crops(img, boxes, 24)
        if not len(boxes):
            return boxes
        out = self._run("rnet", crops)
        score = out["prob"][:, 1]
        keep = score > self.thresholds[1]
        boxes = np.concatenate([boxes[keep, :4], score[keep, None]], axis=1)
        reg = out["reg"][keep]
        pick = nms(boxes[:, :4], boxes[:, 4], 0.7)
        return square(regress(boxes[pick], reg[pick]))

    def _output(self, img: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Stage 3: O-net scores, final boxes and (N, 5, 2) landmarks."""
        boxes, crops = self._crops(img, boxes, 48)
        if not len(boxes):
            return boxes, np.zeros((0, 5, 2))
        out = self._run("onet", crops)
        score = out["prob"][:, 1]
        keep = score > self.thresholds[2]
        boxes = np.concatenate([boxes[keep, :4], score[keep, None]], axis=1)
        marks = out["landmarks"][keep]
        w = boxes[:, 2] - boxes[:, 0] + 1
        h = boxes[:, 3] - boxes[:, 1] + 1
        points = np.stack(
            [w[:, None] * marks[:, :5] + boxes[:, 0:1] - 1, h[:, None] * marks[:, 5:] + boxes[:, 1:2] - 1], axis=2
        )
        boxes = regress(boxes, out["reg"][keep])
        pick = nms(boxes[:, :4], boxes[:, 4], 0.7, method="min")
        return boxes[pick], points[pick].astype(np.float64)

    def _crops(self, img: np.ndarray, boxes: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
        """Zero-padded crops of the (truncated, 1-based inclusive) boxes, resized to `size`.

        Boxes with no pixel inside the image are dropped; returns the boxes kept and the
        normalised NCHW batch.
        """
        h, w = img.shape[:2]
        ib = np.trunc(boxes[:, :4]).astype(np.int64)
        inside = (
            (ib[:, 2] >= ib[:, 0])
            & (ib[:, 3] >= ib[:, 1])
            & (ib[:, 2] >= 1)
            & (ib[:, 3] >= 1)
            & (ib[:, 0] <= w)
            & (ib[:, 1] <= h)
        )
        boxes, ib = boxes[inside], ib[inside]
        crops = np.empty((len(ib), size, size, 3), dtype=np.float32)
        for k, (x1, y1, x2, y2) in enumerate(ib):
            sx1, sy1, sx2, sy2 = max(x1, 1), max(y1, 1), min(x2, w), min(y2, h)
            region = img[sy1 - 1 : sy2, sx1 - 1 : sx2].astype(np.float32)  # float, as the nets were trained
            if (sx1, sy1, sx2, sy2) != (x1, y1, x2, y2):  # a box over the edge: zero-padded
                tile = np.zeros((y2 - y1 + 1, x2 - x1 + 1, 3), dtype=np.float32)
                tile[sy1 - y1 : sy2 - y1 + 1, sx1 - x1 : sx2 - x1 + 1] = region
                region = tile
            crops[k] = cv2.resize(region, (size, size), interpolation=cv2.INTER_AREA)
        return boxes, normalise(crops)

    def _run(self, name: str, batch: np.ndarray) -> dict[str, np.ndarray]:
        """One net over a batch of crops, in chunks the backend accepts; outputs copied."""
        step = self.max_batch[name]
        parts = [
            {k: np.array(v) for k, v in self.nets[name].infer({"image": batch[i : i + step]}).items()}
            for i in range(0, len(batch), step)
        ]
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
