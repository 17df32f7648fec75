"""`run_training(cfg)`: the one path of `leed-train`, read top to bottom.

data -> split -> crops -> [psi] | [stage 1: neutralizer -> neutral cache] -> [stage 2: LEED].
The stages live in `stage_psi.py`, `stage_neutralizer.py` and `stage_leed.py`; what they
share (the `Run`, device and DDP setup, batch order, checkpoints, logs) is in `run.py`.
`cfg` arrives resolved (`TrainConfig.for_run`): this module writes it and never changes it.
"""

from __future__ import annotations

from pathlib import Path

from leed_runtime.errors import LeedError
from leed_train.checkpoint import latest_checkpoint
from leed_train.config import TrainConfig
from leed_train.data.cache import CropCache
from leed_train.data.index import load_split, save_split, scan, split_by_subject
from leed_train.features import check_feature_model, check_perceptual
from leed_train.run import (
    Run,
    StatsLog,
    close_distributed,
    init_distributed,
    pick_device,
    seed_everything,
)
from leed_train.stage_leed import train_leed
from leed_train.stage_neutralizer import cache_neutrals, cache_photo_neutrals, train_neutralizer
from leed_train.stage_psi import train_psi

STAGES_OF = {"all": ("neutralizer", "leed"), "neutralizer": ("neutralizer",), "leed": ("leed",), "psi": ("psi",)}


def run_training(cfg: TrainConfig) -> Path:
    """Train the stages `cfg.stage` names; returns the run directory."""
    rank, world = init_distributed()
    device = pick_device(cfg.device, rank)
    run_dir = Path(cfg.out)
    # Everything that can refuse the run does so before the run folder is written: a refused
    # run leaves no config.json or split.json for the next, correct one to trip over.
    preflight(cfg)  # missing weights or Psi are said now, not after the neutralizer
    index = scan(Path(cfg.data_dir), cfg.data_format, cfg.angles, cfg.gazes)
    if not index.samples:
        raise LeedError(f"{cfg.data_dir}: no usable images; run `leed-train {cfg.data_dir} --check`")
    _prepare_run_dir(cfg, run_dir, rank)
    seed_everything(cfg.seed)  # same on every rank: networks start identical
    split_path = run_dir / "split.json"
    if split_path.exists():  # stages of one run (and resumes) share one split: the neutral cache follows it
        train, val = load_split(split_path, Path(cfg.data_dir))
    else:
        train, val = split_by_subject(index.samples, val_fraction=cfg.val_fraction, seed=cfg.seed)
    cache = CropCache(size=cfg.net.image_size)
    run = Run(cfg=cfg, dir=run_dir, device=device, rank=rank, world=world, train=train, val=val)
    run.crops = cache.load_crops(train, workers=cfg.workers, progress=rank == 0)
    run.val_crops = cache.load_crops(val, workers=cfg.workers, progress=rank == 0) if val else None
    if rank == 0 and not split_path.exists():  # saved once every image decoded: a bad file leaves no split
        save_split(split_path, train, val, Path(cfg.data_dir))
    run.log = StatsLog(run_dir, enabled=rank == 0)
    if rank == 0:
        ignored = index.ignored_note()  # bad `Rafd*` names and the like: said, never dropped silently
        print(
            f"leed-train: {len(train)} training / {len(val)} validation images, preset {cfg.preset}, {device}"
            + (f"; {ignored}" if ignored else "")
        )

    try:
        if cfg.stage == "psi":
            train_psi(run)
        if cfg.stage in ("all", "neutralizer"):
            generator = train_neutralizer(run)
            cache_neutrals(run, generator)
        if cfg.stage in ("all", "leed") and cfg.neutrals == "photos":
            cache_photo_neutrals(run)
        if cfg.stage in ("all", "leed"):
            train_leed(run)
    finally:
        run.log.close()
        close_distributed(world)
    if rank == 0:
        print(f"leed-train: done; run in {run_dir}")
        if cfg.stage in ("all", "leed"):
            print(f"next: leed-export {run_dir} --out exports/{run_dir.name}")
    return run_dir


def preflight(cfg: TrainConfig) -> None:
    """Fail in the first seconds, with the one command that fixes it, when a pretrained file the
    run will need later (Phi's weights, Psi) is missing."""
    if cfg.stage in ("all", "leed"):
        check_perceptual(cfg.perceptual)
        if cfg.use_q:
            if not cfg.psi:
                raise LeedError(
                    "L_Q needs Psi, an expression feature model: add --psi fer (fer's real classifier; "
                    "`make weights` fetches it), or a model of `leed-train --stage psi`, or drop L_Q with --no-q"
                )
            check_feature_model(cfg.psi)


def _prepare_run_dir(cfg: TrainConfig, run_dir: Path, rank: int) -> None:
    """Refuse to train over a stage's checkpoints without --resume; write the config first."""
    config_path = run_dir / "config.json"
    if cfg.resume:
        if not config_path.exists():
            raise LeedError(f"{run_dir}: no config.json to resume from; drop --resume to start a new run")
        saved = TrainConfig.load(config_path)
        if saved.preset != cfg.preset:
            raise LeedError(f"{run_dir} was trained with --preset {saved.preset}; resume with the same preset")
    elif any(latest_checkpoint(run_dir, stage) is not None for stage in STAGES_OF[cfg.stage]):
        raise LeedError(
            f"{run_dir} already holds a {cfg.stage} run; pass --resume to continue it or choose another --out"
        )
    if rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
        cfg.save(config_path)
