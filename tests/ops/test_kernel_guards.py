"""What the Triton launchers must guard that tiny, even, single-device inputs never show: the version
counter of an overwritten buffer, groups wider than one block of the kernel, the device a kernel is
launched on, and per-token log-probs handed back for reuse as the old policy's.

Runs on CPU through Triton's interpreter (``TRITON_INTERPRET=1``) with tiny grids, and on CUDA
tensors where a GPU is available.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from grit_fast import backend  # noqa: E402
from grit_fast.ops import (  # noqa: E402
    grpo_loss_from_logits,
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
