"""GRPO-GR reward components: hand-computed values, NLTK's BLEU, and compiled == reference."""

from __future__ import annotations

import math
import re
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import grit_fast
from grit_fast import _dispatch
from grit_fast.rewards import reference
from grit_fast.rewards.score import RewardScorer

nltk_bleu = pytest.importorskip("nltk.translate.bleu_score", reason="nltk is a test dependency")

GOOD = (
    '<think> The cup is on the left {"bbox_2d": [10, 20, 30, 40], "label": "cup"} and '
    "the plate [50, 60, 70, 80]. </think>\n<rethink> The cup is left of the plate. </rethink>\n"
    "<answer> left </answer>"
)


def score(completions, answers, datasets, **kw):
    ids = kw.pop("completion_ids", None)
    questions = kw.pop("questions", None)
    return RewardScorer(**kw).score(
        completions, answers, datasets, questions=questions, completion_ids=ids
    )


# --- hand-computed values ----------------------------------------------------------------------


def test_well_formed_trace_scores_by_hand(impl):
    b = score([GOOD], ["left"], ["vsr"])
    c = {k: float(v[0]) for k, v in b.components.items()}
    # hyp words after <answer>: left, answer (from "</answer>"); ref: left -> p1 = 1/2, BP = 1.
    assert c == {
        "answer_accuracy": 1.0,
        "answer_bleu": math.exp(math.log(1 / 2)) * 0.1,
        "answer_format": 0.5,
        "repetition": 0.5,
        "grounding_format": 0.5,
        "think_format": 0.5,
    }
    assert b.total[0] == sum(c.values())
    assert b.judged.tolist() == [0] and b.predictions == [" left "]


def test_tallyqa_count_bonus_and_non_integer_answer(impl):
    text = "<think> [1,2,3,4] and [5, 6, 7, 8] </think><rethink> two </rethink><answer>2"
    b = score([text] * 4, ["2", " 2\n", "two", "2.0"], ["tallyqa"] * 4)
    assert b.components["grounding_format"].tolist() == [1.5, 1.5, 0.5, 0.5]


def test_tallyqa_zero_count_and_unicode_int(impl):
    text = "<think> nothing here </think><rethink> none </rethink><answer>0"
    b = score([text, text, "<rethink>[1,2,3,4]"], ["-0", "٠", "١"], ["tallyqa"] * 3)
    assert b.components["grounding_format"].tolist() == [1.0, 1.0, 0.0]


def test_grounding_needs_rethink_and_counts_before_it(impl):
    texts = [
        "[1,2,3,4] no rethink tag",
        "<rethink> [1,2,3,4] only after",
        "1,2,3,4,5,6,7,8<rethink>",  # two matches
        "a1,2,3,4 <rethink>",  # \b fails inside a word
        "1, 2,3,   4_ <rethink>",  # '_' is a word character
        "١,٢,٣,٤ <rethink>",  # Unicode decimals are \d
        "1.5,2,3,4 <rethink>",  # '5,2,3,4' after the '.' matches
    ]
    b = score(texts, ["2"] * 7, ["tallyqa"] * 7)
    assert b.components["grounding_format"].tolist() == [0.0, 0.0, 1.5, 0.0, 0.0, 0.5, 0.5]


def test_answer_format(impl):
    texts = ["none", "<answer>x", "<answer>x<answer>y", "<answer><answer><answer>"]
    assert score(texts, ["x"] * 4, ["vsr"] * 4).components["answer_format"].tolist() == [
        0.0,
        0.5,
        0.25,
        0.25,
    ]


@pytest.mark.parametrize(
    ("text", "count"),
    [
        ("", 0),
        ("<think>", 1),
        ("</think><think>", 1),  # </think> must come after the last <think>
        ("<think></think><rethink></rethink>", 4),  # empty thinking: no content point
        ("<think> ab cd </think><rethink></rethink>", 5),
        ("<think> abcd </think><rethink></rethink>", 4),  # one word, no separator
        ("<think> ab,cd </think><rethink></rethink>", 5),  # ',' becomes a space
        ("<think> ab\ncd </think><rethink></rethink>", 4),  # '\n' is kept, split(' ') sees none
        ("<think>x</think><think> ab cd </think><rethink></rethink>", 5),
        ("<think> a b </think> <rethink> <think> </rethink>", 2),  # scanning restarts late
        ("<rethink></rethink><think></think>", 2),
        ("<think> é </think><rethink></rethink>", 4),  # one character after strip()
        ("<think> éé </think><rethink></rethink>", 5),  # 'é' becomes a space
        ("<think>\u2003ab cd\u2003</think></rethink><rethink></rethink>", 5),
    ],
)
def test_think_format(impl, text, count):
    got = score([text], ["x"], ["vsr"]).components["think_format"][0]
    assert got == count / 5 * 0.5


def test_ovd_skips_the_judge_and_no_answer_scores_zero(impl):
    calls = []

    def judge(q, a, p):
        calls.append((list(q), list(a), list(p)))
        return [1.0] * len(a)

    texts = ["<answer> a </answer>", "<answer> b", "no answer", "<answer>c</answer>d</answer>"]
    b = score(
        texts,
        ["a", "b", "c", "c"],
        ["vsr", "ovdeval", "vsr", "gqa"],
        questions=["q0", "q1", "q2", "q3"],
        judge=judge,
    )
    assert calls == [(["q0", "q3"], ["a", "c"], [" a ", "c"])]
    assert b.components["answer_accuracy"].tolist() == [1.0, 0.0, 0.0, 1.0]


def test_judge_scores_are_binarised(impl):
    b = score(["<answer>x"] * 3, ["x"] * 3, ["vsr"] * 3, judge=lambda q, a, p: [0.0, 0.01, 1])
    assert b.components["answer_accuracy"].tolist() == [0.0, 1.0, 1.0]
    assert b.judge_scores.tolist() == [0.0, 0.01, 1.0]


def test_paper_preset(impl):
    texts = [GOOD, "<think>a</think><answer>3", "</think><think> [1,2,3,4] <rethink></rethink>"]
    b = score(texts, ["left", "3", "1"], ["vsr", "tallyqa", "tallyqa"], preset="paper")
    assert list(b.components) == ["format", "count", "answer_accuracy", "answer_bleu"]
    assert b.components["format"].tolist() == [1.5, 0.5, 0.5]
    assert b.components["count"].tolist() == [0.0, 0.0, 0.5]


def test_weights_rescale_components(impl):
    plain = score([GOOD], ["left"], ["vsr"])
    weighted = score([GOOD], ["left"], ["vsr"], weights={"repetition": 0.0, "answer_bleu": 2})
    assert weighted.total[0] == pytest.approx(plain.total[0] - 0.5 + 0.05, abs=1e-12)
    with pytest.raises(ValueError, match="'nope' is not a component"):
        RewardScorer(weights={"nope": 1.0})


def test_empty_batch(impl):
    b = score([], [], [])
    assert b.total.shape == (0,) and all(v.shape == (0,) for v in b.components.values())


# --- BLEU against NLTK itself ------------------------------------------------------------------


def nltk_answer_bleu(completion: str, answer: str) -> float:
    if "<answer>" not in completion:
        return 0.0
    norm = re.compile(r"[^a-zA-Z0-9\s]")
    hyp = norm.sub(" ", completion.split("<answer>", 1)[1]).lower().split()
    ref = norm.sub(" ", answer).lower().split()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return (0.0 + nltk_bleu.sentence_bleu([ref], hyp, weights=(1, 0, 0, 0))) * 0.1


WORDS = st.sampled_from(["the", "The", "cup", "CUP", "a", "tv", "3", "two", "left", "x1", "é"])
PUNCT = st.sampled_from([" ", "  ", ",", ".", "\n", "\u2003", "-", "_", "</answer>", "İ", "ß"])
PHRASE = st.lists(st.one_of(WORDS, PUNCT), max_size=25).map("".join)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(prefix=PHRASE, hyp=PHRASE, ref=PHRASE)
def test_bleu_matches_nltk(prefix, hyp, ref):
    text = prefix + "<answer>" + hyp
    want = nltk_answer_bleu(text, ref)
    assert reference.answer_bleu(text, ref) == want
    if _dispatch.compiled_module() is not None:
        got = score([text], [ref], ["vsr"]).components["answer_bleu"][0]
        assert got == want


# --- compiled == reference on generated traces --------------------------------------------------

FRAGMENTS = st.sampled_from(
    [
        "<think>", "</think>", "<rethink>", "</rethink>", "<answer>", "</answer>",
        " ", "\n", ",", ", ", "[", "]", "(", ")", "{", "}", '"bbox_2d": ', '"label": "cup"',
        "the", "cup", "3", "12", "٣", "٤٥", "3.5", "-2", "_", "a", "é", "\u00a0", "\u2003",
        "\x1c", "²", ".", "yes", "\ud800", "\x00", "💡",
    ]
)  # fmt: skip
NUMBER = st.integers(0, 999).map(str)
BOX = st.tuples(NUMBER, NUMBER, NUMBER, NUMBER, st.sampled_from([",", ", ", " , ", ",\u2003"])).map(
    lambda t: "[" + t[4].join(t[:4]) + "]"
)
REPEATED = st.tuples(st.lists(WORDS, min_size=1, max_size=9), st.integers(2, 4)).map(
    lambda t: (" ".join(t[0]) + " ") * t[1]
)
TRACE = st.lists(st.one_of(FRAGMENTS, NUMBER, BOX, REPEATED, st.text(max_size=4)), max_size=30).map(
    "".join
)
ANSWER = st.one_of(
    NUMBER, st.sampled_from(["two", " 3 ", "1_0", "٣", "-0", "+2", "", "yes", "3.0"]), PHRASE
)
DATASET = st.sampled_from(["vsr", "tallyqa", "ovdeval", "gqa", "tallyqa_x"])
IDS = st.one_of(
    st.none(),
    st.lists(st.sampled_from([1, 2, 3, 151643]), max_size=40),
    st.lists(st.integers(0, 3), min_size=16, max_size=60),
)


def _components(preset, texts, answers, datasets, ids):
    out = {}
    for name in ("reference", "fast"):
        with _dispatch.backend(name):
            out[name] = RewardScorer(preset=preset).score(
                texts, answers, datasets, completion_ids=ids
            )
    return out["reference"], out["fast"]


@pytest.mark.skipif(_dispatch.compiled_module() is None, reason="grit_fast._C is not built")
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    samples=st.lists(st.tuples(TRACE, ANSWER, DATASET, IDS), min_size=1, max_size=6),
    preset=st.sampled_from(["official", "paper"]),
    use_ids=st.booleans(),
)
def test_compiled_equals_reference(samples, preset, use_ids):
    texts, answers, datasets, ids = (list(x) for x in zip(*samples, strict=True))
    ids = [r or [] for r in ids] if use_ids else None
    ref, fast = _components(preset, texts, answers, datasets, ids)
    for name in ref.components:
        np.testing.assert_array_equal(fast.components[name], ref.components[name], err_msg=name)
    np.testing.assert_array_equal(fast.total, ref.total)
    assert fast.judged.tolist() == ref.judged.tolist()
    assert fast.predictions == ref.predictions


@pytest.mark.skipif(_dispatch.compiled_module() is None, reason="grit_fast._C is not built")
@given(
    text=st.one_of(
        st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30),
        st.from_regex(
            r"[\s\x1c]*[+-]?[0-9_\u0660-\u0669\uff10-\uff19]{0,25}[\s\x00]*", fullmatch=True
        ),
    )
)
@settings(max_examples=400, deadline=None)
def test_compiled_int_matches_python_int(text):
    try:
        want = int(text)
    except ValueError:
        want = None
    got = _dispatch.compiled_module().python_int(text, 4300)
    if want is None or abs(want) < 2**62:
        assert got == want
    else:
        assert abs(got) == 2**62


def test_int_digit_limit_matches_python():
    long_zero_padded = "0" * 5000 + "3"
    text = "<think>[1,2,3,4],[1,2,3,4],[1,2,3,4]</think><rethink>"
    for name in ("reference", "fast"):
        with _dispatch.backend(name):
            got = score([text], [long_zero_padded], ["tallyqa"]).components["grounding_format"]
            assert got.tolist() == [0.5], name  # int() refuses more than 4300 digits


# --- argument errors ---------------------------------------------------------------------------


def test_bad_arguments(impl):
    s = RewardScorer()
    with pytest.raises(ValueError, match="answers has 1 entries but completions has 2"):
        s.score(["a", "b"], ["x"], ["vsr", "vsr"])
    with pytest.raises(TypeError, match=r"answers\[0\] must be a str"):
        s.score(["a"], [3], ["vsr"])
    with pytest.raises(TypeError, match="got one str"):
        s.score("abc", ["x"], ["vsr"])
    with pytest.raises(TypeError, match="integer token ids"):
        s.score(["a"], ["x"], ["vsr"], completion_ids=np.zeros((1, 4), dtype=np.float32))
    with pytest.raises(ValueError, match="completion_ids has 2 rows"):
        s.score(["a"], ["x"], ["vsr"], completion_ids=np.zeros((2, 4), dtype=np.int64))
    with pytest.raises(ValueError, match="preset 'nope'"):
        RewardScorer(preset="nope")
    with pytest.raises(TypeError, match="judge must be callable"):
        RewardScorer(judge=3)


def test_completion_id_forms_agree(impl):
    torch = pytest.importorskip("torch", reason="torch tensors are one accepted form")
    rows = [[1, 2, 3] * 8, [4] * 20 + [151643] * 4]
    texts, answers, datasets = ["a b c d e f g h"] * 2, ["x", "y"], ["vsr", "vsr"]
    as_list = score(texts, answers, datasets, completion_ids=[r[:24] for r in rows])
    as_tuples = score(texts, answers, datasets, completion_ids=tuple(map(tuple, rows)))
    as_array = score(texts, answers, datasets, completion_ids=np.array(rows, dtype=np.int32))
    as_tensor = score(texts, answers, datasets, completion_ids=torch.tensor(rows))
    # Row 0: no id equals the one 8 later; row 1: 20 ids, all 5 pairs repeated.
    assert as_list.components["repetition"].tolist() == [0.5, 0.0]
    for b in (as_tuples, as_array, as_tensor):
        np.testing.assert_array_equal(b.components["repetition"], as_list.components["repetition"])


def test_total_is_float64_and_finite(impl):
    b = score([GOOD, "", "<answer>"], ["left", "", ""], ["vsr"] * 3)
    assert b.total.dtype == np.float64 and all(math.isfinite(x) for x in b.total)
    assert len(b) == 3


def test_public_names():
    import grit_fast.rewards as rewards

    assert sorted(rewards.__all__) == [
        "Judge",
        "RewardBatch",
        "RewardScorer",
        "RuleJudge",
        "Trace",
        "parse_trace",
        "parse_traces",
    ]
    for name in rewards.__all__:
        if name != "Judge":  # a Protocol, not re-exported by grit_fast
            assert getattr(grit_fast, name) is getattr(rewards, name), name
    assert grit_fast.RewardScorer is RewardScorer
    batch = RewardScorer(judge=grit_fast.RuleJudge()).score([GOOD], ["left"], ["vsr"])
    assert type(batch) is grit_fast.RewardBatch
    assert type(grit_fast.parse_trace(GOOD)) is grit_fast.Trace
