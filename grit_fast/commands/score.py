"""``grit-fast score --predictions FILE [--out DIR]``: metrics from saved predictions, no model.

Works on predictions from any system: each JSONL record needs ``completion`` and ``answer``, and
should carry ``question``, ``dataset``, ``bboxs`` (gt, original pixels), ``width``/``height`` and
the box ``convention`` (or pass ``--convention``). Rewrites every derived field and the metrics.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from grit_fast.commands.eval import add_judge_arguments, format_metrics, make_judge


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--predictions", required=True, help="predictions JSONL file")
    parser.add_argument(
        "--out", help="folder for predictions.jsonl and metrics.json (default: the file's folder)"
    )
    parser.add_argument(
        "--convention",
        choices=("qwen2.5-vl", "internvl", "pixels"),
        help="box frame of records that do not name one (default: pixels)",
    )
    parser.add_argument(
        "--preset", choices=("official", "paper"), default="official", help="reward preset"
    )
    add_judge_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from grit_fast.eval.evaluation import score_predictions
    from grit_fast.eval.predictions import PredictionError

    out = Path(args.out) if args.out else Path(args.predictions).parent
    try:
        metrics = score_predictions(
            args.predictions,
            judge=make_judge(args, out),
            out_dir=out,
            convention=args.convention,
            preset=args.preset,
        )
    except (PredictionError, ValueError, OSError) as exc:
        print(f"grit-fast score: {exc}")
        return 1
    print(format_metrics(metrics))
    print(f"wrote {out / 'predictions.jsonl'} and {out / 'metrics.json'}")
    return 0
