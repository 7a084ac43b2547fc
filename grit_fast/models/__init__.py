"""Model families: one adapter per family (processor, prompt, image sizing, coordinates, tokens),
the real Qwen2.5 tokenizer built offline, and tiny random models of the real architectures.

At a glance::

    from grit_fast.models import build_tiny_qwen2_5_vl, adapter_for
    model, processor = build_tiny_qwen2_5_vl(seed=0)      # Qwen2_5_VLForConditionalGeneration
    adapter = adapter_for(model, processor)                # Qwen2_5_VLAdapter
    batch = adapter.encode(["What is left of the cup?"], [pil_image])
    adapter.to_original_pixels([[10, 20, 30, 40]], width=640, height=354)
"""

from __future__ import annotations

from typing import Any

from grit_fast.models.base import GRIT_SUFFIX, STOP_STRING, ModelAdapter, grit_user_text

FAMILIES = ("qwen2.5-vl", "internvl3")

__all__ = [
    "FAMILIES",
    "GRIT_SUFFIX",
    "STOP_STRING",
    "ModelAdapter",
    "adapter_for",
    "build_qwen2_5_tokenizer",
    "build_tiny_internvl3",
    "build_tiny_model",
    "build_tiny_qwen2_5_vl",
    "family_of",
    "grit_user_text",
    "load_model",
]


def family_of(model: Any) -> str:
    """The family of a model (or its config): ``"qwen2.5-vl"`` or ``"internvl3"``."""
    config = getattr(model, "config", model)
    model_type = getattr(config, "model_type", "")
    if model_type in ("qwen2_5_vl", "qwen2_vl"):
        return "qwen2.5-vl"
    if model_type == "internvl":
        return "internvl3"
    raise ValueError(
        f"model_type {model_type!r} is not a supported family; expected a Qwen2.5-VL "
        f"(model_type 'qwen2_5_vl') or InternVL3 -hf (model_type 'internvl') model"
    )


def adapter_for(
    model_or_family: Any, processor: Any, min_pixels: int = 3136, max_pixels: int = 256 * 28 * 28
) -> ModelAdapter:
    """The adapter of a model (or family name) around its ``processor``."""
    family = model_or_family if isinstance(model_or_family, str) else family_of(model_or_family)
    if family == "qwen2.5-vl":
        from grit_fast.models.qwen2_5_vl import Qwen2_5_VLAdapter

        return Qwen2_5_VLAdapter(processor, min_pixels, max_pixels)
    if family == "internvl3":
        from grit_fast.models.internvl import InternVLAdapter

        return InternVLAdapter(processor, min_pixels, max_pixels)
    raise ValueError(f"family {family!r} is not supported; expected one of {FAMILIES}")


def build_qwen2_5_tokenizer(**kwargs: Any) -> Any:
    """The real Qwen2.5 tokenizer, offline (see :mod:`grit_fast.models.tokenizer`)."""
    from grit_fast.models.tokenizer import build_qwen2_5_tokenizer as build

    return build(**kwargs)


def build_tiny_qwen2_5_vl(seed: int = 0, **kwargs: Any) -> tuple[Any, Any]:
    """``(model, processor)`` of a tiny random Qwen2.5-VL (see :mod:`grit_fast.models.tiny`)."""
    from grit_fast.models.tiny import build_tiny_qwen2_5_vl as build

    return build(seed=seed, **kwargs)


def build_tiny_internvl3(seed: int = 0, **kwargs: Any) -> tuple[Any, Any]:
    """``(model, processor)`` of a tiny random InternVL3 (see :mod:`grit_fast.models.tiny`)."""
    from grit_fast.models.tiny import build_tiny_internvl3 as build

    return build(seed=seed, **kwargs)


def build_tiny_model(family: str, seed: int = 0, **kwargs: Any) -> tuple[Any, Any]:
    """``(model, processor)`` of a tiny random model of ``family`` (one of :data:`FAMILIES`)."""
    if family == "qwen2.5-vl":
        return build_tiny_qwen2_5_vl(seed, **kwargs)
    if family == "internvl3":
        return build_tiny_internvl3(seed, **kwargs)
    raise ValueError(f"family {family!r} is not supported; expected one of {FAMILIES}")


def load_model(
    name: str,
    family: str = "auto",
    seed: int = 0,
    min_pixels: int = 3136,
    max_pixels: int = 256 * 28 * 28,
    dtype: Any = None,
) -> tuple[Any, Any]:
    """``(model, processor)`` from a local checkpoint directory, or ``tiny:<family>`` for a tiny one.

    Local files only (no hub access). A folder as Qwen/OpenGVLab release it or as grit_fast saves
    one; the processor is rebuilt image-only (no torchvision) from the folder's tokenizer, chat
    template and image settings (:mod:`grit_fast.models.loading`). ``dtype``: None keeps the
    folder's (the releases are bf16).
    """
    if name.startswith("tiny:"):
        return build_tiny_model(
            name.removeprefix("tiny:"), seed=seed, min_pixels=min_pixels, max_pixels=max_pixels
        )
    from pathlib import Path

    from transformers import AutoConfig

    from grit_fast.models.loading import load_checkpoint

    path = Path(name)
    if not path.is_dir():
        raise FileNotFoundError(
            f"model {name!r} is not a local checkpoint directory (use tiny:qwen2.5-vl or tiny:internvl3 "
            "for a tiny random model; nothing is downloaded)"
        )
    config = AutoConfig.from_pretrained(path, local_files_only=True)
    family = family_of(config) if family == "auto" else family
    if family not in FAMILIES:
        raise ValueError(f"family {family!r} is not supported; expected one of {FAMILIES}")
    return load_checkpoint(path, family, min_pixels, max_pixels, dtype)
