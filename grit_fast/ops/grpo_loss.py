"""GRPO loss from per-token log-probs, with the group-relative advantage computed in the kernel.

Maths (docs/method.md §3; the twin is :func:`grit_fast.ops.reference.grpo_loss`): for sequence i of
group g, A_i = (r_i - mean_g r) / (std_g r + eps); per token ℓ_it = -min(ρA_i, clip(ρ)A_i) +
β·k3(ref, logp), ρ = exp(logp - old). The loss type only decides one weight c_i per sequence:
loss = Σ_i c_i · S_i with S_i = Σ_t m_it ℓ_it, so one forward kernel (per-row sums) and one backward
kernel (d logp = c_i · m · dℓ/dlogp, recomputed) serve all of them:

    grpo    c_i = 1 / (N · max(len_i, 1))      bnpo  c_i = 1 / max(Σ len, 1)
    dr_grpo c_i = 1 / (N · max_completion_length)   dapo  c_i = 1 / normalizer

Order: launchers (kernels live in ``_loss_kernels``, imported lazily) → autograd.Function → public.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch.autograd.function import once_differentiable

from grit_fast import _dispatch
from grit_fast.ops import _checks, _triton_utils, reference
from grit_fast.ops._triton_utils import as_float_or_tensor, block_size, group_block, kernel_mask
from grit_fast.ops.types import LossOutput

if TYPE_CHECKING:
    from torch import Tensor


def _row_scale_grpo(lengths: Tensor, max_len: Any, normalizer: Any) -> Tensor:
    return 1.0 / (lengths.clamp(min=1.0) * max(lengths.shape[0], 1))


def _row_scale_bnpo(lengths: Tensor, max_len: Any, normalizer: Any) -> Tensor:
    return (1.0 / lengths.sum().clamp(min=1.0)).expand(lengths.shape)


def _row_scale_dr_grpo(lengths: Tensor, max_len: Any, normalizer: Any) -> Tensor:
    # A constant (TRL, Liger, Dr. GRPO): not the batch's padded width, which varies per batch.
    return lengths.new_full(lengths.shape, 1.0 / max(lengths.shape[0] * max_len, 1))


def _row_scale_dapo(lengths: Tensor, max_len: Any, normalizer: Any) -> Tensor:
    return (1.0 / torch.as_tensor(as_float_or_tensor(normalizer), device=lengths.device)).expand(
        lengths.shape
    )


# d loss / d S_i for each loss type: a new aggregation is one small function here, not a kernel flag.
ROW_SCALES = {
    "grpo": _row_scale_grpo,
    "bnpo": _row_scale_bnpo,
    "dr_grpo": _row_scale_dr_grpo,
    "dapo": _row_scale_dapo,
}


def summarise(
    row_sums: Tensor, max_len: int | None, loss_type: str, normalizer: Any
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """From per-row sums [N, 4] (Σ m·ℓ, Σ m, Σ m·k3, Σ m·clipped): loss, row scales c (N,), the
    KL metric (token-mean per sequence, then mean) and the clip fraction. ``max_len``: the
    ``max_completion_length`` of ``dr_grpo``."""
    lengths = row_sums[:, 1]
    scale = ROW_SCALES[loss_type](lengths, max_len, normalizer)
    loss = (scale * row_sums[:, 0]).sum()
    kl = (row_sums[:, 2] / lengths.clamp(min=1.0)).mean()
    clip_fraction = row_sums[:, 3].sum() / lengths.sum().clamp(min=1.0)
    return loss, scale, kl, clip_fraction


def group_advantages_fwd(rewards: Tensor, group_size: int, scale: bool, eps: float) -> Tensor:
    """Launch ``_group_advantages_kernel``: one program per sequence -> (N,) fp32."""
    from grit_fast.ops._loss_kernels import _group_advantages_kernel

    rewards = rewards.detach().contiguous()
    adv = torch.empty(rewards.shape, dtype=torch.float32, device=rewards.device)
    if rewards.numel():
        with _triton_utils.on_device(rewards):
            _group_advantages_kernel[(rewards.shape[0],)](
                rewards,
                adv,
                group_size,
                float(eps),
                SCALE=scale,
                BLOCK_G=group_block(group_size, rewards.device),
            )
    return adv


def grpo_loss_fwd(
    logp: Tensor,
    old_logp: Tensor | None,
    ref_logp: Tensor | None,
    mask: Tensor,
    rewards: Tensor,
    group_size: int,
    hparams: tuple[float, float, float, float],
    scale: bool,
) -> Tensor:
    """Launch the forward kernel: (N, 5) fp32 = A_i, Σ m·ℓ, Σ m, Σ m·k3, Σ m·clipped per sequence."""
    from grit_fast.ops._loss_kernels import _grpo_loss_fwd_kernel

    n, t = logp.shape
    stats = torch.zeros(n, 5, dtype=torch.float32, device=logp.device)
    if n == 0:
        return stats
    with _triton_utils.on_device(logp):
        _grpo_loss_fwd_kernel[(n,)](
            logp,
            logp if old_logp is None else old_logp,
            logp if ref_logp is None else ref_logp,
            mask,
            rewards,
            stats,
            t,
            group_size,
            hparams,
            SCALE=scale,
            HAS_OLD=old_logp is not None,
            HAS_REF=ref_logp is not None,
            BLOCK_T=block_size(t, logp.device, 1024),
            BLOCK_G=group_block(group_size, logp.device),
        )
    return stats


def grpo_loss_bwd(
    logp: Tensor,
    old_logp: Tensor | None,
    ref_logp: Tensor | None,
    mask: Tensor,
    stats: Tensor,
    row_scale: Tensor,
    hparams: tuple[float, float, float, float],
) -> Tensor:
    """Launch the backward kernel: d logp (N, T) in logp's dtype for row weights ``row_scale``."""
    from grit_fast.ops._loss_kernels import _grpo_loss_bwd_kernel

    n, t = logp.shape
    dlogp = torch.empty_like(logp)
    if n == 0:
        return dlogp
    with _triton_utils.on_device(logp):
        _grpo_loss_bwd_kernel[(n,)](
            dlogp,
            logp,
            logp if old_logp is None else old_logp,
            logp if ref_logp is None else ref_logp,
            mask,
            stats,
            row_scale.float().contiguous(),
            t,
            hparams,
            HAS_OLD=old_logp is not None,
            HAS_REF=ref_logp is not None,
            BLOCK_T=block_size(t, logp.device, 1024),
        )
    return dlogp


class GRPOLossFunction(torch.autograd.Function):
    """loss (0-dim) of logp; also returns the (N, 5) per-row stats (not differentiable)."""

    @staticmethod
    def forward(
        ctx,
        logp,
        old_logp,
        ref_logp,
        mask,
        rewards,
        group_size,
        hparams,
        scale,
        loss_type,
        normalizer,
        max_len,
    ):
        stats = grpo_loss_fwd(logp, old_logp, ref_logp, mask, rewards, group_size, hparams, scale)
        loss, row_scale, kl, clip_fraction = summarise(stats[:, 1:], max_len, loss_type, normalizer)
        ctx.save_for_backward(logp, old_logp, ref_logp, mask, stats, row_scale)
        ctx.hparams = hparams
        advantages = stats[:, 0].contiguous()
        ctx.mark_non_differentiable(advantages, kl, clip_fraction)
        return loss, advantages, kl, clip_fraction

    @staticmethod
    @once_differentiable  # the backward is not itself differentiable: say so on double backward
    def backward(ctx, grad_loss, *_):
        logp, old_logp, ref_logp, mask, stats, row_scale = ctx.saved_tensors
        dlogp = grpo_loss_bwd(
            logp, old_logp, ref_logp, mask, stats, row_scale * grad_loss, ctx.hparams
        )
        return dlogp, *([None] * 10)


def group_advantages(
    rewards: Tensor, group_size: int, scale: bool = True, eps: float = 1e-4
) -> Tensor:
    """Group-relative advantages: rewards (N,) in consecutive groups of ``group_size`` -> (N,) fp32.

    A_i = (r_i - mean_g r) / (std_g r + eps), Bessel's std (0 for a group of one, so A = 0);
    ``scale=False`` gives r_i - mean_g r. Equal rewards in a group give A = 0 exactly.
    """
    _checks.check_rewards(rewards)
    _checks.check_group_size(rewards.shape[0], group_size)
    if _dispatch.use_fast("group_advantages", rewards):
        return group_advantages_fwd(rewards, group_size, bool(scale), float(eps))
    return reference.group_advantages(rewards, group_size, scale, eps)


def _contiguous(x: Tensor | None) -> Tensor | None:
    return None if x is None else x.detach().contiguous()


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
    """GRPO loss from per-token log-probs; returns :class:`LossOutput`.

    logp, old_logp, ref_logp, mask: (N, T) (log-probs fp32/bf16/fp16; mask bool or numeric);
    rewards: (N,), N a multiple of ``group_size``. ``old_logp=None``: one on-policy update (ρ ≡ 1,
    gradient A). ``ref_logp=None`` or ``beta=0``: no KL term. ``loss_type``: grpo | bnpo | dr_grpo |
    dapo (``normalizer`` = global unmasked-token count; ``dr_grpo`` divides by N ×
    ``max_completion_length``, required there). The loss is differentiable w.r.t. ``logp``.
    """
    _checks.check_grpo_inputs(logp, rewards, mask, group_size, old_logp, ref_logp)
    _checks.check_loss_args(loss_type, normalizer, beta, eps_low, eps_high, adv_eps)
    _checks.check_max_completion_length(loss_type, max_completion_length, logp.shape[1])
    optional = [x for x in (old_logp, ref_logp) if x is not None]
    if not _dispatch.use_fast("grpo_loss", logp, rewards, mask, *optional):
        return reference.grpo_loss(
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
    hparams = (float(beta), float(eps_low), float(eps_high), float(adv_eps))
    loss, adv, kl, clip_fraction = GRPOLossFunction.apply(
        logp.contiguous(),
        _contiguous(old_logp),
        _contiguous(ref_logp),
        kernel_mask(mask.detach()),
        rewards.detach().contiguous(),
        group_size,
        hparams,
        bool(scale_rewards),
        loss_type,
        normalizer,
        max_completion_length,
    )
    return LossOutput(loss, adv, kl, clip_fraction)
