"""Every case of the bad-input corpus through the real commands: one `error:` line naming the
file (exit 2) or the documented clean answer, never a traceback, never a partial output."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import corpus
import cv2
import numpy as np
import pytest

TINY = ["--preset", "tiny", "--device", "cpu", "--workers", "0", "--perceptual", "pixels"]


def command(name: str, *args: str) -> subprocess.CompletedProcess:
    """A console script of this environment (`leed-export`, `leed-train`), as users run it."""
    exe = Path(sys.executable).with_name(name)
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=300)


def assert_refused(proc: subprocess.CompletedProcess, *needles: str) -> str:
    """Exit 2, exactly one `error:` line holding every needle, no traceback; returns the line."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, proc.stderr[-2000:]
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def assert_nothing_left(folder: Path, *outputs: Path) -> None:
    for out in outputs:
        assert not out.exists(), out
    assert not [p.name for p in folder.rglob(".tmp-*")]


# -- images and references ---------------------------------------------------------------------

REFUSED_IMAGES = {
    "empty.jpg": (lambda faces, d: corpus.empty_file(d, "empty.jpg"), "empty"),
    "empty.png": (lambda faces, d: corpus.empty_file(d, "empty.png"), "empty"),
    "truncated.jpg": (lambda faces, d: corpus.truncated(corpus.face_jpg(faces, d), d), "truncated"),
    "truncated.png": (lambda faces, d: corpus.truncated(corpus.face_png(faces, d), d), "truncated"),
    "8000x8000": (lambda faces, d: corpus.huge_png(d), "larger than 8K"),
}


@pytest.mark.parametrize("role", ["--image", "--ref"])
@pytest.mark.parametrize("case", sorted(REFUSED_IMAGES))
def test_unusable_images_are_refused_by_name(
    case: str, role: str, synth_faces: Path, tiny_export: Path, tmp_path: Path, leed_run
) -> None:
    make, needle = REFUSED_IMAGES[case]
    bad, good = make(synth_faces, tmp_path), corpus.face_jpg(synth_faces, tmp_path)
    image, ref = (bad, good) if role == "--image" else (good, bad)
    out = tmp_path / "out.png"
    proc = leed_run("--image", str(image), "--ref", str(ref), "--model", str(tiny_export), "--out", str(out))
    assert_refused(proc, str(bad), needle)
    assert_nothing_left(tmp_path, out)


ACCEPTED_IMAGES = {
    "grayscale": (corpus.grayscale_png, 1),
    "rgba": (corpus.rgba_png, 1),
    "16-bit": (corpus.png16, 1),
    "five faces": (corpus.five_faces_png, 4),  # --max-faces 4 (the default): the 4 largest (corner faces count half)
    "face cut by the edge": (corpus.edge_face_png, None),  # edited or passed through, never a crash
    "no face": (lambda faces, d: corpus.no_face_png(d), 0),  # passes through unchanged
}


@pytest.mark.parametrize("case", sorted(ACCEPTED_IMAGES))
def test_odd_images_are_converted_and_edited(
    case: str, synth_faces: Path, tiny_export: Path, tmp_path: Path, leed_run
) -> None:
    make, faces = ACCEPTED_IMAGES[case]
    image, ref = make(synth_faces, tmp_path), corpus.face_jpg(synth_faces, tmp_path)
    out = tmp_path / "out.png"
    proc = leed_run("--image", str(image), "--ref", str(ref), "--model", str(tiny_export), "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    edited = cv2.imread(str(out))
    assert edited is not None and edited.ndim == 3 and edited.shape[2] == 3
    if faces is not None:
        assert f"{faces} faces edited" in proc.stdout, proc.stdout
    if faces == 0:
        assert np.array_equal(edited, cv2.imread(str(image)))
    assert not list(tmp_path.glob(".tmp-*"))


def test_reference_of_each_odd_kind_works(synth_faces: Path, tiny_export: Path, tmp_path: Path, leed_run) -> None:
    """Grayscale, RGBA and 16-bit photos are accepted as references too."""
    refs = [f(synth_faces, tmp_path) for f in (corpus.grayscale_png, corpus.rgba_png, corpus.png16)]
    args = [a for r in refs for a in ("--ref", str(r))]
    out = tmp_path / "out.png"
    image = corpus.face_jpg(synth_faces, tmp_path)
    proc = leed_run("--image", str(image), *args, "--model", str(tiny_export), "--out", str(out))
    assert proc.returncode == 0 and out.is_file(), proc.stderr[-2000:]


def test_reference_without_a_face_is_refused(synth_faces: Path, tiny_export: Path, tmp_path: Path, leed_run) -> None:
    ref, image, out = corpus.no_face_png(tmp_path), corpus.face_jpg(synth_faces, tmp_path), tmp_path / "o.png"
    proc = leed_run("--image", str(image), "--ref", str(ref), "--model", str(tiny_export), "--out", str(out))
    assert_refused(proc, str(ref), "no face found")
    assert_nothing_left(tmp_path, out)


# -- videos ------------------------------------------------------------------------------------

REFUSED_VIDEOS = {
    "empty.mp4": (lambda faces, d: corpus.empty_file(d, "empty.mp4"), "not a readable video"),
    "truncated.mp4": (lambda faces, d: corpus.truncated(corpus.face_video(faces, d), d), "not a readable video"),
    "audio only": (lambda faces, d: corpus.audio_only_mp4(d), "has no video stream"),
}


@pytest.mark.parametrize("case", sorted(REFUSED_VIDEOS))
def test_unusable_videos_are_refused_by_name(
    case: str, synth_faces: Path, tiny_export: Path, tmp_path: Path, leed_run
) -> None:
    make, needle = REFUSED_VIDEOS[case]
    video, ref, out = make(synth_faces, tmp_path), corpus.face_jpg(synth_faces, tmp_path), tmp_path / "out.mp4"
    proc = leed_run("--video", str(video), "--ref", str(ref), "--model", str(tiny_export), "--out", str(out))
    assert_refused(proc, str(video), needle)
    assert_nothing_left(tmp_path, out)


def test_variable_frame_rate_keeps_every_frame(synth_faces: Path, tiny_export: Path, tmp_path: Path, leed_run) -> None:
    from leed_runtime.video import VideoReader

    video, ref, out = corpus.vfr_mp4(synth_faces, tmp_path), corpus.face_jpg(synth_faces, tmp_path), tmp_path / "o.mp4"
    proc = leed_run("--video", str(video), "--ref", str(ref), "--model", str(tiny_export), "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "variable frame rate" in proc.stdout
    assert sum(1 for _ in VideoReader(out)) == sum(1 for _ in VideoReader(video)) == 10


# -- export folders ----------------------------------------------------------------------------

MANIFESTS = {
    "cut off": '{"schema": 1, "artifacts": [',
    "a list": "[1, 2]",
    "artifacts a list": '{"schema": 1, "artifacts": []}',
    "not utf-8": "\udcff",
}


@pytest.mark.parametrize("case", sorted(MANIFESTS))
def test_corrupt_manifest_is_refused(case: str, synth_faces: Path, tiny_export: Path, tmp_path: Path, leed_run) -> None:
    model = tmp_path / "export"
    model.mkdir()
    (model / "manifest.json").write_bytes(MANIFESTS[case].encode("utf-8", "surrogateescape"))
    image, out = corpus.face_jpg(synth_faces, tmp_path), tmp_path / "o.png"
    proc = leed_run("--image", str(image), "--ref", str(image), "--model", str(model), "--out", str(out))
    assert_refused(proc, str(model / "manifest.json"), "corrupt manifest")
    assert_nothing_left(tmp_path, out)


def test_engine_of_another_library_version_names_the_rebuild(
    synth_faces: Path, tiny_export: Path, tmp_path: Path, leed_run
) -> None:
    pytest.importorskip("tensorrt_rtx_bindings", exc_type=ImportError)
    model = corpus.foreign_engine(tiny_export, tmp_path)
    image, out = corpus.face_jpg(synth_faces, tmp_path), tmp_path / "o.png"
    args = ["--image", str(image), "--ref", str(image), "--model", str(model), "--out", str(out)]
    line = assert_refused(leed_run(*args, "--backend", "tensorrt-rtx"), "edit.plan", "0.0.1", "rebuild it: leed-export")
    assert "--engine tensorrt-rtx" in line
    auto = leed_run(*args)  # auto falls back to onnxruntime-cpu and says why
    assert auto.returncode == 0 and "0.0.1" in auto.stdout, auto.stderr[-2000:]


@pytest.mark.parametrize(
    ("case", "parity"),
    [
        ("failed", {"passed": False}),
        ("NaN max", {"max_abs": float("nan")}),
        ("inf median", {"median_abs": float("inf")}),
        ("NaN outputs", {"nonfinite": 3.0}),
        ("over tolerance", {"max_abs": 0.5}),
    ],
)
def test_artifact_whose_parity_failed_is_refused(
    case: str, parity: dict, synth_faces: Path, tiny_export: Path, tmp_path: Path, leed_run
) -> None:
    model = corpus.copy_export(tiny_export, tmp_path)
    corpus.edit_manifest(model, lambda data: data["artifacts"]["edit"]["parity"].update(parity))
    image, out = corpus.face_jpg(synth_faces, tmp_path), tmp_path / "o.png"
    proc = leed_run("--image", str(image), "--ref", str(image), "--model", str(model), "--out", str(out))
    assert_refused(proc, str(model / "edit.onnx"), "parity")
    assert_nothing_left(tmp_path, out)


def test_editor_refuses_nan_from_the_edit_graph(synth_faces: Path, tiny_export: Path) -> None:
    from leed_runtime.errors import LeedError
    from leed_runtime.image import read_image
    from leed_runtime.pipeline import Editor

    face = read_image(next(synth_faces.glob("Rafd090_01_*_happy_frontal.jpg")))
    with Editor(tiny_export, backend="onnxruntime-cpu") as editor:
        editor.set_reference(face)
        infer = editor._edit.infer
        editor._edit.infer = lambda feeds: {"edited": infer(feeds)["edited"] * np.nan}
        frame = face.copy()
        with pytest.raises(LeedError, match=r"edit\.onnx: returned NaN/Inf for frame 1"):
            editor(frame)
        assert np.array_equal(frame, face)  # nothing pasted


# -- training runs -----------------------------------------------------------------------------


def test_nan_checkpoint_is_refused_by_export_and_resume(synth_faces: Path, tiny_run: Path, tmp_path: Path) -> None:
    run = corpus.nan_checkpoint(tiny_run, tmp_path)
    out = tmp_path / "export"
    assert_refused(command("leed-export", str(run), "--out", str(out), "--samples", "2"), "NaN weights", "leed-")
    assert_nothing_left(tmp_path, out)
    before = sorted(p.name for p in (run / "checkpoints").iterdir())
    proc = command("leed-train", str(synth_faces), "--out", str(run), "--stage", "leed", "--resume", *TINY)
    assert_refused(proc, "NaN weights", "rerun with --resume")
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == before


def test_junk_in_a_dataset_folder(synth_faces: Path, tmp_path: Path) -> None:
    data = corpus.junk_dataset(synth_faces, tmp_path)
    check = command("leed-train", str(data), "--check")
    assert check.returncode == 0, check.stderr[-2000:]
    assert "2 unreadable" in check.stdout and "Rafd090_09_Caucasian_female_angry_frontal.png" in check.stdout
    out = tmp_path / "run"
    proc = command("leed-train", str(data), "--out", str(out), "--stage", "neutralizer", "--gan-iters", "1", *TINY)
    assert_refused(proc, "Rafd090_09_Caucasian_female_", "--check")
    assert not (out / "checkpoints").exists() and not (out / "split.json").exists()
    assert_nothing_left(tmp_path)


def test_export_refuses_nan_from_a_converted_graph(tiny_run: Path, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    """A graph whose onnxruntime output is NaN fails its parity gate: nothing is written."""
    from leed_export import export
    from leed_runtime.errors import LeedError

    real = export._run

    def poisoned(folder: Path, manifest, name: str, feeds: dict) -> dict:  # noqa: ANN001
        return {k: v * np.nan for k, v in real(folder, manifest, name, feeds).items()}

    monkeypatch.setattr(export, "_run", poisoned)
    out = tmp_path / "export"
    with pytest.raises(LeedError, match="parity FAILED.*NaN/Inf"):
        export.run_export(export.ExportConfig(run_dir=str(tiny_run), out=str(out), samples=2))
    assert_nothing_left(tmp_path, out)


def test_parity_counts_nan_and_inf_as_failure() -> None:
    from leed_export.parity import FP16, compare

    ref = np.zeros((2, 3, 4, 4), np.float32)
    for bad in (np.nan, np.inf, -np.inf):
        got = ref.copy()
        got[0, 0, 0, 0] = bad
        comp = compare({"edited": ref}, {"edited": got}, FP16, "edit.fp16.onnx")
        assert not comp.passed and comp.outputs[0].nonfinite == 1
    nan_ref = ref.copy()
    nan_ref[0, 0, 0, 0] = np.nan  # a NaN in PyTorch's own output fails too
    assert not compare({"edited": nan_ref}, {"edited": ref}, FP16, "edit").passed
