"""`Leed` (leed_train/model.py), the one owner of the chain: each method against the paper's
formula written out on the tiny networks and `TrainedRun` running it (`leed-eval` of a run
agreeing with `leed-eval` of its export: tests/export/test_eval_export.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.ndimage import uniform_filter

from leed_runtime.face.paste import feather_mask
from leed_train.config import NetConfig
from leed_train.model import FOLD_LIMIT, EditStyle, Leed, face_motion, warp
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
        style = EditStyle(residual, gate)
        got = leed.decode_edit(E(neutral), Leed.scale(dexp, alpha), neutral, style)
        torch.testing.assert_close(got, leed.edit(face, dexp, alpha, style), rtol=0, atol=0)


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
    gated = EditStyle(residual=True, gate=0.1)
    np.testing.assert_allclose(leed.edit(face, dexp, alpha, gated), edited + (1 - m) * (neutral - base), atol=1e-5)
    ungated = EditStyle(residual=True)
    np.testing.assert_allclose(leed.edit(face, dexp, alpha, ungated), edited + neutral - base, atol=1e-5)
    np.testing.assert_allclose(leed.edit(face, dexp, 0.0, gated), neutral, atol=1e-5)
    assert 0 < m[1:].mean() < 1
    # base "input": the input face's detail instead of G's; alpha 0 gives the input itself
    on_input_style = EditStyle(residual=True, gate=0.1, base="input")
    on_input = leed.edit(face, dexp, alpha, on_input_style)
    np.testing.assert_allclose(on_input, edited + (1 - m) * (face.numpy() - base), atol=1e-5)
    np.testing.assert_allclose(leed.edit(face, dexp, 0.0, on_input_style), face, atol=1e-5)
    with pytest.raises(ValueError, match="base"):
        EditStyle(residual=True, base="reference")
    with pytest.raises(ValueError, match="choose one"):
        EditStyle(residual=True, warp=True)


def test_warp_moves_pixels_by_the_flow() -> None:
    """`warp`: out(p) = image(p + flow(p)), for a linear ramp away from the borders (bicubic,
    PyTorch's a = -0.75 kernel, is within 4e-3 of it); zero flow is the identity."""
    size = 32
    ramp = (torch.arange(size) * 2 + 1) / size - 1  # value = grid x of the pixel centre
    image = ramp.view(1, 1, 1, size).expand(1, 3, size, size).contiguous()
    torch.testing.assert_close(warp(image, torch.zeros(1, 2, 8, 8)), image, rtol=0, atol=1e-6)
    flow = torch.zeros(1, 2, size, size)
    flow[:, 0, :, : size // 2] = 0.1  # left half samples 0.1 to the right, right half 0.2 to the left
    flow[:, 0, :, size // 2 :] = -0.2
    got = warp(image, flow)
    inner = (..., slice(2, -2), slice(4, 12))
    torch.testing.assert_close(got[inner], image[inner] + 0.1, rtol=0, atol=4e-3)
    inner = (..., slice(2, -2), slice(20, 28))
    torch.testing.assert_close(got[inner], image[inner] - 0.2, rtol=0, atol=4e-3)


class _FlowDecoder(torch.nn.Module):
    """A stand-in D with a flow head: image = the code upsampled x4, flow = 0.1 x its first two channels."""

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.interpolate(code, scale_factor=4, mode="nearest")

    def flow(self, code: torch.Tensor) -> torch.Tensor:
        return 0.1 * code[:, :2]

    def with_flow(self, code: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self(code), self.flow(code)


class _Add(torch.nn.Module):
    def forward(self, c: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        return c + d


@torch.no_grad()
def test_warp_edit_formula() -> None:
    """--warp-edit on stand-ins (E: 4x4 average, I: c + d, D: the code upsampled, its flow 0.1 x
    the code): base moved by d = m (f - mean of f over m), f = flow(I(c, dexp)) - flow(I(c, 0)), plus
    paint m (E1 - warp(E0, d)), m the template's face region, d scaled down where it would fold the
    face; alpha 0 gives the base exactly; paint 0 is the pure warp; outside the face nothing moves."""
    encode = torch.nn.AvgPool2d(4)
    model = Leed(torch.nn.Identity(), encode, None, _Add(), _FlowDecoder())
    gen = torch.Generator().manual_seed(0)
    face = torch.rand(2, 3, 128, 128, generator=gen) * 2 - 1
    dexp = torch.rand(2, 3, 32, 32, generator=gen) - 0.5
    code = encode(face)
    m = torch.from_numpy(feather_mask(128))[None, None]
    region = torch.nn.functional.avg_pool2d(m, 4)
    d = 0.1 * dexp[:, :2]
    d = (d - (d * region).sum((2, 3), keepdim=True) / region.sum()) * region
    steep = torch.maximum(
        (d[..., 1:] - d[..., :-1]).abs().amax((1, 2, 3)), (d[..., 1:, :] - d[..., :-1, :]).abs().amax((1, 2, 3))
    )
    d = d * torch.clamp(FOLD_LIMIT / (16 * steep + 1e-6), max=1.0)[:, None, None, None]  # 16: half of 32 cells
    for paint in (0.0, 0.7):
        style = EditStyle(warp=True, paint=paint, base="input")
        start = torch.nn.functional.interpolate(code, scale_factor=4, mode="nearest")
        edited = torch.nn.functional.interpolate(code + dexp, scale_factor=4, mode="nearest")
        want = warp(face, d) + paint * m * (edited - warp(start, d))
        torch.testing.assert_close(model.edit(face, dexp, 1.0, style), want, rtol=0, atol=1e-4)
        torch.testing.assert_close(model.edit(face, dexp, 0.0, style), face, rtol=0, atol=1e-5)
    moved = model.edit(face, dexp, 1.0, EditStyle(warp=True, paint=0.0))
    assert (moved - face).abs().max() > 0.1
    outside = torch.nn.functional.max_pool2d(m, 17, 1, 8) == 0  # far from the face region
    torch.testing.assert_close(moved * outside, face * outside, rtol=0, atol=1e-5)


def test_face_motion_never_folds_the_face() -> None:
    """A move whose neighbouring displacements differ by more than FOLD_LIMIT per unit of distance
    (grid units: 2 / cells) is scaled down as a whole until none does; a gentle one is kept as it is."""
    like = torch.zeros(3, 3, 128, 128)
    gen = torch.Generator().manual_seed(0)
    for scale in (0.001, 0.3):
        moved = face_motion(scale * torch.randn(3, 2, 32, 32, generator=gen), torch.zeros(3, 2, 32, 32), like)
        step_x = (moved[..., 1:] - moved[..., :-1]).abs().amax((1, 2, 3)) * 16
        step_y = (moved[..., 1:, :] - moved[..., :-1, :]).abs().amax((1, 2, 3)) * 16
        assert (torch.maximum(step_x, step_y) <= FOLD_LIMIT + 1e-5).all()
        if scale == 0.3:
            torch.testing.assert_close(torch.maximum(step_x, step_y), torch.full((3,), FOLD_LIMIT), atol=1e-4, rtol=0)
    small = 0.001 * torch.randn(1, 2, 32, 32, generator=gen)
    region = torch.nn.functional.avg_pool2d(torch.from_numpy(feather_mask(128))[None, None], 4)
    want = (small - (small * region).sum((2, 3), keepdim=True) / region.sum()) * region
    torch.testing.assert_close(face_motion(small, torch.zeros_like(small), like[:1]), want)


def test_decoder_flow_head_only_with_warp() -> None:
    """`--warp` gives D a flow head (B,2,H/4,W/4, within MAX_FLOW, zero at the start); without it, none."""
    net = NetConfig(**{**NetConfig.from_preset("tiny").__dict__, "warp": True})
    D = build_leed_networks(net)["D"]
    code = torch.randn(2, net.code_channels, 8, 8)
    image, flow = D.with_flow(code)
    assert image.shape == (2, 3, 128, 128) and flow.shape == (2, 2, 32, 32)
    torch.testing.assert_close(image, D(code), rtol=0, atol=0)
    assert flow.abs().max() == 0  # a new head moves nothing
    torch.nn.init.normal_(D.flow_head[2].weight, std=10.0)
    assert 0 < D.flow(code).abs().max() <= D.MAX_FLOW
    plain = build_leed_networks(NetConfig.from_preset("tiny"))["D"]
    assert plain.flow_head is None
    with pytest.raises(ValueError, match="without --warp"):
        plain.flow(code)


def test_trained_run_runs_its_leed(tiny_run: Path, images: tuple[torch.Tensor, torch.Tensor]) -> None:
    run = load_trained(tiny_run)
    assert all(getattr(run.leed, k) is run.nets[k] for k in ("E", "X", "I", "D"))
    assert run.leed.G.G is run.nets["G"]
    face, ref = images
    with torch.no_grad():
        want = run.leed.edit(face, run.leed.reference(ref), 0.5).clamp(-1, 1)
    torch.testing.assert_close(run.edit(face, ref, alpha=0.5), want, rtol=0, atol=0)
