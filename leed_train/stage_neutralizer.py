"""`--stage neutralizer` (stage 1): a StarGAN generator trained to make any face neutral (paper
Sec. 3.4 "Pre-training GAN", yunjey/stargan recipe); its options are `gan_*`.

Target domain "neutral". Labels are a binary neutral/expressive flag by default
(`gan_labels="binary"`: c_dim 2, neutral = class 0) or RaFD's 8 expressions when every
image has one (`gan_labels="expression"`). This is the only place leed reads a label; the
LEED stage never does. After training, `cache_neutrals` runs the frozen generator once
over every training crop and its mirror image, so stage 2 never runs it again.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from leed_runtime.atomic import atomic_path
from leed_runtime.errors import LeedError
from leed_runtime.face.align import alignment_matrix, similarity_transform
from leed_train import losses
from leed_train.checkpoint import unwrap
from leed_train.data.datasets import FaceCrops
from leed_train.data.names import EXPRESSIONS
from leed_train.run import (
    Run,
    TimeBudget,
    all_reduce_grads,
    batches_of,
    check_ranks_agree,
    checkpoint,
    crops_to_device,
    linear_decay,
    resume_stage,
    save_grid,
    to_device,
    to_floats,
    write_json,
)
from leed_train.stargan import Discriminator, Generator

STAGE = "neutralizer"


def label_space(cfg_labels: str) -> tuple[int, int]:
    """(c_dim, index of the neutral class) for `gan_labels`."""
    if cfg_labels == "binary":
        return 2, 0
    if cfg_labels == "expression":
        return len(EXPRESSIONS), EXPRESSIONS.index("neutral")
    raise LeedError(f"gan_labels {cfg_labels!r} is unknown; use binary or expression")


def _labels(run: Run) -> torch.Tensor:
    """Class of every training image for the StarGAN classifier."""
    mode = run.cfg.gan_labels
    if mode == "binary":
        flags = [s.neutral for s in run.train]
        if any(f is None for f in flags) or not any(flags):
            raise LeedError(
                f"{run.cfg.data_dir}: the neutralizer needs to know which images are neutral; put them under "
                "neutral/ or list them in neutral.csv (see `leed-train DATA --check`)"
            )
        return torch.tensor([0 if f else 1 for f in flags])
    names = [s.expression for s in run.train]
    if any(n is None for n in names):
        raise LeedError(f"{run.cfg.data_dir}: --gan-labels expression needs an expression for every image")
    return torch.tensor([EXPRESSIONS.index(n) for n in names])


HEAD_POINTS = [0, 1, 2]  # the five landmarks' eyes and nose tip: where the head is (an expression barely moves them)


def neutral_targets(samples: list, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For `--gan-pair-l1`, `--neutrals photos` and L_warp: each crop's own neutral face, (N,H,W,3)
    uint8, and a bool mask of the crops that have one.

    The partner is the neutral image of the same subject, angle and gaze. Crops are aligned
    on five landmarks that move with the expression (mouth corners), and the head itself moves
    between two photos (faces-tw's people lean in and tilt their heads when surprised), so the
    partner's crop is re-warped into this crop's frame through the similarity that puts the
    partner's eyes and nose tip (`HEAD_POINTS`) on this photo's: image -> crop matrices M_i, M_p
    and that similarity H give crop_p -> crop_i = M_i H M_p^-1. What is left between the two is
    the expression (brows, lids, mouth, jaw), not where the head was. Neutral crops are their own
    target (G must leave them alone).
    """
    size = crops.shape[1]
    key = {(s.subject, s.angle, s.gaze): i for i, s in enumerate(samples) if s.neutral}
    targets = np.zeros_like(crops)
    has = np.zeros(len(samples), dtype=bool)

    def affine(m: np.ndarray) -> np.ndarray:
        return np.vstack([m, [0.0, 0.0, 1.0]])

    for i, s in enumerate(samples):
        p = key.get((s.subject, s.angle, s.gaze))
        if p is None:
            continue
        has[i] = True
        if p == i or s.landmarks is None or samples[p].landmarks is None:
            targets[i] = crops[p]
            continue
        partner = np.asarray(samples[p].landmarks, np.float64)
        head = similarity_transform(partner[HEAD_POINTS], np.asarray(s.landmarks, np.float64)[HEAD_POINTS])
        m = affine(alignment_matrix(s.landmarks, size)) @ affine(head)
        m = (m @ np.linalg.inv(affine(alignment_matrix(partner, size))))[:2]
        targets[i] = cv2.warpAffine(
            np.ascontiguousarray(crops[p]), m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
    return targets, has


def build_neutralizer(run: Run) -> tuple[torch.nn.Module, torch.nn.Module, int, int]:
    c_dim, neutral = label_space(run.cfg.gan_labels)
    G = run.prepare(Generator(run.cfg.net, c_dim))
    D = run.prepare(Discriminator(run.cfg.net, c_dim))
    return G, D, c_dim, neutral


def train_neutralizer(run: Run) -> torch.nn.Module:
    """Train the neutralizer (StarGAN G/D with WGAN-GP, or G alone with --gan-pair-only); returns G (eval mode)."""
    cfg = run.cfg
    labels = _labels(run)
    G, D, c_dim, neutral = build_neutralizer(run)
    opt_g = torch.optim.Adam(G.parameters(), lr=cfg.gan_lr, betas=(cfg.beta1, cfg.beta2))
    opt_d = torch.optim.Adam(D.parameters(), lr=cfg.gan_lr, betas=(cfg.beta1, cfg.beta2))
    modules, optimizers = {"G": G, "D": D}, {"G": opt_g, "D": opt_d}
    start, _ = resume_stage(run, STAGE, modules, optimizers)
    total = cfg.gan_iters if cfg.max_steps <= 0 else min(cfg.gan_iters, cfg.max_steps)
    if start >= total:  # finished; a larger --gan-iters on --resume trains on from here
        return G.eval()
    data = FaceCrops(run.crops, run.train, flip=False)
    pairs = None  # (each crop's own neutral photo, which crops have one) for the pair L1
    if cfg.gan_lambda_pair > 0 or cfg.gan_pair_only:
        pair_targets, pair_has = neutral_targets(run.train, run.crops)
        if not pair_has.any():
            raise LeedError(
                f"{cfg.data_dir}: --gan-pair-l1 and --gan-pair-only need each subject's neutral photo at the "
                "same angle and gaze (RaFD or leed-synth names); none found, drop the flag"
            )
        pairs = (pair_targets, torch.from_numpy(pair_has))
    bar = tqdm(total=total, initial=start, desc="neutralizer", disable=not run.main, dynamic_ncols=True)
    budget, planned = TimeBudget(run, cfg.minutes), cfg.gan_iters
    for step, _epoch, batch in batches_of(run, data, cfg.gan_batch_size, start, total):
        planned = budget.fit(step, planned)  # --minutes: the schedule fits the time
        total = min(total, planned)
        bar.total = total
        if step >= total:
            break
        lr = linear_decay(step, planned, planned - min(cfg.gan_decay_iters, planned // 2), cfg.gan_lr)
        for opt in (opt_g, opt_d):
            for group in opt.param_groups:
                group["lr"] = lr
        flip = torch.rand(len(batch["index"])) < 0.5  # StarGAN's RandomHorizontalFlip
        x = to_device(run, torch.where(flip.view(-1, 1, 1, 1), batch["image"].flip(3), batch["image"]))
        if cfg.gan_pair_only:
            stats = _pair_step(run, G, opt_g, x, batch["index"], flip, pairs, neutral, c_dim)
        else:
            stats = _stargan_step(run, G, D, opt_g, opt_d, step, x, batch["index"], flip, labels, pairs, neutral, c_dim)

        bar.update(1)
        if step % cfg.log_every == 0 or step == total - 1:
            stats = to_floats(stats)  # the one host sync of a logged step
            bar.set_postfix({k: f"{v:.3f}" for k, v in stats.items()})
            run.log.scalars(STAGE, step, {**stats, "lr": lr})
        if run.main and (step % cfg.sample_every == 0 or step == total - 1):
            _samples(run, G, neutral, c_dim, step)
        if (step + 1) % cfg.checkpoint_every == 0 and step + 1 < total:
            checkpoint(run, STAGE, step + 1, modules, optimizers)
    bar.close()
    check_ranks_agree(run, STAGE, modules)
    checkpoint(run, STAGE, total, modules, optimizers, extra={"done": total >= planned})
    return G.eval()


def _flipped_targets(run: Run, pairs: tuple, idx: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
    """The batch's own neutral photos, mirrored where its images were."""
    target = crops_to_device(run, pairs[0][idx.numpy()])
    return torch.where(flip.to(run.device).view(-1, 1, 1, 1), target.flip(3), target)


def _pair_step(
    run: Run, G: torch.nn.Module, opt_g: torch.optim.Optimizer, x: torch.Tensor, idx: torch.Tensor,
    flip: torch.Tensor, pairs: tuple, neutral: int, c_dim: int,
) -> dict[str, torch.Tensor]:  # fmt: skip
    """`--gan-pair-only`: G(x, neutral) -> the own neutral photo by L1; no D, no cycle. With
    `--gan-mask-keep W` (and `--gan-mask`), W x the share of the face G paints is added: G then
    copies the input wherever painting does not pay, so the neutral face stays sharp where the
    expression does not change (real photos of one person never align exactly, and an L1 to a
    misaligned photo alone is minimised by a blur)."""
    target_label = F.one_hot(torch.full((len(x),), neutral, device=run.device), c_dim).float()
    with run.autocast():
        planes = target_label[:, :, None, None].to(x.dtype).expand(-1, -1, x.shape[2], x.shape[3])
        fake, keep = unwrap(G).paint(x, planes)
    l_pair = losses.masked_l1(fake.float(), _flipped_targets(run, pairs, idx, flip), pairs[1][idx].to(run.device))
    stats = {"G_loss_pair": l_pair.detach()}
    if keep is not None and run.cfg.gan_lambda_keep > 0:
        l_keep = (1 - keep.float()).mean()
        l_pair = l_pair + run.cfg.gan_lambda_keep * l_keep
        stats["G_painted"] = l_keep.detach()
    opt_g.zero_grad(set_to_none=True)
    l_pair.backward()
    all_reduce_grads(list(G.parameters()), run.world)
    opt_g.step()
    return stats


def _stargan_step(
    run: Run, G: torch.nn.Module, D: torch.nn.Module, opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer,
    step: int, x: torch.Tensor, idx: torch.Tensor, flip: torch.Tensor, labels: torch.Tensor, pairs: tuple | None,
    neutral: int, c_dim: int,
) -> dict[str, torch.Tensor]:  # fmt: skip
    """One StarGAN iteration (yunjey/stargan): D every step, G every `gan_n_critic` steps."""
    cfg = run.cfg
    c_org = labels[idx].to(run.device)
    # Targets uniform over classes (not a permutation of the batch as in yunjey/stargan):
    # with binary labels 7 of 8 RaFD images are expressive, and neutral is what we need.
    c_trg = torch.randint(0, c_dim, c_org.shape, device=run.device)
    oh_org, oh_trg = F.one_hot(c_org, c_dim).float(), F.one_hot(c_trg, c_dim).float()

    # D phase: WGAN critic + domain classification + gradient penalty (losses.stargan_d_loss).
    with torch.no_grad(), run.autocast():
        fake = G(x, oh_trg)
    d_loss, parts = losses.stargan_d_loss(D, x, fake.float(), c_org, cfg.gan_lambda_cls, cfg.gan_lambda_gp)
    opt_d.zero_grad(set_to_none=True)
    d_loss.backward()
    all_reduce_grads(list(D.parameters()), run.world)
    opt_d.step()

    # G phase every n_critic steps: fool D, be classified as the target, cycle back.
    if (step + 1) % cfg.gan_n_critic == 0:
        with run.autocast():
            fake = G(x, oh_trg)
            rec = G(fake, oh_org)
        g_loss, g_parts = losses.stargan_g_loss(
            D, x, fake.float(), rec.float(), c_trg, cfg.gan_lambda_cls, cfg.gan_lambda_rec
        )
        if cfg.gan_lambda_pair > 0:
            pick = (pairs[1][idx] & (c_trg.cpu() == neutral)).to(run.device)
            l_pair = losses.masked_l1(fake.float(), _flipped_targets(run, pairs, idx, flip), pick)
            g_loss = g_loss + cfg.gan_lambda_pair * l_pair
            g_parts["G/loss_pair"] = l_pair.detach()
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        all_reduce_grads(list(G.parameters()), run.world)
        opt_g.step()
        parts.update(g_parts)
    return {k.replace("/", "_"): v.detach() for k, v in parts.items()}


@torch.no_grad()
def neutralize(G: torch.nn.Module, x: torch.Tensor, c_dim: int, neutral: int) -> torch.Tensor:
    """G(x, neutral): the neutral face of every image in x ([-1,1] in and out)."""
    target = torch.zeros(len(x), c_dim, device=x.device)
    target[:, neutral] = 1.0
    return G(x, target).float().clamp(-1, 1)


def _samples(run: Run, G: torch.nn.Module, neutral: int, c_dim: int, step: int) -> None:
    crops = run.val_crops if run.val_crops is not None and len(run.val_crops) else run.crops
    idx = np.linspace(0, len(crops) - 1, num=min(8, len(crops))).astype(int)
    x = crops_to_device(run, crops[idx])
    was_training = G.training
    G.eval()
    rows = [x, neutralize(G, x, c_dim, neutral)]
    G.train(was_training)
    save_grid(run.dir / "samples" / f"neutralizer-{step:08d}.png", rows, ["input", "neutral"])


def cache_neutrals(run: Run, G: torch.nn.Module) -> np.ndarray:
    """Run the frozen G over every training crop and its mirror: `neutrals.npy` (N,2,H,W,3) uint8.

    [:, 0] is the neutral face of crop i, [:, 1] of crop i flipped horizontally. Written to a
    temp file and renamed, so a killed run never leaves a half cache.
    """
    c_dim, neutral = label_space(run.cfg.gan_labels)
    path = run.dir / "neutrals.npy"
    meta = run.dir / "neutrals.json"
    if run.main:
        n, h, w, _ = run.crops.shape
        G.eval()
        with atomic_path(path) as tmp:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(n, 2, h, w, 3))
            for s in tqdm(range(0, n, 64), desc="caching neutral faces", dynamic_ncols=True):
                x = crops_to_device(run, run.crops[s : s + 64])
                for k, xi in enumerate((x, x.flip(3))):
                    with run.autocast():
                        y = neutralize(G, xi, c_dim, neutral)
                    out[s : s + 64, k] = ((y + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()
            out.flush()
            del out
        write_json(meta, {"images": n, "layout": "(N, 2: [crop, mirrored crop], H, W, RGB) uint8"})
    run.barrier()
    return np.load(path, mmap_mode="r")


def cache_photo_neutrals(run: Run) -> np.ndarray:
    """`--neutrals photos` (not in the paper): `neutrals.npy` as `cache_neutrals` writes it, but
    from each subject's own neutral photo, re-warped into the crop's alignment
    (`neutral_targets`), instead of G's output. Stage 2 then learns from true neutral faces and
    needs no neutralizer first, so both stages can train at the same time (in two run folders; the
    neutralizer's checkpoint joins the run before export). Needs a neutral photo per subject."""
    path, meta = run.dir / "neutrals.npy", run.dir / "neutrals.json"
    if run.main:
        targets, has = neutral_targets(run.train, run.crops)
        if not has.all():
            lacking = sorted({s.subject for s, ok in zip(run.train, has, strict=True) if not ok})
            raise LeedError(
                f"--neutrals photos: {len(lacking)} training subject(s) have no neutral photo "
                f"(e.g. {lacking[0]}); use --neutrals generator (train --stage neutralizer) or add their neutral photos"
            )
        with atomic_path(path) as tmp:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(targets), 2, *targets.shape[1:]))
            out[:, 0] = targets
            out[:, 1] = targets[:, :, ::-1]
            out.flush()
            del out
        write_json(
            meta,
            {
                "images": len(targets),
                "source": "photos",
                "layout": "(N, 2: [crop, mirrored crop], H, W, RGB) uint8",
            },
        )
    run.barrier()
    return np.load(path, mmap_mode="r")
