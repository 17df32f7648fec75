"""Fixtures for leed_train tests: tiny image datasets written with cv2.imwrite."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from leed_train.data.names import format_rafd_name


@pytest.fixture
def write_face() -> Callable[..., Path]:
    """write_face(path, seed=0, size=(64, 48)): a coloured background with a face-ish blob."""

    def write(path: Path, seed: int = 0, size: tuple[int, int] = (64, 48)) -> Path:
        rng = np.random.default_rng(seed)
        h, w = size
        image = np.full((h, w, 3), rng.integers(0, 256, 3), dtype=np.uint8)
        centre = (w // 2 + int(rng.integers(-3, 4)), h // 2 + int(rng.integers(-3, 4)))
        cv2.ellipse(image, centre, (w // 4, h // 3), 0, 0, 360, tuple(int(c) for c in rng.integers(0, 256, 3)), -1)
        for dx in (-w // 10, w // 10):
            cv2.circle(image, (centre[0] + dx, centre[1] - h // 10), 2, (0, 0, 0), -1)
        cv2.line(
            image, (centre[0] - w // 10, centre[1] + h // 8), (centre[0] + w // 10, centre[1] + h // 8), (0, 0, 0), 1
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(str(path), image)
        return path

    return write


@pytest.fixture
def rafd_dir(tmp_path: Path, write_face: Callable[..., Path]) -> Path:
    """3 subjects x angles 045/090 x neutral/happy x gazes frontal/left, plus landmarks.csv for 090."""
    root = tmp_path / "rafd"
    rows = []
    seed = 0
    for subject in (1, 2, 3):
        for angle in ("045", "090"):
            for expression in ("neutral", "happy"):
                for gaze in ("frontal", "left"):
                    name = format_rafd_name(angle, subject, "Caucasian", "female", expression, gaze)
                    write_face(root / name, seed=seed)
                    seed += 1
                    if angle == "090":
                        rows.append(f"{name},18,20,30,20,24,26,19,32,29,32")
    header = "filename,left_eye_x,left_eye_y,right_eye_x,right_eye_y,nose_x,nose_y,mouth_left_x,mouth_left_y,mouth_right_x,mouth_right_y"
    (root / "landmarks.csv").write_text("\n".join([header, *rows]) + "\n")
    return root
