"""`leed-bench train`: images/s and peak memory of the real stage-2 step
(`stage_leed.leed_step`) on random data of the preset's shapes."""

from __future__ import annotations

import resource
import tempfile
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from leed_export.bench.common import machine, time_calls
from leed_runtime.errors import LeedError
from leed_train import stage_leed
from leed_train.config import TrainConfig
from leed_train.features import ResNet18, build_perceptual
from leed_train.losses import FeatureReducer
from leed_train.run import Run, pick_device


@dataclass
class TrainBenchConfig:
    """Options of `leed-bench train`."""

    preset: str = "paper"
    batch_size: int = 24
    device: str = "auto"
    steps: int = 10
    warmup: int = 2
    perceptual: str = "random-vgg19"  # same FLOPs as ImageNet VGG19, needs no weights
    use_q: bool = True
    threads: int = 0


def bench_train(cfg: TrainBenchConfig) -> dict[str, Any]:
    """Images/s of `stage_leed.leed_step` on random data (batch_size pairs per step) and peak memory."""
    if cfg.steps < 1 or cfg.warmup < 0:
        raise LeedError("--steps must be >= 1 and --warmup >= 0")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    tcfg = TrainConfig(
        preset=cfg.preset, batch_size=cfg.batch_size, perceptual=cfg.perceptual, use_q=cfg.use_q, device=cfg.device
    ).resolved()
    device = pick_device(cfg.device, 0)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory(prefix="leed-bench-") as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # random weights are the point here: no quality warnings
        run = Run(cfg=tcfg, dir=Path(tmp), device=device)
        nets, opts = stage_leed.build(run)
        phi = build_perceptual(tcfg.perceptual, device)
        psi, reducer = None, None
        if tcfg.use_q:  # Psi with random weights: the same ResNet-18 cost as a trained one
            resnet = ResNet18(8, tcfg.net.psi_width).to(device).eval().requires_grad_(False)
            psi = resnet.features
            size = tcfg.net.image_size
            with torch.no_grad():
                sample = psi(torch.rand(64, 3, size, size, device=device) * 2 - 1).float().cpu()
            reducer = FeatureReducer(dim=tcfg.net.q_out // 2).fit(sample).to(device)
        size, n = tcfg.net.image_size, tcfg.batch_size
        batch = {k: torch.rand(n, 3, size, size) * 2 - 1 for k in ("ia", "ia_n", "rb", "rb_n")}
        cuda = device.type == "cuda"
        if cuda:
            torch.cuda.reset_peak_memory_stats(device)
        timing = time_calls(
            lambda: stage_leed.leed_step(run, nets, opts, phi, psi, reducer, batch),
            cfg.warmup,
            cfg.steps,
            (lambda: torch.cuda.synchronize(device)) if cuda else None,
        )
    memory = (
        {"gpu_max_allocated_mb": torch.cuda.max_memory_allocated(device) / 2**20}
        if cuda
        else {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    )
    return {
        "kind": "train",
        "machine": machine(),
        "preset": cfg.preset,
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
        "options": asdict(cfg),
        "step": timing,
        "images_per_s": n / (timing["median_ms"] / 1e3),
        **memory,
    }
