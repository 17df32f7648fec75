"""Five landmarks for images that come without them, from the MTCNN detector `leed-run` uses.

A face is cropped by a 5-point alignment (`leed_runtime.face.align.crop_face`); at run time
the points come from MTCNN, so training crops of a set without `landmarks.csv` (faces-tw, a
plain folder of photos) are aligned by the same detector, thresholds and weights
(`leed_train.mtcnn` in PyTorch through `leed_runtime.face.detect.MTCNNDetector`), never by
a centre crop that the runtime would not reproduce. The largest face of each image is used.
Results are cached per dataset folder (`$LEED_CACHE/landmarks-v1/`, keyed by each file's path,
size and mtime), so only new or changed images are detected again.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from leed_runtime.atomic import atomic_write_text
from leed_runtime.errors import LeedError
from leed_runtime.face.detect import MTCNNDetector
from leed_train.data.cache import default_cache_dir, read_rgb
from leed_train.data.names import Sample
from leed_train.mtcnn import OUTPUTS, load_mtcnn

CACHE_VERSION = 1


class TorchNet:
    """One MTCNN net in PyTorch behind the detector's net interface (`infer`: feeds -> outputs)."""

    max_batch = 512

    def __init__(self, name: str, module: torch.nn.Module) -> None:
        self.name, self.module = name, module

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with torch.no_grad():
            outs = self.module(torch.from_numpy(np.ascontiguousarray(feeds["image"])))
        return {k: v.numpy() for k, v in zip(OUTPUTS[self.name], outs, strict=True)}

    def activate(self) -> None:
        pass

    def deactivate(self) -> None:
        pass


def torch_detector() -> MTCNNDetector:
    """The runtime's MTCNN detector with its three nets run by PyTorch."""
    return MTCNNDetector.from_nets({name: TorchNet(name, module) for name, module in load_mtcnn().items()})


def largest_face_landmarks(detector: MTCNNDetector, image: np.ndarray) -> np.ndarray | None:
    """(5, 2) landmarks of the largest face in an RGB image, None when there is none."""
    faces = detector.detect(image)
    if not faces:
        return None
    areas = [(f.box[2] - f.box[0]) * (f.box[3] - f.box[1]) for f in faces]
    return np.asarray(faces[int(np.argmax(areas))].landmarks, dtype=np.float64)


def _file_key(path: Path) -> str:
    try:
        st = path.stat()
    except OSError:
        raise LeedError(f"{path}: image not found; run `leed-train DATA_DIR --check`") from None
    return f"{path.name}:{st.st_size}:{st.st_mtime_ns}"


def detect_missing_landmarks(samples: list[Sample], cache_dir: Path | None = None) -> list[str]:
    """Give every sample without landmarks those of MTCNN's largest face (cached); returns the
    problems to report (images where no face was found: those keep a centre crop)."""
    todo = [s for s in samples if s.landmarks is None]
    if not todo:
        return []
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    root = str(todo[0].path.resolve().parent)
    table_path = folder / f"landmarks-v{CACHE_VERSION}" / f"{hashlib.sha256(root.encode()).hexdigest()[:20]}.json"
    try:
        table = json.loads(table_path.read_text()) if table_path.is_file() else {}
    except (OSError, ValueError):
        table = {}  # an unreadable cache is rebuilt, never trusted
    keys = {id(s): f"{s.path.resolve()}|{_file_key(s.path)}" for s in todo if s.path.is_file()}
    todo = [s for s in todo if id(s) in keys]
    missing = [s for s in todo if keys[id(s)] not in table]
    if missing:
        detector = torch_detector()
        with torch.inference_mode():
            for s in tqdm(missing, desc="landmarks (MTCNN)", unit="img", leave=False, disable=len(missing) < 50):
                try:
                    image = read_rgb(s.path)
                except LeedError:
                    continue  # unreadable: `--check` lists it and training stops on it with its name
                points = largest_face_landmarks(detector, image)
                table[keys[id(s)]] = None if points is None else points.round(3).tolist()
        try:
            table_path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(table_path, json.dumps(table) + "\n")
        except OSError:
            pass  # a read-only cache only costs the detection next time
    problems = []
    for s in todo:
        if keys[id(s)] not in table:
            continue
        points = table[keys[id(s)]]
        if points is None:
            problems.append(f"{s.path.name}: no face found by MTCNN; it is centre-cropped (give landmarks.csv)")
        else:
            s.landmarks = np.asarray(points, dtype=np.float64).reshape(5, 2)
    return problems
