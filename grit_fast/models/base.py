"""What every model family's adapter provides to the trainer, the demo and evaluation.

An adapter owns the processor, the chat template (the prompt of docs/method.md §1: the image, then
``"\\nQuestion: " + question + SUFFIX`` in the user turn, the model's default system prompt), image
sizing, the coordinate convention of the boxes the model writes, and the special token ids.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

# GRIT's prompt suffix, byte for byte (leading space, final newline).
GRIT_SUFFIX = (
    " First, think between <think> and </think> while output necessary coordinates needed to answer"
    " the question in JSON with key 'bbox_2d'. Then, based on the thinking contents and coordinates,"
    " rethink between <rethink> </rethink> and then answer the question after <answer>.\n"
)
STOP_STRING = "</answer>"
# GRIT's image resize bounds for Qwen2.5-VL (docs/method.md §1).
DEFAULT_MIN_PIXELS = 3136
DEFAULT_MAX_PIXELS = 256 * 28 * 28


def grit_user_text(question: str) -> str:
    """The text of GRIT's user turn after the image: ``"\\nQuestion: " + question + GRIT_SUFFIX``."""
    return "\nQuestion: " + question + GRIT_SUFFIX


# The keyword options of every adapter (and the keys of grit_adapter.json).
ADAPTER_OPTIONS = ("generation_header", "max_tiles", "double_resize")


class ModelAdapter:
    """Base class: a model family's processor and conventions. Subclasses set the class attributes.

    ``coordinate_convention``: ``"qwen2.5-vl"`` (absolute pixels of the resized image) or
    ``"internvl"`` (0-1000 normalised). :meth:`to_original_pixels` maps boxes the model writes to
    pixels of the original image, which is what gt boxes and grounding IoU use.

    Options (keyword-only; a family ignores those that are not about it): ``generation_header``
    (default true) ends the prompt with the assistant header; false leaves it to the model, as the
    released GRIT code does for InternVL. ``max_tiles`` (InternVL; default None: the processor's
    own, 12): the most tiles per image. ``double_resize`` (Qwen2.5-VL; default false): the
    released code's two resizes (:class:`~grit_fast.models.qwen2_5_vl.Qwen2_5_VLAdapter`).
    """

    family = "base"
    coordinate_convention = "pixels"
    # config.json model_type values of this family's checkpoints (grit_fast.models.family_of)
    model_types: tuple[str, ...] = ()

    def __init__(
        self,
        processor: Any,
        min_pixels: int | None = None,
        max_pixels: int | None = None,
        *,
        generation_header: bool = True,
        max_tiles: int | None = None,
        double_resize: bool = False,
    ):
        self.processor = processor
        self.tokenizer = getattr(processor, "tokenizer", processor)
        self.min_pixels = int(DEFAULT_MIN_PIXELS if min_pixels is None else min_pixels)
        self.max_pixels = int(DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels)
        self.generation_header = bool(generation_header)
        if max_tiles is not None and (isinstance(max_tiles, bool) or int(max_tiles) < 1):
            raise ValueError(f"max_tiles must be a positive int or None, got {max_tiles!r}")
        self.max_tiles = None if max_tiles is None else int(max_tiles)
        self.double_resize = bool(double_resize)

    @property
    def options(self) -> dict[str, Any]:
        """The keyword options this adapter was built with (what ``grit_adapter.json`` records)."""
        return {name: getattr(self, name) for name in ADAPTER_OPTIONS}

    # ----- models of the family
    @classmethod
    def load(
        cls, path: Any, min_pixels: int, max_pixels: int, dtype: Any = None
    ) -> tuple[Any, Any]:
        """``(model, processor)`` from a local checkpoint folder of this family (``dtype``: None
        keeps the folder's)."""
        raise NotImplementedError(f"{cls.__name__} does not load checkpoints")

    @classmethod
    def build_tiny(cls, seed: int = 0, **kwargs: Any) -> tuple[Any, Any]:
        """``(model, processor)`` of a tiny random model of this family's architecture."""
        raise NotImplementedError(f"{cls.__name__} has no tiny model")

    @staticmethod
    def backbone(model: Any) -> Any:
        """The module that runs vision encoder + decoder and returns ``last_hidden_state`` (the
        model without its output layer)."""
        return model.model

    # ----- prompts
    def messages(self, question: str) -> list[dict[str, Any]]:
        """One chat turn: the image, then GRIT's question text (no custom system prompt)."""
        return [
            {
                "role": "user",
                "content": [{"type": "image"}, {"type": "text", "text": grit_user_text(question)}],
            }
        ]

    def prompt_text(self, question: str) -> str:
        """The chat-templated prompt string, ending with the assistant header (generation prompt)
        unless ``generation_header`` is false."""
        return self.processor.apply_chat_template(
            self.messages(question), tokenize=False, add_generation_prompt=self.generation_header
        )

    def image_inputs(self, images: list[Any]) -> dict[str, Any]:
        return {"images": images}

    def encode(self, questions: Sequence[str], images: Sequence[Any]) -> Any:
        """Processor batch (left padded, ``return_tensors="pt"``) for prompts with one image each."""
        if len(questions) != len(images):
            raise ValueError(f"{len(questions)} questions but {len(images)} images")
        texts = [self.prompt_text(q) for q in questions]
        self.tokenizer.padding_side = "left"
        return self.processor(
            text=texts, **self.image_inputs(list(images)), padding=True, return_tensors="pt"
        )

    # ----- tokens
    @property
    def pad_token_id(self) -> int:
        return int(self.tokenizer.pad_token_id)

    @property
    def eos_token_ids(self) -> list[int]:
        """Ids that end a completion: the chat turn end and the base model's end of text."""
        ids = {self.tokenizer.convert_tokens_to_ids(t) for t in ("<|im_end|>", "<|endoftext|>")}
        if self.tokenizer.eos_token_id is not None:
            ids.add(self.tokenizer.eos_token_id)
        return sorted(i for i in ids if isinstance(i, int) and i >= 0)

    @property
    def eos_token_id(self) -> int:
        """The end token appended to a training completion (docs/method.md §3): the tokenizer's
        EOS (``<|im_end|>`` for Qwen2.5-VL and InternVL3), else ``<|im_end|>``."""
        eos = self.tokenizer.eos_token_id
        if eos is None:
            eos = self.tokenizer.convert_tokens_to_ids("<|im_end|>")
        return int(eos)

    @functools.cached_property
    def stop_closers(self) -> frozenset[int]:
        """Ids whose token text holds the last character of :data:`STOP_STRING`: the only tokens that
        can complete it. Byte-level BPE (Qwen2.5, InternVL3) spells printable ASCII as itself."""
        last = STOP_STRING[-1]
        tokens = self.tokenizer.convert_ids_to_tokens(list(range(len(self.tokenizer))))
        return frozenset(i for i, t in enumerate(tokens) if t is not None and last in t)

    # ----- coordinates
    def model_size(self, width: int, height: int) -> tuple[int, int] | None:
        """(W', H') of the frame the model sees for a W x H image, where its boxes depend on it."""
        return None

    def to_original_pixels(self, boxes: Any, width: int, height: int) -> Any:
        """Boxes (K, 4) the model wrote, in its convention -> float64 (K, 4) original-image pixels."""
        from grit_fast.rewards.coords import to_image_pixels

        return to_image_pixels(
            boxes, self.coordinate_convention, (width, height), self.model_size(width, height)
        )
