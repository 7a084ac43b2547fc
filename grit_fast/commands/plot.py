"""``grit-fast plot --metrics metrics.jsonl --out curves.png``: training curves (matplotlib)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--metrics", required=True, help="a run's metrics.jsonl")
    parser.add_argument("--out", required=True, help="image file to write (.png, .pdf, .svg)")
    parser.add_argument("--title", help="figure title")


def run(args: argparse.Namespace) -> int:
    from grit_fast.viz.curves import plot_curves

    try:
        path = plot_curves(args.metrics, args.out, title=args.title)
    except (ImportError, ValueError, OSError) as exc:
        print(f"grit-fast plot: {exc}")
        return 1
    print(f"wrote {path}")
    return 0
