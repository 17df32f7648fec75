"""One test per paper equation (known answers on small tensors) and the feature networks."""

from __future__ import annotations

import json
import math
import warnings

import pytest

torch = pytest.importorskip("torch")

from leed_runtime.errors import LeedError  # noqa: E402
from leed_train import losses  # noqa: E402
from leed_train.features import (  # noqa: E402
    ResNet18,
    VGG19Features,
    build_perceptual,
    load_feature_model,
    load_vgg19_weights,
)

# torchvision vgg19().features indices of its 16 convs (the rest are ReLU and MaxPool).
TORCHVISION_VGG19_CONVS = (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34)


@pytest.fixture(scope="module")
def random_vgg() -> torch.nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build_perceptual("random-vgg19", "cpu")


@pytest.fixture(scope="module")
def psi() -> ResNet18:
    torch.manual_seed(0)
    return ResNet18(num_classes=8, width=8).eval()


@pytest.fixture
def images() -> torch.Tensor:
    torch.manual_seed(1)
    return torch.rand(2, 3, 64, 64) * 2 - 1


def test_expression_loss_eq2_detaches_pseudo_label() -> None:
    dexp = torch.ones(2, 4, 8, 8, requires_grad=True)
    star = torch.full((2, 4, 8, 8), 3.0, requires_grad=True)
    loss = losses.expression_loss(dexp, star)
    assert loss.item() == pytest.approx(4.0)
    loss.backward()
    assert star.grad is None and dexp.grad is not None


def test_regularizer_nll_eq3_closed_form() -> None:
    mean, logvar = torch.tensor([[0.5, -1.0]]), torch.tensor([[0.0, math.log(4.0)]])
    target = torch.tensor([[1.5, 1.0]])
    # dim 1: var 1, residual 1 -> 0.5 * (0 + 1 + log 2pi); dim 2: var 4, residual 2 -> 0.5 * (log 4 + 1 + log 2pi)
    expected = 0.5 * (1 + math.log(2 * math.pi)) + 0.5 * (math.log(4) + 1 + math.log(2 * math.pi))
    got = losses.regularizer_nll(torch.cat([mean, logvar], dim=1), target)
    assert got.item() == pytest.approx(expected, rel=1e-6)
    gaussian = torch.distributions.Normal(mean, torch.exp(0.5 * logvar))
    assert got.item() == pytest.approx(-gaussian.log_prob(target).sum().item(), rel=1e-6)


def test_feature_reducer_whitens_fit_data_and_round_trips() -> None:
    torch.manual_seed(0)
    features = torch.randn(200, 32) @ torch.randn(32, 32) + 3.0
    reducer = losses.FeatureReducer(dim=8).fit(features)
    z = reducer(features)
    assert z.shape == (200, 8)
    torch.testing.assert_close(z.mean(0), torch.zeros(8), atol=1e-4, rtol=0)
    torch.testing.assert_close(z.std(0), torch.ones(8), atol=1e-4, rtol=0)
    torch.testing.assert_close(torch.corrcoef(z.T), torch.eye(8), atol=1e-4, rtol=0)
    loaded = losses.FeatureReducer(dim=8)  # never fitted: shapes come from the state dict
    loaded.load_state_dict(reducer.state_dict())
    torch.testing.assert_close(loaded(features), z)
    with pytest.raises(LeedError, match="not fitted"):
        losses.FeatureReducer(dim=8)(features)


def test_interpolation_loss_eq6_zero_for_linear_interpolator() -> None:
    c_neutral, dexp = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)
    assert losses.interpolation_loss(c_neutral + 0.3 * dexp, c_neutral, 0.3 * dexp).item() == pytest.approx(0.0)
    assert losses.interpolation_loss(c_neutral, c_neutral, 0.3 * dexp).item() > 0


def test_identity_loss_eq7_zero_for_identity() -> None:
    c_ia = torch.randn(2, 4, 8, 8)
    assert losses.identity_loss(c_ia.clone(), c_ia).item() == 0.0
    assert losses.identity_loss(c_ia + 1, c_ia).item() == pytest.approx(1.0)


def test_warp_loss_is_l1_plus_perceptual_plus_smoothness() -> None:
    """L_warp: mean |moved - I_A| + Phi distance + smooth * TV(flow); 0 for a perfect, flat move."""
    phi = lambda x: [x[:, :, ::2, ::2]]  # noqa: E731 - a stand-in feature map
    target = torch.rand(2, 3, 16, 16)
    flat, bumpy = torch.full((2, 2, 4, 4), 0.1), torch.zeros(2, 2, 4, 4)
    bumpy[..., ::2, :] = 0.2  # rows alternate 0.2 / 0: TV 0.2 along y, 0 along x
    assert losses.warp_loss(phi, target.clone(), target, flat, 1.0).item() == 0.0
    assert losses.warp_loss(phi, target.clone(), target, bumpy, 0.5).item() == pytest.approx(0.1)
    moved = target + 0.5
    assert losses.warp_loss(phi, moved, target, flat, 1.0).item() == pytest.approx(0.5 + 0.25)


def test_gradient_penalty_linear_critic() -> None:
    w = torch.tensor([3.0, 4.0])  # ||w|| = 5 everywhere -> (5 - 1)^2 = 16

    def critic(x: torch.Tensor) -> torch.Tensor:
        return x @ w

    real, fake = torch.randn(6, 2), torch.randn(6, 2)
    assert losses.gradient_penalty(critic, real, fake).item() == pytest.approx(16.0)
    # Eq. 12: E[D(fake)] - E[D(real)] + lambda * GP
    expected = (fake @ w).mean() - (real @ w).mean() + 0.5 * 16.0
    assert losses.critic_loss(critic, real, fake, lambda_gp=0.5)[0].item() == pytest.approx(expected.item(), rel=1e-5)


def test_gradient_penalty_is_differentiable() -> None:
    lin = torch.nn.Linear(3, 1)
    gp = losses.gradient_penalty(lin, torch.randn(4, 3), torch.randn(4, 3))
    gp.backward()
    assert lin.weight.grad is not None and lin.weight.grad.abs().sum() > 0


def test_adversarial_loss_eq13() -> None:
    assert losses.adversarial_loss(torch.tensor([1.0, 3.0])).item() == -2.0


def test_siamese_loss_eq11_cosine() -> None:
    zero = torch.zeros(3, 5)
    v = torch.randn(3, 5)
    assert losses.siamese_loss(v, zero, 2 * v, zero).item() == pytest.approx(0.0, abs=1e-6)
    assert losses.siamese_loss(v, zero, -v, zero).item() == pytest.approx(2.0, abs=1e-6)


def test_siamese_margin_loss() -> None:
    far = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    assert losses.siamese_margin_loss(far, margin=1.0).item() == 0.0
    collapsed = torch.ones(3, 2, requires_grad=True)
    loss = losses.siamese_margin_loss(collapsed, margin=1.0)
    assert loss.item() == pytest.approx(1.0, abs=1e-5)
    loss.backward()
    assert torch.isfinite(collapsed.grad).all()


def test_perceptual_loss_eq14(random_vgg: torch.nn.Module, images: torch.Tensor) -> None:
    assert losses.perceptual_loss(random_vgg, images, images.clone()).item() == 0.0
    assert losses.perceptual_loss(random_vgg, images, images.flip(0)).item() > 0
    assert len(random_vgg(images)) == 4


def test_perceptual_modes_warn_or_refuse(tmp_path, images: torch.Tensor) -> None:
    with pytest.warns(UserWarning, match="pixel MSE"):
        pixels = build_perceptual("pixels", "cpu")
    assert losses.perceptual_loss(pixels, images, images * 0).item() == pytest.approx(images.pow(2).mean().item())
    with pytest.warns(UserWarning, match="untrained VGG19"):
        build_perceptual("random-vgg19", "cpu")
    with pytest.raises(LeedError, match="random-vgg19"):
        load_vgg19_weights(VGG19Features(), tmp_path / "missing.pth")
    with pytest.raises(LeedError):
        build_perceptual("vgg16", "cpu")


def test_vgg19_loads_torchvision_state_dict(tmp_path, images: torch.Tensor) -> None:
    torch.manual_seed(3)
    source = VGG19Features()
    own_convs = sorted(int(k.split(".")[1]) for k in source.state_dict() if k.endswith(".weight"))
    assert own_convs == list(TORCHVISION_VGG19_CONVS[:12])  # conv1_1 .. conv4_4, torchvision indices
    state = dict(source.state_dict())
    for idx in TORCHVISION_VGG19_CONVS[12:]:  # conv5 of a full torchvision checkpoint: ignored
        state[f"features.{idx}.weight"] = torch.zeros(512, 512, 3, 3)
        state[f"features.{idx}.bias"] = torch.zeros(512)
    state["classifier.0.weight"] = torch.zeros(4, 4)
    torch.save(state, tmp_path / "vgg19-dcbb9e9d.pth")
    target = VGG19Features()
    load_vgg19_weights(target, tmp_path / "vgg19-dcbb9e9d.pth")
    for a, b in zip(target(images), source(images), strict=True):
        torch.testing.assert_close(a, b)


def test_resnet18_features(psi: ResNet18, images: torch.Tensor) -> None:
    x = torch.rand(2, 3, 128, 128) * 2 - 1
    assert psi.features(x).shape == (2, 64)
    assert psi(x).shape == (2, 8)
    assert sum(isinstance(m, torch.nn.Conv2d) for m in psi.modules()) == 20  # 17 + 3 shortcut convs


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_load_feature_model_formats(tmp_path, psi: ResNet18) -> None:
    from safetensors.torch import save_file

    x = torch.rand(2, 3, 128, 128) * 2 - 1
    with torch.no_grad():
        want = psi.features(x)
    st = tmp_path / "psi.safetensors"
    save_file(
        {k: v.contiguous() for k, v in psi.state_dict().items()}, str(st), metadata={"num_classes": "8", "width": "8"}
    )
    torch.testing.assert_close(load_feature_model(st, "cpu")(x), want)

    class Feats(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = psi

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net.features(x)

    ts = tmp_path / "psi.pt"
    torch.jit.trace(Feats().eval(), x).save(str(ts))
    torch.testing.assert_close(load_feature_model(ts, "cpu")(x), want)

    pytest.importorskip("onnxruntime")
    onnx_path = tmp_path / "psi.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Feats().eval(), (x,), str(onnx_path), input_names=["image"], dynamo=False)
    torch.testing.assert_close(load_feature_model(onnx_path, "cpu")(x), want, atol=1e-4, rtol=1e-4)

    bad = tmp_path / "bad.safetensors"
    save_file({k: v.contiguous() for k, v in psi.state_dict().items()}, str(bad), metadata={"width": "16"})
    with pytest.raises(LeedError, match="width"):
        load_feature_model(bad, "cpu")
    sidecar = tmp_path / "plain.safetensors"
    save_file({k: v.contiguous() for k, v in psi.state_dict().items()}, str(sidecar))
    (tmp_path / "plain.json").write_text(json.dumps({"num_classes": 7}))
    with pytest.raises(LeedError, match="num_classes"):
        load_feature_model(sidecar, "cpu")
    with pytest.raises(LeedError, match="does not exist"):
        load_feature_model(tmp_path / "nope.safetensors", "cpu")
    with pytest.raises(LeedError, match="unknown format"):
        load_feature_model(tmp_path / "plain.json", "cpu")


def test_stargan_losses() -> None:
    from leed_train.config import NetConfig
    from leed_train.stargan import Discriminator, Generator

    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0]])
    ce = losses.stargan_classification_loss(logits, torch.tensor([0, 1]))
    assert ce.item() == pytest.approx(math.log(1 + math.exp(-2.0)), rel=1e-5)
    bce = losses.stargan_classification_loss(logits, torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    # summed over the 4 labels, averaged over the batch of 2
    assert bce.item() == pytest.approx(math.log(1 + math.exp(-2.0)) + math.log(2.0), rel=1e-5)

    tiny = NetConfig.from_preset("tiny")
    torch.manual_seed(0)
    G, D = Generator(tiny, 2), Discriminator(tiny, 2)
    real = torch.rand(2, 3, 128, 128) * 2 - 1
    c_org, c_trg = torch.tensor([0, 1]), torch.tensor([1, 0])
    fake = G(real, torch.eye(2)[c_trg])
    d_loss, d_parts = losses.stargan_d_loss(D, real, fake, c_org, lambda_cls=1.0, lambda_gp=10.0)
    expected = d_parts["D/loss_real"] + d_parts["D/loss_fake"] + d_parts["D/loss_cls"] + 10 * d_parts["D/loss_gp"]
    assert d_loss.item() == pytest.approx(expected.item(), rel=1e-5)
    d_loss.backward()
    assert all(p.grad is None for p in G.parameters())  # fake is detached for the D step
    rec = G(fake, torch.eye(2)[c_org])
    g_loss, g_parts = losses.stargan_g_loss(D, real, fake, rec, c_trg, lambda_cls=1.0, lambda_rec=10.0)
    assert g_parts["G/loss_rec"].item() == pytest.approx((real - rec).abs().mean().item(), rel=1e-5)
    g_loss.backward()
    assert any(p.grad is not None for p in G.parameters())


def test_masked_l1_averages_only_the_picked_images() -> None:
    x = torch.zeros(3, 3, 4, 4)
    target = torch.stack([torch.full((3, 4, 4), v) for v in (1.0, 2.0, 5.0)])
    assert losses.masked_l1(x, target, torch.tensor([True, True, False])).item() == pytest.approx(1.5)
    assert losses.masked_l1(x, target, torch.tensor([False, False, False])).item() == 0.0
