"""A trained run, loaded for inference (export, evaluation): the frozen networks of the
per-frame chain, rebuilt from the run's own config and its last complete checkpoints, and the
`Leed` model that runs them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from leed_runtime.errors import LeedError
from leed_train.checkpoint import latest_checkpoint, load_weights
from leed_train.config import TrainConfig
from leed_train.model import Leed
from leed_train.networks import build_leed_networks
from leed_train.stage_neutralizer import label_space
from leed_train.stargan import Generator, Neutralizer


@dataclass
class TrainedRun:
    cfg: TrainConfig
    run_dir: Path
    nets: dict[str, torch.nn.Module]  # G (neutralizer generator), E, D, X, I; eval mode
    c_dim: int
    neutral_index: int
    checkpoints: dict[str, Path]  # stage -> checkpoint folder used
    leed: Leed = field(init=False)  # the chain on these networks (G with its target fixed to "neutral")

    def __post_init__(self) -> None:
        E, X, I, D = (self.nets[k] for k in ("E", "X", "I", "D"))
        self.leed = Leed(self.neutralizer(), E, X, I, D)

    def neutralizer(self) -> torch.nn.Module:
        """G with its target fixed to "neutral": image -> neutral face (its label on G's device)."""
        G = self.nets["G"]
        return Neutralizer(G, self.c_dim, self.neutral_index).to(next(G.parameters()).device).eval()

    @torch.no_grad()
    def edit(self, face: torch.Tensor, reference: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
        """The full chain in PyTorch (`Leed.edit` of `Leed.reference`), clamped to [-1, 1]."""
        return self.leed(face, reference, alpha).float().clamp(-1, 1)


def load_trained(run_dir: Path | str, device: str | torch.device = "cpu") -> TrainedRun:
    """Rebuild G, E, D, X, I from `run_dir/config.json` and load the last checkpoints."""
    run_dir = Path(run_dir)
    cfg = TrainConfig.load(run_dir / "config.json")
    c_dim, neutral = label_space(cfg.gan_labels)
    G = Generator(cfg.net, c_dim)
    leed = build_leed_networks(cfg.net)
    nets = {"G": G, **{k: leed[k] for k in ("E", "D", "X", "I")}}
    used = {}
    for stage, names in (("neutralizer", ["G"]), ("leed", ["E", "D", "X", "I"])):
        ckpt = latest_checkpoint(run_dir, stage)
        if ckpt is None:
            raise LeedError(
                f"{run_dir}: no {stage} checkpoint; train it first (`leed-train DATA --out {run_dir} --stage {stage}`)"
            )
        load_weights(ckpt, {k: nets[k] for k in names}, map_location=device)
        used[stage] = ckpt
    for m in nets.values():
        m.to(device).eval()
    return TrainedRun(cfg=cfg, run_dir=run_dir, nets=nets, c_dim=c_dim, neutral_index=neutral, checkpoints=used)
