"""The result type shared by the reference and the Triton paths of the GRPO losses."""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from torch import Tensor


class LossOutput(NamedTuple):
    """What :func:`grit_fast.ops.grpo_loss` and :func:`grpo_loss_from_logits` return.

    loss:          0-dim float32, differentiable w.r.t. the log-probs (or logits).
    advantages:    (N,) float32, the group-relative advantages (no gradient).
    kl:            0-dim float32, mean k3 KL to the reference policy: token-mean over each sequence's
                   mask, then mean over sequences (as GRIT logs it); 0 when ``ref_logp`` is None.
    clip_fraction: 0-dim float32, share of unmasked tokens whose ratio left the clip range on the side
                   that the clipped surrogate cuts (ρ < 1-ε_low with A < 0, or ρ > 1+ε_high with A > 0).
    logp:          (N, T) float32 per-token log-probs the loss used (no gradient; 0 at masked
                   tokens), from the losses that compute them (the fused-linear loss and its twin),
                   else None. With μ > 1 they are the old policy's: the same rows, chunks and kernels
                   as the loss, so the first update's ratio is exactly 1.
    """

    loss: Tensor
    advantages: Tensor
    kl: Tensor
    clip_fraction: Tensor
    logp: Tensor | None = None
