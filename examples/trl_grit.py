"""GRIT with TRL: GRPO-GR on Qwen2.5-VL with TRL's trainer, and grit_fast's prompt, rewards and loss.

    pip install "grit-fast[trl]"
    python examples/trl_grit.py --model /path/to/Qwen2.5-VL-3B-Instruct --data grit_20k.jsonl \\
        --image-root images/

``--model tiny:qwen2.5-vl`` runs it on a tiny random model (the test suite does, for one step).
"""

from __future__ import annotations

import argparse

import torch
from trl import GRPOConfig

from grit_fast.models import load_model
from grit_fast.trl import GritGRPOTrainer, grit_dataset, reward_functions


def main(argv: list[str] | None = None) -> GritGRPOTrainer:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="local checkpoint or tiny:qwen2.5-vl")
    parser.add_argument("--data", required=True, help="GRIT JSONL file")
    parser.add_argument("--image-root", default=None, help="default: the JSONL file's folder")
    parser.add_argument("--output-dir", default="grit-trl")
    parser.add_argument("--max-steps", type=int, default=200)
    parser.add_argument("--max-completion-length", type=int, default=1000)
    args = parser.parse_args(argv)

    model, processor = load_model(args.model)  # local files only; Qwen2.5-VL or InternVL3
    gpu = torch.cuda.is_available()
    trainer = GritGRPOTrainer(
        model=model,
        processing_class=processor,
        reward_funcs=reward_functions("official"),  # one function per component, one scoring pass
        train_dataset=grit_dataset(args.data, image_root=args.image_root),
        args=GRPOConfig(
            output_dir=args.output_dir,
            max_steps=args.max_steps,
            learning_rate=2e-6,
            per_device_train_batch_size=4,
            num_generations=4,
            max_completion_length=args.max_completion_length,
            temperature=0.9,
            top_k=50,
            loss_type="grpo",  # GRIT: token mean per completion, then mean over completions
            beta=0.0,
            bf16=gpu,
            use_cpu=not gpu,
            report_to="none",
        ),
    )
    trainer.train()
    return trainer


if __name__ == "__main__":
    main()
