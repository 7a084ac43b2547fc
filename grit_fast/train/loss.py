"""The GRPO-GR loss of a rollout: log-probs of the completion tokens only, then the clipped PG + KL.

The model's last hidden states at the positions that predict completion tokens (N, T, H) come from
:func:`grit_fast.models.forward.completion_hidden`. Then either

* fused: :func:`grit_fast.ops.fused_linear.fused_linear_grpo_loss` takes those hidden states and the
  output-embedding weight (V, H), so (N, T, V) logits are never materialised; or
* unfused: ``logits = lm_head(h) / temperature`` (N, T, V), :func:`grit_fast.ops.selective_log_softmax`
  and :func:`grit_fast.ops.grpo_loss` (the Triton kernels on GPU, the reference on CPU).

Log-probs use the sampling temperature (logits / τ), as the policy that sampled the tokens did.
:class:`PolicyLoss` is the ``nn.Module`` that DistributedDataParallel wraps, so gradient sync hooks
see the whole forward.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from grit_fast.models.forward import completion_hidden, head_operands, output_layer, token_logprobs
from grit_fast.ops import fused_linear_grpo_loss, grpo_loss, selective_log_softmax
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
    # dr_grpo divides by N × this constant (the generation limit, max_new_tokens)
    max_completion_length: int | None = None


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

    @property
    def module(self) -> nn.Module:
        """The wrapped model, so :func:`grit_fast.models.forward.unwrap` sees through this wrapper."""
        return self.model

    def generate(self, **kwargs: Any) -> torch.Tensor:
        """``model.generate`` (under FSDP a registered forward method, so it unshards the root)."""
        return self.model.generate(**kwargs)

    def logprobs(self, inputs: dict[str, torch.Tensor], ids: torch.Tensor) -> torch.Tensor:
        """:func:`token_logprobs` of the policy (the old policy when μ > 1)."""
        s = self.settings
        return token_logprobs(self.model, inputs, ids, s.temperature, s.fused)


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
        "max_completion_length": s.max_completion_length,
    }
    if s.fused:
        hidden, weight, bias = head_operands(hidden, head)
        return fused_linear_grpo_loss(
            hidden, weight, ids, rewards, mask, bias=bias, temperature=s.temperature, **kwargs
        )
    logp = selective_log_softmax(head(hidden), ids, s.temperature).float()
    out = grpo_loss(logp, rewards, mask, **kwargs)
    return out._replace(logp=torch.where(mask != 0, logp.detach(), 0.0))
