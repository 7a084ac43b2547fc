"""Tiny, randomly initialised models of the real architectures, with the real Qwen2.5 vocabulary.

For tests and the demo: no hub, no download. The architecture classes, processors, chat layout and
token ids are those of the released checkpoints; only the widths and depths are tiny (text hidden 64,
2 layers, 4 heads / 2 KV heads; vision depth 2, hidden 32), so forward, ``generate`` and backward run
on a CPU in milliseconds. The weights are random: completions are noise until trained.
"""

from __future__ import annotations

from typing import Any

from grit_fast.models.tokenizer import QWEN2_5_ADDED_TOKENS, VOCAB_SIZE


def _seeded(seed: int) -> Any:
    import torch

    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    return generator_state


def tiny_qwen2_5_vl_config(hidden_size: int = 64, num_layers: int = 2) -> Any:
    """A ``Qwen2_5_VLConfig`` of the real architecture at toy size (vocabulary: Qwen2.5's 151,665).

    M-RoPE: ``mrope_section`` sums to head_dim / 2 (temporal, height, width rotary pairs).
    """
    from transformers import Qwen2_5_VLConfig

    num_heads = 4
    head_dim = hidden_size // num_heads
    half = head_dim // 2
    mrope = [half - 2 * (half // 3), half // 3, half // 3]  # e.g. head_dim 16 -> [4, 2, 2]
    tokens = dict(QWEN2_5_ADDED_TOKENS)
    assert "<|image_pad|>" in tokens
    text_config = {
        "vocab_size": VOCAB_SIZE,
        "hidden_size": hidden_size,
        "intermediate_size": 2 * hidden_size,
        "num_hidden_layers": num_layers,
        "num_attention_heads": num_heads,
        "num_key_value_heads": 2,
        "max_position_embeddings": 4096,
        "rope_parameters": {"rope_type": "default", "rope_theta": 1e6, "mrope_section": mrope},
        "bos_token_id": 151643,
        "eos_token_id": 151645,
        "pad_token_id": 151643,
        "tie_word_embeddings": True,
    }
    vision_config = {
        "depth": 2,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_heads": 2,
        "out_hidden_size": hidden_size,
        "fullatt_block_indexes": [1],
        "patch_size": 14,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
        "window_size": 112,
    }
    return Qwen2_5_VLConfig(
        text_config=text_config,
        vision_config=vision_config,
        image_token_id=151655,
        video_token_id=151656,
        vision_start_token_id=151652,
        vision_end_token_id=151653,
        tie_word_embeddings=True,
    )


def build_tiny_qwen2_5_vl(
    seed: int = 0,
    min_pixels: int = 3136,
    max_pixels: int = 256 * 28 * 28,
    hidden_size: int = 64,
    num_layers: int = 2,
) -> tuple[Any, Any]:
    """``(model, processor)``: a random ``Qwen2_5_VLForConditionalGeneration`` and its processor.

    The processor is :func:`grit_fast.models.qwen2_5_vl.build_processor` (real vocabulary, image-only,
    offline chat template, left padding). Same ``seed`` -> same weights; the global torch RNG is
    restored afterwards. Model in fp32, eval mode; ~10 M parameters (mostly the tied embedding).
    """
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration

    from grit_fast.models.qwen2_5_vl import build_processor

    processor = build_processor(min_pixels=min_pixels, max_pixels=max_pixels)
    state = _seeded(seed)
    try:
        model = Qwen2_5_VLForConditionalGeneration(tiny_qwen2_5_vl_config(hidden_size, num_layers))
    finally:
        torch.random.set_rng_state(state)
    model.generation_config.pad_token_id = processor.tokenizer.pad_token_id
    model.generation_config.eos_token_id = [151645, 151643]
    model.generation_config.do_sample = True
    return model.eval(), processor


def tiny_internvl3_config(hidden_size: int = 64, num_layers: int = 2, image_size: int = 56) -> Any:
    """An ``InternVLConfig`` of the real architecture (InternViT + MLP projector + Qwen2) at toy size.

    Tiles of ``image_size`` pixels, patch 14, pixel-shuffle 0.5 -> (image_size/28)² tokens per tile.
    """
    from transformers import InternVLConfig

    from grit_fast.models.internvl import FIRST_INTERNVL_ID, IMAGE_TOKEN_ID, INTERNVL_ADDED_TOKENS

    text_config = {
        "model_type": "qwen2",
        "vocab_size": FIRST_INTERNVL_ID + len(INTERNVL_ADDED_TOKENS),
        "hidden_size": hidden_size,
        "intermediate_size": 2 * hidden_size,
        "num_hidden_layers": num_layers,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 4096,
        "rope_parameters": {"rope_type": "default", "rope_theta": 1e6},
        "bos_token_id": 151643,
        "eos_token_id": 151645,
        "pad_token_id": 151643,
        "tie_word_embeddings": True,
    }
    vision_config = {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "image_size": [image_size, image_size],
        "patch_size": [14, 14],
    }
    return InternVLConfig(
        text_config=text_config,
        vision_config=vision_config,
        image_token_id=IMAGE_TOKEN_ID,
        image_seq_length=(image_size // 28) ** 2,
        downsample_ratio=0.5,
        tie_word_embeddings=True,
    )


def build_tiny_internvl3(
    seed: int = 0,
    min_pixels: int = 3136,
    max_pixels: int = 256 * 28 * 28,
    hidden_size: int = 64,
    num_layers: int = 2,
    image_size: int = 56,
) -> tuple[Any, Any]:
    """``(model, processor)``: a random ``InternVLForConditionalGeneration`` and its processor.

    Real vocabulary plus InternVL's image tokens, image-only processor, offline chat template,
    left padding; each image is one ``image_size`` tile. ``min_pixels``/``max_pixels`` are accepted
    for a uniform signature and unused (InternVL tiles instead). Same ``seed`` -> same weights.
    """
    import torch
    from transformers import InternVLForConditionalGeneration

    from grit_fast.models.internvl import build_processor

    config = tiny_internvl3_config(hidden_size, num_layers, image_size)
    processor = build_processor(image_size=image_size, image_seq_length=config.image_seq_length)
    state = _seeded(seed)
    try:
        model = InternVLForConditionalGeneration(config)
    finally:
        torch.random.set_rng_state(state)
    model.generation_config.pad_token_id = processor.tokenizer.pad_token_id
    model.generation_config.eos_token_id = [151645, 151643]
    return model.eval(), processor
