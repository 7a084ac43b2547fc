"""GRPO-GR rewards: trace parsing, reward presets, answer judges (and geometry, in its own modules).

* :func:`parse_trace` / :func:`parse_traces` -> :class:`Trace` (sections, tags, boxes with spans and
  labels);
* :class:`RewardScorer` (presets ``official`` and ``paper``) -> :class:`RewardBatch`;
* :class:`RuleJudge`, the offline judge; any ``judge(questions, answers, predictions)`` callable works.

Each has a compiled fast path in ``grit_fast._C`` and a pure-Python twin in
:mod:`grit_fast.rewards.reference` (the rule judge's in :mod:`.reference_judge`). The tables they
decide by (tags, presets, the pad id, the box pattern) are in :mod:`.presets`; the result types in
:mod:`.results`.
"""

from grit_fast.rewards.judge import Judge, RuleJudge
from grit_fast.rewards.results import RewardBatch, Trace
from grit_fast.rewards.score import RewardScorer
from grit_fast.rewards.trace import parse_trace, parse_traces

__all__ = [
    "Judge",
    "RewardBatch",
    "RewardScorer",
    "RuleJudge",
    "Trace",
    "parse_trace",
    "parse_traces",
]
