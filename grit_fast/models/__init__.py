"""Model families: one adapter class per family (processor, prompt, image sizing, coordinates,
tokens, loading), the real Qwen2.5 tokenizer built offline, and tiny random models of the real
architectures.

At a glance::

    from grit_fast.models import build_tiny_qwen2_5_vl, adapter_for
    model, processor = build_tiny_qwen2_5_vl(seed=0)      # Qwen2_5_VLForConditionalGeneration
    adapter = adapter_for(model, processor)                # Qwen2_5_VLAdapter
    batch = adapter.encode(["What is left of the cup?"], [pil_image])
    adapter.to_original_pixels([[10, 20, 30, 40]], width=640, height=354)

Adding a family is one :class:`ModelAdapter` subclass (its ``family`` name, the ``model_types`` of
its checkpoints' ``config.json``, ``load`` and ``build_tiny``, and what differs in prompts, images
or coordinates) passed to :func:`register_family`.
"""

from __future__ import annotations

from typing import Any

from grit_fast.models.base import GRIT_SUFFIX, STOP_STRING, ModelAdapter, grit_user_text
from grit_fast.models.internvl import InternVLAdapter
from grit_fast.models.qwen2_5_vl import Qwen2_5_VLAdapter

__all__ = [
    "ADAPTERS",
    "FAMILIES",
    "GRIT_SUFFIX",
    "STOP_STRING",
    "ModelAdapter",
    "adapter_class",
    "adapter_for",
    "build_qwen2_5_tokenizer",
    "build_tiny_internvl3",
    "build_tiny_model",
    "build_tiny_qwen2_5_vl",
    "family_of",
    "grit_user_text",
    "load_model",
    "register_family",
]

# family name -> adapter class; register_family adds one.
ADAPTERS: dict[str, type[ModelAdapter]] = {}
FAMILIES: tuple[str, ...] = ()


def register_family(adapter: type[ModelAdapter]) -> type[ModelAdapter]:
    """Make ``adapter`` (a :class:`ModelAdapter` subclass) the adapter of its ``family``."""
    global FAMILIES
    if not (isinstance(adapter, type) and issubclass(adapter, ModelAdapter)):
        raise TypeError(f"register_family takes a ModelAdapter subclass, got {adapter!r}")
    if not adapter.model_types:
        raise ValueError(f"{adapter.__name__}.model_types names no config model_type")
    ADAPTERS[adapter.family] = adapter
    FAMILIES = tuple(ADAPTERS)
    return adapter


register_family(Qwen2_5_VLAdapter)
register_family(InternVLAdapter)


def adapter_class(family: str) -> type[ModelAdapter]:
    """The adapter class of a family name (one of :data:`FAMILIES`)."""
    if family not in ADAPTERS:
        raise ValueError(f"family {family!r} is not supported; expected one of {FAMILIES}")
    return ADAPTERS[family]


def family_of(model: Any) -> str:
    """The family of a model (or its config), from the config's ``model_type``."""
    config = getattr(model, "config", model)
    model_type = getattr(config, "model_type", "")
    for family, adapter in ADAPTERS.items():
        if model_type in adapter.model_types:
            return family
    known = {f: a.model_types for f, a in ADAPTERS.items()}
    raise ValueError(
        f"model_type {model_type!r} is not a supported family; expected one of {known} "
        "(register_family adds one)"
    )


def adapter_for(
    model_or_family: Any,
    processor: Any,
    min_pixels: int | None = None,
    max_pixels: int | None = None,
    **options: Any,
) -> ModelAdapter:
    """The adapter of a model (or family name) around its ``processor``.

    ``min_pixels``/``max_pixels`` (Qwen2.5-VL's resize bounds): default the processor's own.
    ``options``: ``generation_header``, ``max_tiles``, ``double_resize`` (see
    :class:`ModelAdapter`)."""
    family = model_or_family if isinstance(model_or_family, str) else family_of(model_or_family)
    return adapter_class(family)(processor, min_pixels, max_pixels, **options)


def build_qwen2_5_tokenizer(**kwargs: Any) -> Any:
    """The real Qwen2.5 tokenizer, offline (see :mod:`grit_fast.models.tokenizer`)."""
    from grit_fast.models.tokenizer import build_qwen2_5_tokenizer as build

    return build(**kwargs)


def build_tiny_qwen2_5_vl(seed: int = 0, **kwargs: Any) -> tuple[Any, Any]:
    """``(model, processor)`` of a tiny random Qwen2.5-VL (see :mod:`grit_fast.models.tiny`)."""
    return Qwen2_5_VLAdapter.build_tiny(seed=seed, **kwargs)


def build_tiny_internvl3(seed: int = 0, **kwargs: Any) -> tuple[Any, Any]:
    """``(model, processor)`` of a tiny random InternVL3 (see :mod:`grit_fast.models.tiny`)."""
    return InternVLAdapter.build_tiny(seed=seed, **kwargs)


def build_tiny_model(family: str, seed: int = 0, **kwargs: Any) -> tuple[Any, Any]:
    """``(model, processor)`` of a tiny random model of ``family`` (one of :data:`FAMILIES`)."""
    return adapter_class(family).build_tiny(seed=seed, **kwargs)


def load_model(
    name: str,
    family: str = "auto",
    seed: int = 0,
    min_pixels: int = 3136,
    max_pixels: int = 256 * 28 * 28,
    dtype: Any = None,
) -> tuple[Any, Any]:
    """``(model, processor)`` from a local checkpoint directory, or ``tiny:<family>`` for a tiny one.

    Local files only (no hub access); the family's adapter class loads it (``family="auto"``:
    from ``config.json``'s ``model_type``): a folder as Qwen/OpenGVLab release it or as grit_fast
    saves one, with an image-only processor rebuilt from the folder's own files
    (:mod:`grit_fast.models.loading`). ``dtype``: None keeps the folder's (the releases are bf16).
    """
    if name.startswith("tiny:"):
        return build_tiny_model(
            name.removeprefix("tiny:"), seed=seed, min_pixels=min_pixels, max_pixels=max_pixels
        )
    from pathlib import Path

    from transformers import AutoConfig

    path = Path(name)
    if not path.is_dir():
        raise FileNotFoundError(
            f"model {name!r} is not a local checkpoint directory (use tiny:qwen2.5-vl or tiny:internvl3 "
            "for a tiny random model; nothing is downloaded)"
        )
    config = AutoConfig.from_pretrained(path, local_files_only=True)
    family = family_of(config) if family == "auto" else family
    load = adapter_class(family).load
    # dtype only when asked for: a family's load may predate the keyword
    return (
        load(path, min_pixels, max_pixels)
        if dtype is None
        else load(path, min_pixels, max_pixels, dtype=dtype)
    )
