"""The repetition reward: hand-computed values and parity with the released GRIT function."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grit_fast import _dispatch
from grit_fast.rewards.score import RewardScorer

PAD = 151643
PHRASE = "one two three four five six seven eight "


def repetition(texts, ids=None, **kw):
    scorer = RewardScorer(**kw)
    batch = scorer.score(texts, ["x"] * len(texts), ["vsr"] * len(texts), completion_ids=ids)
    return batch.components["repetition"].tolist()


def released_repetitive_reward(completion: str, ids: list[int], pad_token_id: int | None) -> float:
    """The released ``repetitive_reward`` (grpo-gr/rewards.py) for one sample, line by line."""
    ngram_size, max_reward = 8, 0.5
    if completion == "" or len(completion.split()) < ngram_size:
        return max_reward
    tokens = completion.split()
    repeat_count = total = 0
    for i in range(len(tokens) - ngram_size):
        total += 1
        repeat_count += tuple(tokens[i : i + ngram_size]) == tuple(
            tokens[i + ngram_size : i + 2 * ngram_size]
        )
    reward = 1.0 if total == 0 else 1.0 - repeat_count / total
    ids_list = list(ids)
    if pad_token_id is not None and pad_token_id in ids_list:
        ids_list = ids_list[: ids_list.index(pad_token_id)]
    if len(ids_list) < 2 * ngram_size:
        return max_reward  # the word factor is dropped here
    repeat_count = total_pairs = 0
    for i in range(len(ids_list) - 2 * ngram_size + 1):
        total_pairs += 1
        repeat_count += tuple(ids_list[i : i + ngram_size]) == tuple(
            ids_list[i + ngram_size : i + 2 * ngram_size]
        )
    score = 1.0 if total_pairs == 0 else 1.0 - repeat_count / total_pairs
    return (score - (1 - reward)) * max_reward


def test_word_and_token_level(impl):
    texts = ["short text", PHRASE * 2, PHRASE * 3 + "nine", "a " * 8]
    ids = [list(range(20)), list(range(8)) * 2 + [PAD, 1, 2], list(range(8)) * 4, [5] * 30]
    # 2: 16 words -> 8 pairs, 1 repeat; ids cut at pad -> 16 ids, 1 pair, repeated.
    # 3: 25 words -> 17 pairs, 9 repeats; 32 ids -> 17 pairs, 17 repeats.
    # 4: 8 words -> no pairs; 30 equal ids -> all 15 pairs repeat.
    assert repetition(texts, ids) == [
        (1.0 - (1 - 1.0)) * 0.5,
        ((1.0 - 1 / 1) - (1 - (1.0 - 1 / 8))) * 0.5,
        ((1.0 - 17 / 17) - (1 - (1.0 - 9 / 17))) * 0.5,
        ((1.0 - 15 / 15) - (1 - 1.0)) * 0.5,
    ]


@pytest.mark.parametrize("pad_at", [0, 1, 7, 14, 15])
def test_early_pad_gives_half_whatever_the_words(impl, pad_at):
    # Word repeats that alone would pull the reward down to 8/17 * 0.5 and 0.
    texts = [PHRASE * 3 + "nine", PHRASE * 4]
    row = [*range(100, 100 + pad_at), PAD, *range(40)]
    assert repetition(texts, [row, row[: pad_at + 1]]) == [0.5, 0.5]


def test_pad_at_16_keeps_the_word_factor(impl):
    row = [*range(100, 116), PAD, *range(40)]  # 16 distinct ids survive the cut: s_tok = 1
    assert repetition([PHRASE * 3 + "nine"], [row]) == [(1.0 - (1 - (1.0 - 9 / 17))) * 0.5]


def test_fewer_than_16_ids_without_pad_give_half(impl):
    texts = [PHRASE * 3 + "nine"] * 3
    ids = [list(range(15)), [], [PAD] * 15]
    assert repetition(texts, ids, pad_token_id=None) == [0.5, 0.5, 0.5]
    assert repetition(texts, np.zeros((3, 15), dtype=np.int64)) == [0.5, 0.5, 0.5]


def test_without_ids_the_token_factor_is_one(impl):
    assert repetition([PHRASE * 2]) == [(1.0 - (1 - (1.0 - 1 / 8))) * 0.5]


def test_pad_token_id_none_keeps_all_ids(impl):
    ids = [[PAD] * 16]
    assert repetition([PHRASE], ids) == [0.5]
    assert repetition([PHRASE], ids, pad_token_id=None) == [0.0]


def test_fewer_than_8_words_give_half_whatever_the_ids(impl):
    # 30 equal ids alone would give s_tok = 0, and the reward 0.
    texts = ["", "x", "one two three four five six seven"]
    assert repetition(texts, [[5] * 30] * 3) == [0.5, 0.5, 0.5]


def test_compares_long_words_in_full(impl):
    words = [f"averyverylongword{k}" for k in range(8)]
    same = " ".join(words * 2)
    other = " ".join(words + words[:-1] + ["averyverylongword7x"])
    assert repetition([same, other]) == [(1.0 - (1 - (1.0 - 1 / 8))) * 0.5, 0.5]


WORDS = st.sampled_from(["a", "b", "cup", "\u2003", "\n", "é", "1,2"])
TEXT = st.one_of(
    st.lists(WORDS, max_size=40).map(" ".join),
    st.tuples(st.lists(WORDS, min_size=1, max_size=9), st.integers(2, 5)).map(
        lambda t: (" ".join(t[0]) + " ") * t[1]
    ),
)
ROW = st.lists(st.sampled_from([1, 2, 3, PAD]), max_size=48) | st.lists(
    st.integers(0, 2), min_size=14, max_size=48
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    samples=st.lists(st.tuples(TEXT, ROW), min_size=1, max_size=5),
    pad=st.sampled_from([PAD, None, 2]),
)
def test_both_twins_equal_the_released_function(samples, pad):
    texts, rows = (list(x) for x in zip(*samples, strict=True))
    want = [released_repetitive_reward(t, r, pad) for t, r in zip(texts, rows, strict=True)]
    backends = ["reference"] + (["fast"] if _dispatch.compiled_module() is not None else [])
    for name in backends:
        with _dispatch.backend(name):
            assert repetition(texts, rows, pad_token_id=pad) == want, name
