"""Mixed precision: fp32 master weights whatever the checkpoint's dtype, bf16 compute on CUDA.

The releases are bf16 checkpoints, and transformers loads them as bf16. AdamW updating bf16 weights
at the paper's lr 2e-6 rounds most updates away (one step moved 3.6 % of a q_proj's elements; a
weight above ~1e-3 in magnitude never moves: its bf16 spacing exceeds the step). The released run
kept fp32 masters (DeepSpeed). Here:

* the policy's parameters are held in fp32 (:func:`to_master`): the optimizer, its state and the
  training checkpoints are fp32, so a resumed run continues exactly;
* ``bf16: true`` runs generation, forward and backward under ``torch.autocast(bfloat16)`` on CUDA
  (:func:`autocast`): matmuls read bf16 casts of the masters. On CPU it is a no-op (fp32 compute);
* the frozen reference keeps the checkpoint's dtype where autocast computes in bf16 anyway (half its
  memory; its residual stream is then bf16 where the policy's is fp32, so the KL starts at rounding
  level rather than exactly 0), else fp32 like the policy (:func:`reference_dtype`);
* the checkpoint's dtype is remembered (:func:`weights_dtype`) so that the serving export returns to
  it (:mod:`grit_fast.train.export`).

Cost: fp32 weights + fp32 gradients + AdamW's two fp32 moments = 16 bytes per trainable parameter
(:mod:`grit_fast.train.memory`); autocast's cache of bf16 weight copies is kept only while
generating (see :func:`autocast`).
"""

from __future__ import annotations

import contextlib
import copy
import logging
from collections import Counter
from typing import Any

import torch

logger = logging.getLogger(__name__)

MASTER_DTYPE = torch.float32


def uses_autocast(bf16: bool, device: torch.device) -> bool:
    """Whether ``bf16: true`` takes effect: bf16 autocast runs on CUDA only."""
    return bool(bf16) and device.type == "cuda"


def autocast(bf16: bool, device: torch.device, cache: bool = True) -> Any:
    """The compute context of a run: bf16 autocast on CUDA when ``bf16``, else nothing.

    ``cache=False`` for the loss's forward and backward: autocast's cache would hold a bf16 copy of
    every trainable weight (2 bytes per parameter) until the backward ends, while recasting costs
    one pass over the weights per use. Generation keeps it (a cast per decoding step would
    dominate small steps), while the gradients it could collide with do not exist yet."""
    if uses_autocast(bf16, device):
        return torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=cache)
    return contextlib.nullcontext()


def weights_dtype(model: torch.nn.Module) -> torch.dtype:
    """The dtype most of ``model``'s floating parameters have (the checkpoint's, before
    :func:`to_master`)."""
    counts: Counter[torch.dtype] = Counter()
    for p in model.parameters():
        if p.is_floating_point():
            counts[p.dtype] += p.numel()
    return counts.most_common(1)[0][0] if counts else MASTER_DTYPE


def reference_dtype(bf16: bool, device: torch.device, checkpoint: torch.dtype) -> torch.dtype:
    """The frozen reference's dtype: the checkpoint's under bf16 autocast, else fp32."""
    return checkpoint if uses_autocast(bf16, device) else MASTER_DTYPE


def frozen_copy(model: torch.nn.Module, dtype: torch.dtype) -> torch.nn.Module:
    """A frozen eval-mode copy of ``model``; upcast to ``dtype`` if that is wider (never cast down:
    a downcast would also round buffers such as rotary frequencies)."""
    ref = copy.deepcopy(model).eval().requires_grad_(False)
    if dtype == MASTER_DTYPE and weights_dtype(ref) != MASTER_DTYPE:
        ref.to(MASTER_DTYPE)
    return ref


def to_master(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` with every floating parameter (and buffer) in fp32, in place; exact from bf16."""
    if any(p.is_floating_point() and p.dtype != MASTER_DTYPE for p in model.parameters()):
        model.to(MASTER_DTYPE)
    return model


def describe(bf16: bool, device: torch.device, checkpoint: torch.dtype) -> str:
    """One line on what the run computes in, for the start-of-run log."""
    name = str(checkpoint).removeprefix("torch.")
    if uses_autocast(bf16, device):
        return f"fp32 master weights (checkpoint {name}), bf16 autocast compute"
    note = " (bf16 autocast runs on CUDA only)" if bf16 else ""
    return f"fp32 master weights (checkpoint {name}), fp32 compute{note}"
