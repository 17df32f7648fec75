"""Command lines of leed_train: `leed-train` and `leed-synth`.

Each command validates its options into a config dataclass, then calls one function that
reads top to bottom. Heavy imports (torch) happen inside the command bodies.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from leed_runtime.errors import LeedError, handle_errors
from leed_train.config import AMP, NEUTRALS, PERCEPTUAL, PRESETS, STAGES, TrainConfig
from leed_train.data.names import FORMATS

TRAIN_EXAMPLE = """
\b
Examples:
  leed-synth faces data/synth --identities 60
  leed-train data/synth --check                      # dataset report, no training
  leed-train --describe --preset small               # params and GFLOPs per network
  leed-train data/synth --out runs/small --preset small
  leed-train data/synth --out runs/tiny --preset tiny --max-steps 200 --device cpu
  leed-train data/synth --out runs/small --resume    # continue from the last checkpoint
"""


def _csv(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip()) if value else ()


@click.command(epilog=TRAIN_EXAMPLE, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.argument("data_dir", required=False, type=click.Path(path_type=Path))
@click.option("--out", default=None, help="Run directory (checkpoints, config.json, samples, TensorBoard).")
@click.option("--stage", type=click.Choice(STAGES), default=None, help="[default: all]")
@click.option("--preset", type=click.Choice(PRESETS), default=None, help="[default: paper]")
@click.option(
    "--format",
    "data_format",
    type=click.Choice(FORMATS),
    default=None,
    help="[default: auto]",
)
@click.option("--angles", default="", help="RaFD camera angles to use, e.g. 045,090,135 (default: all).")
@click.option("--gazes", default="", help="RaFD gazes to use, e.g. frontal (default: all).")
@click.option(
    "--val-fraction", type=float, default=None, help="Share of the people held out for validation [default: 0.1]."
)
@click.option("--epochs", type=int, default=None, help="LEED epochs (paper: 100).")
@click.option("--max-steps", type=int, default=None, help="Stop each stage after N steps (smoke runs).")
@click.option("--batch-size", type=int, default=None, help="LEED batch size (paper: 24).")
@click.option("--gan-iters", type=int, default=None, help="StarGAN iterations (stargan: 200000).")
@click.option(
    "--gan-labels", type=click.Choice(["binary", "expression"]), default=None, help="Stage 1 labels [default: binary]."
)
@click.option("--gan-lr", type=float, default=None, help="StarGAN learning rate (stargan: 1e-4).")
@click.option("--gan-n-critic", type=int, default=None, help="StarGAN D updates per G update [default: 5].")
@click.option(
    "--gan-pair-l1",
    "gan_lambda_pair",
    type=float,
    default=None,
    help="Not in the paper: weight of an L1 from G(x, neutral) to the subject's own neutral photo "
    "at the same angle and gaze (RaFD, leed-synth). Speeds stage 1 up a lot [default: 0, off].",
)
@click.option(
    "--gan-pair-only",
    is_flag=True,
    default=None,
    help="Not in the paper: stage 1 as a plain L1 regression to each subject's own neutral photo "
    "(no D, no cycle; RaFD, leed-synth). What the shipped model's neutralizer was trained with.",
)
@click.option("--gan-conv-dim", type=int, default=None, help="StarGAN G's first width [default: the preset's].")
@click.option("--gan-repeat", type=int, default=None, help="StarGAN G's residual blocks [default: the preset's].")
@click.option(
    "--gan-mask",
    is_flag=True,
    default=None,
    help="Not in StarGAN: G paints through a mask (GANimation) and copies the rest of the face; "
    "needs --gan-pair-only or --gan-pair-l1. What the shipped model's neutralizer uses.",
)
@click.option(
    "--neutrals",
    type=click.Choice(NEUTRALS),
    default=None,
    help="Stage 2's neutral faces: generator (the paper: G's, after stage 1) or photos (not in the paper: "
    "each subject's own neutral photo; no stage 1 needed) [default: generator].",
)
@click.option(
    "--amp", type=click.Choice(AMP), default=None, help="bf16 autocast: auto (CUDA only), bf16 (CPU too), off."
)
@click.option("--n-critic", type=int, default=None, help="Code-critic updates per LEED step (WGAN-GP) [default: 5].")
@click.option("--psi-epochs", type=int, default=None, help="Epochs of --stage psi.")
@click.option("--lr", type=float, default=None, help="LEED learning rate (paper: 1e-4).")
@click.option("--lr-decoder", type=float, default=None, help="D's learning rate, if not --lr (same schedule).")
@click.option(
    "--lambda-recon",
    type=float,
    default=None,
    help="Weight of Eq. 15 in E's update (paper: 10, tuned for VGG19 features; pixel MSE needs more).",
)
@click.option(
    "--lambda-adv",
    type=float,
    default=None,
    help="Weight of Eq. 13 (paper: 1). Its Wasserstein form can outweigh Eq. 6-7 in I's update; see README.",
)
@click.option("--log-every", type=int, default=None, help="Steps between logged losses.")
@click.option("--sample-every", type=int, default=None, help="Steps between PNG sample grids.")
@click.option("--checkpoint-every", type=int, default=None, help="Steps between checkpoints.")
@click.option("--keep-checkpoints", type=int, default=None, help="Checkpoints kept per stage.")
@click.option("--perceptual", type=click.Choice(PERCEPTUAL), default=None, help="Phi of Eq. 14-15.")
@click.option(
    "--psi",
    default=None,
    help="Expression feature model for L_Q: fer (the real classifier; `make weights`), a psi checkpoint, "
    "fer's .hdf5, TorchScript or ONNX.",
)
@click.option("--no-q", is_flag=True, help="Ablation: drop L_Q (Fig. 3).")
@click.option("--no-siamese", is_flag=True, help="Ablation: drop the siamese loss (Fig. 3).")
@click.option("--device", default=None, help="auto | cpu | cuda | cuda:N")
@click.option("--workers", type=int, default=None, help="DataLoader workers.")
@click.option("--seed", type=int, default=None)
@click.option(
    "--resume", is_flag=True, default=None, help="Continue the run in --out from its last complete checkpoint."
)
@click.option("--check", is_flag=True, help="Print a dataset report and exit (non-zero on a bad folder).")
@click.option("--describe", is_flag=True, help="Print params and GFLOPs per network for --preset and exit.")
@click.option("--dry-run", is_flag=True, help="Print the resolved config and exit.")
@handle_errors
def train_main(data_dir: Path | None, **opts: object) -> None:
    """Train LEED: stage 1 the StarGAN neutralizer, stage 2 E, D, X, I, critic, Q and S."""
    check, describe, dry_run = opts.pop("check"), opts.pop("describe"), opts.pop("dry_run")
    if describe:
        from leed_train.networks import describe_networks

        click.echo(describe_networks(TrainConfig(preset=str(opts["preset"] or "paper")).resolved().net))
        return
    if data_dir is None:
        raise LeedError("DATA_DIR is missing: give a dataset folder, e.g. `leed-train data/synth --check`")
    if check:
        from leed_train.data.check import check_dataset

        click.echo(
            check_dataset(
                data_dir,
                str(opts["data_format"] or "auto"),
                _csv(str(opts["angles"])),
                _csv(str(opts["gazes"])),
                val_fraction=float(opts["val_fraction"] if opts["val_fraction"] is not None else 0.1),
                seed=int(opts["seed"] or 0),
            )
        )
        return
    cfg = _train_config(data_dir, opts)
    if dry_run:
        click.echo(cfg.to_json())
        return
    from leed_train.loop import run_training

    run_training(cfg)


def _train_config(data_dir: Path, opts: dict) -> TrainConfig:
    """Options given on the command line over the defaults, or over the run's saved config
    when resuming (so `--resume` needs no other flag)."""
    explicit = {k: v for k, v in opts.items() if v is not None and k not in ("no_q", "no_siamese", "angles", "gazes")}
    explicit.update(data_dir=str(data_dir))
    for key in ("angles", "gazes"):
        if opts[key]:
            explicit[key] = _csv(str(opts[key]))
    if opts["no_q"]:
        explicit["use_q"] = False
    if opts["no_siamese"]:
        explicit["use_siamese"] = False
    out = Path(explicit.get("out") or f"runs/{data_dir.name}-{explicit.get('preset', 'paper')}")
    explicit["out"] = str(out)
    base: dict = {}
    if explicit.get("resume"):
        saved = TrainConfig.load(out / "config.json")
        if "preset" in explicit and explicit["preset"] != saved.preset:
            raise LeedError(f"{out} was trained with --preset {saved.preset}; resume it with that preset")
        base = dataclasses.asdict(saved)
    base.update(explicit)
    return TrainConfig.from_dict(base).resolved()


SYNTH_EXAMPLE = """
\b
Examples:
  leed-synth faces data/synth --identities 60 --seed 0
  leed-synth faces data/psi --identities 30 --seed 1 --first-id 101  # other people, for psi
  leed-synth video demo.mp4 --identity 3 --seconds 10 --fps 29.97 --size 1280x720
"""


@click.group(epilog=SYNTH_EXAMPLE, context_settings={"help_option_names": ["-h", "--help"]})
def synth_main() -> None:
    """Render synthetic faces in RaFD's file format, with exact ground truth."""


@synth_main.command("faces", epilog=SYNTH_EXAMPLE)
@click.argument("out_dir", type=click.Path(path_type=Path))
@click.option("--identities", type=int, default=60, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--size", type=int, default=256, show_default=True, help="Image side in pixels.")
@click.option("--angles", default="045,090,135", show_default=True, help="RaFD camera angles (090 = frontal).")
@click.option("--first-id", type=int, default=1, show_default=True, help="Number of the first identity.")
@click.option("--workers", type=int, default=0, help="Processes (0 = one per core).")
@handle_errors
def synth_faces(out_dir: Path, identities: int, seed: int, size: int, angles: str, first_id: int, workers: int) -> None:
    """Write Rafd{angle}_{id}_{ethnicity}_{gender}_{expression}_{gaze}.jpg, landmarks.csv, meta.json."""
    from leed_train.data.synth import render_faces

    render_faces(
        out_dir, identities=identities, seed=seed, size=size, angles=_csv(angles), first_id=first_id, workers=workers
    )


@synth_main.command("video", epilog=SYNTH_EXAMPLE)
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--identity", type=int, default=1, show_default=True)
@click.option("--seconds", type=float, default=10.0, show_default=True)
@click.option("--fps", type=float, default=29.97, show_default=True, help="29.97 is written as 30000/1001.")
@click.option("--size", default="1280x720", show_default=True, help="WIDTHxHEIGHT")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--no-audio", is_flag=True, help="Write no audio track.")
@handle_errors
def synth_video(out: Path, identity: int, seconds: float, fps: float, size: str, seed: int, no_audio: bool) -> None:
    """A synthetic head moving in a larger frame, its expression changing, with audio."""
    from leed_train.data.synth import render_video

    try:
        width, height = (int(v) for v in size.lower().split("x"))
    except ValueError:
        raise LeedError(f"--size {size!r} is not WIDTHxHEIGHT, e.g. 1280x720") from None
    render_video(out, identity=identity, seconds=seconds, fps=fps, size=(width, height), seed=seed, audio=not no_audio)


if __name__ == "__main__":  # `python -m leed_train.cli` runs leed-train (used under torchrun)
    train_main()
