"""``grit-fast viz --predictions FILE --image-root DIR --out DIR``: a PNG per sample + index.html."""

from __future__ import annotations

import argparse
import logging

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--predictions", required=True, help="predictions JSONL file")
    parser.add_argument("--image-root", help="folder the records' image paths are relative to")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--limit", type=int, help="draw only the first N records")
    parser.add_argument(
        "--max-side", type=int, default=768, help="scale larger images down to this side"
    )
    parser.add_argument(
        "--min-side", type=int, default=384, help="scale smaller images up to this side"
    )
    parser.add_argument(
        "--convention",
        choices=("qwen2.5-vl", "internvl", "pixels"),
        help="box frame of unscored records that do not name one (default: pixels)",
    )


def run(args: argparse.Namespace) -> int:
    from grit_fast.eval.predictions import PredictionError, read_jsonl, score_records
    from grit_fast.viz.samples import render_gallery

    try:
        records = read_jsonl(args.predictions)
        if args.limit is not None:
            records = records[: max(0, args.limit)]
        derived = ("boxes", "box_spans", "answer_boxes", "answer_box_spans", "answer_box_labels")
        if any(key not in r for r in records for key in derived):
            log.info("records without derived fields: scoring them with the rule judge first")
            records = score_records(records, convention=args.convention, source=args.predictions)
        path = render_gallery(
            records, args.out, args.image_root, max_side=args.max_side, min_side=args.min_side
        )
    except (PredictionError, ValueError, OSError) as exc:
        print(f"grit-fast viz: {exc}")
        return 1
    print(f"wrote {len(records)} pictures and {path}")
    return 0
