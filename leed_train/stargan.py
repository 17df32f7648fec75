"""StarGAN (Choi et al. 2018; yunjey/stargan), the pre-trained GAN that gives LEED its neutral
faces (paper Sec. 3.4, "Pre-training GAN"), and `Neutralizer`, the part that is exported.

Same layers as yunjey/stargan `model.py` with one deliberate change: InstanceNorm keeps no
running statistics (`track_running_stats=False`). yunjey's code uses running stats but tests
without `G.eval()`, i.e. it always computes per-image statistics; we make that the only mode so
the exported eval-mode graph is the trained function (NOTES, "InstanceNorm trap").
Initialisation is PyTorch's default, as in yunjey's recipe.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from leed_train.config import NetConfig
from leed_train.networks import instance_norm


class ResidualBlock(nn.Module):
    """conv3x3 + IN + ReLU + conv3x3 + IN, added to the input."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(dim, dim, 3, 1, 1, bias=False),
            instance_norm(dim),
            nn.ReLU(),
            nn.Conv2d(dim, dim, 3, 1, 1, bias=False),
            instance_norm(dim),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.main(x)


class Generator(nn.Module):
    """StarGAN G: 7x7 conv + IN + ReLU, two 4x4/2 down convs, `net.stargan_repeat` residual
    blocks, two 4x4/2 transposed-conv ups, 7x7 conv + tanh. The input is the image with the
    target label `c` (B, c_dim) broadcast to c_dim constant planes. `forward(x, c) -> y`.

    Not in StarGAN: with `net.stargan_mask` (`--gan-mask`) the last conv gives a fourth channel,
    a mask A as in GANimation (Pumarola et al. 2018), and y = A * x + (1 - A) * colour: G paints
    only where the expression is and copies every other pixel, so the face stays sharp."""

    def __init__(self, net: NetConfig, c_dim: int) -> None:
        super().__init__()
        dim = net.stargan_conv_dim
        layers: list[nn.Module] = [nn.Conv2d(3 + c_dim, dim, 7, 1, 3, bias=False), instance_norm(dim), nn.ReLU()]
        for _ in range(2):
            layers += [nn.Conv2d(dim, dim * 2, 4, 2, 1, bias=False), instance_norm(dim * 2), nn.ReLU()]
            dim *= 2
        layers += [ResidualBlock(dim) for _ in range(net.stargan_repeat)]
        for _ in range(2):
            layers += [nn.ConvTranspose2d(dim, dim // 2, 4, 2, 1, bias=False), instance_norm(dim // 2), nn.ReLU()]
            dim //= 2
        self.mask = net.stargan_mask
        layers += [
            nn.Conv2d(dim, 4 if self.mask else 3, 7, 1, 3, bias=False),
            nn.Identity() if self.mask else nn.Tanh(),
        ]
        self.main = nn.Sequential(*layers)

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        return self.with_planes(x, c[:, :, None, None].to(x.dtype).expand(-1, -1, x.shape[2], x.shape[3]))

    def with_planes(self, x: Tensor, planes: Tensor) -> Tensor:
        """G with the label already broadcast to planes (B, c_dim, H, W), as `--opencv` stores it."""
        return self.paint(x, planes)[0]

    def paint(self, x: Tensor, planes: Tensor) -> tuple[Tensor, Tensor | None]:
        """(output, keep): with `--gan-mask`, keep is the mask A (B, 1, H, W), 1 where the input's
        pixel is kept; None without a mask."""
        y = self.main(torch.cat([x, planes], dim=1))
        if not self.mask:
            return y, None
        keep = torch.sigmoid(y[:, 3:])  # GANimation's attention: 1 keeps the input's pixel
        return keep * x + (1 - keep) * torch.tanh(y[:, :3]), keep


class Discriminator(nn.Module):
    """StarGAN D (PatchGAN): `net.stargan_d_repeat` 4x4/2 convs with LeakyReLU(0.01), doubling
    from `net.stargan_d_conv_dim`; a 3x3 conv gives the real/fake map (B,1,h,w) and a conv
    covering the whole remaining map gives the class logits (B,c_dim). `forward(x) -> (src, cls)`."""

    def __init__(self, net: NetConfig, c_dim: int) -> None:
        super().__init__()
        dim = net.stargan_d_conv_dim
        layers: list[nn.Module] = [nn.Conv2d(3, dim, 4, 2, 1), nn.LeakyReLU(0.01)]
        for _ in range(1, net.stargan_d_repeat):
            layers += [nn.Conv2d(dim, dim * 2, 4, 2, 1), nn.LeakyReLU(0.01)]
            dim *= 2
        self.main = nn.Sequential(*layers)
        self.src = nn.Conv2d(dim, 1, 3, 1, 1, bias=False)
        self.cls = nn.Conv2d(dim, c_dim, net.image_size >> net.stargan_d_repeat, bias=False)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.main(x)
        return self.src(h), torch.flatten(self.cls(h), 1)


class Neutralizer(nn.Module):
    """G with the target label fixed to one-hot `neutral_index`: `forward(x) -> neutral face`.
    This is the graph exported for the runtime (no label input)."""

    def __init__(self, G: Generator, c_dim: int, neutral_index: int) -> None:
        super().__init__()
        if not 0 <= neutral_index < c_dim:
            raise ValueError(f"neutral_index {neutral_index} is outside 0..{c_dim - 1}")
        self.G = G
        label = torch.zeros(1, c_dim)
        label[0, neutral_index] = 1.0
        self.register_buffer("label", label, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.G(x, self.label.expand(x.shape[0], -1))
