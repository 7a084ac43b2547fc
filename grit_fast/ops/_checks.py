"""Input validation shared by the reference and Triton paths: bad input fails here, in Python, with
a message that names the argument and what was expected - never inside a kernel."""

from __future__ import annotations

from typing import Any

LOSS_TYPES = ("grpo", "bnpo", "dr_grpo", "dapo")


def check_group_size(n: int, group_size: Any) -> int:
    if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 1:
        raise ValueError(f"group_size must be a positive int, got {group_size!r}")
    if n % group_size:
        raise ValueError(
            f"rewards has {n} entries, not a multiple of group_size={group_size} "
            "(completions must come in consecutive groups of group_size per prompt)"
        )
    return group_size


def check_rewards(rewards: Any, n: int | None = None) -> None:
    import torch

    if not isinstance(rewards, torch.Tensor):
        raise TypeError(f"rewards must be a torch.Tensor, got {type(rewards).__name__}")
    if rewards.dim() != 1:
        raise ValueError(f"rewards must be 1-D (N,), got shape {tuple(rewards.shape)}")
    if not rewards.is_floating_point():
        raise TypeError(f"rewards must be a floating tensor, got {rewards.dtype}")
    if n is not None and rewards.shape[0] != n:
        raise ValueError(f"rewards has {rewards.shape[0]} entries but logp has {n} rows")


def check_logp_like(name: str, x: Any, shape: tuple[int, ...]) -> None:
    import torch

    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be float32, bfloat16 or float16, got {x.dtype}")
    if tuple(x.shape) != shape:
        raise ValueError(f"{name} must have shape {shape}, got {tuple(x.shape)}")


def check_mask(mask: Any, shape: tuple[int, ...]) -> None:
    import torch

    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"mask must be a torch.Tensor, got {type(mask).__name__}")
    if tuple(mask.shape) != shape:
        raise ValueError(f"mask must have shape {shape} like logp, got {tuple(mask.shape)}")


def check_loss_args(
    loss_type: str, normalizer: Any, beta: float, eps_low: float, eps_high: float, adv_eps: float
) -> None:
    if loss_type not in LOSS_TYPES:
        raise ValueError(f"loss_type must be one of {LOSS_TYPES}, got {loss_type!r}")
    if loss_type == "dapo":
        if normalizer is None:
            raise ValueError(
                "loss_type='dapo' needs normalizer= (the number of unmasked tokens across "
                "accumulation steps and ranks)"
            )
        if not hasattr(normalizer, "dim") and not float(normalizer) > 0:
            raise ValueError(f"normalizer must be > 0, got {normalizer!r}")
    for name, value in (("eps_low", eps_low), ("eps_high", eps_high), ("adv_eps", adv_eps)):
        if not float(value) >= 0:
            raise ValueError(f"{name} must be >= 0, got {value!r}")
    if not float(beta) >= 0:
        raise ValueError(f"beta must be >= 0, got {beta!r}")


def check_max_completion_length(loss_type: str, max_completion_length: Any, width: int) -> None:
    """``max_completion_length``: None or a positive int; ``dr_grpo`` needs it, at least ``width``
    (the completions' padded width T), since it divides the summed token losses by N × it."""
    value = max_completion_length
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"max_completion_length must be a positive int or None, got {value!r}")
    if loss_type != "dr_grpo":
        return
    if value is None:
        raise ValueError(
            "loss_type='dr_grpo' needs max_completion_length= (the generation limit, e.g. "
            "max_new_tokens): it divides the summed token losses by N × max_completion_length"
        )
    if width > value:
        raise ValueError(
            f"max_completion_length={value} is less than the completions' width of {width} columns"
        )


def check_same_device(**tensors: Any) -> None:
    """All tensors on one device, else a ValueError naming where each one is."""
    devices = {name: t.device for name, t in tensors.items() if t is not None}
    if len(set(devices.values())) > 1:
        where = ", ".join(f"{name} on {device}" for name, device in devices.items())
        raise ValueError(f"all tensors must be on one device, got {where}")


def check_grpo_inputs(
    logp: Any,
    rewards: Any,
    mask: Any,
    group_size: Any,
    old_logp: Any,
    ref_logp: Any,
) -> None:
    """Shapes and dtypes of :func:`grpo_loss`'s tensors: logp/old/ref/mask (N, T), rewards (N,)."""
    check_logp_like("logp", logp, tuple(getattr(logp, "shape", ())))
    if logp.dim() != 2:
        raise ValueError(f"logp must be 2-D (N, T), got shape {tuple(logp.shape)}")
    shape = tuple(logp.shape)
    check_rewards(rewards, shape[0])
    check_group_size(shape[0], group_size)
    check_mask(mask, shape)
    if old_logp is not None:
        check_logp_like("old_logp", old_logp, shape)
    if ref_logp is not None:
        check_logp_like("ref_logp", ref_logp, shape)
    check_same_device(logp=logp, rewards=rewards, mask=mask, old_logp=old_logp, ref_logp=ref_logp)


def check_logits_ids(logits: Any, ids: Any, temperature: float) -> None:
    """logits (N, T, V) float, ids (N, T) integer in [0, V), temperature > 0."""
    import torch

    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point():
        raise TypeError(f"logits must be a float tensor, got {getattr(logits, 'dtype', logits)!r}")
    if logits.dim() != 3:
        raise ValueError(f"logits must be 3-D (N, T, V), got shape {tuple(logits.shape)}")
    if not isinstance(ids, torch.Tensor) or ids.is_floating_point() or ids.is_complex():
        raise TypeError(f"ids must be an integer tensor, got {getattr(ids, 'dtype', ids)!r}")
    if tuple(ids.shape) != tuple(logits.shape[:2]):
        raise ValueError(
            f"ids must have shape {tuple(logits.shape[:2])} (logits' N, T), got {tuple(ids.shape)}"
        )
    check_same_device(logits=logits, ids=ids)
    vocab = logits.shape[2]
    if vocab == 0:
        raise ValueError("logits has an empty vocabulary dimension (V = 0)")
    if ids.numel():
        # One host sync: an out-of-range id would read outside the logits row in a kernel.
        lo, hi = torch.stack([ids.min(), ids.max()]).tolist()
        if lo < 0 or hi >= vocab:
            raise ValueError(
                f"ids must lie in [0, {vocab}) (the vocabulary), got range [{lo}, {hi}]"
            )
    if not float(temperature) > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
