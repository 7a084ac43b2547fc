"""Answer judges: the protocol, score validation, and the offline rule-based judge.

A judge is any callable ``judge(questions, answers, predictions) -> sequence of floats in [0, 1]``
taking three equal-length sequences of str (question, ground-truth answer, predicted answer).
:class:`grit_fast.RewardScorer` calls it once per ``score`` call with only the samples that need
judging, in batch order, and binarises its scores (``> 0`` -> 1) for ``answer_accuracy`` as the
released trainer does. The paper's judge is GPT-4o (docs/method.md §2); :class:`RuleJudge` is the local
default so that training and tests work offline.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from grit_fast import _dispatch
from grit_fast.rewards import _fast
from grit_fast.rewards.reference_judge import rule_score

__all__ = ["Judge", "RuleJudge", "rule_score", "validate_scores"]


class Judge(Protocol):
    """Scores predicted answers against ground truth, each in [0, 1]."""

    def __call__(
        self, questions: Sequence[str], answers: Sequence[str], predictions: Sequence[str]
    ) -> Sequence[float]: ...


def validate_scores(scores: object, expected: int, judge: object) -> np.ndarray:
    """The judge's scores as float64 (expected,), or a ValueError naming what was wrong."""
    name = getattr(judge, "__name__", type(judge).__name__)
    try:
        values = list(scores)  # type: ignore[call-overload]
    except TypeError:
        raise TypeError(
            f"judge {name} returned {type(scores).__name__}, expected a sequence of floats"
        ) from None
    if len(values) != expected:
        raise ValueError(f"judge {name} returned {len(values)} scores for {expected} samples")
    try:  # the common case in one vectorised pass; the loop below names the first bad score
        fast = np.asarray(values, dtype=np.float64)
        if fast.shape == (expected,) and bool(np.all((fast >= 0.0) & (fast <= 1.0))):
            return fast
    except (TypeError, ValueError):
        pass
    out = np.empty(expected, dtype=np.float64)
    for i, v in enumerate(values):
        try:
            x = float(v)
        except (TypeError, ValueError):
            raise ValueError(f"judge {name}: score {i} is {v!r}, not a number") from None
        if not math.isfinite(x) or not 0.0 <= x <= 1.0:
            raise ValueError(f"judge {name}: score {i} is {x!r}, expected a finite value in [0, 1]")
        out[i] = x
    return out


class RuleJudge:
    """Offline judge: normalised exact match, numbers and number words, yes/no, choice letters.

    Rules, first that applies (text is ASCII-lowercased; words are ``[a-z]+`` and numbers
    ``[0-9]+(.[0-9]+)?``; number words zero…twenty read as numbers; articles a/an/the dropped):

    * gt a choice letter ``A``–``E`` (optionally ``(A)``/``A.``): the prediction must start with
      that letter (``B``, ``(B)``, ``B.``, ``option B``, ``answer: B``);
    * gt ``yes``/``no``: the first yes/no word of the prediction must equal it;
    * gt a single number: the first number of the prediction must equal it (``3``, ``three``,
      ``3.0``);
    * otherwise the word sequences must be equal, or a gt of at most 3 words must occur as a
      contiguous phrase in the prediction; a gt without ASCII words must equal the prediction
      exactly after stripping.

    The question is not used. Scores are 0.0 or 1.0. The compiled core has a twin of these rules
    (dispatched as ``rule_judge``); :class:`grit_fast.RewardScorer` runs it inside its scoring pass
    when the judge is a plain ``RuleJudge``.
    """

    __name__ = "RuleJudge"

    def __call__(
        self, questions: Sequence[str], answers: Sequence[str], predictions: Sequence[str]
    ) -> list[float]:
        if not len(questions) == len(answers) == len(predictions):
            raise ValueError(
                f"RuleJudge: {len(questions)} questions, {len(answers)} answers and "
                f"{len(predictions)} predictions; expected equal lengths"
            )
        if _dispatch.use_fast("rule_judge"):
            return _fast.rule_scores(list(answers), list(predictions))
        # Identical (answer, prediction) pairs are scored once.
        pairs = list(zip(answers, predictions, strict=True))
        scores = {pair: rule_score(*pair) for pair in set(pairs)}
        return [scores[pair] for pair in pairs]

    def __repr__(self) -> str:
        return "RuleJudge()"
