"""``GritGRPOTrainer``: TRL's ``GRPOTrainer`` with the loss computed by our fused-linear kernel.

Everything but the loss stays TRL's: generation (transformers or vLLM), rewards, advantages, the
old-policy and reference log-probs, logging, accelerate / DeepSpeed / FSDP. The loss of a
micro-batch runs the model's backbone over prompt + completion and hands the completion positions'
hidden states (N, T, H) and the lm_head to :func:`grit_fast.ops.fused_linear_policy_loss`, so no
(N, T, V) logits and no per-position vocabulary pass over the prompt exist. TRL's loss semantics
are kept by the per-token weights w (loss = Σ w ⊙ ℓ, GA = gradient-accumulation steps in training,
1 in evaluation):

    grpo    w = m / (max(len_i, 1) · N · GA)      bnpo  w = m / (max(Σ m, 1) · GA)
    dr_grpo w = m / (N · max_completion_length · GA)
    dapo    w = m / (num_items_in_batch / processes · GA / steps_per_generation)   (train)

m the completion mask (times TRL's tool mask; times vLLM's importance-sampling ratio when that
correction is on and β = 0). TRL settings the kernel does not compute (the other loss types,
sequence-level importance sampling, two-sided clipping ``delta``, entropy masks and bonuses, the
off-policy mask, KL bias correction, MoE auxiliary losses, soft-capped or scaled logits) are
refused at construction with the setting to change. The ``entropy`` metric is not logged (it would
cost a second pass over the vocabulary); ``kl`` and the ``clip_ratio/*`` metrics are TRL's.
"""

from __future__ import annotations

import functools
import types
from typing import Any

import torch
from accelerate.utils import is_peft_model
from trl import GRPOTrainer
from trl.trainer.utils import nanmax, nanmin

from grit_fast.models.forward import head_operands
from grit_fast.ops.fused_linear_policy import PolicyLossOutput, fused_linear_policy_loss

SUPPORTED_LOSS_TYPES = ("grpo", "bnpo", "dr_grpo", "dapo")

# Model inputs TRL's GRPOTrainer hands its forward besides ids and attention mask.
FORWARD_KEYS = (
    "pixel_values",
    "image_grid_thw",
    "pixel_attention_mask",
    "spatial_shapes",
    "image_sizes",
    "token_type_ids",
    "mm_token_type_ids",
    "image_position_ids",
)


def unsupported_settings(trainer: GRPOTrainer) -> list[str]:
    """The trainer's settings that :class:`GritGRPOTrainer`'s loss does not compute, in words."""
    args, found = trainer.args, []
    if trainer.loss_type not in SUPPORTED_LOSS_TYPES:
        found.append(
            f"loss_type={trainer.loss_type!r} (supported: {', '.join(SUPPORTED_LOSS_TYPES)})"
        )
    if trainer.importance_sampling_level != "token":
        found.append(
            f"importance_sampling_level={trainer.importance_sampling_level!r} (use 'token')"
        )
    if args.delta is not None:
        found.append(f"delta={args.delta} (two-sided clipping; use None)")
    if trainer.top_entropy_quantile < 1.0:
        found.append(f"top_entropy_quantile={trainer.top_entropy_quantile} (use 1.0)")
    if trainer._entropy_bonus_enabled:
        found.append("entropy_coef / use_adaptive_entropy (an entropy bonus; use 0 / False)")
    if trainer.off_policy_mask_threshold is not None:
        found.append(f"off_policy_mask_threshold={trainer.off_policy_mask_threshold} (use None)")
    if trainer.aux_loss_enabled:
        found.append("a Mixture-of-Experts auxiliary loss (set router_aux_loss_coef=0)")
    if trainer.beta != 0.0 and args.use_bias_correction_kl:
        found.append("use_bias_correction_kl=True with beta > 0 (use False)")
    if trainer.beta != 0.0 and trainer.use_vllm and trainer.vllm_importance_sampling_correction:
        found.append(
            "vllm_importance_sampling_correction=True with beta > 0 (TRL weights the policy term "
            "but not the KL; use beta=0 or turn the correction off)"
        )
    text = trainer.model.config.get_text_config()
    for name in ("final_logit_softcapping", "logit_scale", "output_multiplier", "logits_scaling"):
        value = getattr(text, name, None)
        if value is not None and value != 1.0:
            found.append(
                f"a model whose config sets {name}={value} (the kernel takes plain logits)"
            )
    return found


def install_loss_forward(model: torch.nn.Module) -> None:
    """Give ``model.forward`` a ``grit_loss=`` keyword: with it, the forward runs the backbone and
    returns ``grit_loss(last_hidden_state, lm_head)``; without it, the forward is unchanged. The loss
    runs inside the forward so that DDP and FSDP wrappers see the lm_head used there."""
    forward = model.forward

    @functools.wraps(type(model).forward)  # generate validates its kwargs against the signature
    def grit_forward(self, *args, grit_loss=None, **kwargs):
        if grit_loss is None:
            return forward(*args, **kwargs)
        kwargs["use_cache"] = False
        hidden = self.base_model(*args, **kwargs).last_hidden_state
        return grit_loss(hidden, self.get_output_embeddings())

    model.forward = types.MethodType(grit_forward, model)


class GritGRPOTrainer(GRPOTrainer):
    """``trl.GRPOTrainer`` whose loss is :func:`grit_fast.ops.fused_linear_policy_loss`.

    Same constructor and settings as ``GRPOTrainer``; see :mod:`grit_fast.trl.trainer` for what is
    computed and what is refused.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        found = unsupported_settings(self)
        if found:
            raise ValueError(
                "GritGRPOTrainer does not support "
                + "; ".join(found)
                + ". Change these settings, or use trl.GRPOTrainer."
            )
        install_loss_forward(
            self.model.get_base_model() if is_peft_model(self.model) else self.model
        )

    # ------------------------------------------------------------------ the loss
    def _compute_loss(self, model: Any, inputs: dict[str, Any]) -> torch.Tensor:
        completion_ids, completion_mask = inputs["completion_ids"], inputs["completion_mask"]
        input_ids = torch.cat([inputs["prompt_ids"], completion_ids], dim=1)
        attention_mask = torch.cat([inputs["prompt_mask"], completion_mask], dim=1)
        mask = (
            completion_mask if "tool_mask" not in inputs else completion_mask * inputs["tool_mask"]
        )
        mode = "train" if self.model.training else "eval"
        old = inputs.get("old_per_token_logps")
        ref = inputs["ref_per_token_logps"] if self.beta != 0.0 else None
        loss_fn = functools.partial(
            self._fused_loss,
            ids=completion_ids,
            advantages=inputs["advantages"],
            weights=self._token_weights(mask.float(), inputs, mode),
            old=old,
            ref=ref,
        )
        extra = {k: inputs[k] for k in FORWARD_KEYS if inputs.get(k) is not None}
        with self.accelerator.autocast():
            out = model(
                input_ids=input_ids, attention_mask=attention_mask, grit_loss=loss_fn, **extra
            )
        self._log_loss_metrics(out.logp, old, ref, inputs["advantages"], mask.float(), mode)
        return out.loss

    def _token_weights(self, mask: torch.Tensor, inputs: dict[str, Any], mode: str) -> torch.Tensor:
        """w (N, T) with loss = Σ w ⊙ ℓ equal to TRL's aggregation of ``self.loss_type``."""
        accumulation = self.current_gradient_accumulation_steps if mode == "train" else 1.0
        n = mask.shape[0]
        if self.loss_type == "grpo":
            weights = mask / (mask.sum(-1, keepdim=True).clamp(min=1.0) * n * accumulation)
        elif self.loss_type == "bnpo":
            weights = mask / (mask.sum().clamp(min=1.0) * accumulation)
        elif self.loss_type == "dr_grpo":
            weights = mask / (n * self.max_completion_length * accumulation)
        else:  # dapo: num_items_in_batch spans the generation batch of every process
            normalizer = (
                inputs["num_items_in_batch"].clamp(min=1.0) / self.accelerator.num_processes
            )
            if mode == "train":
                normalizer = normalizer * accumulation / self.args.steps_per_generation
            weights = mask / normalizer
        if self.use_vllm and self.vllm_importance_sampling_correction:
            weights = weights * inputs["importance_sampling_ratio"]
        return weights

    def _fused_loss(
        self,
        hidden: torch.Tensor,
        head: torch.nn.Module,
        *,
        ids: torch.Tensor,
        advantages: torch.Tensor,
        weights: torch.Tensor,
        old: torch.Tensor | None,
        ref: torch.Tensor | None,
    ) -> PolicyLossOutput:
        t = ids.shape[1]
        hidden = hidden[:, -t - 1 : -1]  # (N, T, H): the positions that predict the completion
        weight, bias = head.weight, getattr(head, "bias", None)
        if isinstance(weight, torch.distributed.tensor.DTensor):  # FSDP2: the full head, once
            weight = weight.full_tensor()
            bias = None if bias is None else bias.full_tensor()
        if self.args.cast_lm_head_to_fp32:
            hidden, weight = hidden.float(), weight.float()
            bias = None if bias is None else bias.float()
        else:
            hidden, weight, bias = head_operands(hidden, _Head(weight, bias))
        return fused_linear_policy_loss(
            hidden,
            weight,
            ids,
            advantages.float(),
            weights.to(hidden.device, torch.float32),
            bias=bias,
            old_logp=old,
            ref_logp=ref,
            beta=self.beta,
            eps_low=self.epsilon_low,
            eps_high=self.epsilon_high,
            temperature=self.temperature,
        )

    def _log_loss_metrics(
        self,
        logp: torch.Tensor,
        old: torch.Tensor | None,
        ref: torch.Tensor | None,
        advantages: torch.Tensor,
        mask: torch.Tensor,
        mode: str,
    ) -> None:
        """TRL's ``kl`` and ``clip_ratio/*`` metrics, from the kernel's per-token log-probs."""

        def global_masked_mean(x: torch.Tensor) -> float:
            local = torch.stack([(x * mask).sum(), mask.sum()])
            totals = self.accelerator.reduce(local, reduction="sum")
            return (totals[0] / totals[1].clamp(min=1.0)).item()

        metrics = self._metrics[mode]
        if ref is not None:
            delta = ref - logp
            metrics["kl"].append(global_masked_mean(torch.exp(delta) - delta - 1))
        ratio = torch.ones_like(logp) if old is None else torch.exp(logp - old)
        adv = advantages[:, None] if advantages.dim() == 1 else advantages
        low = ((ratio < 1 - self.epsilon_low) & (adv < 0)).float()
        high = ((ratio > 1 + self.epsilon_high) & (adv > 0)).float()
        metrics["clip_ratio/low_mean"].append(global_masked_mean(low))
        metrics["clip_ratio/high_mean"].append(global_masked_mean(high))
        metrics["clip_ratio/region_mean"].append(global_masked_mean(torch.maximum(low, high)))
        lengths = mask.sum(-1)
        low_seq = self.accelerator.gather((low * mask).sum(-1) / lengths)
        high_seq = self.accelerator.gather((high * mask).sum(-1) / lengths)
        metrics["clip_ratio/low_min"].append(nanmin(low_seq).item())
        metrics["clip_ratio/high_max"].append(nanmax(high_seq).item())


class _Head:
    """weight and bias as :func:`head_operands` reads them from an lm_head."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
        self.weight, self.bias = weight, bias
