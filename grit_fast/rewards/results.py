"""What parsing and scoring hand back: :class:`Trace` (one parsed completion) and
:class:`RewardBatch` (the rewards of a batch). Plain data; how they are filled is described in
:mod:`grit_fast.rewards.trace` and :mod:`grit_fast.rewards.score`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from grit_fast.rewards.presets import TAGS


@dataclass(eq=False, slots=True)
class Trace:
    """One parsed completion. Offsets are Python character indices into the completion."""

    think: str | None
    rethink: str | None
    answer: str | None
    boxes: np.ndarray  # (K, 4) float64, x1 y1 x2 y2 as written
    spans: np.ndarray  # (K, 2) int64 [start, end)
    labels: tuple[str | None, ...]  # (K,)
    answer_boxes: np.ndarray  # (M, 4) float64
    answer_spans: np.ndarray  # (M, 2) int64
    tag_counts: dict[str, int] = field(default_factory=dict)  # occurrences of each of TAGS
    tag_order: tuple[str, ...] = ()  # the tags present, by first occurrence
    official_box_count: int = 0
    answer_labels: tuple[str | None, ...] = ()  # (M,) labels of the answer's boxes

    @property
    def well_formed(self) -> bool:
        """Each tag exactly once, in the order think, /think, rethink, /rethink, answer."""
        expected = TAGS if self.tag_counts.get("</answer>") else TAGS[:5]
        return self.tag_order == expected and all(self.tag_counts[t] == 1 for t in expected)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Trace):
            return NotImplemented
        return (
            (self.think, self.rethink, self.answer, self.labels, self.answer_labels)
            == (other.think, other.rethink, other.answer, other.labels, other.answer_labels)
            and self.tag_counts == other.tag_counts
            and self.tag_order == other.tag_order
            and self.official_box_count == other.official_box_count
            and _same(self.boxes, other.boxes)
            and np.array_equal(self.spans, other.spans)
            and _same(self.answer_boxes, other.answer_boxes)
            and np.array_equal(self.answer_spans, other.answer_spans)
        )


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and np.array_equal(a, b, equal_nan=True)


@dataclass(frozen=True)
class RewardBatch:
    """Rewards of N completions.

    ``total`` (N,) float64; ``components`` name -> (N,) float64 (weights not applied);
    ``judged`` (J,) int64: the samples the judge scored; ``judge_scores`` (J,) float64: its raw scores
    (before binarising; their mean x 100 is the paper's ACC); ``predictions``: the J predicted answers.
    """

    total: np.ndarray
    components: dict[str, np.ndarray]
    judged: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    judge_scores: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float64))
    predictions: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.total)
