"""Rollout: G sampled completions per prompt with Hugging Face ``generate``.

All B prompts of a micro-batch, G rows each, are generated in one ``generate`` call (the lm_head
weight is read once per decoding step for all rows). Tokens are drawn by
:class:`grit_fast.train.sampling.GroupSampler` from the top-k candidates, each prompt group from its own
generator seeded by the run seed, the step and the prompt's position in the *global* batch, so a
prompt's samples do not depend on how prompts are split over processes or micro-batches (up to
rounding of the batched forward pass). Generation stops at EOS or at the string ``</answer>``.

The completion mask keeps generated tokens up to and including the first EOS or pad (GRIT_SPEC §3);
token ids are kept (the repetition reward reads them). The prompts are encoded once, as one
left-padded batch with each prompt repeated G times in a row (group g is rows [gG, (g+1)G)); that
batch feeds ``generate`` and is returned for the loss.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers import LogitsProcessorList, StoppingCriteria, StoppingCriteriaList

from grit_fast.models.base import STOP_STRING, ModelAdapter
from grit_fast.train.sampling import GroupSampler

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


class StopOnString(StoppingCriteria):
    """Stops each row once its generated text contains ``stop`` (decodes only a short tail per step).

    Cheaper than ``generate(stop_strings=…)``, whose set-up scans the whole 151k vocabulary per call.
    """

    def __init__(self, tokenizer: Any, prompt_length: int, stop: str = STOP_STRING, tail: int = 12):
        self.tokenizer = tokenizer
        self.prompt_length = prompt_length
        self.stop = stop
        self.tail = tail

    def __call__(self, input_ids: torch.Tensor, scores: Any, **kwargs: Any) -> torch.Tensor:
        new = input_ids[:, self.prompt_length :]
        tails = self.tokenizer.batch_decode(new[:, -self.tail :], skip_special_tokens=True)
        return torch.tensor([self.stop in t for t in tails], device=input_ids.device)


def completion_mask(ids: torch.Tensor, end_ids: Sequence[int]) -> torch.Tensor:
    """(N, T) float mask: 1 up to and including the first token in ``end_ids`` (EOS or pad), else 0."""
    is_end = torch.zeros_like(ids, dtype=torch.bool)
    for end in end_ids:
        is_end |= ids == end
    # Tokens strictly after the first end token: cumulative count of end tokens before them > 0.
    before = torch.cumsum(is_end.int(), dim=1) - is_end.int()
    return (before == 0).float()


def prompt_seed(seed: int, step: int, index: int) -> int:
    """A generation seed per (run seed, step, prompt position in the global batch)."""
    return (seed * 1_000_003 + step * 10_007 + index * 101 + 17) % (2**63 - 1)


@torch.no_grad()
def generate_ids(
    model: Any,
    adapter: ModelAdapter,
    inputs: dict[str, torch.Tensor],
    generation: dict[str, Any],
    sampler: GroupSampler | None = None,
) -> torch.Tensor:
    """(rows, T) completion ids of the left-padded prompt batch ``inputs``, in one ``generate`` call.

    Every completion starts at the same column. ``sampler`` draws the tokens; without it decoding is
    greedy.
    """
    prompt_length = inputs["input_ids"].shape[1]
    stop = StoppingCriteriaList([StopOnString(adapter.tokenizer, prompt_length)])
    processors = LogitsProcessorList([sampler] if sampler is not None else [])
    out = model.generate(
        **inputs,
        stopping_criteria=stop,
        logits_processor=processors,
        pad_token_id=adapter.pad_token_id,
        eos_token_id=adapter.eos_token_ids,
        **generation,
    )
    return out[:, prompt_length:]


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
    do_sample: bool = True,
) -> Rollout:
    """Sample ``group_size`` completions for each of B prompts (one image each) -> :class:`Rollout`.

    ``do_sample=False`` decodes greedily (evaluation); the sampling settings are then unused.
    """
    if len(questions) != len(images) or len(questions) != len(seeds):
        raise ValueError(
            f"generate_rollout got {len(questions)} questions, {len(images)} images and "
            f"{len(seeds)} seeds; expected one of each per prompt"
        )
    device = next(model.parameters()).device
    prompt_inputs = adapter.encode(
        [q for q in questions for _ in range(group_size)],
        [im for im in images for _ in range(group_size)],
    ).to(device)
    generation: dict[str, Any] = {
        "max_new_tokens": max_new_tokens,
        "use_cache": True,
        # Sampling happens in GroupSampler; generate itself picks the token it leaves at score 0.
        "do_sample": False,
        "temperature": None,
        "top_k": None,
        "top_p": None,
    }
    sampler = None
    if do_sample:
        sampler = GroupSampler(seeds, group_size, temperature, top_k, top_p, device=device)
    was_training = model.training
    model.eval()
    try:
        ids = generate_ids(model, adapter, prompt_inputs, generation, sampler)
    finally:
        model.train(was_training)
    pad = adapter.pad_token_id
    mask = completion_mask(ids, [*adapter.eos_token_ids, pad])
    texts = adapter.tokenizer.batch_decode(
        ids * mask.long() + pad * (1 - mask.long()), skip_special_tokens=True
    )
    if max_prompt_length is not None and prompt_inputs["input_ids"].shape[1] > max_prompt_length:
        # Cutting a multimodal prompt would cut image tokens; keep it and say so.
        logger.warning(
            "prompt length %d exceeds max_prompt_length=%d (not truncated: image tokens would be cut)",
            prompt_inputs["input_ids"].shape[1],
            max_prompt_length,
        )
    return Rollout(dict(prompt_inputs), ids, mask, texts, group_size)
