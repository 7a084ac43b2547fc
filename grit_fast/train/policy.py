"""The model side of a run, built once: the policy in fp32 masters, its adapter, the frozen
reference, LoRA, activation checkpointing, the loss settings and the DDP/FSDP wrappers.

:func:`build_policy` turns a config (and optionally a loaded model and processor) into a
:class:`Policy`; the trainer only runs it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch

from grit_fast import distributed
from grit_fast.models import adapter_for, load_model
from grit_fast.train import memory, precision
from grit_fast.train.config import GritConfig
from grit_fast.train.loss import LossSettings, PolicyLoss
from grit_fast.train.setup import (
    apply_lora,
    enable_checkpointing,
    shard_fsdp,
    wants_checkpointing,
    wrap_parallel,
)

logger = logging.getLogger(__name__)


@dataclass
class Policy:
    """``model``: the trained model (fp32 masters; PEFT-wrapped under LoRA); ``policy_loss``: the
    module whose forward is the loss and whose ``generate``/``logprobs`` run the model (under FSDP,
    sharded in place); ``policy``: what runs the loss (DDP's wrapper around it, or it);
    ``ref_model``/``ref_policy``: the frozen KL reference (None when β = 0 or under LoRA, where the
    base weights with adapters disabled are the reference); ``release_dtype``: the checkpoint's
    dtype (a release's bf16), which the serving export returns to."""

    model: Any
    processor: Any
    adapter: Any
    loss_settings: LossSettings
    policy_loss: PolicyLoss
    policy: torch.nn.Module
    ref_model: Any
    ref_policy: PolicyLoss | None
    release_dtype: torch.dtype
    fsdp: bool


def loss_settings(cfg: GritConfig) -> LossSettings:
    """The loss of ``cfg``: ``fused_loss`` auto and on are fused (on CPU its chunked path is also
    leaner and faster: benches/RESULTS.md, "Train step")."""
    return LossSettings(
        group_size=cfg.num_generations,
        beta=cfg.beta,
        eps_low=cfg.eps_low,
        eps_high=cfg.eps_high,
        loss_type=cfg.loss_type,
        # log-probs of logits / τ (TRL), or of the raw logits (the released code)
        temperature=cfg.temperature if cfg.temperature_in_logprobs else 1.0,
        scale_rewards=cfg.scale_rewards,
        adv_eps=cfg.adv_eps,
        fused=cfg.fused_loss in ("on", "auto"),
        max_completion_length=cfg.max_new_tokens,
    )


def build_policy(cfg: GritConfig, model: Any, processor: Any, device: torch.device) -> Policy:
    """Load ``cfg.model`` (unless ``model`` and ``processor`` are given) and build the run's
    :class:`Policy` on ``device``; logs the precision and (main process) the memory estimate."""
    if model is None:
        model, processor = load_model(
            cfg.model, cfg.family, cfg.seed, cfg.min_pixels, cfg.max_pixels
        )
    adapter = adapter_for(
        model if cfg.family == "auto" else cfg.family,
        processor,
        cfg.min_pixels,
        cfg.max_pixels,
        generation_header=cfg.generation_header,
        max_tiles=cfg.max_tiles,
        double_resize=cfg.qwen_double_resize,
    )
    model.to(device)
    main = distributed.is_main()
    # The checkpoint's dtype: the frozen reference may keep it, the serving export returns to it;
    # the policy trains fp32 masters (grit_fast.train.precision).
    release_dtype = precision.weights_dtype(model)
    ref_model = None
    if cfg.beta > 0 and not cfg.lora:
        ref_model = precision.frozen_copy(
            model, precision.reference_dtype(cfg.bf16, device, release_dtype)
        )
    precision.to_master(model)
    if main:
        logger.info("precision: %s", precision.describe(cfg.bf16, device, release_dtype))
    if cfg.lora:
        model = apply_lora(model, cfg)
    checkpointing = wants_checkpointing(
        cfg.gradient_checkpointing, sum(p.numel() for p in model.parameters())
    )
    if checkpointing:
        enable_checkpointing(model)
    model.train()
    fsdp = cfg.parallel == "fsdp" and distributed.is_distributed()
    if main:
        report_memory(cfg, adapter, model, ref_model, device, checkpointing)

    settings = loss_settings(cfg)
    policy_loss = PolicyLoss(model, settings)
    policy = wrap_parallel(policy_loss, cfg, device)
    # The frozen reference runs through the same wrapper; under FSDP it is sharded like the policy
    # (a full copy on every process would cost its whole size on every GPU).
    ref_policy = None
    if ref_model is not None:
        ref_policy = PolicyLoss(ref_model, settings)
        if fsdp:
            shard_fsdp(ref_policy)
    return Policy(
        model,
        processor,
        adapter,
        settings,
        policy_loss,
        policy,
        ref_model,
        ref_policy,
        release_dtype,
        fsdp,
    )


def report_memory(
    cfg: GritConfig,
    adapter: Any,
    model: Any,
    ref_model: Any,
    device: torch.device,
    checkpointing: bool,
) -> None:
    """Log the memory estimate per process (a warning when it exceeds the device)."""
    world = distributed.world_size()
    fsdp = cfg.parallel == "fsdp" and world > 1
    ref_bytes = 0
    if ref_model is not None:
        ref_bytes = torch.finfo(precision.weights_dtype(ref_model)).bits // 8
    run = memory.run_shape(cfg, adapter, world, fsdp, checkpointing, ref_bytes)
    estimate = memory.estimate_memory(memory.model_shape(model), run)
    device_bytes = None
    if device.type == "cuda":
        device_bytes = torch.cuda.get_device_properties(device).total_memory
    memory.report(estimate, device_bytes, hint=memory.hint(cfg, checkpointing, world))
