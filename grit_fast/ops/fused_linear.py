"""GRPO loss from hidden states and the lm_head, without ever materialising the (N, T, V) logits.

Maths: logits = h W^T + b over the R = N·T token rows, x = logits / τ, logp = log_softmax(x)[id],
then :func:`grit_fast.ops.grpo_loss` of logp. With coef_r = c_i · m_r (the loss type's row weight,
see :mod:`grit_fast.ops.grpo_loss`) and g_r = coef_r · dℓ/dlogp_r / τ:

    d logits_r = g_r · (onehot(id_r) - softmax(x_r))        [C, V] per chunk of C rows
    d h_r      = d logits_r W                               [C, H]
    d W       += d logits^T h,   d b += Σ_r d logits_r       [V, H], [V]

Every factor of g_r is known before the first chunk: the advantages need whole groups of rewards
(computed first), c_i needs only the mask, ℓ of a token only its own logp, old and ref log-probs.
So the forward pass walks the rows chunk by chunk - matmul, one row kernel that yields the log-prob,
the loss terms and d logits written over the logits buffer, two matmuls into the gradients - and
the backward pass only scales the stored gradients by the incoming scalar (as Liger-Kernel does).
Rows whose mask is 0 (padding after short completions) add nothing to the loss or any gradient and
are skipped: only the unmasked rows are gathered into chunks.

Why gradients in the forward rather than recomputing in the backward: recomputing keeps the same
peak (both hold one [C, V] chunk beside d W, which the backward must produce anyway, and d h, which
is small) but costs a fourth matmul of the same size as the other three, ~30 % more time. The price
is that d W and d h are held from the loss's forward to its backward, which in GRPO follow each
other directly.

Peak memory beyond inputs: one [C, V] chunk in the input dtype (on CPU also its fp32 working copy),
d W in the weight's dtype, d h, and O(N·T) per-token values; C is chosen so that the chunk stays
below a fixed budget, so the peak does not grow with the batch. d W is accumulated in the weight's
dtype, one rounding per chunk (bf16: relative error ~2^-9·√(chunks)), instead of an fp32 copy that
would double its memory.

CUDA tensors (and CPU tensors under ``TRITON_INTERPRET=1``) run the row kernel in Triton; CPU
tensors otherwise run the same loop with a torch row step. ``GRIT_FAST_BACKEND=reference`` runs
the unfused twin in :mod:`grit_fast.ops.reference_fused_linear`. fp64 operands take the torch row
step wherever they are (the kernel's arithmetic is fp32) and stay fp64 throughout, so the op can be
gradchecked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch.autograd.function import once_differentiable

from grit_fast import _dispatch
from grit_fast.ops import _checks, _triton_utils
from grit_fast.ops import reference_fused_linear as twin
from grit_fast.ops._triton_utils import block_size
from grit_fast.ops.grpo_loss import ROW_SCALES, group_advantages, summarise
from grit_fast.ops.logprob import GPU_BLOCK_V
from grit_fast.ops.reference import compute_dtype
from grit_fast.ops.types import LossOutput

if TYPE_CHECKING:
    from collections.abc import Callable

    from torch import Tensor

# Bytes of one chunk of logits (in the input dtype; on CPU plus its fp32 working copy). On a GPU a
# quarter of the free memory, within [64 MiB, 512 MiB]: 512 MiB is ~1,700 rows of Qwen's 151,936
# token bf16 vocabulary, where the [C, H] x [H, V] matmuls are already compute-bound at H >= 2048,
# and no more than the lm_head's own gradient at H = 2048.
GPU_CHUNK_BYTES = (64 << 20, 512 << 20)
CPU_CHUNK_BYTES = 64 << 20
GPU_ROW_ALIGN = 128  # rows per chunk a multiple of this on a GPU (matmul tiles)


def auto_chunk_size(rows: int, vocab: int, dtype: torch.dtype, device: torch.device) -> int:
    """Rows per chunk: as many as the byte budget allows, then evened out over the chunks."""
    size = torch.finfo(dtype).bits // 8
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        budget = min(max(free // 4, GPU_CHUNK_BYTES[0]), GPU_CHUNK_BYTES[1])
        per_row, align = vocab * size, GPU_ROW_ALIGN
    else:
        budget = CPU_CHUNK_BYTES
        per_row, align = vocab * (size + (4 if size != 4 else 0)), 1
    most = max(1, budget // max(per_row, 1))
    if most >= align:
        most -= most % align
    if rows <= most:
        return max(rows, 1)
    chunks = -(-rows // most)
    even = -(-rows // chunks)
    even += -even % align
    return min(even, most)


def token_terms(
    logp: Tensor,
    adv: Tensor,
    old: Tensor | None,
    ref: Tensor | None,
    hparams: tuple[float, float, float, float],
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Per token (C,) fp32: ℓ, dℓ/dlogp, k3 and the clip flag - the torch twin of the kernels'
    ``_token_loss`` (same formulas as :func:`grit_fast.ops.reference.per_token_loss`)."""
    beta, eps_low, eps_high, _ = hparams
    ratio = torch.ones_like(logp) if old is None else torch.exp(logp - old)
    s1 = ratio * adv
    s2 = ratio.clamp(1.0 - eps_low, 1.0 + eps_high) * adv
    loss = -torch.minimum(s1, s2)
    dlogp = torch.where(s1 <= s2, -s1, 0.0)
    low, high = ratio < 1.0 - eps_low, ratio > 1.0 + eps_high
    clipped = torch.where(adv < 0, low, torch.where(adv > 0, high, False)).float()
    kl = torch.zeros_like(logp)
    if ref is not None:
        delta = ref - logp
        e = torch.exp(delta)
        kl = e - delta - 1.0
        if beta != 0:
            loss = loss + beta * kl
            dlogp = dlogp + beta * (1.0 - e)
    return loss, dlogp, kl, clipped


def torch_chunk_step(logits, ids, old, ref, adv, coef, hparams, write_grad) -> Tensor:
    """The row step in torch: logits [C, V] -> per-token [C, 4] fp32 (ℓ, k3, clipped, logp; fp64
    for fp64 logits); with ``write_grad`` d loss / d logits overwrites ``logits``. One fp32
    [C, V] temporary (none for fp32 or fp64 logits, which are worked on in place)."""
    inv_temp = hparams[3]
    x = logits.to(compute_dtype(logits.dtype))  # [C, V]; the same tensor for fp32/fp64 logits
    if inv_temp != 1.0:
        x.mul_(inv_temp)
    shift = x.amax(dim=1, keepdim=True)
    shift = torch.where(torch.isfinite(shift), shift, 0.0)
    x.sub_(shift)
    picked = x.gather(1, ids[:, None]).squeeze(1)
    total = x.exp_().sum(dim=1)  # x now holds exp(x - shift)
    logp = picked - total.log()
    loss, dlogp, kl, clipped = token_terms(logp, adv, old, ref, hparams)
    if write_grad:
        # where, not coef * dlogp: a masked row's dℓ may be inf/NaN and must give exactly 0
        g = torch.where(coef != 0, coef * dlogp, 0.0) * inv_temp
        x.mul_((-g / total)[:, None]).scatter_add_(1, ids[:, None], g[:, None])
        if x is not logits:
            logits.copy_(x)
    return torch.stack([loss, kl, clipped, logp], dim=1)


def triton_chunk_step(logits, ids, old, ref, adv, coef, hparams, write_grad) -> Tensor:
    """The row step as one Triton kernel launch (same contract as :func:`torch_chunk_step`)."""
    from grit_fast.ops._fused_linear_kernels import _fused_linear_chunk_kernel

    rows, vocab = logits.shape
    tok = torch.empty(rows, 4, dtype=torch.float32, device=logits.device)
    if rows:
        with _triton_utils.on_device(logits):
            _fused_linear_chunk_kernel[(rows,)](
                logits,
                ids,
                adv if old is None else old,
                adv if ref is None else ref,
                adv,
                coef,
                tok,
                logits.stride(0),
                vocab,
                hparams,
                HAS_OLD=old is not None,
                HAS_REF=ref is not None,
                WRITE_GRAD=write_grad,
                BLOCK_V=block_size(vocab, logits.device, GPU_BLOCK_V),
                **({"num_warps": 8} if logits.device.type == "cuda" else {}),
            )
    return tok


def _pick(x: Tensor | None, sel: slice | Tensor) -> Tensor | None:
    return None if x is None else x[sel]


def chunked_rows(
    h: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    per_token: tuple[Tensor, Tensor | None, Tensor | None, Tensor, Tensor],
    hparams: tuple[float, float, float, float],
    chunk: int,
    step: Callable[..., Tensor],
    need: tuple[bool, bool, bool],
    keep: Tensor | None = None,
) -> tuple[Tensor, Tensor | None, Tensor | None, Tensor | None]:
    """The chunk loop over rows h [R, H]: per-token [R, 4] values and the gradients in ``need``
    (d h [R, H], d W [V, H], d b [V]; None where not needed). ``per_token`` = (ids, old, ref, adv,
    coef), each [R]. ``keep``: indices of the only rows to compute (the others get zeros), or None
    for all."""
    rows, vocab = h.shape[0], weight.shape[0]
    todo = rows if keep is None else keep.numel()
    ids, old, ref, adv, coef = per_token
    write_grad = any(need)
    new = torch.empty if keep is None else torch.zeros
    acc = compute_dtype(h.dtype)
    tok = new(rows, 4, dtype=acc, device=h.device)
    grad_h = new(h.shape, dtype=h.dtype, device=h.device) if need[0] else None
    grad_w = torch.zeros_like(weight) if need[1] else None
    grad_b = torch.zeros(vocab, dtype=acc, device=h.device) if need[2] else None
    buf = torch.empty(min(chunk, todo), vocab, dtype=h.dtype, device=h.device)  # [C, V]
    # The matmuls write into buffers of the operands' dtype: autocast must not recast them.
    with torch.autocast(h.device.type, enabled=False):
        for s in range(0, todo, chunk):
            e = min(s + chunk, todo)
            # a slice where every row is computed (views, no copies), else gathered row indices
            sel = slice(s, e) if keep is None else keep[s:e]
            h_c, logits = h[sel], buf[: e - s]
            if bias is None:
                torch.mm(h_c, weight.t(), out=logits)
            else:
                torch.addmm(bias, h_c, weight.t(), out=logits)
            old_c, ref_c = _pick(old, sel), _pick(ref, sel)
            tok[sel] = step(
                logits, ids[sel], old_c, ref_c, adv[sel], coef[sel], hparams, write_grad
            )
            # logits now holds d loss / d logits of the chunk
            if grad_h is not None:
                if keep is None:
                    torch.mm(logits, weight, out=grad_h[sel])
                else:
                    grad_h.index_copy_(0, sel, torch.mm(logits, weight))
            if grad_w is not None:
                grad_w.addmm_(logits.t(), h_c)
            if grad_b is not None:
                grad_b += logits.sum(dim=0, dtype=acc)
    return tok, grad_h, grad_w, grad_b if grad_b is None else grad_b.to(h.dtype)


def _flat(x: Tensor | None, dtype: torch.dtype) -> Tensor | None:
    return None if x is None else x.detach().reshape(-1).to(dtype).contiguous()


class FusedLinearGRPOFunction(torch.autograd.Function):
    """loss (0-dim) of hidden [N, T, H], weight [V, H], bias [V]; also advantages, KL and clip
    fraction (not differentiable). Gradients are computed in the forward, scaled in the backward."""

    @staticmethod
    def forward(ctx, hidden, weight, bias, ids, mask, rewards, old_logp, ref_logp, config):
        group_size, opts, temperature, chunk, step, need = config
        n, t, width = hidden.shape
        adv = group_advantages(rewards, group_size, opts["scale_rewards"], opts["adv_eps"])
        acc = compute_dtype(hidden.dtype)
        m = mask.detach().reshape(n, t).to(acc)
        max_len, normalizer = opts["max_completion_length"], opts["normalizer"]
        row_scale = ROW_SCALES[opts["loss_type"]](m.sum(dim=1), max_len, normalizer)
        per_token = (
            ids.reshape(-1).contiguous(),
            _flat(old_logp, acc),
            _flat(ref_logp, acc),
            adv.to(acc).repeat_interleave(t).contiguous(),
            (row_scale[:, None] * m).reshape(-1).contiguous(),
        )
        hparams = (
            float(opts["beta"]),
            float(opts["eps_low"]),
            float(opts["eps_high"]),
            1.0 / temperature,
        )
        h = hidden.detach().reshape(n * t, width).contiguous()  # [R, H]
        b = None if bias is None else bias.detach()
        m_flat = m.reshape(-1)
        on = m_flat != 0
        # Masked tokens (padding) add nothing to the loss or any gradient: skip their rows. One
        # host sync, as the id range check already made.
        keep = on.nonzero().squeeze(1)
        keep = None if keep.numel() == on.numel() else keep
        tok, grad_h, grad_w, grad_b = chunked_rows(
            h, weight.detach(), b, per_token, hparams, chunk, step, need, keep
        )
        # where, not m * x: a masked token's ℓ may be inf (e.g. a -inf logit) and must add exactly 0
        per_row = torch.stack(
            [
                torch.where(on, m_flat * tok[:, 0], 0.0),
                m_flat,
                torch.where(on, m_flat * tok[:, 1], 0.0),
                m_flat * tok[:, 2],
            ],
            dim=1,
        ).view(n, t, 4)
        loss, _, kl, clip_fraction = summarise(
            per_row.sum(dim=1), max_len, opts["loss_type"], normalizer
        )
        ctx.grads = (None if grad_h is None else grad_h.view(hidden.shape), grad_w, grad_b)
        logp = tok[:, 3].reshape(n, t).contiguous()  # 0 where masked (those rows are skipped)
        ctx.mark_non_differentiable(adv, kl, clip_fraction, logp)
        return loss, adv, kl, clip_fraction, logp

    @staticmethod
    @once_differentiable  # the backward is not itself differentiable: say so on double backward
    def backward(ctx, grad_loss, *_):
        if ctx.grads is None:
            raise RuntimeError(
                "fused_linear_grpo_loss: backward through the same loss a second time; its "
                "gradients were formed in the forward and handed out by the first backward - "
                "compute the loss again (retain_graph cannot keep them)"
            )
        grads = [None if g is None else g.mul_(grad_loss) for g in ctx.grads]
        ctx.grads = None  # the stored gradients now belong to autograd
        return *grads, *([None] * 6)


def _step(op: str, *tensors: Any) -> Callable[..., Tensor]:
    """The row step for these tensors: Triton where it can run, else the torch step; fp64 always
    the torch step, which computes in fp64 (the kernel in fp32)."""
    fast = _dispatch.use_fast(op, *tensors)
    return triton_chunk_step if fast and tensors[0].dtype != torch.float64 else torch_chunk_step


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
    """GRPO loss of the logits ``(hidden @ weight.T + bias) / temperature``, chunk by chunk.

    hidden: (N, T, H) fp32/bf16/fp16; weight: (V, H) (the lm_head) and bias: (V,) of the same dtype;
    ids, mask, old_logp, ref_logp: (N, T); rewards: (N,), N a multiple of ``group_size``.
    ``loss_kwargs``: beta, eps_low, eps_high, loss_type, scale_rewards, adv_eps, normalizer,
    max_completion_length, with the meaning and defaults of :func:`grit_fast.ops.grpo_loss`.
    Arithmetic in fp32, or fp64 for fp64 operands (then the loss is fp64). ``chunk_size``: token rows per
    chunk (default: from the shapes and, on a GPU, the free memory). The loss is differentiable
    w.r.t. ``hidden``, ``weight`` and ``bias``; no (N, T, V) tensor is ever allocated. Autocast
    does not apply: the matmuls run in the operands' dtype (cast them first to compute in another).
    The result's ``logp`` holds the per-token log-probs the loss used (0 where masked).
    """
    twin.check_fused_linear_inputs(hidden, weight, ids, bias, temperature, chunk_size)
    opts = twin.loss_options(loss_kwargs)
    n, t, _ = hidden.shape
    # mask, rewards, old/ref against (N, T); a zero-stride view stands for the log-probs
    logp_like = hidden.new_empty(()).expand(n, t)
    _checks.check_grpo_inputs(logp_like, rewards, mask, group_size, old_logp, ref_logp)
    _checks.check_max_completion_length(opts["loss_type"], opts["max_completion_length"], t)
    if _dispatch.mode() == "reference":
        return twin.fused_linear_grpo_loss(
            hidden,
            weight,
            ids,
            rewards,
            mask,
            group_size=group_size,
            bias=bias,
            old_logp=old_logp,
            ref_logp=ref_logp,
            temperature=temperature,
            **opts,
        )
    optional = [x for x in (bias, old_logp, ref_logp) if x is not None]
    step = _step("fused_linear_grpo_loss", hidden, weight, ids, rewards, mask, *optional)
    chunk = chunk_size or auto_chunk_size(n * t, weight.shape[0], hidden.dtype, hidden.device)
    grad = torch.is_grad_enabled()
    need = tuple(grad and x is not None and x.requires_grad for x in (hidden, weight, bias))
    config = (group_size, opts, float(temperature), chunk, step, need)
    loss, adv, kl, clip_fraction, logp = FusedLinearGRPOFunction.apply(
        hidden, weight, bias, ids, mask, rewards, old_logp, ref_logp, config
    )
    return LossOutput(loss, adv, kl, clip_fraction, logp)


def fused_linear_log_probs(
    hidden: Tensor,
    weight: Tensor,
    ids: Tensor,
    bias: Tensor | None = None,
    temperature: float = 1.0,
    chunk_size: int | None = None,
) -> Tensor:
    """(N, T) fp32 (fp64 for fp64 operands) log_softmax((hidden @ weight.T + bias) / temperature)
    at ``ids``, chunk by chunk,
    without gradient: the old-policy and reference log-probs. Shapes as
    :func:`fused_linear_grpo_loss`."""
    twin.check_fused_linear_inputs(hidden, weight, ids, bias, temperature, chunk_size)
    if _dispatch.mode() == "reference":
        return twin.fused_linear_log_probs(hidden, weight, ids, bias, temperature, chunk_size)
    optional = [] if bias is None else [bias]
    step = _step("fused_linear_log_probs", hidden, weight, ids, *optional)
    n, t, width = hidden.shape
    chunk = chunk_size or auto_chunk_size(n * t, weight.shape[0], hidden.dtype, hidden.device)
    zeros = torch.zeros(n * t, dtype=compute_dtype(hidden.dtype), device=hidden.device)
    per_token = (ids.reshape(-1).contiguous(), None, None, zeros, zeros)
    with torch.no_grad():
        h = hidden.reshape(n * t, width).contiguous()
        b = None if bias is None else bias.detach()
        hparams = (0.0, 0.0, 0.0, 1.0 / temperature)
        no_grads = (False, False, False)
        tok, *_ = chunked_rows(h, weight.detach(), b, per_token, hparams, chunk, step, no_grads)
    return tok[:, 3].reshape(n, t)
