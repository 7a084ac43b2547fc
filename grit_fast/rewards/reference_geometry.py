"""Pure-Python/numpy twins of the compiled geometry (same signatures as :mod:`.geometry`).

They follow the C++ algorithm operation for operation (same sweep, same sort order, same sums), so
fast and reference agree to the last bit on the same inputs; they are also the benchmark baseline.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np

from grit_fast.rewards._geometry_checks import as_boxes, check_batch

__all__ = ["box_iou", "grounding_iou", "grounding_iou_batch", "union_areas"]

Box = tuple[float, float, float, float]


def _normalized(row: Sequence[float]) -> Box | None:
    """Row with corners reordered (x1 <= x2, y1 <= y2), or None when a coordinate is not finite."""
    x1, y1, x2, y2 = (float(v) for v in row)
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
        return None
    return (min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2))


# Coordinates beyond this magnitude could overflow an area (or a side) to infinity.
LARGE_COORDINATE = 1e150


def rescale_exponent(max_abs: float) -> int:
    """``e`` such that ``max_abs * 2**-e`` lies in [0.5, 1) when ``max_abs > 1e150``, else 0.

    IoU is scale invariant and scaling by a power of two is exact, so huge finite coordinates are
    scaled down before any area is formed instead of overflowing to inf/inf = NaN.
    """
    return math.frexp(max_abs)[1] if max_abs > LARGE_COORDINATE else 0


def box_iou(a, b) -> np.ndarray:
    """Pairwise IoU: ``a`` (N, 4), ``b`` (M, 4) -> float64 (N, M).

    IoU(A, B) = |A ∩ B| / (|A| + |B| - |A ∩ B|), 0 where the union has zero area; corners reordered.
    A non-finite coordinate raises ValueError (there is no meaningful pairwise value for it).
    """
    a = as_boxes(a, "a", finite=True)
    b = as_boxes(b, "b", finite=True)
    largest = max(float(np.abs(a).max(initial=0.0)), float(np.abs(b).max(initial=0.0)))
    e = rescale_exponent(largest)
    if e:
        a, b = np.ldexp(a, -e), np.ldexp(b, -e)
    lo = np.minimum(a[:, None, :2], a[:, None, 2:])  # (N, 1, 2)
    hi = np.maximum(a[:, None, :2], a[:, None, 2:])
    blo = np.minimum(b[None, :, :2], b[None, :, 2:])  # (1, M, 2)
    bhi = np.maximum(b[None, :, :2], b[None, :, 2:])
    side = np.maximum(0.0, np.minimum(hi, bhi) - np.maximum(lo, blo))  # (N, M, 2)
    inter = side[..., 0] * side[..., 1]
    area_a = (hi[..., 0] - lo[..., 0]) * (hi[..., 1] - lo[..., 1])
    area_b = (bhi[..., 0] - blo[..., 0]) * (bhi[..., 1] - blo[..., 1])
    union = area_a + area_b - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0.0, inter / np.where(union > 0.0, union, 1.0), 0.0)


def _merge(intervals: list[tuple[float, float]]) -> tuple[list[tuple[float, float]], float]:
    """Sorted, merged intervals and their covered length."""
    if not intervals:
        return [], 0.0
    intervals.sort()
    merged = [intervals[0]]
    for lo, hi in intervals[1:]:
        if lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    length = 0.0
    for lo, hi in merged:
        length += hi - lo
    return merged, length


def _overlap(p: list[tuple[float, float]], g: list[tuple[float, float]]) -> float:
    length, i, j = 0.0, 0, 0
    while i < len(p) and j < len(g):
        lo, hi = max(p[i][0], g[j][0]), min(p[i][1], g[j][1])
        if hi > lo:
            length += hi - lo
        if p[i][1] < g[j][1]:
            i += 1
        else:
            j += 1
    return length


def union_areas(pred: list[Box], gt: list[Box]) -> tuple[float, float]:
    """(|∪P ∩ ∪G|, |∪P ∪ ∪G|) for reordered finite boxes, exact, by an x-sweep: O(n^2 log n)."""
    xs = sorted({x for b in (*pred, *gt) for x in (b[0], b[2])})
    inter = union = 0.0
    for left, right in itertools.pairwise(xs):
        width = right - left
        p = [(b[1], b[3]) for b in pred if b[0] <= left and b[2] >= right and b[3] > b[1]]
        g = [(b[1], b[3]) for b in gt if b[0] <= left and b[2] >= right and b[3] > b[1]]
        p, len_p = _merge(p)
        g, len_g = _merge(g)
        both = _overlap(p, g)
        inter += width * both
        union += width * (len_p + len_g - both)
    return inter, union


def grounding_iou(pred, gt) -> float:
    """IoU of the union of ``pred`` (K, 4) boxes with the union of ``gt`` (L, 4) boxes.

    Boxes with a non-finite coordinate are dropped and corners are reordered. No gt box -> NaN (the
    sample is excluded from a mean); no predicted box -> 0.0; both unions of zero area -> 0.0.
    """
    pred = as_boxes(pred, "pred")
    gt = as_boxes(gt, "gt")
    g = [b for b in map(_normalized, gt.tolist()) if b is not None]
    if not g:
        return math.nan
    p = [b for b in map(_normalized, pred.tolist()) if b is not None]
    if not p:
        return 0.0
    e = rescale_exponent(max(abs(v) for box in (*p, *g) for v in box))
    if e:
        p = [tuple(math.ldexp(v, -e) for v in box) for box in p]
        g = [tuple(math.ldexp(v, -e) for v in box) for box in g]
    inter, union = union_areas(p, g)
    return inter / union if union > 0.0 else 0.0


def grounding_iou_batch(preds, gts, num_threads: int = 0) -> np.ndarray:
    """:func:`grounding_iou` of each pair of ``preds[i]``, ``gts[i]`` -> float64 (N,).

    ``num_threads`` is accepted for signature parity and ignored.
    """
    preds, gts = check_batch(preds, gts)
    return np.array(
        [grounding_iou(p, g) for p, g in zip(preds, gts, strict=True)], dtype=np.float64
    )
