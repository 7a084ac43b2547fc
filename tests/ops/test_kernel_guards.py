"""What the Triton launchers must guard that tiny, even, single-device inputs never show: the version
counter of an overwritten buffer, groups wider than one block of the kernel, the device a kernel is
launched on, and per-token log-probs handed back for reuse as the old policy's.

Runs on CPU through Triton's interpreter (``TRITON_INTERPRET=1``) with tiny grids, and on CUDA
tensors where a GPU is available.
"""

from __future__ import annotations

import contextlib

import pytest

torch = pytest.importorskip("torch")

from grit_fast import backend  # noqa: E402
from grit_fast.ops import (  # noqa: E402
    _triton_utils,
    fused_linear_grpo_loss,
    fused_linear_log_probs,
    group_advantages,
    grpo_loss,
    grpo_loss_from_logits,
    reference,
    selective_log_softmax,
)
from tests.conftest import require_triton_interpreter  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


@pytest.fixture
def triton_cpu():
    if DEVICE == "cpu":
        require_triton_interpreter()


def _logits(n, t, v, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    logits = (torch.randn(n, t, v, generator=g) * 2).to(dtype).to(DEVICE)
    ids = torch.randint(0, v, (n, t), generator=g).to(DEVICE)
    return logits, ids


def _rewards_mask(n, t, seed=0):
    g = torch.Generator().manual_seed(seed + 100)
    rewards = torch.randint(0, 4, (n,), generator=g).float().to(DEVICE)
    mask = (torch.rand(n, t, generator=g) > 0.3).to(DEVICE)
    return rewards, mask


# ---------------------------------------------------------------- in-place backward: version counter
@pytest.mark.parametrize("mode", ["fast", "reference"])
def test_inplace_backward_is_caught_by_a_later_use_of_the_logits(triton_cpu, mode):
    """A second op that saved the logits and runs its backward after the loss's must raise, not be
    fed the gradient that now lives in the buffer (gradients off by up to ~5 without the bump)."""
    logits, ids = _logits(4, 5, 33, seed=1)
    rewards, mask = _rewards_mask(4, 5, seed=1)
    leaf = logits.clone().requires_grad_()
    buffer = leaf * 1  # the lm_head's output stands in for a non-leaf logits buffer
    # Made before the loss, so its backward runs after the loss's (lower sequence number).
    other = (buffer**2).sum() * 1e-3
    with backend(mode):
        out = grpo_loss_from_logits(
            buffer, ids, rewards, mask, group_size=2, inplace_backward=True, beta=0.0
        )
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        (out.loss + other).backward()


def test_inplace_backward_alone_still_gives_the_gradient(triton_cpu):
    logits, ids = _logits(4, 5, 33, seed=2)
    rewards, mask = _rewards_mask(4, 5, seed=2)
    grads = []
    for inplace in (True, False):
        leaf = logits.clone().requires_grad_()
        with backend("fast"):
            out = grpo_loss_from_logits(
                leaf * 1, ids, rewards, mask, group_size=2, inplace_backward=inplace
            )
        out.loss.backward()
        grads.append(leaf.grad)
    assert torch.equal(grads[0], grads[1])


# ---------------------------------------------------------------- groups wider than the kernel block
@pytest.fixture
def small_group_block(monkeypatch):
    """Cap the rewards a program reads at once at 16, so a group of 37 spans three blocks (on CUDA
    the cap is 1,024: a group of 2,000 completions is as wide as the block is here)."""
    monkeypatch.setattr(_triton_utils, "GROUP_BLOCK_CAP", 16)


GROUP = 37  # irregular: 2 full blocks of 16 and a partial one


@pytest.mark.parametrize("scale", [True, False])
def test_group_wider_than_the_block_uses_every_reward(triton_cpu, small_group_block, scale):
    g = torch.Generator().manual_seed(3)
    rewards = (torch.rand(2 * GROUP, generator=g) * 4).to(DEVICE)
    rewards[GROUP + 20 :] += 10.0  # rewards past the first block move the group's mean and std
    with backend("fast"):
        got = group_advantages(rewards, GROUP, scale=scale)
    want = reference.group_advantages(rewards, GROUP, scale=scale)
    torch.testing.assert_close(got, want)


def test_losses_with_a_group_wider_than_the_block(triton_cpu, small_group_block):
    n, t, v, width = 2 * GROUP, 3, 20, 8
    logits, ids = _logits(n, t, v, seed=4)
    rewards, mask = _rewards_mask(n, t, seed=4)
    rewards[GROUP + 20 :] += 10.0
    logp = torch.log_softmax(logits, -1).gather(-1, ids[..., None])[..., 0]
    ref_logp = logp + 0.1
    kw = dict(group_size=GROUP, ref_logp=ref_logp)
    for fn, x, args in (
        (grpo_loss, logp, (rewards, mask)),
        (grpo_loss_from_logits, logits, (ids, rewards, mask)),
    ):
        with backend("fast"):
            fast = fn(x, *args, **kw)
        with backend("reference"):
            slow = fn(x, *args, **kw)
        torch.testing.assert_close(fast.advantages, slow.advantages)
        torch.testing.assert_close(fast.loss, slow.loss)
    g = torch.Generator().manual_seed(5)
    hidden = torch.randn(n, t, width, generator=g).to(DEVICE)
    weight = torch.randn(v, width, generator=g).to(DEVICE)
    with backend("fast"):
        fast = fused_linear_grpo_loss(hidden, weight, ids, rewards, mask, **kw)
    with backend("reference"):
        slow = fused_linear_grpo_loss(hidden, weight, ids, rewards, mask, **kw)
    torch.testing.assert_close(fast.advantages, slow.advantages)
    torch.testing.assert_close(fast.loss, slow.loss)


# ---------------------------------------------------------------- launches under the tensors' device
def test_every_launcher_enters_the_tensors_device(triton_cpu, monkeypatch):
    """Triton launches on the *current* CUDA device: tensors on cuda:1 while cuda:0 is current would
    be read through pointers of another device. Each launch must enter the tensors' device."""
    seen: list[torch.device] = []

    def recorder(tensor):
        seen.append(tensor.device)
        return contextlib.nullcontext()

    monkeypatch.setattr(_triton_utils, "on_device", recorder)
    logits, ids = _logits(2, 3, 20, seed=6)
    rewards, mask = _rewards_mask(2, 3, seed=6)
    logp = torch.log_softmax(logits, -1).gather(-1, ids[..., None])[..., 0]
    hidden, weight = torch.randn(2, 3, 8).to(DEVICE), torch.randn(20, 8).to(DEVICE)
    runs = {
        "group_advantages": lambda: group_advantages(rewards, 2),
        "grpo_loss": lambda: grpo_loss(
            logp.requires_grad_(), rewards, mask, group_size=2
        ).loss.backward(),
        "selective_log_softmax": lambda: (
            selective_log_softmax(logits.clone().requires_grad_(), ids).sum().backward()
        ),
        "grpo_loss_from_logits": lambda: grpo_loss_from_logits(
            logits.clone().requires_grad_(), ids, rewards, mask, group_size=2
        ).loss.backward(),
        "fused_linear_grpo_loss": lambda: fused_linear_grpo_loss(
            hidden.requires_grad_(), weight, ids, rewards, mask, group_size=2
        ).loss.backward(),
        "fused_linear_log_probs": lambda: fused_linear_log_probs(hidden, weight, ids),
    }
    with backend("fast"):
        for name, run in runs.items():
            seen.clear()
            run()
            assert seen, f"{name}: no launch entered the tensors' device"
            assert all(d == logits.device for d in seen), name


def test_on_device_is_a_no_op_off_cuda():
    with _triton_utils.on_device(torch.zeros(1)):
        pass


# ---------------------------------------------------------------- log-probs the loss used
@pytest.mark.parametrize("mode", ["auto", "reference"])
def test_fused_linear_loss_returns_the_log_probs_it_used(mode):
    """μ > 1 reuses them as the old policy's: taken from the loss's own pass (same rows, same
    chunks, same kernels), the first update's ratio is exactly 1."""
    g = torch.Generator().manual_seed(7)
    n, t, v, width = 4, 9, 50, 16
    hidden = torch.randn(n, t, width, generator=g).to(DEVICE)
    weight = torch.randn(v, width, generator=g).to(DEVICE)
    ids = torch.randint(0, v, (n, t), generator=g).to(DEVICE)
    rewards, mask = _rewards_mask(n, t, seed=7)
    with backend(mode):
        out = fused_linear_grpo_loss(
            hidden.clone().requires_grad_(), weight, ids, rewards, mask, group_size=2, chunk_size=5
        )
        again = fused_linear_grpo_loss(
            hidden.clone().requires_grad_(),
            weight,
            ids,
            rewards,
            mask,
            group_size=2,
            chunk_size=5,
            old_logp=out.logp,
            eps_low=1e-12,
            eps_high=1e-12,  # any ratio off 1 by a rounding would be clipped
        )
    assert out.logp.shape == (n, t) and out.logp.dtype == torch.float32
    assert not out.logp.requires_grad
    want = torch.log_softmax(hidden @ weight.T, -1).gather(-1, ids[..., None])[..., 0]
    on = mask.bool()
    torch.testing.assert_close(out.logp[on], want[on])
    assert again.clip_fraction.item() == 0.0
    torch.testing.assert_close(again.loss, out.loss, rtol=0, atol=0)
