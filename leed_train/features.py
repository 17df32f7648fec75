"""Fixed feature networks: Phi, the network of the perceptual loss (Eq. 14-15: the paper's
VGG19, or ImageNet MobileNetV2), and Psi, the expression classifier whose penultimate features
F_RB feed the regularizer Q (Eq. 3).

torchvision is not a dependency: `VGG19Features`, `MobileNetV2Features` and `ResNet18` are
written here with torchvision's layer layout, so torchvision's own weight files
(`vgg19-dcbb9e9d.pth`, `mobilenet_v2-b0353104.pth`) load unchanged; `leed_train.weights`
finds and checks them.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

from leed_runtime.errors import LeedError
from leed_train import weights
from leed_train.config import PERCEPTUAL
from leed_train.fer import ExpressionClassifier, load_fer

VGG19_URL = "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"
VGG19_FILE = "vgg19-dcbb9e9d.pth"
# torchvision vgg19 "E" configuration, cut after relu4_4 (features[26]).
_VGG19_PLAN = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512)
VGG19_TAPS = {3: "relu1_2", 8: "relu2_2", 17: "relu3_4", 26: "relu4_4"}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PERCEPTUAL_SEED = 0


class VGG19Features(nn.Module):
    """Phi of Eq. 14-15: torchvision's `vgg19().features[:27]` (same indices, so a torchvision
    state dict's `features.N.weight/bias` keys load), returning relu1_2, relu2_2, relu3_4 and
    relu4_4 (the layers of Johnson et al.'s perceptual loss and of the VAE/GAN decoders the
    paper follows [9, 33]; conv5 is dropped). `forward(x in [-1, 1]) -> list of 4 maps`; the
    ImageNet normalisation is done inside."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for item in _VGG19_PLAN:
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(cin, int(item), 3, 1, 1), nn.ReLU()]
                cin = int(item)
        self.features = nn.Sequential(*layers)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: Tensor) -> list[Tensor]:
        h = ((x + 1.0) * 0.5 - self.mean) / self.std
        taps = []
        for i, layer in enumerate(self.features):
            h = layer(h)
            if i in VGG19_TAPS:
                taps.append(h)
        return taps


def load_vgg19_weights(model: VGG19Features, path: str | Path | None = None) -> None:
    """Load torchvision's ImageNet VGG19 weights into `model`: from `path`, else torch hub's
    cache (`<torch.hub.get_dir()>/checkpoints/vgg19-dcbb9e9d.pth`), else by download. Keys of
    layers past relu4_4 (conv5, classifier) are ignored. Raises LeedError when none works."""
    cached = Path(torch.hub.get_dir()) / "checkpoints" / VGG19_FILE
    hint = (
        f"put torchvision's {VGG19_FILE} ({VGG19_URL}) at {cached}, "
        "or train with --perceptual random-vgg19 or --perceptual pixels (lower quality)"
    )
    if path is not None:
        if not Path(path).is_file():
            raise LeedError(f"VGG19 weights {path} do not exist; {hint}")
        state = torch.load(path, map_location="cpu", weights_only=True)
    elif cached.is_file():
        state = torch.load(cached, map_location="cpu", weights_only=True)
    else:
        try:
            state = torch.hub.load_state_dict_from_url(VGG19_URL, map_location="cpu", progress=False)
        except Exception as exc:  # no network, proxy, disk: all end in the same advice
            raise LeedError(f"cannot download the VGG19 weights ({type(exc).__name__}: {exc}); {hint}") from None
    load_subset(model, state, "VGG19 weights", f"not torchvision's vgg19; {hint}")


def _conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Sequential:
    """torchvision's Conv2dNormActivation: conv (no bias), BatchNorm, ReLU6."""
    pad = (kernel - 1) // 2
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride, pad, groups=groups, bias=False), nn.BatchNorm2d(cout), nn.ReLU6()
    )


class InvertedResidual(nn.Module):
    """MobileNetV2's block (torchvision's names): expand 1x1, depthwise 3x3, linear 1x1."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = cin * expand
        layers: list[nn.Module] = [_conv_bn(cin, hidden, 1)] if expand != 1 else []
        layers += [_conv_bn(hidden, hidden, 3, stride, groups=hidden), nn.Conv2d(hidden, cout, 1, bias=False)]
        layers.append(nn.BatchNorm2d(cout))
        self.conv = nn.Sequential(*layers)
        self.use_res_connect = stride == 1 and cin == cout

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


# torchvision's mobilenet_v2 settings (expansion t, channels c, repeats n, stride s), cut after
# the 96-channel stage (features[13]); the taps end the stride-2/4/8/16 stages.
_MOBILENET_V2_PLAN = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1))
MOBILENET_V2_TAPS = {1: "block1", 3: "block3", 6: "block6", 13: "block13"}


class MobileNetV2Features(nn.Module):
    """Phi as ImageNet MobileNetV2: torchvision's `mobilenet_v2().features[:14]` (same keys),
    returning the outputs of blocks 1, 3, 6 and 13 (16, 24, 32 and 96 channels at 1/2 .. 1/16
    of the input) and, first, the image itself, so the loss also keeps colours in place
    (`pixel_weight`). 0.3 GFLOP at 128x128 against VGG19-to-relu4_4's 12.7, so a CPU can
    afford real features. `forward(x in [-1, 1]) -> list of 5 maps`."""

    def __init__(self, pixel_weight: float = 1.0) -> None:
        super().__init__()
        layers: list[nn.Module] = [_conv_bn(3, 32, 3, 2)]
        cin = 32
        for t, c, n, s in _MOBILENET_V2_PLAN:
            for i in range(n):
                layers.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        self.features = nn.Sequential(*layers)
        self.pixel_weight = pixel_weight
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: Tensor) -> list[Tensor]:
        h = ((x + 1.0) * 0.5 - self.mean) / self.std
        taps = [x * self.pixel_weight**0.5]
        for i, layer in enumerate(self.features):
            h = layer(h)
            if i in MOBILENET_V2_TAPS:
                taps.append(h)
        return taps


def load_torchvision_weights(model: nn.Module, name: str, path: str | Path | None = None) -> None:
    """Load a torchvision weight file (`leed_train.weights` row `name`, sha256-checked) into
    `model`, whose keys are a subset of the file's; raises LeedError when it does not fit."""
    file = weights.locate(name, path)
    load_subset(model, torch.load(file, map_location="cpu", weights_only=True), str(file), f"not torchvision's {name}")


def load_subset(model: nn.Module, state: dict[str, Tensor], what: str, fix: str) -> None:
    """Load the entries of `state` that `model` has (a torchvision file holds more layers than
    the taps need); LeedError naming `what` when one is missing or has another shape."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    if missing:
        raise LeedError(f"{what} lack {', '.join(missing[:4])}: {fix}")
    for key, value in own.items():
        if state[key].shape != value.shape:
            raise LeedError(f"{what}: {key} has shape {tuple(state[key].shape)}, expected {tuple(value.shape)}")
    model.load_state_dict({k: state[k] for k in own})


class _Pixels(nn.Module):
    """The `pixels` perceptual mode: the image itself as the only 'feature map' (pixel MSE)."""

    def forward(self, x: Tensor) -> list[Tensor]:
        return [x]


def _frozen(module: nn.Module, device: torch.device | str) -> nn.Module:
    module.requires_grad_(False)
    return module.to(device).eval()


def build_perceptual(mode: str, device: torch.device | str) -> nn.Module:
    """Phi for Eq. 14-15, frozen and in eval mode.

    - "vgg19": ImageNet VGG19 (the paper's choice); raises LeedError without weights.
    - "mobilenet_v2": ImageNet MobileNetV2 plus the pixels; raises LeedError without weights.
    - "random-vgg19": the same network with seeded random weights, warned about.
    - "pixels": the pixels themselves (`perceptual_loss` becomes pixel MSE), warned about.
    """
    if mode == "vgg19":
        model = VGG19Features()
        load_vgg19_weights(model)
        return _frozen(model, device)
    if mode == "mobilenet_v2":
        model = MobileNetV2Features()
        load_torchvision_weights(model, "mobilenet_v2")
        return _frozen(model, device)
    if mode == "random-vgg19":
        warnings.warn(
            "--perceptual random-vgg19: the perceptual loss uses an untrained VGG19 "
            "(random features); expect blurrier reconstructions than with ImageNet VGG19",
            stacklevel=2,
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(PERCEPTUAL_SEED)
            model = VGG19Features()
        return _frozen(model, device)
    if mode == "pixels":
        warnings.warn(
            "--perceptual pixels: reconstruction is pixel MSE, no perceptual features; "
            "expect clearly blurrier reconstructions than with ImageNet VGG19",
            stacklevel=2,
        )
        return _frozen(_Pixels(), device)
    raise LeedError(f"--perceptual {mode!r} is unknown; choose one of {', '.join(PERCEPTUAL)}")


def check_perceptual(mode: str) -> None:
    """Raise LeedError now if `build_perceptual(mode)` would fail for want of weights."""
    if mode == "vgg19":
        weights.locate("vgg19")
    elif mode == "mobilenet_v2":
        weights.locate("mobilenet_v2")


def check_feature_model(spec: str) -> None:
    """Raise LeedError now if `load_feature_model(spec)` would fail for want of its file."""
    if spec == "fer":
        weights.locate("fer")
    elif not Path(spec).is_file():
        raise LeedError(f"--psi {spec} does not exist; use --psi fer or train one with `leed-train --stage psi`")


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 convs with BN, identity or 1x1-conv shortcut."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()
        self.downsample: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.downsample(x))


class ResNet18(nn.Module):
    """Psi (paper Sec. 3.2, [21]): standard ResNet-18 (BasicBlock, [2, 2, 2, 2]; torchvision's
    module names) with stem width `width`. Input: B,3,128,128 in [-1, 1].
    `features(x) -> B, 8*width` (after global average pooling, i.e. the penultimate layer whose
    output is F_RB); `forward(x) -> B, num_classes` logits."""

    def __init__(self, num_classes: int, width: int = 64) -> None:
        super().__init__()
        self.num_classes, self.width = num_classes, width
        self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin = width
        for i, (mult, stride) in enumerate(((1, 1), (2, 2), (4, 2), (8, 2)), start=1):
            cout = width * mult
            setattr(self, f"layer{i}", nn.Sequential(BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)))
            cin = cout
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def features(self, x: Tensor) -> Tensor:
        h = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        h = self.layer4(self.layer3(self.layer2(self.layer1(h))))
        return torch.flatten(self.avgpool(h), 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.features(x))


def _resnet_from_safetensors(path: Path) -> ResNet18:
    from safetensors import safe_open
    from safetensors.torch import load_file

    state = load_file(str(path))
    head = next((k for k in sorted(state, key=len) if k == "fc.weight" or k.endswith(".fc.weight")), "")
    prefix = head[: -len("fc.weight")]
    state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    if "fc.weight" not in state or "conv1.weight" not in state:
        raise LeedError(
            f"{path}: not a leed ResNet18 checkpoint (no fc.weight / conv1.weight); train one with --stage psi"
        )
    num_classes, width = state["fc.weight"].shape[0], state["conv1.weight"].shape[0]
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    sidecar = path.with_suffix(".json")
    if not meta and sidecar.is_file():
        meta = json.loads(sidecar.read_text())
    for key, got in (("num_classes", num_classes), ("width", width)):
        if key in meta and int(meta[key]) != got:
            raise LeedError(f"{path}: metadata says {key}={meta[key]} but the weights have {got}")
    model = ResNet18(num_classes, width)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise LeedError(f"{path}: does not match ResNet18({num_classes}, width={width}): {exc}") from None
    return model


def load_feature_model(path: str | Path, device: torch.device | str) -> Callable[[Tensor], Tensor]:
    """Psi as a frozen function `images (B,3,128,128 in [-1,1]) -> features (B,F)`, from
    - `fer` or fer's `.hdf5`: the real expression classifier (`leed_train.fer`), its 128 pooled
      features of the last residual block;
    - `.safetensors`: our `ResNet18` (num_classes and width are read from the weight shapes and
      checked against safetensors metadata or a `.json` sidecar when those exist); features are
      its penultimate (pooled) layer;
    - `.pt` / `.ts`: a TorchScript module whose forward returns the features;
    - `.onnx`: a graph whose first output is the features, run by onnxruntime on the CPU (numpy in
      and out; the result is moved back to the input's device).
    Raises LeedError for a missing file or another suffix."""
    if str(path) == "fer":
        path = weights.locate("fer")
    path = Path(path)
    if not path.is_file():
        raise LeedError(f"--psi {path} does not exist; train one with `leed-train --stage psi`")
    suffix = path.suffix.lower()
    if suffix in (".hdf5", ".h5"):
        classifier = ExpressionClassifier(load_fer(path).to(device))

        def run_fer(x: Tensor) -> Tensor:
            return classifier.features(x)

        return run_fer
    if suffix == ".safetensors":
        net = _frozen(_resnet_from_safetensors(path), device)

        def run_resnet(x: Tensor) -> Tensor:
            with torch.no_grad():
                return net.features(x)

        return run_resnet
    if suffix in (".pt", ".ts"):
        scripted = torch.jit.load(str(path), map_location=device).eval()
        for param in scripted.parameters():
            param.requires_grad_(False)

        def run_script(x: Tensor) -> Tensor:
            with torch.no_grad():
                return scripted(x)

        return run_script
    if suffix == ".onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name

        def run_onnx(x: Tensor) -> Tensor:
            out = session.run(None, {name: x.detach().float().cpu().numpy()})[0]
            return torch.from_numpy(out).to(x.device)

        return run_onnx
    raise LeedError(f"--psi {path}: unknown format {suffix!r}; use .safetensors, .pt/.ts (TorchScript) or .onnx")
