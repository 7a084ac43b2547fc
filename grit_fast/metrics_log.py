"""Run metrics: one JSON object per logged step in ``output_dir/metrics.jsonl`` (and TensorBoard).

Only the main process writes. Values are plain floats; NaN is written as ``null``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any


class MetricsLog:
    def __init__(self, output_dir: str | Path, enabled: bool = True, tensorboard: bool = False):
        self.enabled = enabled
        self.path = Path(output_dir) / "metrics.jsonl"
        self._writer = None
        if enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if tensorboard:
                from torch.utils.tensorboard import SummaryWriter  # needs the tensorboard package

                self._writer = SummaryWriter(str(Path(output_dir) / "tensorboard"))

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        if not self.enabled:
            return
        row = {"step": step}
        for key, value in metrics.items():
            value = float(value)
            row[key] = None if math.isnan(value) or math.isinf(value) else value
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(row) + "\n")
        if self._writer is not None:
            for key, value in row.items():
                if key != "step" and value is not None:
                    self._writer.add_scalar(key, value, step)
            self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


def read_metrics(output_dir: str | Path) -> list[dict[str, Any]]:
    """The rows of ``output_dir/metrics.jsonl``."""
    path = Path(output_dir) / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
