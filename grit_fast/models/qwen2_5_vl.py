"""Qwen2.5-VL: processor construction, chat template, image sizing and the coordinate convention.

Qwen2.5-VL writes boxes as absolute integer pixels of the image *as resized by its processor*
(docs/method.md §1): sides are multiples of 28 (patch 14 x merge 2), the pixel count is clamped to
[min_pixels, max_pixels] (GRIT: 3136 and 256·28·28). A box (x1, y1, x2, y2) in that frame maps to
the original image by x · W / W', y · H / H' (W', H' the resized sides).
"""

from __future__ import annotations

from typing import Any

from grit_fast.models.base import ModelAdapter

FAMILY = "qwen2.5-vl"
# The bounds of qwen-vl-utils' smart-resize (its vision_process.py defaults, 4·28² and 16384·28²),
# the first of the released GRIT code's two resizes.
FIRST_RESIZE_PIXELS = (4 * 28 * 28, 16384 * 28 * 28)

# Qwen2.5-VL's chat layout (the hub template is not available offline): default system prompt, then
# each turn as <|im_start|>role\n...<|im_end|>\n, an image as <|vision_start|><|image_pad|><|vision_end|>.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _processor_class() -> type:
    from transformers import Qwen2_5_VLProcessor

    class Qwen2_5_VLImageProcessor(Qwen2_5_VLProcessor):
        """Qwen2.5-VL's processor without the video processor (which needs torchvision)."""

        def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
            super().__init__(
                image_processor=image_processor,
                tokenizer=tokenizer,
                video_processor=None,
                chat_template=chat_template,
                **kwargs,
            )

    return Qwen2_5_VLImageProcessor


def build_processor(
    tokenizer: Any = None, min_pixels: int = 3136, max_pixels: int = 256 * 28 * 28
) -> Any:
    """An image-only Qwen2.5-VL processor with the real vocabulary and the offline chat template.

    Returns a ``Qwen2_5_VLProcessor`` subclass: ``processor(text=..., images=..., padding=True,
    return_tensors="pt")`` gives ``input_ids``, ``attention_mask``, ``pixel_values``,
    ``image_grid_thw`` and ``mm_token_type_ids`` (which the model needs for its 3-D M-RoPE).
    """
    from transformers import Qwen2VLImageProcessorPil

    from grit_fast.models.tokenizer import build_qwen2_5_tokenizer

    tokenizer = build_qwen2_5_tokenizer() if tokenizer is None else tokenizer
    tokenizer.padding_side = "left"
    image_processor = Qwen2VLImageProcessorPil(min_pixels=min_pixels, max_pixels=max_pixels)
    return _processor_class()(
        image_processor=image_processor, tokenizer=tokenizer, chat_template=CHAT_TEMPLATE
    )


class Qwen2_5_VLAdapter(ModelAdapter):
    """Qwen2.5-VL (``Qwen2_5_VLForConditionalGeneration``): boxes in resized-image pixels.

    ``min_pixels``/``max_pixels`` default to the processor's own resize bounds. ``double_resize``:
    as the released GRIT code, each image is first resized to qwen-vl-utils' smart-resize size
    (bounds :data:`FIRST_RESIZE_PIXELS`, PIL's default bicubic filter) and then again by the
    processor; for 22 % of 200-1,200 px sizes the model's frame ends one 28-px patch off a
    single resize. :meth:`resized_size` (and so the box mapping) follows the same path."""

    family = FAMILY
    coordinate_convention = "qwen2.5-vl"
    model_types = ("qwen2_5_vl", "qwen2_vl")

    def __init__(
        self,
        processor: Any,
        min_pixels: int | None = None,
        max_pixels: int | None = None,
        **options: Any,
    ):
        size = getattr(getattr(processor, "image_processor", None), "size", None)
        if min_pixels is None:
            min_pixels = getattr(size, "shortest_edge", None)
        if max_pixels is None:
            max_pixels = getattr(size, "longest_edge", None)
        super().__init__(processor, min_pixels, max_pixels, **options)

    @classmethod
    def load(
        cls, path: Any, min_pixels: int, max_pixels: int, dtype: Any = None
    ) -> tuple[Any, Any]:
        """The model, and an image-only processor (no torchvision) around the folder's tokenizer
        and chat template (see :func:`grit_fast.models.loading.load_qwen2_5_vl`)."""
        from grit_fast.models.loading import load_qwen2_5_vl

        return load_qwen2_5_vl(path, min_pixels, max_pixels, dtype)

    @classmethod
    def build_tiny(cls, seed: int = 0, **kwargs: Any) -> tuple[Any, Any]:
        from grit_fast.models.tiny import build_tiny_qwen2_5_vl

        return build_tiny_qwen2_5_vl(seed=seed, **kwargs)

    def first_resize(self, width: int, height: int) -> tuple[int, int]:
        """(W, H) after the first of ``double_resize``'s two resizes (unchanged without it)."""
        from grit_fast.rewards.coords import qwen_resized_size

        if not self.double_resize:
            return int(width), int(height)
        return qwen_resized_size(int(width), int(height), *FIRST_RESIZE_PIXELS)

    def resized_size(self, width: int, height: int) -> tuple[int, int]:
        """(W', H') of an original W x H image after the processor's resize (after both resizes
        with ``double_resize``)."""
        from grit_fast.rewards.coords import qwen_resized_size

        w, h = self.first_resize(width, height)
        return qwen_resized_size(w, h, self.min_pixels, self.max_pixels)

    def model_size(self, width: int, height: int) -> tuple[int, int] | None:
        return self.resized_size(width, height)

    def image_inputs(self, images: list[Any]) -> dict[str, Any]:
        if self.double_resize:
            resized = []
            for image in images:
                size = self.first_resize(*image.size)
                resized.append(image if size == image.size else image.resize(size))
            images = resized
        return {"images": images}
