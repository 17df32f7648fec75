"""The synthetic RaFD renderer: names, ground truth, determinism, landmarks, video, CLI."""

from __future__ import annotations

import csv
import hashlib
import json
import re
import subprocess
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from leed_runtime.errors import LeedError
from leed_train.data.names import EXPRESSIONS, GAZES, parse_rafd_name
from leed_train.data.synth import fps_fraction, render_faces, render_set, render_video, sample_grid
from leed_train.data.synth_draw import EXPRESSION_PARAMS, FaceRenderer, make_identity, make_scene
from leed_train.synth_cli import synth_main

SIZE = 96


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    report = render_faces(out, identities=2, seed=3, size=SIZE, angles=("045", "090"), workers=1)
    assert report["n_images"] == 2 * 2 * 8 * 3
    return out


def _read(path: Path) -> np.ndarray:
    return cv2.imread(str(path)).astype(np.int16)


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_names_parse_and_full_set(dataset: Path) -> None:
    images = sorted(p.name for p in dataset.glob("*.jpg"))
    parsed = [parse_rafd_name(n) for n in images]
    keys = {(p.angle, p.subject, p.expression, p.gaze) for p in parsed}
    expected = {(a, s, e, g) for a in ("045", "090") for s in (1, 2) for e in EXPRESSIONS for g in GAZES}
    assert keys == expected and len(images) == len(expected)
    for s in (1, 2):  # one ethnicity and gender per identity
        assert len({(p.ethnicity, p.gender) for p in parsed if p.subject == s}) == 1
    meta = json.loads((dataset / "meta.json").read_text())
    assert meta["seed"] == 3 and meta["size"] == SIZE and meta["angles"] == ["045", "090"]
    assert set(meta["identities"]) == {"1", "2"} and meta["generator"]
    assert meta["identities"]["1"]["ethnicity"] == parsed[0].ethnicity or parsed[0].subject != 1
    with open(dataset / "landmarks.csv") as f:
        rows = list(csv.reader(f))
    assert rows[0][0] == "filename" and len(rows[0]) == 11
    assert sorted(r[0] for r in rows[1:]) == images
    assert not list(dataset.glob(".*"))  # no temp files left


def test_only_the_face_changes_between_expressions(dataset: Path) -> None:
    for angle in ("045", "090"):
        renders = render_set(3, 1, angle, SIZE)
        ref = renders[("neutral", "left")]
        mask = cv2.dilate(ref.face_mask.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
        for e in EXPRESSIONS:
            img = renders[(e, "left")].image
            assert np.array_equal(img[~mask], ref.image[~mask]), (angle, e)
            if e != "neutral":
                changed = (np.abs(img.astype(int) - ref.image.astype(int)).max(-1)[mask] > 40).mean()
                assert changed > 0.003, (angle, e, changed)
    # the same on the decoded JPEGs, away from the face by a margin (JPEG blocks leak)
    mask = (
        cv2.dilate(
            render_set(3, 2, "090", SIZE)[("neutral", "frontal")].face_mask.astype(np.uint8),
            np.ones((41, 41), np.uint8),
        )
        > 0
    )
    files = sorted(dataset.glob("Rafd090_02_*_frontal.jpg"))
    ref = _read(files[0])
    for f in files[1:]:
        assert np.array_equal(_read(f)[~mask], ref[~mask]), f.name


def test_expressions_and_identities_differ_by_a_margin() -> None:
    renders = render_set(5, 1, "090", 128)
    mask = renders[("neutral", "frontal")].face_mask
    neutral = renders[("neutral", "frontal")].image.astype(float)
    changed = {
        e: (np.abs(renders[(e, "frontal")].image - neutral).max(-1)[mask] > 40).mean()
        for e in EXPRESSIONS
        if e != "neutral"
    }
    assert min(changed.values()) > 0.01, changed  # over 1% of the face changes clearly
    # expressions also differ from each other
    imgs = [renders[(e, "frontal")].image.astype(float) for e in EXPRESSIONS]
    pair = min(np.abs(a - b)[mask].mean() for i, a in enumerate(imgs) for b in imgs[i + 1 :])
    assert pair > 1.0
    other = render_set(5, 2, "090", 128)[("neutral", "frontal")].image.astype(float)
    assert np.abs(other - neutral).mean() > 10
    a, b = make_identity(5, 1), make_identity(5, 2)
    assert a != b and a.mouth_w != b.mouth_w


def test_determinism_and_seed(tmp_path: Path) -> None:
    kwargs = dict(identities=1, size=64, angles=("090",), workers=1)
    render_faces(tmp_path / "a", seed=7, **kwargs)
    render_faces(tmp_path / "b", seed=7, **kwargs)
    render_faces(tmp_path / "c", seed=8, **kwargs)
    da, db, dc = _digest(tmp_path / "a"), _digest(tmp_path / "b"), _digest(tmp_path / "c")
    assert da == db
    assert set(da.values()).isdisjoint(v for k, v in dc.items() if k.endswith(".jpg"))


def test_landmarks_sit_on_the_drawn_features() -> None:
    for seed, number in ((0, 1), (0, 2), (1, 3), (2, 4)):
        renders = render_set(seed, number, "090", 192)
        for expression in ("neutral", "happy", "surprised"):
            r = renders[(expression, "frontal")]
            gray = cv2.cvtColor(r.image, cv2.COLOR_RGB2GRAY).astype(int)
            for x, y in r.landmarks[:2]:  # pupils: darkest spot of the eye, at the landmark
                xi, yi = int(round(x)), int(round(y))
                assert gray[yi, xi] < 70, (number, expression, gray[yi, xi])
                win = gray[yi - 6 : yi + 7, xi - 6 : xi + 7]
                dy, dx = np.unravel_index(np.argmin(win), win.shape)
                assert abs(dy - 6) <= 2 and abs(dx - 6) <= 2
            face = np.median(gray[r.face_mask])
            for x, y in r.landmarks[3:]:  # mouth corners: the dark line where the lips meet
                xi, yi = int(round(x)), int(round(y))
                assert gray[yi - 1 : yi + 2, xi - 1 : xi + 2].min() < face - 25, (number, expression)
            # left means image-left; mouth below nose below eyes
            lm = r.landmarks
            assert lm[0, 0] < lm[2, 0] < lm[1, 0] and lm[3, 0] < lm[4, 0]
            assert lm[:2, 1].max() < lm[2, 1] < lm[3:, 1].min()
    # the landmark is the projection the renderer draws around, in every pose
    ident = make_identity(0, 1)
    for yaw in (-45.0, 0.0, 45.0):
        rend = FaceRenderer(ident, make_scene(0, 1, "x"), yaw, 128, 2)
        r = rend.render(EXPRESSION_PARAMS["neutral"])
        expect = rend.project(np.array([-ident.eye_spacing, ident.eye_spacing, 0.0]), ident.eye_y, [0, 0, 0])[0]
        assert np.allclose(r.landmarks[:2], expect[:2])
        tip = rend.project(0.0, ident.nose_y, ident.nose_len)[0]
        assert np.allclose(r.landmarks[2], tip)
        assert r.face_mask[tuple(np.round(r.landmarks[:, ::-1]).astype(int).T)].all()


def test_gaze_moves_the_irises() -> None:
    renders = render_set(0, 1, "090", 128)
    a, b = renders[("neutral", "left")].image, renders[("neutral", "right")].image
    assert np.abs(a.astype(int) - b.astype(int)).sum() > 0
    assert np.array_equal(renders[("neutral", "left")].landmarks, renders[("neutral", "right")].landmarks)


@pytest.mark.parametrize(
    "kwargs",
    [dict(identities=0), dict(size=32), dict(angles=("050",)), dict(workers=-1)],
)
def test_render_faces_rejects_bad_args(tmp_path: Path, kwargs: dict) -> None:
    with pytest.raises(LeedError):
        render_faces(tmp_path, **kwargs)


def _ffmpeg(*args: str, stdout_only: bool = False) -> str:
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg", reason="the [dev] extra's ffmpeg checks written videos")
    proc = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", *args], capture_output=True, text=True)
    return proc.stdout if stdout_only else proc.stdout + proc.stderr


def test_video_frames_fps_audio(tmp_path: Path) -> None:
    out = tmp_path / "clip.mp4"
    render_video(out, identity=2, seconds=1.0, fps=29.97, size=(160, 96), seed=0)
    info = _ffmpeg("-i", str(out))
    assert re.search(r"Video: h264.*yuv420p.*160x96", info), info
    assert re.search(r"Audio: aac.*48000 Hz", info), info
    frames = _ffmpeg("-i", str(out), "-map", "0:v", "-fps_mode", "passthrough", "-f", "framemd5", "-", stdout_only=True)
    assert "#tb 0: 1001/30000" in frames, frames[:400]
    assert len([ln for ln in frames.splitlines() if ln and not ln.startswith("#")]) == 30
    with open(out.with_name("clip.mp4.landmarks.csv")) as f:
        rows = list(csv.reader(f))
    assert rows[0][0] == "frame" and len(rows) == 31 and len(rows[1]) == 11
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    silent = tmp_path / "silent.mp4"
    render_video(silent, seconds=0.2, fps=25, size=(64, 64), audio=False)
    assert "Audio:" not in _ffmpeg("-i", str(silent))


def test_fps_fraction() -> None:
    assert fps_fraction(29.97) == Fraction(30000, 1001)
    assert fps_fraction(23.976) == Fraction(24000, 1001)
    assert fps_fraction(59.94) == Fraction(60000, 1001)
    assert fps_fraction(25.0) == 25


@pytest.mark.parametrize("size", [(101, 64), (32, 32), (64, 0)])
def test_video_bad_size(tmp_path: Path, size: tuple[int, int]) -> None:
    with pytest.raises(LeedError, match="--size"):
        render_video(tmp_path / "x.mp4", seconds=0.1, size=size)


def test_cli(tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(
        synth_main,
        ["faces", str(tmp_path / "d"), "--identities", "1", "--size", "64", "--angles", "090", "--workers", "1"],
    )
    assert res.exit_code == 0, res.output
    assert len(list((tmp_path / "d").glob("Rafd090_01_*.jpg"))) == 24
    res = runner.invoke(synth_main, ["video", str(tmp_path / "v.mp4"), "--size", "1280x7"])
    assert res.exit_code == 2 and "--size" in res.output
    res = runner.invoke(synth_main, ["faces", str(tmp_path / "e"), "--angles", "091"])
    assert res.exit_code == 2 and "--angles" in res.output


def test_sample_grid(tmp_path: Path) -> None:
    out = sample_grid(tmp_path / "grid.jpg", identities=2, size=64)
    img = cv2.imread(str(out))
    assert img.shape[1] > 8 * 64 and img.shape[0] > 2 * 64
