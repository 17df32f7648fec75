"""`--gan-pair-l1`'s targets: every crop's own neutral face, in that crop's alignment."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from leed_runtime.face.align import crop_face
from leed_train.data.cache import CropCache, read_rgb
from leed_train.data.index import scan
from leed_train.stage_neutralizer import neutral_targets


def test_targets_are_the_neutral_photo_warped_like_the_expressive_crop(synth_faces: Path, tmp_path: Path) -> None:
    samples = scan(synth_faces).samples
    crops = CropCache(tmp_path, size=128).load_crops(samples, progress=False)
    targets, has = neutral_targets(samples, crops)
    assert has.all()  # leed-synth renders every subject's neutral at every angle and gaze
    neutral_of = {(s.subject, s.angle, s.gaze): s for s in samples if s.neutral}
    moved = 0
    for i, s in enumerate(samples):
        if s.neutral:
            assert np.array_equal(targets[i], crops[i])  # G must leave a neutral face alone
            continue
        partner = neutral_of[(s.subject, s.angle, s.gaze)]
        # the neutral photo cropped with the expressive photo's own landmarks: the ideal target
        ideal = crop_face(read_rgb(partner.path), s.landmarks, 128)[0].astype(np.float32)
        err = np.abs(targets[i].astype(np.float32) - ideal)[8:-8, 8:-8].mean()
        naive = np.abs(crops[samples.index(partner)].astype(np.float32) - ideal)[8:-8, 8:-8].mean()
        assert err < 4.0, (s.path.name, err)
        moved += naive > err + 1.0
    assert moved > 0  # mouth landmarks move with the expression: re-warping is needed


def test_no_partner_means_no_target(synth_faces: Path, tmp_path: Path) -> None:
    samples = [s for s in scan(synth_faces).samples if not s.neutral]
    crops = CropCache(tmp_path, size=128).load_crops(samples, progress=False)
    targets, has = neutral_targets(samples, crops)
    assert not has.any() and not targets.any()
