"""``grit-fast train --config FILE [--set key=value …]``: GRPO-GR training (see GritConfig).

Under ``torchrun --nproc_per_node=K grit-fast train …`` it runs data-parallel (DDP).
"""

from __future__ import annotations

import argparse
import json
import logging

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", help="YAML or JSON file of GritConfig keys (default: all defaults)"
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one config key (repeatable), e.g. --set lr=1e-6 --set max_steps=50",
    )
    parser.add_argument(
        "--print-config", action="store_true", help="print the resolved config and exit"
    )
    parser.add_argument(
        "--evaluate", action="store_true", help="evaluate after training and print the metrics"
    )


def run(args: argparse.Namespace) -> int:
    from grit_fast.data import GritDataError
    from grit_fast.train.config import ConfigError, GritConfig

    try:
        if args.config:
            config = GritConfig.from_file(args.config, args.overrides)
        else:
            config = GritConfig().with_overrides(args.overrides)
    except ConfigError as exc:
        logger.error("%s", exc)
        return 2
    if args.print_config:
        print(json.dumps(config.to_dict(), indent=2))
        return 0
    from grit_fast import distributed
    from grit_fast.train.trainer import GritTrainer

    try:
        trainer = GritTrainer(config)
    except (GritDataError, ValueError, FileNotFoundError, ImportError, NotImplementedError) as exc:
        logger.error("%s", exc)
        return 2
    try:
        try:
            history = trainer.train()
        except GritDataError as exc:  # an image that exists but cannot be read shows up here
            logger.error("%s", exc)
            return 2
        if history and distributed.is_main():
            last = history[-1]
            print(f"step {trainer.step}: reward {last['reward/mean']:.4f}, kl {last['kl']:.5f}")
        if args.evaluate:
            metrics = trainer.evaluate()
            if distributed.is_main():
                print(json.dumps(metrics, indent=2))
    finally:
        distributed.destroy()
    return 0
