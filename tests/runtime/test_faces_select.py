"""Which faces `leed-run` edits: with `--max-faces`, the largest and most central (not the most
confident), and not the ones turned away from the camera (the models know frontal faces only):
those fade out with their yaw, estimated from the five landmarks, and the summary counts them."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from leed_runtime.face.align import yaw_degrees
from leed_runtime.face.detect import Face, select_faces
from leed_runtime.image import read_image
from leed_runtime.pipeline import YAW_FULL, YAW_NONE, Editor
from leed_runtime.run import DEFAULT_MODEL, RunConfig, _format_summary, _summary

REAL = Path(__file__).resolve().parents[2] / "samples" / "real"


def _face(x: float, y: float, side: float, score: float) -> Face:
    return Face(box=np.array([x, y, x + side, y + side]), score=score, landmarks=np.zeros((5, 2)))


def test_the_largest_and_most_central_faces_are_kept_not_the_most_confident() -> None:
    background = _face(10, 10, 40, 0.999)  # small, in a corner, most confident
    foreground = _face(250, 150, 200, 0.80)  # big, central
    beside = _face(20, 300, 150, 0.90)  # big too, off-centre
    assert select_faces([background, beside, foreground], 1, 480, 640) == [foreground]
    assert select_faces([background, beside, foreground], 2, 480, 640) == [foreground, beside]
    same_size = [_face(0, 0, 100, 0.99), _face(270, 190, 100, 0.7)]  # equal areas: the central one first
    assert select_faces(same_size, 2, 480, 640) == same_size[::-1]
    assert select_faces([], 4, 480, 640) == []


@pytest.fixture
def editor():  # noqa: ANN201 - an Editor on the shipped model, with the real surprised reference
    with Editor(DEFAULT_MODEL, backend="onnxruntime-cpu", smooth=False) as ed:
        ed.set_reference(read_image(REAL / "surprised.jpg"))
        yield ed


def test_max_faces_edits_the_big_foreground_face_when_a_small_one_scores_higher(editor: Editor) -> None:
    frame = np.full((480, 640, 3), 70, np.uint8)
    frame[80:400, 160:480] = cv2.resize(read_image(REAL / "open.jpg"), (320, 320), interpolation=cv2.INTER_AREA)
    frame[10:170, 10:170] = cv2.resize(read_image(REAL / "surprised.jpg"), (160, 160), interpolation=cv2.INTER_AREA)
    detect = editor.detector.detect

    def small_face_most_confident(image: np.ndarray) -> list[Face]:
        faces = sorted(detect(image), key=lambda f: f.box[2] - f.box[0])  # the small face first...
        return [Face(f.box, 1.0 - 0.01 * i, f.landmarks) for i, f in enumerate(faces)]  # ...scored highest

    editor.detector.detect = small_face_most_confident
    assert len(small_face_most_confident(frame)) == 2
    editor.max_faces = 1
    out = editor(frame.copy())
    assert np.array_equal(out[:175, :175], frame[:175, :175])  # the small background face: untouched
    assert np.abs(out[80:400, 160:480].astype(int) - frame[80:400, 160:480]).mean() > 1.0  # the big one: edited


def _head(yaw: float, roll: float = 0.0, scale: float = 60.0, at: tuple[float, float] = (300, 200)) -> np.ndarray:
    """Five landmarks of a head turned by `yaw` degrees: eyes one unit apart, the nose tip half a
    unit in front of them, projected orthographically, then rolled, scaled and moved."""
    points = np.array([[-0.5, 0, 0], [0.5, 0, 0], [0, 0.45, 0.5], [-0.4, 1.0, 0.1], [0.4, 1.0, 0.1]])
    t, r = math.radians(yaw), math.radians(roll)
    x = points[:, 0] * math.cos(t) + points[:, 2] * math.sin(t)
    flat = np.stack([x, points[:, 1]], 1)
    turn = scale * np.array([[math.cos(r), -math.sin(r)], [math.sin(r), math.cos(r)]])
    return flat @ turn.T + np.array(at)


@pytest.mark.parametrize("roll", [-30.0, 0.0, 25.0])
@pytest.mark.parametrize("yaw", [-60.0, -30.0, 0.0, 15.0, 45.0, 70.0])
def test_yaw_is_estimated_from_the_landmarks_whatever_the_roll_scale_and_place(yaw: float, roll: float) -> None:
    assert yaw_degrees(_head(yaw, roll)) == pytest.approx(yaw, abs=1e-6)
    assert yaw_degrees(_head(yaw, roll, scale=13, at=(20, 900))) == pytest.approx(yaw, abs=1e-6)


def test_yaw_of_rendered_heads_through_the_detector(editor: Editor) -> None:
    """leed-synth's heads at 0 and 45 degrees, landmarks from the shipped MTCNN (measured: 0 to 1
    degree frontal, 45 degrees turned)."""
    from leed_train.data.synth_draw import EXPRESSION_PARAMS, GAZE_SHIFT, FaceRenderer, make_identity, make_scene

    for person in (1, 2):
        yaws = []
        for turn in (0.0, 45.0):
            renderer = FaceRenderer(make_identity(0, person), make_scene(0, person, "090"), turn, 256, 2)
            image = renderer.render(EXPRESSION_PARAMS["neutral"], GAZE_SHIFT["frontal"]).image
            yaws.append(abs(yaw_degrees(editor.detector.detect(image)[0].landmarks)))
        assert yaws[0] < 5 and YAW_NONE - 5 < yaws[1] < 55, (person, yaws)


def _turned(detect, share: float):  # noqa: ANN001, ANN202 - a detector whose noses moved sideways
    """Faces as `detect` finds them, each nose tip moved along the eye line by `share` x the eye
    distance: what the landmarks of a head turned by atan(2 x share) look like."""

    def run(image: np.ndarray) -> list[Face]:
        faces = detect(image)
        for f in faces:
            f.landmarks = f.landmarks.copy()
            f.landmarks[2] += share * (f.landmarks[1] - f.landmarks[0])
        return faces

    return run


@pytest.mark.parametrize(
    ("share", "edited", "faded", "passed"),
    [(0.0, "fully", 0, 0), (0.3, "less", 1, 0), (0.6, "not at all", 0, 1)],  # open.jpg: -4, 28 and 47 degrees
)
def test_a_turned_face_is_edited_less_or_passed_through_and_reported(
    editor: Editor, share: float, edited: str, faded: int, passed: int
) -> None:
    face = read_image(REAL / "open.jpg")
    full = np.abs(editor(face.copy()).astype(int) - face).mean()
    editor.faces_turned_faded = editor.faces_turned_passed = 0
    editor.detector.detect = _turned(editor.detector.detect, share)
    out = editor(face.copy())
    yaw = abs(yaw_degrees(editor._faces[0].landmarks))
    change = np.abs(out.astype(int) - face).mean()
    assert (editor.faces_turned_faded, editor.faces_turned_passed) == (faded, passed)
    if edited == "fully":
        assert yaw < YAW_FULL and change == pytest.approx(full, rel=0.2)
    elif edited == "less":
        assert YAW_FULL < yaw < YAW_NONE and 0 < change < 0.8 * full
    else:
        assert np.array_equal(out, face)
    summary = _format_summary(_summary(RunConfig(image="x.jpg", refs=["r.jpg"]), editor, 1.0))
    assert ("turned away from the camera" in summary) is (edited != "fully")
    assert f"{passed} face(s) passed through unedited, {faded} edited less" in summary or edited == "fully"
