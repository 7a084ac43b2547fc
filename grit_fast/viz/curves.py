"""Training curves from a run's ``metrics.jsonl`` (one JSON object per logged step).

Panels, each drawn when its keys are present (null values are gaps):

* reward - ``reward/mean`` (or ``reward``/``reward_total``) bold, with a ±1 std band from
  ``reward/std``, and every component ``reward/<name>``;
* grounding IoU - keys containing ``iou``;
* KL - ``kl`` and ``kl/*``;
* completion length - ``completion_length/*`` (or ``completion_length``);
* zero-advantage fraction - keys starting with ``zero_advantage``;
* clip fraction - ``clip_fraction``.

The x axis is ``step`` (the row number when absent). matplotlib is imported lazily (extra ``viz``:
``pip install "grit-fast[viz]"``) with the non-interactive Agg backend.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from grit_fast.jsonl import read_jsonl

__all__ = ["PANELS", "plot_curves", "read_metrics_jsonl"]

_TOTAL_KEYS = ("reward/mean", "reward", "reward_total")


def _reward(key: str) -> bool:
    return key in _TOTAL_KEYS or (key.startswith("reward/") and key != "reward/std")


PANELS = (
    ("reward", _reward),
    ("grounding IoU", lambda k: "iou" in k.lower()),
    ("KL", lambda k: k == "kl" or k.startswith("kl/")),
    ("completion length (tokens)", lambda k: k.startswith("completion_length")),
    ("zero-advantage group fraction", lambda k: k.startswith("zero_advantage")),
    ("clip fraction", lambda k: k == "clip_fraction"),
)


def read_metrics_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Rows of a metrics JSONL file; a missing file is a FileNotFoundError, a bad line a ValueError
    naming the file and line number."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"metrics file not found: {path}")
    return read_jsonl(path)


def _series(rows: Sequence[Mapping[str, Any]], key: str) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for i, row in enumerate(rows):
        value = row.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            step = row.get("step", i)
            xs.append(float(step if isinstance(step, (int, float)) else i))
            ys.append(float(value))
    return xs, ys


def _label(key: str) -> str:
    """A legend entry: the key without the prefix its panel title already says."""
    if key in _TOTAL_KEYS:
        return "total"
    for prefix in ("reward/", "completion_length/", "kl/"):
        if key.startswith(prefix):
            return key[len(prefix) :]
    return key


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise ImportError(
            'plotting needs matplotlib: pip install "grit-fast[viz]" (or pip install matplotlib)'
        ) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(
    metrics: str | os.PathLike | Sequence[Mapping[str, Any]],
    out: str | os.PathLike,
    title: str | None = None,
) -> Path:
    """Draw the panels of :data:`PANELS` for a metrics file (or rows) into the image ``out``.

    Raises ValueError when no row holds any plotted key.
    """
    rows = read_metrics_jsonl(metrics) if isinstance(metrics, (str, os.PathLike)) else metrics
    keys = sorted({k for row in rows for k in row if k != "step"})
    panels = [(name, [k for k in keys if match(k)]) for name, match in PANELS]
    panels = [(name, ks) for name, ks in panels if any(_series(rows, k)[0] for k in ks)]
    if not panels:
        raise ValueError(
            f"no plottable metric in {len(rows)} rows (keys: {keys[:20]}); expected e.g. "
            "reward/mean, grounding_iou, kl, completion_length/mean, zero_advantage_group_fraction"
        )
    plt = _pyplot()
    cols = min(3, len(panels))
    nrows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(
        nrows, cols, figsize=(5.6 * cols, 3.6 * nrows), squeeze=False, layout="constrained"
    )
    for ax, (name, ks) in zip(axes.flat, panels, strict=False):
        for key in ks:
            xs, ys = _series(rows, key)
            if not xs:
                continue
            total = key in _TOTAL_KEYS
            (line,) = ax.plot(
                xs, ys, label=_label(key), linewidth=2.2 if total else 1.2, zorder=3 if total else 2
            )
            if key == "reward/mean":
                sx, sd = _series(rows, "reward/std")
                std = dict(zip(sx, sd, strict=True))
                band = [(x, y, std[x]) for x, y in zip(xs, ys, strict=True) if x in std]
                if band:
                    bx, by, bs = zip(*band, strict=True)
                    lo = [y - s for y, s in zip(by, bs, strict=True)]
                    hi = [y + s for y, s in zip(by, bs, strict=True)]
                    ax.fill_between(
                        bx, lo, hi, color=line.get_color(), alpha=0.15, label="total ± std"
                    )
        ax.set_title(name)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if len(ax.get_legend_handles_labels()[1]) > 3:  # beside the panel: no curve hidden
            ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
        else:
            ax.legend(fontsize=7, loc="best", framealpha=0.7)
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
