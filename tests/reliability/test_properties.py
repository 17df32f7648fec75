"""Property tests that extend tests/runtime/test_face.py and tests/train/test_data.py to junk:
faces anywhere (cut by the frame edge, outside it) and arbitrary file names."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from leed_runtime.face.align import apply_affine, crop_face, template
from leed_runtime.face.paste import feather_mask, paste_back
from leed_train.data.names import parse_rafd_name


@settings(max_examples=40, deadline=None)
@given(
    angle=st.floats(-math.pi, math.pi),
    scale=st.floats(0.3, 4.0),
    cx=st.floats(-150, 350),
    cy=st.floats(-150, 300),
)
def test_align_and_paste_any_similarity_even_off_the_frame(angle: float, scale: float, cx: float, cy: float) -> None:
    """Any similarity (face partly or wholly outside a 240x200 frame): the crop's matrix maps
    the landmarks onto the template within a pixel, and pasting back never raises and
    changes nothing outside the face's footprint."""
    h, w = 200, 240
    c, s = scale * math.cos(angle), scale * math.sin(angle)
    face_to_frame = np.array([[c, -s, cx - 64 * c + 64 * s], [s, c, cy - 64 * s - 64 * c]])
    landmarks = apply_affine(face_to_frame, template(128))
    frame = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    crop, m = crop_face(frame, landmarks, 128)
    assert crop.shape == (128, 128, 3) and crop.dtype == np.uint8
    assert np.abs(apply_affine(m, landmarks) - template(128)).max() < 1.0
    out = paste_back(frame.copy(), np.full_like(crop, 255), m, feather_mask(128))
    assert out.shape == frame.shape and out.dtype == np.uint8
    corners = apply_affine(face_to_frame, np.array([[0, 0], [128, 0], [0, 128], [128, 128]], np.float64))
    yy, xx = np.mgrid[0:h, 0:w]
    far = (xx < corners[:, 0].min() - 2) | (xx > corners[:, 0].max() + 2)
    far |= (yy < corners[:, 1].min() - 2) | (yy > corners[:, 1].max() + 2)
    assert np.array_equal(out[far], frame[far])


RAFDISH = st.from_regex(r"\ARafd\d{0,4}_\d{0,3}_\w{0,10}_\w{0,7}_\w{0,10}_\w{0,8}(\.\w{0,5})?\Z")


@settings(max_examples=300, deadline=None)
@given(name=st.one_of(st.text(), RAFDISH))
def test_parse_rafd_name_raises_only_value_error(name: str) -> None:
    try:
        parsed = parse_rafd_name(name)
    except ValueError:
        return
    assert parsed.expression in name
