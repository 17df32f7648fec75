"""`Leed` (leed_train/model.py), the one owner of the chain: each method against the paper's
formula written out on the tiny networks and `TrainedRun` running it (`leed-eval` of a run
agreeing with `leed-eval` of its export: tests/export/test_eval_export.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.ndimage import uniform_filter

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
    # base "input": the input face's detail instead of G's; alpha 0 gives the input itself
    on_input = leed.edit(face, dexp, alpha, residual=True, gate=0.1, base="input")
    np.testing.assert_allclose(on_input, edited + (1 - m) * (face.numpy() - base), atol=1e-5)
    np.testing.assert_allclose(leed.edit(face, dexp, 0.0, residual=True, gate=0.1, base="input"), face, atol=1e-5)
    with pytest.raises(ValueError, match="base"):
        leed.edit(face, dexp, alpha, residual=True, base="reference")


def test_trained_run_runs_its_leed(tiny_run: Path, images: tuple[torch.Tensor, torch.Tensor]) -> None:
    run = load_trained(tiny_run)
    assert all(getattr(run.leed, k) is run.nets[k] for k in ("E", "X", "I", "D"))
    assert run.leed.G.G is run.nets["G"]
    face, ref = images
    with torch.no_grad():
        want = run.leed.edit(face, run.leed.reference(ref), 0.5).clamp(-1, 1)
    torch.testing.assert_close(run.edit(face, ref, alpha=0.5), want, rtol=0, atol=0)
