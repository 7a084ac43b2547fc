"""Evaluation metrics from prediction records, per dataset and overall (docs/method.md §5).

For a group of records (one dataset, or all):

* ``acc`` = 100 x mean judge score over records with a judge score (the paper's ACC, non-binarised);
  ``acc_binary`` = 100 x fraction with score > 0 (the training reward's binarisation); ``judged``
  counts them. Sets named ``ovd…`` have no judge score.
* ``grounding_iou`` = mean grounding IoU over records with gt boxes (no predicted box scores 0);
  ``grounded`` counts them. None when the group has none.
* ``format`` = fraction of records with ``think``, ``rethink``, ``answer`` present, the five tags
  ``ordered``, ``box`` (at least one box, or a counting question whose gt count is 0, where no box
  is right; see :mod:`grit_fast.eval.predictions`), and ``all`` of these.
* ``mean_boxes``, ``mean_completion_chars``, ``mean_completion_tokens`` (when every record has it),
  ``rewards`` (mean of each component) and ``reward_total``.

Sums use :func:`math.fsum`, which is exactly rounded, so the metrics do not depend on the order of
the records - the same predictions give the same numbers for any batch size or process count.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = ["FORMAT_KEYS", "compute_metrics", "group_metrics"]

FORMAT_KEYS = ("think", "rethink", "answer", "ordered", "box")


def _mean(values: Iterable[float]) -> float | None:
    values = list(values)
    return math.fsum(values) / len(values) if values else None


def group_metrics(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Metrics of one group of scored prediction records (see the module doc)."""
    scores = [float(r["judge_score"]) for r in records if r.get("judge_score") is not None]
    ious = [float(r["grounding_iou"]) for r in records if r.get("grounding_iou") is not None]
    acc = _mean(scores)
    formats = [r.get("format") or {} for r in records]
    fmt = {k: _mean(float(bool(f.get(k))) for f in formats) for k in FORMAT_KEYS}
    fmt["all"] = _mean(float(all(f.get(k) for k in FORMAT_KEYS)) for f in formats)
    tokens = [r.get("completion_tokens") for r in records]
    components = sorted({name for r in records for name in (r.get("rewards") or {})})
    return {
        "n": len(records),
        "acc": None if acc is None else 100.0 * acc,
        "acc_binary": None if acc is None else 100.0 * _mean(float(s > 0) for s in scores),
        "judged": len(scores),
        "grounding_iou": _mean(ious),
        "grounded": len(ious),
        "format": fmt,
        "mean_boxes": _mean(float(len(r.get("boxes") or ())) for r in records),
        "mean_completion_chars": _mean(float(len(r.get("completion") or "")) for r in records),
        "mean_completion_tokens": (
            _mean(float(t) for t in tokens) if tokens and None not in tokens else None
        ),
        "rewards": {
            name: _mean(float(r["rewards"][name]) for r in records if name in r.get("rewards", {}))
            for name in components
        },
        "reward_total": _mean(
            float(r["reward_total"]) for r in records if r.get("reward_total") is not None
        ),
    }


def compute_metrics(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """``{"overall": metrics, "datasets": {name: metrics}}`` of scored prediction records.

    Datasets are listed by name; duplicate ``index`` values are an error (a merge gone wrong would
    otherwise count samples twice).
    """
    seen: set[int] = set()
    for r in records:
        index = r.get("index")
        if index is not None:
            if index in seen:
                raise ValueError(f"prediction index {index} occurs more than once")
            seen.add(index)
    names = sorted({str(r.get("dataset", "")) for r in records})
    return {
        "overall": group_metrics(records),
        "datasets": {
            name: group_metrics([r for r in records if str(r.get("dataset", "")) == name])
            for name in names
        },
    }
