"""The fused-linear policy loss (advantages and per-token weights given) against its unfused twin,
on both engines of the chunk loop (torch on CPU; Triton on CUDA or through Triton's interpreter),
and against fused_linear_grpo_loss where the two coincide."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from grit_fast import _dispatch, backend  # noqa: E402
from grit_fast.ops import fused_linear_grpo_loss, fused_linear_policy_loss  # noqa: E402
from grit_fast.ops import reference as ref_ops  # noqa: E402
from grit_fast.ops import reference_fused_linear as twin  # noqa: E402
from tests.conftest import require_triton_interpreter  # noqa: E402

N, T, H, V = 5, 11, 24, 997  # R = 55 rows
CUDA = torch.cuda.is_available()
FP32 = dict(rtol=2e-5, atol=2e-6)


@pytest.fixture(params=["torch", "triton"])
def engine(request, monkeypatch):
    """The device the engine runs on; dispatch is set so that the fused op takes that engine."""
    if request.param == "torch":
        monkeypatch.setattr(_dispatch, "triton_interpreter", lambda: False)
        with backend("auto"):
            yield "cpu"
    else:
        if not CUDA:
            require_triton_interpreter()
        with backend("fast"):
            yield "cuda" if CUDA else "cpu"


def _inputs(device, per_token_adv=False, seed=0):
    """hidden, weight, bias, ids, advantages, weights, old, ref; one row of weight 0, irregular
    weights elsewhere (some 0), old/ref near the current log-probs so the clip and KL both act."""
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(N, T, H, generator=g)
    weight = torch.randn(V, H, generator=g) * 0.3
    bias = torch.randn(V, generator=g) * 0.5
    ids = torch.randint(0, V, (N, T), generator=g)
    adv = torch.randn((N, T) if per_token_adv else (N,), generator=g)
    weights = torch.rand(N, T, generator=g) * (torch.rand(N, T, generator=g) > 0.25)
    weights[2] = 0.0
    with torch.no_grad():
        base = twin.fused_linear_log_probs(hidden, weight, ids, bias, 0.8)
    old = base + 0.3 * torch.randn(N, T, generator=g)
    ref = base + 0.3 * torch.randn(N, T, generator=g)
    return [x.to(device) for x in (hidden, weight, bias, ids, adv, weights, old, ref)]


def _run(fn, inputs, with_bias=True, **kw):
    hidden, weight, bias, ids, adv, weights = inputs[:6]
    leaves = [x.detach().clone().requires_grad_(True) for x in (hidden, weight, bias)]
    out = fn(leaves[0], leaves[1], ids, adv, weights, bias=leaves[2] if with_bias else None, **kw)
    wanted = leaves if with_bias else leaves[:2]
    return out, torch.autograd.grad(out.loss, wanted)


def _assert_match(got, want, **tol):
    (out, grads), (ref_out, ref_grads) = got, want
    torch.testing.assert_close(out.loss, ref_out.loss, msg="loss", **tol)
    torch.testing.assert_close(out.logp, ref_out.logp, msg="logp", **tol)
    assert len(grads) == len(ref_grads)
    for name, a, b in zip(("hidden", "weight", "bias"), grads, ref_grads, strict=False):
        torch.testing.assert_close(a, b, msg=f"d {name}", **tol)


@pytest.mark.parametrize(
    ("per_token_adv", "with_old", "with_ref", "with_bias", "chunk"),
    [
        (False, True, True, True, 7),  # 7 does not divide the kept rows
        (True, True, True, False, None),
        (False, False, False, True, 1),
        (True, False, True, True, 64),
    ],
)
def test_matches_unfused_twin(engine, per_token_adv, with_old, with_ref, with_bias, chunk):
    inputs = _inputs(engine, per_token_adv)
    old, ref = inputs[6], inputs[7]
    kw = dict(
        old_logp=old if with_old else None,
        ref_logp=ref if with_ref else None,
        beta=0.07,
        eps_low=0.2,
        eps_high=0.28,
        temperature=0.8,
        chunk_size=chunk,
        with_bias=with_bias,
    )
    got = _run(fused_linear_policy_loss, inputs, **kw)
    want = _run(twin.fused_linear_policy_loss, inputs, **kw)
    _assert_match(got, want, **FP32)
    assert got[0].loss.abs().item() > 1e-3
    hidden_grad = got[1][0]
    assert torch.equal(hidden_grad[2], torch.zeros(T, H, device=engine))  # the weight-0 row
    assert torch.equal(got[0].logp[2], torch.zeros(T, device=engine))
    assert hidden_grad[0].abs().sum() > 0


def test_is_fused_linear_grpo_loss_with_its_advantages_and_weights(monkeypatch):
    """fused_linear_grpo_loss = this op with group advantages and the loss type's token weights
    (on the torch engine; both engines are compared with the twin above)."""
    monkeypatch.setattr(_dispatch, "triton_interpreter", lambda: False)
    hidden, weight, bias, ids, _, _, old, ref = _inputs("cpu")
    rewards = torch.tensor([1.0, 3.0, 0.5, 2.0, 2.0, 7.0])[:N]
    mask = torch.ones(N, T)
    mask[1, 6:] = 0
    kw = dict(bias=bias, old_logp=old, ref_logp=ref, beta=0.05, temperature=0.8)
    for loss_type in ("grpo", "bnpo", "dr_grpo"):
        lengths = {"loss_type": loss_type, "max_completion_length": T + 3}
        want = fused_linear_grpo_loss(
            hidden, weight, ids, rewards, mask, group_size=5, **lengths, **kw
        )
        weights = ref_ops.token_weights(mask, **lengths)
        got = fused_linear_policy_loss(hidden, weight, ids, want.advantages, weights, **kw)
        torch.testing.assert_close(got.loss, want.loss, **FP32)


def test_everything_weight_zero_gives_zero_loss_and_gradients(engine):
    inputs = _inputs(engine)
    inputs[5] = torch.zeros(N, T, device=engine)
    (out, grads) = _run(fused_linear_policy_loss, inputs, old_logp=inputs[6])
    assert out.loss.item() == 0.0
    assert all(torch.equal(g, torch.zeros_like(g)) for g in grads)


def test_second_backward_is_refused_clearly():
    hidden, weight, _, ids, adv, weights = _inputs("cpu")[:6]
    hidden.requires_grad_(True)
    out = fused_linear_policy_loss(hidden, weight, ids, adv, weights)
    out.loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="a second time"):
        out.loss.backward()


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        ({"advantages": torch.zeros(N + 1)}, ValueError, r"advantages must have shape \(5,\)"),
        ({"advantages": torch.zeros(N, dtype=torch.long)}, TypeError, "advantages must be a float"),
        ({"weights": torch.zeros(N, T + 1)}, ValueError, "weights must have shape"),
        ({"weights": torch.full((N, T), float("nan"))}, ValueError, "weights must be finite"),
        ({"old_logp": torch.zeros(N, 2)}, ValueError, "old_logp must have shape"),
        ({"beta": -1.0}, ValueError, "beta must be >= 0"),
        ({"eps_low": -0.1}, ValueError, "eps_low must be >= 0"),
    ],
)
def test_bad_input_is_refused_with_a_clear_error(change, error, match):
    hidden, weight, _, ids, adv, weights = _inputs("cpu")[:6]
    args = {"advantages": adv, "weights": weights, **change}
    positional = (hidden, weight, ids, args.pop("advantages"), args.pop("weights"))
    for fn in (fused_linear_policy_loss, twin.fused_linear_policy_loss):
        with pytest.raises(error, match=match):
            fn(*positional, **args)


def test_fp64_stays_fp64_matches_twin_and_finite_differences(engine):
    """fp64 operands run in fp64 (the torch row step, on either engine), so the gradient can be
    checked against finite differences along random directions of hidden, weight and bias."""
    hidden, weight, bias, ids, adv, weights, old, ref = [
        x.double() if x.is_floating_point() else x for x in _inputs(engine, per_token_adv=True)
    ]
    kw = dict(old_logp=old, ref_logp=ref, beta=0.2, eps_low=0.2, eps_high=0.28, temperature=0.7)
    point = [x.detach().clone().requires_grad_() for x in (hidden, weight, bias)]
    out = fused_linear_policy_loss(point[0], point[1], ids, adv, weights, bias=point[2], **kw)
    assert out.loss.dtype == out.logp.dtype == torch.float64
    grads = torch.autograd.grad(out.loss, point)
    want = twin.fused_linear_policy_loss(point[0], point[1], ids, adv, weights, bias=point[2], **kw)
    torch.testing.assert_close(out.loss, want.loss, rtol=1e-12, atol=1e-14)
    for a, b in zip(grads, torch.autograd.grad(want.loss, point), strict=True):
        assert a.dtype == torch.float64
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)

    def at(direction, sign, step=1e-6):
        moved = [(x + sign * step * d).detach() for x, d in zip(point, direction, strict=True)]
        with torch.no_grad():
            return fused_linear_policy_loss(
                moved[0], moved[1], ids, adv, weights, bias=moved[2], **kw
            ).loss

    g = torch.Generator().manual_seed(3)
    for _ in range(3):
        direction = [torch.randn(x.shape, generator=g, dtype=torch.float64).to(x) for x in point]
        numeric = (at(direction, 1.0) - at(direction, -1.0)) / 2e-6
        analytic = sum((gr * d).sum() for gr, d in zip(grads, direction, strict=True))
        torch.testing.assert_close(numeric, analytic, rtol=1e-6, atol=1e-9)
