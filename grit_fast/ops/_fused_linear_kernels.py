"""Triton kernel of the fused-linear GRPO loss: one chunk of logits rows in, d logits out in place.

Imported only by the launcher in :mod:`grit_fast.ops.fused_linear`, never when the package is
imported. The matmuls around it (logits = h W^T + b, d h = d logits W, d W += d logits^T h) stay in
cuBLAS; this kernel does everything between them for C rows of V logits, reusing the helpers of
:mod:`grit_fast.ops._loss_kernels` so that the loss maths exists once.

Memory traffic per row (b bytes per logit): reads V·b for the online log-sum-exp, then - when the
gradient is wanted - reads V·b again and writes V·b of d logits over the same buffer. Nothing else
V-wide is read or written; per row it stores 16 bytes (ℓ, k3, clipped, log-prob).
"""

from __future__ import annotations

import triton
import triton.language as tl

from grit_fast.ops._loss_kernels import _online_logprob, _token_loss


@triton.jit
def _fused_linear_chunk_kernel(
    logits_ptr,  # [C, V] in/out: the chunk's logits, overwritten by d loss / d logits (WRITE_GRAD)
    ids_ptr,  # [C] chosen token ids
    old_ptr,  # [C] fp32 old-policy log-probs (read if HAS_OLD)
    ref_ptr,  # [C] fp32 reference log-probs (read if HAS_REF)
    adv_ptr,  # [C] fp32 advantage of each row's sequence
    coef_ptr,  # [C] fp32 d loss / d (ℓ of the row): the loss type's row weight times the mask
    tok_ptr,  # [C, 4] fp32 out: ℓ, k3, clipped, log-prob
    stride_logits_row,
    V,
    hparams,  # (β, ε_low, ε_high, 1/τ)
    HAS_OLD: tl.constexpr,
    HAS_REF: tl.constexpr,
    WRITE_GRAD: tl.constexpr,
    BLOCK_V: tl.constexpr,
):
    """One program per row: log-prob by online softmax, the token's loss terms, and (WRITE_GRAD)
    d logits = coef · dℓ/dlogp / τ · (onehot(id) - softmax(row / τ)), each block read before it is
    overwritten by this program only."""
    r = tl.program_id(0).to(tl.int64)
    inv_temp = hparams[3]
    target = tl.load(ids_ptr + r).to(tl.int64)
    row_ptr = logits_ptr + r * stride_logits_row
    logp, shift, log_sum = _online_logprob(row_ptr, target, V, inv_temp, BLOCK_V)
    adv = tl.load(adv_ptr + r)
    old = logp
    ref = logp
    if HAS_OLD:
        old = tl.load(old_ptr + r).to(tl.float32)
    if HAS_REF:
        ref = tl.load(ref_ptr + r).to(tl.float32)
    loss, dlogp, kl, clipped = _token_loss(logp, old, ref, adv, hparams, HAS_OLD, HAS_REF)
    out = tok_ptr + r * 4
    tl.store(out, loss)
    tl.store(out + 1, kl)
    tl.store(out + 2, clipped)
    tl.store(out + 3, logp)
    if WRITE_GRAD:
        coef = tl.load(coef_ptr + r)
        # where, not coef * dlogp: a masked row's dℓ may be inf/NaN and must give exactly 0
        g = tl.where(coef != 0.0, coef * dlogp, 0.0) * inv_temp
        for start in range(0, V, BLOCK_V):
            offs = start + tl.arange(0, BLOCK_V)
            valid = offs < V
            x = tl.load(row_ptr + offs, mask=valid, other=float("-inf")).to(tl.float32) * inv_temp
            p = tl.exp((x - shift) - log_sum)
            d = g * (tl.where(offs == target, 1.0, 0.0) - p)
            tl.store(row_ptr + offs, d.to(logits_ptr.dtype.element_ty), mask=valid)
