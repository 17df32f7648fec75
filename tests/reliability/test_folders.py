"""`leed-run --image DIR` / `--video DIR` with `--out DIR`: every file under the folder into the
same relative name under --out; one bad file is named on one line and skipped while the rest go
on (exit 1 at the end); outputs that exist are kept, not redone; what is wrong for every file
(no --out, --out being the input or a file, no files) is refused before anything is written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import av
import numpy as np
from click.testing import CliRunner

from leed_runtime.batch import media_files
from leed_runtime.cli import run_main
from leed_runtime.image import read_image

ROOT = Path(__file__).resolve().parents[2]
REAL = ROOT / "samples" / "real"
CPU = ("--backend", "onnxruntime-cpu")


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(run_main, list(args), prog_name="leed-run")
    return result.exit_code, result.stdout, result.stderr


def photo_folder(root: Path) -> Path:
    src = root / "photos"
    (src / "sub").mkdir(parents=True)
    shutil.copy(REAL / "surprised.jpg", src / "a.jpg")
    shutil.copy(REAL / "open.jpg", src / "B.JPG")
    shutil.copy(REAL / "open.jpg", src / "sub" / "c.jpg")
    (src / "broken.jpg").write_bytes(b"")  # a bad file among good ones
    (src / "notes.txt").write_text("not a photo")
    (src / ".hidden.jpg").write_bytes(b"")
    return src


def test_a_folder_of_photos_goes_on_past_a_bad_file_and_keeps_the_tree(tmp_path: Path) -> None:
    src, out = photo_folder(tmp_path), tmp_path / "edited"
    code, stdout, stderr = invoke("--image", str(src), "--ref", str(REAL / "surprised.jpg"), "--out", str(out), *CPU)
    assert code == 1, (stdout, stderr)  # the batch finished; one file failed
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "broken.jpg" in errors[0] and "Traceback" not in stderr
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "B.JPG",
        "a.jpg",
        "sub/c.jpg",
    ]
    assert read_image(out / "sub" / "c.jpg").shape == read_image(src / "sub" / "c.jpg").shape
    assert not np.array_equal(read_image(out / "a.jpg"), read_image(src / "a.jpg"))  # edited, not copied
    assert "4 images in" in stdout and "3 edited, 0 kept" in stdout and "1 failed" in stdout
    assert not list(out.rglob(".tmp-*"))

    # again: nothing redone or replaced, the bad file tried again
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    summary = tmp_path / "batch.json"
    code, stdout, stderr = invoke(
        "--image",
        str(src),
        "--ref",
        str(REAL / "surprised.jpg"),
        "--out",
        str(out),
        "--summary-json",
        str(summary),
        *CPU,
    )
    assert code == 1 and "0 edited, 3 kept" in stdout
    assert before == {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    batch = json.loads(summary.read_text())
    assert (batch["files"], batch["kept"], batch["failed"]) == (4, 3, 1)


def test_a_folder_of_videos(tmp_path: Path) -> None:
    src, out = tmp_path / "clips", tmp_path / "edited"
    src.mkdir()
    with av.open(str(REAL / "talk.mp4")) as inp, av.open(str(src / "one.mov"), "w") as dst:
        stream = dst.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 512, 480, "yuv420p"
        for i, frame in enumerate(inp.decode(video=0)):
            if i == 6:
                break
            dst.mux(stream.encode(av.VideoFrame.from_ndarray(frame.to_ndarray(format="rgb24"), format="rgb24")))
        dst.mux(stream.encode())
    code, stdout, stderr = invoke("--video", str(src), "--ref", str(REAL / "surprised.jpg"), "--out", str(out), *CPU)
    assert code == 0, (stdout, stderr)
    with av.open(str(out / "one.mov")) as edited:
        assert edited.format.name.startswith("mov") and sum(1 for _ in edited.decode(video=0)) == 6
    assert "1 edited, 0 kept (already in" in stdout and "0 failed" in stdout


def test_what_is_wrong_for_every_file_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    src = photo_folder(tmp_path)
    ref = ("--ref", str(REAL / "surprised.jpg"))
    empty = tmp_path / "empty"
    empty.mkdir()
    (tmp_path / "file.txt").write_text("x")
    cases = [
        (("--image", str(src), *ref), "give --out FOLDER"),
        (("--image", str(src), *ref, "--out", str(src)), "is the input folder"),
        (("--image", str(src), *ref, "--out", str(tmp_path / "file.txt")), "is a file"),
        (("--image", str(empty), *ref, "--out", str(tmp_path / "o1")), "no images in this folder"),
        (("--video", str(src), *ref, "--out", str(tmp_path / "o2"), "--strip", str(tmp_path / "s.png")), "--strip"),
        (("--image", str(src), "--ref", str(tmp_path / "missing.jpg"), "--out", str(tmp_path / "o3")), "missing.jpg"),
    ]
    for args, words in cases:
        code, _, stderr = invoke(*args, *CPU)
        lines = stderr.strip().splitlines()
        assert code == 2 and len(lines) == 1 and words in lines[0], (args, stderr)
    assert not any((tmp_path / o).exists() for o in ("o1", "o2", "o3"))


def test_media_files_skip_hidden_files_and_an_output_folder_inside_the_input(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    for name in ("a.jpg", "b.WEBP", ".c.jpg", "out/d.jpg", "e.txt"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "f.jpg").write_bytes(b"x")
    found = media_files(tmp_path, (".jpg", ".webp"), skip=tmp_path / "out")
    assert [p.name for p in found] == ["a.jpg", "b.WEBP"]
