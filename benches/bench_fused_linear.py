"""Fused-linear GRPO loss: hidden states and lm_head to loss, forward+backward, side by side.

Providers (group = pass × shape):
  eager     logits = hidden @ weight.T (bf16, (N, T, V)), then a TRL-style eager loss (fp32
            log_softmax over the vocabulary, gather, the clipped surrogate and k3 KL)
  compiled  torch.compile of that same function
  ours      grit_fast.ops.fused_linear_grpo_loss (Triton row kernel on CUDA, chunked torch on CPU)
  liger     Liger-Kernel's LigerFusedLinearGRPOLoss (torch.compile'd chunks), when installed

Each provider's loss is checked against eager once before timing. extra_info records the shape,
dtype, device and the peak memory of one forward+backward beyond the inputs (the weight and hidden
gradients included, as every provider makes them):
  CUDA  torch.cuda.max_memory_allocated() minus what was allocated before the call;
  CPU   the peak of live tensor storages created during the call, from torch.profiler's memory
        timeline (CREATE/DESTROY events; tracemalloc does not see torch's allocations).

    python -m pytest benches/bench_fused_linear.py --benchmark-group-by=group \
        --benchmark-columns=min,median,ops
"""

from __future__ import annotations

import importlib.util

import pytest

torch = pytest.importorskip("torch")

from eager_loss import trl_loss  # noqa: E402

from grit_fast.ops import fused_linear_grpo_loss, reference  # noqa: E402

CUDA = torch.cuda.is_available()
DEVICE = "cuda" if CUDA else "cpu"
G = 2  # so that the memory sweep can start at N = 2
V = 151_936
# (N, T, H): Qwen2.5-VL-3B's hidden size and a 7B-class 4096 on a GPU; a reduced CPU shape.
SHAPES = {
    "gpu-16x1024x2048": (16, 1024, 2048),
    "gpu-16x1024x4096": (16, 1024, 4096),
    "cpu-4x64x256": (4, 64, 256),
}
MEMORY_BATCHES = {"gpu": (2, 4, 8, 16), "cpu": (2, 4, 8)}
PROVIDERS = ["eager", "compiled", "ours", "liger"]
HPARAMS = dict(beta=0.04, eps_low=0.2, eps_high=0.2, temperature=0.9)


def _skip_reason(provider: str, shape: str) -> str | None:
    if shape.startswith("gpu") and not CUDA:
        return "the Qwen2.5-VL shapes need a GPU (eager alone needs ~30 GB); CPU runs a small one"
    if shape.startswith("cpu") and CUDA:
        return "GPU runs use the real shapes"
    if provider == "liger":
        if importlib.util.find_spec("liger_kernel") is None:
            return "Liger-Kernel is not installed (pip install -e '.[peers]')"
        if not CUDA:
            return "Liger-Kernel's fused linear GRPO loss is a GPU peer; no GPU here"
    return None


def _inputs(n: int, t: int, h: int):
    """hidden (N, T, H) and weight (V, H) bf16 leaves that require grad, and the loss's inputs."""
    g = torch.Generator(device=DEVICE).manual_seed(0)
    hidden = torch.randn(n, t, h, generator=g, device=DEVICE, dtype=torch.bfloat16)
    weight = torch.randn(V, h, generator=g, device=DEVICE, dtype=torch.bfloat16) * h**-0.5
    ids = torch.randint(0, V, (n, t), generator=g, device=DEVICE)
    rewards = torch.rand(n, generator=g, device=DEVICE)
    mask = torch.rand(n, t, generator=g, device=DEVICE) > 0.1
    with torch.no_grad():
        base = reference.selective_log_softmax(hidden @ weight.T, ids, HPARAMS["temperature"])
    old = base + 0.05 * torch.randn(n, t, generator=g, device=DEVICE)
    ref = base + 0.05 * torch.randn(n, t, generator=g, device=DEVICE)
    return hidden.requires_grad_(), weight.requires_grad_(), ids, rewards, mask, old, ref


def _eager(hidden, weight, ids, rewards, mask, old, ref):
    """The matmul, then TRL's _compute_loss inlined: full fp32 log-softmax, elementwise loss."""
    return trl_loss(hidden @ weight.T, ids, rewards, mask, old, ref, group_size=G, **HPARAMS)


_compiled = None
_liger = None


def _provider_fn(provider: str):
    """fn(hidden, weight, ids, rewards, mask, old, ref) -> 0-dim loss."""
    global _compiled, _liger
    if provider == "eager":
        return _eager
    if provider == "compiled":
        _compiled = _compiled or torch.compile(_eager, dynamic=False)
        return _compiled
    if provider == "ours":
        return lambda h, w, i, r, m, o, rf: (
            (
                fused_linear_grpo_loss(
                    h, w, i, r, m, group_size=G, old_logp=o, ref_logp=rf, **HPARAMS
                )
            ).loss
        )
    from liger_kernel.chunked_loss import LigerFusedLinearGRPOLoss

    _liger = _liger or LigerFusedLinearGRPOLoss(
        beta=HPARAMS["beta"],
        epsilon_low=HPARAMS["eps_low"],
        epsilon_high=HPARAMS["eps_high"],
        temperature=HPARAMS["temperature"],
        loss_type="grpo",
        use_ref_model=True,
    )

    def liger(h, w, i, r, m, o, rf):
        adv = reference.group_advantages(r, G)
        loss, _ = _liger(h, w, i, m.long(), adv, ref_per_token_logps=rf, old_per_token_logps=o)
        return loss

    return liger


def _sync():
    if CUDA:
        torch.cuda.synchronize()


def _cpu_peak_bytes(run) -> int:
    """Peak bytes of tensor storages alive at once among those created while ``run`` runs."""
    from torch.profiler import ProfilerActivity, profile

    with profile(
        activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=True, with_stack=True
    ) as prof:
        run()
    live = peak = 0
    created = set()
    for _, action, (key, _), size in prof._memory_profile().timeline:  # private API, no public peak
        if action.name == "CREATE":
            created.add(key)
            live += size
        elif action.name == "DESTROY" and key in created:
            live -= size
        peak = max(peak, live)
    return peak


def _peak_bytes(run, inputs) -> int:
    """Peak memory of one ``run`` beyond what existed before it (the inputs, without gradients)."""
    inputs[0].grad = inputs[1].grad = None
    if not CUDA:
        return _cpu_peak_bytes(run)
    _sync()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    run()
    _sync()
    return torch.cuda.max_memory_allocated() - before


def _fwd_bwd(fn, inputs):
    hidden, weight, *rest = inputs

    def run():
        hidden.grad = weight.grad = None
        fn(hidden, weight, *rest).backward()
        _sync()

    return run


def _check_once(fn, inputs):
    with torch.no_grad():
        want = _eager(*inputs)
    got = fn(*inputs)
    torch.testing.assert_close(got.float(), want.float(), rtol=2e-2, atol=2e-3)


def _record(benchmark, machine, shape_name, inputs, run):
    n, t, h = inputs[0].shape
    benchmark.extra_info.update(machine)
    benchmark.extra_info.update(shape=shape_name, N=n, T=t, H=h, V=V, dtype="bfloat16", G=G)
    peak = _peak_bytes(run, inputs)
    benchmark.extra_info["peak_beyond_inputs_MB"] = round(peak / 2**20, 1)
    benchmark.extra_info["peak_method"] = "cuda max_memory_allocated" if CUDA else "profiler"


@pytest.mark.parametrize("shape_name", list(SHAPES))
@pytest.mark.parametrize("provider", PROVIDERS)
def test_fused_linear_forward_backward(benchmark, machine, provider, shape_name):
    if reason := _skip_reason(provider, shape_name):
        pytest.skip(reason)
    n, t, h = SHAPES[shape_name]
    benchmark.group = f"forward+backward {shape_name}"
    inputs = _inputs(n, t, h)
    fn = _provider_fn(provider)
    _check_once(fn, inputs)
    run = _fwd_bwd(fn, inputs)
    benchmark.pedantic(run, rounds=5, warmup_rounds=1)
    _record(benchmark, machine, shape_name, inputs, run)


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("where", ["gpu", "cpu"])
def test_fused_linear_memory_vs_batch(benchmark, machine, provider, where):
    """Peak memory at N = 2, 4, 8, 16 (CPU: 2, 4, 8) in one benchmark: it should stay flat for
    the chunked providers and grow with N for eager. Timed over the largest N."""
    shape_name = "gpu-16x1024x2048" if where == "gpu" else "cpu-4x64x256"
    if reason := _skip_reason(provider, shape_name):
        pytest.skip(reason)
    _, t, h = SHAPES[shape_name]
    benchmark.group = f"memory vs N ({where}, T={t}, H={h})"
    fn = _provider_fn(provider)
    for n in MEMORY_BATCHES[where]:
        inputs = _inputs(n, t, h)
        run = _fwd_bwd(fn, inputs)
        run()  # warm up (compilation, autotuning) before measuring
        peak = _peak_bytes(run, inputs)
        benchmark.extra_info[f"peak_MB_N{n}"] = round(peak / 2**20, 1)
    benchmark.extra_info.update(machine)
    benchmark.extra_info.update(T=t, H=h, V=V, dtype="bfloat16", G=G)
    benchmark.pedantic(run, rounds=3, warmup_rounds=0)
