"""Run metrics: one JSON object per logged step in ``output_dir/metrics.jsonl`` (and TensorBoard).

Only the main process writes. Values are plain floats; NaN is written as ``null``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from grit_fast.jsonl import read_jsonl


class MetricsLog:
    def __init__(self, output_dir: str | Path, enabled: bool = True, tensorboard: bool = False):
        self.enabled = enabled
        self.path = Path(output_dir) / "metrics.jsonl"
        self._writer = None
        if enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if tensorboard:
                self._writer = _summary_writer(Path(output_dir) / "tensorboard")

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


def _summary_writer(logdir: Path) -> Any:
    """A TensorBoard ``SummaryWriter`` (imported only when asked for: tensorboard is optional)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as exc:
        raise ImportError(
            "tensorboard=true needs the tensorboard package: pip install 'grit-fast[tensorboard]' "
            f"(or set tensorboard=false; metrics.jsonl is always written). Import failed: {exc}"
        ) from None
    return SummaryWriter(str(logdir))


def read_metrics(output_dir: str | Path) -> list[dict[str, Any]]:
    """The rows of ``output_dir/metrics.jsonl``."""
    return read_jsonl(Path(output_dir) / "metrics.jsonl")
