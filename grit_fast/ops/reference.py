"""Plain-torch twins of the loss ops: the method (docs/method.md §3), the CPU fallback and the benchmark
baseline. Every Triton op in :mod:`grit_fast.ops` has the same signature and is tested against these.

Notation: N sequences (completions) of T tokens in consecutive groups of G per prompt; V vocabulary.

* Advantage of sequence i in group g:  A_i = (r_i - mean_g r) / (std_g r + eps), std unbiased;
  ``scale=False`` gives A_i = r_i - mean_g r. The mean is taken of r - r_first, so a group of equal
  rewards gives A = 0 exactly (and G = 1 gives A = 0, the std of one sample being taken as 0).
* Ratio ρ = exp(logp - old_logp); with ``old_logp=None`` old_logp = logp.detach(), so ρ ≡ 1 with
  gradient A (one on-policy update per batch, as GRIT's code does).
* Per-token loss  ℓ = -min(ρA, clip(ρ, 1-ε_low, 1+ε_high)A) + β·(exp(ref - logp) - (ref - logp) - 1).
* loss = Σ_{i,t} w_it · ℓ_it with w from :func:`token_weights` (the loss type).

Arithmetic is fp32 for fp32/bf16/fp16 inputs and fp64 for fp64 inputs (:func:`compute_dtype`), so
fp64 inputs give fp64 results that ``torch.autograd.gradcheck`` can check.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch.autograd.function import once_differentiable

from grit_fast.ops import _checks
from grit_fast.ops.types import LossOutput

if TYPE_CHECKING:
    from torch import Tensor

# fp32 elements per chunk of the CPU log-softmax (16 MiB): bounds the temporary whatever N*T*V is.
CHUNK_ELEMENTS = 1 << 22


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype the loss arithmetic runs in for inputs of ``dtype``: fp64 for fp64, else fp32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def group_advantages(
    rewards: Tensor, group_size: int, scale: bool = True, eps: float = 1e-4
) -> Tensor:
    """Group-relative advantages. rewards: (N,) float, N a multiple of group_size -> (N,) float32.

    A_i = (r_i - mean_g r) / (std_g r + eps) with Bessel's std (0 for a group of one);
    ``scale=False`` returns r_i - mean_g r. No gradient flows to ``rewards``.
    """
    _checks.check_rewards(rewards)
    _checks.check_group_size(rewards.shape[0], group_size)
    r = rewards.detach().float().view(-1, group_size)  # [N/G, G]
    # Shifting by the first reward keeps equal rewards exactly equal (A = 0, not 1e-8 noise).
    d = r - r[:, :1]
    centred = d - d.mean(dim=1, keepdim=True)
    if not scale:
        return centred.reshape(-1)
    var = centred.square().sum(dim=1, keepdim=True) / max(group_size - 1, 1)
    # centred == 0 stays 0 even with eps = 0 (a group of equal rewards: 0 / 0 would be NaN)
    adv = torch.where(centred == 0, 0.0, centred / (var.sqrt() + eps))
    return adv.reshape(-1)


def token_weights(
    mask: Tensor,
    loss_type: str = "grpo",
    normalizer: Any = None,
    max_completion_length: int | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """The coefficients w (N, T) of ``dtype`` such that loss = Σ w ⊙ per_token_loss.

    grpo:    mask_it / (max(len_i, 1) · N)   token-mean per sequence, then mean over sequences
    bnpo:    mask_it / max(Σ mask, 1)        token-mean over the batch
    dr_grpo: mask_it / (N · max_completion_length)   a constant, whatever the padded width T
    dapo:    mask_it / normalizer            normalizer = global unmasked-token count
    An all-masked row gets w = 0 (and under grpo still counts in the N of the mean).
    """
    _checks.check_loss_args(loss_type, normalizer, 0.0, 0.0, 0.0, 0.0)
    if mask.dim() != 2:
        raise ValueError(f"mask must be 2-D (N, T), got shape {tuple(mask.shape)}")
    _checks.check_max_completion_length(loss_type, max_completion_length, mask.shape[1])
    m = mask.detach().to(dtype)
    n = m.shape[0]
    if loss_type == "grpo":
        return m / (m.sum(dim=1, keepdim=True).clamp(min=1.0) * max(n, 1))
    if loss_type == "bnpo":
        return m / m.sum().clamp(min=1.0)
    if loss_type == "dr_grpo":
        return m / (n * max_completion_length)
    norm = normalizer.to(dtype) if isinstance(normalizer, torch.Tensor) else float(normalizer)
    return m / norm


def clipped_mask(ratio: Tensor, advantages: Tensor, eps_low: float, eps_high: float) -> Tensor:
    """(N, T) bool: where the clipped surrogate is active (its gradient is cut off)."""
    a = advantages[:, None]
    return ((ratio < 1.0 - eps_low) & (a < 0)) | ((ratio > 1.0 + eps_high) & (a > 0))


def per_token_kl(logp: Tensor, ref_logp: Tensor) -> Tensor:
    """k3 estimator of KL(π‖π_ref) per token: exp(ref - logp) - (ref - logp) - 1 >= 0, in
    :func:`compute_dtype` of ``logp``."""
    acc = compute_dtype(logp.dtype)
    delta = ref_logp.to(acc) - logp.to(acc)
    return torch.exp(delta) - delta - 1.0


def per_token_loss(
    logp: Tensor,
    advantages: Tensor,
    old_logp: Tensor | None = None,
    ref_logp: Tensor | None = None,
    beta: float = 0.01,
    eps_low: float = 0.2,
    eps_high: float = 0.2,
) -> Tensor:
    """ℓ (N, T) = clipped surrogate + β·k3 KL, differentiable w.r.t. ``logp`` (N, T); float32 (float64
    for float64 ``logp``).

    advantages: (N,). ``old_logp=None``: ρ ≡ 1 with gradient A. ``ref_logp=None`` or ``beta=0``:
    no KL term.
    """
    lp = logp.to(compute_dtype(logp.dtype))
    old = lp.detach() if old_logp is None else old_logp.detach().to(lp.dtype)
    a = advantages.detach().to(lp.dtype)[:, None]
    ratio = torch.exp(lp - old)
    loss = -torch.minimum(ratio * a, torch.clamp(ratio, 1.0 - eps_low, 1.0 + eps_high) * a)
    if ref_logp is not None and beta != 0:
        loss = loss + beta * per_token_kl(lp, ref_logp.detach())
    return loss


def grpo_loss(
    logp: Tensor,
    rewards: Tensor,
    mask: Tensor,
    *,
    group_size: int,
    old_logp: Tensor | None = None,
    ref_logp: Tensor | None = None,
    beta: float = 0.01,
    eps_low: float = 0.2,
    eps_high: float = 0.2,
    loss_type: str = "grpo",
    scale_rewards: bool = True,
    adv_eps: float = 1e-4,
    normalizer: Any = None,
    max_completion_length: int | None = None,
) -> LossOutput:
    """GRPO loss from per-token log-probs. logp/old_logp/ref_logp/mask: (N, T); rewards: (N,).

    ``max_completion_length``: the constant ``dr_grpo`` divides by (with N; required there).
    Returns :class:`LossOutput` (loss differentiable w.r.t. ``logp``; metrics detached).
    """
    _checks.check_grpo_inputs(logp, rewards, mask, group_size, old_logp, ref_logp)
    _checks.check_loss_args(loss_type, normalizer, beta, eps_low, eps_high, adv_eps)
    _checks.check_max_completion_length(loss_type, max_completion_length, logp.shape[1])
    adv = group_advantages(rewards, group_size, scale=scale_rewards, eps=adv_eps)
    ell = per_token_loss(logp, adv, old_logp, ref_logp, beta, eps_low, eps_high)
    weights = token_weights(mask, loss_type, normalizer, max_completion_length, ell.dtype)
    loss = (weights * ell).sum()
    with torch.no_grad():
        m = mask.float()
        lengths = m.sum(dim=1).clamp(min=1.0)
        if ref_logp is not None:
            kl = ((per_token_kl(logp, ref_logp) * m).sum(dim=1) / lengths).mean()
        else:
            kl = m.new_zeros(())
        lp = logp.detach().to(compute_dtype(logp.dtype))
        ratio = torch.ones_like(lp) if old_logp is None else torch.exp(lp - old_logp.to(lp.dtype))
        clipped = clipped_mask(ratio, adv, eps_low, eps_high).float()
        clip_fraction = (clipped * m).sum() / m.sum().clamp(min=1.0)
    return LossOutput(loss, adv, kl, clip_fraction)


class ChunkedSelectiveLogSoftmax(torch.autograd.Function):
    """log_softmax(logits / τ) gathered at ids, computed CHUNK_ELEMENTS at a time.

    Forward keeps only the per-row max and log-sum-exp (fp32, two per token); backward recomputes the
    softmax chunk by chunk: d logits = g/τ · (onehot(ids) - softmax(logits/τ)). So the fp32 (N, T, V)
    log-softmax never exists, neither in forward nor saved for backward.
    """

    @staticmethod
    def forward(ctx, logits, ids, temperature, inplace_backward):
        vocab = logits.shape[-1]
        flat = logits.reshape(-1, vocab)  # [R, V]
        idx = ids.reshape(-1, 1).long()  # [R, 1]
        rows = flat.shape[0]
        acc = compute_dtype(logits.dtype)
        out = torch.empty(rows, dtype=acc, device=logits.device)
        # The row max and log Σ exp(x - max) are kept apart: at |x| ~ 1e4 their fp32 sum (the lse)
        # would lose ~1e-3 of absolute precision, which x - lse would then carry into log-probs.
        row_max = torch.empty(rows, dtype=acc, device=logits.device)
        log_sum = torch.empty(rows, dtype=acc, device=logits.device)
        step = max(1, CHUNK_ELEMENTS // vocab)
        for s in range(0, rows, step):
            x = flat[s : s + step].to(acc, copy=True)  # a copy: updated in place below
            if temperature != 1.0:
                x.div_(temperature)
            m = x.amax(dim=-1, keepdim=True)
            m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
            x.sub_(m)
            row_max[s : s + step] = m.squeeze(1)
            log_sum[s : s + step] = torch.logsumexp(x, dim=-1)
            out[s : s + step] = x.gather(1, idx[s : s + step]).squeeze(1) - log_sum[s : s + step]
        ctx.save_for_backward(logits, idx, row_max, log_sum)
        ctx.temperature = temperature
        ctx.inplace_backward = inplace_backward
        return out.view(ids.shape)

    @staticmethod
    @once_differentiable  # the backward is not itself differentiable: say so on double backward
    def backward(ctx, grad_out):
        logits, idx, row_max, log_sum = ctx.saved_tensors
        vocab = logits.shape[-1]
        tau = ctx.temperature
        flat = logits.reshape(-1, vocab)
        # In place: the gradient overwrites the logits buffer chunk by chunk (each chunk is read
        # before it is written), so no second (N, T, V) tensor is allocated.
        grad = flat if ctx.inplace_backward else torch.empty_like(flat)
        g = grad_out.reshape(-1, 1).to(row_max.dtype)  # [R, 1]
        step = max(1, CHUNK_ELEMENTS // vocab)
        for s in range(0, flat.shape[0], step):
            # one fp32 temporary per chunk, updated in place: p = exp(x/τ - max - log-sum)
            d = flat[s : s + step].to(row_max.dtype, copy=True)
            if tau != 1.0:
                d.div_(tau)
            d.sub_(row_max[s : s + step, None]).sub_(log_sum[s : s + step, None]).exp_()
            d.mul_(-g[s : s + step]).scatter_add_(1, idx[s : s + step], g[s : s + step])
            if tau != 1.0:
                d.div_(tau)
            grad[s : s + step] = d
        return grad.view(logits.shape), None, None, None


def check_inplace_backward(logits: Tensor) -> None:
    """Refuse ``inplace_backward=True`` where overwriting ``logits`` would corrupt something."""
    if not logits.is_contiguous():
        raise ValueError("inplace_backward=True needs contiguous logits (their buffer is reused)")
    if logits.requires_grad and logits.is_leaf:
        raise ValueError(
            "inplace_backward=True would overwrite a leaf tensor that the caller owns; pass logits "
            "produced by an op (e.g. the lm_head matmul) or use inplace_backward=False"
        )


def selective_log_softmax(logits: Tensor, ids: Tensor, temperature: float = 1.0) -> Tensor:
    """log_softmax(logits / temperature)[..., ids]: logits (N, T, V), ids (N, T) -> (N, T) float32
    (float64 for float64 logits).

    Chunked over rows so that no fp32 (N, T, V) intermediate exists (forward or backward).
    """
    _checks.check_logits_ids(logits, ids, temperature)
    return ChunkedSelectiveLogSoftmax.apply(logits, ids, float(temperature), False)


def grpo_loss_from_logits(
    logits: Tensor,
    ids: Tensor,
    rewards: Tensor,
    mask: Tensor,
    *,
    group_size: int,
    old_logp: Tensor | None = None,
    ref_logp: Tensor | None = None,
    beta: float = 0.01,
    eps_low: float = 0.2,
    eps_high: float = 0.2,
    loss_type: str = "grpo",
    scale_rewards: bool = True,
    adv_eps: float = 1e-4,
    normalizer: Any = None,
    temperature: float = 1.0,
    inplace_backward: bool = False,
    max_completion_length: int | None = None,
) -> LossOutput:
    """:func:`grpo_loss` of ``selective_log_softmax(logits, ids, temperature)``.

    logits: (N, T, V); ids, mask, old_logp, ref_logp: (N, T); rewards: (N,). With
    ``inplace_backward=True`` the backward writes d(logits) into the logits buffer (see
    :func:`check_inplace_backward` for when that is refused).
    """
    _checks.check_logits_ids(logits, ids, temperature)
    if inplace_backward:
        check_inplace_backward(logits)
    logp = ChunkedSelectiveLogSoftmax.apply(logits, ids, float(temperature), bool(inplace_backward))
    return grpo_loss(
        logp,
        rewards,
        mask,
        group_size=group_size,
        old_logp=old_logp,
        ref_logp=ref_logp,
        beta=beta,
        eps_low=eps_low,
        eps_high=eps_high,
        loss_type=loss_type,
        scale_rewards=scale_rewards,
        adv_eps=adv_eps,
        normalizer=normalizer,
        max_completion_length=max_completion_length,
    )
