"""The demo's settings: every knob of a run (:class:`DemoSettings`) and the named presets of
``grit-fast demo --size`` (:data:`SIZES`). Values are checked by the same machinery as
:class:`~grit_fast.train.config.GritConfig`'s; each field is positive unless it says it may be 0."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from grit_fast.train.config import ConfigError, coerce_value, parse_overrides

__all__ = ["SIZES", "DemoSettings"]


def _may_be_zero(default: Any) -> Any:
    """A :class:`DemoSettings` field that may be 0 (every other one must be positive)."""
    return dataclasses.field(default=default, metadata={"zero_ok": True})


@dataclass(frozen=True)
class DemoSettings:
    """Every knob of a demo run. ``SIZES["full"]`` is the default; ``"small"`` is a smoke test."""

    # data
    n_train: int = 4000  # GRIT-task images (counting and spatial questions, alternating)
    n_base: int = 4000  # base-stage images: counting questions whose shape is there exactly once
    n_eval: int = 400
    base_eval: int = 64  # held-out base-stage samples
    image_size: int = 112
    object_min: float = 0.22  # shape sides as fractions of the image side
    object_max: float = 0.4
    max_distractors: int = _may_be_zero(2)
    # model: a tiny InternVL3 (vision tower 32 wide, 2 deep); the text decoder's width and depth here
    # (the vocabulary is always Qwen2.5's 151,665 tokens plus InternVL's image tokens)
    hidden_size: int = 64
    num_layers: int = 4
    tie_embeddings: int = _may_be_zero(0)
    # rotary base of the text decoder (Qwen2.5's is 1e6; see build_model)
    rope_theta: float = 10.0
    # supervised stages, both with batches of warm_batch at warm_lr (warm_negatives: sampled-softmax
    # tokens, 0 = whole vocabulary): base_steps on the base-stage data, then warm_steps on GRIT traces
    # with a base_mix share of base-stage examples kept in (see grit_fast.demo.run)
    base_steps: int = _may_be_zero(1500)
    warm_steps: int = 300
    base_mix: float = _may_be_zero(0.5)
    warm_batch: int = 16
    warm_lr: float = 1e-3
    warm_negatives: int = _may_be_zero(1024)
    # GRPO-GR: GRIT's G = 4, temperature 0.9, beta 0.01 and std scaling; at lr 3e-5 to 5e-5 GRPO-GR
    # kept the warm start's format and raised its accuracy a little, at 1e-4 and 3e-4 it wore both
    # down (docs/demo.md)
    rl_steps: int = 45
    batch_size: int = 4
    num_generations: int = 4
    lr: float = 3e-5
    beta: float = _may_be_zero(0.01)
    # 1: advantages divided by the group's reward std (GRIT); 0: not
    scale_rewards: int = _may_be_zero(1)
    temperature: float = 0.9
    max_new_tokens: int = 104  # fits the longest correct trace (see longest_trace_tokens)
    # report
    eval_batch: int = 16
    # held-out samples of the image-reliance check (grit_fast.eval.image_reliance)
    reliance: int = 128
    gallery: int = 6
    bootstrap: int = 2000

    def with_overrides(self, values: Mapping[str, Any] | Iterable[str]) -> DemoSettings:
        """A copy with ``values`` applied: a mapping, or ``key=value`` strings (values parsed as YAML
        scalars, as ``grit-fast train --set`` parses them). Errors (:class:`ConfigError`) name the key."""
        types = {f.name: str(f.type) for f in dataclasses.fields(self)}
        if not isinstance(values, Mapping):
            values = parse_overrides(values, types, "demo setting")
        unknown = sorted(set(values) - set(types))
        if unknown:
            raise ConfigError(f"unknown demo setting(s) {unknown}; known keys: {sorted(types)}")
        zero_ok = {f.name: f.metadata.get("zero_ok", False) for f in dataclasses.fields(self)}
        out = {}
        for key, value in values.items():
            out[key] = coerce_value(f"demo setting {key}", value, types[key])
            if out[key] < 0 or (out[key] == 0 and not zero_ok[key]):
                rule = ">= 0" if zero_ok[key] else "positive"
                raise ConfigError(f"demo setting {key} must be {rule}, got {value!r}")
        size = dataclasses.replace(self, **out)
        if min(size.reliance, size.n_eval) < 2:
            raise ConfigError(
                "the image-reliance check pairs held-out samples: demo settings reliance and n_eval "
                f"must both be >= 2, got reliance={size.reliance}, n_eval={size.n_eval}"
            )
        if size.base_eval < 2:
            raise ConfigError(
                "the other-image IoU pairs held-out samples: demo setting base_eval must be >= 2, "
                f"got {size.base_eval}"
            )
        if size.image_size % 28:
            raise ConfigError(
                f"demo setting image_size must be a multiple of 28 (InternVL's patch 14 x pixel "
                f"shuffle 2), got {size.image_size}"
            )
        if size.base_mix >= 1:
            raise ConfigError(
                f"demo setting base_mix is the share of base-stage examples in the warm start and "
                f"must be < 1, got {size.base_mix}"
            )
        return size


SIZES: dict[str, DemoSettings] = {
    "full": DemoSettings(),
    "small": DemoSettings(
        n_train=6,
        n_base=4,
        n_eval=4,
        base_eval=4,
        hidden_size=32,
        num_layers=1,
        base_steps=2,
        warm_steps=2,
        warm_batch=2,
        warm_negatives=256,
        rl_steps=2,
        batch_size=1,
        num_generations=2,
        max_new_tokens=12,
        eval_batch=4,
        reliance=4,
        gallery=2,
        bootstrap=200,
    ),
}
