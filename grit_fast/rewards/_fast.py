"""Bridge to the compiled trace parser and reward scorer in ``grit_fast._C``.

The compiled code decides Python's ``\\d``/``\\s``/``\\w`` from tables generated from the Unicode
version named in ``_C.unicode_version``. Under an interpreter with another Unicode version, texts
with non-ASCII characters are handed to the pure-Python reference so that results stay exact.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

import numpy as np

from grit_fast import _dispatch
from grit_fast.rewards import reference, reference_judge
from grit_fast.rewards.presets import PAD_TOKEN_ID
from grit_fast.rewards.results import Trace


def _tables_match() -> bool:
    return _dispatch.require_compiled().unicode_version == unicodedata.unidata_version


def _foreign(texts: Sequence[str]) -> list[int]:
    """Indices the compiled tables cannot classify exactly here (none when the versions agree)."""
    if _tables_match():
        return []
    return [i for i, t in enumerate(texts) if not t.isascii()]


def parse_traces(texts: list[str], num_threads: int = 0) -> list[Trace]:
    """Compiled twin of :func:`grit_fast.rewards.reference.parse_traces`."""
    rows, (boxes, spans, offsets), (a_boxes, a_spans, a_offsets) = (
        _dispatch.require_compiled().parse_traces(texts, num_threads)
    )
    o, ao = offsets.tolist(), a_offsets.tolist()
    out = [
        Trace(
            think,
            rethink,
            answer,
            boxes[o[i] : o[i + 1]],
            spans[o[i] : o[i + 1]],
            labels,
            a_boxes[ao[i] : ao[i + 1]],
            a_spans[ao[i] : ao[i + 1]],
            counts,
            order,
            n,
            answer_labels,
        )
        for i, (think, rethink, answer, labels, counts, order, n, answer_labels) in enumerate(rows)
    ]
    for i in _foreign(texts):
        out[i] = reference.parse_trace(texts[i])
    return out


def score_rewards(
    completions: list[str],
    answers: list[str],
    datasets: list[str],
    completion_ids: tuple[np.ndarray, np.ndarray] | None = None,
    preset: str = "official",
    pad_token_id: int | None = PAD_TOKEN_ID,
    num_threads: int = 0,
    rule_judge: bool = False,
) -> tuple[dict[str, np.ndarray], np.ndarray, list[str], np.ndarray | None]:
    """Compiled twin of :func:`grit_fast.rewards.reference.score_rewards`.

    With ``rule_judge`` the rule judge runs in the core too: the fourth result is its scores of the
    judged samples and ``answer_accuracy`` holds them binarised (else None, and 0 there). Where the
    compiled Unicode tables differ from the interpreter's, the judge is left to Python (None).
    """
    rule_judge = rule_judge and _tables_match()
    flat, offsets = (None, None) if completion_ids is None else completion_ids
    components, index, predictions, scores = _dispatch.require_compiled().score_rewards(
        completions,
        answers,
        datasets,
        flat,
        offsets,
        preset,
        pad_token_id,
        reference.int_max_str_digits(),
        num_threads,
        rule_judge,
    )
    foreign = _foreign(completions) + _foreign(answers)
    if foreign:
        return *_patch(
            components,
            index,
            predictions,
            foreign,
            completions,
            answers,
            datasets,
            completion_ids,
            preset,
            pad_token_id,
        ), None
    return components, index, predictions, scores


def pack_ids(rows: object) -> tuple[np.ndarray, np.ndarray] | None:
    """Compiled twin of the numpy path of :func:`grit_fast.rewards.score.pack_completion_ids` for
    lists or tuples of rows of ``int``: ``(flat, offsets)`` int64, or None for any other input."""
    return _dispatch.require_compiled().pack_ids(rows)


def rule_scores(answers: list[str], predictions: list[str]) -> list[float]:
    """Compiled twin of :func:`grit_fast.rewards.reference_judge.rule_score` over a batch."""
    scores = _dispatch.require_compiled().rule_scores(answers, predictions, 1).tolist()
    for i in _foreign(answers) + _foreign(predictions):
        scores[i] = reference_judge.rule_score(answers[i], predictions[i])
    return scores


def _patch(
    components,
    index,
    predictions,
    foreign,
    completions,
    answers,
    datasets,
    completion_ids,
    preset,
    pad_token_id,
):
    """Recompute the ``foreign`` samples with the reference and merge them in."""
    rows = sorted(set(foreign))
    ids = None
    if completion_ids is not None:
        flat, offsets = completion_ids
        sub = [flat[offsets[i] : offsets[i + 1]] for i in rows]
        ids = (np.concatenate(sub) if sub else flat[:0], np.cumsum([0] + [len(s) for s in sub]))
    ref, _, _ = reference.score_rewards(
        [completions[i] for i in rows],
        [answers[i] for i in rows],
        [datasets[i] for i in rows],
        ids,
        preset,
        pad_token_id,
    )
    for name, values in ref.items():
        components[name][rows] = values
    return components, index, predictions
