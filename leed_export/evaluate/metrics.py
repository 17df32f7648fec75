"""Measures of `leed-eval`'s exact protocol: SSIM/PSNR (scikit-image), the Frechet distance, a
small ResNet-18 classifier (expression accuracy of Table 2, identity probe), verification
accuracy, and the per-method and neutralizer rows built from them."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy import linalg
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from tqdm import tqdm

from leed_export.evaluate.config import EvalConfig
from leed_export.evaluate.data import EvalData, Pairs, as_tensor
from leed_export.evaluate.editors import Editor
from leed_train.data.names import EXPRESSIONS
from leed_train.features import ResNet18

PSNR_CAP = 100.0  # dB reported for identical images (scikit-image returns inf; JSON has no inf)


def _hwc(image: np.ndarray | torch.Tensor) -> tuple[np.ndarray, float]:
    """One image as float64 HxWx3 and its data range: 255 for uint8, 2 for [-1, 1] floats (CHW or HWC)."""
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().numpy()
    data_range = 255.0 if image.dtype == np.uint8 else 2.0
    if image.ndim == 3 and image.shape[0] == 3 and image.shape[-1] != 3:
        image = image.transpose(1, 2, 0)
    return image.astype(np.float64), data_range


def ssim(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor) -> float:
    """SSIM of two RGB images of the same kind (uint8, or floats in [-1, 1]), as the paper: on the crops."""
    (x, rng), (y, _) = _hwc(a), _hwc(b)
    return float(structural_similarity(x, y, channel_axis=-1, data_range=rng))


def psnr(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor) -> float:
    """PSNR in dB, capped at PSNR_CAP for identical images."""
    (x, rng), (y, _) = _hwc(a), _hwc(b)
    if np.array_equal(x, y):
        return PSNR_CAP
    return float(min(peak_signal_noise_ratio(x, y, data_range=rng), PSNR_CAP))


def frechet_distance(feats_a: np.ndarray, feats_b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)) of two (N, D) feature sets (FID's formula)."""
    a, b = np.asarray(feats_a, np.float64), np.asarray(feats_b, np.float64)
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    root = linalg.sqrtm(cov_a @ cov_b)
    if not np.isfinite(root).all():  # singular product: regularise as pytorch-fid does
        eps = np.eye(len(cov_a)) * 1e-6
        root = linalg.sqrtm((cov_a + eps) @ (cov_b + eps))
    value = ((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(np.real(root))
    return float(max(value, 0.0))


def verification_accuracy(probe: np.ndarray, same: np.ndarray, other: np.ndarray) -> float:
    """Fraction of rows i where cos(probe_i, same_i) > cos(probe_i, other_i): is the image closer
    to a real image of its own subject than to one of another subject?"""

    def unit(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float64)
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

    p, s, o = unit(probe), unit(same), unit(other)
    return float(((p * s).sum(1) > (p * o).sum(1)).mean())


def downsample(images: np.ndarray | torch.Tensor, size: int) -> torch.Tensor:
    """uint8 NHWC crops or float NCHW [-1, 1] images -> float NCHW [-1, 1] at `size` (antialiased)."""
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(np.array(images, np.uint8, copy=True)).permute(0, 3, 1, 2).float() / 127.5 - 1
    images = images.float()
    if images.shape[-1] != size:
        images = F.interpolate(images, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return images.clamp(-1, 1)


def train_classifier(
    images: torch.Tensor,
    labels: np.ndarray,
    num_classes: int,
    width: int = 16,
    epochs: int = 6,
    batch_size: int = 64,
    lr: float = 2e-3,
    seed: int = 0,
    desc: str = "classifier",
) -> ResNet18:
    """A ResNet-18 (stem width `width`) trained with Adam, a cosine schedule and random flips on
    `images` (N,3,S,S in [-1,1]); returned in eval mode."""
    torch.manual_seed(seed)
    model = ResNet18(num_classes, width=width)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    y = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    rng = np.random.default_rng(seed)
    per_epoch = -(-len(images) // batch_size)
    steps, step = epochs * per_epoch, 0
    model.train()
    with tqdm(total=steps, desc=desc, unit="step", leave=False) as bar:
        for _ in range(epochs):
            order = rng.permutation(len(images))
            for start in range(0, len(order), batch_size):
                idx = torch.from_numpy(order[start : start + batch_size])
                flip = torch.from_numpy(rng.random(len(idx)) < 0.5).view(-1, 1, 1, 1)
                x = torch.where(flip, images[idx].flip(3), images[idx])
                for group in opt.param_groups:
                    group["lr"] = lr * 0.5 * (1 + np.cos(np.pi * step / steps))
                loss = F.cross_entropy(model(x), y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                step += 1
                bar.update()
    return model.eval()


@torch.no_grad()
def predict(model: ResNet18, images: torch.Tensor, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """(predicted classes (N,), penultimate features (N, F)) of `images`."""
    preds, feats = [], []
    for i in range(0, len(images), batch_size):
        f = model.features(images[i : i + batch_size])
        feats.append(f.numpy())
        preds.append(model.fc(f).argmax(1).numpy())
    return np.concatenate(preds), np.concatenate(feats)


def accuracy(model: ResNet18, images: torch.Tensor, labels: np.ndarray) -> float:
    """Fraction of `images` classified as `labels`."""
    return float((predict(model, images)[0] == np.asarray(labels)).mean())


def subsample(n: int, cap: int, rng: np.random.Generator) -> np.ndarray:
    """Up to `cap` of range(n), seeded, sorted."""
    return np.sort(rng.permutation(n)[:cap])


def fit_classifiers(cfg: EvalConfig, data: EvalData) -> dict:
    """The expression classifier R (Table 2) and the identity probe, both on training images."""
    rng = np.random.default_rng(cfg.seed + 2)
    idx = subsample(len(data.train), cfg.classifier_images, rng)
    x = downsample(data.train_crops[idx], cfg.classifier_size)
    expr = np.array([EXPRESSIONS.index(data.train[i].expression) for i in idx])
    people = sorted({data.train[i].subject for i in idx})
    who = np.array([people.index(data.train[i].subject) for i in idx])
    kw = {"width": cfg.classifier_width, "epochs": cfg.classifier_epochs, "seed": cfg.seed}
    return {
        "train_x": x,
        "train_y": expr,
        "expr": train_classifier(x, expr, len(EXPRESSIONS), desc="expression classifier (R)", **kw),
        "probe": train_classifier(x, who, len(people), desc="identity probe", **kw),
        "probe_subjects": len(people),
    }


@torch.no_grad()
def inception_features(model, images: torch.Tensor) -> np.ndarray:
    """Pooled Inception features of 128x128 images resized to 299x299."""
    big = torch.nn.functional.interpolate(images, size=(299, 299), mode="bilinear", align_corners=False)
    return torch.cat([model(big[i : i + 32]).flatten(1).cpu() for i in range(0, len(big), 32)]).numpy()


def method_metrics(
    cfg: EvalConfig, images: torch.Tensor, truth: np.ndarray, pairs: Pairs, clf: dict, real: dict, inception
) -> dict:
    """SSIM/PSNR against the ground truth, G and R+G accuracy, FD-expr, identity verification."""
    truth_t = as_tensor(truth)
    small = downsample(images, cfg.classifier_size)
    _, feats = predict(clf["expr"], small)
    rg = train_classifier(
        torch.cat([clf["train_x"], small]),
        np.concatenate([clf["train_y"], pairs.target]),
        len(EXPRESSIONS),
        width=cfg.classifier_width,
        epochs=cfg.classifier_epochs,
        seed=cfg.seed,
        desc="classifier (R+G)",
    )
    keep, _, _ = real["triplets"]
    _, id_feats = predict(clf["probe"], small[keep])
    out = {
        "pairs": len(images),
        "ssim": float(np.mean([ssim(a, b) for a, b in zip(images, truth_t, strict=True)])),
        "psnr": float(np.mean([psnr(a, b) for a, b in zip(images, truth_t, strict=True)])),
        "G": 100 * accuracy(clf["expr"], small, pairs.target),
        "R+G": 100 * accuracy(rg, real["test_x"], real["test_y"]),
        "fd_expr": frechet_distance(real["expr_feats"], feats),
        "id_verification": 100 * verification_accuracy(id_feats, real["id_same"], real["id_other"]),
    }
    if inception is not None:
        out["fid"] = frechet_distance(real["inception"], inception_features(inception, images))
    return out


def neutralizer_metrics(
    cfg: EvalConfig, editor: Editor, data: EvalData, clf: dict, targets: np.ndarray, has: np.ndarray
) -> dict | None:
    """Stage 1 on its own: every held-out expressive image with its subject's neutral photo at
    the same angle and gaze (re-warped into its crop), neutralized by the model. How often the
    expression classifier calls the output neutral, and its SSIM to that photo; the same for
    the input left unchanged and for the photo itself (the ceiling). None without such pairs.
    `targets`, `has`: `neutral_targets` of the pool."""
    held = data.pool[: data.n_held]
    idx = np.flatnonzero(has[: data.n_held] & np.array([s.expression != "neutral" for s in held]))
    if not len(idx):
        return None
    neutral_class = EXPRESSIONS.index("neutral")

    def measure(images: torch.Tensor) -> dict:
        pred, _ = predict(clf["expr"], downsample(images, cfg.classifier_size))
        truth = as_tensor(targets[idx])
        return {
            "classified_neutral": 100 * float(np.mean(pred == neutral_class)),
            "ssim": float(np.mean([ssim(a, b) for a, b in zip(images, truth, strict=True)])),
        }

    inputs = as_tensor(data.crops[idx])
    return {
        "faces": len(idx),
        "G(x, neutral)": measure(editor.neutral(inputs)),
        "input x unchanged": measure(inputs),
        "own neutral photo (ceiling)": measure(as_tensor(targets[idx])),
    }
