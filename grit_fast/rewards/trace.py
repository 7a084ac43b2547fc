"""Parse GRIT reasoning traces: sections, tags and the boxes the model wrote.

A completion looks like ``<think> … [x1,y1,x2,y2] … </think> <rethink> … </rethink> <answer> …``
(spec §1). :func:`parse_traces` runs in the compiled core for whole batches (GIL released, threads);
:func:`grit_fast.rewards.reference.parse_traces` is its pure-Python twin.

Sections (``None`` when the opening tag is absent):

* ``think``: after the first ``<think>`` up to the next ``</think>``; unclosed, up to the next
  ``<rethink>`` or ``<answer>``, else the end;
* ``rethink``: after the first ``<rethink>`` up to the next ``</rethink>``, else ``<answer>`` or the end;
* ``answer``: after the first ``<answer>`` up to the next ``</answer>``, else the end (spec §1).

Boxes (``boxes``, (K, 4) float64, in the order written) are taken from the text before the first
``<rethink>`` (all of it when there is none): every run of four ASCII numbers (``-?[0-9]+(.[0-9]+)?``)
separated by commas with optional blanks, not glued to a word or number before or after. That covers
``[10, 20, 30, 40]``, ``(10,20,30,40)``, ``{"bbox_2d": [10, 20, 30, 40], "label": "cup"}``,
``bbox_2d_3: 380, 209, 453, 293`` and lists of them; eight numbers in a row are two boxes.
``spans`` (K, 2) are Python character offsets ``[start, end)``, brackets included when the box is
enclosed in ``[]`` or ``()``. ``labels[k]`` is the string of the first ``"label": "…"`` after box k and
before the next box or brace, else None. ``answer_boxes``/``answer_spans``/``answer_labels`` are the
boxes inside the answer section (detection-style answers), found and labelled the same way. Coordinates are returned as written; map them to image
pixels with the geometry helpers.

``official_box_count`` is what the official reward counts: matches of the released pattern
``\\b\\d+,\\s*\\d+,\\s*\\d+,\\s*\\d+\\b`` (Unicode digits, integers only) before the first ``<rethink>``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from grit_fast import _dispatch

TAGS = ("<think>", "</think>", "<rethink>", "</rethink>", "<answer>", "</answer>")


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


def _check_texts(texts: Sequence[str], what: str = "texts") -> list[str]:
    if isinstance(texts, str):
        raise TypeError(f"{what} must be a sequence of str, got one str (wrap it in a list)")
    texts = list(texts)
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"{what}[{i}] must be a str, got {type(t).__name__}")
    return texts


def parse_traces(texts: Sequence[str], num_threads: int = 0) -> list[Trace]:
    """Parse a batch of completions (compiled core, ``num_threads`` threads; 0 = default)."""
    texts = _check_texts(texts)
    if _dispatch.use_fast("parse_traces"):
        from grit_fast.rewards import _fast

        return _fast.parse_traces(texts, num_threads)
    from grit_fast.rewards import reference

    return reference.parse_traces(texts, num_threads)


def parse_trace(text: str) -> Trace:
    """Parse one completion; see the module docstring for what a :class:`Trace` holds."""
    if not isinstance(text, str):
        raise TypeError(f"parse_trace expects a str, got {type(text).__name__}")
    return parse_traces([text], num_threads=1)[0]
