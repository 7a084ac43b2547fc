"""Grounding geometry: pairwise box IoU and the exact IoU of two unions of boxes.

Boxes are ``(x1, y1, x2, y2)`` rows; corners given in the wrong order are reordered.

* :func:`box_iou` ``(N, 4) x (M, 4) -> (N, M)`` float64, ``|A ∩ B| / |A ∪ B|`` (0 for a zero-area
  union). A non-finite coordinate is an error.
* :func:`grounding_iou` - the paper's grounding IoU of one sample: ``|∪P ∩ ∪G| / |∪P ∪ ∪G|`` with
  ``P`` the predicted and ``G`` the ground-truth boxes, as exact areas (x-sweep over compressed
  coordinates, ``O(n^2 log n)`` for ``n`` boxes; no rasterising, no matching). Boxes with a non-finite
  coordinate are dropped; no gt box gives NaN (exclude the sample), no predicted box gives 0.0.
* :func:`grounding_iou_batch` - the same over ragged lists, in C++ threads without the GIL.

The compiled path (``grit_fast._C``) and the twins in :mod:`.reference_geometry` agree bit for bit.
"""

from __future__ import annotations

import numpy as np

from grit_fast import _dispatch
from grit_fast.rewards import reference_geometry as _reference
from grit_fast.rewards._geometry_checks import as_boxes, check_batch

__all__ = ["box_iou", "grounding_iou", "grounding_iou_batch"]


def box_iou(a, b) -> np.ndarray:
    """Pairwise IoU of boxes ``a`` (N, 4) and ``b`` (M, 4) -> float64 (N, M)."""
    if not _dispatch.use_fast("box_iou"):
        return _reference.box_iou(a, b)
    a = as_boxes(a, "a", finite=True)
    b = as_boxes(b, "b", finite=True)
    return _dispatch.require_compiled().box_iou(a, b)


def grounding_iou(pred, gt) -> float:
    """IoU of the union of ``pred`` (K, 4) with the union of ``gt`` (L, 4); see the module doc."""
    if not _dispatch.use_fast("grounding_iou_batch"):
        return _reference.grounding_iou(pred, gt)
    return float(grounding_iou_batch([pred], [gt], num_threads=1)[0])


def grounding_iou_batch(preds, gts, num_threads: int = 0) -> np.ndarray:
    """:func:`grounding_iou` per sample of ragged lists ``preds[i]`` (K_i, 4), ``gts[i]`` (L_i, 4).

    Returns float64 (N,). ``num_threads <= 0`` uses ``GRIT_FAST_NUM_THREADS`` or all cores.
    """
    if not _dispatch.use_fast("grounding_iou_batch"):
        return _reference.grounding_iou_batch(preds, gts, num_threads)
    preds, gts = check_batch(preds, gts)
    pred_flat, pred_offsets = _flatten(preds)
    gt_flat, gt_offsets = _flatten(gts)
    return _dispatch.require_compiled().grounding_iou_batch(
        pred_flat, pred_offsets, gt_flat, gt_offsets, int(num_threads)
    )


def _flatten(boxes: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Concatenated (sum K_i, 4) boxes and int64 offsets (N + 1,)."""
    offsets = np.zeros(len(boxes) + 1, dtype=np.int64)
    np.cumsum([len(b) for b in boxes], out=offsets[1:])
    flat = np.concatenate(boxes) if boxes else np.zeros((0, 4))
    return np.ascontiguousarray(flat, dtype=np.float64), offsets
