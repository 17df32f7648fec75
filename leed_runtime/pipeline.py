"""The editing pipeline: reference once, then per frame detect -> align -> edit -> paste.

    editor = Editor("exports/small")            # backend "auto": the best one present
    editor.set_reference(smile_rgb)             # detect + align + `reference` graph, cached
    out = editor(frame_rgb)                     # every face takes the reference's expression

Frame in = frame out: a frame without a face passes through unchanged (never dropped).
All faces of a frame go through the `edit` graph as one batch. On a GPU backend every
graph runs on one CUDA stream. Per-stage times are kept in `editor.timings`.
"""

from __future__ import annotations

import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from leed_runtime.backends.select import artifact_for_backend, choose_backend
from leed_runtime.backends.table import backend_kinds, backend_row, open_backend
from leed_runtime.cuda import Stream
from leed_runtime.errors import LeedError
from leed_runtime.face.align import apply_affine, crop_face, yaw_degrees
from leed_runtime.face.detect import MTCNNDetector, select_faces
from leed_runtime.face.paste import face_mask, keep_colourfulness, paste_back
from leed_runtime.face.smooth import LandmarkSmoother
from leed_runtime.image import to_rgb
from leed_runtime.manifest import Manifest, read_manifest

STAGES = ("decode", "detect", "align", "edit", "paste", "encode")
# The domain guard (exports with a `fit` graph): a face whose fit is at most FIT_FULL (as well
# reconstructed as 99% of the model's training faces) is edited fully; from there the edit fades
# out, and at FIT_NONE or more the face is passed through untouched instead of being smeared.
FIT_FULL, FIT_NONE = 1.0, 1.5
# The pose guard: the models are trained on frontal faces, so a face turned by at most YAW_FULL
# degrees (its yaw estimated from the five landmarks) is edited fully; from there the edit fades
# out, and a three-quarter or profile face (YAW_NONE or more) is passed through untouched instead
# of getting a frontal face pasted over it (doubled eyes, nose and mouth).
YAW_FULL, YAW_NONE = 20.0, 40.0


class Timings:
    """Milliseconds per stage, per frame; summarised as mean / p50 / p99."""

    def __init__(self) -> None:
        self.ms: dict[str, list[float]] = defaultdict(list)

    @contextmanager
    def __call__(self, stage: str):  # noqa: ANN204 - a context manager
        start = time.perf_counter()
        try:
            yield
        finally:
            self.ms[stage].append((time.perf_counter() - start) * 1e3)

    def add(self, stage: str, ms: float) -> None:
        self.ms[stage].append(ms)

    def summary(self) -> dict[str, dict[str, float]]:
        return {
            s: {
                "mean": float(np.mean(v)),
                "p50": float(np.percentile(v, 50)),
                "p99": float(np.percentile(v, 99)),
                "count": len(v),
            }
            for s in STAGES
            if (v := self.ms.get(s))
        }


class Editor:
    """Reference once, then `editor(frame) -> frame` (RGB uint8)."""

    def __init__(
        self,
        model_dir: Path | str,
        backend: str = "auto",
        alpha: float = 1.0,
        max_faces: int = 4,
        fps: float = 30.0,
        smooth: bool = True,
        detect_every: int = 1,
        graph_options: dict[str, Any] | None = None,
    ) -> None:
        """`graph_options`: backend options for the face graphs (reference, edit, fit), e.g.
        {"cuda_graph": True, "prefer_nhwc": True} on onnxruntime-cuda; a backend that does not
        take one refuses it naming the kinds that do. The detector never gets them (P-net's
        image sizes change from frame to frame)."""
        self.folder = Path(model_dir)
        self.manifest = read_manifest(self.folder)  # each backend verifies the file it loads
        self.kind, self.reason = choose_backend(backend, self.folder, self.manifest, "edit")
        self.stream = None
        options: dict[str, Any] = {}
        if backend_row(self.kind).uses_cuda:  # one CUDA stream for every graph of the pipeline
            self.stream = Stream()
            options["stream"] = self.stream
        detector_kind = detector_backend(self.kind, self.folder, self.manifest)
        self.detector = MTCNNDetector(
            self.folder,
            self.manifest,
            backend=detector_kind,
            backend_options=options if backend_row(detector_kind).uses_cuda else {},
        )
        faces = {**options, **(graph_options or {})}
        self._reference = open_backend(self.kind, self.folder, self.manifest, self._graph("reference"), **faces)
        self._edit = open_backend(self.kind, self.folder, self.manifest, self._graph("edit"), **faces)
        self._fit = (
            open_backend(self.kind, self.folder, self.manifest, self._graph("fit"), **faces)
            if "fit" in self.manifest.artifacts
            else None
        )
        for backend in (self._reference, self._edit, self._fit):
            if backend is not None:
                backend.activate()
        self.size = int(self.manifest.image["size"])
        self.alpha = float(alpha)
        self.max_faces = max_faces
        self.smoother = LandmarkSmoother(fps) if smooth else None
        self.detect_every = max(1, int(detect_every))
        self._faces: list = []  # the last frame's faces, tracked between full detections
        self._detected = False  # whether the last `_find_faces` ran a full detection
        self._weights: np.ndarray = np.ones(0, np.float32)  # domain-guard edit weight per face
        self.faces_faded = self.faces_passed = 0  # faces the domain guard edited less / not at all
        self.faces_turned_faded = self.faces_turned_passed = 0  # the same, for the pose guard
        self.dexp: np.ndarray | None = None
        self.timings = Timings()
        self.frames = self.faces = self.frames_without_face = 0

    def _graph(self, name: str) -> str:
        """The artifact that serves graph `name` on this backend (engine, FP16 or FP32 ONNX)."""
        return artifact_for_backend(self.kind, self.manifest, name)

    # -- reference ------------------------------------------------------------------------------
    def encode_reference(self, image: np.ndarray, name: str = "reference") -> np.ndarray:
        """dexp (1, C, 8, 8) of the largest face in `image` (RGB)."""
        image = to_rgb(image, name)
        faces = self.detector.detect(image)
        if not faces:
            raise LeedError(f"{name}: no face found; use a photo where one face is clearly visible")
        face = select_faces(faces, 1, *image.shape[:2])[0]
        crop, _ = crop_face(image, face.landmarks, self.size)
        out = self._reference.infer({"reference": _to_input(crop[None])})
        return self._finite(np.array(out["dexp"], dtype=np.float32, copy=True), self._reference, name)

    def set_reference(self, image: np.ndarray | list[np.ndarray], weights: list[float] | None = None) -> np.ndarray:
        """Use this reference (or a weighted blend of several) for every following frame."""
        images = image if isinstance(image, list) else [image]
        self.dexp = blend_codes(
            [self.encode_reference(im, f"reference {i + 1}") for i, im in enumerate(images)], weights
        )
        return self.dexp

    # -- frames ---------------------------------------------------------------------------------
    def __call__(self, frame: np.ndarray, dexp: np.ndarray | None = None) -> np.ndarray:
        """Edit every face of `frame` (RGB uint8, modified in place and returned)."""
        dexp = self.dexp if dexp is None else dexp
        if dexp is None:
            raise LeedError("no reference set: call set_reference(image) first (leed-run: --ref)")
        self.frames += 1
        with self.timings("detect"):
            faces = self._find_faces(frame)
        if not faces:
            self.frames_without_face += 1
            if self.smoother is not None:
                self.smoother([])
            return frame
        with self.timings("align"):
            landmarks = [f.landmarks for f in faces]
            if self.smoother is not None:
                landmarks = self.smoother(landmarks)
            crops, mats = zip(*(crop_face(frame, lm, self.size) for lm in landmarks), strict=True)
            masks = [face_mask(apply_affine(m, lm), self.size) for lm, m in zip(landmarks, mats, strict=True)]
        with self.timings("edit"):
            n = len(crops)
            out = self._edit.infer(
                {
                    "face": _to_input(np.stack(crops)),
                    "dexp": np.repeat(dexp, n, axis=0),
                    "alpha": np.full((n,), self.alpha, np.float32),
                }
            )
            edited = _to_uint8(self._finite(out["edited"], self._edit, f"frame {self.frames}"))
            weights = self._guard(np.stack(crops)) * self._pose_guard(landmarks)
        with self.timings("paste"):
            for e, c, m, mask, w in zip(edited, crops, mats, masks, weights, strict=True):
                if w <= 0:  # a face outside the model's domain or turned away stays exactly as it was
                    continue
                e = keep_colourfulness(e, c, mask)  # a black-and-white face stays black and white
                e = e if w >= 1 else (w * e + (1 - w) * c).round().astype(np.uint8)
                paste_back(frame, e, m, mask)
        self.faces += n
        return frame

    def _guard(self, crops: np.ndarray) -> np.ndarray:
        """Edit weight per face in [0, 1] from the `fit` graph (1 without one). Measured when
        faces were detected afresh and kept while they are tracked: a face's domain does not
        change between two detections, and the guard then costs one G+E+D pass per detection."""
        n = len(crops)
        if self._fit is None:
            return np.ones(n, np.float32)
        if self._detected or len(self._weights) != n:
            fit = self._finite(np.array(self._fit.infer({"face": _to_input(crops)})["fit"]), self._fit, "fit")
            self._weights = np.clip((FIT_NONE - fit.reshape(n)) / (FIT_NONE - FIT_FULL), 0.0, 1.0).astype(np.float32)
        self.faces_faded += int(((self._weights > 0) & (self._weights < 1)).sum())
        self.faces_passed += int((self._weights == 0).sum())
        return self._weights

    def _pose_guard(self, landmarks: list[np.ndarray]) -> np.ndarray:
        """Edit weight per face in [0, 1] from its yaw: 1 up to YAW_FULL degrees, 0 from YAW_NONE."""
        yaw = np.abs([yaw_degrees(lm) for lm in landmarks])
        weights = np.clip((YAW_NONE - yaw) / (YAW_NONE - YAW_FULL), 0.0, 1.0).astype(np.float32)
        self.faces_turned_faded += int(((weights > 0) & (weights < 1)).sum())
        self.faces_turned_passed += int((weights == 0).sum())
        return weights

    def _finite(self, values: np.ndarray, backend: Any, what: str) -> np.ndarray:
        """`values` if all finite; else a LeedError (never a garbage frame)."""
        if not np.isfinite(values).all():
            raise LeedError(
                f"{self.folder / backend.artifact.file}: returned NaN/Inf for {what} on {self.kind}; "
                f"check the export with `leed-export --check {self.folder}` or re-export it (without --fp16)"
            )
        return values

    def _find_faces(self, frame: np.ndarray) -> list:
        """Full detection every `detect_every` frames (and whenever a tracked face is lost), of
        which the `max_faces` most prominent are kept (`select_faces`); in between, O-net alone
        follows the last frame's faces."""
        tracked = []
        if self._faces and (self.frames - 1) % self.detect_every:
            tracked = _same_order(self.detector.track(frame, self._faces), self._faces)
        self._detected = not (self._faces and len(tracked) == len(self._faces))
        if self._detected:
            self._faces = select_faces(self.detector.detect(frame), self.max_faces, *frame.shape[:2])
        else:
            self._faces = tracked
        return self._faces

    def close(self) -> None:
        for b in (self._reference, self._edit, self._fit):
            if b is None:
                continue
            b.deactivate()
        self.detector.close()

    def __enter__(self) -> Editor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def detector_backend(kind: str, folder: Path, manifest: Manifest) -> str:
    """The backend for the MTCNN graphs: the pipeline's own when it runs ONNX graphs; for engine
    backends (TensorRT, TensorRT-RTX), which the export builds no detector engines for (P-net's
    input size changes with every pyramid level), the best onnxruntime that runs here, CUDA when
    it can, on the pipeline's stream."""
    if backend_row(kind).format == "onnx" and backend_row(kind).detector:
        return kind
    for onnx_kind in (k for k in backend_kinds() if backend_row(k).format == "onnx" and backend_row(k).detector):
        try:
            return choose_backend(onnx_kind, folder, manifest, "pnet")[0]
        except LeedError:
            continue
    return "onnxruntime-cpu"


def _same_order(faces: list, previous: list) -> list:
    """`faces` reordered so each takes the place of the previous face nearest to it (tracking
    keeps per-face state, such as the guard's weight, with its face)."""
    if len(faces) != len(previous):
        return faces
    centre = [np.array([(f.box[0] + f.box[2]) / 2, (f.box[1] + f.box[3]) / 2]) for f in faces]
    out, free = [], list(range(len(faces)))
    for p in previous:
        c = np.array([(p.box[0] + p.box[2]) / 2, (p.box[1] + p.box[3]) / 2])
        k = min(free, key=lambda i: float(np.linalg.norm(centre[i] - c)))
        out.append(faces[k])
        free.remove(k)
    return out


def blend_codes(codes: list[np.ndarray], weights: list[float] | None = None) -> np.ndarray:
    """Weighted mean of reference codes (1, C, 8, 8) each -> (1, C, 8, 8)."""
    w = check_weights(weights if weights is not None else [1.0] * len(codes), len(codes))
    return np.tensordot(w, np.concatenate(codes), axes=1)[None].astype(np.float32)


def check_weights(weights: list[float], count: int) -> np.ndarray:
    """`weights` scaled to sum 1 (float32) when there are `count` of them, finite and non-negative
    with a positive sum; else a one-line LeedError naming --ref-weights."""
    w = np.asarray(weights, np.float64)
    if len(w) != count or not np.isfinite(w).all() or (w < 0).any() or not 0 < w.sum() < np.inf:
        shown = ",".join(f"{x:g}" for x in w)
        raise LeedError(
            f"--ref-weights {shown}: give one finite, non-negative number per --ref ({count} here), "
            f"not all 0 (e.g. {','.join(['1'] * count)})"
        )
    return (w / w.sum()).astype(np.float32)


def _to_input(crops: np.ndarray) -> np.ndarray:
    """uint8 (B, H, W, 3) RGB -> float32 (B, 3, H, W) in [-1, 1] (the manifest's image spec)."""
    return np.ascontiguousarray(crops.transpose(0, 3, 1, 2), dtype=np.float32) / 127.5 - 1.0


def _to_uint8(images: np.ndarray) -> np.ndarray:
    """float (B, 3, H, W) in [-1, 1] -> uint8 (B, H, W, 3)."""
    x = np.asarray(images, dtype=np.float32).transpose(0, 2, 3, 1)
    return np.clip((x + 1.0) * 127.5 + 0.5, 0, 255).astype(np.uint8)
