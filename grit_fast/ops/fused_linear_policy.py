"""Clipped policy-gradient loss from hidden states and the lm_head, with the advantages and each
token's weight given: what a trainer that computes its own advantages and its own loss
normalisation hands over (TRL's ``GRPOTrainer``, see :mod:`grit_fast.trl`).

Maths: logits = h W^T + b over the R = N·T token rows, logp = log_softmax(logits / τ)[id],
ρ = exp(logp - old), and

    ℓ_r  = -min(ρ A_r, clip(ρ, 1-ε_low, 1+ε_high) A_r) + β·k3(ref_r, logp_r)
    loss = Σ_r w_r ℓ_r

with A_r the advantage of the token's sequence (or of the token itself) and w_r any per-token
weight: the loss type's normalisation times the mask (times an importance-sampling ratio, …).
:func:`grit_fast.ops.fused_linear_grpo_loss` is the special case where A comes from group rewards
and w from the loss type; both run the chunk loop of :mod:`grit_fast.ops.fused_linear` (gradients
formed in the forward, no (N, T, V) tensor, rows of weight 0 skipped), on the same row step: the
Triton kernel on CUDA (or under ``TRITON_INTERPRET=1``), a torch step on CPU. The unfused twin is
:func:`grit_fast.ops.reference_fused_linear.fused_linear_policy_loss`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

import torch
from torch.autograd.function import once_differentiable

from grit_fast import _dispatch
from grit_fast.ops import _checks
from grit_fast.ops import reference_fused_linear as twin
from grit_fast.ops.fused_linear import _flat, _step, auto_chunk_size, chunked_rows
from grit_fast.ops.reference import compute_dtype

if TYPE_CHECKING:
    from torch import Tensor


class PolicyLossOutput(NamedTuple):
    """loss: 0-dim float32 (float64 for fp64 operands), differentiable w.r.t. hidden, weight and
    bias; logp: (N, T) of the same dtype, the log-probs of ``ids`` where the weight is non-zero, 0 elsewhere
    (no gradient; for metrics such as the clip ratio or the KL)."""

    loss: Tensor
    logp: Tensor


class FusedLinearPolicyLossFunction(torch.autograd.Function):
    """loss (0-dim) and per-token log-probs (not differentiable) of hidden [N, T, H], weight [V, H],
    bias [V]. Gradients are computed in the forward, scaled in the backward."""

    @staticmethod
    def forward(ctx, hidden, weight, bias, ids, advantages, weights, old_logp, ref_logp, config):
        hparams, chunk, step, need = config
        n, t, width = hidden.shape
        acc = compute_dtype(hidden.dtype)  # fp32 (fp64 for fp64 operands)
        adv = advantages.detach().to(acc)
        adv = (adv[:, None] if adv.dim() == 1 else adv).expand(n, t)
        w = weights.detach().to(acc).reshape(-1)
        on = w != 0
        per_token = (
            ids.reshape(-1).contiguous(),
            _flat(old_logp, acc),
            _flat(ref_logp, acc),
            adv.reshape(-1).contiguous(),
            w.contiguous(),
        )
        # Rows of weight 0 (padding, masked tokens) add nothing: only the others are computed.
        keep = on.nonzero().squeeze(1)
        keep = None if keep.numel() == on.numel() else keep
        h = hidden.detach().reshape(n * t, width).contiguous()  # [R, H]
        b = None if bias is None else bias.detach()
        tok, grad_h, grad_w, grad_b = chunked_rows(
            h, weight.detach(), b, per_token, hparams, chunk, step, need, keep
        )
        # where, not w * ℓ: a skipped token's ℓ is a placeholder and must add exactly 0
        loss = torch.where(on, w * tok[:, 0], 0.0).sum()
        logp = torch.where(on, tok[:, 3], 0.0).view(n, t)
        ctx.grads = (None if grad_h is None else grad_h.view(hidden.shape), grad_w, grad_b)
        ctx.mark_non_differentiable(logp)
        return loss, logp

    @staticmethod
    @once_differentiable  # the backward is not itself differentiable: say so on double backward
    def backward(ctx, grad_loss, _grad_logp):
        if ctx.grads is None:
            raise RuntimeError(
                "fused_linear_policy_loss: backward through the same loss a second time; its "
                "gradients were formed in the forward and handed out by the first backward - "
                "compute the loss again (retain_graph cannot keep them)"
            )
        grads = [None if g is None else g.mul_(grad_loss) for g in ctx.grads]
        ctx.grads = None  # the stored gradients now belong to autograd
        return *grads, *([None] * 6)


def fused_linear_policy_loss(
    hidden: Tensor,
    weight: Tensor,
    ids: Tensor,
    advantages: Tensor,
    weights: Tensor,
    *,
    bias: Tensor | None = None,
    old_logp: Tensor | None = None,
    ref_logp: Tensor | None = None,
    beta: float = 0.0,
    eps_low: float = 0.2,
    eps_high: float = 0.2,
    temperature: float = 1.0,
    chunk_size: int | None = None,
) -> PolicyLossOutput:
    """``Σ weights ⊙ ℓ`` of the logits ``(hidden @ weight.T + bias) / temperature``, chunk by chunk.

    hidden: (N, T, H) fp32/bf16/fp16; weight: (V, H) and bias: (V,) of the same dtype; ids,
    weights, old_logp, ref_logp: (N, T); advantages: (N,) per sequence or (N, T) per token.
    ``old_logp=None``: ρ ≡ 1 with gradient A (one on-policy update). ``ref_logp=None`` or
    ``beta=0``: no KL term. ``chunk_size``: token rows per chunk (default: from the shapes and,
    on a GPU, the free memory). Autocast does not apply: the matmuls run in the operands' dtype.
    """
    twin.check_fused_linear_inputs(hidden, weight, ids, bias, temperature, chunk_size)
    twin.check_policy_inputs(hidden, advantages, weights, old_logp, ref_logp)
    _checks.check_loss_args("grpo", None, beta, eps_low, eps_high, 0.0)
    if _dispatch.mode() == "reference":
        return twin.fused_linear_policy_loss(
            hidden,
            weight,
            ids,
            advantages,
            weights,
            bias=bias,
            old_logp=old_logp,
            ref_logp=ref_logp,
            beta=beta,
            eps_low=eps_low,
            eps_high=eps_high,
            temperature=temperature,
        )
    optional = [x for x in (bias, old_logp, ref_logp) if x is not None]
    step = _step("fused_linear_policy_loss", hidden, weight, ids, advantages, weights, *optional)
    n, t, _ = hidden.shape
    chunk = chunk_size or auto_chunk_size(n * t, weight.shape[0], hidden.dtype, hidden.device)
    grad = torch.is_grad_enabled()
    need = tuple(grad and x is not None and x.requires_grad for x in (hidden, weight, bias))
    hparams = (float(beta), float(eps_low), float(eps_high), 1.0 / float(temperature))
    config: Any = (hparams, chunk, step, need)
    loss, logp = FusedLinearPolicyLossFunction.apply(
        hidden, weight, bias, ids, advantages, weights, old_logp, ref_logp, config
    )
    return PolicyLossOutput(loss, logp)
