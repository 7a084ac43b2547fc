"""GRIT in TRL: the dataset, the reward functions and a ``trl.GRPOTrainer`` with our fused loss.

    pip install "grit-fast[trl]"

    from grit_fast.trl import GritGRPOTrainer, grit_dataset, reward_functions

* :func:`grit_dataset` - GRIT records as a ``datasets.Dataset`` with the GRIT prompt and the image;
* :func:`reward_functions` - one TRL reward function per GRPO-GR reward component, one scoring
  pass per batch;
* :class:`GritGRPOTrainer` - ``trl.GRPOTrainer`` whose loss runs
  :func:`grit_fast.ops.fused_linear_policy_loss` (no (N, T, V) logits), TRL's everything else.

Names are imported on first use: importing ``grit_fast`` or this package does not import trl.
"""

from __future__ import annotations

import importlib
from typing import Any

_PUBLIC = {
    "grit_dataset": "grit_fast.trl.dataset",
    "reward_functions": "grit_fast.trl.rewards",
    "GritGRPOTrainer": "grit_fast.trl.trainer",
}

__all__ = list(_PUBLIC)


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'grit_fast.trl' has no attribute {name!r}")
    try:
        value = getattr(importlib.import_module(module), name)
    except ImportError as exc:
        raise ImportError(
            f"grit_fast.trl.{name} needs TRL and datasets: pip install 'grit-fast[trl]' ({exc})"
        ) from exc
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
