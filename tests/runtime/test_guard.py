"""The domain guard: an export measures how well its model knows a face (`fit`, calibrated on
the run's training faces), and `leed-run` edits less, or not at all, the faces it does not know
instead of smearing them, and says so in its summary."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from leed_runtime.image import read_image
from leed_runtime.manifest import read_manifest
from leed_runtime.pipeline import FIT_FULL, FIT_NONE, Editor
from leed_runtime.run import RunConfig, _format_summary, _summary


class FixedFit:
    """A stand-in `fit` graph that reports the given values."""

    def __init__(self, values: list[float]) -> None:
        self.values, self.calls = np.asarray(values, np.float32), 0

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.calls += 1
        return {"fit": self.values[: len(feeds["face"])]}

    def activate(self) -> None:
        pass

    def deactivate(self) -> None:
        pass


def test_export_calibrates_fit_on_training_faces(tiny_export: Path, synth_faces: Path) -> None:
    manifest = read_manifest(tiny_export)
    fit = manifest.source["fit"]
    assert "fit" in manifest.artifacts and fit["scale"] > 0 and fit["q50"] <= fit["q99"]
    assert (fit["full_edit_below"], fit["no_edit_above"]) == (FIT_FULL, FIT_NONE)
    import onnxruntime as ort

    session = ort.InferenceSession(str(tiny_export / manifest.artifacts["fit"].file))
    rng = np.random.default_rng(0)
    noise = rng.uniform(-1, 1, (4, 3, 128, 128)).astype(np.float32)  # nothing a face autoencoder can rebuild
    with Editor(tiny_export, backend="onnxruntime-cpu") as editor:
        face = read_image(next(synth_faces.glob("Rafd090_01_*_happy_frontal.jpg")))
        crops = [editor.detector.detect(face)[0]]
    from leed_runtime.face.align import crop_face

    crop, _ = crop_face(face, crops[0].landmarks, 128)
    known = session.run(None, {"face": (crop[None].transpose(0, 3, 1, 2) / 127.5 - 1).astype(np.float32)})[0]
    unknown = session.run(None, {"face": noise})[0]
    assert known.shape == (1,) and unknown.shape == (4,)
    # a training-like face is inside the calibrated range, noise outside it (even after 4 training steps)
    assert float(known[0]) < FIT_FULL < float(unknown.min())


@pytest.mark.parametrize(
    ("fit", "changed", "faded", "passed"), [(0.5, True, 0, 0), (1.25, True, 1, 0), (3.0, False, 0, 1)]
)
def test_a_face_the_model_does_not_know_is_edited_less_or_passed_through(
    tiny_export: Path, synth_faces: Path, fit: float, changed: bool, faded: int, passed: int
) -> None:
    face = read_image(next(synth_faces.glob("Rafd090_01_*_neutral_frontal.jpg")))
    ref = read_image(next(synth_faces.glob("Rafd090_02_*_surprised_frontal.jpg")))
    with Editor(tiny_export, backend="onnxruntime-cpu") as editor:
        editor._fit = FixedFit([fit])
        editor.set_reference(ref)
        out = editor(face.copy())
        assert (editor.faces_faded, editor.faces_passed) == (faded, passed)
        summary = _format_summary(_summary(RunConfig(image="x.png", refs=["r.png"]), editor, 1.0))
    assert np.array_equal(out, face) is not changed
    if passed:
        assert "passed through unedited" in summary


def test_the_guard_measures_on_detection_and_keeps_the_weight_while_tracking(
    tiny_export: Path, synth_faces: Path
) -> None:
    face = read_image(next(synth_faces.glob("Rafd090_01_*_neutral_frontal.jpg")))
    with Editor(tiny_export, backend="onnxruntime-cpu", detect_every=4) as editor:
        editor._fit = stand_in = FixedFit([3.0])
        editor.set_reference(face)
        for _ in range(8):
            editor(face.copy())
        assert editor.faces_passed == 8
        assert stand_in.calls == 2  # frames 1 and 5 detect afresh; the others track


def test_video_without_pyav_is_one_line_naming_the_fix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import builtins

    from leed_runtime.errors import LeedError
    from leed_runtime.video import VideoReader

    real_import = builtins.__import__

    def no_av(name: str, *args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        if name == "av" or name.startswith("av."):
            raise ImportError("No module named 'av'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_av)
    clip = tmp_path / "in.mp4"
    clip.write_bytes(b"\x00" * 16)
    with pytest.raises(LeedError, match=r"PyAV.*pip install 'av>=14'"):
        VideoReader(clip)


def test_engine_backends_run_the_detector_on_onnxruntime(tiny_export: Path) -> None:
    """Exports build no detector engines (P-net's input size changes with every pyramid level):
    with a TensorRT backend the MTCNN graphs run on the best onnxruntime here."""
    from leed_runtime.pipeline import detector_backend

    manifest = read_manifest(tiny_export)
    assert detector_backend("onnxruntime-cpu", tiny_export, manifest) == "onnxruntime-cpu"
    for engine in ("tensorrt", "tensorrt-rtx"):
        assert detector_backend(engine, tiny_export, manifest) == "onnxruntime-cpu"  # no GPU here
