"""GRPO loss from logits: forward and forward+backward, side by side.

Providers (group = pass × shape):
  eager      TRL-style eager: fp32 log_softmax over (N, T, V), gather, a dozen elementwise ops
  compiled   torch.compile of that same function
  chunked    our plain-torch twin (grit_fast.ops.reference; the CPU path: chunked, no (N, T, V) fp32)
  triton     ours, grpo_loss_from_logits on CUDA tensors (GPU only)
  triton-inplace  ours with inplace_backward=True (GPU only; forward+backward only)
  liger      Liger-Kernel's triton_grpo_loss, when installed (GPU only)
  copy       logits.clone(): the device's copy bandwidth, the yardstick for GB/s

Each provider's loss is checked against the fp32 reference once before timing. extra_info records the
shape, dtype, device, GB/s (bytes of logits moved: forward reads them once; forward+backward reads
them twice and writes the gradient once) and, on CUDA, the peak memory beyond the inputs.

    python -m pytest benches/bench_loss.py --benchmark-group-by=group --benchmark-columns=min,median,ops
"""

from __future__ import annotations

import importlib.util

import pytest

torch = pytest.importorskip("torch")

from eager_loss import trl_loss  # noqa: E402

from grit_fast.ops import grpo_loss_from_logits, reference  # noqa: E402

CUDA = torch.cuda.is_available()
DEVICE = "cuda" if CUDA else "cpu"
G = 4
# (N, T, V): the Qwen2.5-VL case needs 5 GB of bf16 logits (and 10 GB fp32 for eager): GPU only.
SHAPES = {
    "qwen25vl-16x1024x151936": (16, 1024, 151_936),
    "cpu-4x64x151936": (4, 64, 151_936),
}
PROVIDERS = ["eager", "compiled", "chunked", "triton", "triton-inplace", "liger"]
GPU_ONLY = {"triton", "triton-inplace", "liger"}
HPARAMS = dict(beta=0.04, eps_low=0.2, eps_high=0.2, temperature=0.9)


def _skip_reason(provider: str, shape: str) -> str | None:
    if shape.startswith("qwen") and not CUDA:
        return "the Qwen2.5-VL shape needs ~15 GB and a GPU; CPU runs use the small shape"
    if shape.startswith("cpu") and CUDA:
        return "GPU runs use the real shape"
    if provider in GPU_ONLY and not CUDA:
        return f"{provider} runs on CUDA tensors only; no GPU here"
    if provider == "liger" and importlib.util.find_spec("liger_kernel") is None:
        return "Liger-Kernel is not installed (pip install -e '.[peers]')"
    if provider == "compiled" and not CUDA and shape.startswith("qwen"):
        return "too large for CPU"
    return None


def _inputs(shape: tuple[int, int, int], extra_position: bool = False):
    n, t, v = shape
    g = torch.Generator(device=DEVICE).manual_seed(0)
    logits = torch.randn(n, t + extra_position, v, generator=g, device=DEVICE, dtype=torch.bfloat16)
    ids = torch.randint(0, v, (n, t), generator=g, device=DEVICE)
    rewards = torch.rand(n, generator=g, device=DEVICE)
    mask = torch.rand(n, t, generator=g, device=DEVICE) > 0.1
    base = reference.selective_log_softmax(logits[:, :t], ids, HPARAMS["temperature"])
    old = base + 0.05 * torch.randn(n, t, generator=g, device=DEVICE)
    ref = base + 0.05 * torch.randn(n, t, generator=g, device=DEVICE)
    return logits, ids, rewards, mask, old, ref


def _eager(logits, ids, rewards, mask, old, ref):
    """TRL's _compute_loss, inlined: full fp32 log-softmax, then the elementwise loss."""
    return trl_loss(logits, ids, rewards, mask, old, ref, group_size=G, **HPARAMS)


_compiled = None


def _provider_fn(provider: str):
    """fn(logits, ids, rewards, mask, old, ref) -> 0-dim loss."""
    global _compiled
    kw = dict(group_size=G, **HPARAMS)
    if provider == "eager":
        return _eager
    if provider == "compiled":
        _compiled = _compiled or torch.compile(_eager, dynamic=False)
        return _compiled
    if provider == "chunked":
        return lambda lg, i, r, m, o, rf: (
            reference.grpo_loss_from_logits(lg, i, r, m, old_logp=o, ref_logp=rf, **kw).loss
        )
    if provider in ("triton", "triton-inplace"):
        inplace = provider == "triton-inplace"
        return lambda lg, i, r, m, o, rf: (
            grpo_loss_from_logits(
                lg, i, r, m, old_logp=o, ref_logp=rf, inplace_backward=inplace, **kw
            ).loss
        )
    from liger_kernel.transformers.grpo_loss import triton_grpo_loss

    def liger(lg, i, r, m, o, rf):
        adv = reference.group_advantages(r, G)
        out = triton_grpo_loss(
            lg,
            o,
            rf,
            i,
            adv,
            m,
            HPARAMS["temperature"],
            HPARAMS["beta"],
            HPARAMS["eps_low"],
            HPARAMS["eps_high"],
            provider == "liger",
        )
        per_token = out[0]
        if per_token.dim() == 0:
            return per_token
        mf = m.float()
        return ((per_token * mf).sum(1) / mf.sum(1).clamp(min=1)).mean()

    return liger


def _sync():
    if CUDA:
        torch.cuda.synchronize()


def _record(benchmark, machine, shape_name, shape, passes):
    n, t, v = shape
    benchmark.extra_info.update(machine)
    benchmark.extra_info.update(shape=shape_name, N=n, T=t, V=v, dtype="bfloat16", G=G)
    moved = passes * n * t * v * 2  # bf16 bytes of logits read or written
    median = benchmark.stats.stats.median if benchmark.stats else None
    if median:
        benchmark.extra_info["GB/s"] = round(moved / median / 1e9, 1)


def _check_once(fn, inputs, shape):
    logits, ids, rewards, mask, old, ref = inputs
    t = shape[1]
    want = reference.grpo_loss_from_logits(
        logits[:, :t], ids, rewards, mask, group_size=G, old_logp=old, ref_logp=ref, **HPARAMS
    ).loss
    got = fn(logits, ids, rewards, mask, old, ref)
    torch.testing.assert_close(got.float(), want, rtol=2e-3, atol=2e-4)


@pytest.mark.parametrize("shape_name", list(SHAPES))
@pytest.mark.parametrize("provider", [p for p in PROVIDERS if p != "triton-inplace"])
def test_loss_forward(benchmark, machine, provider, shape_name):
    if reason := _skip_reason(provider, shape_name):
        pytest.skip(reason)
    shape = SHAPES[shape_name]
    benchmark.group = f"forward {shape_name}"
    inputs = _inputs(shape, extra_position=provider == "liger")
    fn = _provider_fn(provider)
    _check_once(fn, inputs, shape)

    def run():
        with torch.no_grad():
            fn(*inputs)
        _sync()

    benchmark.pedantic(run, rounds=5, warmup_rounds=1)
    _record(benchmark, machine, shape_name, shape, passes=1)


@pytest.mark.parametrize("shape_name", list(SHAPES))
@pytest.mark.parametrize("provider", PROVIDERS)
def test_loss_forward_backward(benchmark, machine, provider, shape_name):
    if reason := _skip_reason(provider, shape_name):
        pytest.skip(reason)
    shape = SHAPES[shape_name]
    benchmark.group = f"forward+backward {shape_name}"
    logits, *rest = _inputs(shape, extra_position=provider == "liger")
    fn = _provider_fn(provider)
    _check_once(fn, (logits, *rest), shape)
    # The logits buffer is a fresh non-leaf per round, as the lm_head's output would be (in-place
    # providers overwrite it); its only parent is a scalar, so backward allocates nothing (N, T, V)
    # beyond what the loss itself allocates.
    handle = torch.zeros((), device=DEVICE, dtype=logits.dtype, requires_grad=True)

    def setup():
        return (logits + handle,), {}

    def run(buffer):
        fn(buffer, *rest).backward()
        _sync()

    benchmark.pedantic(run, setup=setup, rounds=5, warmup_rounds=1)
    _record(benchmark, machine, shape_name, shape, passes=3)
    if CUDA:
        (buffer,), _ = setup()
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        run(buffer)
        extra = torch.cuda.max_memory_allocated() - before
        benchmark.extra_info["peak_beyond_inputs_GB"] = round(extra / 1e9, 3)
        benchmark.extra_info["peak_over_logits"] = round(extra / (logits.numel() * 2), 3)


@pytest.mark.parametrize("shape_name", list(SHAPES))
def test_copy_bandwidth(benchmark, machine, shape_name):
    if reason := _skip_reason("eager", shape_name):
        pytest.skip(reason)
    shape = SHAPES[shape_name]
    benchmark.group = f"copy {shape_name}"
    logits = _inputs(shape)[0]

    def run():
        logits.clone()
        _sync()

    benchmark.pedantic(run, rounds=5, warmup_rounds=1)
    _record(benchmark, machine, shape_name, shape, passes=2)
