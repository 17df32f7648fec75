"""MTCNN (Zhang et al. 2016): facenet-pytorch 2.6.0's `PNet`, `RNet`, `ONet` in PyTorch.

Layer for layer as facenet-pytorch (same parameter names, so its state dicts load strictly;
the same permute-then-flatten before the dense layers, which the weights converted from
Caffe depend on), with the softmax inside and outputs in the fixed order of `OUTPUTS`.
Weights ship in `assets/mtcnn.safetensors` (MIT, see `assets/MTCNN_LICENSE.txt`); nothing
downloads. Training uses these modules to find the landmarks of images that come without
them (`data/landmarks.py`); `leed_export.detector` exports them as the runtime's graphs.

Inputs are NCHW RGB float32 images normalised as MTCNN expects: (x - 127.5) * 0.0078125.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from leed_runtime.errors import LeedError

WEIGHTS = Path(__file__).resolve().parent / "assets" / "mtcnn.safetensors"


class PNet(nn.Module):
    """Proposal net, fully convolutional: (B,3,H,W) -> prob (B,2,h,w), reg (B,4,h,w)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 10, kernel_size=3)
        self.prelu1 = nn.PReLU(10)
        self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(10, 16, kernel_size=3)
        self.prelu2 = nn.PReLU(16)
        self.conv3 = nn.Conv2d(16, 32, kernel_size=3)
        self.prelu3 = nn.PReLU(32)
        self.conv4_1 = nn.Conv2d(32, 2, kernel_size=1)
        self.softmax4_1 = nn.Softmax(dim=1)
        self.conv4_2 = nn.Conv2d(32, 4, kernel_size=1)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(image)))
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
        return self.softmax4_1(self.conv4_1(x)), self.conv4_2(x)


class RNet(nn.Module):
    """Refine net: (B,3,24,24) -> prob (B,2), reg (B,4)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 28, kernel_size=3)
        self.prelu1 = nn.PReLU(28)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(28, 48, kernel_size=3)
        self.prelu2 = nn.PReLU(48)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3 = nn.Conv2d(48, 64, kernel_size=2)
        self.prelu3 = nn.PReLU(64)
        self.dense4 = nn.Linear(576, 128)
        self.prelu4 = nn.PReLU(128)
        self.dense5_1 = nn.Linear(128, 2)
        self.softmax5_1 = nn.Softmax(dim=1)
        self.dense5_2 = nn.Linear(128, 4)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(image)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.prelu3(self.conv3(x))
        x = x.permute(0, 3, 2, 1).flatten(1)  # Caffe's (W, H, C) order, as the weights expect
        x = self.prelu4(self.dense4(x))
        return self.softmax5_1(self.dense5_1(x)), self.dense5_2(x)


class ONet(nn.Module):
    """Output net: (B,3,48,48) -> prob (B,2), reg (B,4), landmarks (B,10) (5 x then 5 y)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, kernel_size=3)
        self.prelu1 = nn.PReLU(32)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3)
        self.prelu2 = nn.PReLU(64)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3 = nn.Conv2d(64, 64, kernel_size=3)
        self.prelu3 = nn.PReLU(64)
        self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv4 = nn.Conv2d(64, 128, kernel_size=2)
        self.prelu4 = nn.PReLU(128)
        self.dense5 = nn.Linear(1152, 256)
        self.prelu5 = nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)
        self.softmax6_1 = nn.Softmax(dim=1)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(image)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.pool3(self.prelu3(self.conv3(x)))
        x = self.prelu4(self.conv4(x))
        x = x.permute(0, 3, 2, 1).flatten(1)  # Caffe's (W, H, C) order, as the weights expect
        x = self.prelu5(self.dense5(x))
        return self.softmax6_1(self.dense6_1(x)), self.dense6_2(x), self.dense6_3(x)


NETS: dict[str, type[nn.Module]] = {"pnet": PNet, "rnet": RNet, "onet": ONet}
OUTPUTS = {"pnet": ("prob", "reg"), "rnet": ("prob", "reg"), "onet": ("prob", "reg", "landmarks")}


def load_mtcnn(path: Path | None = None) -> dict[str, nn.Module]:
    """The three nets in eval mode, weights loaded strictly from `path` (default: the shipped file)."""
    path = Path(path) if path is not None else WEIGHTS
    if not path.is_file():
        raise LeedError(
            f"{path}: MTCNN weights missing; reinstall leed or rebuild them with leed_train/assets/convert_mtcnn.py"
        )
    tensors = load_file(str(path))
    nets = {}
    for name, cls in NETS.items():
        module = cls()
        prefix = f"{name}."
        module.load_state_dict({k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}, strict=True)
        nets[name] = module.eval()
    return nets
