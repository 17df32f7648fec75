"""5-point similarity alignment to LEED's crop template, and the fallback centre crop.

This is *the* preprocessing function of leed: `leed_train` crops training faces with
`crop_face`, and the runtime crops video faces with it too, so what the networks saw in
training is what they see in use. numpy + OpenCV only (no torch).

Landmark order (MTCNN's): left eye, right eye, nose tip, left mouth corner, right mouth
corner, where "left" means the smaller x in a frontal image (image left, the subject's
right). Coordinates are pixels, x then y.
"""

from __future__ import annotations

import cv2
import numpy as np

CROP_SIZE = 128
LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
# Column names of landmarks.csv files (leed-synth writes them, the loaders read them).
LANDMARK_COLUMNS = tuple(f"{name}_{axis}" for name in LANDMARK_NAMES for axis in "xy")

# The ArcFace 112x112 template (normalised), pulled 25% toward the centre so the crop also
# holds brows, forehead, chin and cheeks: expressions live there.
_ARCFACE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float64,
)
_SHRINK = 0.75
TEMPLATE_UNIT = 0.5 + (_ARCFACE_112 / 112.0 - 0.5) * _SHRINK


def template(size: int = CROP_SIZE) -> np.ndarray:
    """The five template points (5x2, float64) for a `size` x `size` crop."""
    return TEMPLATE_UNIT * size


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) mapping src -> dst.

    Umeyama (1991) closed form; returns a 2x3 float64 matrix for cv2.warpAffine.
    """
    src = np.asarray(src, dtype=np.float64).reshape(-1, 2)
    dst = np.asarray(dst, dtype=np.float64).reshape(-1, 2)
    if src.shape != dst.shape or len(src) < 2:
        raise ValueError(f"need matching point sets of >= 2 points, got {src.shape} and {dst.shape}")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s_c, d_c = src - mu_s, dst - mu_d
    cov = d_c.T @ s_c / len(src)
    u, sig, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[-1] = -1.0
    rot = u @ np.diag(d) @ vt
    var_s = (s_c**2).sum() / len(src)
    scale = (sig * d).sum() / var_s if var_s > 0 else 1.0
    m = np.zeros((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = mu_d - scale * rot @ mu_s
    return m


def invert_affine(m: np.ndarray) -> np.ndarray:
    """Inverse of a 2x3 affine matrix."""
    return cv2.invertAffineTransform(np.asarray(m, dtype=np.float64))


def apply_affine(m: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map Nx2 points through a 2x3 affine matrix."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return pts @ np.asarray(m)[:, :2].T + np.asarray(m)[:, 2]


def alignment_matrix(landmarks: np.ndarray, size: int = CROP_SIZE) -> np.ndarray:
    """2x3 matrix taking image pixels to crop pixels for these five landmarks."""
    return similarity_transform(np.asarray(landmarks).reshape(5, 2), template(size))


def center_crop_matrix(height: int, width: int, size: int = CROP_SIZE) -> np.ndarray:
    """StarGAN's CenterCrop(min side) then Resize(size), as a 2x3 matrix."""
    side = min(height, width)
    s = size / side
    x0, y0 = (width - side) / 2.0, (height - side) / 2.0
    return np.array([[s, 0.0, -x0 * s], [0.0, s, -y0 * s]])


def warp(image: np.ndarray, m: np.ndarray, size: int = CROP_SIZE) -> np.ndarray:
    """Resample `image` into a `size` x `size` crop through matrix `m` (image -> crop)."""
    scale = float(np.sqrt(abs(np.linalg.det(np.asarray(m)[:, :2]))))
    interp = cv2.INTER_AREA if scale < 0.7 else cv2.INTER_LINEAR
    if interp == cv2.INTER_AREA:
        # warpAffine has no area filter: pre-blur to avoid aliasing when shrinking a lot.
        sigma = 0.5 / max(scale, 1e-6) - 0.5
        image = cv2.GaussianBlur(image, (0, 0), sigmaX=sigma) if sigma > 0.3 else image
        interp = cv2.INTER_LINEAR
    return cv2.warpAffine(
        image, np.asarray(m, dtype=np.float64), (size, size), flags=interp, borderMode=cv2.BORDER_REPLICATE
    )


def crop_face(
    image: np.ndarray, landmarks: np.ndarray | None = None, size: int = CROP_SIZE
) -> tuple[np.ndarray, np.ndarray]:
    """The one preprocessing function: a `size` x `size` face crop and its 2x3 matrix.

    With five landmarks: similarity alignment to the template. Without: StarGAN's
    centre crop then resize. Returns (crop, matrix image->crop); invert the matrix to
    paste an edited crop back.
    """
    h, w = image.shape[:2]
    m = center_crop_matrix(h, w, size) if landmarks is None else alignment_matrix(landmarks, size)
    return warp(image, m, size), m


def yaw_degrees(landmarks: np.ndarray) -> float:
    """Head yaw in degrees estimated from five landmarks (0 frontal, the sign says which way).

    The nose tip stands about half an eye distance in front of the eyes, so turning the head
    by `yaw` moves it sideways from the eyes' midpoint by about 0.5 x eye distance x tan(yaw)
    (MTCNN's landmarks on rendered heads: 0.16 at 20 degrees, 0.29 at 30, 0.5 at 45). The offset
    is measured along the eye line, so roll, scale and position do not change the estimate.
    """
    left_eye, right_eye, nose = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)[:3]
    axis = right_eye - left_eye
    distance = float(np.hypot(*axis))
    if distance < 1e-6:  # both eyes on one point: seen from the side
        return 90.0
    offset = float(np.dot(nose - (left_eye + right_eye) / 2, axis)) / distance**2
    return float(np.degrees(np.arctan(2.0 * offset)))
