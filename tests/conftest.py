"""Shared fixtures: a tiny synthetic RaFD-format set and a tiny trained run, built once.

Markers: slow, gpu, tensorrt (see pyproject). Crop caches go to a per-session temp dir.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session", autouse=True)
def _crop_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    os.environ["LEED_CACHE"] = str(tmp_path_factory.mktemp("crop-cache"))


@pytest.fixture(scope="session")
def synth_faces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 identities x 8 expressions x 3 gazes, frontal camera, 128 px (96 images)."""
    from leed_train.data.synth import render_faces

    out = tmp_path_factory.mktemp("synth") / "faces"
    render_faces(out, identities=4, seed=0, size=128, angles=("090",), workers=1)
    return out


@pytest.fixture(scope="session")
def synth_psi_faces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Other people (ids 101-103, seed 1) for training Psi, as the paper uses another dataset."""
    from leed_train.data.synth import render_faces

    out = tmp_path_factory.mktemp("synth-psi") / "faces"
    render_faces(out, identities=3, seed=1, size=128, angles=("090",), first_id=101, workers=1)
    return out
