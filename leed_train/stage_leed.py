"""Stage 2: LEED itself (paper Sec. 3.2-3.4, Eq. 1-16). No expression label is read here.

Every step has three phases, each updating only its own networks:

1. main: one backward through a graph built so that each loss reaches exactly the networks
   the paper minimises it over:
     X, Q   <- L_exp (Eq. 2) + lambda_Q L_Q (Eq. 3)            codes detached
     I      <- L_interp (Eq. 6) + L_idt (Eq. 7)                  I's inputs detached
     E, I   <- L_adv (Eq. 13)                                    critic frozen
     D      <- L_D (Eq. 14); E <- lambda_recon L_recon (Eq. 15)  one decoder pass, the code's
                                                                 gradient scaled by lambda_recon
     D      <- L_warp (--warp, not in the paper)                 codes computed without gradient
     E      <- lambda_S L_S (Eq. 9-11, 16)                       X, I, D, S frozen in that path
2. critic (Eq. 12): WGAN-GP between this step's real codes E(I_A), E(R_B) and interpolated
   codes I(C_IN, a*dexp), detached, `n_critic` updates (WGAN-GP's 5 by default).
3. siamese (Eq. 11, "E and S are updated in an alternative manner"): S minimises L_S on
   detached images plus a TraVeLGAN margin term that keeps it from collapsing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import numpy as np
import torch
from tqdm import tqdm

from leed_runtime.errors import LeedError
from leed_train import losses
from leed_train.config import TrainConfig
from leed_train.data.datasets import PairDataset
from leed_train.features import VGG19Features, build_perceptual, load_feature_model, load_vgg19_weights
from leed_train.model import Leed, face_motion, warp
from leed_train.networks import build_leed_networks
from leed_train.run import (
    Run,
    TimeBudget,
    all_reduce_grads,
    batch_order,
    batches_of,
    check_ranks_agree,
    checkpoint,
    crops_to_device,
    init_stage,
    linear_decay,
    resume_stage,
    save_grid,
    to_device,
    to_floats,
)

STAGE = "leed"


class _ScaleGrad(torch.autograd.Function):
    """Identity forward; multiplies the gradient by `scale` backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: float) -> torch.Tensor:  # type: ignore[override]
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        return grad * ctx.scale, None


def scale_grad(x: torch.Tensor, scale: float) -> torch.Tensor:
    return _ScaleGrad.apply(x, scale)


@contextlib.contextmanager
def frozen(*modules: torch.nn.Module) -> Iterator[None]:
    """Ops run inside record no gradient for these modules' parameters (the graph still
    flows through them to their inputs)."""
    params = [p for m in modules for p in m.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


def build(run: Run) -> tuple[dict[str, torch.nn.Module], dict[str, torch.optim.Optimizer]]:
    """The seven networks of stage 2 and one Adam per trained network (paper Sec. 8)."""
    cfg = run.cfg
    nets = {k: run.prepare(m) for k, m in build_leed_networks(cfg.net).items()}
    if cfg.perceptual == "vgg19" and cfg.preset == "paper":
        _init_encoder_from_vgg19(nets["E"])
    opts = {
        k: torch.optim.Adam(m.parameters(), lr=base_lr(cfg, k), betas=(cfg.beta1, cfg.beta2))
        for k, m in nets.items()
        if (k != "Q" or cfg.use_q) and (k != "S" or cfg.use_siamese)
    }
    return nets, opts


def base_lr(cfg: TrainConfig, network: str) -> float:
    """--lr, or --lr-decoder for D, --lr-extractor for X. Neither can move the codes: D's only
    loss is Eq. 14, X's is Eq. 2 on detached codes, so both can learn faster than the
    adversarial part without the codes running away (a CPU run at --lr 1e-3 for every network
    diverged within 600 steps; D alone at 1e-3 does not). X at --lr falls behind the codes it
    reads: on faces-tw it explained 17% of the pseudo label's variance after 3,300 steps."""
    own = {"D": cfg.lr_decoder, "X": cfg.lr_extractor}.get(network, 0.0)
    return own if own > 0 else cfg.lr


def _init_encoder_from_vgg19(E: torch.nn.Module) -> None:
    """Paper gap "how E is initialised": Table 6 is VGG19's conv1_1..conv5_1, the layout of
    the VGG encoders of [9,33] the paper follows, so at `paper` width E's first 12 convs
    (conv1_1..conv4_4) start from the ImageNet VGG19 weights, ImageNet normalisation folded
    into the first conv; the last conv keeps He init. Other widths and runs without VGG19
    weights (--perceptual random-vgg19|pixels) start from He init everywhere."""
    vgg = VGG19Features()
    load_vgg19_weights(vgg)
    src = [m for m in vgg.modules() if isinstance(m, torch.nn.Conv2d)]
    dst = [m for m in E.modules() if isinstance(m, torch.nn.Conv2d)]
    if any(a.weight.shape != b.weight.shape for a, b in zip(src, dst, strict=False)):
        return
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        for i, (a, b) in enumerate(zip(src, dst, strict=False)):
            w, bias = a.weight.clone(), a.bias.clone()
            if i == 0:  # E sees [-1,1]; VGG saw (x01 - mean) / std with x01 = (x + 1) / 2
                bias = bias + (w * ((0.5 - mean) / std)).sum(dim=(1, 2, 3))
                w = w / (2 * std)
            b.weight.copy_(w.to(b.weight))
            b.bias.copy_(bias.to(b.bias))


def _psi_and_reducer(run: Run) -> tuple:
    """Psi (frozen expression features) and the PCA that reduces F_RB to Q's target."""
    cfg = run.cfg
    if not cfg.use_q:
        return None, None
    if not cfg.psi:
        raise LeedError(
            "L_Q needs an expression feature model: train one on another labelled set "
            "(`leed-synth faces data/psi --seed 1 --first-id 101 && leed-train data/psi --stage psi --out runs/psi`) "
            "and pass --psi runs/psi/psi.safetensors, or pass --no-q"
        )
    psi = load_feature_model(cfg.psi, run.device)
    reducer = losses.FeatureReducer(dim=cfg.net.q_out // 2)
    idx = np.random.default_rng(cfg.seed).permutation(len(run.crops))[:2048]
    feats = []
    with torch.no_grad():
        for s in range(0, len(idx), 128):
            feats.append(psi(crops_to_device(run, run.crops[np.sort(idx[s : s + 128])])).float().cpu())
    reducer.fit(torch.cat(feats))
    return psi, reducer.to(run.device)


def train_leed(run: Run) -> dict[str, torch.nn.Module]:
    """Train E, D, X, I, critic, Q, S on (I_A, R_B) pairs from different subjects."""
    cfg = run.cfg
    neutrals = np.load(run.dir / "neutrals.npy", mmap_mode="r") if (run.dir / "neutrals.npy").exists() else None
    if neutrals is None or len(neutrals) != len(run.crops):
        raise LeedError(
            f"{run.dir}: no neutral-face cache for this data; run `--stage neutralizer` first (or --stage all)"
        )
    nets, opts = build(run)
    phi = build_perceptual(cfg.perceptual, run.device)
    psi, reducer = _psi_and_reducer(run)
    saved = dict(nets)
    if reducer is not None:
        saved["reducer"] = reducer
    start, _ = resume_stage(run, STAGE, saved, opts)
    if start == 0 and cfg.init:
        init_stage(run, STAGE, saved)
    if run.world > 1:  # ranks draw different alphas after a resume too
        torch.manual_seed(cfg.seed + 7919 * run.rank + start)

    subjects = {s: i for i, s in enumerate(sorted({x.subject for x in run.train}))}
    data = PairDataset(
        run.crops, neutrals, np.array([subjects[x.subject] for x in run.train]), flip=True, seed=cfg.seed
    )
    per_epoch = len(batch_order(len(data), cfg.batch_size, 0, cfg.seed, run.rank, run.world))
    total_planned = cfg.epochs * per_epoch
    total = total_planned if cfg.max_steps <= 0 else min(total_planned, cfg.max_steps)
    bar = tqdm(total=total, initial=start, desc="stage 2 LEED", disable=not run.main, dynamic_ncols=True)
    budget = TimeBudget(run, cfg.minutes)
    for step, _epoch, batch in batches_of(run, data, cfg.batch_size, start, total):
        total_planned = budget.fit(step, total_planned)  # --minutes: the schedule fits the time
        total = min(total, total_planned)
        bar.total = total
        if step >= total:
            break
        decay = linear_decay(step, total_planned, total_planned // 2, 1.0)  # one schedule, scaled per network
        lr = cfg.lr * decay
        for k, opt in opts.items():
            for group in opt.param_groups:
                group["lr"] = base_lr(cfg, k) * decay
        stats = leed_step(run, nets, opts, phi, psi, reducer, batch)
        bar.update(1)
        if step % cfg.log_every == 0 or step == total - 1:
            stats = to_floats(stats)  # the one host sync of a logged step
            shown = ("L_recon", "L_exp", "L_S", "L_warp", "critic_w")
            bar.set_postfix({k: f"{v:.3g}" for k, v in stats.items() if k in shown})
            run.log.scalars(STAGE, step, {**stats, "lr": lr})
        if run.main and (step % cfg.sample_every == 0 or step == total - 1):
            sample_grid(run, nets, step)
        if (step + 1) % cfg.checkpoint_every == 0 and step + 1 < total:
            checkpoint(run, STAGE, step + 1, saved, opts)
    bar.close()
    if total >= total_planned:  # the final model (not a --max-steps smoke run, whose barely
        # trained decoder has degenerate statistics): up to 2048 crops in batches of 64-127, as
        # averaged per-batch variances miss the spread between batches unless batches are large
        pick = np.random.default_rng(cfg.seed).permutation(len(run.crops))[:2048]
        batches = np.array_split(pick, max(1, len(pick) // 64))
        recalibrate_decoder(nets["E"], nets["D"], (crops_to_device(run, run.crops[np.sort(b)]) for b in batches))
    check_ranks_agree(run, STAGE, nets)
    checkpoint(run, STAGE, total, saved, opts, extra={"done": total >= total_planned})
    return nets


@torch.no_grad()
def recalibrate_decoder(E: torch.nn.Module, D: torch.nn.Module, batches: Iterator[torch.Tensor]) -> None:
    """Re-estimate the running statistics of D's BatchNorm (Table 7) on real codes E(I) only.

    During training they follow every decoder pass with momentum 0.1, the siamese path's
    passes on interpolated codes included, so eval mode (and the export, which folds them into
    the convs) decodes with statistics of a different input than Eq. 15 trained on; measured
    on a CPU run at step 500: held-out reconstruction MSE 0.126 with them, 0.103 after this.
    Cumulative average over `batches` of images, as torch.optim.swa_utils.update_bn does;
    no weight changes. Cheap (forward passes only); run when stage 2 completes its epochs."""
    norms = [m for m in D.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    modes = (E.training, D.training)
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average
    E.eval()
    D.train()
    for x in batches:
        D(E(x))
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum
    E.train(modes[0])
    D.train(modes[1])


def leed_step(
    run: Run,
    nets: dict[str, torch.nn.Module],
    opts: dict[str, torch.optim.Optimizer],
    phi: torch.nn.Module,
    psi: Callable[[torch.Tensor], torch.Tensor] | None,
    reducer: torch.nn.Module | None,
    batch: dict[str, torch.Tensor],
) -> dict[str, torch.Tensor]:
    """One stage-2 step (main, critic, siamese phases) on a batch of I_A, I_N, R_B, R_N images
    (B,3,H,W in [-1,1]); returns the losses by name as detached 0-d tensors, so the step never
    waits for the GPU (`run.to_floats` reads them, once per logged step). `leed-bench train`
    times it on random data."""
    cfg = run.cfg
    E, D, X, I, critic, Q, S = (nets[k] for k in ("E", "D", "X", "I", "critic", "Q", "S"))
    ia, ia_n, rb, rb_n = (to_device(run, batch[k]) for k in ("ia", "ia_n", "rb", "rb_n"))
    n = len(ia)
    stats: dict[str, torch.Tensor] = {}

    # --- 1. main: E, X, I, D, Q ---
    with run.autocast():
        codes = E(torch.cat([ia, ia_n, rb, rb_n]))
        c_ia, c_in, c_rb, c_rn = codes.chunk(4)
        dexp_star = (c_rb - c_rn).detach()  # Eq. 1, the pseudo label
        dexp = X(c_rb.detach(), c_rn.detach())
        l_exp = losses.expression_loss(dexp.float(), dexp_star.float())
        total_loss = l_exp
        if cfg.use_q:
            with torch.no_grad():
                target = reducer(psi(rb).float())
            l_q = losses.regularizer_nll(Q(dexp).float(), target)
            total_loss = total_loss + cfg.lambda_q * l_q
            stats["L_Q"] = l_q.detach()
        alpha = torch.rand(n, 1, 1, 1, device=run.device)
        a_dexp = (alpha * dexp).detach()
        c_hat = I(c_in, a_dexp)  # Eq. 6's interpolated code, the critic's "fake"
        with frozen(critic):
            l_adv = losses.adversarial_loss(critic(c_hat.float()))
        l_interp = losses.interpolation_loss(I(c_in.detach(), a_dexp).float(), c_in.detach().float(), a_dexp.float())
        dexp_ia = X(c_ia.detach(), c_in.detach()).detach()
        l_idt = losses.identity_loss(I(c_in.detach(), dexp_ia).float(), c_ia.detach().float())
        if cfg.net.warp:  # L_warp: I_N moved by the flow of its own expression code, against I_A
            with torch.no_grad():  # D's alone: through X and I it moved the codes off the critic's "real" (diverged)
                own = X(c_ia, c_in)
                target, source = I(c_in, own), I(c_in, own * 0.0)
            moved_by = face_motion(D.flow(target), D.flow(source), ia_n).float()
            l_warp = losses.warp_loss(phi, warp(ia_n, moved_by).float(), ia.float(), moved_by, cfg.warp_smooth)
            total_loss = total_loss + cfg.lambda_warp * l_warp
            stats["L_warp"] = l_warp.detach()
        real_codes = torch.cat([c_ia, c_rb])
        recon = D(scale_grad(real_codes, cfg.lambda_recon))
        l_recon = losses.perceptual_loss(phi, recon.float(), torch.cat([ia, rb]).float())
        total_loss = total_loss + cfg.lambda_adv * l_adv + l_interp + l_idt + l_recon
        if cfg.use_siamese:
            with frozen(X, I, D, S):
                i_b = D(I(c_in, X(c_rb, c_rn)))
                s_rb, s_rn, s_ib, s_in = S(torch.cat([rb, rb_n, i_b, ia_n])).float().chunk(4)
            l_s = losses.siamese_loss(s_rb, s_rn, s_ib, s_in)
            total_loss = total_loss + cfg.lambda_s * l_s
            stats["L_S"] = l_s.detach()
    for k in ("E", "D", "X", "I", "Q"):
        if k in opts:
            opts[k].zero_grad(set_to_none=True)
    total_loss.backward()
    for k in ("E", "D", "X", "I", "Q"):
        if k in opts:
            all_reduce_grads(list(nets[k].parameters()), run.world)
            opts[k].step()
    stats.update(L_exp=l_exp, L_adv=l_adv, L_interp=l_interp, L_idt=l_idt, L_recon=l_recon)

    # --- 2. critic (Eq. 12) on this step's codes, detached: no extra encoder pass ---
    real_pool, fake = torch.cat([c_ia, c_rb]).detach().float(), c_hat.detach().float()
    for _ in range(cfg.n_critic):
        real = real_pool[torch.randperm(2 * n, device=run.device)[:n]]
        d_loss, parts = losses.critic_loss(critic, real, fake, cfg.lambda_gp)
        opts["critic"].zero_grad(set_to_none=True)
        d_loss.backward()
        all_reduce_grads(list(critic.parameters()), run.world)
        opts["critic"].step()
    stats.update(parts)

    # --- 3. siamese network S (alternating with E) ---
    if cfg.use_siamese:
        with run.autocast():
            s_rb, s_rn, s_ib, s_in = S(torch.cat([rb, rb_n, i_b.detach(), ia_n])).float().chunk(4)
            l_s_net = losses.siamese_loss(s_rb, s_rn, s_ib, s_in)
            l_margin = losses.siamese_margin_loss(s_rb - s_rn, cfg.siamese_margin)
        opts["S"].zero_grad(set_to_none=True)
        (l_s_net + l_margin).backward()
        all_reduce_grads(list(S.parameters()), run.world)
        opts["S"].step()
        stats["S_margin"] = l_margin

    return {k: v.detach() for k, v in stats.items()}


@torch.no_grad()
def sample_grid(run: Run, nets: dict[str, torch.nn.Module], step: int) -> None:
    """PNG rows: inputs, references, their neutral faces, reconstruction, linear Eq. 5, LEED edit."""
    neutrals = np.load(run.dir / "neutrals.npy", mmap_mode="r")
    subjects = [s.subject for s in run.train]
    n = len(subjects)
    ia_idx = list(range(0, n, max(1, n // 8)))[:8]
    rb_idx = [
        next((i + n // 2 + j) % n for j in range(n) if subjects[(i + n // 2 + j) % n] != subjects[i]) for i in ia_idx
    ]

    ia, rb = crops_to_device(run, run.crops[ia_idx]), crops_to_device(run, run.crops[rb_idx])
    ia_n, rb_n = crops_to_device(run, neutrals[ia_idx, 0]), crops_to_device(run, neutrals[rb_idx, 0])
    modes = {k: m.training for k, m in nets.items()}
    for m in nets.values():
        m.eval()
    leed = Leed(None, *(nets[k] for k in ("E", "X", "I", "D")))  # neutral faces from the cache, no G
    edits = [leed.edit_from_neutrals(ia_n, rb, rb_n, linear=linear).float().clamp(-1, 1) for linear in (True, False)]
    rows = [ia, rb, ia_n, rb_n, leed.D(leed.E(ia)).clamp(-1, 1), *edits]
    for k, m in nets.items():
        m.train(modes[k])
    labels = ["I_A", "R_B", "I_N", "R_N", "D(E(I_A))", "Eq.5 linear", "LEED edit"]
    save_grid(run.dir / "samples" / f"leed-{step:08d}.png", rows, labels)
