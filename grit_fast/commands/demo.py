"""``grit-fast demo [--out DIR] [--size small|full] [--set KEY=VALUE …] [--seed S]``.

Makes synthetic data, teaches a tiny InternVL3 to point at shapes (base stage), warm-starts it on GRIT
traces, evaluates it, trains it with GRPO-GR, evaluates again and writes the report (see
:mod:`grit_fast.demo.run`). Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import logging

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from grit_fast.demo.settings import SIZES

    parser.add_argument("--out", default="grit_demo", help="output folder (default: grit_demo)")
    parser.add_argument(
        "--size",
        choices=sorted(SIZES),
        default="full",
        help="full: the documented run (minutes on 2 CPU cores); small: a smoke test (seconds)",
    )
    parser.add_argument(
        "--set",
        dest="settings",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one demo setting (repeatable), e.g. --set rl_steps=20; see grit_fast.demo.settings.DemoSettings",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the data, model and training")
    parser.add_argument(
        "--threads", type=int, default=2, help="torch CPU threads (default 2; 0 leaves torch's own)"
    )


def run(args: argparse.Namespace) -> int:
    from grit_fast.demo.run import run_demo
    from grit_fast.demo.settings import SIZES

    try:
        size = SIZES[args.size].with_overrides(args.settings)
    except ValueError as exc:
        logger.error("%s", exc)
        return 2
    if args.threads < 0:
        logger.error("--threads must be >= 0, got %d", args.threads)
        return 2
    run_demo(args.out, size, seed=args.seed, threads=args.threads or None)
    print(f"report: {args.out}/metrics.json, curves.png, gallery.png, gallery/index.html")
    return 0
