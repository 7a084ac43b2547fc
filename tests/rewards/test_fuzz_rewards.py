"""Fuzz the trace parser and scorer: arbitrary Unicode (lone surrogates, NUL), megabyte inputs,
pathological digit/comma runs and nesting. Nothing may crash or hang, and the compiled core must
agree with the reference on all of it. ``scripts/fuzz_sanitizers.sh`` runs this file against an
ASan/UBSan build of ``grit_fast._C``.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grit_fast import _dispatch
from grit_fast.rewards.score import RewardScorer
from grit_fast.rewards.trace import parse_traces

pytestmark = pytest.mark.skipif(
    _dispatch.compiled_module() is None, reason="grit_fast._C is not built: nothing to fuzz"
)

ANY_CHAR = st.characters(blacklist_categories=())  # surrogates included
TAGGY = st.sampled_from(
    ["<think>", "</think>", "<rethink>", "</rethink>", "<answer>", "</answer>", "<", ">", "/"]
)
DIGITY = st.sampled_from(["0", "9", ",", " ", "٣", "\u2003", ".", "-", "[", "]", "_", "\x00"])
FUZZ_TEXT = st.lists(st.one_of(st.text(ANY_CHAR, max_size=8), TAGGY, DIGITY), max_size=60).map(
    "".join
)


def both(fn):
    with _dispatch.backend("reference"):
        want = fn()
    with _dispatch.backend("fast"):
        got = fn()
    return want, got


def assert_same_scores(want, got):
    for name in want.components:
        np.testing.assert_array_equal(got.components[name], want.components[name], err_msg=name)
    assert got.predictions == want.predictions


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    texts=st.lists(FUZZ_TEXT, min_size=1, max_size=4),
    answer=st.text(ANY_CHAR, max_size=6),
    preset=st.sampled_from(["official", "paper"]),
)
def test_arbitrary_unicode(texts, answer, preset):
    n = len(texts)
    want, got = both(lambda: parse_traces(texts))
    assert got == want
    ids = [[ord(c[0]) if c else 0 for c in t] for t in texts]
    want, got = both(
        lambda: RewardScorer(preset=preset).score(
            texts, [answer] * n, ["tallyqa"] * n, completion_ids=ids
        )
    )
    assert_same_scores(want, got)


MEGABYTE = 1 << 20


def pathological() -> dict[str, str]:
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 0x3000, size=MEGABYTE // 4).astype(np.uint32)
    return {
        "digits": "9" * MEGABYTE,
        "digit_commas": "1," * (MEGABYTE // 2),
        "almost_boxes": "1, 2, 3, 4a " * (MEGABYTE // 12),
        "spaces_between": "1," + " " * MEGABYTE + "2,3,4",
        "nested": "[" * (MEGABYTE // 2) + "1,2,3,4" + "]" * (MEGABYTE // 2),
        "tags": "<think><rethink></think>" * (MEGABYTE // 24) + "<answer>" + "x " * 1000,
        "repeats": "a b c d e f g h " * (MEGABYTE // 16),
        "unicode_noise": "".join(map(chr, noise[(noise < 0xD800) | (noise > 0xDFFF)])),
        "surrogates_nul": ("\ud800\x00٣,٤,٥,٦ " * (MEGABYTE // 12)),
        "labels": '{"bbox_2d": [1,2,3,4], "label": "' + "x" * MEGABYTE,
    }


@pytest.mark.parametrize("name", sorted(pathological()))
def test_megabyte_inputs_are_linear_and_agree(name):
    text = pathological()[name]
    start = time.process_time()
    with _dispatch.backend("fast"):
        got_trace = parse_traces([text])[0]
        got = RewardScorer().score([text], ["4"], ["tallyqa"], completion_ids=[[1, 2] * 5000])
    cpu = time.process_time() - start
    # ~1 MB takes well under 0.5 s of CPU; anything quadratic would take minutes. CPU time, not
    # wall clock, so that other work on the machine does not count.
    assert cpu < 10.0, f"{name}: {cpu:.2f} CPU s for {len(text)} characters"
    with _dispatch.backend("reference"):
        want_trace = parse_traces([text])[0]
        want = RewardScorer().score([text], ["4"], ["tallyqa"], completion_ids=[[1, 2] * 5000])
    assert got_trace == want_trace
    assert_same_scores(want, got)


def test_many_threads_on_a_mixed_batch():
    texts = list(pathological().values())[:4] + ["<think>[1,2,3,4]</think>"] * 60
    want, got = both(lambda: RewardScorer(num_threads=8).score(texts, ["1"] * 64, ["tallyqa"] * 64))
    assert_same_scores(want, got)
