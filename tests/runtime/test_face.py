"""Face geometry: alignment, paste-back, smoothing (numpy + OpenCV only)."""

from __future__ import annotations

import math

import cv2
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from leed_runtime.face.align import apply_affine, crop_face, invert_affine, similarity_transform, template
from leed_runtime.face.paste import feather_mask, paste_back
from leed_runtime.face.smooth import LandmarkSmoother, OneEuro


def _similarity(angle: float, scale: float, tx: float, ty: float) -> np.ndarray:
    c, s = scale * math.cos(angle), scale * math.sin(angle)
    return np.array([[c, -s, tx], [s, c, ty]])


@settings(max_examples=60, deadline=None)
@given(
    angle=st.floats(-math.pi, math.pi),
    scale=st.floats(0.2, 5.0),
    tx=st.floats(-500, 500),
    ty=st.floats(-500, 500),
)
def test_similarity_is_recovered_and_round_trips(angle: float, scale: float, tx: float, ty: float) -> None:
    m = _similarity(angle, scale, tx, ty)
    src = template(128)
    dst = apply_affine(m, src)
    est = similarity_transform(src, dst)
    assert np.allclose(est, m, atol=1e-6 * max(1.0, abs(tx), abs(ty)))
    back = apply_affine(invert_affine(est), apply_affine(est, dst))
    assert np.abs(back - dst).max() < 1e-6 * max(1.0, abs(tx), abs(ty))


@settings(max_examples=25, deadline=None)
@given(angle=st.floats(-0.6, 0.6), scale=st.floats(1.2, 3.0), dx=st.floats(-60, 60), dy=st.floats(-40, 40))
def test_crop_then_paste_reproduces_the_frame_within_a_pixel_level(
    angle: float, scale: float, dx: float, dy: float
) -> None:
    """Alignment and paste-back are inverse warps: pasting an unedited crop back changes the
    frame by no more than interpolation noise on a smooth image."""
    h, w = 480, 640
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    frame = np.stack([127 + 100 * np.sin(xx / 37), 127 + 100 * np.cos(yy / 29), 127 + 60 * np.sin((xx + yy) / 53)], -1)
    frame = frame.astype(np.uint8)
    face_to_frame = _similarity(angle, scale, w / 2 - 64 * scale + dx, h / 2 - 64 * scale + dy)
    landmarks = apply_affine(face_to_frame, template(128))
    crop, m = crop_face(frame, landmarks, 128)
    assert np.allclose(apply_affine(m, landmarks), template(128), atol=1e-6)
    out = paste_back(frame.copy(), crop, m, feather_mask(128))
    assert np.abs(out.astype(int) - frame.astype(int)).max() <= 12  # bilinear twice on a smooth image
    assert np.abs(out.astype(int) - frame.astype(int)).mean() < 0.5


def test_paste_changes_only_the_face_region() -> None:
    frame = np.full((300, 400, 3), 90, np.uint8)
    landmarks = template(128) + np.array([100.0, 60.0])
    _, m = crop_face(frame, landmarks, 128)
    white = np.full((128, 128, 3), 255, np.uint8)
    out = paste_back(frame.copy(), white, m, feather_mask(128))
    changed = np.argwhere((out != frame).any(-1))
    assert len(changed)
    y0, x0 = changed.min(0)
    y1, x1 = changed.max(0)
    assert x0 >= 100 and x1 < 228 and y0 >= 60 and y1 < 188  # inside the 128x128 face box
    assert out[150, 164].min() > 240  # the face centre took the pasted crop


def test_paste_handles_faces_cut_by_the_frame_edge() -> None:
    frame = np.zeros((100, 100, 3), np.uint8)
    _, m = crop_face(frame, template(128) + np.array([-60.0, -40.0]), 128)
    out = paste_back(frame.copy(), np.full((128, 128, 3), 200, np.uint8), m, feather_mask(128))
    assert out.shape == frame.shape and out.max() > 0


def test_one_euro_steadies_a_still_face_and_follows_a_moving_one() -> None:
    rng = np.random.default_rng(0)
    f = OneEuro(rate=30.0)
    still = [f(np.array([100.0, 100.0]) + rng.normal(0, 2, 2)) for _ in range(60)]
    assert np.std(np.array(still[20:]), 0).max() < 1.0  # raw noise has std 2
    g = OneEuro(rate=30.0, beta=0.05)
    moving = [g(np.array([100.0 + 10 * t, 100.0])) for t in range(60)]
    assert abs(moving[-1][0] - (100 + 10 * 59)) < 15  # small lag at 300 px/s


def test_smoother_keeps_two_faces_apart() -> None:
    s = LandmarkSmoother(fps=30)
    a, b = template(128), template(128) + np.array([300.0, 0.0])
    for _ in range(5):
        out = s([a, b])
    assert np.allclose(out[0], a) and np.allclose(out[1], b)
    out = s([b, a])  # order swapped: tracks follow position, not order
    assert np.allclose(out[0], b, atol=1e-6) and np.allclose(out[1], a, atol=1e-6)


def test_feather_mask_is_soft_inside_and_zero_at_the_border() -> None:
    mask = feather_mask(128)
    assert mask.shape == (128, 128) and mask.dtype == np.float32
    assert mask[70, 64] > 0.99 and mask[0, 0] == 0 and mask[:, 0].max() < 0.01
    assert 0.05 < mask.mean() < 0.7
    assert cv2.Laplacian(mask, cv2.CV_32F).std() < 0.05  # no hard edge
