"""Evaluation: generate with a model (or take saved completions), score, and write metrics.

* :func:`evaluate` - greedy, batched, resumable generation over GRIT JSONL data with a progress bar,
  then :func:`score_predictions`. Under ``torchrun`` each rank generates the samples ``i`` with
  ``i % world_size == rank``; rank 0 gathers every prediction, orders them by index and computes the
  metrics once, so they do not depend on the process count or the batch size.
* :func:`score_predictions` - the model-free half (``grit-fast score``): recompute every derived
  field of saved predictions (from any system: only ``completion`` and ``answer`` are required) and
  the metrics of :mod:`grit_fast.eval.metrics`.

Output directory: ``predictions.jsonl`` (one record per sample, ordered by index; fields in
:mod:`grit_fast.eval.predictions`) and ``metrics.json`` (``{"overall": …, "datasets": {…}}``).
While generating, each rank appends finished batches to ``generations.rank<r>.jsonl``; a re-run
skips every index found there, whatever world size wrote it.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grit_fast.eval.metrics import compute_metrics
from grit_fast.eval.predictions import PredictionError, read_jsonl, score_records
from grit_fast.jsonl import write_jsonl

__all__ = ["EvalOptions", "evaluate", "evaluate_records", "score_predictions"]

log = logging.getLogger(__name__)

PREDICTIONS = "predictions.jsonl"
METRICS = "metrics.json"
_PARTIAL_GLOB = "generations.rank*.jsonl"


def score_predictions(
    predictions: str | os.PathLike | Sequence[Mapping[str, Any]],
    judge: Any = None,
    out_dir: str | os.PathLike | None = None,
    convention: str | None = None,
    preset: str = "official",
) -> dict[str, Any]:
    """Metrics of saved predictions (a JSONL path or records); writes both files to ``out_dir``.

    ``judge``: a judge callable (default :class:`grit_fast.RuleJudge`); ``convention``: the box frame
    of records without one (default ``"pixels"``). Records are ordered by ``index`` first.
    """
    if isinstance(predictions, (str, os.PathLike)):
        source = str(predictions)
        records = read_jsonl(predictions)
    else:
        source, records = "<predictions>", [dict(r) for r in predictions]
    for i, r in enumerate(records):
        r.setdefault("index", i)
    records.sort(key=lambda r: r["index"])
    scored = score_records(
        records, judge=judge, convention=convention, preset=preset, source=source
    )
    metrics = compute_metrics(scored)
    if out_dir is not None:
        out = Path(out_dir)
        write_jsonl(out / PREDICTIONS, scored)
        _write_json(out / METRICS, metrics)
    return metrics


def _write_json(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _done(out: Path) -> dict[int, dict[str, Any]]:
    """Generations already written by any rank of any earlier run, by index."""
    done: dict[int, dict[str, Any]] = {}
    for path in sorted(out.glob(_PARTIAL_GLOB)):
        with path.open(encoding="utf-8") as f:
            for line in f:
                try:
                    record = json.loads(line)
                    done[int(record["index"])] = record
                except (ValueError, KeyError, TypeError):
                    continue  # a line cut short by an interruption: generated again
    return done


def _load_model(model: Any, processor: Any) -> tuple[Any, Any]:
    """(model, processor) from objects, a local checkpoint directory or ``tiny:<family>``."""
    if not isinstance(model, (str, os.PathLike)):
        if processor is None:
            raise ValueError("evaluate: pass the processor with an in-memory model")
        return model, processor
    from grit_fast.models import load_model

    loaded, default_processor = load_model(str(model))
    return loaded, default_processor if processor is None else processor


def _sample_fields(record: Any, image_root: Any) -> dict[str, Any]:
    image = record.image
    if isinstance(image, Path):
        # Record the path as the data gave it: relative to the image root (default: the file's folder).
        from grit_fast.data.grit_jsonl import split_paths

        roots = [Path(r) for r in split_paths(image_root, "image_root")] or [
            Path(record.source).parent
        ]
        root = next((r for r in roots if image.is_relative_to(r)), None)
        image = str(image) if root is None else str(image.relative_to(root))
    else:
        image = None  # an in-memory image has no path to record
    return {
        "question": record.question,
        "answer": record.answer,
        "image": image,
        "width": record.width,
        "height": record.height,
        "bboxs": record.bboxs,
        "dataset": record.dataset,
    }


def _generate(
    model, adapter, records, max_new_tokens: int, sample_seeds: list[int] | None, synced_gpus: bool
) -> list[tuple[str, int, Any]]:
    """(completion, generated tokens up to and including the end token, model frame) per record."""
    from grit_fast.models.generation import generate_completions
    from grit_fast.models.sampling import GroupSampler

    images = [r.load_image() for r in records]
    sampler = None
    if sample_seeds is not None:  # the policy's own distribution: temperature 1, every token
        device = next(model.parameters()).device
        sampler = GroupSampler(sample_seeds, 1, temperature=1.0, top_k=0, device=device)
    out = generate_completions(
        model,
        adapter,
        [r.question for r in records],
        images,
        max_new_tokens=max_new_tokens,
        sampler=sampler,
        synced_gpus=synced_gpus,
    )
    sizes = [adapter.model_size(*image.size) for image in images]
    return list(zip(out.texts, out.lengths, sizes, strict=True))


@dataclass(frozen=True)
class EvalOptions:
    """How :func:`evaluate_records` generates and scores (see :func:`evaluate` for each field).

    ``synced_gpus``: every process runs the same number of ``generate`` calls, each stepping until
    all are done (a model sharded with FSDP all-gathers weights at every step).
    """

    judge: Any = None
    batch_size: int = 8
    max_new_tokens: int = 1000
    do_sample: bool = False
    seed: int = 0
    resume: bool = True
    preset: str = "official"
    image_root: str | os.PathLike | None = None
    synced_gpus: bool = False


def evaluate(
    model: Any,
    data: Any,
    out_dir: str | os.PathLike,
    processor: Any = None,
    image_root: str | os.PathLike | None = None,
    judge: Any = None,
    batch_size: int = 8,
    max_new_tokens: int = 1000,
    do_sample: bool = False,
    resume: bool = True,
    preset: str = "official",
    device: str | None = None,
) -> dict[str, Any]:
    """Generate, score and write metrics (see the module doc); returns the metrics on every rank.

    ``model``: a local checkpoint directory, ``tiny:qwen2.5-vl`` / ``tiny:internvl3`` (a tiny random
    model, for trying the pipeline), or a loaded model (then pass ``processor``). ``data``: GRIT
    JSONL path(s) or records; ``image_root`` resolves relative image paths (default: each file's
    directory). ``judge``: judge callable (default the rule judge). Decoding is greedy;
    ``do_sample=True`` samples from the model's own distribution (temperature 1, every token, a
    seed per sample). ``resume=False`` discards earlier generations in ``out_dir``. ``device``:
    where to run; default: a model loaded from a directory goes to ``cuda:$LOCAL_RANK`` when CUDA
    is available, an in-memory model stays where it is.
    """
    from grit_fast.data import load_records
    from grit_fast.models import adapter_for
    from grit_fast.models.loading import read_adapter_options

    records = load_records(data, image_root)
    from_dir = isinstance(model, (str, os.PathLike))
    model_path = model
    model, processor = _load_model(model, processor)
    if device is None and from_dir:
        import torch

        if torch.cuda.is_available():
            device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    if device is not None:
        model.to(device)
    options = EvalOptions(
        judge=judge,
        batch_size=batch_size,
        max_new_tokens=max_new_tokens,
        do_sample=do_sample,
        resume=resume,
        preset=preset,
        image_root=image_root,
    )
    # a folder grit_fast wrote records how its run prompted and sized images (grit_adapter.json);
    # a release folder or a tiny: name records none
    adapter_options = read_adapter_options(model_path) if from_dir else {}
    adapter = adapter_for(model, processor, **adapter_options)
    return evaluate_records(model, adapter, records, out_dir, options)


def evaluate_records(
    model: Any,
    adapter: Any,
    records: Sequence[Any],
    out_dir: str | os.PathLike,
    options: EvalOptions = EvalOptions(),
) -> dict[str, Any]:
    """:func:`evaluate` of loaded ``records`` with ``model`` (anything with ``generate`` and
    ``parameters``, e.g. the trainer's policy) and its ``adapter``."""
    from tqdm.auto import tqdm

    from grit_fast import distributed

    if options.batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {options.batch_size}")
    out = Path(out_dir)
    rank, world = distributed.rank(), distributed.world_size()
    out.mkdir(parents=True, exist_ok=True)
    if rank == 0 and not options.resume:
        for path in out.glob(_PARTIAL_GLOB):
            path.unlink()
    distributed.barrier()
    done = _done(out)
    if done:
        log.info("resuming: %d of %d samples already generated", len(done), len(records))
    todo = [
        [i for i in range(len(records)) if i % world == r and i not in done] for r in range(world)
    ]
    mine = todo[rank]
    size = options.batch_size
    # Synced: as many generate calls on every rank (a rank out of samples repeats one, unwritten).
    calls = -(-max(map(len, todo)) // size) if options.synced_gpus else -(-len(mine) // size)
    partial = out / f"generations.rank{rank}.jsonl"
    bar = tqdm(total=len(mine), desc=f"eval rank {rank}", disable=rank != 0, unit="sample")
    if partial.exists() and partial.stat().st_size > 0:
        with partial.open("rb+") as f:
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                f.write(b"\n")  # end a line torn by an interruption before appending to it
    with partial.open("a", encoding="utf-8") as f:
        for call in range(calls):
            chunk = mine[call * size : (call + 1) * size]
            batch = chunk or [mine[-1] if mine else 0]
            seeds = [options.seed * 1_000_003 + i for i in batch] if options.do_sample else None
            results = _generate(
                model,
                adapter,
                [records[i] for i in batch],
                options.max_new_tokens,
                seeds,
                options.synced_gpus,
            )
            for i, (text, n_tokens, model_size) in zip(chunk, results, strict=False):
                row = {"index": i, "completion": text, "completion_tokens": n_tokens}
                row["convention"] = adapter.coordinate_convention
                row["model_size"] = None if model_size is None else list(model_size)
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
            f.flush()
            bar.update(len(chunk))
    bar.close()
    distributed.barrier()
    if rank == 0:
        generated = _done(out)
        missing = [i for i in range(len(records)) if i not in generated]
        if missing:
            raise PredictionError(f"{out}: no generation for samples {missing[:10]}")
        rows = [
            {**_sample_fields(records[i], options.image_root), **generated[i]}
            for i in range(len(records))
        ]
        metrics = score_predictions(rows, judge=options.judge, out_dir=out, preset=options.preset)
    distributed.barrier()
    if rank != 0:
        metrics = json.loads((out / METRICS).read_text(encoding="utf-8"))
    return metrics
