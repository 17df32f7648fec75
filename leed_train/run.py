"""What every training stage shares: the `Run` (config, folder, device, rank, data, log),
device and DDP setup, the deterministic batch order that makes resume exact, gradient
averaging, checkpoints of a stage, the stats log and sample grids.

The stages (`stage_psi.py`, `stage_neutralizer.py`, `stage_leed.py`) import from here;
`loop.run_training` builds the `Run` and calls them. Nothing here knows a stage.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

from leed_runtime.atomic import atomic_write_bytes, atomic_write_text
from leed_runtime.errors import LeedError
from leed_train.checkpoint import latest_checkpoint, load_checkpoint, load_shared_weights, save_checkpoint
from leed_train.config import TrainConfig
from leed_train.data.names import Sample


@dataclass
class Run:
    """What every stage needs: config, paths, device, rank, data and a logger."""

    cfg: TrainConfig
    dir: Path
    device: torch.device
    rank: int = 0
    world: int = 1
    train: list[Sample] = field(default_factory=list)
    val: list[Sample] = field(default_factory=list)
    crops: np.ndarray | None = None  # (N, 128, 128, 3) uint8, training crops
    val_crops: np.ndarray | None = None
    log: StatsLog | None = None

    @property
    def main(self) -> bool:
        return self.rank == 0

    def autocast(self) -> Any:
        """bf16 autocast where `use_bf16` says so, a no-op otherwise."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=use_bf16(self.device, self.cfg.amp))

    def prepare(self, module: torch.nn.Module) -> torch.nn.Module:
        module = module.to(self.device)
        if self.device.type == "cuda" and self.cfg.channels_last:
            module = module.to(memory_format=torch.channels_last)
        return module

    def barrier(self) -> None:
        """Wait for every rank (a no-op in one process)."""
        if self.world > 1:
            dist.barrier()


# ---------------------------------------------------------------------------------------------
# Device, precision, processes


def use_bf16(device: torch.device, amp: str) -> bool:
    """`--amp auto`: bf16 on GPUs that have it (Ampere and newer; not T4/V100, where it would be
    emulated); `--amp bf16`: on any CUDA GPU and on CPUs (1.7x per step on Zen 4's AVX512-BF16);
    `off`: never."""
    if amp == "off":
        return False
    if device.type == "cuda":
        return amp == "bf16" or torch.cuda.is_bf16_supported(including_emulation=False)
    return device.type == "cpu" and amp == "bf16"


def init_distributed() -> tuple[int, int]:
    """(rank, world): torchrun sets RANK/WORLD_SIZE; one code path for 1 or N processes."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":  # before the group exists: else every rank's NCCL calls land on cuda:0 and hang
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return dist.get_rank(), dist.get_world_size()


def close_distributed(world: int) -> None:
    if world > 1:
        dist.destroy_process_group()


def pick_device(name: str, rank: int) -> torch.device:
    """`--device`: auto (this rank's GPU, else the CPU), cpu, cuda or cuda:N; a missing GPU is an error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)) % torch.cuda.device_count())
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise LeedError(f"--device {name}: no CUDA GPU is visible here; use --device cpu or check `leed-doctor`")
    return device


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def all_reduce_grads(params: list[torch.nn.Parameter], world: int) -> None:
    """Average gradients over ranks in one flat bucket (data parallel without DDP hooks).

    LEED routes each loss to chosen networks (frozen functional calls, gradient scaling),
    which DDP's per-module hooks do not follow; averaging gradients explicitly is exact.
    """
    if world <= 1:
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def check_ranks_agree(run: Run, stage: str, modules: dict[str, torch.nn.Module]) -> None:
    """After a multi-process stage, every rank must hold the same parameters: gather one
    digest per rank, write them to `ddp_check.json` and refuse a diverged run."""
    if run.world <= 1:
        return
    h = hashlib.sha256()
    for name in sorted(modules):
        for key, p in sorted(modules[name].named_parameters()):
            h.update(key.encode())
            h.update(p.detach().float().cpu().numpy().tobytes())
    digests: list[str] = [""] * run.world
    dist.all_gather_object(digests, h.hexdigest())
    if run.main:
        write_json(run.dir / "ddp_check.json", {"stage": stage, "world": run.world, "digests": digests})
    if len(set(digests)) != 1:
        raise LeedError(f"{run.dir}: ranks diverged in stage {stage} (digests {digests}); please report this")


# ---------------------------------------------------------------------------------------------
# Batches and schedules


def batch_order(n: int, batch: int, epoch: int, seed: int, rank: int = 0, world: int = 1) -> list[list[int]]:
    """Deterministic shuffled batches of one epoch for this rank (full batches only).

    Depends only on (n, batch, epoch, seed, rank, world), so a resumed run replays the
    exact order and skips the batches it already trained on.
    """
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    perm = torch.randperm(n, generator=g).tolist()
    per_step = batch * world
    steps = n // per_step
    if steps == 0:
        raise LeedError(f"{n} training images are fewer than one batch of {per_step}; lower --batch-size")
    return [perm[s * per_step + rank * batch : s * per_step + (rank + 1) * batch] for s in range(steps)]


def batches_of(run: Run, dataset: Any, batch: int, start: int, total: int) -> Iterator[tuple[int, int, Any]]:
    """Yield (step, epoch, collated batch) from step `start` to `total`.

    Step s is batch s % steps_per_epoch of epoch s // steps_per_epoch in `batch_order`, so a
    resumed stage continues exactly where its checkpoint left off. A DataLoader with workers
    and pinned memory keeps the GPU fed; on the CPU it loads in-process.
    """
    n = len(dataset)
    per_epoch = len(batch_order(n, batch, 0, run.cfg.seed, run.rank, run.world))
    cuda = run.device.type == "cuda"
    step = start
    while step < total:
        epoch = step // per_epoch
        order = batch_order(n, batch, epoch, run.cfg.seed, run.rank, run.world)[step % per_epoch :]
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(epoch)
        # Its own generator: a DataLoader iterator otherwise draws its worker seed from the
        # global RNG, and a resumed run (which starts a new iterator mid-epoch) would diverge.
        loader = DataLoader(
            dataset,
            batch_sampler=order,
            num_workers=run.cfg.workers if cuda else 0,
            pin_memory=cuda,
            generator=torch.Generator().manual_seed(run.cfg.seed * 7_777 + epoch),
        )
        for item in loader:
            if step >= total:
                return
            yield step, epoch, item
            step += 1


class TimeBudget:
    """`--minutes`: fix a stage's number of steps once from its measured speed.

    `fit(step, total)` returns `total` until `warmup` steps after the first call have run, then
    once and for good the smaller of `total` and the step the stage reaches when the minutes
    (counted from the first call) are spent at the speed of the steps after the first few (which
    pay for cuDNN's search and the first allocations). Ranks agree on it: rank 0's figure is sent
    to the others. Off (`minutes <= 0`): `total` unchanged.
    """

    def __init__(self, run: Run, minutes: float, warmup: int = 30) -> None:
        self.run, self.seconds, self.warmup = run, minutes * 60.0, warmup
        self.start_time: float | None = None
        self.first = self.mark = 0
        self.mark_time = 0.0
        self.fixed: int | None = None

    def fit(self, step: int, total: int) -> int:
        if self.seconds <= 0:
            return total
        if self.fixed is not None:
            return min(total, self.fixed)
        now = time.perf_counter()
        if self.start_time is None:
            self.start_time, self.first = now, step
            return total
        if step == self.first + 5:
            self.mark, self.mark_time = step, now
        if step < self.first + self.warmup:
            return total
        rate = (step - self.mark) / max(now - self.mark_time, 1e-6)
        steps = step + int(rate * max(0.0, self.seconds - (now - self.start_time)))
        if self.run.world > 1:
            box = [steps]
            dist.broadcast_object_list(box, src=0)
            steps = int(box[0])
        self.fixed = max(step + 1, steps)
        if self.run.main:
            print(
                f"leed-train: --minutes {self.seconds / 60:g}: {rate:.2f} steps/s, the stage ends at step "
                f"{min(total, self.fixed)} (of {total})"
            )
        return min(total, self.fixed)


def to_floats(stats: dict[str, torch.Tensor]) -> dict[str, float]:
    """Losses kept as 0-d tensors during the steps, read back in one transfer (one host sync)."""
    if not stats:
        return {}
    values = torch.stack([v.detach().float().reshape(()) for v in stats.values()]).tolist()
    return dict(zip(stats, values, strict=True))


def linear_decay(step: int, total: int, decay_from: int, base: float) -> float:
    """Constant `base` until `decay_from`, then linear to 0 at `total` (paper Sec. 8)."""
    if step < decay_from or total <= decay_from:
        return base
    return base * max(0.0, (total - step) / (total - decay_from))


def to_device(run: Run, x: torch.Tensor) -> torch.Tensor:
    """A float image batch to the run's device (channels_last on CUDA)."""
    x = x.to(run.device, non_blocking=True)
    if run.device.type == "cuda" and run.cfg.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def crops_to_device(run: Run, crops: np.ndarray) -> torch.Tensor:
    """uint8 (B,H,W,3) crops (often a read-only memmap slice) -> float (B,3,H,W) in [-1,1]."""
    x = torch.from_numpy(np.array(crops, dtype=np.uint8, copy=True)).permute(0, 3, 1, 2).float() / 127.5 - 1
    return to_device(run, x)


# ---------------------------------------------------------------------------------------------
# Checkpoints of a stage


def resume_stage(run: Run, stage: str, modules: dict, optimizers: dict) -> tuple[int, dict]:
    """Load the stage's last complete checkpoint when resuming: (next step, extra)."""
    if not run.cfg.resume:
        return 0, {}
    path = latest_checkpoint(run.dir, stage)
    if path is None:
        return 0, {}
    state = load_checkpoint(path, modules, optimizers, map_location=run.device)
    if run.main:
        print(f"leed-train: resumed {stage} from {path} (step {state['step']})")
    return int(state["step"]), dict(state.get("extra") or {})


def init_stage(run: Run, stage: str, modules: dict) -> None:
    """`--init RUN`: start the stage from another run's last checkpoint of it (shared layers)."""
    path = latest_checkpoint(Path(run.cfg.init), stage)
    if path is None:
        raise LeedError(f"--init {run.cfg.init}: no {stage} checkpoint there; give a run folder that trained it")
    fresh = load_shared_weights(path, modules, map_location=run.device)
    if run.main:
        print(f"leed-train: {stage} starts from {path}" + (f"; new: {layer_counts(fresh)}" if fresh else ""))


def layer_counts(names: list[str]) -> str:
    """Tensor names summed up by their first two name parts, in order: "E.trunk (312 tensors), D.flow_head (4 tensors)"."""
    counts = Counter(".".join(name.split(".")[:2]) for name in names)
    return ", ".join(f"{k} ({n} tensor{'s' if n > 1 else ''})" for k, n in counts.items())


def checkpoint(run: Run, stage: str, step: int, modules: dict, optimizers: dict, extra: dict | None = None) -> None:
    """Rank 0 writes an atomic checkpoint; other ranks wait for it."""
    if run.main:
        save_checkpoint(run.dir, stage, step, modules, optimizers, extra=extra, keep=run.cfg.keep_checkpoints)
    run.barrier()


# ---------------------------------------------------------------------------------------------
# Outputs: stats, JSON, sample grids


class StatsLog:
    """Scalars by name: TensorBoard + `stats.jsonl` (rank 0 only)."""

    def __init__(self, run_dir: Path, enabled: bool = True) -> None:
        self.enabled = enabled
        self.writer = None
        self.path = run_dir / "stats.jsonl"
        if enabled and self.path.is_file():  # a killed run may have cut its last line short: drop it
            data = self.path.read_bytes()
            if data and not data.endswith(b"\n"):
                atomic_write_bytes(self.path, data[: data.rfind(b"\n") + 1])
        if enabled:
            from torch.utils.tensorboard import SummaryWriter  # pulls tensorboard: only where a run logs

            self.writer = SummaryWriter(str(run_dir / "tensorboard"))

    def scalars(self, stage: str, step: int, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        clean = {k: float(v) for k, v in values.items() if math.isfinite(float(v))}
        for k, v in clean.items():
            self.writer.add_scalar(f"{stage}/{k}", v, step)
        with self.path.open("a") as f:
            f.write(json.dumps({"stage": stage, "step": step, "time": time.time(), **clean}) + "\n")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def write_json(path: Path, data: dict) -> None:
    """`data` as sorted, indented JSON, written atomically."""
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def save_grid(path: Path, rows: list[torch.Tensor], labels: list[str]) -> None:
    """Save image rows (each B,3,H,W in [-1,1]) as one labelled PNG, atomically."""
    tiles = []
    for row, label in zip(rows, labels, strict=True):
        imgs = ((row.detach().float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()
        strip = np.concatenate(list(imgs), axis=1)
        pad = np.full((strip.shape[0], 90, 3), 255, np.uint8)
        cv2.putText(pad, label, (4, strip.shape[0] // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
        tiles.append(np.concatenate([pad, strip], axis=1))
    grid = np.concatenate(tiles, axis=0)
    ok, data = cv2.imencode(".png", cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
    assert ok
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, data.tobytes())
