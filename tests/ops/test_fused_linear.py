"""The fused-linear GRPO loss against its unfused twin (hidden @ weight.T -> reference loss).

Two engines run the same chunk loop: ``torch`` (the CPU path) and ``triton`` (the row kernel, on
CUDA where there is a GPU, else on CPU through Triton's interpreter with tiny shapes). Both are
compared with the unfused reference for the loss, the metrics and the gradients of hidden, weight
and bias.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402

from grit_fast import _dispatch, backend  # noqa: E402
from grit_fast.ops import fused_linear as FL  # noqa: E402
from grit_fast.ops import fused_linear_grpo_loss, fused_linear_log_probs  # noqa: E402
from grit_fast.ops import reference_fused_linear as twin  # noqa: E402
from tests.conftest import require_triton_interpreter  # noqa: E402

N, T, H, V, G = 6, 13, 24, 1001, 3  # R = N·T = 78 rows
LOSS_TYPES = ["grpo", "bnpo", "dr_grpo", "dapo"]
CUDA = torch.cuda.is_available()


@pytest.fixture(params=["torch", "triton"])
def engine(request, monkeypatch):
    """The device the engine runs on; dispatch is set so that the fused op takes that engine."""
    if request.param == "torch":
        # CPU tensors take the torch step unless the interpreter is on: pretend it is off.
        monkeypatch.setattr(_dispatch, "triton_interpreter", lambda: False)
        with backend("auto"):
            yield "cpu"
    else:
        if not CUDA:
            require_triton_interpreter()
        with backend("fast"):
            yield "cuda" if CUDA else "cpu"


def _inputs(device, n=N, t=T, h=H, v=V, dtype=torch.float32, seed=0):
    """hidden, weight, bias, ids, rewards, mask, old, ref; one group of equal rewards, one
    all-masked row, old/ref near the current log-probs so that the clip and the KL both act."""
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(n, t, h, generator=g)
    weight = torch.randn(v, h, generator=g) * 0.3
    bias = torch.randn(v, generator=g) * 0.5
    ids = torch.randint(0, v, (n, t), generator=g)
    rewards = torch.rand(n, generator=g) * 3
    rewards[:G] = 1.0
    mask = torch.rand(n, t, generator=g) > 0.2
    mask[min(n - 1, 4)] = False
    with torch.no_grad():
        base = twin.fused_linear_log_probs(hidden, weight, ids, bias, 0.7)
    old = base + 0.3 * torch.randn(n, t, generator=g)
    ref = base + 0.3 * torch.randn(n, t, generator=g)
    floats = [x.to(dtype) for x in (hidden, weight, bias)]
    return [x.to(device) for x in (*floats, ids, rewards, mask, old, ref)]


def _loss_and_grads(fn, inputs, need=(True, True, True), **kw):
    """(LossOutput, [d hidden, d weight, d bias]) for fresh leaves that require grad where ``need``
    says; None where not needed. need[2] = False also leaves the bias out."""
    hidden, weight, bias, ids, rewards, mask = inputs[:6]
    leaves = [
        x.detach().clone().requires_grad_(w)
        for x, w in zip((hidden, weight, bias), need, strict=True)
    ]
    kw.setdefault("group_size", G)
    out = fn(leaves[0], leaves[1], ids, rewards, mask, bias=leaves[2] if need[2] else None, **kw)
    wanted = [i for i in range(3) if need[i]]
    grads = [None, None, None]
    for i, g in zip(
        wanted, torch.autograd.grad(out.loss, [leaves[i] for i in wanted]), strict=True
    ):
        grads[i] = g
    return out, grads


def _assert_match(got, want, **tol):
    (out, grads), (ref_out, ref_grads) = got, want
    for name in ("loss", "advantages", "kl", "clip_fraction"):
        torch.testing.assert_close(getattr(out, name), getattr(ref_out, name), msg=name, **tol)
    for name, a, b in zip(("hidden", "weight", "bias"), grads, ref_grads, strict=True):
        if b is None:
            assert a is None, name
        else:
            torch.testing.assert_close(a, b, msg=f"d {name}", **tol)


FP32 = dict(rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("loss_type", LOSS_TYPES)
def test_matches_unfused_reference_every_loss_type(engine, loss_type):
    inputs = _inputs(engine)
    old, ref = inputs[6], inputs[7]
    kw = dict(old_logp=old, ref_logp=ref, temperature=0.7, beta=0.1, loss_type=loss_type)
    kw.update(chunk_size=10, normalizer=123.0, max_completion_length=T + 4)  # 10 ∤ 78 rows
    got = _loss_and_grads(fused_linear_grpo_loss, inputs, **kw)
    want = _loss_and_grads(twin.fused_linear_grpo_loss, inputs, **kw)
    _assert_match(got, want, **FP32)
    assert 0.05 < got[0].clip_fraction.item() < 0.95  # the clip is really exercised
    assert got[0].kl.item() > 0
    assert torch.equal(got[1][0][4], torch.zeros(T, H, device=engine))  # the all-masked row


@pytest.mark.parametrize(
    ("with_bias", "with_old", "with_ref", "temperature", "chunk", "full_mask"),
    [
        (False, False, False, 1.0, None, True),
        (True, False, True, 1.0, 1, False),
        (False, True, False, 1.3, 13, True),
        (True, True, True, 0.5, 78, False),
        (False, True, True, 1.0, 1000, False),
    ],
)
def test_matches_unfused_reference_options(
    engine, with_bias, with_old, with_ref, temperature, chunk, full_mask
):
    inputs = _inputs(engine)
    if full_mask:  # every row computed, none skipped
        inputs[5] = torch.ones_like(inputs[5])
    kw = dict(
        old_logp=inputs[6] if with_old else None,
        ref_logp=inputs[7] if with_ref else None,
        temperature=temperature,
        chunk_size=chunk,
        beta=0.05,
    )
    need = (True, True, with_bias)
    got = _loss_and_grads(fused_linear_grpo_loss, inputs, need=need, **kw)
    want = _loss_and_grads(twin.fused_linear_grpo_loss, inputs, need=need, **kw)
    _assert_match(got, want, **FP32)


def test_group_size_one_scaled_gradient_and_frozen_weight(engine):
    inputs = _inputs(engine)
    kw = dict(group_size=1, ref_logp=inputs[7], beta=0.2, chunk_size=16)
    need = (True, False, False)
    got = _loss_and_grads(fused_linear_grpo_loss, inputs, need=need, **kw)
    want = _loss_and_grads(twin.fused_linear_grpo_loss, inputs, need=need, **kw)
    assert torch.equal(got[0].advantages, torch.zeros(N, device=engine))
    _assert_match(got, want, **FP32)
    # the incoming gradient scales the gradients formed in the forward
    hidden = inputs[0].detach().clone().requires_grad_()
    out = fused_linear_grpo_loss(hidden, *inputs[1:2], *inputs[3:6], bias=None, **kw)
    (3.0 * out.loss).backward()
    torch.testing.assert_close(hidden.grad, 3.0 * want[1][0], **FP32)


def test_autocast_does_not_recast_the_operands(engine):
    inputs = _inputs(engine, n=3, t=5)
    kw = dict(group_size=3, ref_logp=inputs[7], chunk_size=4)
    want = _loss_and_grads(fused_linear_grpo_loss, inputs, **kw)
    with torch.autocast(engine, dtype=torch.bfloat16):
        got = _loss_and_grads(fused_linear_grpo_loss, inputs, **kw)
    _assert_match(got, want, rtol=0, atol=0)


def test_everything_masked_gives_zero_not_nan(engine):
    hidden, weight, _, ids, rewards, mask, old, _ = _inputs(engine, n=3, t=5)
    mask = torch.zeros_like(mask)
    for loss_type in ("grpo", "bnpo"):
        leaf = hidden.clone().requires_grad_()
        out = fused_linear_grpo_loss(
            leaf, weight, ids, rewards, mask, group_size=3, old_logp=old, loss_type=loss_type
        )
        out.loss.backward()
        assert out.loss.item() == 0.0 and out.clip_fraction.item() == 0.0
        assert torch.equal(leaf.grad, torch.zeros_like(leaf))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_error_no_worse_than_torch(engine, dtype):
    """Ours in half precision vs the fp32 reference, against torch's own half-precision error (the
    unfused twin run in that dtype): relative L2 error at most 1.5x torch's, per output."""
    inputs = _inputs(engine)
    kw = dict(old_logp=inputs[6], ref_logp=inputs[7], temperature=0.7, beta=0.1, chunk_size=7)
    want = _loss_and_grads(twin.fused_linear_grpo_loss, inputs, **kw)
    low = [x.to(dtype) for x in inputs[:3]] + inputs[3:]  # old/ref log-probs stay fp32
    ours = _loss_and_grads(fused_linear_grpo_loss, low, **kw)
    torch_half = _loss_and_grads(twin.fused_linear_grpo_loss, low, **kw)

    def rel(a, b):
        return ((a.float() - b).norm() / b.norm()).item()

    for name, o, t, w in zip(
        ("loss", "hidden", "weight", "bias"),
        [ours[0].loss, *ours[1]],
        [torch_half[0].loss, *torch_half[1]],
        [want[0].loss, *want[1]],
        strict=True,
    ):
        assert o.dtype == (torch.float32 if name == "loss" else dtype), name
        assert rel(o, w) <= 1.5 * rel(t, w) + 1e-4, (name, rel(o, w), rel(t, w))


def test_log_probs_match_reference_without_gradient(engine):
    hidden, weight, bias, ids, *_ = _inputs(engine)
    hidden.requires_grad_()
    for b, tau, chunk in ((None, 1.0, None), (bias, 0.6, 5)):
        got = fused_linear_log_probs(hidden, weight, ids, b, tau, chunk)
        want = twin.fused_linear_log_probs(hidden, weight, ids, b, tau)
        assert got.shape == (N, T) and got.dtype == torch.float32 and not got.requires_grad
        torch.testing.assert_close(got, want, **FP32)


def test_non_contiguous_hidden_slice(engine):
    """The trainer passes hidden[:, P-1 : P+T-1] of the backbone's output: a strided view."""
    _, weight, _, ids, rewards, mask, old, _ = _inputs(engine)
    full = torch.randn(N, T + 4, H, device=engine, requires_grad=True)
    grads = []
    for fn in (fused_linear_grpo_loss, twin.fused_linear_grpo_loss):
        kw = dict(group_size=G, old_logp=old, chunk_size=11)
        out = fn(full[:, 3 : 3 + T], weight, ids, rewards, mask, **kw)
        grads.append(torch.autograd.grad(out.loss, full)[0])
    torch.testing.assert_close(grads[0], grads[1], **FP32)
    assert torch.equal(grads[0][:, :3], torch.zeros(N, 3, H, device=engine))


# monkeypatch only pins the dispatch to the torch path: the same for every example
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    groups=st.integers(1, 3),
    group_size=st.integers(1, 4),
    t=st.integers(0, 20),
    h=st.integers(1, 40),
    v=st.integers(1, 300),
    chunk=st.one_of(st.none(), st.integers(1, 50)),
    temperature=st.sampled_from([1.0, 0.6, 1.3]),
    loss_type=st.sampled_from(LOSS_TYPES),
    options=st.tuples(st.booleans(), st.booleans(), st.booleans()),
    seed=st.integers(0, 2**16),
)
def test_torch_path_random_shapes(
    monkeypatch, groups, group_size, t, h, v, chunk, temperature, loss_type, options, seed
):
    """Random shapes (T = 0, V = 1, H = 1 included), masks, chunks and options on the CPU path."""
    monkeypatch.setattr(_dispatch, "triton_interpreter", lambda: False)  # the torch path
    n = groups * group_size
    with_bias, with_old, with_ref = options
    g = torch.Generator().manual_seed(seed)
    inputs = _inputs("cpu", n=n, t=t, h=h, v=v, seed=seed)
    inputs[4] = torch.randint(0, 3, (n,), generator=g).float()  # ties and equal groups
    inputs[5] = torch.rand(n, t, generator=g) > torch.rand((), generator=g)
    kw = dict(
        group_size=group_size,
        old_logp=inputs[6] if with_old else None,
        ref_logp=inputs[7] if with_ref else None,
        temperature=temperature,
        chunk_size=chunk,
        loss_type=loss_type,
        normalizer=7.0,
        max_completion_length=t + 3,
    )
    need = (True, True, with_bias)
    got = _loss_and_grads(fused_linear_grpo_loss, inputs, need=need, **kw)
    want = _loss_and_grads(twin.fused_linear_grpo_loss, inputs, need=need, **kw)
    _assert_match(got, want, rtol=1e-4, atol=1e-5)


class _LargestAllocation(TorchDispatchMode):
    """Records the largest storage (bytes) behind any tensor an op returns inside the block, so
    that views (expand, t, slices) count for nothing and new buffers for their full size."""

    def __init__(self) -> None:
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for x in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(x, torch.Tensor):
                self.largest = max(self.largest, x.untyped_storage().nbytes())
        return out


def test_no_tensor_as_large_as_the_logits(monkeypatch):
    """Forward and backward of the CPU path allocate nothing near (N·T, V): the largest buffer is
    one chunk of logits. The unfused twin, measured the same way, does build (N, T, V)."""
    monkeypatch.setattr(_dispatch, "triton_interpreter", lambda: False)  # the torch path
    v, chunk = 4099, 32  # the [32, V] chunk outweighs d W [V, 24]
    hidden, weight, bias, ids, rewards, mask, old, ref = _inputs("cpu", v=v)
    kw = dict(group_size=G, bias=bias, old_logp=old, ref_logp=ref, chunk_size=chunk)
    sizes = {}
    for name, fn in (("fused", fused_linear_grpo_loss), ("unfused", twin.fused_linear_grpo_loss)):
        leaf = hidden.clone().requires_grad_()
        w = weight.clone().requires_grad_()
        with _LargestAllocation() as probe:
            fn(leaf, w, ids, rewards, mask, **kw).loss.backward()
        sizes[name] = probe.largest
    assert sizes["fused"] == chunk * v * 4  # the fp32 chunk buffer
    assert sizes["unfused"] >= N * T * v * 4
    # Masked rows are skipped: with 5 unmasked tokens the chunk holds 5 rows.
    few = torch.zeros_like(mask)
    few.view(-1)[torch.tensor([3, 17, 40, 41, 77])] = True
    with _LargestAllocation() as probe:
        out = fused_linear_grpo_loss(hidden, weight, ids, rewards, few, **kw)
    assert probe.largest < chunk * v * 4 and probe.largest >= 5 * v * 4
    want = twin.fused_linear_grpo_loss(hidden, weight, ids, rewards, few, **kw)
    torch.testing.assert_close(out.loss, want.loss, **FP32)
    assert FL.auto_chunk_size(N * T, v, torch.float32, torch.device("cpu")) == N * T


def test_auto_chunk_size_bounds_the_chunk(monkeypatch):
    rows, vocab = 16 * 1024, 151_936
    cpu = torch.device("cpu")
    c = FL.auto_chunk_size(rows, vocab, torch.bfloat16, cpu)
    most = FL.CPU_CHUNK_BYTES // (vocab * 6)  # bf16 chunk plus its fp32 working copy
    assert c <= most and -(-rows // c) == -(-rows // most)  # no more chunks than the budget needs
    assert FL.auto_chunk_size(0, 10, torch.float32, cpu) == 1
    assert FL.auto_chunk_size(5, 10, torch.float32, cpu) == 5
    # On a GPU: a quarter of the free memory within [64 MiB, 512 MiB], rows a multiple of 128.
    gpu = torch.device("cuda", 0)
    for free, budget in ((80 << 30, 512 << 20), (1 << 30, 256 << 20), (1 << 20, 64 << 20)):
        monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device, f=free: (f, 80 << 30))
        c = FL.auto_chunk_size(rows, vocab, torch.bfloat16, gpu)
        assert c % 128 == 0 and budget // 2 < c * vocab * 2 <= budget, (free, c)


def test_second_backward_is_refused_clearly():
    hidden, weight, _, ids, rewards, mask, *_ = _inputs("cpu", n=3, t=4)
    leaf = hidden.clone().requires_grad_()
    loss = fused_linear_grpo_loss(leaf, weight, ids, rewards, mask, group_size=3).loss
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="second time"):
        loss.backward()


def test_reference_backend_runs_the_unfused_twin(monkeypatch):
    calls = []
    monkeypatch.setattr(twin, "fused_linear_grpo_loss", lambda *a, **k: calls.append(1))
    hidden, weight, _, ids, rewards, mask, *_ = _inputs("cpu", n=3, t=4)
    with backend("reference"):
        fused_linear_grpo_loss(hidden, weight, ids, rewards, mask, group_size=3)
    assert calls == [1]


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        (dict(hidden=torch.zeros(18, H)), ValueError, r"hidden must be 3-D \(N, T, H\)"),
        (dict(weight=torch.zeros(V, H + 1)), ValueError, "weight must be 2-D"),
        (dict(bias=torch.zeros(V - 1)), ValueError, r"bias must have shape \(1001,\)"),
        (dict(weight=torch.zeros(V, H, dtype=torch.bfloat16)), TypeError, "share one dtype"),
        (dict(hidden=torch.zeros(N, T, H, dtype=torch.int64)), TypeError, "hidden must be a float"),
        (dict(ids=torch.zeros(N, T)), TypeError, "ids must be an integer"),
        (dict(ids=torch.full((N, T), V)), ValueError, r"ids must lie in \[0, 1001\)"),
        (dict(ids=torch.zeros(N, T + 1, dtype=torch.long)), ValueError, "ids must have shape"),
        (dict(mask=torch.ones(N, T - 1)), ValueError, "mask must have shape"),
        (dict(rewards=torch.zeros(N + 3)), ValueError, "rewards has 9 entries"),
        (dict(old_logp=torch.zeros(N, 2)), ValueError, "old_logp must have shape"),
        (dict(chunk_size=0), ValueError, "chunk_size must be None or a positive int"),
        (dict(temperature=0.0), ValueError, "temperature must be > 0"),
        (dict(group_size=4), ValueError, "not a multiple of group_size=4"),
        (dict(loss_type="ppo"), ValueError, "loss_type must be one of"),
        (dict(epsilon=0.3), TypeError, r"unexpected keyword argument\(s\) \['epsilon'\]"),
    ],
)
def test_bad_input_is_refused_with_a_clear_error(change, error, match):
    hidden, weight, bias, ids, rewards, mask, *_ = _inputs("cpu")
    args = dict(hidden=hidden, weight=weight, ids=ids, rewards=rewards, mask=mask)
    kw = dict(group_size=G, bias=bias)
    for key, value in change.items():
        (args if key in args else kw)[key] = value
    for fn in (fused_linear_grpo_loss, twin.fused_linear_grpo_loss):
        with pytest.raises(error, match=match):
            fn(*args.values(), **kw)


def test_log_probs_refuse_bad_input():
    hidden, weight, _, ids, *_ = _inputs("cpu")
    with pytest.raises(ValueError, match="weight must be 2-D"):
        fused_linear_log_probs(hidden, weight.T, ids)
    with pytest.raises(ValueError, match="chunk_size"):
        fused_linear_log_probs(hidden, weight, ids, chunk_size=-2)


COMPILE_SCRIPT = r"""
import sys, torch
try:
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource, compile, make_backend
    from triton.runtime.jit import create_function_from_signature
except ImportError as exc:
    print("NO-AOT-API", exc)
    sys.exit(0)
from grit_fast.ops._fused_linear_kernels import _fused_linear_chunk_kernel as k

f32 = torch.empty(8, dtype=torch.float32)
i64 = torch.empty(8, dtype=torch.int64)
for arch in (80, 90):
    target = GPUTarget("cuda", arch, 32)
    backend = make_backend(target)
    for logits, grad in ((torch.empty(8, dtype=torch.bfloat16), True), (f32, False)):
        binder = create_function_from_signature(k.signature, k.params, backend)
        bound, spec, options = binder(
            logits, i64, f32, f32, f32, f32, f32, 151936, 151936, (0.04, 0.2, 0.2, 1 / 0.9),
            HAS_OLD=grad, HAS_REF=grad, WRITE_GRAD=grad, BLOCK_V=4096, num_warps=8)
        options, signature, constexprs, attrs = k._pack_args(backend, {}, bound, spec, options)
        src = ASTSource(k, signature, constexprs, attrs)
        assert "cubin" in compile(src, target=target, options=options.__dict__).asm
        print("compiled", arch, grad)
"""


@pytest.mark.slow
def test_chunk_kernel_compiles_for_sm80_and_sm90(tmp_path):
    """The interpreter accepts code the compiler rejects: compile the row kernel to cubins."""
    import os

    if not _dispatch.triton_installed():
        pytest.skip("triton is not installed")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env.update(TRITON_CACHE_DIR=str(tmp_path))
    proc = subprocess.run(
        [sys.executable, "-c", COMPILE_SCRIPT], capture_output=True, text=True, env=env, timeout=300
    )
    if "NO-AOT-API" in proc.stdout:
        pytest.skip(f"this triton has no ahead-of-time compile API: {proc.stdout.strip()}")
    if "ptxas" in proc.stderr and "not found" in proc.stderr.lower():
        pytest.skip("triton's ptxas is missing, so kernels cannot be compiled here")
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stdout.count("compiled") == 4, proc.stdout
