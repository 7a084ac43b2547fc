"""GritConfig: every setting of a GRPO-GR run (docs/method.md). ``configs/grit_*.yaml`` are the
paper's released runs; the defaults here differ from them where the class docstring says.

Loadable from YAML or JSON (:meth:`GritConfig.from_file`), every field overridable with
``key=value`` strings (``--set lr=1e-6`` on the command line; values parsed as YAML scalars). Unknown
keys and bad values raise :class:`ConfigError` naming the key and what is allowed.

Batch semantics: one *step* takes ``batch_size`` prompts (global, over all processes) for each of
``gradient_accumulation_steps`` micro-batches, generates ``num_generations`` completions per prompt,
and makes ``num_iterations`` (μ) optimizer updates on them. Each process owns whole groups, so
``batch_size`` must be a multiple of the world size.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHOICES: dict[str, tuple[Any, ...]] = {
    "family": ("auto", "qwen2.5-vl", "internvl3"),
    "loss_type": ("grpo", "bnpo", "dr_grpo", "dapo"),
    "reward_preset": ("official", "paper"),
    "judge_question": ("question", "user_text"),
    "lr_scheduler": ("cosine", "linear", "constant"),
    "optimizer": ("adamw",),
    "fused_loss": ("auto", "on", "off"),
    "parallel": ("ddp", "fsdp"),
}
POSITIVE_INT = (
    "num_generations",
    "num_iterations",
    "max_new_tokens",
    "min_pixels",
    "max_pixels",
    "batch_size",
    "gradient_accumulation_steps",
    "max_steps",
    "log_every",
    "lora_r",
    "max_tiles",
)
NON_NEGATIVE = (
    "warmup_steps",
    "save_every",
    "top_k",
    "beta",
    "weight_decay",
    "lora_dropout",
    "seed",
    "eval_every",
)


class ConfigError(ValueError):
    """A bad configuration key or value; the message names the key and what is allowed."""


@dataclass
class GritConfig:
    """Settings of a GRPO-GR run.

    Defaults: the paper's hyperparameters for lr (2e-6, cosine, no warm-up, AdamW, clip 1.0), β
    (0.01), G (4), sampling (temperature 0.9, top-k 50, top-p 1.0), lengths (1,000 new tokens,
    prompt 750) and Qwen's image bounds, but *not* its run: a step here is 8 prompts × 4 = 32
    completions (the paper's runs: 128), ``bf16: false``, ``save_every: 0`` and no evaluation
    during training. ``configs/grit_qwen2_5_vl_3b.yaml`` and ``configs/grit_internvl3_2b.yaml`` are
    the released runs, every setting included.

    ``model``: a local checkpoint directory, or ``tiny:qwen2.5-vl`` / ``tiny:internvl3`` for a tiny
    random model of the real architecture (tests, demo); no default: a run without one is an error
    (unless the trainer is handed a model). ``data``: a GRIT JSONL file, or several (a list, or
    comma-separated as the original takes them); ``image_root``: one folder for all of them, or one
    per file (a list or comma-separated), default each file's directory. ``eval_data`` and
    ``eval_image_root`` likewise (``eval_image_root`` defaults to ``image_root`` when that is one
    folder, else to each evaluation file's directory).
    ``resume``: None, ``"auto"`` (latest checkpoint in ``output_dir``, if any) or a checkpoint
    directory.

    Where the released GRIT code behaves differently (docs/method.md, the table "original
    behaviour → ours → setting"), a setting chooses; the GRIT configs choose the original:

    * ``temperature_in_logprobs`` (default true): log-probs of the loss, the reference and the KL
      from logits / temperature, as TRL; false: from the raw logits, as the original.
    * ``generation_header`` (default true): the assistant header ends the prompt; false: the
      original's InternVL prompt, where the model writes the header itself.
    * ``max_tiles`` (default 12): InternVL's most 448-px tiles per image (plus a thumbnail when
      tiled); the original: 2.
    * ``jpeg_augment`` (default false): re-encode each InternVL training image as JPEG of a random
      quality in [75, 100] before the rollout, as the original.
    * ``qwen_double_resize`` (default false): resize Qwen images by smart-resize with
      qwen-vl-utils' bounds first, then by the processor, as the original.
    * ``exif_transpose`` (default true): turn images upright by their EXIF orientation; the
      original does not.
    * ``judge_question`` (default ``question``): what the judge's question slot receives;
      ``user_text``: the whole user text with GRIT's suffix, as the original.
    * ``eval_every`` (default 0, off) and ``eval_on_start`` (default false): evaluate on
      ``eval_data`` every so many steps and before the first; metrics go to ``metrics.jsonl``.
    """

    # model and data
    model: str | None = None
    family: str = "auto"
    data: str | list[str] | None = None
    image_root: str | list[str] | None = None
    eval_data: str | list[str] | None = None
    eval_image_root: str | list[str] | None = None
    output_dir: str = "runs/grit"
    # rollout
    num_generations: int = 4
    temperature: float = 0.9
    top_k: int = 50
    top_p: float = 1.0
    max_new_tokens: int = 1000
    max_prompt_length: int | None = 750
    min_pixels: int = 3136
    max_pixels: int = 256 * 28 * 28
    # rewards
    reward_preset: str = "official"
    reward_weights: dict[str, float] | None = None
    reward_threads: int = 0
    # ----- as the released GRIT code where it differs (class docstring; configs/grit_*.yaml)
    temperature_in_logprobs: bool = True
    generation_header: bool = True
    max_tiles: int = 12
    jpeg_augment: bool = False
    qwen_double_resize: bool = False
    exif_transpose: bool = True
    judge_question: str = "question"
    eval_every: int = 0
    eval_on_start: bool = False
    # -----
    # loss
    beta: float = 0.01
    eps_low: float = 0.2
    eps_high: float = 0.2
    loss_type: str = "grpo"
    scale_rewards: bool = True
    adv_eps: float = 1e-4
    num_iterations: int = 1
    fused_loss: str = "auto"
    # optimisation
    optimizer: str = "adamw"
    lr: float = 2e-6
    weight_decay: float = 0.0
    adam_betas: tuple[float, float] = (0.9, 0.999)
    lr_scheduler: str = "cosine"
    warmup_steps: int = 0
    max_grad_norm: float = 1.0
    batch_size: int = 8
    gradient_accumulation_steps: int = 1
    max_steps: int = 200
    bf16: bool = False
    gradient_checkpointing: bool | None = None  # None: on for models of 100 M parameters or more
    seed: int = 42
    # LoRA (peft, the ``lora`` extra)
    lora: bool = False
    lora_r: int = 16
    lora_alpha: float = 32.0
    lora_dropout: float = 0.05
    lora_target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"]
    )
    # scale-out, checkpoints, logging
    parallel: str = "ddp"
    save_every: int = 0
    resume: str | None = None
    log_every: int = 1
    tensorboard: bool = False
    # ----- the real path: release checkpoints on GPUs (precision, memory, serving export)
    # export_model: at the end of a finished run write output_dir/model, the weights in the
    # starting checkpoint's dtype for serving (training checkpoints keep fp32 masters). null: when
    # that dtype is not fp32 (the releases are bf16); an fp32 run's last checkpoint already is it.
    export_model: bool | None = None

    def __post_init__(self) -> None:
        self.validate()

    # ----- construction
    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> GritConfig:
        """From a mapping; unknown keys are a :class:`ConfigError` listing the known ones."""
        if not isinstance(values, Mapping):
            raise ConfigError(
                f"a config must be a mapping of keys to values, got {type(values).__name__}"
            )
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown config key(s) {unknown}; known keys: {sorted(known)}")
        return cls(**{k: _coerce(k, v) for k, v in values.items()})

    @classmethod
    def from_file(cls, path: str | Path, overrides: Iterable[str] = ()) -> GritConfig:
        """From a YAML (``.yaml``/``.yml``) or JSON file, then ``key=value`` overrides."""
        import yaml

        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        text = path.read_text(encoding="utf-8")
        try:
            values = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        except (json.JSONDecodeError, yaml.YAMLError) as exc:
            raise ConfigError(
                f"{path}: not valid {path.suffix.lstrip('.') or 'YAML'}: {exc}"
            ) from None
        values = {} if values is None else values
        if not isinstance(values, Mapping):
            raise ConfigError(f"{path}: expected a mapping of keys to values at the top level")
        try:
            return cls.from_dict({**values, **parse_overrides(overrides)})
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None

    def with_overrides(self, overrides: Iterable[str] | Mapping[str, Any]) -> GritConfig:
        """A copy with ``key=value`` strings (or a mapping) applied and validated."""
        values = overrides if isinstance(overrides, Mapping) else parse_overrides(overrides)
        return GritConfig.from_dict({**self.to_dict(), **values})

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["adam_betas"] = list(self.adam_betas)
        return out

    # ----- checks
    def validate(self) -> None:
        for f in dataclasses.fields(self):
            setattr(self, f.name, _coerce(f.name, getattr(self, f.name)))
        for key, allowed in CHOICES.items():
            if getattr(self, key) not in allowed:
                raise ConfigError(
                    f"{key}={getattr(self, key)!r} is not allowed; expected one of {allowed}"
                )
        for key in POSITIVE_INT:
            if getattr(self, key) < 1:
                raise ConfigError(f"{key} must be a positive integer, got {getattr(self, key)}")
        for key in NON_NEGATIVE:
            if getattr(self, key) < 0:
                raise ConfigError(f"{key} must be >= 0, got {getattr(self, key)}")
        for key in (
            "temperature",
            "lr",
            "eps_low",
            "eps_high",
            "adv_eps",
            "max_grad_norm",
            "lora_alpha",
        ):
            value = getattr(self, key)
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"{key} must be a positive finite number, got {value}")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"top_p must be in (0, 1], got {self.top_p}")
        if not all(0 <= b < 1 for b in self.adam_betas):
            raise ConfigError(
                f"adam_betas must be two numbers in [0, 1), got {list(self.adam_betas)}"
            )
        if self.max_pixels < self.min_pixels:
            raise ConfigError(
                f"max_pixels ({self.max_pixels}) is below min_pixels ({self.min_pixels})"
            )
        if self.max_prompt_length is not None and self.max_prompt_length < 1:
            raise ConfigError(
                f"max_prompt_length must be a positive integer or null, got {self.max_prompt_length}"
            )
        if self.num_generations < 2:
            raise ConfigError(
                f"num_generations must be >= 2 (a group of 1 has zero advantage), got {self.num_generations}"
            )


_FIELD_TYPES = {f.name: f.type for f in dataclasses.fields(GritConfig)}


def coerce_value(key: str, value: Any, declared: str) -> Any:
    """``value`` checked against a field's declared type (``"int"``, ``"float"``, ``"bool"``,
    ``"str"``, ``"str | list[str]"``, each optionally ``" | None"``); ints are accepted for floats,
    and number spellings YAML 1.1 reads as strings (``1e-6``) for floats. The one place settings
    (:class:`GritConfig`, the demo's) check their values."""
    optional = "None" in declared
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{key} must not be null (expected {declared})")
    base = declared.replace(" | None", "")
    if base == "bool":
        if not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false, got {value!r}")
        return value
    if base == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key} must be an integer, got {value!r}")
        return value
    if base == "float":
        if isinstance(value, str):
            # YAML 1.1 reads 1e-6 (no dot) as a string; such spellings are still numbers.
            with contextlib.suppress(ValueError):
                value = float(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key} must be a number, got {value!r}")
        return float(value)
    if base == "str":
        if not isinstance(value, str):
            raise ConfigError(f"{key} must be a string, got {value!r}")
        return value
    if base == "str | list[str]":
        if isinstance(value, str):
            return value
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{key} must be a path or a list of paths, got {value!r}")
        return list(value)
    raise ConfigError(f"{key}: unsupported value {value!r}")  # pragma: no cover


def _coerce(key: str, value: Any) -> Any:
    """``value`` checked against the declared type of the :class:`GritConfig` field ``key``."""
    if value is not None and key == "adam_betas":
        if not isinstance(value, (list, tuple)) or len(value) != 2:
            raise ConfigError(f"adam_betas must be a pair of numbers, got {value!r}")
        return tuple(float(_coerce("lr", v)) for v in value)
    if value is not None and key == "lora_target_modules":
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"lora_target_modules must be a list of module names, got {value!r}")
        return list(value)
    if value is not None and key == "reward_weights":
        if not isinstance(value, Mapping) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value.values()
        ):
            raise ConfigError(f"reward_weights must map component names to numbers, got {value!r}")
        return {str(k): float(v) for k, v in value.items()}
    return coerce_value(key, value, str(_FIELD_TYPES[key]))


def parse_overrides(
    items: Iterable[str], field_types: Mapping[str, str] | None = None, what: str = "config key"
) -> dict[str, Any]:
    """``["lr=1e-6", "bf16=true"]`` -> ``{"lr": 1e-6, "bf16": True}`` (values parsed as YAML).

    ``field_types``: the known keys and their declared types (default :class:`GritConfig`'s);
    ``what`` names a key in errors."""
    import yaml

    field_types = _FIELD_TYPES if field_types is None else field_types
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = str(item).partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"override {item!r} must look like key=value")
        if key not in field_types:
            raise ConfigError(
                f"unknown {what} {key!r} in override {item!r}; known keys: {sorted(field_types)}"
            )
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError:
            value = text
        if (
            str(field_types[key]) in ("str", "str | None", "str | list[str] | None")
            and value is not None
            and not isinstance(value, (str, list))
        ):
            value = text.strip()
        out[key] = value
    return out
