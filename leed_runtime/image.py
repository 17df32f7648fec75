"""Image arrays as every runtime stage takes them: RGB uint8 (H, W, 3)."""

from __future__ import annotations

import cv2
import numpy as np

from leed_runtime.errors import LeedError


def to_rgb(image: np.ndarray, name: str = "image") -> np.ndarray:
    """Grayscale (H, W) or (H, W, 1), RGB, RGBA, 8- or 16-bit -> contiguous RGB uint8 (H, W, 3)."""
    image = np.asarray(image)
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    if image.dtype != np.uint8:
        raise LeedError(f"{name}: image must be uint8 (0-255) or 16-bit, got {image.dtype}")
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        return cv2.cvtColor(image.reshape(image.shape[:2]), cv2.COLOR_GRAY2RGB)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_RGBA2RGB)
    if image.ndim == 3 and image.shape[2] == 3:
        return np.ascontiguousarray(image)
    raise LeedError(f"{name}: image must be (H,W), (H,W,3) RGB or (H,W,4) RGBA, got shape {list(image.shape)}")
