"""Teacher-forced forward passes over prompt + completion, shared by training, evaluation and the demo.

The model runs its backbone (vision encoder + decoder) over prompt + completion and we keep the last
hidden states of the positions that predict completion tokens, ``h[:, P-1 : P+T-1]`` (N, T, H): no
logits are ever formed for the prompt or image tokens. Log-probs then come from the output layer,
either through :func:`grit_fast.ops.fused_linear_log_probs` (the (N, T, V) logits never exist) or
``lm_head(h) / τ`` and :func:`grit_fast.ops.selective_log_softmax`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from grit_fast.ops import fused_linear_log_probs, selective_log_softmax

__all__ = [
    "completion_batch",
    "completion_hidden",
    "head_operands",
    "logprobs_from_hidden",
    "model_inputs",
    "output_layer",
    "token_logprobs",
    "unwrap",
]


def unwrap(model: Any) -> Any:
    """The transformers model under DDP/FSDP (``.module``) and PEFT (``get_base_model()``) wrappers."""
    while hasattr(model, "module") and isinstance(model.module, nn.Module):
        model = model.module
    if hasattr(model, "get_base_model"):
        model = model.get_base_model()
    return model


def completion_batch(
    adapter: Any, completions: Sequence[str], end_token: str = "<|im_end|>"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ``(ids, mask)`` (N, T) of ``completion + end_token`` for each completion."""
    tokenizer = adapter.tokenizer
    end = tokenizer.convert_tokens_to_ids(end_token)
    rows = [tokenizer(c, add_special_tokens=False)["input_ids"] + [end] for c in completions]
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), adapter.pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.float32)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        mask[i, : len(row)] = 1.0
    return ids, mask


def model_inputs(
    prompt_inputs: dict[str, torch.Tensor],
    completion_ids: torch.Tensor,
    completion_mask: torch.Tensor,
) -> dict[str, torch.Tensor]:
    """Prompt batch extended by the completions: ids, attention mask and text-type ids appended."""
    inputs = dict(prompt_inputs)
    inputs["input_ids"] = torch.cat([prompt_inputs["input_ids"], completion_ids], dim=1)
    inputs["attention_mask"] = torch.cat(
        [
            prompt_inputs["attention_mask"],
            completion_mask.to(prompt_inputs["attention_mask"].dtype),
        ],
        dim=1,
    )
    if (
        "mm_token_type_ids" in inputs
    ):  # 0 = text; Qwen's 3-D M-RoPE needs it over the whole sequence
        types = inputs["mm_token_type_ids"]
        inputs["mm_token_type_ids"] = torch.cat(
            [types, types.new_zeros(completion_ids.shape)], dim=1
        )
    return inputs


def completion_hidden(
    model: Any, inputs: dict[str, torch.Tensor], completion_length: int
) -> torch.Tensor:
    """(N, T, H) last hidden states at the positions that predict the T completion tokens."""
    from grit_fast.models import adapter_class, family_of

    base = unwrap(model)
    out = adapter_class(family_of(base)).backbone(base)(**inputs, use_cache=False)
    hidden = out.last_hidden_state
    length = hidden.shape[1]
    return hidden[:, length - completion_length - 1 : length - 1]


def output_layer(model: Any) -> nn.Module:
    return unwrap(model).get_output_embeddings()


def head_operands(
    hidden: torch.Tensor, head: nn.Module
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(hidden, weight, bias) for the fused kernels, in one dtype: under autocast the autocast dtype
    (as ``head(hidden)`` would compute), else the weight's. The casts are differentiable."""
    weight, bias = head.weight, getattr(head, "bias", None)
    kind = hidden.device.type
    dtype = torch.get_autocast_dtype(kind) if torch.is_autocast_enabled(kind) else weight.dtype
    cast = [x if x is None or x.dtype == dtype else x.to(dtype) for x in (hidden, weight, bias)]
    return cast[0], cast[1], cast[2]


def logprobs_from_hidden(
    model: Any,
    hidden: torch.Tensor,
    ids: torch.Tensor,
    temperature: float = 1.0,
    fused: bool = True,
) -> torch.Tensor:
    """(N, T) log-probs of ``ids`` under logits ``lm_head(hidden) / temperature``."""
    head = output_layer(model)
    if fused:
        hidden, weight, bias = head_operands(hidden, head)
        return fused_linear_log_probs(hidden, weight, ids, bias, temperature=temperature)
    return selective_log_softmax(head(hidden), ids, temperature)


@torch.no_grad()
def token_logprobs(
    model: Any,
    inputs: dict[str, torch.Tensor],
    ids: torch.Tensor,
    temperature: float = 1.0,
    fused: bool = True,
) -> torch.Tensor:
    """(N, T) fp32 log-probs of the completion tokens ``ids``, without gradient."""
    hidden = completion_hidden(model, inputs, ids.shape[1])
    return logprobs_from_hidden(model, hidden, ids, temperature, fused).float()
