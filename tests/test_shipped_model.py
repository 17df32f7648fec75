"""The synthetic sample model (samples/models/tiny-synth, `--model samples/models/tiny-synth`):
its edits move drawn faces toward the reference's expression, and its leed-eval SSIM on held-out
synthetic people still matches its model card. The default model and the demo: test_demo.py."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import numpy as np
import pytest

from leed_runtime.manifest import read_manifest, verify

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"
DEFAULT_MODEL = Path(__file__).resolve().parents[1] / "samples" / "models" / "tiny-synth"  # the synthetic sample
CARD = DEFAULT_MODEL / "MODEL_CARD.md"


def card_number(key: str) -> float:
    """A number the model card states as `<!-- key -->0.123`."""
    match = re.search(rf"<!-- {key} -->\s*([0-9]+(?:\.[0-9]+)?)", CARD.read_text())
    assert match, f"{CARD} states no {key}"
    return float(match.group(1))


def test_shipped_model_is_verified_small_and_carded() -> None:
    manifest = verify(DEFAULT_MODEL, read_manifest(DEFAULT_MODEL))
    assert {"reference", "edit"} <= set(manifest.artifacts)
    assert all(a.precision == "fp32" for a in manifest.artifacts.values())
    size = sum(p.stat().st_size for p in DEFAULT_MODEL.rglob("*") if p.is_file())
    assert size <= 25 * 2**20, size
    assert manifest.source["heldout_subjects"]  # leed-eval finds who it never saw
    text = CARD.read_text()
    for needed in ("leed-synth faces", "leed-train", "leed-export", "leed-eval", "wall", "synthetic", "RaFD"):
        assert needed in text, needed


@pytest.fixture(scope="module")
def ci_faces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The model card's CI data: synthetic people 01-07 as in the training set (seed 0, 256 px);
    04 and 07 are held out (never trained on), the others were trained on."""
    from leed_train.data.synth import render_faces

    out = tmp_path_factory.mktemp("ci") / "faces"
    render_faces(out, identities=7, seed=0, size=256, workers=2)
    return out


def held_out(faces: Path) -> list[str]:
    present = {p.name.split("_")[1] for p in faces.glob("*.jpg")}
    return sorted(present & set(read_manifest(DEFAULT_MODEL).source["heldout_subjects"]))


@pytest.fixture(scope="module")
def held_out_frontal(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Four of the shipped model's held-out people (never trained on), frontal camera, 256 px."""
    from leed_train.data.synth import render_faces

    out = {}
    for subject in read_manifest(DEFAULT_MODEL).source["heldout_subjects"][:4]:
        out[subject] = tmp_path_factory.mktemp(f"person{subject}")
        render_faces(out[subject], identities=1, seed=0, size=256, angles=("090",), first_id=int(subject), workers=1)
    return out


def test_edits_move_the_face_toward_the_reference_expression(held_out_frontal: dict[str, Path]) -> None:
    """For every ordered pair (A, B) of held-out people and each of the 7 expressions e, A's
    neutral face is edited with B's face showing e. Where A's true face with e differs from
    A's neutral face, the edit should be closer to that truth than the edit with B's neutral
    face (the same neutralizer, encoder and decoder: only the reference's expression differs;
    against the sharp input the blurry CPU decoder would dominate any distance).

    A model that ignored the reference would sit at chance (half the cases, mean gain 0). The
    shipped model, when it was trained: 82 of 84, mean gain 35.9 of a 0-765 pixel distance
    (the model before it: 61 of 84, 6.1). It must keep at least 70 of 84 and half that gain."""
    from leed_runtime.image import read_image
    from leed_runtime.pipeline import Editor

    def image(subject: str, expression: str) -> np.ndarray:
        return read_image(next(held_out_frontal[subject].glob(f"Rafd090_{subject}_*_{expression}_frontal.jpg")))

    expressions = ["angry", "contemptuous", "disgusted", "fearful", "happy", "sad", "surprised"]
    gains = []
    with Editor(DEFAULT_MODEL, backend="onnxruntime-cpu", smooth=False, detect_every=1) as editor:
        for a in held_out_frontal:
            face = image(a, "neutral")
            for b in held_out_frontal:
                if a == b:
                    continue
                editor.set_reference(image(b, "neutral"))
                baseline = editor(face.copy()).astype(np.float32)  # the Editor edits in place
                for e in expressions:
                    truth = image(a, e).astype(np.float32)
                    region = np.abs(truth - face).sum(-1) > 60  # where e shows: mouth, brows, eyes
                    editor.set_reference(image(b, e))
                    edit = editor(face.copy()).astype(np.float32)
                    d_edit = np.abs(edit - truth).sum(-1)[region].mean()
                    d_base = np.abs(baseline - truth).sum(-1)[region].mean()
                    gains.append(d_base - d_edit)
    gains = np.array(gains)
    assert len(gains) == 84
    assert gains.mean() > 18 and (gains > 0).sum() >= 70, (gains.mean(), (gains > 0).sum())


def test_leed_eval_ssim_matches_the_model_card(ci_faces: Path, tmp_path: Path) -> None:
    """The card's CI row, recomputed with the card's own command on the card's data."""
    import json
    import sys

    synth, command = (shlex.split(m) for m in re.findall(r"<!-- ci-(?:data|eval) -->\s*`([^`]+)`", CARD.read_text()))
    assert synth[:3] == ["leed-synth", "faces", "data/ci"] and synth[3:] == ["--identities", "7"]
    assert command[:3] == ["leed-eval", "samples/models/tiny-synth", "data/ci"]
    args = command[3:]
    args[args.index("--out") + 1] = str(tmp_path / "report")
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("leed-eval")), str(DEFAULT_MODEL), str(ci_faces), *args],
        capture_output=True, text=True, cwd=ROOT, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert result["data"]["held_out_subjects"] == held_out(ci_faces)
    (row,) = [m for label, m in result["methods"].items() if label.startswith("LEED (ONNX")]  # the model's
    ssim = row["ssim"]
    assert ssim >= card_number("ci-ssim") - 0.02, ssim
