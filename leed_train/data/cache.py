"""Face crops, computed once with `crop_face` and kept as one memory-mapped .npy per dataset.

The cache key hashes every image's path, size and mtime, its landmarks, the crop size and
the crop template, so editing, adding or removing an image (or changing the template)
makes a new cache file; nothing stale is ever read. Files are written atomically.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from tqdm import tqdm

from leed_runtime.atomic import atomic_write
from leed_runtime.errors import LeedError
from leed_runtime.face.align import CROP_SIZE, TEMPLATE_UNIT, crop_face
from leed_runtime.image import decode_image
from leed_train.data.names import LANDMARKS_FILE, Sample, landmarks_problem

TEMPLATE_VERSION = 1  # bump when crop_face changes in a way TEMPLATE_UNIT does not show


def default_cache_dir() -> Path:
    """`$LEED_CACHE`, else `~/.cache/leed/crops`; LeedError when LEED_CACHE names a file."""
    env = os.environ.get("LEED_CACHE")
    if env and os.path.exists(env) and not os.path.isdir(env):
        raise LeedError(f"LEED_CACHE={env} is a file, not a folder; point LEED_CACHE at a folder (or unset it)")
    return Path(env) if env else Path.home() / ".cache" / "leed" / "crops"


def _where(cache_dir: Path) -> str:
    """How a message names the cache folder and the setting that moves it."""
    return f"LEED_CACHE={cache_dir}" if os.environ.get("LEED_CACHE") else f"the crop cache {cache_dir} (LEED_CACHE)"


def read_rgb(path: Path) -> np.ndarray:
    """Decode an image file to uint8 RGB HxWx3; LeedError when it cannot be decoded."""
    try:
        return decode_image(path.read_bytes(), str(path))
    except OSError:
        raise LeedError(f"{path}: cannot read this image; fix or remove it") from None
    except LeedError as exc:
        raise LeedError(f"{exc}; fix or remove it; `leed-train DATA_DIR --check` lists every bad file") from None


class CropCache:
    """Aligned face crops of a list of samples, cached on disk."""

    def __init__(self, cache_dir: Path | None = None, size: int = CROP_SIZE) -> None:
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.size = size

    def key(self, samples: list[Sample]) -> str:
        """Hash of everything the crops depend on."""
        h = hashlib.sha256()
        h.update(f"v{TEMPLATE_VERSION}:{self.size}:".encode())
        h.update(TEMPLATE_UNIT.tobytes())
        for s in samples:
            try:
                st = s.path.stat()
            except OSError:
                raise LeedError(
                    f"{s.path}: image not found; run `leed-train DATA_DIR --check`, or delete the saved split"
                ) from None
            h.update(f"\n{s.path.resolve()}:{st.st_size}:{st.st_mtime_ns}:".encode())
            if s.landmarks is not None:
                h.update(np.asarray(s.landmarks, dtype=np.float64).tobytes())
        return h.hexdigest()

    def path_for(self, samples: list[Sample]) -> Path:
        """The .npy file that holds (or will hold) the crops of `samples`."""
        return self.cache_dir / f"crops{self.size}-{self.key(samples)[:32]}.npy"

    def crop(self, sample: Sample) -> np.ndarray:
        """One uint8 RGB crop: aligned with landmarks when known, else the centre crop;
        LeedError naming the file when its landmarks cannot align a face."""
        image = read_rgb(sample.path)
        if sample.landmarks is not None:
            why = landmarks_problem(sample.landmarks, image.shape[1], image.shape[0])
            if why:
                raise LeedError(
                    f"{sample.path}: {why}; fix or delete its row in {LANDMARKS_FILE} "
                    "(`leed-train DATA_DIR --check` lists every such file)"
                )
        return crop_face(image, sample.landmarks, self.size)[0]

    def load_crops(self, samples: list[Sample], workers: int = 0, progress: bool = True) -> np.ndarray:
        """(N, size, size, 3) uint8 RGB crops, memory-mapped from the cache (built on a miss)."""
        path = self.path_for(samples)
        shape = (len(samples), self.size, self.size, 3)
        if path.is_file():
            try:
                crops = np.load(path, mmap_mode="r")
                if crops.shape == shape and crops.dtype == np.uint8:
                    return crops
            except (OSError, ValueError):
                pass  # a damaged cache file is rebuilt below
        crops = np.empty(shape, dtype=np.uint8)
        bar = tqdm(total=len(samples), desc="cropping faces", unit="img", disable=not progress)
        with bar:
            if workers > 0:
                with ThreadPoolExecutor(max_workers=workers) as pool:
                    for i, crop in enumerate(pool.map(self.crop, samples)):
                        crops[i] = crop
                        bar.update()
            else:
                for i, s in enumerate(samples):
                    crops[i] = self.crop(s)
                    bar.update()
        try:
            atomic_write(path, lambda fh: np.save(fh, crops))
        except OSError as exc:
            raise LeedError(
                f"{_where(self.cache_dir)}: cannot write {path.name} ({exc.strerror or exc}); "
                "point LEED_CACHE at a writable folder with free space"
            ) from None
        return np.load(path, mmap_mode="r")
