"""LEED's losses, one pure function per equation of the paper (Sec. 3.2-3.4), and StarGAN's.

Conventions:
- A norm written ||.||^2 in the paper is the mean squared error over all elements (batch
  included), so loss scales do not depend on code or image size.
- Targets that the paper's min does not optimise are detached inside the function (said in
  each docstring); inputs that should not receive gradient are the caller's to detach.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from leed_runtime.errors import LeedError

Critic = Callable[[Tensor], Tensor]


def expression_loss(dexp: Tensor, dexp_star: Tensor) -> Tensor:
    """Eq. 2: L_exp = ||dexp - dexp*||^2 with dexp = X(C_RB, C_RN) and the pseudo label
    dexp* = C_RB - C_RN (Eq. 1). The paper minimises Eq. 2 over X only, so dexp* is detached:
    the encoder gets no gradient from this term."""
    return F.mse_loss(dexp, dexp_star.detach())


def regularizer_nll(q_out: Tensor, target: Tensor) -> Tensor:
    """Eq. 3: L_Q = -E[log Q(. | .)], the InfoGAN [8] variational lower bound of the mutual
    information between dexp and Psi's features F_RB.

    The paper leaves Q's output undefined beyond "16" (Table 8) and writes Q(dexp | F) although
    Q's input is dexp (Table 8's 8x8 conv reads the code). We close it as InfoGAN does for
    continuous codes: Q(dexp) parameterises a diagonal Gaussian over an 8-d reduction of F_RB
    (`FeatureReducer`): q_out[:, :8] is the mean and q_out[:, 8:] the log-variance. Then
    I(dexp; F) >= H(F) + E[log q(F | dexp)], H(F) is constant, and this returns the Gaussian
    negative log-likelihood 0.5 * sum_k (logvar_k + (t_k - mu_k)^2 / exp(logvar_k) + log 2 pi),
    averaged over the batch. `target` (B, 8) is detached (Psi is fixed)."""
    k = q_out.shape[1] // 2
    if q_out.shape[1] != 2 * k or target.shape != (q_out.shape[0], k):
        raise ValueError(
            f"q_out {tuple(q_out.shape)} needs (B, 2k) with target (B, k); got target {tuple(target.shape)}"
        )
    mean, logvar = q_out[:, :k], q_out[:, k:]
    nll = 0.5 * (logvar + (target.detach() - mean) ** 2 * torch.exp(-logvar) + math.log(2 * math.pi))
    return nll.sum(dim=1).mean()


class FeatureReducer(nn.Module):
    """Whitened PCA of Psi's penultimate features F (B, feature_dim) -> (B, dim), the target of
    Q's Gaussian (Eq. 3, `regularizer_nll`); `dim` = q_out // 2 = 8 in the paper.

    Why: Psi's features are 512-d (ResNet-18) while Q has 16 outputs = mean and log-variance of
    8 dimensions. The 8 leading principal components keep the most variance of F (the
    expression evidence a classifier's penultimate layer carries), and whitening gives each
    unit variance, so the NLL weighs them equally and lambda_Q keeps one meaning across data
    sets. `fit` is run once on the training set's Psi features (feature_dim is taken from
    them); mean and components are buffers, so the reducer is saved and loaded with its
    state_dict (loading also works into a reducer that was never fitted)."""

    def __init__(self, dim: int = 8) -> None:
        super().__init__()
        self.dim = dim
        self.register_buffer("mean", torch.zeros(0))
        self.register_buffer("components", torch.zeros(dim, 0))

    @torch.no_grad()
    def fit(self, features: Tensor) -> FeatureReducer:
        """PCA of `features` (N, feature_dim), N > dim; the rows of `components` are the
        principal directions divided by their (unbiased) standard deviation."""
        n = features.shape[0]
        if features.dim() != 2 or n <= self.dim:
            raise LeedError(
                f"FeatureReducer.fit needs (N, F) features with N > {self.dim}, got {tuple(features.shape)}"
            )
        x = features.detach().to(torch.float64)
        mean = x.mean(dim=0)
        _, s, vh = torch.linalg.svd(x - mean, full_matrices=False)
        std = (s[: self.dim] / math.sqrt(n - 1)).clamp_min(1e-8)
        device = self.mean.device
        self.mean = mean.to(device, torch.float32)
        self.components = (vh[: self.dim] / std[:, None]).to(device, torch.float32)
        return self

    def _load_from_state_dict(self, state_dict: dict[str, Tensor], prefix: str, *args: object) -> None:
        for name in ("mean", "components"):
            if prefix + name in state_dict:  # feature_dim comes with the fitted weights
                setattr(self, name, torch.empty_like(state_dict[prefix + name], device=self.mean.device))
        super()._load_from_state_dict(state_dict, prefix, *args)

    def forward(self, features: Tensor) -> Tensor:
        if self.mean.numel() == 0:
            raise LeedError("FeatureReducer is not fitted: call fit() on the training set's Psi features first")
        return (features - self.mean) @ self.components.T


def interpolation_loss(i_out: Tensor, c_neutral: Tensor, scaled_dexp: Tensor) -> Tensor:
    """Eq. 6, second term: ||I(C_IN, a dexp) - (C_IN + a dexp)||^2, the linear interpolation of
    Eq. 5 as the target. Minimised over I only: the target is detached. (The first term of Eq. 6
    is `adversarial_loss`.)"""
    return F.mse_loss(i_out, (c_neutral + scaled_dexp).detach())


def identity_loss(i_out: Tensor, c_ia: Tensor) -> Tensor:
    """Eq. 7: L_idt = ||I(C_IN, X(C_IA, C_IN)) - C_IA||^2. Minimised over I: C_IA is detached."""
    return F.mse_loss(i_out, c_ia.detach())


def gradient_penalty(critic: Critic, real: Tensor, fake: Tensor) -> Tensor:
    """WGAN-GP penalty (Gulrajani et al. [20]; last term of Eq. 12): at random interpolates
    x~ = e real + (1 - e) fake, e ~ U[0, 1] per sample, mean over the batch of
    (||grad_x~ critic(x~)||_2 - 1)^2 (the norm over all of a sample's elements). `critic` may
    return any shape per sample (scores are summed, as yunjey/stargan does for a patch map)."""
    eps = torch.rand((real.shape[0],) + (1,) * (real.dim() - 1), device=real.device, dtype=real.dtype)
    x = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x).sum(), x, create_graph=True)
    return ((grad.flatten(1).norm(2, dim=1) - 1) ** 2).mean()


def critic_loss(critic: Critic, real: Tensor, fake: Tensor, lambda_gp: float) -> tuple[Tensor, dict[str, Tensor]]:
    """Eq. 12 for the code critic: E[D(C^)] - E[D(C)] + lambda_gp * GP, with C = E(I) real codes
    and C^ = I(...) interpolated codes (both detached: this step trains the critic only).
    The paper writes log D but says it adopts WGAN-GP, whose critic is unbounded: we use the
    Wasserstein form (no log). Returns the total and, detached, the Wasserstein estimate
    E[D(C)] - E[D(C^)] (`critic_w`) and the penalty (`critic_gp`)."""
    real, fake = real.detach(), fake.detach()
    d_adv = critic(fake).mean() - critic(real).mean()
    gp = gradient_penalty(critic, real, fake)
    return d_adv + lambda_gp * gp, {"critic_w": -d_adv.detach(), "critic_gp": gp.detach()}


def adversarial_loss(fake_scores: Tensor) -> Tensor:
    """Eq. 13 (and the first term of Eq. 6): L_adv(E, I) = -E[D(C^)], Wasserstein form."""
    return -fake_scores.mean()


def perceptual_loss(phi: Callable[[Tensor], Sequence[Tensor]], x: Tensor, y: Tensor) -> Tensor:
    """Eq. 14 / 15: ||Phi(x) - Phi(y)||^2 with x = D(C) or D(E(I)) and y = I: for every feature
    map Phi returns, the mean of squared differences, summed over maps. Phi(y) is the target and
    is detached."""
    return sum(
        (F.mse_loss(a, b.detach()) for a, b in zip(phi(x), phi(y), strict=True)),
        start=x.new_zeros(()),
    )


def warp_loss(
    phi: Callable[[Tensor], Sequence[Tensor]], moved: Tensor, target: Tensor, flow: Tensor, smooth: float
) -> Tensor:
    """L_warp (`--warp`, not in the paper): a person's neutral photo I_N warped by the flow D
    predicts for the move I(C_IN, X(C_IA, C_IN)) from I(C_IN, 0) (`model.warp`), against their
    expressive photo I_A: mean |moved - I_A| plus Eq. 14's perceptual distance, plus `smooth`
    times the flow's total variation (mean absolute difference of neighbours). Label-free like
    Eq. 7, whose code-space target it carries into the image: the person's own two photos.
    I_A is the target and is detached."""
    tv = (flow[:, :, 1:] - flow[:, :, :-1]).abs().mean() + (flow[:, :, :, 1:] - flow[:, :, :, :-1]).abs().mean()
    return (moved - target.detach()).abs().mean() + perceptual_loss(phi, moved, target) + smooth * tv


def siamese_loss(s_rb: Tensor, s_rn: Tensor, s_ib: Tensor, s_in: Tensor) -> Tensor:
    """Eq. 9-11: v_R = S(R_B) - S(R_N), v_I = S(I_B) - S(I_N), L_S = Dist(v_R, v_I) with the
    cosine distance mean(1 - cos(v_R, v_I)): 0 for parallel, 1 for orthogonal, 2 for opposite."""
    return (1 - F.cosine_similarity(s_rb - s_rn, s_ib - s_in, dim=1, eps=1e-8)).mean()


def siamese_margin_loss(v: Tensor, margin: float) -> Tensor:
    """TraVeLGAN's contrastive term (Amodio & Krishnaswamy 2019), not in the LEED paper: mean over
    pairs i != j of the batch of max(0, margin - ||v_i - v_j||_2).

    Why: E and S are updated alternately (Eq. 16) and Eq. 11 alone is minimised by an S that
    maps everything to one point (all v = 0, cosine undefined/constant). Pushing the vectors of
    different samples at least `margin` apart keeps S informative. `v` (B, dim), B >= 2: S's
    embeddings or transform vectors of a batch."""
    b = v.shape[0]
    if b < 2:
        raise ValueError("siamese_margin_loss needs a batch of at least 2")
    diff = v[:, None, :] - v[None, :, :]
    dist = torch.sqrt((diff**2).sum(dim=-1) + 1e-12)  # eps: finite gradient when v_i == v_j
    off_diagonal = ~torch.eye(b, dtype=torch.bool, device=v.device)
    return F.relu(margin - dist[off_diagonal]).mean()


# --- StarGAN (yunjey/stargan solver.py), the neutralizer stage ---


def stargan_classification_loss(logits: Tensor, target: Tensor) -> Tensor:
    """Domain classification loss of StarGAN. Integer class indices (B,) -> cross entropy, as
    yunjey uses for RaFD's one-hot labels (our binary neutral/expressive and 8-expression
    labels); float multi-hot (B, c_dim) -> BCE-with-logits summed over labels, averaged over the
    batch (yunjey's CelebA form)."""
    if target.dtype in (torch.int64, torch.int32):
        return F.cross_entropy(logits, target.long())
    return F.binary_cross_entropy_with_logits(logits, target, reduction="sum") / logits.shape[0]


def stargan_d_loss(
    D: nn.Module,
    real: Tensor,
    fake: Tensor,
    label_org: Tensor,
    lambda_cls: float,
    lambda_gp: float,
) -> tuple[Tensor, dict[str, Tensor]]:
    """StarGAN D step: -E[D_src(x)] + E[D_src(G(x, c))] + lambda_cls * L_cls(D_cls(x), c_org)
    + lambda_gp * GP (Wasserstein + gradient penalty on D_src). `fake` is detached. Returns the
    total and its detached parts by name."""
    src_real, cls_real = D(real)
    src_fake, _ = D(fake.detach())
    loss_real, loss_fake = -src_real.mean(), src_fake.mean()
    loss_cls = stargan_classification_loss(cls_real, label_org)
    loss_gp = gradient_penalty(lambda x: D(x)[0], real, fake)
    loss = loss_real + loss_fake + lambda_cls * loss_cls + lambda_gp * loss_gp
    parts = {"D/loss_real": loss_real, "D/loss_fake": loss_fake, "D/loss_cls": loss_cls, "D/loss_gp": loss_gp}
    return loss, {k: v.detach() for k, v in parts.items()}


def masked_l1(x: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Mean absolute error over the images where `mask` (B,) is true; 0 when none is.
    The neutralizer's `--gan-pair-l1` term (not in the paper): G(x, neutral) vs x's own neutral photo."""
    per_image = (x - target).abs().flatten(1).mean(1)
    return (per_image * mask.float()).sum() / mask.float().sum().clamp(min=1.0)


def stargan_g_loss(
    D: nn.Module,
    real: Tensor,
    fake: Tensor,
    reconstructed: Tensor,
    label_trg: Tensor,
    lambda_cls: float,
    lambda_rec: float,
) -> tuple[Tensor, dict[str, Tensor]]:
    """StarGAN G step: -E[D_src(G(x, c_trg))] + lambda_cls * L_cls(D_cls(G(x, c_trg)), c_trg)
    + lambda_rec * ||x - G(G(x, c_trg), c_org)||_1 (mean absolute error). Returns the total and
    its detached parts by name."""
    src_fake, cls_fake = D(fake)
    loss_fake = -src_fake.mean()
    loss_cls = stargan_classification_loss(cls_fake, label_trg)
    loss_rec = (real - reconstructed).abs().mean()
    loss = loss_fake + lambda_cls * loss_cls + lambda_rec * loss_rec
    parts = {"G/loss_fake": loss_fake, "G/loss_cls": loss_cls, "G/loss_rec": loss_rec}
    return loss, {k: v.detach() for k, v in parts.items()}
