"""Warm start: supervised fine-tuning on grounded traces (the paper's "few-shot fine-tuning" baseline).

Each example is a (prompt, completion) pair: the prompt is built by the model's adapter exactly as
GRPO-GR training builds it (image, then ``"\\nQuestion: " + question + SUFFIX``, chat template,
left padding); the completion is a grounded trace (``<think> … [x1,y1,x2,y2] … </think> <rethink> …
</rethink> <answer> …``) followed by the end-of-turn token, so the model learns to stop.

Loss: mean cross-entropy over completion tokens only (prompt and image positions carry no loss and
form no logits), summed over the batch's completion tokens and divided by their count. Optimiser:
AdamW at a constant learning rate after a short linear warm-up, gradient norm clipped to 1.0. The
example order comes from a seeded generator, so a run is reproducible for a seed on one machine.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from tqdm.auto import tqdm

from grit_fast.train_loss import completion_hidden, model_inputs, output_layer

__all__ = ["WarmStartSettings", "completion_batch", "sft_loss", "warm_start"]


@dataclass(frozen=True)
class WarmStartSettings:
    """``steps`` optimizer steps of ``batch_size`` examples; AdamW with ``lr`` and ``warmup`` steps."""

    steps: int = 60
    batch_size: int = 8
    lr: float = 1e-3
    warmup: int = 5
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"warm start {name} must be >= 1, got {getattr(self, name)}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"warm start lr must be a positive number, got {self.lr}")


def completion_batch(
    adapter: Any, completions: Sequence[str], end_token: str = "<|im_end|>"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ``(ids, mask)`` (N, T) of ``completion + end_token`` for each completion."""
    tokenizer = adapter.tokenizer
    end = tokenizer.convert_tokens_to_ids(end_token)
    rows = [tokenizer(c, add_special_tokens=False)["input_ids"] + [end] for c in completions]
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), adapter.pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.float32)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        mask[i, : len(row)] = 1.0
    return ids, mask


def sft_loss(
    model: Any,
    adapter: Any,
    questions: Sequence[str],
    images: Sequence[Any],
    completions: Sequence[str],
) -> torch.Tensor:
    """Mean cross-entropy of the completion tokens given the training prompts (a scalar tensor)."""
    device = next(model.parameters()).device
    prompts = adapter.encode(list(questions), list(images)).to(device)
    ids, mask = completion_batch(adapter, completions)
    ids, mask = ids.to(device), mask.to(device)
    hidden = completion_hidden(model, model_inputs(dict(prompts), ids, mask), ids.shape[1])
    logits = output_layer(model)(hidden).float()  # (N, T, V), completion positions only
    per_token = torch.nn.functional.cross_entropy(
        logits.flatten(0, 1), ids.flatten(), reduction="none"
    ).view_as(mask)
    return (per_token * mask).sum() / mask.sum()


def _fused(params: Sequence[torch.nn.Parameter]) -> dict[str, bool]:
    """AdamW's fused kernel where it exists: ~10x faster on the 152k-row embedding on a CPU."""
    devices = {p.device.type for p in params}
    return {"fused": True} if devices <= {"cpu", "cuda"} and len(devices) == 1 else {}


def warm_start(
    model: Any,
    adapter: Any,
    records: Sequence[Any],
    trace: Callable[[Any], str],
    settings: WarmStartSettings = WarmStartSettings(),
    progress: bool = True,
) -> list[float]:
    """Fine-tune ``model`` in place on ``(prompt, trace(record))`` pairs; returns the loss per step.

    ``records``: :class:`grit_fast.data.GritRecord` (question, image); ``trace(record)`` gives the
    target completion. Images are loaded once. The model is left in eval mode.
    """
    if not records:
        raise ValueError("warm start needs at least one training record")
    examples = [(r.question, r.load_image(), trace(r)) for r in records]
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        params, lr=settings.lr, weight_decay=settings.weight_decay, **_fused(params)
    )
    warmup = max(1, settings.warmup)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / warmup)
    )
    generator = torch.Generator().manual_seed(settings.seed)
    order: list[int] = []
    losses: list[float] = []
    model.train()
    bar = tqdm(range(settings.steps), desc="warm start", disable=not progress, dynamic_ncols=True)
    for _ in bar:
        batch = []
        while len(batch) < settings.batch_size:
            if not order:
                order = torch.randperm(len(examples), generator=generator).tolist()
            batch.append(examples[order.pop()])
        questions, images, completions = zip(*batch, strict=True)
        loss = sft_loss(model, adapter, questions, images, completions)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, settings.max_grad_norm)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
    model.eval()
    return losses
