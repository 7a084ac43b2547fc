"""InternVL3 (transformers' native ``-hf`` classes): processor, chat template, 0-1000 coordinates.

InternVL3 writes boxes as ``[x1, y1, x2, y2]`` normalised to 0-1000 of the image (docs/method.md §1), so
the mapping to original pixels is x·W/1000, y·H/1000 whatever the tiling. Its language model is
Qwen2.5 with the same vocabulary plus InternVL's image tokens (``<img>`` 151665, ``</img>`` 151666,
``<IMG_CONTEXT>`` 151667, then ``<quad>``, ``</quad>``, ``<ref>``, ``</ref>``, ``<box>``, ``</box>``,
and ``<video>``, which the processor needs to tell videos from images).
The processor expands each image placeholder into ``<img>`` + ``<IMG_CONTEXT>`` x image_seq_length
per tile + ``</img>``.

The released GRIT run (docs/method.md §7) tiles each image into at most 2 tiles plus a thumbnail
(adapter option ``max_tiles``), re-encodes training images as JPEG of a random quality
(:func:`jpeg_augment`, as InternVL's training transform) and lets the model write the assistant
header (``generation_header=False``); its system prompt is InternVL's ``internvl2_5`` one, which
:data:`SYSTEM_PROMPT` is.
"""

from __future__ import annotations

from typing import Any

from grit_fast.models.base import ModelAdapter

INTERNVL_ADDED_TOKENS = (
    "<img>",
    "</img>",
    "<IMG_CONTEXT>",
    "<quad>",
    "</quad>",
    "<ref>",
    "</ref>",
    "<box>",
    "</box>",
    "<video>",
)
FIRST_INTERNVL_ID = 151665
IMAGE_TOKEN_ID = 151667
# The system message of InternVL's `internvl2_5` conversation template, which InternVL3 uses.
SYSTEM_PROMPT = "你是书生·万象，英文名是InternVL，是由上海人工智能实验室、清华大学及多家合作单位联合开发的多模态大语言模型。"
# The JPEG qualities InternVL's training transform draws from (uniformly, one per image).
JPEG_QUALITIES = range(75, 101)

# InternVL3's chat layout (ChatML with its default system prompt); an image is <IMG_CONTEXT>\n.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\n" + SYSTEM_PROMPT + "<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}<IMG_CONTEXT>\n"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_internvl_tokenizer() -> Any:
    """The real Qwen2.5 tokenizer plus InternVL3's image tokens at their released ids."""
    from tokenizers import AddedToken

    from grit_fast.models.tokenizer import build_qwen2_5_tokenizer

    tokenizer = build_qwen2_5_tokenizer()
    tokenizer.add_tokens(
        [AddedToken(t, special=True, normalized=False) for t in INTERNVL_ADDED_TOKENS]
    )
    for offset, token in enumerate(INTERNVL_ADDED_TOKENS):
        if tokenizer.convert_tokens_to_ids(token) != FIRST_INTERNVL_ID + offset:
            raise RuntimeError(
                f"InternVL token {token} did not get id {FIRST_INTERNVL_ID + offset}"
            )
    # What InternVLProcessor reads from the tokenizer (the -hf tokenizer_config's extra tokens).
    names = {
        "start_image_token": "<img>",
        "end_image_token": "</img>",
        "context_image_token": "<IMG_CONTEXT>",
        "video_token": "<video>",
    }
    for name, token in names.items():
        setattr(tokenizer, name, token)
        setattr(tokenizer, f"{name}_id", tokenizer.convert_tokens_to_ids(token))
    return tokenizer


def _processor_class() -> type:
    from transformers import InternVLProcessor

    class InternVLImageProcessor(InternVLProcessor):
        """InternVL's processor without the video processor (which needs torchvision)."""

        def __init__(
            self,
            image_processor=None,
            tokenizer=None,
            image_seq_length=256,
            chat_template=None,
            **kwargs,
        ):
            super().__init__(
                image_processor=image_processor,
                tokenizer=tokenizer,
                video_processor=None,
                image_seq_length=image_seq_length,
                chat_template=chat_template,
                **kwargs,
            )

    return InternVLImageProcessor


def build_processor(
    image_size: int = 448, image_seq_length: int = 256, crop_to_patches: bool = False
) -> Any:
    """An image-only InternVL3 processor with the real vocabulary and the offline chat template.

    Images are resized to ``image_size`` squares (``crop_to_patches=True`` tiles them as the released
    processor does); each tile costs ``image_seq_length`` context tokens.
    """
    from transformers import GotOcr2ImageProcessorPil

    image_processor = GotOcr2ImageProcessorPil(
        size={"height": image_size, "width": image_size}, crop_to_patches=crop_to_patches
    )
    tokenizer = build_internvl_tokenizer()
    tokenizer.padding_side = "left"
    return _processor_class()(
        image_processor=image_processor,
        tokenizer=tokenizer,
        image_seq_length=image_seq_length,
        chat_template=CHAT_TEMPLATE,
    )


class InternVLAdapter(ModelAdapter):
    """InternVL3 (``InternVLForConditionalGeneration``): boxes normalised to 0-1000."""

    family = "internvl3"
    coordinate_convention = "internvl"
    model_types = ("internvl",)

    @classmethod
    def load(
        cls, path: Any, min_pixels: int, max_pixels: int, dtype: Any = None
    ) -> tuple[Any, Any]:
        """The ``-hf`` model and an image-only processor rebuilt from the folder's own files
        (see :func:`grit_fast.models.loading.load_internvl3`; the pixel bounds are unused)."""
        from grit_fast.models.loading import load_internvl3

        return load_internvl3(path, dtype)

    @classmethod
    def build_tiny(cls, seed: int = 0, **kwargs: Any) -> tuple[Any, Any]:
        from grit_fast.models.tiny import build_tiny_internvl3

        return build_tiny_internvl3(seed=seed, **kwargs)

    def image_inputs(self, images: list[Any]) -> dict[str, Any]:
        # InternVLProcessor tiles by default; follow the image processor's own setting instead.
        crop = getattr(self.processor.image_processor, "crop_to_patches", True)
        inputs = {"images": images, "crop_to_patches": crop}
        if self.max_tiles is not None:
            inputs["max_patches"] = self.max_tiles
        return inputs


def jpeg_augment(image: Any, seed: int) -> Any:
    """``image`` re-encoded as JPEG at a quality drawn from :data:`JPEG_QUALITIES` by ``seed``
    (InternVL's training-time augmentation, which the released GRIT run applies; one draw per
    image, before tiling). Returns an RGB ``PIL.Image`` of the same size."""
    import io
    import random

    from PIL import Image

    quality = random.Random(seed).choice(JPEG_QUALITIES)
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return decoded.convert("RGB")
