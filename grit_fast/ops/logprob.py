"""Log-probs of chosen tokens straight from logits: ``selective_log_softmax``.

logp_r = x_r[id_r] - max_r - log Σ_v exp(x_rv - max_r) with x = logits / τ, by an online log-sum-exp
over the vocabulary in one read of each logits row; the fp32 (N, T, V) log-softmax never exists. The
backward recomputes the softmax from the saved (max, log-sum) pair: d logits = g/τ · (onehot - p),
written straight into the gradient buffer (or into the logits buffer, see ``inplace``).

Order: launchers (kernels live in ``_loss_kernels``, imported lazily) → autograd.Function → public.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch.autograd.function import once_differentiable

from grit_fast import _dispatch
from grit_fast.ops import _checks, _triton_utils, reference
from grit_fast.ops._triton_utils import block_size

if TYPE_CHECKING:
    from torch import Tensor

# Vocabulary block per program on a GPU: 4096 fp32 per row fits the registers of 8 warps.
GPU_BLOCK_V = 4096


def _num_warps(device: torch.device) -> dict[str, int]:
    return {"num_warps": 8} if device.type == "cuda" else {}


def rows_of(logits: Tensor) -> Tensor:
    """logits (N, T, V) as (R, V) rows with unit stride along V (a copy only if it must)."""
    flat = logits.reshape(-1, logits.shape[-1])
    return flat if flat.stride(-1) == 1 else flat.contiguous()


def selective_log_softmax_fwd(flat: Tensor, ids: Tensor, inv_temp: float) -> tuple[Tensor, Tensor]:
    """Launch the forward kernel on rows (R, V): logp (R,) fp32 and (max, log-sum) (R, 2) fp32."""
    from grit_fast.ops._loss_kernels import _logprob_fwd_kernel

    rows, vocab = flat.shape
    logp = torch.empty(rows, dtype=torch.float32, device=flat.device)
    lse = torch.empty(rows, 2, dtype=torch.float32, device=flat.device)
    if rows:
        with _triton_utils.on_device(flat):
            _logprob_fwd_kernel[(rows,)](
                flat,
                ids,
                logp,
                lse,
                flat.stride(0),
                vocab,
                inv_temp,
                BLOCK_V=block_size(vocab, flat.device, GPU_BLOCK_V),
                **_num_warps(flat.device),
            )
    return logp, lse


def selective_log_softmax_bwd(
    flat: Tensor, ids: Tensor, grad: Tensor, lse: Tensor, inv_temp: float, inplace: bool
) -> Tensor:
    """Launch the backward kernel: d logits (R, V) in the logits' dtype for d logp = ``grad`` (R,).

    ``lse`` is (R, k) with the row max in column 0 and the log-sum in column 1 (any row stride).
    With ``inplace`` the result overwrites ``flat`` and is returned as the same tensor.
    """
    from grit_fast.ops._loss_kernels import _logprob_bwd_kernel

    rows, vocab = flat.shape
    dlogits = flat if inplace else torch.empty_like(flat)
    if rows:
        with _triton_utils.on_device(flat):
            _logprob_bwd_kernel[(rows,)](
                dlogits,
                flat,
                ids,
                grad.float().contiguous(),
                lse,
                flat.stride(0),
                dlogits.stride(0),
                lse.stride(0),
                vocab,
                inv_temp,
                BLOCK_V=block_size(vocab, flat.device, GPU_BLOCK_V),
                **_num_warps(flat.device),
            )
        if inplace:
            # The kernel wrote through a raw pointer: tell autograd, so that an op which saved the
            # logits and runs its backward later raises instead of reading the gradient.
            torch.autograd.graph.increment_version(flat)
    return dlogits


class SelectiveLogSoftmaxFunction(torch.autograd.Function):
    """(N, T) fp32 log-probs of logits (N, T, V) at ids (N, T); saves 8 bytes per token."""

    @staticmethod
    def forward(ctx, logits, ids, temperature):
        flat = rows_of(logits)
        ids_flat = ids.reshape(-1).contiguous()
        inv_temp = 1.0 / temperature
        logp, lse = selective_log_softmax_fwd(flat, ids_flat, inv_temp)
        ctx.save_for_backward(flat, ids_flat, lse)
        ctx.inv_temp = inv_temp
        ctx.shape = logits.shape
        return logp.view(ids.shape)

    @staticmethod
    @once_differentiable  # the backward is not itself differentiable: say so on double backward
    def backward(ctx, grad_logp):
        flat, ids_flat, lse = ctx.saved_tensors
        dlogits = selective_log_softmax_bwd(
            flat, ids_flat, grad_logp.reshape(-1), lse, ctx.inv_temp, inplace=False
        )
        return dlogits.view(ctx.shape), None, None


def selective_log_softmax(logits: Tensor, ids: Tensor, temperature: float = 1.0) -> Tensor:
    """log_softmax(logits / temperature) gathered at ``ids``: logits (N, T, V) fp32/bf16/fp16,
    ids (N, T) integer in [0, V) -> (N, T) float32, differentiable w.r.t. ``logits``.

    Never builds an (N, T, V) intermediate: one online pass over each row forward, one recomputing
    pass backward (chunked rows in the torch twin).
    """
    _checks.check_logits_ids(logits, ids, temperature)
    if _dispatch.use_fast("selective_log_softmax", logits, ids):
        return SelectiveLogSoftmaxFunction.apply(logits, ids, float(temperature))
    return reference.selective_log_softmax(logits, ids, temperature)
