"""Every loss kernel on CUDA against its plain-torch twin at the paper's shape: N=16 completions,
T=1,024 tokens, Qwen2.5-VL's V=151,936 vocabulary (5 GB of bf16 logits) and H=2,048, bf16.

Each fast result is held to an fp32 computation of the same maths with an error no worse than twice
the twin's own bf16 error (plus a small share of the values' scale), on values and on gradients (those over a sample of rows).
Run by scripts/gpu_check.sh; skipped without a GPU (``GRIT_FAST_GPU_CHECK_DRY_RUN=1``: a tiny shape
on CPU under ``TRITON_INTERPRET=1``, to check the tests themselves).
"""

from __future__ import annotations

import os

import pytest

torch = pytest.importorskip("torch")

from grit_fast import backend  # noqa: E402
from grit_fast.ops import (  # noqa: E402
    fused_linear_grpo_loss,
    fused_linear_log_probs,
    group_advantages,
    grpo_loss,
    grpo_loss_from_logits,
    reference,
    selective_log_softmax,
)

# GRIT_FAST_GPU_CHECK_DRY_RUN=1 runs the same tests at a tiny shape on CPU tensors (under
# TRITON_INTERPRET=1), to check the script's pieces where there is no GPU.
DRY_RUN = os.environ.get("GRIT_FAST_GPU_CHECK_DRY_RUN", "0") not in ("", "0")
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(
        DEVICE == "cpu" and not DRY_RUN,
        reason="needs a CUDA device (5 GB of bf16 logits); run by scripts/gpu_check.sh",
    ),
]

N, T, V, H, G = (16, 1024, 151_936, 2048, 4) if DEVICE == "cuda" else (8, 24, 301, 32, 4)
GROUP_WIDE = 2048 if DEVICE == "cuda" else 37
HP = dict(beta=0.04, eps_low=0.2, eps_high=0.2)
ROWS = slice(0, 2)  # gradient rows compared: 2 sequences x 1,024 tokens x V


def _close(fast, twin, exact, rel=1e-4):
    """|fast - exact| <= 2 |twin - exact| + rel * max |exact|, as maxima over the tensors."""
    fast, twin, exact = (x.detach().double() for x in (fast, twin, exact))
    err, own = (fast - exact).abs().max().item(), (twin - exact).abs().max().item()
    bound = 2 * own + rel * exact.abs().max().item()
    assert err <= bound, f"error {err:.3g} > {bound:.3g} (the twin's own error: {own:.3g})"


@pytest.fixture(scope="module")
def inputs():
    g = torch.Generator(device=DEVICE).manual_seed(0)
    logits = torch.randn(N, T, V, generator=g, device=DEVICE, dtype=torch.bfloat16) * 2
    ids = torch.randint(0, V, (N, T), generator=g, device=DEVICE)
    rewards = torch.rand(N, generator=g, device=DEVICE)
    mask = torch.rand(N, T, generator=g, device=DEVICE) > 0.1
    mask[3, T // 2 :] = False  # a completion that ended early
    exact = torch.empty(N, T, device=DEVICE)
    for i in range(N):  # fp32 log-softmax one sequence at a time (2.5 GB each in fp32 otherwise)
        exact[i] = torch.log_softmax(logits[i].float(), -1).gather(-1, ids[i, :, None])[:, 0]
    old = exact + 0.1 * torch.randn(N, T, generator=g, device=DEVICE)
    ref = exact + 0.1 * torch.randn(N, T, generator=g, device=DEVICE)
    return logits, ids, rewards, mask, old, ref, exact


def _grad_rows(fn, logits, *args, **kwargs):
    """(output, d logits of the ROWS sequences) for a fresh leaf."""
    leaf = logits.detach().clone().requires_grad_()
    out = fn(leaf, *args, **kwargs)
    loss = out.loss if hasattr(out, "loss") else out[ROWS].sum()
    (grad,) = torch.autograd.grad(loss, leaf)
    return out, grad[ROWS].float()


def test_selective_log_softmax(inputs):
    logits, ids, *_, exact = inputs
    with backend("fast"):
        fast, g_fast = _grad_rows(selective_log_softmax, logits, ids)
    with backend("reference"):
        twin, g_twin = _grad_rows(selective_log_softmax, logits, ids)
    _close(fast, twin, exact)
    leaf = logits[ROWS].detach().float().requires_grad_()
    want = torch.log_softmax(leaf, -1).gather(-1, ids[ROWS, :, None])[..., 0]
    (g_exact,) = torch.autograd.grad(want.sum(), leaf)
    _close(g_fast, g_twin, g_exact, rel=1e-3)


@pytest.mark.parametrize("inplace", [False, True])
def test_grpo_loss_from_logits(inputs, inplace):
    logits, ids, rewards, mask, old, ref, _ = inputs
    kw = dict(group_size=G, old_logp=old, ref_logp=ref, **HP)
    with backend("fast"):
        leaf = logits.detach().clone().requires_grad_()
        fast = grpo_loss_from_logits(leaf * 1, ids, rewards, mask, inplace_backward=inplace, **kw)
        (g_fast,) = torch.autograd.grad(fast.loss, leaf)
        g_fast = g_fast[ROWS].float()
    with backend("reference"):
        twin, g_twin = _grad_rows(grpo_loss_from_logits, logits, ids, rewards, mask, **kw)
    # fp32 logits through the twin: the exact loss and gradient (20 GB, then only ROWS kept)
    exact_out, g_exact = _grad_rows(
        reference.grpo_loss_from_logits, logits.float(), ids, rewards, mask, **kw
    )
    for name in ("loss", "kl", "clip_fraction", "advantages"):
        _close(getattr(fast, name), getattr(twin, name), getattr(exact_out, name))
    assert g_exact.abs().max() > 0
    _close(g_fast, g_twin, g_exact, rel=1e-3)


def test_grpo_loss(inputs):
    *_, rewards, mask, old, ref, exact = inputs
    kw = dict(group_size=G, old_logp=old, ref_logp=ref, **HP)
    for dtype in (torch.float32, torch.bfloat16):
        logp = exact.to(dtype)
        with backend("fast"):
            fast, g_fast = _grad_rows(grpo_loss, logp, rewards, mask, **kw)
        with backend("reference"):
            twin, g_twin = _grad_rows(grpo_loss, logp, rewards, mask, **kw)
        exact_out, g_exact = _grad_rows(reference.grpo_loss, exact, rewards, mask, **kw)
        _close(fast.loss, twin.loss, exact_out.loss)
        _close(g_fast, g_twin, g_exact, rel=1e-3)


@pytest.fixture(scope="module")
def linear(inputs):
    _, ids, rewards, mask, old, ref, _ = inputs
    g = torch.Generator(device=DEVICE).manual_seed(1)
    hidden = torch.randn(N, T, H, generator=g, device=DEVICE, dtype=torch.bfloat16)
    weight = torch.randn(V, H, generator=g, device=DEVICE, dtype=torch.bfloat16) * H**-0.5
    return hidden, weight, ids, rewards, mask, old, ref


def test_fused_linear_grpo_loss(linear):
    hidden, weight, ids, rewards, mask, old, ref = linear
    kw = dict(group_size=G, old_logp=old, ref_logp=ref, temperature=0.9, **HP)
    results = {}
    for mode, dtype in (("fast", torch.bfloat16), ("reference", torch.bfloat16), ("exact", None)):
        h = hidden.detach().clone().float() if dtype is None else hidden.detach().clone()
        w = weight.detach().clone().float() if dtype is None else weight.detach().clone()
        h.requires_grad_(), w.requires_grad_()
        with backend("reference" if mode == "exact" else mode):
            out = fused_linear_grpo_loss(h, w, ids, rewards, mask, **kw)
        out.loss.backward()
        results[mode] = (out, h.grad[ROWS].float(), w.grad[:4096].float())
    (fast, fh, fw), (twin, th, tw), (exact, eh, ew) = (results[m] for m in results)
    for name in ("loss", "kl", "clip_fraction"):
        _close(getattr(fast, name), getattr(twin, name), getattr(exact, name))
    _close(fh, th, eh, rel=1e-3)
    _close(fw, tw, ew, rel=1e-3)
    on = mask.bool()
    _close(fast.logp[on], twin.logp[on], exact.logp[on])  # the log-probs μ > 1 reuses


def test_fused_linear_log_probs(linear):
    hidden, weight, ids, *_ = linear
    with backend("fast"):
        fast = fused_linear_log_probs(hidden, weight, ids, temperature=0.9)
    with backend("reference"):
        twin = fused_linear_log_probs(hidden, weight, ids, temperature=0.9)
        exact = fused_linear_log_probs(hidden.float(), weight.float(), ids, temperature=0.9)
    _close(fast, twin, exact)


def test_a_group_wider_than_the_block(monkeypatch):
    """2,048 completions per group, twice the kernel's block of rewards on a GPU (dry run: 37
    rewards in blocks of 16)."""
    if DEVICE == "cpu":
        from grit_fast.ops import _triton_utils

        monkeypatch.setattr(_triton_utils, "GROUP_BLOCK_CAP", 16)
    g = torch.Generator(device=DEVICE).manual_seed(2)
    rewards = torch.rand(2 * GROUP_WIDE, generator=g, device=DEVICE)
    rewards[GROUP_WIDE * 3 // 4 : GROUP_WIDE] += 5.0  # past the first block of the first group
    with backend("fast"):
        fast = group_advantages(rewards, GROUP_WIDE)
    torch.testing.assert_close(fast, reference.group_advantages(rewards, GROUP_WIDE))


def test_inplace_backward_is_seen_by_autograd(inputs):
    logits, ids, rewards, mask, *_ = inputs
    leaf = logits[:2, :64].detach().clone().requires_grad_()
    buffer = leaf * 1
    other = (buffer**2).sum() * 1e-3  # saves the logits; its backward runs after the loss's
    with backend("fast"):
        out = grpo_loss_from_logits(
            buffer, ids[:2, :64], rewards[:2], mask[:2, :64], group_size=2, inplace_backward=True
        )
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        (out.loss + other).backward()


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs a second GPU")
def test_kernels_launch_on_the_tensors_device(inputs):
    """Tensors on cuda:1 while cuda:0 is the current device."""
    logits, ids, rewards, mask, old, ref, _ = inputs
    torch.cuda.set_device(0)
    part = [x[:4, :128].to("cuda:1") for x in (logits, ids, mask, old, ref)]
    with backend("fast"):
        out = grpo_loss_from_logits(
            part[0], part[1], rewards[:4].to("cuda:1"), part[2], group_size=G,
            old_logp=part[3], ref_logp=part[4],
        )  # fmt: skip
    with backend("reference"):
        twin = grpo_loss_from_logits(
            part[0], part[1], rewards[:4].to("cuda:1"), part[2], group_size=G,
            old_logp=part[3], ref_logp=part[4],
        )  # fmt: skip
    torch.testing.assert_close(out.loss, twin.loss, rtol=1e-4, atol=1e-5)
