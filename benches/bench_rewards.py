"""Reward scoring throughput: 10,000 realistic completions, preset ``official``, the rule judge.

    python -m pytest benches/bench_rewards.py --benchmark-group-by=group \
        --benchmark-columns=min,median,mean,ops

Groups, each with the reference (Python) and the compiled core on 1 and 2 threads, judge included
as in training: ``score-official-10k-<form>`` for each form the token ids come in: ``array``, a
padded (N, 512) int64 numpy array cut at the Qwen pad id; ``tensor``, the same as a torch tensor;
``lists``, N Python lists of int as TRL hands them to reward functions (each row the generated ids
up to and including the first pad, which stands for the EOS, mean ~121 ids); and ``parse-10k``.
The completions are generated deterministically: 100-1,500 characters, 60% well-formed traces with
boxes in several surface forms, 25% truncated at a random point, 15% garbled (repeated phrases,
duplicated or missing tags, stray digits).
"""

from __future__ import annotations

import numpy as np
import pytest

from grit_fast import _dispatch
from grit_fast.rewards.score import RewardScorer
from grit_fast.rewards.trace import parse_traces

N = 10_000
PAD = 151643
OBJECTS = ["cup", "chair", "dog", "person", "tv", "car", "umbrella", "plate", "bench", "bottle"]
WORDS = [
    "the",
    "a",
    "of",
    "on",
    "left",
    "right",
    "near",
    "behind",
    "above",
    "below",
    "is",
    "are",
    "there",
    "I",
    "see",
    "it",
    "looks",
    "like",
    "which",
    "region",
    "image",
    "object",
    "between",
    "next",
    "to",
    "so",
    "first",
    "then",
    "count",
    "each",
    "one",
    "visible",
]
DATASETS = ["vsr", "tallyqa", "gqa", "ovdeval"]


def _box(rng: np.random.Generator) -> str:
    x1, y1 = rng.integers(0, 600, size=2)
    x2, y2 = x1 + rng.integers(5, 300), y1 + rng.integers(5, 300)
    form = rng.integers(0, 4)
    label = OBJECTS[rng.integers(len(OBJECTS))]
    if form == 0:
        return f'{{"bbox_2d": [{x1}, {y1}, {x2}, {y2}], "label": "{label}"}}'
    if form == 1:
        return f"[{x1}, {y1}, {x2}, {y2}]"
    if form == 2:
        return f"({x1},{y1},{x2},{y2})"
    return f"bbox_2d_{rng.integers(1, 5)}: {x1}, {y1}, {x2}, {y2}"


def _prose(rng: np.random.Generator, n_words: int) -> str:
    return " ".join(WORDS[i] for i in rng.integers(0, len(WORDS), size=n_words))


def _sample(rng: np.random.Generator) -> tuple[str, str, str]:
    dataset = DATASETS[rng.integers(len(DATASETS))]
    if dataset == "tallyqa":
        answer = str(rng.integers(0, 5))
    elif dataset == "vsr":
        answer = ["yes", "no"][rng.integers(2)]
    else:
        answer = OBJECTS[rng.integers(len(OBJECTS))]
    pieces = [_prose(rng, int(rng.integers(3, 25)))]
    for _ in range(rng.integers(0, 6)):
        pieces += [_box(rng), _prose(rng, int(rng.integers(2, 30)))]
    think = " ".join(pieces)
    said = answer if rng.random() < 0.6 else ["yes", "no", "3", "two", "the cup"][rng.integers(5)]
    text = (
        f"<think> {think} </think>\n<rethink> {_prose(rng, int(rng.integers(5, 40)))} "
        f"</rethink>\n<answer> {said} </answer>"
    )
    kind = rng.random()
    if kind < 0.25:  # truncated generation
        text = text[: int(rng.integers(50, len(text) + 1))]
    elif kind < 0.40:  # garbled
        phrase = _prose(rng, 8) + " "
        text = text.replace("</rethink>", phrase * int(rng.integers(2, 12)), 1)
        if rng.random() < 0.5:
            text += " <answer> " + said
        if rng.random() < 0.5:
            text = text.replace("<think>", "", 1) + " 1,2,3,4,5,6,7,8 "
    # Keep within 100-1,500 characters.
    while len(text) < 100:
        text += " " + _prose(rng, 10)
    return text[:1500], answer, dataset


def realistic_batch(n: int = N, seed: int = 0):
    """(completions, answers, datasets, completion_ids (n, 512) int64 padded with PAD)."""
    rng = np.random.default_rng(seed)
    samples = [_sample(rng) for _ in range(n)]
    completions, answers, datasets = (list(x) for x in zip(*samples, strict=True))
    ids = np.full((n, 512), PAD, dtype=np.int64)
    for i, text in enumerate(completions):
        length = min(512, len(text) // 4)
        base = rng.integers(0, 151000, size=8)
        row = rng.integers(0, 151000, size=length)
        if i % 7 == 0:  # a looping generation
            row = np.resize(base, length)
        ids[i, :length] = row
    return completions, answers, datasets, ids


def as_form(ids: np.ndarray, form: str):
    """The padded ids as ``form``: the array, a torch tensor, or TRL's lists (ids to the first pad)."""
    if form == "array":
        return ids
    if form == "tensor":
        import torch

        return torch.from_numpy(ids)
    ends = np.minimum((ids != PAD).sum(axis=1) + 1, ids.shape[1])
    return [row[:end].tolist() for row, end in zip(ids, ends, strict=True)]


FORMS = ["array", "tensor", "lists"]


@pytest.fixture(scope="module")
def batch():
    return realistic_batch()


@pytest.fixture(scope="module", params=FORMS)
def form_batch(request, batch):
    completions, answers, datasets, ids = batch
    return request.param, (completions, answers, datasets, as_form(ids, request.param))


def _score(batch, backend: str, threads: int):
    completions, answers, datasets, ids = batch
    scorer = RewardScorer(num_threads=threads)
    with _dispatch.backend(backend):
        return scorer.score(completions, answers, datasets, completion_ids=ids)


def _info(benchmark, machine, batch, backend, threads, form="array"):
    lengths = [len(t) for t in batch[0]]
    ids = batch[3]
    benchmark.extra_info.update(
        machine,
        backend=backend,
        threads=threads,
        completions=len(lengths),
        chars_mean=float(np.mean(lengths)),
        ids_form=form,
        ids_shape=list(ids.shape) if hasattr(ids, "shape") else [len(ids), "ragged"],
        ids_total=int(sum(map(len, ids))),
    )


def test_outputs_agree(form_batch):
    """Correctness once before timing: compiled == reference, bit for bit, for each id form."""
    if _dispatch.compiled_module() is None:
        pytest.skip("grit_fast._C is not built")
    _, batch = form_batch
    ref, fast = _score(batch, "reference", 1), _score(batch, "fast", 2)
    for name in ref.components:
        np.testing.assert_array_equal(fast.components[name], ref.components[name], err_msg=name)
    np.testing.assert_array_equal(fast.total, ref.total)


def _group(benchmark, form: str) -> None:
    benchmark.group = f"score-official-10k-{form}"


def test_score_reference(benchmark, form_batch, machine):
    form, batch = form_batch
    _group(benchmark, form)
    _info(benchmark, machine, batch, "reference", 1, form)
    benchmark.pedantic(_score, args=(batch, "reference", 1), rounds=3, iterations=1)


@pytest.mark.parametrize("threads", [1, 2])
def test_score_compiled(benchmark, form_batch, machine, threads):
    if _dispatch.compiled_module() is None:
        pytest.skip("grit_fast._C is not built")
    form, batch = form_batch
    _group(benchmark, form)
    _info(benchmark, machine, batch, "compiled", threads, form)
    benchmark.pedantic(_score, args=(batch, "fast", threads), rounds=20, iterations=1)


def _parse(batch, backend: str, threads: int):
    with _dispatch.backend(backend):
        return parse_traces(batch[0], num_threads=threads)


@pytest.mark.benchmark(group="parse-10k")
def test_parse_reference(benchmark, batch, machine):
    _info(benchmark, machine, batch, "reference", 1)
    benchmark.pedantic(_parse, args=(batch, "reference", 1), rounds=3, iterations=1)


@pytest.mark.benchmark(group="parse-10k")
@pytest.mark.parametrize("threads", [1, 2])
def test_parse_compiled(benchmark, batch, machine, threads):
    if _dispatch.compiled_module() is None:
        pytest.skip("grit_fast._C is not built")
    _info(benchmark, machine, batch, "compiled", threads)
    benchmark.pedantic(_parse, args=(batch, "fast", threads), rounds=10, iterations=1)
