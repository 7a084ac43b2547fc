"""Checkpoint folders laid out as Qwen and OpenGVLab release them, with random weights.

:func:`write_qwen2_5_vl_release` writes what ``Qwen/Qwen2.5-VL-3B-Instruct`` ships: bf16
``model.safetensors`` (keys as the release names them), ``config.json`` in the release's own (flat,
transformers 4.x) form with ``rope_scaling: {type: mrope}``, the Instruct ``generation_config.json``
(``repetition_penalty 1.05, temperature 0.1, top_k 1, top_p 0.001``), the tokenizer files with the
chat template in ``tokenizer_config.json``, ``chat_template.json`` and ``preprocessor_config.json``.
:func:`write_internvl3_hf_release` writes ``OpenGVLab/InternVL3-2B-hf``'s layout: nested
``config.json`` (InternViT + Qwen2), ``processor_config.json``, ``preprocessor_config.json``
(448 px tiles), the tokenizer with its image tokens named in ``extra_special_tokens`` and
``chat_template.jinja``.

Widths: ``tiny`` (text 64 wide) for fast tests, ``real`` for the released models' exact widths with
few layers (:data:`QWEN2_5_VL_3B`, :data:`INTERNVL3_2B`). Nothing is downloaded: the vocabulary is
the real one built offline (:mod:`grit_fast.models.tokenizer`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

# Qwen2.5-VL-3B-Instruct's widths (config.json of the release).
QWEN2_5_VL_3B = {
    "text": {
        "hidden_size": 2048,
        "intermediate_size": 11008,
        "num_attention_heads": 16,
        "num_key_value_heads": 2,
        "num_hidden_layers": 36,
        "mrope_section": [16, 24, 24],
    },
    "vision": {
        "hidden_size": 1280,
        "num_heads": 16,
        "intermediate_size": 3420,
        "depth": 32,
        "fullatt_block_indexes": [7, 15, 23, 31],
    },
}
QWEN_TINY = {
    "text": {
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "num_hidden_layers": 2,
        "mrope_section": [4, 2, 2],
    },
    "vision": {
        "hidden_size": 32,
        "num_heads": 2,
        "intermediate_size": 64,
        "depth": 2,
        "fullatt_block_indexes": [1],
    },
}
# InternVL3-2B: InternViT-300M-448px-V2.5 and Qwen2.5-1.5B.
INTERNVL3_2B = {
    "text": {
        "hidden_size": 1536,
        "intermediate_size": 8960,
        "num_attention_heads": 12,
        "num_key_value_heads": 2,
        "num_hidden_layers": 28,
    },
    "vision": {
        "hidden_size": 1024,
        "intermediate_size": 4096,
        "num_attention_heads": 16,
        "num_hidden_layers": 24,
        "image_size": 448,
    },
}
INTERNVL_TINY = {
    "text": {
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "num_hidden_layers": 2,
    },
    "vision": {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_attention_heads": 2,
        "num_hidden_layers": 2,
        "image_size": 56,
    },
}
QWEN_VOCAB = 151936  # the embedding rows of the releases (the tokenizer has 151,665 tokens)
INTERNVL_VOCAB = 151674

# generation_config.json of the Qwen2.5-VL Instruct releases.
QWEN_GENERATION_CONFIG = {
    "bos_token_id": 151643,
    "pad_token_id": 151643,
    "do_sample": True,
    "eos_token_id": [151645, 151643],
    "repetition_penalty": 1.05,
    "temperature": 0.1,
    "top_p": 0.001,
    "top_k": 1,
    "transformers_version": "4.37.0",
}
# chat_template.json of the Qwen2.5-VL Instruct releases, as they ship it.
QWEN_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}"
    "{{ message['content'] }}<|im_end|>\n{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture "
    "{{ image_count.value }}: {% endif %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}Video "
    "{{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
QWEN_PREPROCESSOR_CONFIG = {
    "min_pixels": 3136,
    "max_pixels": 12845056,
    "patch_size": 14,
    "temporal_patch_size": 2,
    "merge_size": 2,
    "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_std": [0.26862954, 0.26130258, 0.27577711],
    "image_processor_type": "Qwen2VLImageProcessor",
    "processor_class": "Qwen2_5_VLProcessor",
}
INTERNVL_GENERATION_CONFIG = {
    "bos_token_id": 151643,
    "eos_token_id": 151645,
    "pad_token_id": 151643,
    "transformers_version": "4.52.0.dev0",
}
INTERNVL_IMAGE_TOKENS = {
    "start_image_token": "<img>",
    "end_image_token": "</img>",
    "context_image_token": "<IMG_CONTEXT>",
    "video_token": "<video>",
}


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _random_model(model_class: type, config: Any, seed: int, dtype: torch.dtype) -> Any:
    """The model with random weights in ``dtype``: made on the meta device, then filled (uniform
    with std 0.02, norms' weights 1) - transformers' own normal initialisation of a real-width
    embedding takes seconds. Only the saved weights matter: the folder is loaded again."""
    with torch.device("meta"):
        model = model_class._from_config(config, dtype=dtype)
    model.to_empty(device="cpu")
    model.tie_weights()  # to_empty gives each parameter its own storage, tied ones included
    generator = torch.Generator().manual_seed(seed)
    bound = 0.02 * 3**0.5
    with torch.no_grad():
        for module in model.modules():
            norm = "Norm" in type(module).__name__
            for name, param in module.named_parameters(recurse=False):
                if norm:
                    param.fill_(1.0 if name == "weight" else 0.0)
                else:
                    param.uniform_(-bound, bound, generator=generator)
    return model


def qwen2_5_vl_config_json(widths: dict[str, Any], layers: int, vision_depth: int) -> dict:
    """``config.json`` in the Qwen2.5-VL release's own form (flat text settings, legacy mrope)."""
    text, vision = widths["text"], widths["vision"]
    full = [i for i in vision["fullatt_block_indexes"] if i < vision_depth] or [vision_depth - 1]
    return {
        "architectures": ["Qwen2_5_VLForConditionalGeneration"],
        "attention_dropout": 0.0,
        "bos_token_id": 151643,
        "eos_token_id": 151645,
        "vision_start_token_id": 151652,
        "vision_end_token_id": 151653,
        "vision_token_id": 151654,
        "image_token_id": 151655,
        "video_token_id": 151656,
        "hidden_act": "silu",
        "hidden_size": text["hidden_size"],
        "initializer_range": 0.02,
        "intermediate_size": text["intermediate_size"],
        "max_position_embeddings": 128000,
        "max_window_layers": 70,
        "model_type": "qwen2_5_vl",
        "num_attention_heads": text["num_attention_heads"],
        "num_hidden_layers": layers,
        "num_key_value_heads": text["num_key_value_heads"],
        "rms_norm_eps": 1e-06,
        "rope_theta": 1000000.0,
        "sliding_window": 32768,
        "tie_word_embeddings": True,
        "torch_dtype": "bfloat16",
        "transformers_version": "4.41.2",
        "use_cache": True,
        "use_sliding_window": False,
        "vision_config": {
            "depth": vision_depth,
            "hidden_act": "silu",
            "hidden_size": vision["hidden_size"],
            "intermediate_size": vision["intermediate_size"],
            "num_heads": vision["num_heads"],
            "in_chans": 3,
            "out_hidden_size": text["hidden_size"],
            "patch_size": 14,
            "spatial_merge_size": 2,
            "spatial_patch_size": 14,
            "window_size": 112,
            "fullatt_block_indexes": full,
            "tokens_per_second": 2,
            "temporal_patch_size": 2,
        },
        "rope_scaling": {"type": "mrope", "mrope_section": list(text["mrope_section"])},
        "vocab_size": QWEN_VOCAB,
    }


def write_qwen2_5_vl_release(
    path: str | Path,
    *,
    real_width: bool = False,
    layers: int = 1,
    vision_depth: int = 2,
    seed: int = 0,
    dtype: torch.dtype = torch.bfloat16,
) -> Path:
    """A Qwen2.5-VL-3B-Instruct folder (see the module doc) at ``path``; returns it."""
    from transformers import AutoConfig, Qwen2_5_VLForConditionalGeneration

    from grit_fast.models.tokenizer import build_qwen2_5_tokenizer

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    release = qwen2_5_vl_config_json(
        QWEN2_5_VL_3B if real_width else QWEN_TINY, layers, vision_depth
    )
    _write_json(path / "config.json", release)
    config = AutoConfig.from_pretrained(path)
    model = _random_model(Qwen2_5_VLForConditionalGeneration, config, seed, dtype)
    model.save_pretrained(path)
    del model
    _write_json(path / "config.json", {**release, "torch_dtype": str(dtype).split(".")[-1]})
    _write_json(path / "generation_config.json", QWEN_GENERATION_CONFIG)
    tokenizer = build_qwen2_5_tokenizer(model_max_length=131072, padding_side="right")
    tokenizer.save_pretrained(path)
    (path / "chat_template.jinja").unlink(missing_ok=True)
    settings = json.loads((path / "tokenizer_config.json").read_text(encoding="utf-8"))
    settings["chat_template"] = QWEN_CHAT_TEMPLATE
    _write_json(path / "tokenizer_config.json", settings)
    _write_json(path / "chat_template.json", {"chat_template": QWEN_CHAT_TEMPLATE})
    _write_json(path / "preprocessor_config.json", QWEN_PREPROCESSOR_CONFIG)
    return path


def internvl3_config_json(widths: dict[str, Any], layers: int, vision_layers: int) -> dict:
    """``config.json`` of InternVL3-2B-hf (transformers' native ``internvl`` model type)."""
    text, vision = widths["text"], widths["vision"]
    size = vision["image_size"]
    return {
        "architectures": ["InternVLForConditionalGeneration"],
        "downsample_ratio": 0.5,
        "image_seq_length": (size // 28) ** 2,
        "image_token_id": 151667,
        "model_type": "internvl",
        "projector_hidden_act": "gelu",
        "text_config": {
            "architectures": ["Qwen2ForCausalLM"],
            "attention_dropout": 0.0,
            "bos_token_id": 151643,
            "eos_token_id": 151645,
            "hidden_act": "silu",
            "hidden_size": text["hidden_size"],
            "initializer_range": 0.02,
            "intermediate_size": text["intermediate_size"],
            "max_position_embeddings": 32768,
            "max_window_layers": 70,
            "model_type": "qwen2",
            "num_attention_heads": text["num_attention_heads"],
            "num_hidden_layers": layers,
            "num_key_value_heads": text["num_key_value_heads"],
            "rms_norm_eps": 1e-06,
            "rope_scaling": None,
            "rope_theta": 1000000.0,
            "sliding_window": None,
            "torch_dtype": "bfloat16",
            "use_cache": True,
            "use_sliding_window": False,
            "vocab_size": INTERNVL_VOCAB,
        },
        "torch_dtype": "bfloat16",
        "transformers_version": "4.52.0.dev0",
        "vision_config": {
            "architectures": ["InternVisionModel"],
            "attention_bias": True,
            "attention_dropout": 0.0,
            "dropout": 0.0,
            "hidden_act": "gelu",
            "hidden_dropout_prob": 0.0,
            "hidden_size": vision["hidden_size"],
            "image_size": [size, size],
            "intermediate_size": vision["intermediate_size"],
            "layer_norm_eps": 1e-06,
            "layer_scale_init_value": 0.1,
            "model_type": "internvl_vision",
            "norm_type": "layer_norm",
            "num_attention_heads": vision["num_attention_heads"],
            "num_channels": 3,
            "num_hidden_layers": vision_layers,
            "patch_size": [14, 14],
            "projection_dropout": 0.0,
            "torch_dtype": "bfloat16",
            "use_absolute_position_embeddings": True,
            "use_mask_token": False,
            "use_mean_pooling": True,
            "use_qk_norm": False,
        },
        "vision_feature_layer": -1,
        "vision_feature_select_strategy": "default",
    }


def write_internvl3_hf_release(
    path: str | Path,
    *,
    real_width: bool = False,
    layers: int = 1,
    vision_layers: int = 1,
    seed: int = 0,
    dtype: torch.dtype = torch.bfloat16,
) -> Path:
    """An InternVL3-2B-hf folder (see the module doc) at ``path``; returns it."""
    from transformers import AutoConfig, InternVLForConditionalGeneration

    from grit_fast.models.internvl import CHAT_TEMPLATE, build_internvl_tokenizer

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    widths = INTERNVL3_2B if real_width else INTERNVL_TINY
    release = internvl3_config_json(widths, layers, vision_layers)
    _write_json(path / "config.json", release)
    config = AutoConfig.from_pretrained(path)
    model = _random_model(InternVLForConditionalGeneration, config, seed, dtype)
    model.save_pretrained(path)
    del model
    _write_json(path / "config.json", {**release, "torch_dtype": str(dtype).split(".")[-1]})
    _write_json(path / "generation_config.json", INTERNVL_GENERATION_CONFIG)
    tokenizer = build_internvl_tokenizer()
    tokenizer.padding_side = "right"
    tokenizer.save_pretrained(path)
    settings = json.loads((path / "tokenizer_config.json").read_text(encoding="utf-8"))
    settings["extra_special_tokens"] = INTERNVL_IMAGE_TOKENS
    settings["processor_class"] = "InternVLProcessor"
    _write_json(path / "tokenizer_config.json", settings)
    (path / "chat_template.jinja").write_text(CHAT_TEMPLATE, encoding="utf-8")
    size = widths["vision"]["image_size"]
    _write_json(
        path / "preprocessor_config.json",
        {
            "crop_size": None,
            "crop_to_patches": False,
            "data_format": "channels_first",
            "default_to_square": True,
            "do_center_crop": None,
            "do_convert_rgb": True,
            "do_normalize": True,
            "do_rescale": True,
            "do_resize": True,
            "image_mean": [0.485, 0.456, 0.406],
            "image_processor_type": "GotOcr2ImageProcessorFast",
            "image_std": [0.229, 0.224, 0.225],
            "max_patches": 12,
            "min_patches": 1,
            "processor_class": "InternVLProcessor",
            "resample": 3,
            "rescale_factor": 0.00392156862745098,
            "size": {"height": size, "width": size},
        },
    )
    _write_json(
        path / "processor_config.json",
        {"image_seq_length": (size // 28) ** 2, "processor_class": "InternVLProcessor"},
    )
    return path
