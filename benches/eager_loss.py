"""The eager baseline the loss benchmarks compare with: TRL's ``_compute_loss`` inlined."""

from __future__ import annotations

import torch


def trl_loss(
    logits, ids, rewards, mask, old, ref, *, group_size, temperature, eps_low, eps_high, beta
):
    """Full fp32 log-softmax of ``logits`` (N, T, V), then the elementwise clipped PG + k3 KL loss,
    token-mean per sequence, mean over sequences (GRIT's and TRL's aggregation)."""
    logp = torch.log_softmax(logits.float() / temperature, -1)
    logp = logp.gather(-1, ids[..., None]).squeeze(-1)
    r = rewards.view(-1, group_size)
    adv = ((r - r.mean(1, keepdim=True)) / (r.std(1, keepdim=True) + 1e-4)).view(-1, 1)
    ratio = torch.exp(logp - old)
    clipped = torch.clamp(ratio, 1 - eps_low, 1 + eps_high)
    kl = torch.exp(ref - logp) - (ref - logp) - 1
    per_token = -torch.min(ratio * adv, clipped * adv) + beta * kl
    m = mask.float()
    return ((per_token * m).sum(1) / m.sum(1).clamp(min=1)).mean()
