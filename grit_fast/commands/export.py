"""``grit-fast export CHECKPOINT --out DIR [--dtype auto|bfloat16|float16|float32]``.

A training checkpoint holds fp32 master weights; this writes the folder to serve: the weights in the
release's dtype (``auto``: the one the checkpoint's ``release.json`` records, bf16 for the Qwen2.5-VL
and InternVL3 releases), the config, generation config and processor (see
:mod:`grit_fast.train.export`). A finished training run writes the same to ``output_dir/model``.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="a training checkpoint folder (checkpoint-<step>)")
    parser.add_argument("--out", required=True, help="the folder to write")
    parser.add_argument(
        "--dtype",
        choices=("auto", "bfloat16", "float16", "float32"),
        default="auto",
        help="weights' dtype (auto: the release's, from the checkpoint's release.json)",
    )


def run(args: argparse.Namespace) -> int:
    from grit_fast.models import load_model
    from grit_fast.models.loading import read_adapter_options
    from grit_fast.train.export import DTYPES, RELEASE_FILE, export_model, release_dtype

    checkpoint = Path(args.checkpoint)
    try:
        if not (checkpoint / "config.json").is_file():
            if (checkpoint / "adapter_config.json").is_file():
                raise ValueError(
                    f"{checkpoint} holds a LoRA adapter, not full weights: merge it into its base "
                    "model with peft (merge_and_unload) and export that"
                )
            raise ValueError(f"{checkpoint} is not a checkpoint folder (no config.json)")
        if args.dtype == "auto":
            dtype = release_dtype(checkpoint)
            if dtype is None:
                raise ValueError(
                    f"{checkpoint} has no {RELEASE_FILE} recording the release's dtype; "
                    "pass --dtype bfloat16 (or float16, float32)"
                )
        else:
            dtype = DTYPES[args.dtype]
        model, processor = load_model(str(checkpoint))
        options = read_adapter_options(checkpoint) or None
        out = export_model(model, processor, args.out, dtype, adapter_options=options)
    except (ValueError, OSError) as exc:
        print(f"grit-fast export: {exc}")
        return 1
    print(f"wrote {out} ({str(dtype).removeprefix('torch.')} weights)")
    return 0
