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


MAX_PIXELS = 7680 * 4320  # 8K UHD: larger images and video frames are refused (detection would take minutes)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")  # what leed reads as photos


def check_pixels(width: int, height: int, name: str) -> None:
    """A one-line LeedError naming `name` when a `width` x `height` picture is larger than 8K."""
    if width * height > MAX_PIXELS:
        raise LeedError(
            f"{name}: {width}x{height} is larger than 8K ({MAX_PIXELS / 1e6:.0f} megapixels); downscale it first"
        )


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from a JPEG's frame header (SOFn), walking the marker segments before it."""
    i = 2
    while i + 9 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
        elif marker == 0x01 or 0xD0 <= marker <= 0xD8:  # segments without a length
            i += 2
        elif 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # SOF0-15, not DHT/JPG/DAC
            return int.from_bytes(data[i + 7 : i + 9], "big"), int.from_bytes(data[i + 5 : i + 7], "big")
        elif marker in (0xD9, 0xDA):  # end of image or scan data before any frame header
            return None
        else:
            i += 2 + int.from_bytes(data[i + 2 : i + 4], "big")
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from a WebP's first chunk (lossy VP8, lossless VP8L or extended VP8X)."""
    chunk = data[12:16]
    if chunk == b"VP8X" and len(data) >= 30:
        return 1 + int.from_bytes(data[24:27], "little"), 1 + int.from_bytes(data[27:30], "little")
    if chunk == b"VP8L" and len(data) >= 25:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 " and len(data) >= 30:
        return int.from_bytes(data[26:28], "little") & 0x3FFF, int.from_bytes(data[28:30], "little") & 0x3FFF
    return None


def encoded_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) read from the header of a PNG, JPEG, WebP or BMP, without decoding it;
    None for other formats (their size is checked once decoded)."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR" and len(data) >= 24:
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data.startswith(b"\xff\xd8"):
        return _jpeg_size(data)
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return _webp_size(data)
    if data.startswith(b"BM") and len(data) >= 26:
        if int.from_bytes(data[14:18], "little") == 12:  # OS/2 BITMAPCOREHEADER: 16-bit sizes
            return int.from_bytes(data[18:20], "little"), int.from_bytes(data[20:22], "little")
        width = int.from_bytes(data[18:22], "little", signed=True)
        return abs(width), abs(int.from_bytes(data[22:26], "little", signed=True))  # < 0: top-down rows
    return None


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
    size = encoded_size(data)
    if size is not None:  # before decoding: a 20000x20000 header alone would cost 2.3 GB and 16 s
        check_pixels(*size, name)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH)
    if image is None:
        raise LeedError(f"{name}: not a readable image (truncated or not JPEG/PNG/...)")
    check_pixels(image.shape[1], image.shape[0], name)
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
