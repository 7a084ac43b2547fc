"""Rollout: G sampled completions per prompt, through the shared generation path.

All B prompts of a micro-batch, G rows each, are generated in one ``generate`` call
(:func:`grit_fast.models.generation.generate_completions`; the lm_head weight is read once per
decoding step for all rows). Tokens are drawn by :class:`grit_fast.models.sampling.GroupSampler` from
the top-k candidates, each prompt group from its own generator seeded by the run seed, the step and
the prompt's position in the *global* batch, so a prompt's samples do not depend on how prompts are
split over processes or micro-batches (up to rounding of the batched forward pass). Generation stops
at EOS or at the string ``</answer>``.

The end of a completion is the released GRIT code's (:func:`end_completions`, docs/method.md §3): the
tokens before the first EOS or pad, then one EOS (the tokenizer's, ``<|im_end|>``) with mask 1 unless
the row already holds ``max_new_tokens`` tokens; so every completion stopped early - by EOS, by
``</answer>`` or on a pad - trains one end token. Token ids are kept (the repetition reward reads
them). The prompts are encoded once, as one left-padded batch with each prompt repeated G times in a
row (group g is rows [gG, (g+1)G)); that batch feeds ``generate`` and is returned for the loss.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from grit_fast.models.base import ModelAdapter
from grit_fast.models.generation import generate_completions
from grit_fast.models.sampling import GroupSampler

logger = logging.getLogger(__name__)


@dataclass
class Rollout:
    """Completions of B prompts x G samples (N = B·G rows, group-major).

    ``prompt_inputs``: the processor batch of the N prompts (left padded; ``input_ids`` (N, P));
    ``completion_ids`` (N, T) int64, padded with the pad id; ``completion_mask`` (N, T) float32;
    ``texts``: N decoded completions (special tokens skipped).
    """

    prompt_inputs: dict[str, torch.Tensor]
    completion_ids: torch.Tensor
    completion_mask: torch.Tensor
    texts: list[str]
    group_size: int

    @property
    def prompt_length(self) -> int:
        return int(self.prompt_inputs["input_ids"].shape[1])


def end_completions(
    ids: torch.Tensor, end_ids: Sequence[int], eos_id: int, pad_id: int, max_len: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, mask) of generated ``ids`` (N, T) ended as the released GRIT code ends them.

    Row i keeps its k_i tokens before the first token in ``end_ids`` (all T if none); then, if
    k_i < ``max_len``, ``eos_id`` follows with mask 1. Everything after is ``pad_id`` with mask 0.
    The width is max_i (k_i + [k_i < max_len]), so it can be T + 1 (all rows stopped by the stop
    string at the last step) or less than T.
    """
    n, t = ids.shape
    is_end = torch.isin(ids, torch.as_tensor(list(end_ids), dtype=ids.dtype, device=ids.device))
    kept = torch.where(is_end.any(dim=1), is_end.int().argmax(dim=1), t)  # (N,)
    length = kept + (kept < max_len).long()
    width = int(length.max()) if n else 0
    cols = torch.arange(width, device=ids.device)[None, :]  # [1, W]
    out = torch.full((n, width), pad_id, dtype=ids.dtype, device=ids.device)
    body = min(width, t)
    out[:, :body] = torch.where(cols[:, :body] < kept[:, None], ids[:, :body], pad_id)
    out = torch.where(cols == kept[:, None], eos_id, out)  # the appended EOS (where k_i < W)
    mask = (cols < length[:, None]).float()
    return out, mask


def prompt_seed(seed: int, step: int, index: int) -> int:
    """A generation seed per (run seed, step, prompt position in the global batch)."""
    return (seed * 1_000_003 + step * 10_007 + index * 101 + 17) % (2**63 - 1)


def generate_rollout(
    model: Any,
    adapter: ModelAdapter,
    questions: Sequence[str],
    images: Sequence[Any],
    *,
    group_size: int,
    seeds: Sequence[int],
    max_new_tokens: int,
    temperature: float,
    top_k: int,
    top_p: float,
    max_prompt_length: int | None = None,
    synced_gpus: bool = False,
) -> Rollout:
    """Sample ``group_size`` completions for each of B prompts (one image each) -> :class:`Rollout`.

    ``seeds[b]`` seeds prompt b's generator (:func:`prompt_seed`); ``synced_gpus`` as in
    :func:`grit_fast.models.generation.generate_ids`.
    """
    if len(questions) != len(images) or len(questions) != len(seeds):
        raise ValueError(
            f"generate_rollout got {len(questions)} questions, {len(images)} images and "
            f"{len(seeds)} seeds; expected one of each per prompt"
        )
    device = next(model.parameters()).device
    sampler = GroupSampler(seeds, group_size, temperature, top_k, top_p, device=device)
    out = generate_completions(
        model,
        adapter,
        questions,
        images,
        max_new_tokens=max_new_tokens,
        repeat=group_size,
        sampler=sampler,
        synced_gpus=synced_gpus,
    )
    ids, mask = end_completions(
        out.ids,
        [*adapter.eos_token_ids, adapter.pad_token_id],
        adapter.eos_token_id,
        adapter.pad_token_id,
        max_new_tokens,
    )
    prompt_inputs = out.prompt_inputs
    if max_prompt_length is not None and prompt_inputs["input_ids"].shape[1] > max_prompt_length:
        # Cutting a multimodal prompt would cut image tokens; keep it and say so.
        logger.warning(
            "prompt length %d exceeds max_prompt_length=%d (not truncated: image tokens would be cut)",
            prompt_inputs["input_ids"].shape[1],
            max_prompt_length,
        )
    return Rollout(prompt_inputs, ids, mask, out.texts, group_size)
