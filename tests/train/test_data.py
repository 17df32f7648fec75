"""leed_train.data: names, scanning, splits, crop cache, checks, torch datasets, `--check` CLI."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from leed_runtime.errors import LeedError
from leed_runtime.face.align import crop_face
from leed_train.cli import train_main
from leed_train.data import cfeed
from leed_train.data.cache import CropCache
from leed_train.data.check import check_dataset
from leed_train.data.datasets import FaceCrops, PairDataset, to_tensor, to_uint8
from leed_train.data.index import Sample, load_split, save_split, scan, split_by_subject
from leed_train.data.names import ANGLES, ETHNICITIES, EXPRESSIONS, GAZES, GENDERS, format_rafd_name, parse_rafd_name

# --- RaFD names ---------------------------------------------------------------------------


def test_parse_good_rafd_name() -> None:
    name = parse_rafd_name("Rafd090_07_Caucasian_female_happy_frontal.jpg")
    assert (name.angle, name.subject, name.expression, name.gaze, name.neutral) == ("090", 7, "happy", "frontal", False)
    assert parse_rafd_name("Rafd045_61_Moroccan_male_neutral_left.png").neutral


@pytest.mark.parametrize(
    ("filename", "field"),
    [
        ("Rafd091_07_Caucasian_female_happy_frontal.jpg", "angle"),
        ("Rafd090_07_Caucasian_female_happpy_frontal.jpg", "expression"),
        ("Rafd090_07_Caucasian_female_happy_up.jpg", "gaze"),
        ("Rafd090_07_Martian_female_happy_frontal.jpg", "ethnicity"),
        ("Rafd090_07_Caucasian_female_happy_frontal.txt", "image suffix"),
        ("Rafd090_Caucasian_female_happy_frontal.jpg", "not a RaFD name"),
        ("face.jpg", "not a RaFD name"),
    ],
)
def test_parse_bad_rafd_name(filename: str, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        parse_rafd_name(filename)


@given(
    angle=st.sampled_from(ANGLES),
    subject=st.integers(0, 999),
    ethnicity=st.sampled_from(ETHNICITIES),
    gender=st.sampled_from(GENDERS),
    expression=st.sampled_from(EXPRESSIONS),
    gaze=st.sampled_from(GAZES),
    ext=st.sampled_from([".jpg", ".png", ".JPG"]),
)
def test_rafd_name_round_trip(angle, subject, ethnicity, gender, expression, gaze, ext) -> None:
    filename = format_rafd_name(angle, subject, ethnicity, gender, expression, gaze, ext)
    name = parse_rafd_name(filename)
    assert (name.angle, name.subject, name.ethnicity, name.gender, name.expression, name.gaze) == (
        angle,
        subject,
        ethnicity,
        gender,
        expression,
        gaze,
    )
    assert name.filename(ext) == filename


# --- scanning -----------------------------------------------------------------------------


def test_scan_rafd(rafd_dir: Path, write_face) -> None:
    write_face(rafd_dir / "Rafd090_01_Caucasian_female_happpy_frontal.jpg")
    write_face(rafd_dir / "holiday.jpg")
    index = scan(rafd_dir)
    assert index.format == "rafd" and len(index) == 24
    assert index.subjects == ["01", "02", "03"]
    assert index.counts("neutral") == {"False": 12, "True": 12}
    assert index.counts("angle") == {"045": 12, "090": 12}
    assert all((s.landmarks is not None) == (s.angle == "090") for s in index.samples)
    assert index.samples[-1].landmarks.shape == (5, 2)
    assert any("happpy" in p for p in index.problems) and any("holiday.jpg" in p for p in index.problems)


def test_rafd_angle_and_gaze_filters(rafd_dir: Path) -> None:
    index = scan(rafd_dir, angles=("90",), gazes=("frontal",))
    assert len(index) == 6
    assert {(s.angle, s.gaze) for s in index.samples} == {("090", "frontal")}
    with pytest.raises(LeedError, match="--angles 091"):
        scan(rafd_dir, angles=("091",))
    with pytest.raises(LeedError, match="filter"):
        scan(rafd_dir, angles=("180",))


def test_scan_cfeed_one_folder_per_subject(tmp_path: Path, write_face) -> None:
    for subject in ("s01", "s02"):
        for k, name in enumerate(("neutral_1.jpg", "happy_1.jpg", "happily_surprised_2.jpg", "003-Fear.png")):
            write_face(tmp_path / subject / name, seed=k)
    index = scan(tmp_path)
    assert index.format == "cfeed"
    assert index.subjects == ["s01", "s02"]
    assert index.counts("expression") == {"fearful": 2, "happily_surprised": 2, "happy": 2, "neutral": 2}
    assert index.counts("neutral") == {"False": 6, "True": 2}


def test_scan_cfeed_one_folder_per_expression(tmp_path: Path, write_face) -> None:
    for expression in ("neutral", "happy", "Sadness"):
        for subject in ("a01", "a02", "a03"):
            write_face(tmp_path / expression / f"{subject}_x.jpg")
    index = scan(tmp_path)
    assert index.format == "cfeed"
    assert index.subjects == ["a01", "a02", "a03"]
    assert index.counts("expression") == {"happy": 3, "neutral": 3, "sad": 3}
    assert sum(s.neutral for s in index.samples) == 3


def test_cfeed_detection_is_not_fooled() -> None:
    assert cfeed.detect([Path("neutral/a.jpg"), Path("expressive/b.jpg")]) is None  # a plain folder
    assert cfeed.detect([Path("alice/img1.jpg"), Path("bob/img2.jpg")]) is None  # no expression words
    assert cfeed.detect([Path("happy/a_1.jpg")]) is None  # one expression folder only
    assert cfeed.detect([Path("s1/happy/a.jpg"), Path("s1/neutral/b.jpg")]) is None  # too deep
    assert cfeed.detect([Path("s1/neutral.jpg"), Path("s1/sad.jpg")]) == cfeed.BY_SUBJECT


def test_scan_folder_with_subject_folders(tmp_path: Path, write_face) -> None:
    write_face(tmp_path / "alice" / "neutral" / "a.jpg")
    write_face(tmp_path / "alice" / "b.png")
    write_face(tmp_path / "neutral" / "bob" / "c.jpg")
    write_face(tmp_path / "bob" / "deep" / "d.jpg")
    (tmp_path / "notes.txt").write_text("not an image")
    index = scan(tmp_path)
    assert index.format == "folder"
    by_name = {s.path.name: s for s in index.samples}
    assert [by_name[n].subject for n in ["a.jpg", "b.png", "c.jpg", "d.jpg"]] == ["alice", "alice", "bob", "bob"]
    assert [by_name[n].neutral for n in ["a.jpg", "b.png", "c.jpg", "d.jpg"]] == [True, False, True, False]


def test_scan_flat_folder_with_csv_labels(tmp_path: Path, write_face) -> None:
    for name in ("x1.jpg", "x2.jpg", "y1.jpg"):
        write_face(tmp_path / name)
    assert {s.neutral for s in scan(tmp_path).samples} == {None}  # stage 2 needs no labels
    assert [s.subject for s in scan(tmp_path).samples] == ["x1", "x2", "y1"]  # each its own subject
    (tmp_path / "neutral.csv").write_text("x1.jpg\ny1.jpg\n")
    (tmp_path / "subjects.csv").write_text("filename,subject\nx1.jpg,x\nx2.jpg,x\ny1.jpg,y\n")
    index = scan(tmp_path)
    assert [(s.subject, s.neutral) for s in index.samples] == [("x", True), ("x", False), ("y", True)]
    (tmp_path / "neutral.csv").write_text("filename,neutral\nx1.jpg,0\nx2.jpg,1\nmissing.jpg,1\n")
    index = scan(tmp_path)
    assert [s.neutral for s in index.samples] == [False, True, False]
    assert any("missing.jpg" in p for p in index.problems)


@pytest.mark.parametrize("setup", ["missing", "empty", "junk", "file"])
def test_scan_rejects_bad_folders(tmp_path: Path, setup: str) -> None:
    root = tmp_path / "data"
    if setup != "missing":
        root.mkdir() if setup != "file" else root.write_text("x")
    if setup == "junk":
        (root / "readme.txt").write_text("hello")
        (root / "sub").mkdir()
        (root / "sub" / "data.bin").write_bytes(b"\0" * 10)
    with pytest.raises(LeedError, match=str(root)):
        scan(root)


def test_angles_only_for_rafd(tmp_path: Path, write_face) -> None:
    write_face(tmp_path / "a.jpg")
    with pytest.raises(LeedError, match="RaFD"):
        scan(tmp_path, angles=("090",))


# --- splits -------------------------------------------------------------------------------


def _samples(subjects: list[str], per_subject: int = 3) -> list[Sample]:
    return [Sample(Path(f"/d/{s}_{k}.jpg"), s, k == 0) for s in subjects for k in range(per_subject)]


def test_split_is_subject_disjoint_and_deterministic() -> None:
    samples = _samples([f"s{k:02d}" for k in range(30)])
    train, val = split_by_subject(samples, val_fraction=0.1, seed=3)
    assert len({s.subject for s in val}) == 3 and len(train) + len(val) == len(samples)
    assert not {s.subject for s in train} & {s.subject for s in val}
    again = split_by_subject(list(reversed(samples)), val_fraction=0.1, seed=3)
    assert {s.subject for s in again[1]} == {s.subject for s in val}  # independent of order
    other = split_by_subject(samples, val_fraction=0.1, seed=4)
    assert {s.subject for s in other[1]} != {s.subject for s in val}


def test_split_small() -> None:
    train, val = split_by_subject(_samples(["a", "b"]), val_fraction=0.1)
    assert len({s.subject for s in val}) == 1 and len({s.subject for s in train}) == 1
    train, val = split_by_subject(_samples(["a"]))
    assert len(train) == 3 and val == []


def test_split_save_load_round_trip(rafd_dir: Path, tmp_path: Path) -> None:
    index = scan(rafd_dir)
    train, val = split_by_subject(index.samples, val_fraction=0.3)
    path = tmp_path / "run" / "split.json"
    save_split(path, train, val, rafd_dir)
    doc = json.loads(path.read_text())
    assert all(not Path(d["path"]).is_absolute() for d in doc["train"] + doc["val"])
    assert [p.name for p in path.parent.iterdir()] == ["split.json"]  # no temp file left
    train2, val2 = load_split(path, rafd_dir)
    for a, b in zip(train + val, train2 + val2, strict=True):
        assert (a.path, a.subject, a.neutral, a.expression, a.angle, a.gaze) == (
            b.path,
            b.subject,
            b.neutral,
            b.expression,
            b.angle,
            b.gaze,
        )
        assert (a.landmarks is None and b.landmarks is None) or np.array_equal(a.landmarks, b.landmarks)
    train[0].path.unlink()
    with pytest.raises(LeedError, match="split"):
        load_split(path, rafd_dir)


# --- crop cache ---------------------------------------------------------------------------


def test_crop_cache(rafd_dir: Path, tmp_path: Path, write_face, monkeypatch) -> None:
    samples = scan(rafd_dir, gazes=("frontal",)).samples
    cache = CropCache(tmp_path / "cache", size=32)
    crops = cache.load_crops(samples, progress=False)
    assert crops.shape == (len(samples), 32, 32, 3) and crops.dtype == np.uint8
    assert isinstance(crops, np.memmap)
    for s, crop in zip(samples, crops, strict=True):
        rgb = cv2.cvtColor(cv2.imread(str(s.path)), cv2.COLOR_BGR2RGB)
        assert np.array_equal(crop, crop_face(rgb, s.landmarks, 32)[0])
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 1

    def fail(sample):
        raise AssertionError("cache miss")

    monkeypatch.setattr(cache, "crop", fail)
    assert np.array_equal(cache.load_crops(samples, progress=False), crops)  # hit: nothing decoded
    monkeypatch.undo()

    write_face(samples[0].path, seed=99, size=(50, 40))
    rebuilt = cache.load_crops(samples, workers=2, progress=False)
    assert not np.array_equal(rebuilt[0], crops[0]) and np.array_equal(rebuilt[1:], crops[1:])
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 2


def test_crop_cache_default_dir(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LEED_CACHE", str(tmp_path / "c"))
    assert CropCache().cache_dir == tmp_path / "c" and CropCache().size == 128


def test_crop_cache_unreadable_image(tmp_path: Path, write_face) -> None:
    good = write_face(tmp_path / "data" / "a.jpg")
    bad = tmp_path / "data" / "b.jpg"
    bad.write_bytes(b"not a jpeg")
    samples = [Sample(good, "a", None), Sample(bad, "b", None)]
    with pytest.raises(LeedError, match=r"b\.jpg.*--check"):
        CropCache(tmp_path / "cache", size=32).load_crops(samples, progress=False)
    assert not list((tmp_path / "cache").glob("*.npy"))


# --- check --------------------------------------------------------------------------------


def test_check_report(rafd_dir: Path, write_face) -> None:
    (rafd_dir / "Rafd090_09_Kid_male_sad_frontal.jpg").write_bytes(b"junk")
    dup = rafd_dir / "Rafd135_01_Caucasian_female_happy_frontal.jpg"
    dup.write_bytes((rafd_dir / "Rafd090_01_Caucasian_female_happy_frontal.jpg").read_bytes())
    report = check_dataset(rafd_dir)
    for expected in (
        "format: rafd",
        "images: 25 readable, 1 unreadable",
        "subjects: 3",
        "per expression: happy 13, neutral 12",
        "per angle: 045 12, 090 12, 135 1",
        "without landmarks: 13 of 25",
        "Rafd090_09_Kid_male_sad_frontal.jpg",
        "duplicate files",
        "split (by subject",
    ):
        assert expected in report


@pytest.mark.parametrize("setup", ["empty", "junk_images", "no_labels", "missing"])
def test_check_rejects_bad_folders(tmp_path: Path, write_face, setup: str) -> None:
    root = tmp_path / "data"
    if setup != "missing":
        root.mkdir()
    if setup == "junk_images":
        (root / "a.jpg").write_text("not an image")
        (root / "b.png").write_bytes(b"")
    if setup == "no_labels":
        write_face(root / "alice" / "a.jpg")
        write_face(root / "bob" / "b.jpg")
    with pytest.raises(LeedError, match=str(root)) as info:
        check_dataset(root)
    if setup == "no_labels":
        assert "neutral.csv" in str(info.value) and "neutral/" in str(info.value)
        assert "format: folder" in check_dataset(root, need_labels="none")


def test_check_cli(rafd_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(train_main, [str(rafd_dir), "--check", "--angles", "090"])
    assert result.exit_code == 0, result.output
    assert "format: rafd" in result.output and "images: 12 readable" in result.output
    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(train_main, [str(empty), "--check"])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(empty) in lines[0]


# --- torch datasets -----------------------------------------------------------------------


def test_tensor_helpers() -> None:
    image = np.random.default_rng(0).integers(0, 256, (8, 6, 3), dtype=np.uint8)
    t = to_tensor(image)
    assert t.shape == (3, 8, 6) and t.dtype == torch.float32 and t.min() >= -1 and t.max() <= 1
    assert np.array_equal(to_uint8(t), image)
    assert to_uint8(t[None]).shape == (1, 8, 6, 3)


def test_face_crops() -> None:
    crops = np.zeros((3, 128, 128, 3), dtype=np.uint8)
    samples = [
        Sample(Path("a.jpg"), "zed", True, "neutral"),
        Sample(Path("b.jpg"), "amy", False, "happy"),
        Sample(Path("c.jpg"), "zed", None, "happily_surprised"),
    ]
    ds = FaceCrops(crops, samples, flip=True)
    items = [ds[i] for i in range(3)]
    assert items[0]["image"].shape == (3, 128, 128) and items[0]["image"].dtype == torch.float32
    assert [it["neutral"] for it in items] == [1.0, 0.0, -1.0]
    assert [it["expression"] for it in items] == [EXPRESSIONS.index("neutral"), EXPRESSIONS.index("happy"), -1]
    assert [it["subject"] for it in items] == [1, 0, 1] and [it["index"] for it in items] == [0, 1, 2]
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=3)))
    assert batch["image"].shape == (3, 3, 128, 128)


def _marked(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Crops whose left half is 2*i and right half 255 (so flips show); neutrals[i, f] = 100 + 2*i + f."""
    crops = np.full((n, 16, 16, 3), 255, dtype=np.uint8)
    neutrals = np.zeros((n, 2, 16, 16, 3), dtype=np.uint8)
    for i in range(n):
        crops[i, :, :8] = 2 * i
        neutrals[i, 0], neutrals[i, 1] = 100 + 2 * i, 101 + 2 * i
    return crops, neutrals


def test_pair_dataset() -> None:
    subjects = np.array([0, 0, 1, 1, 1, 2, 0, 2])
    crops, neutrals = _marked(len(subjects))
    ds = PairDataset(crops, neutrals, subjects, flip=True, seed=5)
    flips = set()
    for epoch in range(3):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            item = ds[i]
            assert {k: tuple(v.shape) for k, v in item.items()} == {
                k: (3, 16, 16) for k in ("ia", "ia_n", "rb", "rb_n")
            }
            j, flip_a, flip_b = ds.draw(i)
            assert subjects[j] != subjects[i]
            for img, nrm, k, flip in ((item["ia"], item["ia_n"], i, flip_a), (item["rb"], item["rb_n"], j, flip_b)):
                left = to_uint8(img)[0, 0, 0]
                assert left == (255 if flip else 2 * k)
                assert to_uint8(nrm)[0, 0, 0] == 100 + 2 * k + flip
            flips.add((flip_a, flip_b))
    assert flips == {(False, False), (False, True), (True, False), (True, True)}
    ds.set_epoch(1)
    first = [ds.draw(i) for i in range(len(ds))]
    again = PairDataset(crops, neutrals, subjects, seed=5)
    again.set_epoch(1)
    assert [again.draw(i) for i in range(len(ds))] == first
    ds.set_epoch(2)
    assert [ds.draw(i) for i in range(len(ds))] != first
    no_flip = PairDataset(crops, neutrals, subjects, flip=False)
    assert all(not a and not b for _, a, b in (no_flip.draw(i) for i in range(len(ds))))
    with pytest.raises(LeedError, match="2 different subjects"):
        PairDataset(crops, neutrals, np.zeros(len(subjects), dtype=int))


# --- synthetic renderer -------------------------------------------------------------------


def test_scan_rendered_faces(tmp_path: Path) -> None:
    synth = pytest.importorskip("leed_train.data.synth")
    if not hasattr(synth, "render_faces"):
        pytest.skip("leed_train.data.synth.render_faces is not written yet")
    synth.render_faces(tmp_path / "synth", identities=2, seed=0, size=64, angles=("090",), first_id=1, workers=1)
    index = scan(tmp_path / "synth")
    assert index.format == "rafd" and len(index.subjects) == 2 and not index.problems
    assert all(s.landmarks is not None for s in index.samples)
    assert "format: rafd" in check_dataset(tmp_path / "synth")
