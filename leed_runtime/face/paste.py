"""Paste an edited crop back into its frame: the inverse of the alignment warp, blended
with a feathered mask built in crop space (so it follows the face's pose and scale)."""

from __future__ import annotations

import cv2
import numpy as np

from leed_runtime.face.align import CROP_SIZE, apply_affine, invert_affine, template


def feather_mask(size: int = CROP_SIZE, feather: float = 0.03) -> np.ndarray:
    """Float32 (size, size) in [0, 1]: an ellipse over the template's face (brows to chin),
    its edge blurred by `feather` x size, and exactly 0 on the crop's border so the warped
    crop never leaves a seam."""
    t = template(size)
    cx, cy = t[:, 0].mean(), (t[:2, 1].mean() + t[3:, 1].mean()) / 2 - 0.06 * size
    axes = (round(0.33 * size), round(0.375 * size))
    mask = np.zeros((size, size), np.float32)
    cv2.ellipse(mask, (round(cx), round(cy)), axes, 0, 0, 360, 1.0, -1, cv2.LINE_AA)
    mask = cv2.GaussianBlur(mask, (0, 0), sigmaX=max(feather * size, 0.5))
    ramp = np.clip(np.minimum(np.arange(size), np.arange(size)[::-1]) / 3.0, 0.0, 1.0).astype(np.float32)
    return np.clip(mask * ramp[:, None] * ramp[None, :], 0.0, 1.0)


def paste_back(frame: np.ndarray, crop: np.ndarray, m: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Blend `crop` (the edited face, uint8 HxWx3 in crop space) into `frame` in place.

    `m` is the image->crop matrix `crop_face` returned. Only the face's bounding box is
    warped, so the cost does not grow with the frame size. Returns `frame`.
    """
    size = crop.shape[0]
    corners = apply_affine(invert_affine(m), np.array([[0, 0], [size, 0], [0, size], [size, size]], float))
    h, w = frame.shape[:2]
    x0, y0 = np.floor(corners.min(0)).astype(int)
    x1, y1 = np.ceil(corners.max(0)).astype(int)
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if x1 <= x0 or y1 <= y0:
        return frame
    # crop <- ROI pixel (x, y) = m @ (x + x0, y + y0): shift the matrix to the ROI's origin
    m_roi = np.asarray(m, np.float64).copy()
    m_roi[:, 2] += m_roi[:, :2] @ np.array([x0, y0], float)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    roi_size = (x1 - x0, y1 - y0)
    face = cv2.warpAffine(crop, m_roi, roi_size, flags=flags, borderMode=cv2.BORDER_REPLICATE)
    alpha = cv2.warpAffine(mask, m_roi, roi_size, flags=flags, borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    roi = frame[y0:y1, x0:x1]
    blended = roi.astype(np.float32) + alpha[..., None] * (face.astype(np.float32) - roi)
    roi[...] = np.clip(blended + 0.5, 0, 255).astype(np.uint8)
    return frame
