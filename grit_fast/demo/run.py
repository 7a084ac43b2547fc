"""``grit-fast demo``: teach a tiny InternVL3 grounded reasoning on a CPU, and show what changed.

The whole mission with nothing to download, top to bottom:

1. data        - synthetic images of coloured shapes with counting (``tallyqa``) and spatial
                 (``vsr``) questions (:mod:`grit_fast.data.synthetic`), train and held-out splits; and
                 the base stage's own: counting questions whose shape is in the image exactly once;
2. base stage  - a tiny random InternVL3 with the real vocabulary learns to see and point: supervised
                 on the base-stage data, asked and answered exactly as GRIT asks (GRIT's prompt, a
                 one-box trace), as real VLMs learn grounding in pre-training before GRIT uses it;
3. warm start  - supervised on GRIT traces (:mod:`grit_fast.demo.warmstart`), the paper's few-shot
                 fine-tuning baseline, with a share of base-stage examples kept in so the skill stays;
4. evaluate    - each stage's model on its held-out split, greedy (:func:`grit_fast.eval.evaluation`),
                 and how much the warm start's held-out traces rely on the image
                 (:func:`grit_fast.eval.image_reliance.image_reliance`, ``reliance`` samples);
5. GRPO-GR     - :class:`grit_fast.train.trainer.GritTrainer`, the code path of ``grit-fast train``, with
                 the ``official`` reward preset and the rule judge, on the GRIT train split;
6. evaluate    - the GRPO-GR model on the same held-out split, and its image reliance;
7. report      - ``metrics.json`` (each stage, both GRIT models and their differences, 95 % bootstrap
                 intervals), ``metrics.jsonl`` (training curve), ``curves.png``, ``gallery.png`` and
                 per-sample pictures with ``index.html`` (:mod:`grit_fast.demo.report`); a summary table.

Why InternVL3 and why a base stage: docs/demo.md has the runs. In short, at these sizes the tiny
InternVL3's vision tower (an absolute position embedding on its patches) learns where a shape is
through GRIT's long prompt and the tiny Qwen2.5-VL's (rotary positions only) does not; and a model
that learns GRIT's multi-box traces from scratch writes boxes that follow the question, not the
image, while one that first learns one-box counting traces carries the skill into them.

Output folder layout: ``data/`` (JSONL + PNGs; ``data/base/`` the base stage's), ``eval_base/``,
``eval_warmstart/`` and ``eval_grpo/`` (``predictions.jsonl``, ``metrics.json`` of
:func:`grit_fast.eval.evaluation`), ``gallery/`` (``samples/*.png``, ``index.html``),
``checkpoint-<steps>/`` (the GRPO-GR model), and the report files above. Everything is deterministic
for a seed and a thread count on one machine.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

from grit_fast.demo.settings import SIZES, DemoSettings

logger = logging.getLogger(__name__)

__all__ = ["SIZES", "DemoSettings", "run_demo"]


def build_model(size: DemoSettings, seed: int) -> tuple[Any, Any]:
    """The tiny random InternVL3 of ``size`` and its processor (each image one ``image_size`` tile).

    The vision tower is InternViT at 32 wide and 2 deep with its absolute position embedding, the
    projector InternVL's, the text decoder Qwen2 with ``hidden_size`` and ``num_layers``; 112 px is a
    4 x 4 grid of image tokens after the pixel shuffle.

    ``tie_embeddings=0`` gives the decoder its own output layer, as Qwen2.5-VL-7B has (the 3B ties
    them): with tied weights a small model's residual stream first predicts its input token again,
    and unlearning that costs many warm-start steps.

    ``rope_theta`` is the text decoder's rotary base. Qwen2.5's 1e6 suits 32k-token contexts; with
    this model's 16-wide heads, half of each head's rotary pairs then turn by at most 0.001 radians
    a token, so across the 16 image tokens they can hardly tell positions apart. At 10, the default
    here, the slowest pair turns 0.13 radians a token (rope base 1e4 grounds worse: docs/demo.md).
    """
    import torch
    from transformers import InternVLForConditionalGeneration

    from grit_fast.models.internvl import build_processor
    from grit_fast.models.tiny import tiny_internvl3_config

    config = tiny_internvl3_config(size.hidden_size, size.num_layers, size.image_size)
    config.text_config.rope_parameters["rope_theta"] = size.rope_theta
    tie = bool(size.tie_embeddings)
    config.tie_word_embeddings = config.text_config.tie_word_embeddings = tie
    processor = build_processor(
        image_size=size.image_size, image_seq_length=config.image_seq_length
    )
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = InternVLForConditionalGeneration(config)
    finally:
        torch.random.set_rng_state(state)
    model.generation_config.pad_token_id = processor.tokenizer.pad_token_id
    model.generation_config.eos_token_id = [151645, 151643]
    return model.eval(), processor


def data_spec(size: DemoSettings) -> Any:
    """The :class:`grit_fast.data.synthetic.SyntheticSpec` of ``size``'s images and questions."""
    from grit_fast.data.synthetic import SyntheticSpec

    return SyntheticSpec(
        image_size=(size.image_size, size.image_size),
        object_size=(size.object_min, size.object_max),
        distractors=(0, size.max_distractors),
    )


def base_spec(size: DemoSettings) -> Any:
    """The base stage's questions: ``data_spec``'s counting questions whose shape is there once."""
    return dataclasses.replace(data_spec(size), tasks=("count",), min_count=1, max_count=1)


# the base stage's data are drawn with the demo's seed plus this, apart from the GRIT data's
BASE_SEED_OFFSET = 1_000_003


def longest_trace_tokens(spec: Any, adapter: Any, tokenizer: Any) -> int:
    """Tokens of the longest correct trace ``spec`` can ask for, the end-of-turn token included.

    ``max_new_tokens`` below this can cut the traces of the most boxes before their answer, and such
    samples cannot score in training or evaluation. InternVL writes boxes in 0-1000: at 112 px four
    boxes at the far corner make 101 tokens; the demo's four-box training traces take 89 to 94,
    plus the end of turn.
    """
    from grit_fast.data.synthetic import longest_traces

    traces = longest_traces(spec, adapter, style="short")
    return 1 + max(len(ids) for ids in tokenizer(traces)["input_ids"])


def warm_start_records(train: list[Any], base: list[Any], mix: float) -> list[Any]:
    """The warm start's examples: every GRIT ``train`` record plus base-stage records making up a
    ``mix`` share of the whole (as many as ``base`` has). Batches draw from them in a seeded random
    order, so each batch holds about that share; without it, the trace warm start forgets the base
    stage's grounding (docs/demo.md)."""
    if not 0 <= mix < 1:
        raise ValueError(f"the base-stage share of the warm start must be in [0, 1), got {mix}")
    kept = min(len(base), round(len(train) * mix / (1 - mix)))
    return list(train) + list(base[:kept])


def trainer_config(size: DemoSettings, out: Path, data: Path, seed: int) -> dict[str, Any]:
    """The GritConfig of the GRPO-GR phase (official preset; the rule judge is passed in)."""
    return {
        "model": "tiny:internvl3",
        "data": str(data),
        "output_dir": str(out),
        "reward_preset": "official",
        "num_generations": size.num_generations,
        "batch_size": size.batch_size,
        "max_steps": size.rl_steps,
        "lr": size.lr,
        "lr_scheduler": "constant",
        "beta": size.beta,
        "scale_rewards": bool(size.scale_rewards),
        "temperature": size.temperature,
        "max_new_tokens": size.max_new_tokens,
        "seed": seed,
    }


def run_demo(
    out_dir: str | os.PathLike = "grit_demo",
    size: str | DemoSettings = "full",
    seed: int = 0,
    threads: int | None = 2,
    progress: bool = True,
) -> dict[str, Any]:
    """Run the demo into ``out_dir`` (see the module doc); returns the report (``metrics.json``).

    ``size``: a name in :data:`SIZES` or a :class:`DemoSettings`. ``threads``: torch's CPU thread count
    (None leaves it alone); results are reproducible for a seed and thread count.
    """
    import torch

    from grit_fast.data import load_grit_jsonl
    from grit_fast.data.synthetic import grounded_trace, make_dataset
    from grit_fast.demo.report import write_report
    from grit_fast.demo.warmstart import WarmStartSettings, warm_start
    from grit_fast.eval.evaluation import evaluate
    from grit_fast.eval.image_reliance import image_reliance
    from grit_fast.models import adapter_for
    from grit_fast.rewards import RuleJudge
    from grit_fast.train.trainer import GritTrainer

    if isinstance(size, str):
        if size not in SIZES:
            raise ValueError(f"unknown demo size {size!r}; expected one of {sorted(SIZES)}")
        size = SIZES[size]
    if threads is not None:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    out = Path(out_dir)
    _clear(out)
    clock: dict[str, float] = {}
    start = time.perf_counter()

    t0 = time.perf_counter()
    spec = data_spec(size)
    paths = make_dataset(
        out / "data", n_train=size.n_train, n_eval=size.n_eval, seed=seed, spec=spec
    )
    train, base_train, base_paths = load_grit_jsonl(paths["train"]), [], None
    if size.base_steps or size.base_mix:  # without either, nothing reads the base-stage data
        base_paths = make_dataset(
            out / "data" / "base",
            n_train=size.n_base,
            n_eval=size.base_eval,
            seed=seed + BASE_SEED_OFFSET,
            spec=base_spec(size),
        )
        base_train = load_grit_jsonl(base_paths["train"])
    clock["data"] = time.perf_counter() - t0

    model, processor = build_model(size, seed)
    adapter = adapter_for(model, processor)
    need = longest_trace_tokens(spec, adapter, processor.tokenizer)
    if size.max_new_tokens < need:
        logger.warning(
            "demo setting max_new_tokens=%d cuts the longest correct traces (%d tokens with the "
            "end of turn) before their answer: those samples cannot score",
            size.max_new_tokens,
            need,
        )

    def trace(record: Any) -> str:
        return grounded_trace(record, to_model_frame=adapter, style="short")

    def supervised(name: str, records: list[Any], steps: int, seed_offset: int) -> list[float]:
        t = time.perf_counter()
        settings = WarmStartSettings(
            steps=steps,
            batch_size=size.warm_batch,
            lr=size.warm_lr,
            warmup=min(20, steps),
            seed=seed + seed_offset,
            negatives=size.warm_negatives,
        )
        losses = warm_start(model, adapter, records, trace, settings, progress, desc=name)
        clock[name.replace(" ", "_")] = time.perf_counter() - t
        return losses

    judge = RuleJudge()

    def evaluated(name: str, data: Path) -> Path:
        t = time.perf_counter()
        evaluate(
            model,
            data,
            out / name,
            processor=processor,
            judge=judge,
            batch_size=size.eval_batch,
            max_new_tokens=size.max_new_tokens,
            resume=False,
        )
        clock[name] = time.perf_counter() - t
        return out / name / "predictions.jsonl"

    losses: dict[str, list[float]] = {}
    base_predictions = None
    if size.base_steps:
        losses["base_stage"] = supervised("base stage", base_train, size.base_steps, 0)
        base_predictions = evaluated("eval_base", base_paths["eval"])
    mixed = warm_start_records(train, base_train, size.base_mix)
    losses["warm_start"] = supervised("warm start", mixed, size.warm_steps, 2)

    probe = load_grit_jsonl(paths["eval"])[: size.reliance]
    reliance: dict[str, Any] = {"n": len(probe)}

    def held_out(name: str) -> Path:
        predictions = evaluated(name, paths["eval"])
        t = time.perf_counter()
        # the data alternate tasks: offset 2 pairs each question with an image of its own task
        reliance[name.removeprefix("eval_")] = image_reliance(
            model, adapter, probe, trace, batch_size=size.eval_batch, offset=2
        )
        clock["image_reliance"] = clock.get("image_reliance", 0.0) + time.perf_counter() - t
        return predictions

    warm_predictions = held_out("eval_warmstart")

    t0 = time.perf_counter()
    config = trainer_config(size, out, paths["train"], seed)
    trainer = GritTrainer(config, model=model, processor=processor, records=train, judge=judge)
    trainer.train()
    clock["grpo"] = time.perf_counter() - t0
    model = trainer.model
    grpo_predictions = held_out("eval_grpo")

    clock["total"] = time.perf_counter() - start
    return write_report(
        out,
        warm_predictions,
        grpo_predictions,
        image_root=paths["eval"].parent,
        losses=losses,
        base_predictions=base_predictions,
        info={
            "seed": seed,
            "threads": torch.get_num_threads(),
            "model": "tiny InternVL3 (see grit_fast.demo.run.build_model)",
            "size": dataclasses.asdict(size),
            "grpo_config": config,
            "image_reliance": reliance,
            "seconds": clock,
        },
        gallery=size.gallery,
        bootstrap=size.bootstrap,
        progress=progress,
    )


_OURS = (
    "data",
    "eval_base",
    "eval_warmstart",
    "eval_grpo",
    "gallery",
    "metrics.jsonl",
    "metrics.json",
    "curves.png",
    "gallery.png",
    "summary.txt",
)


def _clear(out: Path) -> None:
    """Remove what an earlier demo run left in ``out`` (only the demo's own files)."""
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"demo output {out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    for name in _OURS:
        path = out / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    for path in out.glob("checkpoint-*"):
        if (path.is_dir() and (path / "trainer_state.json").exists()) or path.name.endswith(".tmp"):
            shutil.rmtree(path, ignore_errors=True)
