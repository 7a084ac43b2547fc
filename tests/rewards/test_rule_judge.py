"""The compiled rule judge against its Python reference (rule_score), and the scorer that runs it."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grit_fast import _dispatch
from grit_fast.rewards.judge import RuleJudge, rule_score
from grit_fast.rewards.score import RewardScorer


def compiled_scores(answers: list[str], predictions: list[str]) -> list[float]:
    with _dispatch.backend("fast"):
        return RuleJudge()(["q"] * len(answers), answers, predictions)


def assert_twins_agree(answers: list[str], predictions: list[str]) -> None:
    expected = [rule_score(a, p) for a, p in zip(answers, predictions, strict=True)]
    got = compiled_scores(answers, predictions)
    for a, p, e, g in zip(answers, predictions, expected, got, strict=True):
        assert g == e, f"answer {a!r}, prediction {p!r}: compiled {g}, reference {e}"


EDGES = [
    # choice letters: gt forms, prediction prefixes, terminators, backtracking
    ("B", "b"),
    ("B", "b)"),
    ("B", "(b"),
    ("B", "(b) dog"),
    ("B", "b:"),
    ("B", "b,"),
    ("B", "b\n"),
    ("B", "b\x1c"),  # \x1c is \s in Unicode mode only: _CHOICE is ASCII
    ("B", "\x0b\tb"),
    ("B", "option  b"),
    ("B", "option(b)"),
    ("B", "optionb"),
    ("B", "Option b"),
    ("B", "answer:b"),
    ("B", "answer : (b)."),
    ("A", "answer"),
    ("A", "a"),
    ("A", "an apple"),
    ("E", "answer: e"),
    ("F", "f"),
    (" (B). ", "B"),
    ("\u3000B\u2003", "B"),
    ("B).", "B"),
    ("B.)", "B"),
    ("(B", "B"),
    ("\x1cB\x1f", "b."),
    ("b", "b"),
    # numbers
    ("3", "3.0"),
    ("3", "03"),
    ("3.", "3"),
    ("0.5", ".5"),
    ("1.2.3", "1.2"),
    ("9007199254740993", "9007199254740992"),
    ("0.1", "0.10000000000000001"),
    ("1" * 400, "1" * 401),
    ("1" * 400, "inf"),
    ("0." + "0" * 400 + "1", "0"),
    ("0." + "0" * 400 + "1", "0." + "0" * 500 + "2"),
    ("1" * 30 + ".5", "1" * 30),
    ("twenty", "20.000"),
    ("TWENTY-ONE", "20 1"),
    ("Zero", "0"),
    ("3", "the3"),
    # yes/no and phrases
    ("YES", "yEs"),
    ("yes!", "I think... no, yes"),
    ("no", "nope no"),
    ("the red cup", "a RED   cup!"),
    ("red cup", "red cups"),
    ("a b c", "x a b c y"),
    ("a b c d", "x b c d y"),
    ("b c d e", "B-C-D-E"),
    ("an", "the"),
    # no ASCII words: exact after strip
    ("猫", "\u3000猫\n"),
    ("猫", "猫猫"),
    (" ", " "),
    ("\u00a0", ""),
    ("é", "É"),
    ("\ud800", "\ud800"),
    ("\ud800", " \ud800 "),
    ("\x00", "\x00"),
    ("Kelvin \u212a", "kelvin k"),
]


@pytest.mark.parametrize(("answer", "prediction"), EDGES)
def test_compiled_rule_judge_matches_reference_on_edges(answer, prediction):
    assert_twins_agree([answer], [prediction])


NUMBER_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
NUMBER_WORDS += ["ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen"]
NUMBER_WORDS += ["seventeen", "eighteen", "nineteen", "twenty", "a", "an", "the"]


def test_number_words_and_articles_in_every_case_and_near_misses():
    # The core looks these words up by length and their first 8 letters, packed: every case
    # mix, one letter more or less, and a different 9th letter must read as the reference does.
    words = []
    for w in NUMBER_WORDS:
        words += [w, w.upper(), w.title(), w[:-1], w + "n", w[:-1] + "x", "x" + w[1:]]
    answers, predictions = [], []
    for w in words:
        for gt in ("3", "yes", "cup", "seventeen", "the cup"):
            answers.append(gt)
            predictions.append(f"{w} 3 cup")
        answers.append(w)
        predictions.append(w.swapcase())
    assert_twins_agree(answers, predictions)


def test_integers_near_the_exact_double_limit():
    values = ["0", "007", "999999999999999", "1000000000000000", "9007199254740993", "1" * 16]
    answers = [a for a in values for _ in values]
    predictions = [f"about {p}" for _ in values for p in values]
    predictions += [f"{p}.0" for p in values]
    answers += values
    assert_twins_agree(answers, predictions)


PIECES = [
    "A", "B", "E", "F", "a", "b", "e", "(", ")", ".", ":", ",", "-", " ", "  ", "\t", "\n", "\x0b",
    "\x1c", "\u00a0", "\u2003", "\u3000", "\x00", "\ud800", "猫", "é", "option", "answer", "Answer",
    "yes", "No", "the", "An", "three", "Twenty", "0", "3", "3.0", "03", "1.5", "9" * 20, "cup",
    "red",
]  # fmt: skip
pieced = st.lists(st.sampled_from(PIECES), max_size=8).map("".join)
texts = st.one_of(pieced, st.text(max_size=20))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(texts, texts), min_size=1, max_size=8))
def test_compiled_rule_judge_matches_reference_fuzz(pairs):
    answers, predictions = (list(x) for x in zip(*pairs, strict=True))
    assert_twins_agree(answers, predictions)


def test_compiled_rule_judge_rejects_bad_items():
    with pytest.raises(TypeError, match=r"predictions\[1\] must be a str"):
        compiled_scores(["a", "b"], ["a", 3])


@pytest.mark.parametrize("preset", ["official", "paper"])
def test_scorer_runs_the_rule_judge_in_the_core_like_python(preset):
    """A plain RuleJudge (scored in the core) and the same rules called from Python agree."""
    completions = [f"<think>x</think><answer> {p} </answer>" for _, p in EDGES] + ["no tags"]
    answers = [a for a, _ in EDGES] + ["x"]
    datasets = ["vsr", "ovd", "tallyqa", "gqa"] * (len(completions) // 4) + ["vsr"] * (
        len(completions) % 4
    )
    with _dispatch.backend("fast"):
        core = RewardScorer(preset).score(completions, answers, datasets)
        python = RewardScorer(
            preset, judge=lambda q, a, p: [rule_score(*x) for x in zip(a, p, strict=True)]
        ).score(completions, answers, datasets)
    assert len(core.judged) > len(EDGES) // 2
    np.testing.assert_array_equal(core.judged, python.judged)
    np.testing.assert_array_equal(core.judge_scores, python.judge_scores)
    assert core.judge_scores.dtype == np.float64
    assert core.predictions == python.predictions
    for name, values in python.components.items():
        np.testing.assert_array_equal(core.components[name], values, err_msg=name)
    np.testing.assert_array_equal(core.total, python.total)


def test_scorer_checks_questions_when_judging_in_the_core():
    with _dispatch.backend("fast"), pytest.raises(TypeError, match=r"questions\[0\] must be a str"):
        RewardScorer().score(["<answer>1"], ["1"], ["vsr"], questions=[1])
