"""Parse GRIT reasoning traces: sections, tags and the boxes the model wrote.

A completion looks like ``<think> … [x1,y1,x2,y2] … </think> <rethink> … </rethink> <answer> …``
(docs/method.md §1). :func:`parse_traces` runs in the compiled core for whole batches (GIL released, threads);
:func:`grit_fast.rewards.reference.parse_traces` is its pure-Python twin.

Sections (``None`` when the opening tag is absent):

* ``think``: after the first ``<think>`` up to the next ``</think>``; unclosed, up to the next
  ``<rethink>`` or ``<answer>``, else the end;
* ``rethink``: after the first ``<rethink>`` up to the next ``</rethink>``, else ``<answer>`` or the end;
* ``answer``: after the first ``<answer>`` up to the next ``</answer>``, else the end (docs/method.md §1).

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

from grit_fast import _dispatch
from grit_fast.rewards import _fast, reference
from grit_fast.rewards.presets import TAGS
from grit_fast.rewards.results import Trace

__all__ = ["TAGS", "Trace", "parse_trace", "parse_traces"]


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
        return _fast.parse_traces(texts, num_threads)
    return reference.parse_traces(texts, num_threads)


def parse_trace(text: str) -> Trace:
    """Parse one completion; see the module docstring for what a :class:`Trace` holds."""
    if not isinstance(text, str):
        raise TypeError(f"parse_trace expects a str, got {type(text).__name__}")
    return parse_traces([text], num_threads=1)[0]
