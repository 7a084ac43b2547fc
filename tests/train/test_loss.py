"""The trainer's loss from completion hidden states: fused (no (N, T, V) logits) equals unfused,
loss and gradients, with and without a bias, and under autocast."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from grit_fast.models.forward import head_operands  # noqa: E402
from grit_fast.train.loss import LossSettings, loss_from_hidden  # noqa: E402

N, T, H, V, G = 6, 5, 16, 97, 3  # odd sizes on purpose


def _case(bias: bool, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    head = torch.nn.Linear(H, V, bias=bias)
    with torch.no_grad():
        head.weight.copy_(torch.randn(V, H, generator=gen) * 0.3)
        if bias:
            head.bias.copy_(torch.randn(V, generator=gen))
    hidden = torch.randn(N, T, H, generator=gen, requires_grad=True)
    ids = torch.randint(0, V, (N, T), generator=gen)
    rewards = torch.rand(N, generator=gen)
    mask = (torch.rand(N, T, generator=gen) > 0.2).float()
    mask[:, 0] = 1
    old = torch.log_softmax(torch.randn(N, T, V, generator=gen), -1).gather(-1, ids[..., None])
    ref = old.squeeze(-1) + 0.05 * torch.randn(N, T, generator=gen)
    return head, hidden, ids, rewards, mask, old.squeeze(-1), ref


def _run(fused: bool, case, autocast: bool = False):
    head, hidden, ids, rewards, mask, old, ref = case
    settings = LossSettings(
        group_size=G, beta=0.04, eps_low=0.2, eps_high=0.28, loss_type="grpo", temperature=0.9,
        fused=fused,
    )  # fmt: skip
    head.zero_grad(set_to_none=True)
    hidden.grad = None
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        out = loss_from_hidden(hidden, head, ids, rewards, mask, old, ref, settings)
    out.loss.backward()
    grads = [hidden.grad.clone(), head.weight.grad.clone()]
    if head.bias is not None:
        grads.append(head.bias.grad.clone())
    return out, grads


@pytest.mark.parametrize("bias", [False, True])
def test_fused_equals_unfused(bias):
    case = _case(bias)
    ref_out, ref_grads = _run(False, case)
    out, grads = _run(True, case)
    for a, b in zip(out, ref_out, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    for a, b in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    assert ref_grads[1].abs().sum() > 0


def test_fused_under_autocast_takes_the_autocast_dtype():
    case = _case(True, seed=1)
    head, hidden = case[0], case[1]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        h, w, b = head_operands(hidden, head)
    assert (h.dtype, w.dtype, b.dtype) == (torch.bfloat16,) * 3
    assert head_operands(hidden, head)[1] is head.weight  # no copy outside autocast
    exact, exact_grads = _run(False, case)
    out, grads = _run(True, case, autocast=True)
    unfused, unfused_grads = _run(False, case, autocast=True)
    # bf16 matmuls: the fused path is no further from fp32 than autocast's own unfused path (×4).
    err = (out.loss - exact.loss).abs().item()
    assert err <= 4 * (unfused.loss - exact.loss).abs().item() + 1e-3
    for a, b, c in zip(grads, unfused_grads, exact_grads, strict=True):
        assert a.dtype == c.dtype  # gradients land in the parameters' fp32
        assert (a - c).norm() <= 4 * (b - c).norm() + 1e-3 * c.norm()
