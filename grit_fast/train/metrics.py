"""Per-step metrics: rewards and their components, zero-advantage groups, lengths, grounding IoU,
and the wall-time split of a step (:class:`PhaseClock`).

Grounding IoU (docs/method.md §5): the boxes written in the reasoning (before ``<rethink>``), mapped from
the model's coordinate convention to original-image pixels, union against the union of the gt
boxes; mean over samples that have gt boxes (NaN when none has).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

MODEL_PHASES = ("generate", "forward_backward")


class PhaseClock:
    """Wall time per phase of one step; CUDA is synchronised at the edges so GPU work lands in its
    phase. ``metrics()``: ``time/<phase>``, ``time/step``, ``time/other`` (in no phase) and
    ``time/overhead_fraction`` = share of the step outside generate and forward+backward."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.totals: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        try:
            yield
        finally:
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            self.totals[name] = self.totals.get(name, 0.0) + time.perf_counter() - t0

    def metrics(self) -> dict[str, float]:
        step = time.perf_counter() - self.start
        out = {f"time/{k}": v for k, v in self.totals.items()}
        out["time/step"] = step
        out["time/other"] = max(0.0, step - sum(self.totals.values()))
        model = sum(self.totals.get(k, 0.0) for k in MODEL_PHASES)
        out["time/overhead_fraction"] = max(0.0, step - model) / step if step > 0 else 0.0
        return out


def nanmean(values: Sequence[float]) -> float:
    """Mean over the finite entries; NaN (quietly) when there are none."""
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else float("nan")


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


def eval_metrics(result: dict[str, Any]) -> dict[str, float]:
    """The numbers of an evaluation (``{"overall": …, "datasets": {name: …}}``) as one flat
    ``metrics.jsonl`` row: ``eval/<key>`` overall, ``eval/<dataset>/<key>`` per dataset, nested
    groups joined by ``/`` (``eval/rewards/think_format``); None (nothing to average) is NaN."""
    out: dict[str, float] = {}

    def add(prefix: str, values: Any) -> None:
        if isinstance(values, dict):
            for key, value in values.items():
                add(f"{prefix}/{key}", value)
        elif values is None:
            out[prefix] = float("nan")
        elif isinstance(values, (int, float)):
            out[prefix] = float(values)

    add("eval", result.get("overall", {}))
    for name, values in result.get("datasets", {}).items():
        add(f"eval/{name}", values)
    return out


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


def step_metrics(
    stats: list[dict[str, float]],
    outputs: list[Any],
    grad_norm: Any,
    lr: float,
    clock: PhaseClock,
) -> dict[str, float]:
    """This process's metrics of a step: the micro-batches' rollout ``stats`` (averaged, NaN-aware),
    the loss outputs' loss, KL, clip fraction and advantage statistics, the gradient norm (a DTensor
    under FSDP is gathered), the learning rate and the phase times."""
    import torch

    from grit_fast.train.setup import full_tensor

    local = {k: nanmean([s[k] for s in stats]) for k in stats[0]}
    local["loss"] = float(np.mean([o.loss.item() for o in outputs]))
    local["kl"] = float(np.mean([o.kl.item() for o in outputs]))
    local["clip_fraction"] = float(np.mean([o.clip_fraction.item() for o in outputs]))
    advantages = torch.cat([o.advantages.detach().float().cpu() for o in outputs])
    local["advantage/mean"] = advantages.mean().item()
    local["advantage/std"] = advantages.std().item() if advantages.numel() > 1 else 0.0
    local["advantage/abs_max"] = advantages.abs().max().item()
    local["grad_norm"] = float(full_tensor(grad_norm))
    local["lr"] = lr
    local.update(clock.metrics())
    return local
