"""Triton loss kernels against their plain-torch twins: loss, metrics and gradients.

Runs on CPU through Triton's interpreter (``TRITON_INTERPRET=1``, set before triton is imported) with
tiny grids; where CUDA is available the same comparisons run on CUDA tensors instead.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

from grit_fast import backend  # noqa: E402
from grit_fast.ops import (  # noqa: E402
    group_advantages,
    grpo_loss,
    grpo_loss_from_logits,
    reference,
    selective_log_softmax,
)
from tests.conftest import require_triton_interpreter  # noqa: E402

N, G, T, V = 6, 3, 37, 1000
LOSS_TYPES = ["grpo", "bnpo", "dr_grpo", "dapo"]
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


@pytest.fixture
def triton_cpu():
    """Kernels can run here: on the GPU, or on CPU through the interpreter."""
    if DEVICE == "cpu":
        require_triton_interpreter()


def _zeros(*shape):
    return torch.zeros(*shape, device=DEVICE)


def _inputs(seed=0, n=N, t=T, spread=0.3, dtype=torch.float32):
    """logp/old/ref (n, t) with ratios spread enough that many leave the clip range (spread 0.3 ->
    |logp - old| ~ 0.3 > log 1.2); rewards in groups of G with one group of equal rewards; one
    all-masked row."""
    g = torch.Generator().manual_seed(seed)
    logp = -torch.rand(n, t, generator=g) * 4
    old = logp + spread * torch.randn(n, t, generator=g)
    ref = logp + spread * torch.randn(n, t, generator=g)
    rewards = torch.rand(n, generator=g) * 4
    rewards[:G] = 0.5  # a group of equal rewards: A = 0 exactly
    mask = torch.rand(n, t, generator=g) > 0.25
    mask[n - 2] = False
    return tuple(
        x.to(DEVICE) for x in (logp.to(dtype), old.to(dtype), ref.to(dtype), rewards, mask)
    )


def _both(fn, x, *args, **kwargs):
    """(output, grad of loss w.r.t. x) under the fast path and under the reference."""
    results = []
    for mode in ("fast", "reference"):
        leaf = x.detach().clone().requires_grad_()
        with backend(mode):
            out = fn(leaf, *args, **kwargs)
        (grad,) = torch.autograd.grad(out.loss, leaf)
        results.append((out, grad))
    return results


def _assert_outputs_close(fast, ref, **tol):
    for name in ("loss", "advantages", "kl", "clip_fraction"):
        torch.testing.assert_close(getattr(fast, name), getattr(ref, name), msg=name, **tol)


@pytest.mark.parametrize("loss_type", LOSS_TYPES)
@pytest.mark.parametrize(("with_old", "with_ref"), [(True, True), (False, False), (True, False)])
def test_grpo_loss_matches_reference(triton_cpu, loss_type, with_old, with_ref):
    logp, old, ref, rewards, mask = _inputs()
    kw = dict(
        group_size=G,
        old_logp=old if with_old else None,
        ref_logp=ref if with_ref else None,
        loss_type=loss_type,
        normalizer=123.0,
        max_completion_length=T + 2,
    )
    (fast, g_fast), (slow, g_slow) = _both(grpo_loss, logp, rewards, mask, **kw)
    _assert_outputs_close(fast, slow)
    torch.testing.assert_close(g_fast, g_slow)
    assert torch.equal(fast.advantages[:G], _zeros(G))
    assert torch.equal(g_fast[N - 2], _zeros(T))  # the all-masked row
    if with_old:
        assert 0.05 < fast.clip_fraction.item() < 0.95  # the clip is really exercised


def test_grpo_loss_clip_inactive_and_beta_zero(triton_cpu):
    logp, old, ref, rewards, mask = _inputs(spread=0.01)  # ratios within [0.8, 1.2]
    kw = dict(group_size=G, old_logp=old, ref_logp=ref, beta=0.0)
    (fast, g_fast), (slow, g_slow) = _both(grpo_loss, logp, rewards, mask, **kw)
    assert fast.clip_fraction.item() == 0.0
    assert fast.kl.item() > 0  # still reported when β = 0
    _assert_outputs_close(fast, slow)
    torch.testing.assert_close(g_fast, g_slow)


@pytest.mark.parametrize("scale_rewards", [True, False])
def test_group_size_one_and_unscaled_advantages(triton_cpu, scale_rewards):
    logp, old, ref, rewards, mask = _inputs()
    kw = dict(group_size=1, old_logp=old, ref_logp=ref, scale_rewards=scale_rewards)
    (fast, g_fast), (slow, g_slow) = _both(grpo_loss, logp, rewards, mask, **kw)
    assert torch.equal(fast.advantages, _zeros(N))
    _assert_outputs_close(fast, slow)
    torch.testing.assert_close(g_fast, g_slow)


def test_everything_masked_gives_zero_not_nan(triton_cpu):
    logp, old, _, rewards, _ = _inputs()
    mask = torch.zeros(N, T, dtype=torch.bool, device=DEVICE)
    for loss_type in ("grpo", "bnpo"):
        (fast, g_fast), _ = _both(
            grpo_loss, logp, rewards, mask, group_size=G, old_logp=old, loss_type=loss_type
        )
        assert fast.loss.item() == 0.0 and fast.clip_fraction.item() == 0.0
        assert torch.equal(g_fast, _zeros(N, T))


@pytest.mark.parametrize("values", [[0.1, 0.1, 0.1], [1 / 3] * 3, [1.0, 0.0, 0.0], [2.0, 2.5, 7.0]])
@pytest.mark.parametrize("scale", [True, False])
def test_group_advantages_fast_matches_reference(impl, values, scale):
    rewards = torch.tensor(values * 2 + [0.0, 1.0, 3.0], device=DEVICE)
    got = group_advantages(rewards, 3, scale=scale)
    want = reference.group_advantages(rewards, 3, scale=scale)
    torch.testing.assert_close(got, want)
    if len(set(values)) == 1:
        assert torch.equal(got[:6], _zeros(6))


def test_group_advantages_with_zero_eps_and_equal_rewards(impl):
    adv = group_advantages(torch.tensor([3.0, 3.0, 1.0, 2.0], device=DEVICE), 2, eps=0.0)
    assert torch.equal(adv[:2], _zeros(2))  # 0 / 0 is defined as 0, not NaN
    torch.testing.assert_close(adv[2:].cpu(), torch.tensor([-0.5, 0.5]) / (0.5**0.5))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_against_fp32_reference(triton_cpu, dtype):
    """Inputs rounded to ``dtype``: our error against the fp32 reference on the exact inputs must be
    no worse than the reference's own error on the rounded inputs (rounding is the only loss;
    accumulation is fp32), and the gradient is exact up to one rounding to ``dtype``."""
    logp, old, ref, rewards, mask = _inputs(seed=5)
    low = [x.to(dtype) for x in (logp, old, ref)]
    kw = dict(group_size=G, loss_type="bnpo")
    exact = reference.grpo_loss(logp, rewards, mask, old_logp=old, ref_logp=ref, **kw)
    rounded = reference.grpo_loss(
        low[0].float(), rewards, mask, old_logp=low[1], ref_logp=low[2], **kw
    )
    (fast, g_fast), (_, g_slow) = _both(
        grpo_loss, low[0], rewards, mask, old_logp=low[1], ref_logp=low[2], **kw
    )
    assert g_fast.dtype == dtype
    torch_error = (rounded.loss - exact.loss).abs().item()
    our_error = (fast.loss - exact.loss).abs().item()
    assert our_error <= 1.01 * torch_error + 1e-6
    eps = torch.finfo(dtype).eps
    torch.testing.assert_close(g_fast.float(), g_slow.float(), rtol=eps, atol=1e-7)


def _logits(seed=0, n=N, t=T, v=V, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, t, v, generator=g) * 3
    ids = torch.randint(0, v // 2, (n, t), generator=g)
    logits[0, 0, 7] = 1e4  # one huge logit, chosen
    ids[0, 0] = 7
    logits[0, 1, :] = -1e4  # a flat row at -1e4
    logits[0, 2, 3] = -1e4  # a tiny chosen logit
    ids[0, 2] = 3
    logits[1, :, v // 2 :] = float("-inf")  # masked vocabulary
    return logits.to(dtype).to(DEVICE), ids.to(DEVICE)


def _torch_logprob(logits, ids, temperature=1.0):
    return torch.log_softmax(logits.float() / temperature, -1).gather(-1, ids[..., None])[..., 0]


@pytest.mark.parametrize("temperature", [1.0, 0.9])
def test_selective_log_softmax_matches_torch(triton_cpu, temperature):
    logits, ids = _logits()
    x = logits.requires_grad_()
    with backend("fast"):
        got = selective_log_softmax(x, ids, temperature)
    want = _torch_logprob(x, ids, temperature)
    torch.testing.assert_close(got, want)
    g = torch.randn(N, T, generator=torch.Generator().manual_seed(1)).to(DEVICE)
    (grad,) = torch.autograd.grad((got * g).sum(), x)
    (want_grad,) = torch.autograd.grad((want * g).sum(), x)
    torch.testing.assert_close(grad, want_grad)
    assert torch.equal(grad[1, :, V // 2 :], _zeros(T, V - V // 2))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_selective_log_softmax_half_precision(triton_cpu, dtype):
    logits, ids = _logits(seed=2, n=2, t=5, v=777)
    logits = logits.clamp(-6e4, 6e4).to(dtype)
    x = logits[:, 1:, :].requires_grad_()  # a strided slice, as in logits[:, :-1]
    with backend("fast"):
        got = selective_log_softmax(x, ids[:, 1:].int())  # int32 ids work too
    torch.testing.assert_close(got, _torch_logprob(x, ids[:, 1:]))
    (grad,) = torch.autograd.grad(got.sum(), x)
    (want,) = torch.autograd.grad(_torch_logprob(x, ids[:, 1:]).sum(), x)
    assert grad.dtype == dtype
    torch.testing.assert_close(grad, want)


@pytest.mark.parametrize("loss_type", LOSS_TYPES)
@pytest.mark.parametrize(("with_old", "with_ref"), [(True, True), (False, False), (False, True)])
def test_grpo_loss_from_logits_matches_reference(triton_cpu, loss_type, with_old, with_ref):
    logits, ids = _logits(seed=3)
    temperature = 1.0 if with_old else 0.7
    logp = _torch_logprob(logits, ids, temperature)
    _, _, _, rewards, mask = _inputs(seed=3)
    g = torch.Generator().manual_seed(4)
    noise = [0.3 * torch.randn(N, T, generator=g).to(DEVICE) for _ in range(2)]
    kw = dict(
        group_size=G,
        old_logp=logp + noise[0] if with_old else None,
        ref_logp=logp + noise[1] if with_ref else None,
        loss_type=loss_type,
        normalizer=torch.tensor(99.0),
        max_completion_length=T,
        temperature=temperature,
    )
    (fast, g_fast), (slow, g_slow) = _both(grpo_loss_from_logits, logits, ids, rewards, mask, **kw)
    _assert_outputs_close(fast, slow)
    torch.testing.assert_close(g_fast, g_slow)
    assert torch.equal(g_fast[N - 2], _zeros(T, V))  # all-masked row


def test_grpo_loss_from_logits_bf16_and_inplace_backward(triton_cpu):
    logits, ids = _logits(seed=6, dtype=torch.bfloat16)
    _, _, _, rewards, mask = _inputs(seed=6)
    ref_logp = _torch_logprob(logits, ids) + 0.1
    kw = dict(group_size=G, ref_logp=ref_logp)
    (fast, g_fast), (slow, g_slow) = _both(grpo_loss_from_logits, logits, ids, rewards, mask, **kw)
    _assert_outputs_close(fast, slow)
    assert g_fast.dtype == torch.bfloat16
    torch.testing.assert_close(g_fast, g_slow)

    leaf = logits.clone().requires_grad_()
    buffer = leaf * 1  # the lm_head's output stands in for a non-leaf logits buffer
    with backend("fast"):
        out = grpo_loss_from_logits(buffer, ids, rewards, mask, inplace_backward=True, **kw)
        with pytest.raises(ValueError, match="leaf"):
            grpo_loss_from_logits(leaf, ids, rewards, mask, inplace_backward=True, **kw)
    (g_inplace,) = torch.autograd.grad(out.loss, leaf)
    assert torch.equal(g_inplace, g_fast)
    assert torch.equal(buffer.detach(), g_fast)  # the gradient lives in the logits buffer now


def test_public_ops_run_under_both_backends(impl):
    logits, ids = _logits(seed=7, n=2, t=4, v=50)
    logits.requires_grad_()
    rewards = torch.tensor([1.0, 0.0], device=DEVICE)
    mask = torch.ones(2, 4, device=DEVICE)
    out = grpo_loss_from_logits(logits, ids, rewards, mask, group_size=2)
    logp = selective_log_softmax(logits, ids)
    again = grpo_loss(logp, rewards, mask, group_size=2)
    torch.testing.assert_close(out.loss, again.loss)
    for result in (out, again):
        # only the loss carries a gradient; the metrics are plain numbers
        assert [getattr(result, f).requires_grad for f in result._fields[:4]] == [
            True,
            False,
            False,
            False,
        ]
        assert result.logp is None  # only the fused-linear loss hands its log-probs back
    want = torch.tensor([1.0, -1.0]) / (1 / 2**0.5 * 2 + 2e-4)
    torch.testing.assert_close(out.advantages.cpu(), want)


@settings(max_examples=15, deadline=None)
@given(
    groups=st.integers(1, 3),
    group_size=st.integers(1, 5),
    t=st.integers(1, 70),
    loss_type=st.sampled_from(LOSS_TYPES),
    with_old=st.booleans(),
    with_ref=st.booleans(),
    spread=st.floats(0.0, 1.5),
    seed=st.integers(0, 2**16),
)
def test_grpo_loss_random_shapes(
    groups, group_size, t, loss_type, with_old, with_ref, spread, seed
):
    if DEVICE == "cpu":
        require_triton_interpreter()
    n = groups * group_size
    g = torch.Generator().manual_seed(seed)
    logp = -torch.rand(n, t, generator=g) * 5
    old = logp + spread * torch.randn(n, t, generator=g)
    ref = logp + spread * torch.randn(n, t, generator=g)
    rewards = torch.randint(0, 3, (n,), generator=g).float()  # ties and equal groups are common
    mask = torch.rand(n, t, generator=g) > torch.rand((), generator=g)
    logp, old, ref, rewards, mask = (x.to(DEVICE) for x in (logp, old, ref, rewards, mask))
    kw = dict(
        group_size=group_size,
        old_logp=old if with_old else None,
        ref_logp=ref if with_ref else None,
        loss_type=loss_type,
        normalizer=7.0,
        max_completion_length=t + 5,
    )
    (fast, g_fast), (slow, g_slow) = _both(grpo_loss, logp, rewards, mask, **kw)
    _assert_outputs_close(fast, slow)
    torch.testing.assert_close(g_fast, g_slow)


@settings(max_examples=10, deadline=None)
@given(
    group_size=st.integers(1, 3),
    t=st.integers(1, 9),
    v=st.integers(1, 300),
    temperature=st.sampled_from([1.0, 0.6, 1.3]),
    dtype=st.sampled_from([torch.float32, torch.bfloat16]),
    seed=st.integers(0, 2**16),
)
def test_grpo_loss_from_logits_random_shapes(group_size, t, v, temperature, dtype, seed):
    if DEVICE == "cpu":
        require_triton_interpreter()
    n = 2 * group_size
    g = torch.Generator().manual_seed(seed)
    logits = (torch.randn(n, t, v, generator=g) * 4).to(dtype)
    ids = torch.randint(0, v, (n, t), generator=g)
    rewards = torch.randint(0, 3, (n,), generator=g).float()
    mask = torch.rand(n, t, generator=g) > 0.3
    ref = _torch_logprob(logits, ids, temperature) + 0.2 * torch.randn(n, t, generator=g)
    logits, ids, rewards, mask, ref = (x.to(DEVICE) for x in (logits, ids, rewards, mask, ref))
    kw = dict(group_size=group_size, ref_logp=ref, temperature=temperature)
    (fast, g_fast), (slow, g_slow) = _both(grpo_loss_from_logits, logits, ids, rewards, mask, **kw)
    _assert_outputs_close(fast, slow)
    torch.testing.assert_close(g_fast, g_slow)
