"""The compiled reward core's fast paths against the reference, where they could go wrong.

The core reads completions in 64-byte blocks (bit masks for whitespace, ``<``, digits and word
characters, with exact per-character fallbacks for non-ASCII), counts word 8-gram repeats from
checkpoints every 8 words, screens token ids with 32-bit SSE2 compares, prefetches the next
sample and reuses per-thread buffers across calls. Each test builds inputs that sit on one of
those edges (block boundaries, words of 7-9 bytes, every Unicode whitespace, ids equal in their
low 32 bits only, a pad at every offset, a second smaller batch) and asks for the reference's
numbers bit for bit.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grit_fast import _dispatch
from grit_fast.rewards.score import RewardScorer
from tests.rewards.test_fuzz_rewards import both

pytestmark = pytest.mark.skipif(
    _dispatch.compiled_module() is None, reason="grit_fast._C is not built: no fast path to test"
)

# Every code point str.split() and re's \s treat as whitespace beyond ASCII (Unicode 14).
UNICODE_SPACES = [
    "\x85", "\xa0", "\u1680", *(chr(c) for c in range(0x2000, 0x200B)),
    "\u2028", "\u2029", "\u202f", "\u205f", "\u3000",
]  # fmt: skip
ASCII_SPACES = [" ", "\t", "\n", "\x0b", "\x0c", "\r", "\x1c", "\x1d", "\x1e", "\x1f"]
# Non-space characters whose UTF-8 starts with a byte that also starts a Unicode space
# (C2, E1, E2, E3), and others: the block scan must not take them for whitespace.
NON_SPACES = ["\xa9", "\u1681", "\u2010", "\u3001", "é", "中", "😀", "\x00", "\ud800", "٣", "_"]
WORDS = ["a", "abcdefg", "abcdefgh", "abcdefghi", "abcdefghX", "abcdefgh9", "12,", "3", "x_y"]


def assert_same(texts, ids=None, pad=151643, preset="official", answers=None, datasets=None):
    n = len(texts)
    answers = answers or ["3"] * n
    datasets = datasets or ["tallyqa"] * n
    want, got = both(
        lambda: RewardScorer(preset=preset, pad_token_id=pad).score(
            texts, answers, datasets, completion_ids=ids
        )
    )
    for name in want.components:
        np.testing.assert_array_equal(got.components[name], want.components[name], err_msg=name)
    assert got.predictions == want.predictions
    return got


PIECE = st.one_of(
    st.sampled_from(WORDS),
    st.sampled_from(ASCII_SPACES + UNICODE_SPACES + NON_SPACES),
    st.sampled_from(["<think>", "</think>", "<rethink>", "</rethink>", "<answer>", "</answer>"]),
    st.sampled_from(["[1, 2, 3, 4]", "5,6,\u2003 7,8", "9,9,9,9x", "٣,٤,٥,٦", "a1,2,3,4"]),
)
# A phrase repeated: the word-level repetition count must see it whatever the block alignment.
LOOP = st.tuples(st.lists(st.sampled_from(WORDS), min_size=1, max_size=10), st.integers(1, 5)).map(
    lambda t: " ".join(t[0] * t[1])
)
TEXT = st.tuples(
    st.integers(0, 70), st.lists(st.one_of(PIECE, LOOP, PIECE.map(lambda p: p + " ")), max_size=40)
).map(lambda t: "q" * t[0] + " " + "".join(t[1]))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts=st.lists(TEXT, min_size=1, max_size=4), preset=st.sampled_from(["official", "paper"]))
def test_block_scan_matches_reference(texts, preset):
    assert_same(texts, preset=preset)


@pytest.mark.parametrize("space", ASCII_SPACES + UNICODE_SPACES)
def test_every_whitespace_at_every_block_offset(space):
    # Word w8 ends exactly on a space at each offset across the first block boundary.
    phrase = " ".join(f"w{k}" for k in range(8))
    texts = ["x" * shift + space + (phrase + space) * 3 + "é" for shift in range(50, 80)]
    got = assert_same(texts)
    assert len(set(got.components["repetition"].tolist())) == 1  # the shift changes nothing


@pytest.mark.parametrize("char", NON_SPACES)
def test_non_ascii_non_spaces_stay_inside_words(char):
    texts = [("ab" + char + "cd ") * 20, "y" * 60 + (char * 3 + " z ") * 12]
    assert_same(texts)


def test_words_of_seven_to_nine_bytes_and_at_the_very_end():
    base = ["abcdefg", "abcdefgh", "abcdefghi", "abcdefgh"]
    for tail in ["abcdefg", "abcdefgh", "abcdefghX", "abcdefgY", "a"]:
        words = base * 4
        texts = [" ".join([*words, tail]), " ".join([*words[:-1], tail, *words]), " ".join(words)]
        texts += [t[: len(t) - cut] for t in texts for cut in range(1, 9)]
        assert_same(texts)


def test_repeats_spanning_many_blocks_and_runs_of_every_length():
    rng = np.random.default_rng(1)
    texts = []
    for period in range(1, 20):
        phrase = [f"t{int(v)}" for v in rng.integers(0, 4, size=period)]
        for times in (1, 2, 3, 7):
            texts.append(" ".join(phrase * times + ["end"] + phrase * times))
    assert_same(texts)


def test_repeats_in_long_texts_and_near_miss_checkpoints():
    # Texts past the on-stack word buffers (3 KiB); words that share their first byte but differ
    # (checkpoints the first-byte screen lets through); a loop whose whitespace varies (its words
    # repeat though its bytes do not); loops entering and leaving at every offset.
    rng = np.random.default_rng(2)
    vocab = ["ab", "ac", "ad", "abc", "a", "b", "abcdefghij", "abcdefghik"]
    texts = []
    for length in (100, 700, 1200):
        words = [vocab[int(k)] for k in rng.integers(0, len(vocab), size=length)]
        texts.append(" ".join(words))
        texts.append("\n".join(words[: length // 2] + words[:17] * 9 + words[length // 2 :]))
    phrase = ["p0", "p1", "p2", "p3", "p4", "p5", "p6", "p7"]
    for lead in range(0, 17):
        seps = [" ", "  ", "\t", " \n"]
        loop = "".join(w + seps[k % len(seps)] for k, w in enumerate(phrase * 5))
        texts.append("x " * lead + loop + "y " * (16 - lead))
        texts.append("x " * lead + " ".join(phrase * 3 + phrase[: lead % 8]) + " z" * lead)
    assert_same(texts)


def test_bleu_of_long_answers_and_hypotheses():
    # BLEU reads words 64 bytes at a time and keeps small references in a table: words across
    # 64-byte edges, references past 32 and 40 words, hypotheses past 40 words, mixed case.
    words = ["Red", "cup", "a1", "B2", "x" * 63, "y" * 64, "z" * 65, "9"]
    answers, texts = [], []
    for n_ref in (1, 3, 32, 33, 41, 60):
        for n_hyp in (1, 5, 39, 40, 41, 80):
            ref = [words[(k * 3) % len(words)] for k in range(n_ref)]
            hyp = [words[(k * 5 + n_ref) % len(words)].lower() for k in range(n_hyp)]
            answers.append(" ".join(ref))
            texts.append("<answer>" + "-".join(hyp) + "</answer>")
    assert_same(texts, answers=answers, datasets=["gqa"] * len(texts))


def test_many_distinct_and_repeated_short_predictions():
    # Equal short predictions of ASCII texts share one str: more distinct ones than its table
    # holds, every length around its 16-character limit, NULs, and answers at the text's end.
    texts = []
    for k in range(700):
        answer = str(k % 300) + "\x00" * (k % 3) + "x" * (k % 19)
        texts.append(f"<answer>{answer}</answer> tail" if k % 2 else f"<answer>{answer}")
    # Many that share their first 8 characters and differ only after them or in length.
    for k in range(600):
        texts.append(
            "<answer>abcdefgh" + "\x00" * (k % 4) + chr(65 + k % 26) * (k % 9) + "</answer>"
        )
    want, got = both(lambda: RewardScorer().score(texts, ["1"] * len(texts), ["gqa"] * len(texts)))
    assert got.predictions == want.predictions
    np.testing.assert_array_equal(got.total, want.total)


def test_boxes_around_the_first_rethink_and_block_edges():
    texts = []
    for shift in range(56, 72):
        pad = "w" * shift
        texts += [
            pad + " 1,2,3,4<rethink> 5,6,7,8",
            pad + "[10, 20, 30, 40]<rethink>",
            pad + "a 1,2,3,4" + "<rethink>" + "9,9,9,9",
            pad + "_1,2,3,4 " + "x" * 20 + " 5,6,7,8 <rethink>",
            pad + " 1,2,3," + "\u2003" * 3 + "4 é 5,6,7,8 <rethink>",
            pad + " 1,2,3,4\u00e9 5,6,7,8 <rethink>",  # \b fails before a non-ASCII letter
        ]
    assert_same(texts)
    assert_same(texts, preset="paper")


# Ids equal in their low 32 bits but not in full: the SSE2 screen must not take them for equal.
# The texts have 8 distinct words: with fewer, the ids are not looked at (word score 1 here).
HIGH = 1 << 32
EIGHT_WORDS = "a b c d e f g h"
ID_VALUES = [1, 2, 7, HIGH + 1, 2 * HIGH + 1, -1, HIGH - 1, 151643, 151643 + HIGH, 151643 - HIGH]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.lists(
        st.one_of(
            st.lists(st.sampled_from(ID_VALUES), max_size=70),
            st.tuples(
                st.lists(st.sampled_from(ID_VALUES), min_size=1, max_size=9), st.integers(1, 9)
            ).map(lambda t: t[0] * t[1]),
        ),
        min_size=1,
        max_size=5,
    ),
    pad=st.sampled_from([151643, None, -1, 151643 + HIGH]),
)
def test_token_screen_matches_reference(rows, pad):
    assert_same([EIGHT_WORDS] * len(rows), ids=rows, pad=pad)


def test_pad_at_every_offset_of_a_looping_row():
    loop = [5, 6, 7, 8, 9, 10, 11, 12] * 12
    width = len(loop) + 1
    ids = np.full((width, width), 151643, dtype=np.int64)
    for k in range(width):
        ids[k, :k] = loop[:k]
    got = assert_same([EIGHT_WORDS] * width, ids=ids)
    assert got.components["repetition"][-1] < 0.5  # the loop is seen


def test_buffers_reused_by_a_smaller_batch_and_threads():
    big = [f"<answer> {k} </answer> " + "a b c d e f g h " * (k % 5) for k in range(300)]
    ids = [[k % 3] * (20 + k % 40) for k in range(300)]
    for texts, rows in ((big, ids), (big[:7], ids[:7]), (big[::-1], ids[::-1])):
        want, got = both(
            lambda texts=texts, rows=rows: RewardScorer(num_threads=3).score(
                texts, ["1"] * len(texts), ["gqa"] * len(texts), completion_ids=rows
            )
        )
        for name in want.components:
            np.testing.assert_array_equal(got.components[name], want.components[name])
        assert got.predictions == want.predictions


def test_unpickled_int64_ids_are_accepted():
    ids = pickle.loads(pickle.dumps(np.array([[1, 2, 3] * 8, [4] * 24], dtype=np.int64)))
    assert ids.dtype is not np.dtype(np.int64)  # equal, but a different dtype object
    got = assert_same([EIGHT_WORDS] * 2, ids=ids)
    assert got.components["repetition"].tolist() == [0.5, 0.0]
