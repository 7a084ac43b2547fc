"""``grit-fast make-data --out DIR --n N``: synthetic grounded data (shapes, counts, relations)."""

from __future__ import annotations

import argparse


def _size(text: str) -> tuple:
    """``112`` -> (112, 112); ``140x112`` -> (140, 112); ``100-150x90-140`` -> ranges."""
    try:
        parts = text.lower().split("x") if "x" in text.lower() else [text, text]
        sides = []
        for part in parts:
            lo, _, hi = part.partition("-")
            sides.append(int(lo) if not hi else (int(lo), int(hi)))
        width, height = sides
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected W, WxH or WMIN-WMAXxHMIN-HMAX (pixels), got {text!r}"
        ) from None
    return width, height


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--n", type=int, default=500, help="training samples (default 500)")
    parser.add_argument("--n-eval", type=int, default=100, help="held-out samples (default 100)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--image-size",
        type=_size,
        default=None,
        help="image size: W, WxH or WMIN-WMAXxHMIN-HMAX (default 112x112)",
    )
    parser.add_argument(
        "--tasks",
        default="count,spatial",
        help="comma-separated tasks: count, spatial (default both)",
    )


def run(args: argparse.Namespace) -> int:
    from grit_fast.data.synthetic import make_dataset

    tasks = tuple(t.strip() for t in args.tasks.split(",") if t.strip())
    try:
        paths = make_dataset(
            args.out,
            n_train=args.n,
            n_eval=args.n_eval,
            seed=args.seed,
            image_size=args.image_size,
            tasks=tasks,
        )
    except (ValueError, OSError) as exc:
        print(f"grit-fast make-data: {exc}")
        return 1
    print(f"wrote {paths['train']} ({args.n}), {paths['eval']} ({args.n_eval}), {paths['images']}")
    return 0
