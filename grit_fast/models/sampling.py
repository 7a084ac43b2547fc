"""Top-k sampling for rollouts: draw from the k best tokens only, one random stream per prompt group.

Hugging Face's sampling path masks the (rows, V) scores outside the top k, soft-maxes all V columns and
calls ``torch.multinomial`` over them; with Qwen's 151k-token vocabulary that costs more than a tiny
model's whole forward pass. The distribution only has k non-zero entries, so :class:`GroupSampler`
takes the top k once, applies temperature and top-p to those k values, samples among them and hands
``generate`` scores that are 0 at the drawn token and -inf elsewhere; greedy decoding then emits
exactly that token. Same distribution as ``do_sample=True, temperature, top_k, top_p`` (HF applies
top-k before top-p, as here), without the full-vocabulary softmax and multinomial.

Rows ``[g*G, (g+1)*G)`` draw from generator ``g``, seeded by that prompt's seed, so a prompt's samples
do not depend on which other prompts share the ``generate`` call (up to floating-point rounding of
the batched forward pass).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import LogitsProcessor


def _check_settings(temperature: float, top_k: int, top_p: float) -> None:
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if top_k < 0:
        raise ValueError(f"top_k must be >= 0 (0 = every token), got {top_k}")
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")


def candidate_probs(
    scores: torch.Tensor, temperature: float, top_k: int, top_p: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """(probs, token ids), each (rows, k): the sampling distribution restricted to its support.

    The k highest scores (``top_k=0``: every token; ties broken by ``torch.topk``), divided by ``temperature``, renormalised;
    with ``top_p < 1`` the least likely candidates whose total probability stays within ``1 - top_p``
    get probability 0 (the most likely one always stays), as in Hugging Face's top-p warper.
    """
    _check_settings(temperature, top_k, top_p)
    k = scores.shape[-1] if top_k == 0 else min(top_k, scores.shape[-1])
    values, ids = torch.topk(scores.float(), k, dim=-1)  # sorted, most likely first
    probs = torch.softmax(values / temperature, dim=-1)
    if top_p < 1.0:
        # Probability mass strictly above each candidate (descending order); HF drops a token when the
        # mass at or below it (ascending cumulative sum) is <= 1 - top_p, i.e. when this is >= top_p.
        above = torch.cumsum(probs, dim=-1) - probs
        drop = above >= top_p
        drop[..., 0] = False
        probs = probs.masked_fill(drop, 0.0)
        probs = probs / probs.sum(dim=-1, keepdim=True)
    return probs, ids


class GroupSampler(LogitsProcessor):
    """A logits processor that samples (see the module doc); use it with ``do_sample=False``.

    ``seeds[g]`` seeds the generator of rows ``[g*group_size, (g+1)*group_size)``.
    """

    def __init__(
        self,
        seeds: Sequence[int],
        group_size: int,
        temperature: float,
        top_k: int,
        top_p: float = 1.0,
        device: torch.device | str = "cpu",
    ):
        if group_size < 1:
            raise ValueError(f"group_size must be >= 1, got {group_size}")
        _check_settings(temperature, top_k, top_p)
        self.group_size = group_size
        self.temperature = temperature
        self.top_k = top_k
        self.top_p = top_p
        self.generators = [torch.Generator(device=device).manual_seed(int(s)) for s in seeds]

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        rows = scores.shape[0]
        if rows != len(self.generators) * self.group_size:
            raise ValueError(
                f"GroupSampler has {len(self.generators)} groups of {self.group_size} rows, "
                f"but generate passed {rows} rows"
            )
        probs, ids = candidate_probs(scores, self.temperature, self.top_k, self.top_p)
        g = self.group_size
        drawn = torch.cat(
            [
                torch.multinomial(probs[i * g : (i + 1) * g], 1, generator=gen)
                for i, gen in enumerate(self.generators)
            ]
        )
        tokens = ids.gather(-1, drawn)
        out = torch.full_like(scores, float("-inf"))
        return out.scatter_(-1, tokens, 0.0)
