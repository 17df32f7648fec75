"""`--stage psi`: the expression feature model Psi of the mutual-information loss (Eq. 3).

The paper uses a ResNet pre-trained on RAF-DB, another dataset than the one LEED trains
on. We train a ResNet-18 classifier on a *separate* labelled set (RAF-DB-style folders,
RaFD names, or a synthetic set rendered with another seed and other identities) and save
`RUN_DIR/psi.safetensors`; `leed-train DATA --psi RUN_DIR/psi.safetensors` then uses its
penultimate features. This is the only labelled training in leed besides the
neutralizer's neutral flag; LEED itself never reads an expression label.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save as save_bytes
from tqdm import tqdm

from leed_runtime.atomic import atomic_write_bytes
from leed_runtime.errors import LeedError
from leed_train.data.datasets import FaceCrops
from leed_train.data.names import EXPRESSIONS
from leed_train.features import ResNet18
from leed_train.run import (
    Run,
    all_reduce_grads,
    batch_order,
    batches_of,
    check_ranks_agree,
    checkpoint,
    crops_to_device,
    resume_stage,
    to_device,
    write_json,
)

STAGE = "psi"


def train_psi(run: Run) -> torch.nn.Module:
    """Train ResNet-18 on expression labels; save psi.safetensors and psi.json (val accuracy)."""
    cfg = run.cfg
    if any(s.expression is None for s in run.train):
        raise LeedError(
            f"{cfg.data_dir}: --stage psi needs an expression label for every image (RaFD names or one folder per expression)"
        )
    model = run.prepare(ResNet18(len(EXPRESSIONS), width=cfg.net.psi_width))
    opt = torch.optim.Adam(model.parameters(), lr=cfg.psi_lr)
    start, _ = resume_stage(run, STAGE, {"psi": model}, {"psi": opt})
    data = FaceCrops(run.crops, run.train, flip=False)
    per_epoch = len(batch_order(len(data), cfg.batch_size, 0, cfg.seed, run.rank, run.world))
    total = cfg.psi_epochs * per_epoch if cfg.max_steps <= 0 else min(cfg.psi_epochs * per_epoch, cfg.max_steps)
    bar = tqdm(total=total, initial=start, desc="psi (ResNet-18)", disable=not run.main, dynamic_ncols=True)
    for step, _epoch, batch in batches_of(run, data, cfg.batch_size, start, total):
        lr = cfg.psi_lr * 0.5 * (1 + np.cos(np.pi * step / max(total, 1)))  # cosine schedule
        for group in opt.param_groups:
            group["lr"] = lr
        flip = torch.rand(len(batch["index"])) < 0.5
        x = to_device(run, torch.where(flip.view(-1, 1, 1, 1), batch["image"].flip(3), batch["image"]))
        y = batch["expression"].to(run.device)
        with run.autocast():
            loss = F.cross_entropy(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        all_reduce_grads(list(model.parameters()), run.world)
        opt.step()
        bar.update(1)
        if step % cfg.log_every == 0 or step == total - 1:
            bar.set_postfix(loss=f"{loss.item():.3f}")
            run.log.scalars(STAGE, step, {"loss": loss.item(), "lr": lr})
        if (step + 1) % cfg.checkpoint_every == 0 and step + 1 < total:
            checkpoint(run, STAGE, step + 1, {"psi": model}, {"psi": opt})
    bar.close()
    check_ranks_agree(run, STAGE, {"psi": model})
    checkpoint(run, STAGE, total, {"psi": model}, {"psi": opt}, extra={"done": True})
    accuracy = evaluate(run, model)
    if run.main:
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        meta = {"num_classes": str(len(EXPRESSIONS)), "width": str(cfg.net.psi_width), "classes": ",".join(EXPRESSIONS)}
        atomic_write_bytes(run.dir / "psi.safetensors", save_bytes(state, metadata=meta))
        write_json(run.dir / "psi.json", {"val_accuracy": accuracy, "val_images": len(run.val), "steps": total})
        print(f"psi: validation accuracy {accuracy:.3f} on {len(run.val)} images; saved {run.dir / 'psi.safetensors'}")
        print(f"next: leed-train DATA_DIR --psi {run.dir / 'psi.safetensors'}")
    return model


@torch.no_grad()
def evaluate(run: Run, model: torch.nn.Module) -> float:
    """Accuracy on the subject-disjoint validation split (nan when it is empty)."""
    if run.val_crops is None or not len(run.val):
        return float("nan")
    model.eval()
    labels = torch.tensor([EXPRESSIONS.index(s.expression) for s in run.val])
    correct = 0
    for s in range(0, len(labels), 128):
        x = crops_to_device(run, run.val_crops[s : s + 128])
        with run.autocast():
            pred = model(x).argmax(1).cpu()
        correct += int((pred == labels[s : s + 128]).sum())
    model.train()
    return correct / len(labels)
