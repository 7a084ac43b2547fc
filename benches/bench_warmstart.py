"""Warm-start completion loss, forward+backward through the output layer: full vs sampled softmax.

Providers (group = shape):
  full      grit_fast.demo.warmstart.completion_nll with negatives=0: logits over the whole vocabulary
  sampled   the same with negatives=2048: the batch's distinct targets plus 2,048 drawn tokens

Shape: the demo's warm start, hidden 64, Qwen2.5's 151,665-token vocabulary, 8 completions of 40
tokens (``demo-8x40x64``). The output layer is nearly all of a tiny model's supervised step, so this
ratio bounds what the sampled softmax buys a whole step. extra_info records the shape and the
number of candidate rows the sampled loss used.

    python -m pytest benches/bench_warmstart.py --benchmark-columns=min,median,rounds
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from grit_fast.demo.warmstart import completion_nll  # noqa: E402

V = 151_665
SHAPE = (8, 40, 64)
PROVIDERS = {"full": 0, "sampled": 2048}


@pytest.mark.parametrize("provider", list(PROVIDERS))
def test_completion_loss(benchmark, provider):
    n, t, h = SHAPE
    gen = torch.Generator().manual_seed(0)
    layer = torch.nn.Linear(h, V, bias=False)
    with torch.no_grad():
        layer.weight.normal_(0.0, 0.02, generator=gen)
    hidden = torch.randn(n, t, h, generator=gen, requires_grad=True)
    ids = torch.randint(0, 2000, (n, t), generator=gen)  # a task's small working vocabulary
    mask = torch.ones(n, t)
    mask[:, 30:] = 0.0
    negatives = PROVIDERS[provider]
    draws = torch.Generator().manual_seed(1)

    def step():
        layer.weight.grad = hidden.grad = None
        loss = completion_nll(hidden, layer, ids, mask, negatives, draws)
        loss.backward()
        return loss

    step()
    benchmark.group = f"warm start loss demo-{n}x{t}x{h}"
    benchmark.extra_info.update(
        shape=list(SHAPE),
        vocab=V,
        rows=V if not negatives else int(ids[mask.bool()].unique().numel()) + negatives,
    )
    benchmark(step)
