"""Plain-torch twins of the fused-linear ops, unfused: logits = hidden @ weight.T (+ bias), then the
reference :func:`~grit_fast.ops.reference.grpo_loss_from_logits`. They build the whole (N, T, V)
logits tensor - which is what the fused ops exist to avoid - and are the ground truth the fused ops
are tested against, and the ``eager`` baseline of ``benches/bench_fused_linear.py``.

Also here: the input checks and the loss-option parsing that the fused ops share with their twins.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from grit_fast.ops import _checks, reference
from grit_fast.ops.types import LossOutput

if TYPE_CHECKING:
    from torch import Tensor

# The keyword arguments of grpo_loss that fused_linear_grpo_loss passes on, with their defaults.
LOSS_DEFAULTS: dict[str, Any] = {
    "beta": 0.01,
    "eps_low": 0.2,
    "eps_high": 0.2,
    "loss_type": "grpo",
    "scale_rewards": True,
    "adv_eps": 1e-4,
    "normalizer": None,
    "max_completion_length": None,
}


def loss_options(loss_kwargs: dict[str, Any]) -> dict[str, Any]:
    """``loss_kwargs`` completed with :data:`LOSS_DEFAULTS` and checked; unknown keys refused."""
    unknown = sorted(set(loss_kwargs) - set(LOSS_DEFAULTS))
    if unknown:
        raise TypeError(
            f"fused_linear_grpo_loss got unexpected keyword argument(s) {unknown}; the loss "
            f"accepts {sorted(LOSS_DEFAULTS)} (and group_size, bias, old_logp, ref_logp, "
            "temperature, chunk_size)"
        )
    opts = {**LOSS_DEFAULTS, **loss_kwargs}
    _checks.check_loss_args(
        opts["loss_type"],
        opts["normalizer"],
        opts["beta"],
        opts["eps_low"],
        opts["eps_high"],
        opts["adv_eps"],
    )
    return opts


def check_fused_linear_inputs(
    hidden: Any,
    weight: Any,
    ids: Any,
    bias: Any,
    temperature: float,
    chunk_size: Any,
) -> None:
    """hidden (N, T, H), weight (V, H), bias (V,) or None, all one float dtype and device;
    ids (N, T) integer in [0, V); temperature > 0; chunk_size None or a positive int (rows of
    N·T)."""
    for name, x in (("hidden", hidden), ("weight", weight), ("bias", bias)):
        if x is None and name == "bias":
            continue
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise TypeError(
                f"{name} must be a float tensor (float32, bfloat16 or float16), got "
                f"{getattr(x, 'dtype', type(x).__name__)}"
            )
    if hidden.dim() != 3:
        raise ValueError(f"hidden must be 3-D (N, T, H), got shape {tuple(hidden.shape)}")
    if weight.dim() != 2 or weight.shape[1] != hidden.shape[2]:
        raise ValueError(
            f"weight must be 2-D (V, H) with H = {hidden.shape[2]} (hidden's last dimension), "
            f"got shape {tuple(weight.shape)}"
        )
    if bias is not None and tuple(bias.shape) != (weight.shape[0],):
        raise ValueError(
            f"bias must have shape ({weight.shape[0]},) (weight's V), got {tuple(bias.shape)}"
        )
    if weight.dtype != hidden.dtype or (bias is not None and bias.dtype != hidden.dtype):
        named = (("hidden", hidden), ("weight", weight), ("bias", bias))
        where = ", ".join(f"{name} {x.dtype}" for name, x in named if x is not None)
        raise TypeError(f"hidden, weight and bias must share one dtype, got {where}")
    _checks.check_same_device(hidden=hidden, weight=weight, bias=bias, ids=ids)
    n, t, _ = hidden.shape
    # ids against the logits' shape (N, T, V), stood for by a zero-stride view: nothing allocated
    _checks.check_logits_ids(hidden.new_empty(()).expand(n, t, weight.shape[0]), ids, 1.0)
    if not float(temperature) > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    if chunk_size is not None and (
        isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1
    ):
        raise ValueError(f"chunk_size must be None or a positive int (rows), got {chunk_size!r}")


def fused_linear_grpo_loss(
    hidden: Tensor,
    weight: Tensor,
    ids: Tensor,
    rewards: Tensor,
    mask: Tensor,
    *,
    group_size: int,
    bias: Tensor | None = None,
    old_logp: Tensor | None = None,
    ref_logp: Tensor | None = None,
    temperature: float = 1.0,
    chunk_size: int | None = None,
    **loss_kwargs: Any,
) -> LossOutput:
    """GRPO loss of the logits ``hidden @ weight.T + bias`` (N, T, V), materialised in full.

    ``chunk_size`` is accepted for the same signature and ignored. Gradients flow to ``hidden``,
    ``weight`` and ``bias``; ``logp`` of the result holds the per-token log-probs (0 where masked).
    """
    check_fused_linear_inputs(hidden, weight, ids, bias, temperature, chunk_size)
    opts = loss_options(loss_kwargs)
    logits = torch.nn.functional.linear(hidden, weight, bias)  # [N, T, V]
    out = reference.grpo_loss_from_logits(
        logits,
        ids,
        rewards,
        mask,
        group_size=group_size,
        old_logp=old_logp,
        ref_logp=ref_logp,
        temperature=temperature,
        **opts,
    )
    with torch.no_grad():
        logp = reference.selective_log_softmax(logits, ids, temperature)
    return out._replace(logp=torch.where(mask != 0, logp, 0.0))


def fused_linear_log_probs(
    hidden: Tensor,
    weight: Tensor,
    ids: Tensor,
    bias: Tensor | None = None,
    temperature: float = 1.0,
    chunk_size: int | None = None,
) -> Tensor:
    """(N, T) fp32 (fp64 for fp64 operands) log_softmax((hidden @ weight.T + bias) / τ) at
    ``ids``, without gradient."""
    check_fused_linear_inputs(hidden, weight, ids, bias, temperature, chunk_size)
    with torch.no_grad():
        logits = torch.nn.functional.linear(hidden, weight, bias)
        return reference.selective_log_softmax(logits, ids, temperature)


def check_policy_inputs(
    hidden: Any, advantages: Any, weights: Any, old_logp: Any, ref_logp: Any
) -> None:
    """advantages (N,) or (N, T), weights, old_logp, ref_logp (N, T): float tensors on hidden's
    device, weights finite (a NaN weight would poison every gradient)."""
    n, t = hidden.shape[0], hidden.shape[1]
    if not isinstance(advantages, torch.Tensor) or not advantages.is_floating_point():
        raise TypeError(
            f"advantages must be a float tensor, got {getattr(advantages, 'dtype', advantages)!r}"
        )
    if tuple(advantages.shape) not in ((n,), (n, t)):
        raise ValueError(
            f"advantages must have shape ({n},) or ({n}, {t}) (hidden's N, T), "
            f"got {tuple(advantages.shape)}"
        )
    _checks.check_logp_like("weights", weights, (n, t))
    for name, x in (("old_logp", old_logp), ("ref_logp", ref_logp)):
        if x is not None:
            _checks.check_logp_like(name, x, (n, t))
    _checks.check_same_device(
        hidden=hidden, advantages=advantages, weights=weights, old_logp=old_logp, ref_logp=ref_logp
    )
    if weights.numel() and not bool(torch.isfinite(weights).all()):
        raise ValueError("weights must be finite (a NaN or inf weight poisons every gradient)")


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
) -> Any:
    """``Σ weights ⊙ ℓ`` of the logits ``hidden @ weight.T + bias`` (N, T, V), materialised in full
    (see :func:`grit_fast.ops.fused_linear_policy.fused_linear_policy_loss`; ``chunk_size`` is
    accepted for the same signature and ignored)."""
    from grit_fast.ops.fused_linear_policy import PolicyLossOutput

    check_fused_linear_inputs(hidden, weight, ids, bias, temperature, chunk_size)
    check_policy_inputs(hidden, advantages, weights, old_logp, ref_logp)
    _checks.check_loss_args("grpo", None, beta, eps_low, eps_high, 0.0)
    logits = torch.nn.functional.linear(hidden, weight, bias)  # [N, T, V]
    logp = reference.selective_log_softmax(logits, ids, temperature)
    acc = logp.dtype  # fp32 (fp64 for fp64 operands)
    a = advantages.detach().to(acc)
    a = a[:, None] if a.dim() == 1 else a
    old = logp.detach() if old_logp is None else old_logp.detach().to(acc)
    ratio = torch.exp(logp - old)
    ell = -torch.minimum(ratio * a, torch.clamp(ratio, 1.0 - eps_low, 1.0 + eps_high) * a)
    if ref_logp is not None and beta != 0:
        ell = ell + beta * reference.per_token_kl(logp, ref_logp.detach())
    w = weights.detach().to(acc)
    on = w != 0
    loss = torch.where(on, w * ell, 0.0).sum()
    return PolicyLossOutput(loss, torch.where(on, logp.detach(), 0.0))
