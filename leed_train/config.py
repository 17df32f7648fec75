"""Config dataclasses: one per job, defaults only here, saved as JSON with every output.

`NetConfig` is the architecture (rebuilt from the run dir, never from the command line on
resume); `TrainConfig` is everything else of `leed-train`. The `paper` preset is
supplementary Tables 4-9 exactly; `small` halves every width (about 1/4 of the FLOPs);
`tiny` divides them by 8 and shortens StarGAN, for CPU tests.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from leed_runtime.errors import LeedError

PRESETS = ("paper", "small", "compact", "tiny")
STAGES = ("all", "neutralizer", "leed", "psi")
NEUTRALS = ("generator", "photos")
AMP = ("auto", "bf16", "off")
PERCEPTUAL = ("vgg19", "mobilenet_v2", "random-vgg19", "pixels")


@dataclass
class NetConfig:
    """Widths of every network. `width` scales the paper's channel counts."""

    preset: str = "paper"
    image_size: int = 128  # crops are 128x128 for every preset (runtime template)
    width: float = 1.0  # multiplier on the paper's channels (E, D, X, I, critic, Q, S)
    code_channels: int = 512  # C: encoder output is C x 8 x 8 (Table 6)
    q_hidden: int = 128  # Table 8
    q_out: int = 16  # Table 8: Q's 16 outputs (see losses.regularizer_nll)
    siamese_dim: int = 1024  # Table 9 final FC
    stargan_conv_dim: int = 64  # yunjey/stargan g_conv_dim
    stargan_repeat: int = 6  # residual blocks in G
    stargan_mask: bool = False  # G paints through a mask (GANimation); not in StarGAN
    stargan_d_conv_dim: int = 64
    stargan_d_repeat: int = 6  # strided convs in StarGAN's D (128 -> 2)
    psi_width: int = 64  # ResNet-18 stem width (64 = standard)

    @staticmethod
    def from_preset(preset: str) -> NetConfig:
        if preset == "paper":
            return NetConfig(preset="paper")
        if preset == "small":
            return NetConfig(
                preset="small",
                width=0.5,
                code_channels=256,
                q_hidden=64,
                siamese_dim=512,
                stargan_conv_dim=32,
                stargan_d_conv_dim=32,
                psi_width=32,
            )
        if preset == "compact":  # between small and tiny: what a CPU can train on real faces in hours
            return NetConfig(
                preset="compact",
                width=0.25,
                code_channels=128,
                q_hidden=32,
                siamese_dim=256,
                stargan_conv_dim=16,
                stargan_repeat=4,
                stargan_d_conv_dim=16,
                stargan_d_repeat=6,
                psi_width=16,
            )
        if preset == "tiny":
            return NetConfig(
                preset="tiny",
                width=0.125,
                code_channels=64,
                q_hidden=32,
                siamese_dim=128,
                stargan_conv_dim=8,
                stargan_repeat=2,
                stargan_d_conv_dim=8,
                stargan_d_repeat=6,
                psi_width=8,
            )
        raise LeedError(f"--preset {preset!r} is unknown; choose one of {', '.join(PRESETS)}")

    def ch(self, paper_channels: int) -> int:
        """A paper channel count scaled by `width` (at least 4)."""
        return max(4, int(round(paper_channels * self.width)))


@dataclass
class TrainConfig:
    """Every option of `leed-train`; flags map 1:1 to these fields."""

    data_dir: str = ""
    out: str = "runs/leed"
    stage: str = "all"  # all | neutralizer | leed | psi
    preset: str = "paper"
    data_format: str = "auto"  # auto | rafd | faces-tw | cfeed | folder
    val_fraction: float = 0.1  # share of the subjects held out (split by subject)
    angles: tuple[str, ...] = ()  # RaFD camera angles to use, e.g. ("045", "090", "135"); () = all
    gazes: tuple[str, ...] = ()  # RaFD gazes; () = all
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    workers: int = 4
    # --- LEED stage (paper Sec. 8) ---
    epochs: int = 100
    max_steps: int = 0  # > 0 stops early (smoke runs); the lr schedule still follows `epochs`
    batch_size: int = 24
    lr: float = 1e-4
    lr_decoder: float = 0.0  # > 0: D's learning rate (same schedule); 0 = lr
    beta1: float = 0.5
    beta2: float = 0.999
    lambda_q: float = 0.01
    lambda_recon: float = 10.0
    lambda_s: float = 1000.0
    lambda_gp: float = 100.0
    lambda_adv: float = 1.0  # Eq. 13's weight (the paper: 1); the Wasserstein form's scale differs from log D
    n_critic: int = 5  # critic updates per step (WGAN-GP's recipe; the paper gives none)
    siamese_margin: float = 0.5  # TraVeLGAN-style margin keeping S from collapsing
    use_q: bool = True  # --no-q ablation (Fig. 3)
    use_siamese: bool = True  # --no-siamese ablation (Fig. 3)
    perceptual: str = "vgg19"  # vgg19 | mobilenet_v2 | random-vgg19 | pixels
    psi: str = ""  # "fer" (fer's real classifier), a psi checkpoint (.safetensors), fer's .hdf5, TorchScript/ONNX
    # --- neutralizer stage (yunjey/stargan recipe) ---
    gan_iters: int = 200_000
    gan_decay_iters: int = 100_000
    gan_batch_size: int = 16
    gan_lr: float = 1e-4
    gan_n_critic: int = 5
    gan_lambda_cls: float = 1.0
    gan_lambda_rec: float = 10.0
    gan_lambda_gp: float = 10.0
    gan_labels: str = "binary"  # binary (neutral / expressive) | expression (8 classes)
    # Not in the paper: L1 from G(x, neutral) to the same subject's neutral photo at the same
    # angle and gaze (RaFD and leed-synth have one), re-warped to x's alignment. 0 = off.
    gan_lambda_pair: float = 0.0
    # Not in the paper: stage 1 as a plain regression, G(x, neutral) -> that neutral photo by L1
    # alone (no D, no cycle; needs the photos). Faster per step and it learns to close a mouth.
    gan_pair_only: bool = False
    gan_conv_dim: int = 0  # > 0: G's first width instead of the preset's (stargan_conv_dim)
    gan_repeat: int = 0  # > 0: G's residual blocks instead of the preset's (stargan_repeat)
    gan_mask: bool = False  # G paints through a mask, copying the rest of the face (stargan_mask)
    # Stage 2's neutral faces: "generator" (the paper: G's output, cached after stage 1) or, not in
    # the paper, "photos" (each subject's own neutral photo, re-warped; stage 2 needs no stage 1).
    neutrals: str = "generator"
    # --- psi stage ---
    psi_epochs: int = 30
    psi_lr: float = 1e-3
    # --- bookkeeping ---
    amp: str = "auto"  # auto (bf16 on CUDA) | bf16 (CUDA and CPU) | off
    channels_last: bool = True
    log_every: int = 50
    sample_every: int = 1000
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    resume: bool = False
    net: NetConfig = field(default_factory=NetConfig)

    def resolved(self) -> TrainConfig:
        """Fill `net` from `preset` and validate option values."""
        if self.stage not in STAGES:
            raise LeedError(f"--stage {self.stage!r} is unknown; choose one of {', '.join(STAGES)}")
        cfg = dataclasses.replace(self)
        if cfg.perceptual == "l1":  # the former, misleading name of "pixels" (it was always MSE)
            cfg.perceptual = "pixels"
        if cfg.perceptual not in PERCEPTUAL:
            raise LeedError(f"--perceptual {cfg.perceptual!r} is unknown; choose one of {', '.join(PERCEPTUAL)}")
        if self.neutrals not in NEUTRALS:
            raise LeedError(f"--neutrals {self.neutrals!r} is unknown; choose one of {', '.join(NEUTRALS)}")
        if self.amp not in AMP:
            raise LeedError(f"--amp {self.amp!r} is unknown; choose one of {', '.join(AMP)}")
        if not 0.0 <= self.val_fraction < 0.5:
            raise LeedError(f"--val-fraction {self.val_fraction} is outside 0..0.5; e.g. 0.2 holds out 1 in 5 people")
        if self.batch_size < 2:
            raise LeedError(f"--batch-size {self.batch_size} is too small: pairs need at least 2")
        if cfg.net.preset != cfg.preset:
            cfg.net = NetConfig.from_preset(cfg.preset)
        cfg.net = cfg.generator_architecture(cfg.net)
        if cfg.gan_mask and not (cfg.gan_pair_only or cfg.gan_lambda_pair > 0) and cfg.stage in ("all", "neutralizer"):
            raise LeedError(
                "--gan-mask needs --gan-pair-only or --gan-pair-l1: without a neutral photo to match, "
                "nothing keeps G's mask from copying the input"
            )
        return cfg

    def generator_architecture(self, net: NetConfig) -> NetConfig:
        """`net` with `--gan-conv-dim` / `--gan-repeat` / `--gan-mask` applied to StarGAN's generator."""
        if self.gan_conv_dim < 0 or self.gan_repeat < 0:
            raise LeedError("--gan-conv-dim and --gan-repeat take a positive number (0: the preset's)")
        return dataclasses.replace(
            net,
            stargan_conv_dim=self.gan_conv_dim or net.stargan_conv_dim,
            stargan_repeat=self.gan_repeat or net.stargan_repeat,
            stargan_mask=self.gan_mask or net.stargan_mask,
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    def save(self, path: str | Path) -> None:
        from leed_runtime.atomic import atomic_write_text

        atomic_write_text(Path(path), self.to_json() + "\n")

    @staticmethod
    def from_dict(data: dict[str, Any]) -> TrainConfig:
        data = dict(data)
        net = NetConfig(**_checked(NetConfig, data.pop("net", {}), "net"))
        values = _checked(TrainConfig, data, "")
        for key in ("angles", "gazes"):
            if key in values:
                values[key] = tuple(values[key])
        return TrainConfig(**values, net=net)

    @staticmethod
    def load(path: str | Path) -> TrainConfig:
        path = Path(path)
        try:
            return TrainConfig.from_dict(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError) as exc:
            raise LeedError(f"{path}: cannot read the run config ({exc}); start a new run without --resume") from None


def _checked(cls: type, data: dict[str, Any], prefix: str) -> dict[str, Any]:
    names = [f.name for f in fields(cls)]
    for key in data:
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise LeedError(f"unknown config key {prefix + '.' if prefix else ''}{key!r}{hint}")
    return data
