"""``grit-fast info``: the version, the compiled core and its threads, Triton, torch/CUDA, and which
backend each op runs on (:func:`grit_fast.diagnostics.info`)."""

from __future__ import annotations

import argparse
import json

from grit_fast.diagnostics import info


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def run(args: argparse.Namespace) -> int:
    report = info()
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    core = report["compiled_core"]
    lines = [
        f"grit-fast     {report['grit_fast']}  (Python {report['python']}, {report['platform']})",
        "compiled core "
        + (
            f"yes, {core['threads']} threads by default ({core['build']['compiler']})"
            if core["available"]
            else f"NO - {core['error']}"
        ),
        f"triton        {report['triton']['version'] or '-'}: {report['triton']['status']}",
        f"torch         {report['torch']['version']} (CUDA build {report['torch']['cuda_build']}, "
        f"device {report['torch']['device']})",
        f"transformers  {report['transformers'] or 'not installed'}",
        f"backend mode  {report['backend_mode']} (GRIT_FAST_BACKEND)",
    ]
    if report["ops"]:
        width = max(len(op) for op in report["ops"])
        lines.append("ops           CPU tensors | CUDA tensors")
        lines += [
            f"  {op:<{width}}  {where['cpu']} | {where['cuda']}"
            for op, where in report["ops"].items()
        ]
    print("\n".join(lines))
    return 0
