"""The whole GRPO loss from logits: log-prob, advantage and per-token loss in one forward kernel,
d logits in one backward kernel (optionally written over the logits buffer).

Forward, one program per token row r = (i, t): an online log-sum-exp over the V logits gives logp;
the sequence's advantage A_i comes from its group's G rewards; then ℓ, dℓ/dlogp, k3 and the clip flag
(see :mod:`grit_fast.ops.grpo_loss` for the maths). Only 24 bytes per token are written (ℓ, dℓ/dlogp,
k3, clip, max, log-sum); the loss type's row weights c_i are applied to these (N, T) values in torch.
Backward: d logits_r = grad · c_i · m_it · dℓ/dlogp · (onehot - softmax) / τ, by the same kernel as
``selective_log_softmax``'s backward.

Peak memory with ``inplace_backward=True``: the logits, plus O(N·T) - no second (N, T, V) buffer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch.autograd.function import once_differentiable

from grit_fast import _dispatch
from grit_fast.ops import _checks, _triton_utils, reference
from grit_fast.ops._triton_utils import block_size, group_block
from grit_fast.ops.grpo_loss import summarise
from grit_fast.ops.logprob import GPU_BLOCK_V, rows_of, selective_log_softmax_bwd
from grit_fast.ops.types import LossOutput

if TYPE_CHECKING:
    from torch import Tensor


def grpo_loss_from_logits_fwd(
    flat: Tensor,
    ids: Tensor,
    old_logp: Tensor | None,
    ref_logp: Tensor | None,
    rewards: Tensor,
    t: int,
    group_size: int,
    hparams: tuple[float, float, float, float, float],
    scale: bool,
) -> tuple[Tensor, Tensor]:
    """Launch the fused forward on rows (R, V): advantages (N,) and per-token values (R, 6) fp32."""
    from grit_fast.ops._loss_kernels import _grpo_logits_fwd_kernel

    rows, vocab = flat.shape
    adv = torch.zeros(rewards.shape, dtype=torch.float32, device=flat.device)
    tok = torch.empty(rows, 6, dtype=torch.float32, device=flat.device)
    if rows:
        with _triton_utils.on_device(flat):
            _grpo_logits_fwd_kernel[(rows,)](
                flat,
                ids,
                ids if old_logp is None else old_logp,
                ids if ref_logp is None else ref_logp,
                rewards,
                adv,
                tok,
                flat.stride(0),
                vocab,
                t,
                group_size,
                hparams,
                SCALE=scale,
                HAS_OLD=old_logp is not None,
                HAS_REF=ref_logp is not None,
                BLOCK_V=block_size(vocab, flat.device, GPU_BLOCK_V),
                BLOCK_G=group_block(group_size, flat.device),
                **({"num_warps": 8} if flat.device.type == "cuda" else {}),
            )
    elif rewards.numel():
        # T = 0: no token program runs, so the advantages come from their own kernel.
        from grit_fast.ops.grpo_loss import group_advantages_fwd

        adv = group_advantages_fwd(rewards, group_size, scale, hparams[3])
    return adv, tok


class GRPOLossFromLogitsFunction(torch.autograd.Function):
    """loss (0-dim) of logits (N, T, V), plus advantages, KL and clip fraction (not differentiable)."""

    @staticmethod
    def forward(ctx, logits, ids, mask, old_logp, ref_logp, rewards, config):
        group_size, hparams, scale, loss_type, normalizer, inplace, max_len = config
        n, t, _ = logits.shape
        flat = rows_of(logits)
        ids_flat = ids.reshape(-1).contiguous()
        adv, tok = grpo_loss_from_logits_fwd(
            flat, ids_flat, old_logp, ref_logp, rewards, t, group_size, hparams, scale
        )
        m = mask.float().reshape(-1)
        on = m != 0
        # where, not m * x: a masked token's ℓ may be inf (e.g. a -inf logit) and must add exactly 0.
        per_row = torch.stack(
            [
                torch.where(on, m * tok[:, 0], 0.0),
                m,
                torch.where(on, m * tok[:, 2], 0.0),
                m * tok[:, 3],
            ],
            dim=1,
        ).view(n, t, 4)
        loss, row_scale, kl, clip_fraction = summarise(
            per_row.sum(dim=1), max_len, loss_type, normalizer
        )
        # d loss / d logp per token, before the incoming gradient: c_i · m_it · dℓ/dlogp
        coef = torch.where(on, row_scale.repeat_interleave(t) * m * tok[:, 1], 0.0)
        ctx.save_for_backward(flat, ids_flat, tok, coef)
        ctx.inv_temp = hparams[4]
        ctx.inplace = inplace
        ctx.shape = logits.shape
        ctx.mark_non_differentiable(adv, kl, clip_fraction)
        return loss, adv, kl, clip_fraction

    @staticmethod
    @once_differentiable  # the backward is not itself differentiable: say so on double backward
    def backward(ctx, grad_loss, *_):
        flat, ids_flat, tok, coef = ctx.saved_tensors
        dlogits = selective_log_softmax_bwd(
            flat, ids_flat, coef * grad_loss, tok[:, 4:], ctx.inv_temp, ctx.inplace
        )
        return dlogits.view(ctx.shape), *([None] * 6)


def _detached(x: Tensor | None) -> Tensor | None:
    return None if x is None else x.detach().reshape(-1).contiguous()


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
    """GRPO loss from logits (N, T, V) at ``ids`` (N, T): :func:`grpo_loss` of
    ``selective_log_softmax(logits, ids, temperature)``, in one forward and one backward kernel
    (``max_completion_length``: the constant ``dr_grpo`` divides by, as there).

    ``inplace_backward=True`` makes the backward write d(logits) over the logits buffer, so no
    second (N, T, V) tensor is allocated. The logits must then be a contiguous non-leaf tensor
    (e.g. the lm_head's output); an op that saved them for its own backward and runs after this
    one is caught by autograd ("modified by an inplace operation"), never fed the gradient.
    """
    _checks.check_logits_ids(logits, ids, temperature)
    n, t, _ = logits.shape
    _checks.check_grpo_inputs(logits.new_empty(n, t), rewards, mask, group_size, old_logp, ref_logp)
    _checks.check_loss_args(loss_type, normalizer, beta, eps_low, eps_high, adv_eps)
    _checks.check_max_completion_length(loss_type, max_completion_length, t)
    if inplace_backward:
        reference.check_inplace_backward(logits)
    optional = [x for x in (old_logp, ref_logp) if x is not None]
    if not _dispatch.use_fast("grpo_loss_from_logits", logits, ids, rewards, mask, *optional):
        return reference.grpo_loss_from_logits(
            logits,
            ids,
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
            temperature=temperature,
            inplace_backward=inplace_backward,
            max_completion_length=max_completion_length,
        )
    hparams = (float(beta), float(eps_low), float(eps_high), float(adv_eps), 1.0 / temperature)
    config = (
        group_size,
        hparams,
        bool(scale_rewards),
        loss_type,
        normalizer,
        inplace_backward,
        max_completion_length,
    )
    loss, adv, kl, clip_fraction = GRPOLossFromLogitsFunction.apply(
        logits,
        ids,
        mask.detach(),
        _detached(old_logp),
        _detached(ref_logp),
        rewards.detach().contiguous(),
        config,
    )
    return LossOutput(loss, adv, kl, clip_fraction)
