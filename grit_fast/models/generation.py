"""Generation, one path for training rollouts, evaluation and the demo.

:func:`generate_completions` encodes the prompts (one image each, each repeated ``repeat`` times in a
row), runs one Hugging Face ``generate`` call over the left-padded batch and returns the completion
ids, their mask and decoded texts (:class:`Completions`). Decoding is greedy unless a ``sampler``
(a logits processor that draws the token, :class:`grit_fast.models.sampling.GroupSampler`) is given.
Generation stops at an end token or at :data:`~grit_fast.models.base.STOP_STRING`.

The generation config is built from the call's own settings only (:func:`generation_config`). HF
fills every setting a call leaves unset from the checkpoint's ``generation_config``, and the
Qwen2.5-VL Instruct releases ship ``repetition_penalty 1.05, temperature 0.1, top_k 1, top_p
0.001`` there: a rollout would run with the penalty while the loss scores the unpenalised policy,
and greedy evaluation would not be greedy. So the model's ``generation_config`` is swapped for the
call's own while ``generate`` runs (:func:`own_generation_config`).

Stopping at the string costs no per-step decoding of every row: only rows whose newest token can
end the string (its text holds the string's last character) have their last few tokens decoded.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers import (
    GenerationConfig,
    LogitsProcessorList,
    StoppingCriteria,
    StoppingCriteriaList,
)

from grit_fast.models.base import STOP_STRING, ModelAdapter
from grit_fast.models.forward import unwrap

__all__ = [
    "Completions",
    "StopOnString",
    "completion_mask",
    "generate_completions",
    "generate_ids",
    "generation_config",
    "own_generation_config",
]


@dataclass
class Completions:
    """Completions of the prompt batch ``prompt_inputs`` (N rows, each prompt repeated in a row).

    ``prompt_inputs``: the processor batch (left padded; ``input_ids`` (N, P)); ``ids`` (N, T)
    int64, every row starting at the same column, pad ids after the end; ``mask`` (N, T) float32,
    1 up to and including the first end token (:func:`completion_mask`); ``texts``: N decoded
    completions (masked tokens and special tokens skipped).
    """

    prompt_inputs: dict[str, torch.Tensor]
    ids: torch.Tensor
    mask: torch.Tensor
    texts: list[str]

    @property
    def lengths(self) -> list[int]:
        """Generated tokens per row, up to and including the first end token."""
        return [int(n) for n in self.mask.sum(dim=1).tolist()]


class StopOnString(StoppingCriteria):
    """Stops each row once its generated text contains ``stop``.

    Per step it decodes the last ``tail`` tokens of only those rows whose newest token is one of
    ``closers``, the ids that can complete ``stop`` (:meth:`ModelAdapter.stop_closers`);
    ``generate(stop_strings=…)`` instead scans the whole vocabulary per call, and decoding every
    row per step costs more than a tiny model's forward pass.
    """

    def __init__(
        self,
        tokenizer: Any,
        prompt_length: int,
        closers: Sequence[int],
        stop: str = STOP_STRING,
        tail: int = 12,
    ):
        self.tokenizer = tokenizer
        self.prompt_length = prompt_length
        self.stop = stop
        self.tail = tail
        self.closers = torch.tensor(sorted(closers), dtype=torch.long)

    def __call__(self, input_ids: torch.Tensor, scores: Any, **kwargs: Any) -> torch.Tensor:
        done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        if input_ids.shape[1] <= self.prompt_length:
            return done
        newest = input_ids[:, -1]
        candidates = torch.isin(newest, self.closers.to(newest.device)).nonzero().flatten()
        if candidates.numel():
            start = max(self.prompt_length, input_ids.shape[1] - self.tail)
            tails = self.tokenizer.batch_decode(
                input_ids[candidates, start:], skip_special_tokens=True
            )
            hits = [self.stop in t for t in tails]
            done[candidates[torch.tensor(hits, dtype=torch.bool, device=done.device)]] = True
        return done


def completion_mask(ids: torch.Tensor, end_ids: Sequence[int]) -> torch.Tensor:
    """(N, T) float mask: 1 up to and including the first token in ``end_ids`` (EOS or pad), else 0."""
    is_end = torch.isin(ids, torch.as_tensor(list(end_ids), dtype=ids.dtype, device=ids.device))
    # Tokens strictly after the first end token: cumulative count of end tokens before them > 0.
    before = torch.cumsum(is_end.int(), dim=1) - is_end.int()
    return (before == 0).float()


def generation_config(adapter: ModelAdapter, max_new_tokens: int) -> GenerationConfig:
    """The generation config of a call, from its own settings only: greedy choice of the token the
    logits processors leave (a sampler draws it there), no repetition penalty or any other setting
    of the checkpoint's ``generation_config``; the adapter's end and pad ids."""
    config = GenerationConfig(
        max_new_tokens=int(max_new_tokens),
        do_sample=False,
        num_beams=1,
        use_cache=True,
        pad_token_id=adapter.pad_token_id,
        eos_token_id=list(adapter.eos_token_ids),
    )
    # Neutral values made explicit: HF would fill unset (None) ones from the model's defaults.
    neutral = GenerationConfig()._get_default_generation_params()
    neutral.pop("max_length")  # max_new_tokens is the limit
    config.update(**neutral, defaults_only=True)
    return config


@contextlib.contextmanager
def own_generation_config(model: Any, config: GenerationConfig) -> Iterator[None]:
    """While inside, the model's ``generation_config`` is ``config`` (restored afterwards)."""
    owner = unwrap(model)
    saved = owner.generation_config
    owner.generation_config = config
    try:
        yield
    finally:
        owner.generation_config = saved


@torch.no_grad()
def generate_ids(
    model: Any,
    adapter: ModelAdapter,
    inputs: dict[str, torch.Tensor],
    max_new_tokens: int,
    sampler: Any = None,
    synced_gpus: bool = False,
) -> torch.Tensor:
    """(rows, T) completion ids of the left-padded prompt batch ``inputs``, in one ``generate`` call.

    Every completion starts at the same column. ``sampler`` (a logits processor) draws the tokens;
    without it decoding is greedy. ``synced_gpus``: every process keeps stepping until all are done
    (FSDP, where each step all-gathers the weights).
    """
    prompt_length = inputs["input_ids"].shape[1]
    config = generation_config(adapter, max_new_tokens)
    stop = StoppingCriteriaList(
        [StopOnString(adapter.tokenizer, prompt_length, adapter.stop_closers)]
    )
    processors = LogitsProcessorList([sampler] if sampler is not None else [])
    with own_generation_config(model, config):
        out = model.generate(
            **inputs,
            generation_config=config,
            stopping_criteria=stop,
            logits_processor=processors,
            synced_gpus=synced_gpus,
        )
    return out[:, prompt_length:]


def generate_completions(
    model: Any,
    adapter: ModelAdapter,
    questions: Sequence[str],
    images: Sequence[Any],
    *,
    max_new_tokens: int,
    repeat: int = 1,
    sampler: Any = None,
    synced_gpus: bool = False,
) -> Completions:
    """``repeat`` completions of each of B prompts (one image each) -> :class:`Completions`.

    Rows ``[b·repeat, (b+1)·repeat)`` belong to prompt b. The prompts are encoded once; that batch
    feeds ``generate`` and is returned for the loss. The model runs in eval mode and gets its mode
    back afterwards.
    """
    if len(questions) != len(images):
        raise ValueError(
            f"generate_completions got {len(questions)} questions and {len(images)} images; "
            "expected one image per question"
        )
    if repeat < 1:
        raise ValueError(f"repeat must be >= 1, got {repeat}")
    device = next(model.parameters()).device
    prompt_inputs = adapter.encode(
        [q for q in questions for _ in range(repeat)],
        [im for im in images for _ in range(repeat)],
    ).to(device)
    was_training = model.training
    model.eval()
    try:
        ids = generate_ids(model, adapter, prompt_inputs, max_new_tokens, sampler, synced_gpus)
    finally:
        model.train(was_training)
    pad = adapter.pad_token_id
    mask = completion_mask(ids, [*adapter.eos_token_ids, pad])
    keep = mask.long()
    texts = adapter.tokenizer.batch_decode(ids * keep + pad * (1 - keep), skip_special_tokens=True)
    return Completions(dict(prompt_inputs), ids, mask, texts)
