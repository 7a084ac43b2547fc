"""grit_fast: fast GRPO-GR (GRIT grounded reasoning) for vision-language models.

The public API is listed in ``_PUBLIC`` (name -> module) and imported on first use, so that
``import grit_fast`` stays light: it imports neither torch, triton nor transformers. Type checkers
and IDEs read the same names from the ``TYPE_CHECKING`` block below.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from grit_fast._dispatch import FastPathUnavailable, backend
from grit_fast._version import __version__

if TYPE_CHECKING:
    from grit_fast.data import GritDataError, GritRecord, load_grit_jsonl
    from grit_fast.data.synthetic import grounded_trace, make_dataset
    from grit_fast.diagnostics import info
    from grit_fast.eval.evaluation import evaluate, score_predictions
    from grit_fast.eval.predictions import PredictionError
    from grit_fast.models import adapter_for, build_tiny_internvl3, build_tiny_qwen2_5_vl
    from grit_fast.ops import (
        fused_linear_grpo_loss,
        fused_linear_log_probs,
        fused_linear_policy_loss,
        grpo_loss,
        grpo_loss_from_logits,
    )
    from grit_fast.rewards import (
        Judge,
        RewardBatch,
        RewardScorer,
        RuleJudge,
        Trace,
        parse_trace,
        parse_traces,
    )
    from grit_fast.rewards.coords import qwen_resized_size, to_image_pixels
    from grit_fast.rewards.geometry import box_iou, grounding_iou, grounding_iou_batch
    from grit_fast.rewards.openai_judge import JudgeError, OpenAIJudge
    from grit_fast.train.config import ConfigError, GritConfig
    from grit_fast.train.trainer import GritTrainer

_PUBLIC: dict[str, str] = {
    "info": "grit_fast.diagnostics",
    # trace parsing, rewards, judges
    "parse_trace": "grit_fast.rewards",
    "parse_traces": "grit_fast.rewards",
    "Trace": "grit_fast.rewards",
    "RewardScorer": "grit_fast.rewards",
    "RewardBatch": "grit_fast.rewards",
    "Judge": "grit_fast.rewards",
    "RuleJudge": "grit_fast.rewards",
    # geometry and coordinates
    "box_iou": "grit_fast.rewards.geometry",
    "grounding_iou": "grit_fast.rewards.geometry",
    "grounding_iou_batch": "grit_fast.rewards.geometry",
    "qwen_resized_size": "grit_fast.rewards.coords",
    "to_image_pixels": "grit_fast.rewards.coords",
    # loss ops: from log-probs, from logits, and from hidden states + lm_head (no logits)
    "grpo_loss": "grit_fast.ops",
    "grpo_loss_from_logits": "grit_fast.ops",
    "fused_linear_grpo_loss": "grit_fast.ops",
    "fused_linear_log_probs": "grit_fast.ops",
    "fused_linear_policy_loss": "grit_fast.ops",
    # training (config, data, models, trainer)
    "build_tiny_qwen2_5_vl": "grit_fast.models",
    "build_tiny_internvl3": "grit_fast.models",
    "adapter_for": "grit_fast.models",
    "GritConfig": "grit_fast.train.config",
    "GritTrainer": "grit_fast.train.trainer",
    "GritRecord": "grit_fast.data",
    "load_grit_jsonl": "grit_fast.data",
    # evaluation and pictures
    "OpenAIJudge": "grit_fast.rewards.openai_judge",
    "evaluate": "grit_fast.eval.evaluation",
    "score_predictions": "grit_fast.eval.evaluation",
    # demo and synthetic data
    "make_dataset": "grit_fast.data.synthetic",
    "grounded_trace": "grit_fast.data.synthetic",
    # errors: each names the file, line, key or endpoint it came from
    "ConfigError": "grit_fast.train.config",
    "GritDataError": "grit_fast.data",
    "PredictionError": "grit_fast.eval.predictions",
    "JudgeError": "grit_fast.rewards.openai_judge",
}

__all__ = ["FastPathUnavailable", "__version__", "backend", *_PUBLIC]


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'grit_fast' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
