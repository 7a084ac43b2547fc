"""A memory estimate per process, printed at the start of a run (weights, gradients, optimizer,
reference, activations), with a warning when it exceeds the device.

Bytes per parameter of the policy (:mod:`grit_fast.train.precision`): fp32 master weights 4, fp32
gradients 4, AdamW's two fp32 moments 8 - 16 per trainable parameter (a frozen one: 4). FSDP divides
all three by the number of processes; DDP keeps a full copy (its gradient buckets are views of the
gradients). The frozen reference: the checkpoint's bytes per parameter under bf16 autocast, else 4.

Activations saved for the backward, per token of a decoder layer (H wide, KV width K, MLP width I),
in elements: 7H + 2K + 4I (the norms' inputs and outputs, q/k/v, the attention output, o_proj's input;
the MLP's input, gate, up, act(gate)·up). The same with the vision width (keys and values as wide as
the queries) per image patch of a vision block. With activation checkpointing a layer keeps only its
fp32 input (4H bytes per token) and one layer at a time is recomputed. Every row of a micro-batch
carries its own copy of the image, so the vision tower runs once per completion. Elements cost the
compute dtype's bytes (2 under bf16 autocast, else 4). The loss adds the fused kernel's logits chunk
(at most 512 MiB), d h and d W of the lm_head; unfused, the (rows, T, V) logits and their gradient.
This counts what is kept, not the allocator's fragmentation or the CUDA context (~1-3 GiB).

Worked case (the paper's Qwen2.5-VL-3B: 3.75 B parameters, 36 layers, H 2048, I 11,008, K 256; vision
32 blocks 1280 wide, I 3420, 1,024 patches per image at max_pixels 256·28²): 16 completions of
750 + 1,000 tokens without checkpointing keep 119 GB of text activations and 26 GB in the vision
tower; with it, 11.6 GB and 3.5 GB.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, fields
from typing import Any

logger = logging.getLogger(__name__)

GIB = 1024**3
FUSED_CHUNK_BYTES = 512 << 20  # the fused loss's largest logits chunk on a GPU
TEXT_TOKENS_BESIDE_IMAGE = 120  # chat template, question and GRIT's suffix, when no max is set
PATCH = 14


@dataclass(frozen=True)
class ModelShape:
    """What the estimate needs of a model: parameter counts and the widths of its layers."""

    params: int
    trainable: int
    layers: int
    hidden: int
    kv_width: int
    intermediate: int
    vocab: int
    vision_layers: int
    vision_hidden: int
    vision_intermediate: int


@dataclass(frozen=True)
class RunShape:
    """What the estimate needs of a run: rows (completions) per micro-batch and process, tokens per
    row, image patches per row, and the settings that change the bytes."""

    rows: int
    tokens: int
    completion_tokens: int
    patches: int
    world: int = 1
    fsdp: bool = False
    bf16: bool = False
    checkpointing: bool = False
    fused_loss: bool = True
    reference_bytes: int = 0  # bytes per parameter of the frozen reference (0: none)


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes per process of each part; :attr:`total` is their sum."""

    weights: int
    gradients: int
    optimizer: int
    reference: int
    activations: int

    @property
    def total(self) -> int:
        return sum(getattr(self, f.name) for f in fields(self))

    def table(self) -> str:
        parts = [(f.name, getattr(self, f.name)) for f in fields(self)] + [("total", self.total)]
        return ", ".join(f"{name} {value / GIB:.1f} GiB" for name, value in parts)


def _layer_elements(hidden: int, kv_width: int, intermediate: int) -> int:
    return 7 * hidden + 2 * kv_width + 4 * intermediate


def activation_bytes(model: ModelShape, run: RunShape) -> int:
    """Bytes of activations kept for the backward of one micro-batch (see the module doc)."""
    b = 2 if run.bf16 else 4
    text = _layer_elements(model.hidden, model.kv_width, model.intermediate) * b
    vision = (
        _layer_elements(model.vision_hidden, model.vision_hidden, model.vision_intermediate) * b
    )
    text_tokens, patches = run.rows * run.tokens, run.rows * run.patches
    if run.checkpointing:
        kept = text_tokens * (model.layers * 4 * model.hidden + text)
        kept += patches * (model.vision_layers * 4 * model.vision_hidden + vision)
    else:
        kept = text_tokens * model.layers * text + patches * model.vision_layers * vision
    scored = run.rows * run.completion_tokens
    if run.fused_loss:
        logits = min(FUSED_CHUNK_BYTES, scored * model.vocab * b)
        loss = logits + scored * model.hidden * b + model.vocab * model.hidden * b
    else:
        loss = 2 * scored * model.vocab * b
    return kept + loss


def estimate_memory(model: ModelShape, run: RunShape) -> MemoryEstimate:
    """The estimate of one process (see the module doc for every term)."""
    share = run.world if run.fsdp else 1
    return MemoryEstimate(
        weights=4 * model.params // share,
        gradients=4 * model.trainable // share,
        optimizer=8 * model.trainable // share,
        reference=run.reference_bytes * model.params // share,
        activations=activation_bytes(model, run),
    )


def model_shape(model: Any) -> ModelShape:
    """:class:`ModelShape` of a Qwen2.5-VL or InternVL3 model (its config and parameters)."""
    config = model.config
    text = getattr(config, "text_config", config)
    vision = getattr(config, "vision_config", None)
    heads = text.num_attention_heads
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // heads
    params = trainable = 0
    for p in model.parameters():
        params += p.numel()
        trainable += p.numel() if p.requires_grad else 0
    vision_layers = getattr(vision, "depth", None) or getattr(vision, "num_hidden_layers", 0)
    return ModelShape(
        params=params,
        trainable=trainable,
        layers=text.num_hidden_layers,
        hidden=text.hidden_size,
        kv_width=getattr(text, "num_key_value_heads", heads) * head_dim,
        intermediate=text.intermediate_size,
        vocab=text.vocab_size,
        vision_layers=vision_layers or 0,
        vision_hidden=getattr(vision, "hidden_size", 0),
        vision_intermediate=getattr(vision, "intermediate_size", 0),
    )


def image_patches(family: str, max_pixels: int, image_size: int = 448, tiles: int = 1) -> int:
    """Vision-tower patches of one image: Qwen2.5-VL at most ``max_pixels`` / 14²; InternVL
    ``tiles`` tiles of (image_size / 14)² patches each."""
    if family == "internvl3":
        return tiles * (image_size // PATCH) ** 2
    return max_pixels // (PATCH * PATCH)


def run_shape(
    config: Any, adapter: Any, world: int, fsdp: bool, checkpointing: bool, reference_bytes: int
) -> RunShape:
    """:class:`RunShape` of a :class:`~grit_fast.train.config.GritConfig` run on ``world``
    processes: the longest prompt (``max_prompt_length``, else the image's tokens and the text)
    plus ``max_new_tokens`` per row."""
    if adapter.family == "internvl3":
        image_processor = adapter.processor.image_processor
        size = getattr(image_processor.size, "height", None) or 448
        crop = getattr(image_processor, "crop_to_patches", False)
        tiles = getattr(image_processor, "max_patches", 1) + 1 if crop else 1
        patches = image_patches("internvl3", config.max_pixels, size, tiles)
        image_tokens = patches // 4  # pixel shuffle 0.5
    else:
        patches = image_patches("qwen2.5-vl", config.max_pixels)
        image_tokens = patches // 4  # 2x2 merge
    prompt = config.max_prompt_length or image_tokens + TEXT_TOKENS_BESIDE_IMAGE
    return RunShape(
        rows=max(1, config.batch_size // world) * config.num_generations,
        tokens=prompt + config.max_new_tokens,
        completion_tokens=config.max_new_tokens,
        patches=patches,
        world=world,
        fsdp=fsdp,
        bf16=config.bf16,
        checkpointing=checkpointing,
        fused_loss=config.fused_loss in ("auto", "on"),
        reference_bytes=reference_bytes,
    )


def hint(config: Any, checkpointing: bool, world: int) -> str:
    """What would make a run that does not fit fit, from its own settings."""
    ways = []
    if not checkpointing:
        ways.append("gradient_checkpointing=true")
    if config.parallel != "fsdp":
        ways.append("parallel=fsdp over several GPUs (shards weights, gradients, optimizer)")
    rows = max(1, config.batch_size // world) * config.num_generations
    if rows > config.num_generations:
        ways.append(
            f"fewer completions per micro-batch ({rows} now: lower batch_size, raise "
            "gradient_accumulation_steps)"
        )
    if not config.lora:
        ways.append("lora=true")
    return ": try " + "; ".join(ways) if ways else ""


def report(estimate: MemoryEstimate, device_bytes: int | None, hint: str = "") -> str:
    """The start-of-run line; logged as a warning when the total exceeds ``device_bytes``."""
    line = f"memory estimate per process: {estimate.table()}"
    if device_bytes is None:
        logger.info("%s", line)
        return line
    line += f" of the device's {device_bytes / GIB:.1f} GiB"
    if estimate.total > device_bytes:
        line += f" - it does not fit{hint}"
        logger.warning("%s", line)
    else:
        logger.info("%s", line)
    return line
