"""`leed-train --describe`: parameters and forward GFLOPs of every network of a preset.

Built on the meta device (no memory, no time), so the `paper` preset is described on a laptop.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from leed_train.config import NetConfig
from leed_train.features import ResNet18
from leed_train.networks import build_leed_networks
from leed_train.stargan import Discriminator, Generator


def count_flops(module: nn.Module, *inputs: Tensor) -> float:
    """GFLOPs of one forward call (2 x multiply-accumulates of every Conv2d, ConvTranspose2d and
    Linear, counted by forward hooks; norms, activations and pooling are not counted). Runs in
    eval mode without gradients and restores each submodule's mode afterwards."""
    macs = 0

    def hook(m: nn.Module, args: tuple[Tensor, ...], out: Tensor) -> None:
        nonlocal macs
        if isinstance(m, nn.ConvTranspose2d):
            macs += args[0].numel() * (m.out_channels // m.groups) * math.prod(m.kernel_size)
        elif isinstance(m, nn.Conv2d):
            macs += out.numel() * (m.in_channels // m.groups) * math.prod(m.kernel_size)
        else:
            macs += out.numel() * m.in_features

    counted = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)
    handles = [m.register_forward_hook(hook) for m in module.modules() if isinstance(m, counted)]
    modes = {m: m.training for m in module.modules()}
    try:
        module.eval()
        with torch.no_grad():
            module(*inputs)
    finally:
        for h in handles:
            h.remove()
        for m, training in modes.items():
            m.training = training
    return 2.0 * macs / 1e9


def describe_networks(net: NetConfig, c_dim: int = 2) -> str:
    """A table of parameters (M) and forward GFLOPs at batch 1 of every network (LEED's seven,
    the neutralizer's G and D with `c_dim` labels, the Psi ResNet-18 with 8 classes) and the
    per-frame chain G + E + I + D."""
    s, c, k = net.image_size, net.code_channels, net.image_size // 16
    with torch.device("meta"):
        nets = build_leed_networks(net)
        image, code = torch.zeros(1, 3, s, s), torch.zeros(1, c, k, k)
        rows: list[tuple[str, nn.Module, tuple[Tensor, ...]]] = [
            ("G", Generator(net, c_dim), (image, torch.zeros(1, c_dim))),
            ("E", nets["E"], (image,)),
            ("X", nets["X"], (code, code)),
            ("I", nets["I"], (code, code)),
            ("D", nets["D"], (code,)),
            ("critic", nets["critic"], (code,)),
            ("Q", nets["Q"], (code,)),
            ("S", nets["S"], (image,)),
            ("StarGAN D", Discriminator(net, c_dim), (image,)),
            ("Psi", ResNet18(8, net.psi_width), (image,)),
        ]
        stats = {name: (sum(p.numel() for p in m.parameters()) / 1e6, count_flops(m, *x)) for name, m, x in rows}
    lines = [
        f"networks at preset {net.preset!r} (batch 1, {s}x{s}, code {c}x{k}x{k})",
        f"{'network':<12}{'params M':>10}{'GFLOP':>9}",
    ]
    lines += [f"{name:<12}{p:>10.2f}{g:>9.3f}" for name, (p, g) in stats.items()]
    chain = ("G", "E", "I", "D")
    lines.append(
        f"{'G+E+I+D':<12}{sum(stats[n][0] for n in chain):>10.2f}{sum(stats[n][1] for n in chain):>9.3f}  per frame"
    )
    return "\n".join(lines)
