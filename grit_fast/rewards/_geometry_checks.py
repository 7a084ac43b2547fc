"""Argument checks shared by the geometry reference and its compiled dispatch."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["as_boxes", "check_batch"]


def as_boxes(boxes, name: str, *, finite: bool = False) -> np.ndarray:
    """``boxes`` as a C-contiguous float64 array (K, 4); an empty sequence gives (0, 4).

    Accepts numpy arrays, nested sequences and CPU torch tensors of a real numeric dtype. Raises
    TypeError for other dtypes and ValueError for any other shape (or, with ``finite``, for a
    non-finite coordinate, naming its row).
    """
    try:
        arr = np.asarray(boxes)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be an array of boxes of shape (K, 4): {exc}") from None
    if arr.dtype.kind not in "iuf":
        raise TypeError(f"{name} must hold real numbers (int or float), got dtype {arr.dtype}")
    if arr.size == 0 and arr.ndim <= 2 and (arr.ndim < 2 or arr.shape[-1] in (0, 4)):
        return np.zeros((0, 4), dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"{name} must have shape (K, 4) (x1, y1, x2, y2 per row), got {arr.shape}")
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    if finite:
        bad = ~np.isfinite(arr).all(axis=1)
        if bad.any():
            raise ValueError(f"{name} row {int(np.argmax(bad))} has a non-finite coordinate")
    return arr


def check_batch(preds, gts) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Ragged lists of boxes as lists of float64 (K_i, 4) arrays of equal length."""
    for name, seq in (("preds", preds), ("gts", gts)):
        if isinstance(seq, (str, bytes)) or not isinstance(seq, Sequence):
            raise TypeError(f"{name} must be a list with one (K, 4) array of boxes per sample")
    if len(preds) != len(gts):
        raise ValueError(f"preds and gts have lengths {len(preds)} and {len(gts)}; expected equal")
    return (
        [as_boxes(p, f"preds[{i}]") for i, p in enumerate(preds)],
        [as_boxes(g, f"gts[{i}]") for i, g in enumerate(gts)],
    )
