"""Networks of Tables 4-9 and StarGAN: shapes, InstanceNorm train == eval, FLOPs, ONNX parity."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from leed_train.config import NetConfig  # noqa: E402
from leed_train.describe import count_flops, describe_networks  # noqa: E402
from leed_train.networks import build_leed_networks  # noqa: E402
from leed_train.stargan import Discriminator, Generator, Neutralizer  # noqa: E402

B = 2
C_DIM = 2


@pytest.fixture(scope="module")
def tiny() -> NetConfig:
    return NetConfig.from_preset("tiny")


@pytest.fixture(scope="module")
def nets(tiny: NetConfig) -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    return build_leed_networks(tiny)


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    torch.manual_seed(1)
    return torch.rand(B, 3, 128, 128) * 2 - 1


@pytest.fixture(scope="module")
def codes(tiny: NetConfig) -> torch.Tensor:
    torch.manual_seed(2)
    return torch.randn(B, tiny.code_channels, 8, 8)


def _gflops_by_name(table: str) -> dict[str, float]:
    rows = {}
    for line in table.splitlines()[2:]:
        name = line[:12].strip()
        rows[name] = float(line[12:].split()[1])
    return rows


def test_shapes_tiny(tiny: NetConfig, nets: dict, images: torch.Tensor, codes: torch.Tensor) -> None:
    c = tiny.code_channels
    assert set(nets) == {"E", "D", "X", "I", "critic", "Q", "S"}
    assert nets["E"](images).shape == (B, c, 8, 8)
    decoded = nets["D"](codes)
    assert decoded.shape == (B, 3, 128, 128)
    assert decoded.abs().max() <= 1.0  # tanh
    assert nets["X"](codes, codes).shape == (B, c, 8, 8)
    assert nets["I"](codes, codes).shape == (B, c, 8, 8)
    assert nets["critic"](codes).shape == (B,)
    assert nets["Q"](codes).shape == (B, tiny.q_out)
    assert nets["S"](images).shape == (B, tiny.siamese_dim)
    G, D = Generator(tiny, C_DIM), Discriminator(tiny, C_DIM)
    label = torch.eye(C_DIM)[:B]
    assert G(images, label).shape == (B, 3, 128, 128)
    src, cls = D(images)
    assert src.shape == (B, 1, 2, 2) and cls.shape == (B, C_DIM)


def test_channels_last(nets: dict, images: torch.Tensor, codes: torch.Tensor) -> None:
    for name, x in (("E", images), ("S", images), ("critic", codes), ("D", codes)):
        net = nets[name].eval()
        ref = net(x)
        out = net.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last))
        net.to(memory_format=torch.contiguous_format)
        torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)


def test_neutralizer_is_g_with_neutral_label(tiny: NetConfig, images: torch.Tensor) -> None:
    G = Generator(tiny, 8)
    neutral = Neutralizer(G, 8, neutral_index=5)
    label = torch.zeros(B, 8)
    label[:, 5] = 1
    torch.testing.assert_close(neutral(images), G(images, label))
    assert set(neutral.state_dict()) == {f"G.{k}" for k in G.state_dict()}


def test_masked_generator_paints_over_the_input(tiny: NetConfig, images: torch.Tensor) -> None:
    """--gan-mask: y = A * x + (1 - A) * colour from G's last conv (4 channels: colour, mask).
    With that conv zeroed A = 1/2 and the colour 0, so y = x / 2; with the mask pushed to 1 by a
    constant input to its channel, y = x: G copies the face wherever its mask says so."""
    G = Generator(dataclasses.replace(tiny, stargan_mask=True), C_DIM).eval()
    last = G.main[-2]
    assert last.out_channels == 4
    label = torch.eye(C_DIM)[:B]
    with torch.no_grad():
        last.weight.zero_()
        torch.testing.assert_close(G(images, label), images / 2)
        last.bias = torch.nn.Parameter(torch.tensor([0.3, -0.2, 0.1, 30.0]))
        torch.testing.assert_close(G(images, label), images, atol=1e-6, rtol=0)
        last.bias = torch.nn.Parameter(torch.tensor([0.3, -0.2, 0.1, -30.0]))
        want = torch.tanh(torch.tensor([0.3, -0.2, 0.1]))[None, :, None, None].expand_as(images)
        torch.testing.assert_close(G(images, label), want, atol=1e-6, rtol=0)


def test_instance_norm_same_in_train_and_eval(
    tiny: NetConfig, nets: dict, images: torch.Tensor, codes: torch.Tensor
) -> None:
    G = Generator(tiny, C_DIM)
    label = torch.eye(C_DIM)[:B]
    cases = [(nets["S"], (images,)), (nets["critic"], (codes,)), (G, (images, label))]
    for net, inputs in cases:
        norms = [m for m in net.modules() if isinstance(m, torch.nn.InstanceNorm2d)]
        assert norms and all(m.affine and not m.track_running_stats for m in norms)
        net.train()
        out_train = net(*inputs)
        net.eval()
        torch.testing.assert_close(net(*inputs), out_train, rtol=0, atol=0)


def test_single_forward_small(images: torch.Tensor) -> None:
    small = NetConfig.from_preset("small")
    torch.manual_seed(0)
    nets = build_leed_networks(small)
    G = Generator(small, C_DIM).eval()
    with torch.no_grad():
        neutral = G(images[:1], torch.tensor([[1.0, 0.0]]))
        code = nets["E"](neutral)
        dexp = nets["X"](code, code)
        out = nets["D"].eval()(nets["I"](code, 0.5 * dexp))
    assert code.shape == (1, small.code_channels, 8, 8)
    assert out.shape == (1, 3, 128, 128) and torch.isfinite(out).all()


def test_flops_match_notes_and_presets() -> None:
    paper = _gflops_by_name(describe_networks(NetConfig.from_preset("paper")))
    for name, expected in (("G", 19.5), ("E", 11.8), ("I", 1.2), ("D", 5.5), ("G+E+I+D", 38.0)):
        assert abs(paper[name] - expected) / expected < 0.1, (name, paper[name])
    small = _gflops_by_name(describe_networks(NetConfig.from_preset("small")))
    assert 0.2 < small["G+E+I+D"] / paper["G+E+I+D"] < 0.3


def test_count_flops_linear_and_conv() -> None:
    linear = torch.nn.Linear(10, 5)
    assert count_flops(linear, torch.zeros(1, 10)) == pytest.approx(2 * 50 / 1e9)
    conv = torch.nn.Conv2d(3, 4, 3, padding=1)
    assert count_flops(conv, torch.zeros(1, 3, 8, 8)) == pytest.approx(2 * 64 * 4 * 27 / 1e9)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_onnx_parity_tiny(tmp_path, tiny: NetConfig, nets: dict, images: torch.Tensor, codes: torch.Tensor) -> None:
    masked = Neutralizer(Generator(dataclasses.replace(tiny, stargan_mask=True), C_DIM), C_DIM, 0)
    cases = {"E": (images,), "D": (codes,), "X": (codes, codes * 0.5), "I": (codes, codes * 0.5)}
    for name, inputs in [*cases.items(), ("masked neutralizer", (images,))]:
        net = (masked if name == "masked neutralizer" else nets[name]).eval()
        path = tmp_path / f"{name}.onnx"
        names = [f"in{i}" for i in range(len(inputs))]
        torch.onnx.export(
            net,
            inputs,
            str(path),
            input_names=names,
            output_names=["out"],
            dynamic_axes={n: {0: "batch"} for n in [*names, "out"]},
            dynamo=False,
        )
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        (got,) = session.run(None, {n: x.numpy() for n, x in zip(names, inputs, strict=True)})
        with torch.no_grad():
            want = net(*inputs).numpy()
        assert np.abs(got - want).max() < 1e-4, name


def test_recalibrated_decoder_decodes_real_codes_in_eval_as_in_train(tiny: NetConfig) -> None:
    """D's BatchNorm statistics polluted by other inputs (the siamese path's interpolated codes)
    are re-estimated on E(I): eval mode then matches train mode on those images."""
    from leed_train.stage_leed import recalibrate_decoder

    torch.manual_seed(0)
    leed = build_leed_networks(tiny)
    E, D = leed["E"], leed["D"]
    x = torch.rand(32, 3, 128, 128) * 2 - 1
    with torch.no_grad():
        D.train()
        for _ in range(5):
            D(torch.randn(8, tiny.code_channels, 8, 8) * 10 + 3)  # other inputs, as in training
        truth = D(E(x))  # train mode: statistics of these very images
        D.eval()
        before = (D(E(x)) - truth).abs().mean().item()
    weights = {k: v.clone() for k, v in D.state_dict().items() if "running" not in k and "num_batches" not in k}
    recalibrate_decoder(E, D, iter([x[:16], x[16:]]))
    with torch.no_grad():
        after = (D(E(x)) - truth).abs().mean().item()
    assert after < 0.1 * before, (before, after)
    assert not D.training  # modes restored
    assert all(torch.equal(v, D.state_dict()[k]) for k, v in weights.items())
    assert all(m.momentum == 0.1 for m in D.modules() if isinstance(m, torch.nn.BatchNorm2d))
