"""The ``grit-fast`` command. Each subcommand lives in its own module, imported only when run.

A subcommand module provides ``add_arguments(parser)`` and ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from grit_fast._version import __version__

# name -> (module, one-line help). Add a line here to add a subcommand.
COMMANDS: dict[str, tuple[str, str]] = {
    "info": (
        "grit_fast.commands.info",
        "show the version, the compiled core, Triton and each op's backend",
    ),
    # training
    "train": (
        "grit_fast.commands.train",
        "GRPO-GR training from a config file (torchrun for several processes)",
    ),
    "export": (
        "grit_fast.commands.export",
        "write a training checkpoint's weights in the release's dtype, for serving",
    ),
    # evaluation and pictures
    "eval": ("grit_fast.commands.eval", "generate on GRIT JSONL data with a model, score, metrics"),
    "score": ("grit_fast.commands.score", "recompute metrics from saved predictions (no model)"),
    "viz": ("grit_fast.commands.viz", "draw predicted boxes and reasoning, with an HTML gallery"),
    "plot": ("grit_fast.commands.plot", "plot training curves from a run's metrics.jsonl"),
    # demo and synthetic data
    "demo": (
        "grit_fast.commands.demo",
        "make data, warm-start, GRPO-GR and evaluate a tiny VLM on CPU",
    ),
    "make-data": (
        "grit_fast.commands.make_data",
        "write synthetic grounded data (shapes, counts, relations)",
    ),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="grit-fast",
        description="Fast GRPO-GR training, evaluation and pictures for grounded visual reasoning.",
    )
    parser.add_argument("--version", action="version", version=f"grit-fast {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, description=help_text).set_defaults(_module=module)
    return parser


def _command_name(argv: list[str]) -> str | None:
    """The subcommand: the first word that is not an option (top-level options take no value)."""
    return next((word for word in argv if not word.startswith("-")), None)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    # Only the chosen subcommand's module is imported; it adds its arguments before parsing, so
    # `grit-fast COMMAND --help` lists them.
    name = _command_name(argv)
    module = None
    if name in COMMANDS:
        module = importlib.import_module(COMMANDS[name][0])
        module.add_arguments(parser._subparsers._group_actions[0].choices[name])
    args = parser.parse_args(argv)
    if module is None:
        parser.print_help()
        return 2
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    return int(module.run(args) or 0)
