"""Images as every stage takes them, RGB uint8 (H, W, 3): conversion, decoding with its limits,
reading and atomic writing. The one owner of image I/O for training, export and runtime."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from leed_runtime.atomic import atomic_write_bytes
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


MAX_PIXELS = 7680 * 4320  # 8K UHD: larger images are refused (detection would take minutes)


def truncated(data: bytes) -> bool:
    """A JPEG with no end marker after its last scan, or a PNG with no IEND chunk: a file cut
    short, which decoders would otherwise fill with grey."""
    if data.startswith(b"\xff\xd8"):
        return data.find(b"\xff\xd9", max(data.rfind(b"\xff\xda"), 0)) < 0
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return data.rfind(b"IEND") < 0
    return False


def decode_image(data: bytes, name: str) -> np.ndarray:
    """RGB uint8 of an encoded image (grayscale, alpha and 16-bit converted, EXIF rotation
    applied); one-line LeedError naming `name` when it is empty, truncated, unreadable or huge."""
    if not data:
        raise LeedError(f"{name}: missing or empty image")
    if truncated(data):
        raise LeedError(f"{name}: truncated image (the file ends early); copy or download it again")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH)
    if image is None:
        raise LeedError(f"{name}: not a readable image (truncated or not JPEG/PNG/...)")
    height, width = image.shape[:2]
    if height * width > MAX_PIXELS:
        raise LeedError(
            f"{name}: {width}x{height} is larger than 8K ({MAX_PIXELS / 1e6:.0f} megapixels); downscale it first"
        )
    if image.dtype.kind == "f":  # HDR/EXR decode to float: clip to 8 bits as before
        image = np.clip(image, 0, 255).astype(np.uint8)
    return to_rgb(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), name)


def read_image(path: str | Path) -> np.ndarray:
    """RGB uint8 of an image file; one-line error when it is missing or unreadable."""
    path = Path(path)
    return decode_image(path.read_bytes() if path.is_file() else b"", str(path))


def write_image(path: str | Path, rgb: np.ndarray) -> None:
    """Encode RGB uint8 by the suffix (.png, .jpg, ...) and write it atomically."""
    path = Path(path)
    ok, data = cv2.imencode(path.suffix or ".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise LeedError(f"{path}: cannot encode an image with this suffix; use .png or .jpg")
    atomic_write_bytes(path, data.tobytes())
