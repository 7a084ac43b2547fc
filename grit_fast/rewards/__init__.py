"""GRPO-GR rewards: trace parsing, reward presets, answer judges (and geometry, in its own modules).

* :func:`parse_trace` / :func:`parse_traces` -> :class:`Trace` (sections, tags, boxes with spans and
  labels);
* :class:`RewardScorer` (presets ``official`` and ``paper``) -> :class:`RewardBatch`;
* :class:`RuleJudge`, the offline judge; any ``judge(questions, answers, predictions)`` callable works.

Each has a compiled fast path in ``grit_fast._C`` and a pure-Python twin in
:mod:`grit_fast.rewards.reference`.
"""

from grit_fast.rewards.judge import Judge, RuleJudge
from grit_fast.rewards.score import RewardBatch, RewardScorer
from grit_fast.rewards.trace import Trace, parse_trace, parse_traces

__all__ = [
    "Judge",
    "RewardBatch",
    "RewardScorer",
    "RuleJudge",
    "Trace",
    "parse_trace",
    "parse_traces",
]
