"""The rule judge's rules, judge-score validation, and how the scorer calls a judge."""

from __future__ import annotations

import math

import pytest

from grit_fast.rewards.judge import RuleJudge, rule_score, validate_scores
from grit_fast.rewards.score import RewardScorer


@pytest.mark.parametrize(
    ("answer", "prediction", "score"),
    [
        ("tv", " TV ", 1.0),
        ("tv", "The tv.", 1.0),
        ("tv", "it is a tv on the wall", 1.0),
        ("tv", "radio", 0.0),
        ("red cup", "the Red cup", 1.0),
        ("red cup", "cup red", 0.0),
        ("3", "three", 1.0),
        ("3", "There are 3 chairs.", 1.0),
        ("3", "3.0", 1.0),
        ("3", "4 or 3", 0.0),  # the first number counts
        ("three", "3", 1.0),
        ("0", "zero", 1.0),
        ("yes", "Yes, it is.", 1.0),
        ("yes", "no", 0.0),
        ("no", "No. Yes?", 1.0),
        ("no", "", 0.0),
        ("B", "B", 1.0),
        ("B", "(B) the dog", 1.0),
        ("(B)", "option b", 1.0),
        ("B", "answer: B", 1.0),
        ("B", "A", 0.0),
        ("B", "Because", 0.0),
        ("猫", " 猫 ", 1.0),
        ("猫", "狗", 0.0),
        ("", "", 0.0),
    ],
)
def test_rules(answer, prediction, score):
    assert rule_score(answer, prediction) == score
    assert RuleJudge()(["q"], [answer], [prediction]) == [score]


def test_rule_judge_checks_lengths():
    with pytest.raises(ValueError, match="equal lengths"):
        RuleJudge()(["q"], ["a", "b"], ["a"])


@pytest.mark.parametrize(
    ("scores", "message"),
    [
        ([1.0], "returned 1 scores for 2 samples"),
        ([0.5, math.nan], "score 1 is nan"),
        ([0.5, 1.5], "score 1 is 1.5"),
        ([-0.1, 0.0], "score 0 is -0.1"),
        (["high", 0.0], "score 0 is 'high', not a number"),
        (None, "returned NoneType"),
    ],
)
def test_bad_judge_outputs_raise(scores, message):
    with pytest.raises((ValueError, TypeError), match=message):
        validate_scores(scores, 2, RuleJudge())


def test_scorer_reports_bad_judge(impl):
    scorer = RewardScorer(judge=lambda q, a, p: [2.0] * len(a))
    with pytest.raises(ValueError, match="expected a finite value in"):
        scorer.score(["<answer>x", "<answer>y"], ["x", "y"], ["vsr", "vsr"])


def test_judge_called_once_with_only_needed_samples(impl):
    calls = []

    def judge(questions, answers, predictions):
        calls.append((list(questions), list(answers), list(predictions)))
        return [1.0] * len(answers)

    scorer = RewardScorer(judge=judge)
    texts = ["no tag", "<answer> b </answer>", "<answer> c", "<answer> d"]
    scorer.score(texts, ["a", "b", "c", "d"], ["vsr", "vsr", "ovd", "gqa"], questions=list("wxyz"))
    assert calls == [(["x", "z"], ["b", "d"], [" b ", " d"])]
    calls.clear()
    scorer.score(["no tag"], ["a"], ["vsr"])
    assert calls == []  # nothing to judge: not called


def test_questions_default_to_empty_strings(impl):
    seen = []
    RewardScorer(judge=lambda q, a, p: seen.extend(q) or [0.0] * len(q)).score(
        ["<answer>1"], ["1"], ["vsr"]
    )
    assert seen == [""]
