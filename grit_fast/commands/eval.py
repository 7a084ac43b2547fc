"""``grit-fast eval --model DIR --data FILE.jsonl [--data …] --image-root DIR --out DIR``.

Greedy, batched, resumable generation and scoring (see :func:`grit_fast.eval.evaluation`); prints the
metrics per dataset. Under ``torchrun --nproc_per_node=K`` the samples are shared between the
processes and rank 0 computes the metrics once over all of them.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_judge_arguments(parser: argparse.ArgumentParser) -> None:
    """Options that choose the answer judge (shared with ``grit-fast score``)."""
    group = parser.add_argument_group("judge")
    group.add_argument(
        "--judge",
        choices=("rule", "openai"),
        default="rule",
        help="rule: the offline rule judge (default); openai: an OpenAI-compatible endpoint",
    )
    group.add_argument("--judge-model", default="gpt-4o", help="model name sent to the endpoint")
    group.add_argument(
        "--judge-base-url",
        help="API root, e.g. http://127.0.0.1:8000/v1 (default $OPENAI_BASE_URL)",
    )
    group.add_argument(
        "--judge-key-env", default="OPENAI_API_KEY", help="environment variable with the API key"
    )
    group.add_argument("--judge-concurrency", type=int, default=8, help="requests in flight")
    group.add_argument("--judge-timeout", type=float, default=60.0, help="seconds per request")
    group.add_argument("--judge-retries", type=int, default=3, help="retries after a failure")
    group.add_argument(
        "--judge-cache", help="JSONL cache of judge scores (default: OUT/judge_cache.jsonl)"
    )


def make_judge(args: argparse.Namespace, out_dir: Path) -> Any:
    """The judge the options ask for (None: the scorer's default rule judge)."""
    if args.judge == "rule":
        return None
    from grit_fast.rewards.openai_judge import OpenAIJudge

    return OpenAIJudge(
        model=args.judge_model,
        base_url=args.judge_base_url,
        api_key_env=args.judge_key_env,
        concurrency=args.judge_concurrency,
        timeout=args.judge_timeout,
        retries=args.judge_retries,
        cache_path=args.judge_cache or out_dir / "judge_cache.jsonl",
    )


def _fmt(value: Any, pattern: str) -> str:
    return "-" if value is None else format(value, pattern)


def format_metrics(metrics: dict[str, Any]) -> str:
    """A table of the headline metrics, one row per dataset and one overall."""
    head = f"{'dataset':<16}{'n':>7}{'ACC':>8}{'ACC>0':>8}{'IoU':>8}{'format':>8}{'boxes':>7}"
    lines = [head, "-" * len(head)]
    rows = [*metrics["datasets"].items(), ("overall", metrics["overall"])]
    for name, m in rows:
        lines.append(
            f"{name[:15]:<16}{m['n']:>7}{_fmt(m['acc'], '.1f'):>8}{_fmt(m['acc_binary'], '.1f'):>8}"
            f"{_fmt(m['grounding_iou'], '.3f'):>8}{_fmt(m['format']['all'], '.2f'):>8}"
            f"{_fmt(m['mean_boxes'], '.2f'):>7}"
        )
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        required=True,
        help="local checkpoint directory, or tiny:qwen2.5-vl / tiny:internvl3 (tiny random model)",
    )
    parser.add_argument(
        "--data", required=True, action="append", help="GRIT JSONL file (repeatable)"
    )
    parser.add_argument("--image-root", help="folder of the images (default: each file's folder)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--batch-size", type=int, default=8, help="prompts per generate call")
    parser.add_argument("--max-new-tokens", type=int, default=1000, help="generation limit")
    parser.add_argument(
        "--sample",
        action="store_true",
        help="sample from the model (temperature 1, every token) instead of greedy decoding",
    )
    parser.add_argument(
        "--no-resume", action="store_true", help="discard generations of an earlier run in OUT"
    )
    parser.add_argument(
        "--preset", choices=("official", "paper"), default="official", help="reward preset"
    )
    add_judge_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from grit_fast import distributed
    from grit_fast.data import GritDataError
    from grit_fast.eval.evaluation import evaluate
    from grit_fast.eval.predictions import PredictionError

    out = Path(args.out)
    distributed.init_from_env()
    try:
        metrics = evaluate(
            args.model,
            args.data,
            out,
            image_root=args.image_root,
            judge=make_judge(args, out),
            batch_size=args.batch_size,
            max_new_tokens=args.max_new_tokens,
            do_sample=args.sample,
            resume=not args.no_resume,
            preset=args.preset,
        )
    except (GritDataError, PredictionError, ValueError, OSError) as exc:
        print(f"grit-fast eval: {exc}")
        return 1
    if distributed.is_main():
        print(format_metrics(metrics))
        print(f"wrote {out / 'predictions.jsonl'} and {out / 'metrics.json'}")
    return 0
