"""Pure-Python twin of the compiled rule judge (``csrc/rule_judge.cpp``): :func:`rule_score`.

The rules are documented on :class:`grit_fast.rewards.judge.RuleJudge`, which dispatches between
the two.
"""

from __future__ import annotations

import re

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_TOKEN = re.compile(r"[0-9]+(?:\.[0-9]+)?|[a-z]+")
_CHOICE = re.compile(r"\s*(?:option\s+|answer\s*:?\s*)?\(?([A-Ea-e])\)?(?:[.:)]|\s|$)", re.ASCII)
_ARTICLES = frozenset(("a", "an", "the"))
_YES_NO = frozenset(("yes", "no"))
_NUMBER_WORDS = {
    w: str(i)
    for i, w in enumerate(
        [
            "zero",
            "one",
            "two",
            "three",
            "four",
            "five",
            "six",
            "seven",
            "eight",
            "nine",
            "ten",
            "eleven",
            "twelve",
            "thirteen",
            "fourteen",
            "fifteen",
            "sixteen",
            "seventeen",
            "eighteen",
            "nineteen",
            "twenty",
        ]
    )
}


def _tokens(text: str) -> list[str]:
    """ASCII-lowercased words and numbers, number words as digits, articles dropped."""
    words = _TOKEN.findall(text.translate(_ASCII_LOWER))
    return [_NUMBER_WORDS.get(w, w) for w in words if w not in _ARTICLES]


def _number(token: str) -> float | None:
    return float(token) if token[:1].isdigit() else None


def rule_score(answer: str, prediction: str) -> float:
    """1.0 when ``prediction`` gives ``answer`` by the rules of ``RuleJudge``, else 0.0."""
    choice = re.fullmatch(r"\s*\(?([A-E])\)?\.?\s*", answer)
    if choice is not None:
        got = _CHOICE.match(prediction)
        return 1.0 if got is not None and got.group(1).upper() == choice.group(1) else 0.0
    gt, pred = _tokens(answer), _tokens(prediction)
    if not gt:
        # No ASCII words (e.g. a non-Latin answer): exact match after stripping.
        return 1.0 if answer.strip() and answer.strip() == prediction.strip() else 0.0
    if len(gt) == 1 and gt[0] in _YES_NO:
        first = next((w for w in pred if w in _YES_NO), None)
        return 1.0 if first == gt[0] else 0.0
    if len(gt) == 1 and _number(gt[0]) is not None:
        first = next((x for x in map(_number, pred) if x is not None), None)
        return 1.0 if first == _number(gt[0]) else 0.0
    if gt == pred:
        return 1.0
    # A short answer stated as a whole phrase inside a longer prediction ("it is a tv").
    k = len(gt)
    if k <= 3 and any(pred[j : j + k] == gt for j in range(len(pred) - k + 1)):
        return 1.0
    return 0.0
