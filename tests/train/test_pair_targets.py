"""`--gan-pair-l1`'s targets: every crop's own neutral face, in that crop's alignment."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np

from leed_runtime.face.align import apply_affine, crop_face
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


def test_a_head_that_moved_between_the_photos_is_put_back(synth_faces: Path, tmp_path: Path) -> None:
    """The person leaned in and turned their head between the neutral photo and the expressive one
    (faces-tw's people do): the target is still their neutral face where the expressive photo's head
    is (its eyes and nose tip on that photo's), not where the head was in the neutral photo."""
    samples = scan(synth_faces).samples
    (tmp_path / "moved").mkdir()
    shot = []
    for s in samples:
        if s.neutral:  # every neutral photo re-shot with the head 12% nearer, turned 4 degrees, shifted
            image = read_rgb(s.path)
            m = cv2.getRotationMatrix2D((image.shape[1] / 2, image.shape[0] / 2), 4.0, 1.12)
            m[:, 2] += (6.0, -5.0)
            path = tmp_path / "moved" / f"{s.path.stem}.png"
            cv2.imwrite(str(path), cv2.warpAffine(image, m, image.shape[1::-1], flags=cv2.INTER_CUBIC)[..., ::-1])
            s = dataclasses.replace(s, path=path, landmarks=apply_affine(m, np.asarray(s.landmarks)))
        shot.append(s)
    crops = CropCache(tmp_path / "cache", size=128).load_crops(shot, progress=False)
    targets, has = neutral_targets(shot, crops)
    assert has.all()
    neutral_of = {(s.subject, s.angle, s.gaze): s for s in samples if s.neutral}
    errors = []
    for i, s in enumerate(shot):
        if not s.neutral:  # the neutral photo as it was shot first, cropped with this photo's landmarks
            ideal = crop_face(read_rgb(neutral_of[(s.subject, s.angle, s.gaze)].path), s.landmarks, 128)[0]
            errors.append(np.abs(targets[i].astype(np.float32) - ideal.astype(np.float32))[16:-16, 16:-16].mean())
    # the eyes and nose tip of leed-synth's faces move a little with some expressions (up to 4.8 grey
    # levels off here); re-warped as if the head had stayed put, the target is 26 off (median), up to 42
    assert np.median(errors) < 2.0 and max(errors) < 6.0, (np.median(errors), max(errors))


def test_no_partner_means_no_target(synth_faces: Path, tmp_path: Path) -> None:
    samples = [s for s in scan(synth_faces).samples if not s.neutral]
    crops = CropCache(tmp_path, size=128).load_crops(samples, progress=False)
    targets, has = neutral_targets(samples, crops)
    assert not has.any() and not targets.any()
