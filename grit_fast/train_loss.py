"""The GRPO-GR loss of a rollout: log-probs of the completion tokens only, then the clipped PG + KL.

The model runs its backbone (vision encoder + decoder) over prompt + completion and we keep the last
hidden states of the positions that predict completion tokens, ``h[:, P-1 : P+T-1]`` (N, T, H): no
logits are ever formed for the prompt or image tokens. Then either

* fused: :func:`grit_fast.ops.fused_linear.fused_linear_grpo_loss` takes those hidden states and the
  output-embedding weight (V, H), so (N, T, V) logits are never materialised; or
* unfused: ``logits = lm_head(h) / temperature`` (N, T, V), :func:`grit_fast.ops.selective_log_softmax`
  and :func:`grit_fast.ops.grpo_loss` (the Triton kernels on GPU, the reference on CPU).

Log-probs use the sampling temperature (logits / τ), as the policy that sampled the tokens did.
:class:`PolicyLoss` is the ``nn.Module`` that DistributedDataParallel wraps, so gradient sync hooks
see the whole forward.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from grit_fast.ops import grpo_loss, selective_log_softmax
from grit_fast.ops.types import LossOutput


@dataclass(frozen=True)
class LossSettings:
    group_size: int
    beta: float
    eps_low: float
    eps_high: float
    loss_type: str
    temperature: float
    scale_rewards: bool = True
    adv_eps: float = 1e-4
    fused: bool = False


def fused_module() -> Any:
    """``grit_fast.ops.fused_linear`` when it is available, else None."""
    try:
        return importlib.import_module("grit_fast.ops.fused_linear")
    except ImportError:
        return None


def unwrap(model: Any) -> Any:
    """The transformers model under DDP/FSDP (``.module``) and PEFT (``get_base_model()``) wrappers."""
    while hasattr(model, "module") and isinstance(model.module, nn.Module):
        model = model.module
    if hasattr(model, "get_base_model"):
        model = model.get_base_model()
    return model


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
    base = unwrap(model)
    out = base.model(**inputs, use_cache=False)
    hidden = out.last_hidden_state
    length = hidden.shape[1]
    return hidden[:, length - completion_length - 1 : length - 1]


def output_layer(model: Any) -> nn.Module:
    return unwrap(model).get_output_embeddings()


def logprobs_from_hidden(
    model: Any, hidden: torch.Tensor, ids: torch.Tensor, settings: LossSettings
) -> torch.Tensor:
    """(N, T) log-probs of ``ids`` under logits ``lm_head(hidden) / τ``."""
    head = output_layer(model)
    fused = fused_module() if settings.fused else None
    if fused is not None:
        hidden, weight, bias = head_operands(hidden, head)
        return fused.fused_linear_log_probs(
            hidden, weight, ids, bias, temperature=settings.temperature
        )
    return selective_log_softmax(head(hidden), ids, settings.temperature)


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


@torch.no_grad()
def token_logprobs(
    model: Any, inputs: dict[str, torch.Tensor], ids: torch.Tensor, settings: LossSettings
) -> torch.Tensor:
    """(N, T) log-probs of the completion tokens without gradient (reference / old policy)."""
    hidden = completion_hidden(model, inputs, ids.shape[1])
    return logprobs_from_hidden(model, hidden, ids, settings).float()


class PolicyLoss(nn.Module):
    """``forward(inputs, ids, mask, rewards, old_logp, ref_logp, normalizer=None) -> LossOutput``.

    Wraps the model so DDP/FSDP see one module whose forward produces the loss.
    """

    def __init__(self, model: nn.Module, settings: LossSettings) -> None:
        super().__init__()
        self.model = model
        self.settings = settings

    def forward(
        self,
        inputs: dict[str, torch.Tensor],
        ids: torch.Tensor,
        mask: torch.Tensor,
        rewards: torch.Tensor,
        old_logp: torch.Tensor | None,
        ref_logp: torch.Tensor | None,
        normalizer: float | None = None,
    ) -> LossOutput:
        hidden = completion_hidden(self.model, inputs, ids.shape[1])
        head = output_layer(self.model)
        return loss_from_hidden(
            hidden, head, ids, rewards, mask, old_logp, ref_logp, self.settings, normalizer
        )

    def generate(self, **kwargs: Any) -> torch.Tensor:
        """``model.generate`` (under FSDP a registered forward method, so it unshards the root)."""
        return self.model.generate(**kwargs)

    def logprobs(self, inputs: dict[str, torch.Tensor], ids: torch.Tensor) -> torch.Tensor:
        """:func:`token_logprobs` of the policy (the old policy when μ > 1)."""
        return token_logprobs(self.model, inputs, ids, self.settings)


def loss_from_hidden(
    hidden: torch.Tensor,
    head: nn.Module,
    ids: torch.Tensor,
    rewards: torch.Tensor,
    mask: torch.Tensor,
    old_logp: torch.Tensor | None,
    ref_logp: torch.Tensor | None,
    settings: LossSettings,
    normalizer: float | None = None,
) -> LossOutput:
    """The GRPO-GR loss from completion hidden states ``hidden`` (N, T, H) and the output layer.

    Fused (``settings.fused``): logits are never formed. Otherwise
    ``head(hidden) / τ`` (N, T, V), selective log-softmax, then :func:`grit_fast.ops.grpo_loss`.
    ``normalizer``: the token count that ``loss_type="dapo"`` divides by (unused otherwise).
    """
    s = settings
    kwargs = {
        "group_size": s.group_size,
        "old_logp": old_logp,
        "ref_logp": ref_logp,
        "beta": s.beta,
        "eps_low": s.eps_low,
        "eps_high": s.eps_high,
        "loss_type": s.loss_type,
        "scale_rewards": s.scale_rewards,
        "adv_eps": s.adv_eps,
        "normalizer": normalizer,
    }
    fused = fused_module() if s.fused else None
    if fused is not None:
        hidden, weight, bias = head_operands(hidden, head)
        return fused.fused_linear_grpo_loss(
            hidden, weight, ids, rewards, mask, bias=bias, temperature=s.temperature, **kwargs
        )
    logp = selective_log_softmax(head(hidden), ids, s.temperature)
    return grpo_loss(logp.float(), rewards, mask, **kwargs)
