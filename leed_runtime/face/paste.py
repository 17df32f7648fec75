"""Paste an edited crop back into its frame: the inverse of the alignment warp, blended
with a feathered mask of the face built in crop space from the face's own five landmarks
(so it follows the face's pose, scale and proportions and stays off hair, neck and shirt)."""

from __future__ import annotations

import cv2
import numpy as np

from leed_runtime.face.align import CROP_SIZE, apply_affine, invert_affine, template

# The face's outline in units of the landmarks (measured on the real clip samples/real/talk.mp4
# and the references of samples/real): x across, in eye distances from the eyes' midpoint (upper
# half) or the mouth's (lower half); y down, in eye-to-mouth distances from the same point.
_UPPER = ((-1.0, 0.0), (-0.8, -0.55), (0.0, -0.7), (0.8, -0.55), (1.0, 0.0))  # temples, brows, forehead
_LOWER = ((-0.85, 0.0), (-0.55, 0.4), (0.0, 0.5), (0.55, 0.4), (0.85, 0.0))  # cheeks, jaw, chin


def face_outline(points: np.ndarray) -> np.ndarray:
    """(10, 2) polygon around the face (forehead, temples, cheeks, jaw, chin) from its five
    landmarks (MTCNN order, any pose in the image plane, pixels)."""
    left_eye, right_eye, _, mouth_left, mouth_right = np.asarray(points, dtype=np.float64).reshape(5, 2)
    across = right_eye - left_eye
    eye_distance = max(float(np.hypot(*across)), 1e-6)
    across = across / eye_distance
    down = np.array([-across[1], across[0]])
    eyes, mouth = (left_eye + right_eye) / 2, (mouth_left + mouth_right) / 2
    # an eye-to-mouth distance outside 0.6-2 eye distances is a landmark error, not a face
    height = float(np.clip(np.dot(mouth - eyes, down), 0.6 * eye_distance, 2.0 * eye_distance))
    upper = [eyes + x * eye_distance * across + y * height * down for x, y in _UPPER]
    lower = [mouth + x * eye_distance * across + y * height * down for x, y in _LOWER]
    return np.array(upper + lower)


def face_mask(points: np.ndarray, size: int = CROP_SIZE, feather: float = 0.03) -> np.ndarray:
    """Float32 (size, size) in [0, 1]: the face outline of these five landmarks (crop pixels)
    filled, its edge blurred by `feather` x size (0.5 on the outline), and exactly 0 on the
    crop's border so the warped crop never leaves a seam."""
    hull = cv2.convexHull(np.round(face_outline(points) * 16).astype(np.int32))
    mask = np.zeros((size, size), np.float32)
    cv2.fillConvexPoly(mask, hull, 1.0, cv2.LINE_AA, shift=4)
    mask = cv2.GaussianBlur(mask, (0, 0), sigmaX=max(feather * size, 0.5))
    ramp = np.clip(np.minimum(np.arange(size), np.arange(size)[::-1]) / 3.0, 0.0, 1.0).astype(np.float32)
    return np.clip(mask * ramp[:, None] * ramp[None, :], 0.0, 1.0)


def feather_mask(size: int = CROP_SIZE, feather: float = 0.03) -> np.ndarray:
    """`face_mask` of the template's landmarks: the face region of an aligned crop (brows to
    chin), what the paste blends for a face of average proportions."""
    return face_mask(template(size), size, feather)


def keep_colourfulness(edited: np.ndarray, original: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """`edited` (uint8 RGB crop) no more colourful than `original` over `mask`: its chroma
    (YCrCb's Cr, Cb about grey) scaled down to the original's mean, brightness untouched. A
    grey face stays exactly grey; an edit is never made more colourful than its input."""
    ycc = cv2.cvtColor(edited, cv2.COLOR_RGB2YCrCb).astype(np.float32)
    chroma = ycc[..., 1:] - 128.0
    weight = mask / max(float(mask.sum()), 1e-6)
    before = cv2.cvtColor(original, cv2.COLOR_RGB2YCrCb).astype(np.float32)[..., 1:] - 128.0
    colour_in = float((np.hypot(before[..., 0], before[..., 1]) * weight).sum())
    colour_out = float((np.hypot(chroma[..., 0], chroma[..., 1]) * weight).sum())
    if colour_out <= colour_in:
        return edited
    ycc[..., 1:] = 128.0 + chroma * (colour_in / colour_out)
    return cv2.cvtColor(np.clip(ycc + 0.5, 0, 255).astype(np.uint8), cv2.COLOR_YCrCb2RGB)


def paste_back(frame: np.ndarray, crop: np.ndarray, m: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Blend `crop` (the edited face, uint8 HxWx3 in crop space) into `frame` in place.

    `m` is the image->crop matrix `crop_face` returned, `mask` the crop-space blend weights
    (`face_mask` of the face's landmarks mapped through `m`). Only the face's bounding box is
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
