"""The warm start's completion loss: full softmax and the sampled softmax that stands in for it."""

import math
from types import SimpleNamespace

import pytest
import torch

from grit_fast.demo.warmstart import WarmStartSettings, completion_nll


def _case(vocab=37, hidden=5, bias=True, seed=0):
    gen = torch.Generator().manual_seed(seed)
    layer = torch.nn.Linear(hidden, vocab, bias=bias)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(vocab, hidden, generator=gen))
        if bias:
            layer.bias.copy_(torch.randn(vocab, generator=gen))
    states = torch.randn(3, 6, hidden, generator=gen, requires_grad=True)
    ids = torch.randint(0, vocab, (3, 6), generator=gen)
    ids[0, :3] = 7  # a repeated target
    mask = torch.tensor([[1.0] * 6, [1.0] * 4 + [0.0] * 2, [1.0] + [0.0] * 5])
    return layer, states, ids, mask


def _reference(layer, states, ids, mask):
    """Twin: the full logits and a plain log-softmax, averaged over the masked tokens."""
    logp = torch.log_softmax(
        states @ layer.weight.T + (0 if layer.bias is None else layer.bias), -1
    )
    picked = logp.gather(-1, ids[..., None]).squeeze(-1)
    return -(picked * mask).sum() / mask.sum()


def _grads(loss, layer, states):
    return torch.autograd.grad(loss, [states, *layer.parameters()])


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("negatives", [0, 10**6])
def test_full_vocabulary_matches_the_reference(bias, negatives):
    """negatives=0, or at least V - m of them, is the full softmax: same loss, same gradients."""
    layer, states, ids, mask = _case(bias=bias)
    loss = completion_nll(states, layer, ids, mask, negatives, torch.Generator().manual_seed(1))
    expected = _reference(layer, states, ids, mask)
    torch.testing.assert_close(loss, expected, rtol=1e-6, atol=1e-6)
    for a, b in zip(_grads(loss, layer, states), _grads(expected, layer, states), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_sampled_gradients_match_finite_differences():
    """The drawn path (K < V - m, scaled logits) differentiates right, for states, weight and bias."""
    layer, states, ids, mask = _case(vocab=30)
    inputs = [t.detach().double().requires_grad_(True) for t in (states, layer.weight, layer.bias)]

    def loss(h, weight, bias):  # completion_nll reads only the layer's weight and bias
        head = SimpleNamespace(weight=weight, bias=bias)
        return completion_nll(h, head, ids, mask, 7, torch.Generator().manual_seed(5))

    assert torch.autograd.gradcheck(loss, inputs)


def test_padding_positions_carry_nothing():
    layer, states, ids, mask = _case()
    other = ids.clone()
    other[mask == 0] = 0
    draws = [torch.Generator().manual_seed(3) for _ in range(2)]
    a = completion_nll(states, layer, ids, mask, 8, draws[0])
    b = completion_nll(states, layer, other, mask, 8, draws[1])
    assert torch.equal(a, b)
    (grad,) = torch.autograd.grad(a, [states])
    assert torch.all(grad[mask == 0] == 0) and torch.any(grad[mask == 1] != 0)


def test_sampled_partition_estimate_is_unbiased():
    """E[exp(sampled loss)] = exp(full loss): the drawn tokens count (V - m) / K times.

    Every position shares one state, so the loss is log Z - mean target logit and exp(loss) is
    linear in the estimate of Z; 10 distinct targets of V = 40 make the wrong scale V / K 33 % off.
    """
    layer, _, _, _ = _case(vocab=40, seed=2)
    gen = torch.Generator().manual_seed(0)
    states = (0.3 * torch.randn(1, 1, 5, generator=gen)).expand(2, 5, 5)
    ids = torch.arange(10).view(2, 5) * 3
    mask = torch.ones(2, 5)
    with torch.no_grad():
        full = math.exp(float(_reference(layer, states, ids, mask)))
        draws = [math.exp(completion_nll(states, layer, ids, mask, 6, gen)) for _ in range(5000)]
    mean = sum(draws) / len(draws)
    error = (sum((d - mean) ** 2 for d in draws) / (len(draws) - 1) / len(draws)) ** 0.5
    assert abs(mean - full) < 4 * error
    assert 4 * error < 0.05 * full  # the wrong scale would be ~25 % off (3/4 of Z is drawn from)
    assert len(set(draws)) > 100  # the draws differ


def test_draws_follow_the_generator():
    layer, states, ids, mask = _case(vocab=200)
    run = [
        completion_nll(states, layer, ids, mask, 16, torch.Generator().manual_seed(s))
        for s in (4, 4, 5)
    ]
    assert torch.equal(run[0], run[1]) and not torch.equal(run[0], run[2])


def test_negatives_must_not_be_negative():
    with pytest.raises(ValueError, match="negatives must be >= 0"):
        WarmStartSettings(negatives=-1)
