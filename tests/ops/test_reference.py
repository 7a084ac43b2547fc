"""The plain-torch loss ops against hand-computed values and the formulas of docs/method.md §3."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from grit_fast.ops import reference as R  # noqa: E402

A = 1 / math.sqrt(2)  # advantage of rewards [1, 0] with eps = 0


def _example():
    """N=2 (one group of 2), T=2; ratios [[1.5, 1], [0.5, 0.9]], mask [[1, 1], [1, 0]]."""
    logp = torch.tensor([[math.log(1.5), 0.0], [math.log(0.5), math.log(0.9)]], requires_grad=True)
    old = torch.zeros(2, 2)
    rewards = torch.tensor([1.0, 0.0])
    mask = torch.tensor([[1, 1], [1, 0]], dtype=torch.bool)
    return logp, old, rewards, mask


@pytest.mark.parametrize(
    ("loss_type", "normalizer", "expected"),
    [
        ("grpo", None, -0.15 * A),  # rows: (-1.2A - A)/2, 0.8A; mean over 2 rows
        ("bnpo", None, -1.4 * A / 3),
        ("dr_grpo", None, -1.4 * A / 6),  # N · max_completion_length = 2 · 3
        ("dapo", 10.0, -1.4 * A / 10),
    ],
)
def test_hand_computed_example(loss_type, normalizer, expected):
    logp, old, rewards, mask = _example()
    out = R.grpo_loss(
        logp,
        rewards,
        mask,
        group_size=2,
        old_logp=old,
        adv_eps=0.0,
        loss_type=loss_type,
        normalizer=normalizer,
        max_completion_length=3,
    )
    torch.testing.assert_close(out.advantages, torch.tensor([A, -A]))
    assert out.loss.item() == pytest.approx(expected, rel=1e-6)
    assert out.clip_fraction.item() == pytest.approx(2 / 3)
    assert out.kl.item() == 0.0
    out.loss.backward()
    # Clipped tokens get no gradient; the unclipped unmasked one gets -ρA·w; masked ones get 0.
    w = {"grpo": 1 / 4, "bnpo": 1 / 3, "dr_grpo": 1 / 6, "dapo": 1 / 10}[loss_type]
    torch.testing.assert_close(logp.grad, torch.tensor([[0.0, -A * w], [0.0, 0.0]]))


def test_hand_computed_kl_metric_and_term():
    logp, _, rewards, mask = _example()
    ref = logp.detach() + torch.tensor([[0.1, 0.0], [0.0, -0.3]])
    out = R.grpo_loss(logp, rewards, mask, group_size=2, ref_logp=ref, beta=0.5, adv_eps=0.0)
    k = math.exp(0.1) - 0.1 - 1
    # per-sequence token-mean over the mask (the -0.3 token is masked), then mean over sequences
    assert out.kl.item() == pytest.approx(k / 2 / 2, rel=1e-5)
    # ρ ≡ 1: surrogate rows -A and +A cancel in the mean; only the KL term remains
    assert out.loss.item() == pytest.approx(0.5 * k / 2 / 2, abs=1e-7)  # A - A cancels in fp32


def test_group_advantages_match_the_formula():
    g = torch.Generator().manual_seed(0)
    rewards = torch.rand(12, generator=g) * 4
    got = R.group_advantages(rewards, 4)
    r = rewards.view(3, 4)
    want = (r - r.mean(1, keepdim=True)) / (r.std(1, keepdim=True) + 1e-4)
    torch.testing.assert_close(got, want.reshape(-1))
    centred = R.group_advantages(rewards, 4, scale=False)
    torch.testing.assert_close(centred, (r - r.mean(1, keepdim=True)).reshape(-1))


@pytest.mark.parametrize("value", [0.1, 1 / 3, 4.1, -7.3])
def test_equal_rewards_give_exactly_zero_advantage(value):
    rewards = torch.tensor([value] * 3 + [0.0, 1.0, 2.0])
    adv = R.group_advantages(rewards, 3)
    assert torch.equal(adv[:3], torch.zeros(3))
    assert adv[3:].abs().sum() > 0


def test_group_size_one_gives_zero_advantage():
    adv = R.group_advantages(torch.tensor([1.0, 5.0, -2.0]), 1)
    assert torch.equal(adv, torch.zeros(3))


def test_kl_is_nonnegative_and_zero_on_equal_policies():
    g = torch.Generator().manual_seed(1)
    logp = -torch.rand(64, 33, generator=g) * 10
    ref = -torch.rand(64, 33, generator=g) * 10
    assert (R.per_token_kl(logp, ref) >= 0).all()
    assert torch.equal(R.per_token_kl(logp, logp), torch.zeros_like(logp))


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_clipping_cuts_the_gradient_on_the_side_of_the_advantage(sign):
    ratios = torch.tensor([0.5, 0.79, 0.81, 1.0, 1.19, 1.21, 2.0])
    logp = ratios.log()[None].clone().requires_grad_()
    adv = torch.tensor([sign])
    loss = R.per_token_loss(logp, adv, old_logp=torch.zeros_like(logp), beta=0.0)
    loss.sum().backward()
    grad = logp.grad[0]
    # A > 0: ratios above 1+ε are clipped; A < 0: ratios below 1-ε are clipped.
    cut = ratios > 1.2 if sign > 0 else ratios < 0.8
    assert torch.equal(grad[cut], torch.zeros(int(cut.sum())))
    torch.testing.assert_close(grad[~cut], -ratios[~cut] * sign)
    clipped = R.clipped_mask(ratios[None], adv, 0.2, 0.2)[0]
    assert torch.equal(clipped, cut)


def test_on_policy_gradient_is_minus_advantage():
    logp = torch.randn(4, 5).requires_grad_()
    adv = torch.tensor([1.0, -2.0, 0.0, 0.5])
    R.per_token_loss(logp, adv, beta=0.0).sum().backward()
    torch.testing.assert_close(logp.grad, -adv[:, None].expand(4, 5))


def test_token_weights_per_loss_type_and_all_masked_rows():
    mask = torch.tensor([[1, 1, 0], [0, 0, 0], [1, 1, 1]])
    w = R.token_weights(mask, "grpo")
    torch.testing.assert_close(w.sum(1), torch.tensor([1 / 3, 0.0, 1 / 3]))
    torch.testing.assert_close(R.token_weights(mask, "bnpo").sum(), torch.tensor(1.0))
    torch.testing.assert_close(
        R.token_weights(mask, "dr_grpo", max_completion_length=3).sum(), torch.tensor(5 / 9)
    )
    torch.testing.assert_close(R.token_weights(mask, "dapo", 20).sum(), torch.tensor(0.25))
    assert R.token_weights(torch.zeros(2, 3), "bnpo").isfinite().all()


def test_all_masked_row_adds_zero_and_never_nan():
    g = torch.Generator().manual_seed(2)
    logp = (-torch.rand(4, 6, generator=g)).requires_grad_()
    mask = torch.ones(4, 6)
    mask[1] = 0
    out = R.grpo_loss(logp, torch.tensor([1.0, 0.0, 3.0, 2.0]), mask, group_size=2)
    assert out.loss.isfinite() and out.kl.isfinite()
    out.loss.backward()
    assert logp.grad.isfinite().all() and torch.equal(logp.grad[1], torch.zeros(6))
    everything_masked = R.grpo_loss(logp, torch.ones(4), torch.zeros(4, 6), group_size=2)
    assert everything_masked.loss.item() == 0.0 and everything_masked.clip_fraction.item() == 0.0


def _torch_logprob(logits, ids, temperature=1.0):
    return torch.log_softmax(logits.float() / temperature, -1).gather(-1, ids[..., None])[..., 0]


@pytest.mark.parametrize("temperature", [1.0, 0.9])
def test_selective_log_softmax_matches_torch_with_extreme_logits(monkeypatch, temperature):
    monkeypatch.setattr(R, "CHUNK_ELEMENTS", 3 * 97)  # several chunks, a ragged last one
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 11, 97, generator=g) * 3
    logits[0, 0, 5] = 1e4
    logits[0, 1, :] = -1e4
    logits[1, 2, 50:] = float("-inf")  # masked vocabulary
    ids = torch.randint(0, 97, (2, 11), generator=g)
    ids[0, 0] = 5
    ids[1, 2] = 7
    logits.requires_grad_()
    got = R.selective_log_softmax(logits, ids, temperature)
    want = _torch_logprob(logits, ids, temperature)
    torch.testing.assert_close(got, want)
    assert got.dtype == torch.float32
    g_out = torch.randn(2, 11, generator=g)
    (grad,) = torch.autograd.grad((got * g_out).sum(), logits)
    (want_grad,) = torch.autograd.grad((want * g_out).sum(), logits)
    torch.testing.assert_close(grad, want_grad)


def test_loss_from_logits_matches_composition_and_inplace_backward(monkeypatch):
    monkeypatch.setattr(R, "CHUNK_ELEMENTS", 4 * 53)
    g = torch.Generator().manual_seed(4)
    base = torch.randn(4, 9, 53, generator=g, dtype=torch.bfloat16)
    ids = torch.randint(0, 53, (4, 9), generator=g)
    rewards = torch.tensor([0.0, 1.0, 2.0, 2.0])
    mask = torch.rand(4, 9, generator=g) > 0.2
    ref = _torch_logprob(base, ids) + 0.1 * torch.randn(4, 9, generator=g)
    kw = dict(group_size=2, ref_logp=ref, temperature=0.9)
    x = base.clone().requires_grad_()
    out = R.grpo_loss_from_logits(x, ids, rewards, mask, **kw)
    want = R.grpo_loss(_torch_logprob(x, ids, 0.9), rewards, mask, group_size=2, ref_logp=ref)
    torch.testing.assert_close(out.loss, want.loss)
    (grad,) = torch.autograd.grad(out.loss, x)
    (want_grad,) = torch.autograd.grad(want.loss, x)
    assert grad.dtype == torch.bfloat16
    torch.testing.assert_close(grad, want_grad)

    leaf = base.clone().requires_grad_()
    with pytest.raises(ValueError, match="leaf"):
        R.grpo_loss_from_logits(leaf, ids, rewards, mask, inplace_backward=True, **kw)
    y = leaf * 1  # a non-leaf buffer, like the lm_head's output
    out = R.grpo_loss_from_logits(y, ids, rewards, mask, inplace_backward=True, **kw)
    (grad_inplace,) = torch.autograd.grad(out.loss, leaf)
    torch.testing.assert_close(grad_inplace, want_grad)
    torch.testing.assert_close(y.detach(), want_grad)  # the logits buffer now holds the gradient


def test_inplace_backward_refused_when_another_op_saved_the_logits():
    leaf = torch.randn(2, 3, 11, requires_grad=True)
    y = leaf * 1
    ids = torch.zeros(2, 3, dtype=torch.long)
    # Built first, so its backward runs after ours and would read the overwritten logits:
    # autograd's version counter catches it instead of computing with the gradient as input.
    square = (y**2).sum()
    out = R.grpo_loss_from_logits(
        y, ids, torch.ones(2), torch.ones(2, 3), group_size=2, inplace_backward=True
    )
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        (out.loss + square).backward()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(group_size=4), "multiple of group_size"),
        (dict(group_size=0), "positive int"),
        (dict(group_size=2, loss_type="ppo"), "loss_type must be one of"),
        (dict(group_size=2, loss_type="dapo"), "normalizer"),
        (dict(group_size=2, old_logp=torch.zeros(6, 4)), r"old_logp must have shape \(6, 5\)"),
        (dict(group_size=2, beta=-1.0), "beta must be >= 0"),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        R.grpo_loss(torch.zeros(6, 5), torch.zeros(6), torch.ones(6, 5), **kwargs)


def test_bad_ids_are_named():
    with pytest.raises(ValueError, match=r"ids must lie in \[0, 7\)"):
        R.selective_log_softmax(torch.zeros(1, 2, 7), torch.tensor([[0, 7]]))
    with pytest.raises(TypeError, match="integer"):
        R.selective_log_softmax(torch.zeros(1, 2, 7), torch.zeros(1, 2))
    with pytest.raises(ValueError, match="temperature"):
        R.selective_log_softmax(torch.zeros(1, 2, 7), torch.zeros(1, 2, dtype=torch.long), 0.0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_selective_log_softmax_leaves_its_input_alone(dtype):
    logits = torch.randn(2, 3, 17, dtype=dtype, requires_grad=True)
    before = logits.detach().clone()
    out = R.selective_log_softmax(logits, torch.zeros(2, 3, dtype=torch.long), 0.5)
    out.sum().backward()
    assert torch.equal(logits.detach(), before)


def test_tensors_on_different_devices_are_named():
    with pytest.raises(ValueError, match="rewards on meta"):
        R.grpo_loss(
            torch.zeros(2, 3), torch.zeros(2, device="meta"), torch.ones(2, 3), group_size=2
        )
    with pytest.raises(ValueError, match="ids on meta"):
        R.selective_log_softmax(
            torch.zeros(1, 2, 7), torch.zeros(1, 2, dtype=torch.long, device="meta")
        )


def test_double_backward_is_refused_not_silently_wrong():
    logits = torch.randn(1, 2, 5, requires_grad=True)
    weight = torch.ones(1, 2, requires_grad=True)  # makes d logits depend on something
    out = R.selective_log_softmax(logits, torch.tensor([[1, 4]]))
    (grad,) = torch.autograd.grad((out * weight).sum(), logits, create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable"):
        grad.sum().backward()
