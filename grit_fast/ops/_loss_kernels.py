"""Triton kernels of the loss ops. Imported only by the launchers in :mod:`grit_fast.ops.grpo_loss`,
:mod:`~grit_fast.ops.logprob` and :mod:`~grit_fast.ops.loss_from_logits`, never when the package is
imported, so that ``import grit_fast.ops`` works without triton and touches no GPU.

Layout: N sequences × T tokens, groups of G consecutive sequences, vocabulary V, R = N·T token rows.
All offsets are int64 (R·V exceeds 2^31 at N=16, T=1024, V=151,936); all arithmetic is fp32 whatever
the input dtype. ``hparams`` is the tuple (β, ε_low, ε_high, adv_eps) - the fused logits kernel adds
1/τ - passed as one argument because the values travel together.

Memory traffic per token row (the part that matters, the V-wide logits row of b bytes/element):
  log-prob forward   reads V·b                     (one online-softmax pass)
  log-prob backward  reads V·b, writes V·b         (recomputes the softmax; in place: same buffer)
"""

from __future__ import annotations

import triton
import triton.language as tl

# A finite stand-in for -inf as the running max, so that exp(m_old - m_new) never sees -inf - -inf.
_MIN_F32 = tl.constexpr(-3.4028234663852886e38)


@triton.jit
def _group_advantage(rewards_ptr, row, G, adv_eps, SCALE: tl.constexpr, BLOCK_G: tl.constexpr):
    """A of sequence ``row``: (r - mean_g) / (std_g + eps), std unbiased (0 for G = 1).

    Rewards are shifted by the group's first one so that equal rewards give A = 0 exactly. A group
    wider than BLOCK_G is read in blocks: one pass for the mean, one for the squared deviations
    (a group within one block gives the same sums as a single read).
    """
    first = (row // G) * G
    r0 = tl.load(rewards_ptr + first).to(tl.float32)
    acc = tl.zeros([BLOCK_G], tl.float32)
    for start in range(0, G, BLOCK_G):
        offs = start + tl.arange(0, BLOCK_G)
        valid = offs < G
        r = tl.load(rewards_ptr + first + offs, mask=valid, other=0.0).to(tl.float32)
        acc += tl.where(valid, r - r0, 0.0)
    mean = tl.sum(acc, axis=0) / G
    mine = (tl.load(rewards_ptr + row).to(tl.float32) - r0) - mean
    if SCALE:
        acc_sq = tl.zeros([BLOCK_G], tl.float32)
        for start in range(0, G, BLOCK_G):
            offs = start + tl.arange(0, BLOCK_G)
            valid = offs < G
            r = tl.load(rewards_ptr + first + offs, mask=valid, other=0.0).to(tl.float32)
            c = tl.where(valid, (r - r0) - mean, 0.0)
            acc_sq += c * c
        std = tl.sqrt(tl.sum(acc_sq, axis=0) / tl.maximum(G - 1, 1))
        denom = std + adv_eps
        # equal rewards with eps = 0: 0 / 0 is taken as A = 0, as in the reference
        mine = tl.where(mine == 0.0, 0.0, mine / tl.where(denom > 0.0, denom, 1.0))
    return mine


@triton.jit
def _token_loss(logp, old, ref, adv, hparams, HAS_OLD: tl.constexpr, HAS_REF: tl.constexpr):
    """Per-token ℓ = -min(ρA, clip(ρ)A) + β·k3, its derivative d ℓ / d logp, k3 and the clip flag.

    The derivative of -min(ρA, clip(ρ)A) is -ρA where the unclipped term is the min (on ties the
    two terms have the same slope) and 0 where the clipped constant is.
    """
    beta = hparams[0]
    eps_low = hparams[1]
    eps_high = hparams[2]
    ratio = tl.exp(logp - old) if HAS_OLD else tl.full(logp.shape, 1.0, tl.float32)
    s1 = ratio * adv
    s2 = tl.minimum(tl.maximum(ratio, 1.0 - eps_low), 1.0 + eps_high) * adv
    loss = -tl.minimum(s1, s2)
    dlogp = tl.where(s1 <= s2, -s1, 0.0)
    low = (ratio < 1.0 - eps_low).to(tl.float32)
    high = (ratio > 1.0 + eps_high).to(tl.float32)
    clipped = tl.where(adv < 0.0, low, tl.where(adv > 0.0, high, 0.0))
    kl = tl.zeros(logp.shape, tl.float32)
    if HAS_REF:
        delta = ref - logp
        e = tl.exp(delta)
        kl = e - delta - 1.0
        if beta != 0.0:
            loss += beta * kl
            dlogp += beta * (1.0 - e)
    return loss, dlogp, kl, clipped


@triton.jit
def _group_advantages_kernel(
    rewards_ptr, adv_ptr, G, adv_eps, SCALE: tl.constexpr, BLOCK_G: tl.constexpr
):
    row = tl.program_id(0).to(tl.int64)
    tl.store(adv_ptr + row, _group_advantage(rewards_ptr, row, G, adv_eps, SCALE, BLOCK_G))


@triton.jit
def _grpo_loss_fwd_kernel(
    logp_ptr,
    old_ptr,
    ref_ptr,
    mask_ptr,
    rewards_ptr,
    stats_ptr,  # [N, 5] fp32 out: A_i, Σ m·ℓ, Σ m, Σ m·k3, Σ m·clipped
    T,
    G,
    hparams,
    SCALE: tl.constexpr,
    HAS_OLD: tl.constexpr,
    HAS_REF: tl.constexpr,
    BLOCK_T: tl.constexpr,
    BLOCK_G: tl.constexpr,
):
    """One program per sequence: its advantage, then per-row sums over T (the loss type's weights
    are applied afterwards to these N rows, so one kernel serves every loss type)."""
    row = tl.program_id(0).to(tl.int64)
    adv = _group_advantage(rewards_ptr, row, G, hparams[3], SCALE, BLOCK_G)
    acc_loss = tl.zeros([BLOCK_T], tl.float32)
    acc_len = tl.zeros([BLOCK_T], tl.float32)
    acc_kl = tl.zeros([BLOCK_T], tl.float32)
    acc_clip = tl.zeros([BLOCK_T], tl.float32)
    for start in range(0, T, BLOCK_T):
        offs = start + tl.arange(0, BLOCK_T)
        valid = offs < T
        idx = row * T + offs
        logp = tl.load(logp_ptr + idx, mask=valid, other=0.0).to(tl.float32)
        m = tl.load(mask_ptr + idx, mask=valid, other=0).to(tl.float32)
        old = logp
        ref = logp
        if HAS_OLD:
            old = tl.load(old_ptr + idx, mask=valid, other=0.0).to(tl.float32)
        if HAS_REF:
            ref = tl.load(ref_ptr + idx, mask=valid, other=0.0).to(tl.float32)
        loss, _, kl, clipped = _token_loss(logp, old, ref, adv, hparams, HAS_OLD, HAS_REF)
        # where, not m * x: a masked token's ℓ may be inf/NaN and must still add exactly 0
        acc_loss += tl.where(m != 0.0, m * loss, 0.0)
        acc_len += m
        acc_kl += tl.where(m != 0.0, m * kl, 0.0)
        acc_clip += m * clipped
    out = stats_ptr + row * 5
    tl.store(out, adv)
    tl.store(out + 1, tl.sum(acc_loss, axis=0))
    tl.store(out + 2, tl.sum(acc_len, axis=0))
    tl.store(out + 3, tl.sum(acc_kl, axis=0))
    tl.store(out + 4, tl.sum(acc_clip, axis=0))


@triton.jit
def _grpo_loss_bwd_kernel(
    dlogp_ptr,
    logp_ptr,
    old_ptr,
    ref_ptr,
    mask_ptr,
    stats_ptr,
    scale_ptr,  # [N] fp32: d loss / d (Σ_t m·ℓ) of each row, times the incoming gradient
    T,
    hparams,
    HAS_OLD: tl.constexpr,
    HAS_REF: tl.constexpr,
    BLOCK_T: tl.constexpr,
):
    """d logp = scale_i · m · d ℓ / d logp, recomputed from the inputs (nothing (N, T) saved)."""
    row = tl.program_id(0).to(tl.int64)
    adv = tl.load(stats_ptr + row * 5)
    scale = tl.load(scale_ptr + row)
    for start in range(0, T, BLOCK_T):
        offs = start + tl.arange(0, BLOCK_T)
        valid = offs < T
        idx = row * T + offs
        logp = tl.load(logp_ptr + idx, mask=valid, other=0.0).to(tl.float32)
        m = tl.load(mask_ptr + idx, mask=valid, other=0).to(tl.float32)
        old = logp
        ref = logp
        if HAS_OLD:
            old = tl.load(old_ptr + idx, mask=valid, other=0.0).to(tl.float32)
        if HAS_REF:
            ref = tl.load(ref_ptr + idx, mask=valid, other=0.0).to(tl.float32)
        _, dlogp, _, _ = _token_loss(logp, old, ref, adv, hparams, HAS_OLD, HAS_REF)
        grad = tl.where(m != 0.0, scale * m * dlogp, 0.0)
        tl.store(dlogp_ptr + idx, grad.to(dlogp_ptr.dtype.element_ty), mask=valid)


@triton.jit
def _online_logprob(row_ptr, target, V, inv_temp, BLOCK_V: tl.constexpr):
    """One pass over a logits row: (log p[target], max, log Σ exp(x - max)) of x = row / τ.

    The max and the log-sum are returned apart: at |x| ~ 1e4 their fp32 sum would carry ~1e-3 of
    rounding into every log-prob.
    """
    m = _MIN_F32
    s = 0.0
    for start in range(0, V, BLOCK_V):
        offs = start + tl.arange(0, BLOCK_V)
        x = tl.load(row_ptr + offs, mask=offs < V, other=float("-inf")).to(tl.float32) * inv_temp
        m_new = tl.maximum(m, tl.max(x, axis=0))
        s = s * tl.exp(m - m_new) + tl.sum(tl.exp(x - m_new), axis=0)
        m = m_new
    log_sum = tl.log(s)
    x_t = tl.load(row_ptr + target).to(tl.float32) * inv_temp
    return (x_t - m) - log_sum, m, log_sum


@triton.jit
def _logprob_fwd_kernel(
    logits_ptr,
    ids_ptr,
    logp_ptr,  # [R] fp32 out
    lse_ptr,  # [R, 2] fp32 out: row max, log Σ exp(x - max)
    stride_logits_row,
    V,
    inv_temp,
    BLOCK_V: tl.constexpr,
):
    """One program per token row: log_softmax(row / τ)[id] by an online log-sum-exp over V."""
    r = tl.program_id(0).to(tl.int64)
    target = tl.load(ids_ptr + r).to(tl.int64)
    logp, m, log_sum = _online_logprob(
        logits_ptr + r * stride_logits_row, target, V, inv_temp, BLOCK_V
    )
    tl.store(logp_ptr + r, logp)
    tl.store(lse_ptr + r * 2, m)
    tl.store(lse_ptr + r * 2 + 1, log_sum)


@triton.jit
def _logprob_bwd_kernel(
    dlogits_ptr,
    logits_ptr,
    ids_ptr,
    grad_ptr,  # [R] fp32: d loss / d logp of each token row
    lse_ptr,
    stride_logits_row,
    stride_dlogits_row,
    stride_lse_row,
    V,
    inv_temp,
    BLOCK_V: tl.constexpr,
):
    """d logits = g/τ · (onehot(id) - softmax(row/τ)), written block by block. dlogits_ptr may be
    logits_ptr (in-place backward): every block is read before it is overwritten, by this program only.
    """
    r = tl.program_id(0).to(tl.int64)
    target = tl.load(ids_ptr + r).to(tl.int64)
    g = tl.load(grad_ptr + r) * inv_temp
    shift = tl.load(lse_ptr + r * stride_lse_row)
    log_sum = tl.load(lse_ptr + r * stride_lse_row + 1)
    src = logits_ptr + r * stride_logits_row
    dst = dlogits_ptr + r * stride_dlogits_row
    for start in range(0, V, BLOCK_V):
        offs = start + tl.arange(0, BLOCK_V)
        valid = offs < V
        x = tl.load(src + offs, mask=valid, other=float("-inf")).to(tl.float32) * inv_temp
        p = tl.exp((x - shift) - log_sum)
        d = g * (tl.where(offs == target, 1.0, 0.0) - p)
        tl.store(dst + offs, d.to(dlogits_ptr.dtype.element_ty), mask=valid)


@triton.jit
def _grpo_logits_fwd_kernel(
    logits_ptr,
    ids_ptr,
    old_ptr,
    ref_ptr,
    rewards_ptr,
    adv_ptr,  # [N] fp32 out
    tok_ptr,  # [R, 6] fp32 out: ℓ, d ℓ / d logp, k3, clipped, row max, log Σ exp(x - max)
    stride_logits_row,
    V,
    T,
    G,
    hparams,  # (β, ε_low, ε_high, adv_eps, 1/τ)
    SCALE: tl.constexpr,
    HAS_OLD: tl.constexpr,
    HAS_REF: tl.constexpr,
    BLOCK_V: tl.constexpr,
    BLOCK_G: tl.constexpr,
):
    """One program per token row: log-prob by online softmax, the sequence's advantage from the
    group's rewards (G loads, cached), and the token's loss terms - one read of the logits row."""
    r = tl.program_id(0).to(tl.int64)
    row = r // T
    target = tl.load(ids_ptr + r).to(tl.int64)
    logp, m, log_sum = _online_logprob(
        logits_ptr + r * stride_logits_row, target, V, hparams[4], BLOCK_V
    )
    adv = _group_advantage(rewards_ptr, row, G, hparams[3], SCALE, BLOCK_G)
    old = logp
    ref = logp
    if HAS_OLD:
        old = tl.load(old_ptr + r).to(tl.float32)
    if HAS_REF:
        ref = tl.load(ref_ptr + r).to(tl.float32)
    loss, dlogp, kl, clipped = _token_loss(logp, old, ref, adv, hparams, HAS_OLD, HAS_REF)
    tl.store(adv_ptr + row, adv, mask=(r % T) == 0)
    out = tok_ptr + r * 6
    tl.store(out, loss)
    tl.store(out + 1, dlogp)
    tl.store(out + 2, kl)
    tl.store(out + 3, clipped)
    tl.store(out + 4, m)
    tl.store(out + 5, log_sum)
