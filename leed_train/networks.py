"""LEED's networks, supplementary Tables 4-9 (their parameters and FLOPs: `describe.py`).

Every width comes from `NetConfig`: `net.ch(paper_channels)` scales a paper channel count and
`net.code_channels` is the C of the C x 8 x 8 latent code (512 in the paper). Modules take and
return plain tensors, so each can be exported by `torch.onnx.export` and run channels_last.

Choices the paper leaves open (each repeated where it is made):
- Normalisation: InstanceNorm is `InstanceNorm2d(c, affine=True, track_running_stats=False)`
  everywhere, so train() and eval() compute the same function and the exported (eval) graph is
  the trained one (NOTES, "InstanceNorm trap"). BatchNorm in D and Q is ordinary BatchNorm
  (running statistics in eval).
- LeakyReLU slope 0.2 wherever the tables say LeakyReLU (the paper gives no slope).
- Decoder ends in tanh (Table 7 has none): see `Decoder`.
- Critic score: a linear layer on Table 5's 1024 x 1 x 1 output: see `CodeCritic`.
- Table 9's last conv: 1024 channels (its "2048 x 2 x 2" is a typo): see `Siamese`.
- Initialisation: He (kaiming) normal for conv/linear weights with the gain of the following
  activation, zero biases, norms at weight 1 / bias 0 (`init_weights`). The paper does not say
  how E is initialised. Here E starts like every other network; because E's first 12 convs have
  exactly the layout of VGG19's conv1_1..conv4_4, the training stage copies ImageNet VGG19 into
  them at paper width (`stage_leed._init_encoder_from_vgg19`): that is the one place of it.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from leed_train.config import NetConfig

LRELU_SLOPE = 0.2


def instance_norm(channels: int) -> nn.InstanceNorm2d:
    """InstanceNorm that behaves identically in train() and eval() (no running stats)."""
    return nn.InstanceNorm2d(channels, affine=True, track_running_stats=False)


def init_weights(module: nn.Module, negative_slope: float) -> None:
    """He-normal conv/linear weights for a (leaky) ReLU of `negative_slope` (0 = ReLU), zero biases."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, a=negative_slope, nonlinearity="leaky_relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def _conv3x3(cin: int, cout: int, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=3, stride=1, padding=1, bias=bias)


class Encoder(nn.Module):
    """E, Table 6: VGG19-like 3x3 convs (2-2-4-4) with ReLU and four 2x2 max pools, 128 -> 8,
    then a plain 3x3 conv to the code. `forward(x: B,3,128,128 in [-1,1]) -> B,C,8,8`."""

    def __init__(self, net: NetConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for stage, (paper_ch, n) in enumerate(((64, 2), (128, 2), (256, 4), (512, 4))):
            if stage:
                layers.append(nn.MaxPool2d(2, 2))
            for _ in range(n):
                cout = net.ch(paper_ch)
                layers += [_conv3x3(cin, cout), nn.ReLU()]
                cin = cout
        layers += [nn.MaxPool2d(2, 2), _conv3x3(cin, net.code_channels)]
        self.main = nn.Sequential(*layers)
        init_weights(self, 0.0)

    def forward(self, x: Tensor) -> Tensor:
        return self.main(x)


class Decoder(nn.Module):
    """D, Table 7: 3x3 convs with BN + ReLU and four nearest-neighbour x2 upsamples, 8 -> 128,
    then a plain 3x3 conv to RGB. `forward(code: B,C,8,8) -> B,3,128,128`.

    We add a tanh after the last conv (Table 7 has none): every image in leed lives in [-1, 1]
    (StarGAN's G ends in tanh too), the perceptual loss and S see images in that range, and the
    exported graph can never emit out-of-range pixels.

    With `net.warp` (`--warp`, not in the paper) a second head reads the 32 x 32 features (after
    the second upsample's convs) and gives `flow(code) -> B,2,32,32`: where this code's face
    sits relative to a face of the same person with another code, as a sampling displacement in
    grid_sample's [-1, 1] units, at most `MAX_FLOW` (tanh). `Leed.decode_edit` warps the input by
    the difference of two codes' flows (`model.warp`), so an edit moves the face's own pixels.
    The head's last conv starts at zero: a new head warps nothing until trained."""

    MAX_FLOW = 0.15  # 0.15 of the half-width: about 10 pixels of a 128 crop

    def __init__(self, net: NetConfig) -> None:
        super().__init__()
        plan = (512, "up", 256, 256, 256, 256, "up", 128, 128, 128, 128, "up", 64, 64, "up", 64)
        layers: list[nn.Module] = []
        cin = net.code_channels
        for item in plan:
            if item == "up":
                layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
                continue
            cout = net.ch(int(item))
            layers += [_conv3x3(cin, cout, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]
            cin = cout
        layers += [_conv3x3(cin, 3), nn.Tanh()]
        self.main = nn.Sequential(*layers)
        init_weights(self, 0.0)
        # the 32 x 32 features: everything before the third upsample (a slice shares the layers,
        # so the checkpoint keys stay `main.N`)
        self._tap = [i for i, m in enumerate(layers) if isinstance(m, nn.Upsample)][2]
        self.flow_head: nn.Sequential | None = None
        if net.warp:
            c32 = net.ch(128)
            self.flow_head = nn.Sequential(_conv3x3(c32, c32), nn.ReLU(), _conv3x3(c32, 2))
            init_weights(self.flow_head, 0.0)
            nn.init.zeros_(self.flow_head[2].weight)

    def forward(self, code: Tensor) -> Tensor:
        return self.main(code)

    def flow(self, code: Tensor) -> Tensor:
        """`--warp`'s displacement field of `code` (B,2,H/4,W/4), channel 0 x, 1 y (grid_sample's order)."""
        return self._flow(self.main[: self._tap](code))

    def with_flow(self, code: Tensor) -> tuple[Tensor, Tensor]:
        """(`forward(code)`, `flow(code)`) with one pass through the shared layers."""
        features = self.main[: self._tap](code)
        return self.main[self._tap :](features), self._flow(features)

    def _flow(self, features: Tensor) -> Tensor:
        if self.flow_head is None:
            raise ValueError("this decoder has no flow head (the run was trained without --warp)")
        return self.MAX_FLOW * torch.tanh(self.flow_head(features))


class _CodePairNet(nn.Module):
    """Table 4 (shared by X and I): two C x 8 x 8 codes concatenated on channels (2C), three 3x3
    convs to C with LeakyReLU(0.2) after the first two, the last plain."""

    def __init__(self, net: NetConfig) -> None:
        super().__init__()
        c = net.code_channels
        self.main = nn.Sequential(
            _conv3x3(2 * c, c),
            nn.LeakyReLU(LRELU_SLOPE),
            _conv3x3(c, c),
            nn.LeakyReLU(LRELU_SLOPE),
            _conv3x3(c, c),
        )
        init_weights(self, LRELU_SLOPE)

    def _pair(self, a: Tensor, b: Tensor) -> Tensor:
        return self.main(torch.cat([a, b], dim=1))


class Extractor(_CodePairNet):
    """X, Table 4: dexp = X(C_RB, C_RN), the expression attribute of the reference (Eq. 2)."""

    def forward(self, c_ref: Tensor, c_ref_neutral: Tensor) -> Tensor:
        return self._pair(c_ref, c_ref_neutral)


class Interpolator(_CodePairNet):
    """I, Table 4: code = I(C_IN, alpha * dexp) (Eq. 6-7). The intensity alpha is applied by the
    caller: `dexp` here is already scaled, exactly as the paper writes I(C_IN, alpha dexp)."""

    def forward(self, c_neutral: Tensor, dexp: Tensor) -> Tensor:
        return self._pair(c_neutral, dexp)


class CodeCritic(nn.Module):
    """The code discriminator of Table 5 (WGAN-GP critic of Eq. 12-13): 1x1 conv 256 + IN +
    LReLU, 4x4/2 conv 512 + IN + LReLU, 4x4/2 conv 1024 + IN + LReLU, 2x2/2 conv 1024 (plain).
    `forward(code: B,C,8,8) -> B` scores.

    Table 5 stops at a 1024 x 1 x 1 map; a WGAN critic needs one scalar per sample, so a learned
    linear layer (1024 -> 1) reads it out (a fixed channel mean would be the special case of
    equal weights)."""

    def __init__(self, net: NetConfig) -> None:
        super().__init__()
        c1, c2, c3 = net.ch(256), net.ch(512), net.ch(1024)
        self.main = nn.Sequential(
            nn.Conv2d(net.code_channels, c1, 1, 1, 0, bias=False),
            instance_norm(c1),
            nn.LeakyReLU(LRELU_SLOPE),
            nn.Conv2d(c1, c2, 4, 2, 1, bias=False),
            instance_norm(c2),
            nn.LeakyReLU(LRELU_SLOPE),
            nn.Conv2d(c2, c3, 4, 2, 1, bias=False),
            instance_norm(c3),
            nn.LeakyReLU(LRELU_SLOPE),
            nn.Conv2d(c3, c3, 2, 2, 0),
        )
        side = net.image_size // 128  # code 8x8 -> 4 -> 2 -> 1
        self.score = nn.Linear(c3 * side * side, 1)
        init_weights(self, LRELU_SLOPE)

    def forward(self, code: Tensor) -> Tensor:
        return self.score(torch.flatten(self.main(code), 1)).squeeze(1)


class Regularizer(nn.Module):
    """Q, Table 8: 8x8 conv to 512 x 1 x 1 + BN + LReLU, FC 128 + BN + LReLU, FC 16.
    `forward(dexp: B,C,8,8) -> B,q_out`: mean and log-variance of a diagonal Gaussian over the
    reduced Psi features (see `losses.regularizer_nll`, Eq. 3)."""

    def __init__(self, net: NetConfig) -> None:
        super().__init__()
        c = net.ch(512)
        self.main = nn.Sequential(
            nn.Conv2d(net.code_channels, c, kernel_size=net.image_size // 16, bias=False),
            nn.BatchNorm2d(c),
            nn.LeakyReLU(LRELU_SLOPE),
            nn.Flatten(1),
            nn.Linear(c, net.q_hidden, bias=False),
            nn.BatchNorm1d(net.q_hidden),
            nn.LeakyReLU(LRELU_SLOPE),
            nn.Linear(net.q_hidden, net.q_out),
        )
        init_weights(self, LRELU_SLOPE)

    def forward(self, dexp: Tensor) -> Tensor:
        return self.main(dexp)


class Siamese(nn.Module):
    """S, Table 9: six 4x4/2 convs (64, 128, 256, 512, 1024, 1024) with IN + LReLU, 128 -> 2,
    then FC -> `net.siamese_dim`. `forward(img: B,3,128,128) -> B,dim` (Eq. 9-10).

    Table 9's last conv lists output "2048 x 2 x 2" but channel 1024; we use 1024 (the channel
    column, the doubling stops at 1024 like Table 5), so the FC reads 1024 * 2 * 2 = 4096."""

    def __init__(self, net: NetConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for paper_ch in (64, 128, 256, 512, 1024, 1024):
            cout = net.ch(paper_ch)
            layers += [nn.Conv2d(cin, cout, 4, 2, 1, bias=False), instance_norm(cout), nn.LeakyReLU(LRELU_SLOPE)]
            cin = cout
        self.main = nn.Sequential(*layers)
        side = net.image_size // 64
        self.fc = nn.Linear(cin * side * side, net.siamese_dim)
        init_weights(self, LRELU_SLOPE)

    def forward(self, img: Tensor) -> Tensor:
        return self.fc(torch.flatten(self.main(img), 1))


def build_leed_networks(net: NetConfig) -> dict[str, nn.Module]:
    """The trainable LEED networks by name: E, D, X, I, critic (Table 5), Q, S."""
    return {
        "E": Encoder(net),
        "D": Decoder(net),
        "X": Extractor(net),
        "I": Interpolator(net),
        "critic": CodeCritic(net),
        "Q": Regularizer(net),
        "S": Siamese(net),
    }
