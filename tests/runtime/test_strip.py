"""`leed-run --strip`: which frames it shows and how the PNG is laid out."""

from __future__ import annotations

import numpy as np

from leed_runtime.strip import TILE, contact_strip, pick_frames


def test_pick_frames_spreads_over_the_video() -> None:
    picked = sorted(pick_frames(100, 4))
    assert len(picked) == 4 and picked[0] >= 10 and picked[-1] <= 90
    assert sorted(pick_frames(None, 3)) == [0, 1, 2]  # unknown length (webcam): the first ones
    assert pick_frames(2, 4) <= {0, 1, 2} and pick_frames(50, 0) == set()


def test_contact_strip_layout() -> None:
    ref = np.full((64, 64, 3), 10, np.uint8)
    a, b = np.full((90, 160, 3), 50, np.uint8), np.full((90, 160, 3), 200, np.uint8)
    out = contact_strip([ref, ref], [(a, b), (a, b)], gap=6)
    assert out.dtype == np.uint8 and out.shape[0] == 2 * TILE + 6
    x0 = out.shape[1] - (2 * round(160 * TILE / 90) + 6)  # first frame column starts here
    assert (out[10, x0 + 10] == 50).all() and (out[TILE + 6 + 10, x0 + 10] == 200).all()
    assert (out[10, 10] == 10).all()  # the reference column comes first
