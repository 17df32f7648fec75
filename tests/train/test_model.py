"""`Leed` (leed_train/model.py), the one owner of the chain: each method against the paper's
formula written out on the tiny networks, `TrainedRun` running it, and `leed-eval` of a run
(PyTorch, through `Leed`) agreeing with `leed-eval` of its export, plain and `--residual-edit`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.ndimage import uniform_filter

from leed_export import evaluate as ev
from leed_export.export import ExportConfig, run_export
from leed_export.parity import FP32, compare
from leed_runtime.manifest import read_manifest
from leed_train.config import NetConfig
from leed_train.model import Leed
from leed_train.networks import build_leed_networks
from leed_train.stargan import Generator, Neutralizer
from leed_train.trained import load_trained

C_DIM = 3


@pytest.fixture(scope="module")
def leed() -> Leed:
    """The tiny preset's networks at their (seeded) initial weights, eval mode."""
    torch.manual_seed(0)
    net = NetConfig.from_preset("tiny")
    nets = build_leed_networks(net)
    model = Leed(Neutralizer(Generator(net, C_DIM), C_DIM, 0), *(nets[k] for k in ("E", "X", "I", "D")))
    return model.eval()


@pytest.fixture(scope="module")
def images() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    return tuple(torch.rand(3, 3, 128, 128, generator=gen) * 2 - 1 for _ in range(2))  # faces, references


@torch.no_grad()
def test_reference_and_edit_are_the_papers_chain(leed: Leed, images: tuple[torch.Tensor, torch.Tensor]) -> None:
    G, E, X, I, D = leed.G, leed.E, leed.X, leed.I, leed.D
    face, ref = images
    alpha = torch.tensor([0.0, 0.5, 1.5])
    dexp = X(E(ref), E(G(ref)))
    torch.testing.assert_close(leed.reference(ref), dexp, rtol=0, atol=0)
    want = D(I(E(G(face)), alpha[:, None, None, None] * dexp))
    torch.testing.assert_close(leed.edit(face, dexp, alpha), want, rtol=0, atol=0)
    torch.testing.assert_close(leed(face, ref, alpha), want, rtol=0, atol=0)  # forward: the chain from images
    torch.testing.assert_close(leed.edit(face, dexp, 0.5), leed.edit(face, dexp, torch.full((3,), 0.5)))
    torch.testing.assert_close(leed.edit(face, dexp), D(I(E(G(face)), dexp)), rtol=0, atol=0)  # alpha 1: as is
    # Eq. 1 + 5: the code difference as dexp, added to the neutral code
    linear = E(ref) - E(G(ref))
    torch.testing.assert_close(leed.reference(ref, linear=True), linear, rtol=0, atol=0)
    want_linear = D(E(G(face)) + alpha[:, None, None, None] * linear)
    torch.testing.assert_close(leed.edit(face, linear, alpha, linear=True), want_linear, rtol=0, atol=0)
    # given neutral faces in place of G's (training samples, leed-eval's oracle row)
    torch.testing.assert_close(leed.edit_from_neutrals(G(face), ref, G(ref), alpha), want)
    torch.testing.assert_close(leed.edit_from_neutrals(G(face), ref, G(ref), alpha, linear=True), want_linear)
    # decode_edit from precomputed neutral faces and codes (leed-eval) is the end of edit
    neutral = G(face)
    for residual, gate in ((False, 0.0), (True, 0.0), (True, 0.1)):
        got = leed.decode_edit(E(neutral), Leed.scale(dexp, alpha), neutral, residual, gate)
        torch.testing.assert_close(got, leed.edit(face, dexp, alpha, residual, gate), rtol=0, atol=0)


@torch.no_grad()
def test_residual_edit_formula(leed: Leed, images: tuple[torch.Tensor, torch.Tensor]) -> None:
    """E1 + (1 - m) (G(x) - E0), m = min(1, blur9(mean_rgb |E1 - E0|) / gate), in numpy; alpha 0: G(x)."""
    face, ref = images
    dexp = 3 * leed.reference(ref)  # large enough that the gate is neither off nor everywhere on
    alpha = torch.tensor([0.0, 1.0, 2.0])
    neutral = leed.G(face).numpy()
    edited = leed.edit(face, dexp, alpha).numpy()
    base = leed.edit(face, dexp, 0.0).numpy()
    change = uniform_filter(np.abs(edited - base).mean(1, keepdims=True), (1, 1, 9, 9), mode="constant")
    m = np.clip(change / 0.1, 0, 1)
    np.testing.assert_allclose(
        leed.edit(face, dexp, alpha, residual=True, gate=0.1), edited + (1 - m) * (neutral - base), atol=1e-5
    )
    np.testing.assert_allclose(leed.edit(face, dexp, alpha, residual=True), edited + neutral - base, atol=1e-5)
    np.testing.assert_allclose(leed.edit(face, dexp, 0.0, residual=True, gate=0.1), neutral, atol=1e-5)
    assert 0 < m[1:].mean() < 1


def test_trained_run_runs_its_leed(tiny_run: Path, images: tuple[torch.Tensor, torch.Tensor]) -> None:
    run = load_trained(tiny_run)
    assert all(getattr(run.leed, k) is run.nets[k] for k in ("E", "X", "I", "D"))
    assert run.leed.G.G is run.nets["G"]
    face, ref = images
    with torch.no_grad():
        want = run.leed.edit(face, run.leed.reference(ref), 0.5).clamp(-1, 1)
    torch.testing.assert_close(run.edit(face, ref, alpha=0.5), want, rtol=0, atol=0)


@pytest.mark.parametrize("residual", [False, True], ids=["plain", "residual-edit"])
def test_eval_of_a_run_matches_eval_of_its_export(
    residual: bool, tiny_run: Path, tiny_export: Path, synth_faces: Path, tmp_path: Path
) -> None:
    """leed-eval's editors on the same crops: the run's (PyTorch, `Leed`) and its export's
    (onnxruntime), within the export's FP32 parity tolerance, for the plain and the residual edit."""
    export = tiny_export
    if residual:
        export = run_export(ExportConfig(run_dir=str(tiny_run), out=str(tmp_path / "x"), samples=2, residual_edit=True))
    gate = read_manifest(export).source.get("residual_gate", 0.0)
    cfg = ev.EvalConfig(model_dir=str(tiny_run), data_dir=str(synth_faces), out=str(tmp_path / "r"), batch_size=4)
    (onnx_editor,), split = ev.open_model(str(export), cfg)
    torch_editor = ev.open_model(str(tiny_run), cfg)[0][0]
    if residual:  # leed-eval RUN's editor with the export's settings
        torch_editor = ev.TorchEditor(load_trained(tiny_run), "LEED", cfg.batch_size, residual=True, gate=gate)
    data = ev.load_data(cfg, split)
    n = len(data.pool)
    face, ref = np.array([0, 1, 2, 0]), np.array([n - 1, n - 2, n - 3, n - 4])
    alpha = np.array([0.0, 0.5, 1.0, 1.5], np.float32)
    try:
        got = {
            "edited": [ev.run_edits(e, data.crops, face, ref, alpha).numpy() for e in (torch_editor, onnx_editor)],
            "dexp": [e.reference_codes(ev.as_tensor(data.crops[ref])).numpy() for e in (torch_editor, onnx_editor)],
            "neutral": [e.neutral(ev.as_tensor(data.crops[face])).numpy() for e in (torch_editor, onnx_editor)],
        }
    finally:
        onnx_editor.close()
    comp = compare({k: v[0] for k, v in got.items()}, {k: v[1] for k, v in got.items()}, FP32, onnx_editor.label)
    print("\n".join(comp.lines()))
    assert comp.passed, comp.lines()
    if residual:  # the residual graph is what was measured: alpha 0 gives the neutral face
        np.testing.assert_allclose(got["edited"][1][0], got["neutral"][1][0], atol=1e-4)
