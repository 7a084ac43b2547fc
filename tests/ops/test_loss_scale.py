"""Two things every twin of the GRPO losses must get right beyond the per-token maths.

* ``dr_grpo`` divides the summed token losses by N × ``max_completion_length``, a constant (TRL,
  Liger, the Dr. GRPO paper), so extra padding columns change nothing.
* fp64 operands are computed in fp64 end to end by the fused-linear loss, so it can be gradchecked.

Every op runs under its reference twin and its fast path (Triton on CUDA, or on CPU through the
interpreter with tiny grids; the fused-linear op also through its chunked torch path).
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from grit_fast import _dispatch, backend  # noqa: E402
from grit_fast.ops import (  # noqa: E402
    fused_linear_grpo_loss,
    fused_linear_log_probs,
    group_advantages,
    grpo_loss,
    grpo_loss_from_logits,
    reference,
)
from grit_fast.ops import reference_fused_linear as twin  # noqa: E402
from tests.conftest import require_triton_interpreter  # noqa: E402

CUDA = torch.cuda.is_available()
DEVICE = "cuda" if CUDA else "cpu"
N, G, T, H, V, MAX_LEN = 4, 2, 5, 6, 23, 11


@pytest.fixture(params=["reference", "torch", "triton"])
def path(request, monkeypatch):
    """Which implementation runs: the reference twin, the chunked torch path of the fused op (the
    others then also take their reference), or the fast path (Triton)."""
    if request.param == "reference":
        with backend("reference"):
            yield request.param
    elif request.param == "torch":
        monkeypatch.setattr(_dispatch, "triton_interpreter", lambda: False)
        if CUDA:
            pytest.skip("the chunked torch path runs CPU tensors; CUDA takes Triton")
        with backend("auto"):
            yield request.param
    else:
        if not CUDA:
            require_triton_interpreter()
        with backend("fast"):
            yield request.param


def _inputs(t=T, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(N, t, H, generator=g, dtype=torch.float64)
    weight = torch.randn(V, H, generator=g, dtype=torch.float64) * 0.4
    bias = torch.randn(V, generator=g, dtype=torch.float64) * 0.3
    ids = torch.randint(0, V, (N, t), generator=g)
    rewards = torch.tensor([0.0, 1.0, 2.5, 0.5])
    lengths = torch.tensor([t, 2, 3, 1])  # rows of different lengths, one full
    mask = (torch.arange(t)[None, :] < lengths[:, None]).float()
    ref = -torch.rand(N, t, generator=g, dtype=torch.float64) * 3
    out = [hidden.to(dtype), weight.to(dtype), bias.to(dtype), ids, rewards, mask]
    return [
        x.to(DEVICE) for x in (*out, ref.to(torch.float32 if dtype != torch.float64 else dtype))
    ]


def _pad(x, width, value=0):
    """``x`` (N, T, ...) padded along dim 1 to ``width`` columns of ``value``."""
    extra = list(x.shape)
    extra[1] = width - x.shape[1]
    return torch.cat([x, x.new_full(extra, value)], dim=1)


def _fused(hidden, weight, bias, ids, rewards, mask, ref, **kw):
    return fused_linear_grpo_loss(
        hidden, weight, ids, rewards, mask, group_size=G, bias=bias, ref_logp=ref, **kw
    )


def _logits(hidden, weight, bias, ids, rewards, mask, ref, **kw):
    logits = torch.nn.functional.linear(hidden, weight, bias)
    return grpo_loss_from_logits(logits, ids, rewards, mask, group_size=G, ref_logp=ref, **kw)


def _logp(hidden, weight, bias, ids, rewards, mask, ref, **kw):
    temperature = kw.pop("temperature", 1.0)
    logits = torch.nn.functional.linear(hidden, weight, bias) / temperature
    logp = torch.log_softmax(logits.float(), -1).gather(-1, ids[..., None])[..., 0]
    return grpo_loss(logp, rewards, mask, group_size=G, ref_logp=ref, **kw)


OPS = {"grpo_loss": _logp, "grpo_loss_from_logits": _logits, "fused_linear_grpo_loss": _fused}


def _run(op, inputs, **kw):
    """(loss, d hidden) of ``op`` on ``inputs``."""
    hidden = inputs[0].detach().clone().requires_grad_()
    out = OPS[op](hidden, *inputs[1:], **kw)
    (grad,) = torch.autograd.grad(out.loss, hidden)
    return out.loss, grad


# ------------------------------------------------------------------ dr_grpo


@pytest.mark.parametrize("op", list(OPS))
def test_dr_grpo_divides_by_n_times_max_completion_length(path, op):
    if path == "torch" and op != "fused_linear_grpo_loss":
        pytest.skip("only the fused-linear op has a chunked torch path of its own")
    inputs = _inputs()
    kw = dict(loss_type="dr_grpo", max_completion_length=MAX_LEN, beta=0.1, temperature=0.8)
    loss, grad = _run(op, inputs, **kw)
    # The formula of TRL and the Dr. GRPO paper: Σ_i Σ_t m_it ℓ_it / (N · max_completion_length).
    hidden, weight, bias, ids, rewards, mask, ref = inputs
    with torch.no_grad():
        logits = torch.nn.functional.linear(hidden, weight, bias) / 0.8
        logp = torch.log_softmax(logits.float(), -1).gather(-1, ids[..., None])[..., 0]
        adv = reference.group_advantages(rewards, G)
        ell = reference.per_token_loss(logp, adv, None, ref, beta=0.1)
    want = (ell * mask).sum() / (N * MAX_LEN)
    torch.testing.assert_close(loss, want, rtol=1e-5, atol=1e-6)

    # Padding columns (masked) change neither the loss nor the gradient of the real tokens.
    wide = [_pad(x, MAX_LEN) for x in inputs[:1]] + inputs[1:3]
    wide += [
        _pad(inputs[3], MAX_LEN),
        inputs[4],
        _pad(inputs[5], MAX_LEN),
        _pad(inputs[6], MAX_LEN),
    ]
    wide_loss, wide_grad = _run(op, wide, **kw)
    torch.testing.assert_close(wide_loss, loss, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(wide_grad[:, :T], grad, rtol=1e-5, atol=1e-7)
    assert torch.equal(wide_grad[:, T:], torch.zeros_like(wide_grad[:, T:]))


@pytest.mark.parametrize("op", list(OPS))
def test_dr_grpo_needs_a_max_completion_length_that_fits(op):
    inputs = _inputs()
    with pytest.raises(ValueError, match="max_completion_length"):
        _run(op, inputs, loss_type="dr_grpo")
    with pytest.raises(ValueError, match=r"max_completion_length=4 .* 5 columns"):
        _run(op, inputs, loss_type="dr_grpo", max_completion_length=4)
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="max_completion_length must be a positive int"):
            _run(op, inputs, loss_type="dr_grpo", max_completion_length=bad)


@pytest.mark.parametrize("loss_type", ["grpo", "bnpo"])
def test_other_loss_types_ignore_max_completion_length(loss_type):
    inputs = _inputs()
    with_it, _ = _run("grpo_loss", inputs, loss_type=loss_type, max_completion_length=MAX_LEN)
    without, _ = _run("grpo_loss", inputs, loss_type=loss_type)
    assert torch.equal(with_it, without)


def test_token_weights_of_dr_grpo_use_the_constant():
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    w = reference.token_weights(mask, "dr_grpo", max_completion_length=10)
    torch.testing.assert_close(w, mask / 20)


# ------------------------------------------------------------------ fp64


def _fp64_formula(hidden, weight, bias, ids, rewards, mask, ref, temperature, beta):
    """The GRPO loss (grpo aggregation) in plain fp64 autograd."""
    logits = torch.nn.functional.linear(hidden, weight, bias) / temperature
    logp = torch.log_softmax(logits, -1).gather(-1, ids[..., None])[..., 0]
    adv = group_advantages(rewards, G).to(torch.float64)[:, None]
    delta = ref - logp
    ell = -adv * torch.exp(logp - logp.detach()) + beta * (torch.exp(delta) - delta - 1)
    return ((ell * mask).sum(dim=1) / mask.sum(dim=1) / N).sum()


@pytest.mark.parametrize("engine", ["twin", "fused"])
def test_fp64_fused_linear_loss_stays_fp64_and_gradchecks(path, engine):
    fn = twin.fused_linear_grpo_loss if engine == "twin" else fused_linear_grpo_loss
    if engine == "twin" and path != "reference":
        pytest.skip("the twin has one path")
    hidden, weight, bias, ids, rewards, mask, ref = _inputs(dtype=torch.float64)
    leaves = [x.detach().clone().requires_grad_() for x in (hidden, weight, bias)]
    kw = dict(group_size=G, ref_logp=ref, temperature=0.7, beta=0.2, chunk_size=3)
    out = fn(leaves[0], leaves[1], ids, rewards, mask, bias=leaves[2], **kw)
    assert out.loss.dtype == torch.float64
    grads = torch.autograd.grad(out.loss, leaves)
    want = _fp64_formula(*leaves, ids, rewards, mask, ref, 0.7, 0.2)
    want_grads = torch.autograd.grad(want, leaves)
    torch.testing.assert_close(out.loss, want, rtol=1e-12, atol=1e-14)
    for name, a, b in zip(("hidden", "weight", "bias"), grads, want_grads, strict=True):
        assert a.dtype == torch.float64, name
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12, msg=f"d {name}")

    # Finite differences along random directions against the analytic gradient (a gradcheck that
    # calls the op afresh each time: the fused op forms its gradients in the forward, so autograd's
    # gradcheck, which runs one backward twice, cannot be used). old_logp fixed, so that the
    # surrogate's value moves with the weights as its gradient says.
    hidden, weight, bias, ids, rewards, mask, ref = _inputs(t=3, seed=1, dtype=torch.float64)
    kw.update(ref_logp=ref, old_logp=ref + 0.05)
    point = [x.detach().clone().requires_grad_() for x in (hidden, weight, bias)]
    grads = torch.autograd.grad(
        fn(point[0], point[1], ids, rewards, mask, bias=point[2], **kw).loss, point
    )
    step = 1e-6

    def at(direction, sign):
        moved = [(x + sign * step * d).detach() for x, d in zip(point, direction, strict=True)]
        with torch.no_grad():
            return fn(moved[0], moved[1], ids, rewards, mask, bias=moved[2], **kw).loss

    g = torch.Generator().manual_seed(2)
    for _ in range(3):
        direction = [torch.randn(x.shape, generator=g, dtype=torch.float64) for x in point]
        numeric = (at(direction, 1.0) - at(direction, -1.0)) / (2 * step)
        analytic = sum((gr * d).sum() for gr, d in zip(grads, direction, strict=True))
        torch.testing.assert_close(numeric, analytic, rtol=1e-7, atol=1e-9)


def test_fp64_log_probs_stay_fp64(path):
    hidden, weight, bias, ids, *_ = _inputs(dtype=torch.float64)
    got = fused_linear_log_probs(hidden, weight, ids, bias, temperature=0.7, chunk_size=4)
    want = torch.log_softmax(torch.nn.functional.linear(hidden, weight, bias) / 0.7, -1)
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, want.gather(-1, ids[..., None])[..., 0], rtol=1e-12, atol=1e-13)
