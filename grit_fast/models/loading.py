"""Loading a checkpoint folder: as Qwen and OpenGVLab release them, or as grit_fast saves one.

The releases differ from what a current transformers writes: Qwen2.5-VL ships its chat template in
``chat_template.json`` (and in ``tokenizer_config.json``), InternVL3 ``-hf`` names its image tokens in
the tokenizer's ``extra_special_tokens`` and its tiles in ``preprocessor_config.json``, and both
processors would build a video processor that needs torchvision. So the processors are rebuilt
image-only from the folder's own files (tokenizer, chat template, tile size, image tokens per tile);
the weights load in the folder's dtype unless ``dtype`` says otherwise (the trainer keeps fp32
masters of whatever it loads, :mod:`grit_fast.train.precision`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from grit_fast.models.base import ADAPTER_OPTIONS

__all__ = [
    "ADAPTER_FILE",
    "chat_template_of",
    "load_internvl3",
    "load_qwen2_5_vl",
    "read_adapter_options",
    "write_adapter_options",
]


def chat_template_of(path: Path, tokenizer: Any, default: str) -> str:
    """The folder's chat template: ``chat_template.jinja`` (what transformers 5 writes), else
    ``chat_template.json`` (what the releases ship), else the tokenizer's own, else ``default``."""
    jinja = path / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8")
    packed = path / "chat_template.json"
    if packed.is_file():
        try:
            template = json.loads(packed.read_text(encoding="utf-8"))["chat_template"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(
                f"{packed}: expected a JSON object with a 'chat_template' string ({exc})"
            ) from None
        if not isinstance(template, str):
            raise ValueError(f"{packed}: 'chat_template' must be a string")
        return template
    return getattr(tokenizer, "chat_template", None) or default


def _tokenizer(path: Path) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    tokenizer.padding_side = "left"  # batched generation
    return tokenizer


def load_qwen2_5_vl(path: Any, min_pixels: int, max_pixels: int, dtype: Any) -> tuple[Any, Any]:
    """Qwen2.5-VL: the model, and an image-only processor around the folder's tokenizer and chat
    template (GRIT's pixel bounds)."""
    from transformers import Qwen2_5_VLForConditionalGeneration

    from grit_fast.models.qwen2_5_vl import CHAT_TEMPLATE, build_processor

    path = Path(path)
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(
        path, local_files_only=True, dtype=dtype
    )
    tokenizer = _tokenizer(path)
    # GRIT sizes images itself (min/max pixels); the processor's other settings are Qwen's own.
    processor = build_processor(tokenizer, min_pixels, max_pixels)
    processor.chat_template = chat_template_of(path, tokenizer, CHAT_TEMPLATE)
    return model, processor


def _internvl_image_tokens(tokenizer: Any, path: Path) -> None:
    """The attributes InternVLProcessor reads (``start_image_token`` …, and their ids): from the
    tokenizer's ``extra_special_tokens`` when the folder names them, else InternVL's own tokens."""
    names = {
        "start_image_token": "<img>",
        "end_image_token": "</img>",
        "context_image_token": "<IMG_CONTEXT>",
        "video_token": "<video>",
    }
    for name, default in names.items():
        token = getattr(tokenizer, name, None) or default
        token_id = tokenizer.convert_tokens_to_ids(token)
        if token_id is None or token_id == tokenizer.unk_token_id or token_id < 0:
            raise ValueError(
                f"{path}: the tokenizer has no {token!r} token ({name}); an InternVL3 -hf "
                "checkpoint's tokenizer carries InternVL's image tokens"
            )
        setattr(tokenizer, name, token)
        setattr(tokenizer, f"{name}_id", token_id)


def load_internvl3(path: Any, dtype: Any) -> tuple[Any, Any]:
    """InternVL3 ``-hf``: the model, and an image-only processor with the folder's tokenizer (and
    its image tokens), tile size, image tokens per tile and chat template."""
    from transformers import GotOcr2ImageProcessorPil, InternVLForConditionalGeneration

    from grit_fast.models.internvl import CHAT_TEMPLATE, _processor_class

    path = Path(path)
    model = InternVLForConditionalGeneration.from_pretrained(
        path, local_files_only=True, dtype=dtype
    )
    tokenizer = _tokenizer(path)
    _internvl_image_tokens(tokenizer, path)
    image_processor = GotOcr2ImageProcessorPil.from_pretrained(path, local_files_only=True)
    settings_file = path / "processor_config.json"
    settings = json.loads(settings_file.read_text("utf-8")) if settings_file.is_file() else {}
    seq_length = settings.get("image_seq_length", model.config.image_seq_length)
    processor = _processor_class()(
        image_processor=image_processor,
        tokenizer=tokenizer,
        image_seq_length=int(seq_length),
        chat_template=chat_template_of(path, tokenizer, CHAT_TEMPLATE),
    )
    return model, processor


# The adapter options a run used (prompt header, InternVL tiles, Qwen's double resize), written
# beside the weights of every checkpoint and export so that evaluating the folder prompts and sizes
# images as training did.
ADAPTER_FILE = "grit_adapter.json"


def write_adapter_options(folder: str | os.PathLike, options: dict[str, Any]) -> None:
    """Record ``options`` (an adapter's :attr:`~grit_fast.models.ModelAdapter.options`) in ``folder``."""
    (Path(folder) / ADAPTER_FILE).write_text(json.dumps(options, indent=2) + "\n", encoding="utf-8")


def read_adapter_options(folder: str | os.PathLike) -> dict[str, Any]:
    """The adapter options ``folder`` records; ``{}`` (the defaults) when it records none."""
    path = Path(folder) / ADAPTER_FILE
    if not path.is_file():
        return {}
    try:
        options = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(options, dict) or set(options) - set(ADAPTER_OPTIONS):
        raise ValueError(f"{path}: expected an object with keys among {list(ADAPTER_OPTIONS)}")
    return options
