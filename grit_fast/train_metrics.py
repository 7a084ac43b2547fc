"""Per-rollout metrics: rewards and their components, zero-advantage groups, lengths, grounding IoU.

Grounding IoU (GRIT_SPEC §5): the boxes written in the reasoning (before ``<rethink>``), mapped from
the model's coordinate convention to original-image pixels, union against the union of the gt
boxes; mean over samples that have gt boxes (NaN when none has).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def zero_advantage_fraction(total: np.ndarray, group_size: int) -> float:
    """Share of groups whose rewards are all equal (so every advantage in them is 0)."""
    groups = np.asarray(total, dtype=np.float64).reshape(-1, group_size)
    return float(np.mean(groups.max(axis=1) == groups.min(axis=1))) if len(groups) else 0.0


def grounding_ious(texts: list[str], records: list[Any], adapter: Any) -> np.ndarray:
    """IoU per completion whose record has gt boxes (others are left out)."""
    from grit_fast.rewards.geometry import grounding_iou_batch
    from grit_fast.rewards.trace import parse_traces

    keep = [i for i, r in enumerate(records) if r.bboxs]
    if not keep:
        return np.zeros(0)
    traces = parse_traces([texts[i] for i in keep])
    preds = [
        adapter.to_original_pixels(t.boxes, records[i].width, records[i].height)
        if len(t.boxes)
        else np.zeros((0, 4))
        for t, i in zip(traces, keep, strict=True)
    ]
    gts = [np.asarray(records[i].bboxs, dtype=np.float64) for i in keep]
    return np.asarray(grounding_iou_batch(preds, gts), dtype=np.float64)


def rollout_metrics(batch: Any, rollout: Any, records: list[Any], adapter: Any) -> dict[str, float]:
    """Scalars of one scored rollout (``batch``: a RewardBatch, ``records``: one per completion)."""
    total = np.asarray(batch.total)
    lengths = rollout.completion_mask.sum(dim=1).float().cpu().numpy()
    out = {
        "reward/mean": float(total.mean()),
        "reward/std": float(total.std()),
        "zero_advantage_group_fraction": zero_advantage_fraction(total, rollout.group_size),
        "completion_length/mean": float(lengths.mean()),
        "completion_length/min": float(lengths.min()),
        "completion_length/max": float(lengths.max()),
    }
    for name, values in batch.components.items():
        out[f"reward/{name}"] = float(np.mean(values))
    ious = grounding_ious(rollout.texts, records, adapter)
    out["grounding_iou"] = float(ious.mean()) if len(ious) else float("nan")
    return out
