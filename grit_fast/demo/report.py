"""The demo's report: both models' held-out metrics with 95 % bootstrap intervals, curves, gallery.

Per held-out sample (from the scored ``predictions.jsonl`` of :func:`grit_fast.eval.evaluation`):

* ``answer_accuracy`` - the rule judge's score (0 or 1), reported in %;
* ``grounding_iou``   - union-vs-union IoU in original pixels (samples with gt boxes only);
* ``other_image_iou`` - the same IoU of a sample's boxes against the gt boxes of the next held-out
                        sample that has some (cyclically; boxes rescaled to that image's size): the
                        IoU that boxes earn without looking at the image. ``grounding_iou`` above it
                        means the boxes follow the image; equal to it means they follow the
                        question and the usual sizes only;
* ``own_minus_other_iou`` - ``grounding_iou - other_image_iou`` per sample: what the boxes gain
                        from the sample's own image. Its interval above 0 is the evidence of
                        grounding that the two rows above cannot give on their own;
* ``format``          - all five tags in order and at least one box before ``<rethink>`` (or a
                        count question whose gt count is 0, where no box is right), in %;
* ``mean_reward``     - the ``official`` preset's total.

Intervals are percentile bootstrap intervals (``bootstrap`` resamples of the held-out samples with
replacement, seeded). The differences (GRPO-GR minus warm start) are *paired*: each resample draws
the same samples for both models, so the interval of a difference is narrower than either model's.
``beats`` is true when the difference's lower bound is above 0; ``intervals_disjoint`` when the
GRPO-GR interval lies wholly above the warm-start interval (the stricter reading).

The base stage's model is reported on its own held-out set (counting questions whose shape is
there once) by :func:`stage_report`: the same metrics, each with its interval, under ``base_stage``.

When the report carries ``image_reliance`` (:mod:`grit_fast.eval.image_reliance`, both models), the
summary adds its gaps: how many nats per token the held-out traces' boxes, answers and other text
are worth from the sample's own image. Zero means those tokens ignore the image.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from grit_fast.eval.metrics import FORMAT_KEYS

__all__ = [
    "METRICS",
    "bootstrap_report",
    "other_image_iou",
    "stage_report",
    "summary_table",
    "write_report",
]

# name -> (label, scale, digits)
METRICS: dict[str, tuple[str, float, int]] = {
    "answer_accuracy": ("answer accuracy (%)", 100.0, 1),
    "grounding_iou": ("grounding IoU", 1.0, 3),
    "other_image_iou": ("IoU vs other image's gt", 1.0, 3),
    "own_minus_other_iou": ("IoU own - other image", 1.0, 3),
    "format": ("format compliance (%)", 100.0, 1),
    "mean_reward": ("mean reward (official)", 1.0, 3),
}


def per_sample(records: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
    """(n,) arrays per metric; NaN where a sample does not count (IoU without gt boxes)."""
    iou = [r.get("grounding_iou") for r in records]
    fmt = [r.get("format") or {} for r in records]
    grounded = np.array([math.nan if v is None else float(v) for v in iou])
    other = other_image_iou(records)
    return {
        "answer_accuracy": np.array([float(r.get("judge_score") or 0.0) for r in records]),
        "grounding_iou": grounded,
        "format": np.array([float(all(f.get(k) for k in FORMAT_KEYS)) for f in fmt]),
        "mean_reward": np.array([float(r["reward_total"]) for r in records]),
        "other_image_iou": other,
        "own_minus_other_iou": grounded - other,  # NaN where either is
    }


def other_image_iou(records: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """(n,) IoU of each grounded sample's boxes with the next grounded sample's gt; NaN elsewhere.

    The boxes are those ``grounding_iou`` scores (answer boxes for ``ovd`` sets), scaled from their
    image's width and height to the other image's. Fewer than two grounded samples: all NaN.
    """
    from grit_fast.eval.predictions import grounded_boxes_key
    from grit_fast.rewards.geometry import grounding_iou_batch

    out = np.full(len(records), math.nan)
    grounded = [i for i, r in enumerate(records) if r.get("grounding_iou") is not None]
    if len(grounded) < 2:
        return out
    preds, gts = [], []
    for k, i in enumerate(grounded):
        mine, other = records[i], records[grounded[(k + 1) % len(grounded)]]
        key = grounded_boxes_key(str(mine.get("dataset", "")))
        boxes = np.asarray(mine.get(key) or [], dtype=np.float64).reshape(-1, 4)
        sx = float(other["width"]) / float(mine["width"])
        sy = float(other["height"]) / float(mine["height"])
        preds.append(boxes * np.array([sx, sy, sx, sy]))
        gts.append(np.asarray(other["bboxs"], dtype=np.float64).reshape(-1, 4))
    out[grounded] = grounding_iou_batch(preds, gts, num_threads=1)
    return out


def _nanmean_rows(values: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Mean over each row of ``values[idx]`` ignoring NaN (B,)."""
    taken = values[idx]
    valid = ~np.isnan(taken)
    counts = valid.sum(axis=1)
    sums = np.where(valid, taken, 0.0).sum(axis=1)
    return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def _interval(values: np.ndarray, scale: float) -> list[float]:
    lo, hi = np.nanpercentile(values, [2.5, 97.5])
    return [float(lo) * scale, float(hi) * scale]


def _resampling(n: int, resamples: int, seed: int) -> tuple[np.ndarray, dict[str, Any]]:
    """Bootstrap indices (resamples, n) drawn with ``seed``, and the report's header for them."""
    idx = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    return idx, {"n": n, "resamples": resamples, "interval": "95% percentile bootstrap"}


def _point_and_resamples(values: np.ndarray, idx: np.ndarray) -> tuple[float, np.ndarray]:
    """The mean of ``values`` ignoring NaN, and its mean over each resample in ``idx``."""
    point = float(_nanmean_rows(values, np.arange(len(values))[None, :])[0])
    return point, _nanmean_rows(values, idx)


def bootstrap_report(
    warm: Sequence[Mapping[str, Any]],
    grpo: Sequence[Mapping[str, Any]],
    resamples: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """Each metric of both models and their paired difference, with 95 % bootstrap intervals."""
    if len(warm) != len(grpo) or not warm:
        raise ValueError(
            f"need the same non-empty held-out set for both models, got {len(warm)} and {len(grpo)}"
        )
    for i, (a, b) in enumerate(zip(warm, grpo, strict=True)):
        if (a.get("index"), a.get("question")) != (b.get("index"), b.get("question")):
            raise ValueError(f"held-out record {i}: the two prediction files are not aligned")
    a, b = per_sample(warm), per_sample(grpo)
    idx, out = _resampling(len(warm), resamples, seed)
    for name, (_, scale, _) in METRICS.items():
        (point_a, wa), (point_b, wb) = (_point_and_resamples(v[name], idx) for v in (a, b))
        diff = wb - wa

        warm_ci, grpo_ci, diff_ci = (_interval(v, scale) for v in (wa, wb, diff))
        out[name] = {
            "n": int(np.sum(~np.isnan(a[name]))),
            "warm_start": {"mean": point_a * scale, "ci95": warm_ci},
            "grpo": {"mean": point_b * scale, "ci95": grpo_ci},
            "difference": {"mean": (point_b - point_a) * scale, "ci95": diff_ci},
            "beats": diff_ci[0] > 0,
            "intervals_disjoint": grpo_ci[0] > warm_ci[1],
        }
    return out


def stage_report(
    records: Sequence[Mapping[str, Any]], resamples: int = 2000, seed: int = 0
) -> dict[str, Any]:
    """One model's held-out metrics (:data:`METRICS`), each with its 95 % bootstrap interval: the
    report of a stage that has no other model to compare with on its held-out set."""
    if not records:
        raise ValueError("need a non-empty held-out set")
    values = per_sample(records)
    idx, out = _resampling(len(records), resamples, seed)
    for name, (_, scale, _) in METRICS.items():
        point, means = _point_and_resamples(values[name], idx)
        out[name] = {
            "n": int(np.sum(~np.isnan(values[name]))),
            "mean": point * scale,
            "ci95": _interval(means, scale),
        }
    return out


def _cell(entry: Mapping[str, Any], digits: int, sign: bool = False) -> str:
    lo, hi = entry["ci95"]
    fmt = f"{{:{'+' if sign else ''}.{digits}f}}"
    return f"{fmt.format(entry['mean'])} [{fmt.format(lo)}, {fmt.format(hi)}]"


def summary_table(report: Mapping[str, Any]) -> str:
    """The printed summary: metric, warm start, GRPO-GR, difference (each with its interval)."""
    stats = report["held_out"]
    rows = [("held-out metric", "warm start", "GRPO-GR", "GRPO-GR - warm start")]
    for name, (label, _, digits) in METRICS.items():
        s = stats[name]
        mark = " *" if s["beats"] else ""
        rows.append(
            (
                f"{label} n={s['n']}",
                _cell(s["warm_start"], digits),
                _cell(s["grpo"], digits),
                _cell(s["difference"], digits, sign=True) + mark,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    base = report.get("base_stage")
    if base:
        cells = ", ".join(
            f"{label} {_cell(base[name], digits, sign=name == 'own_minus_other_iou')}"
            for name, (label, _, digits) in METRICS.items()
            if name in ("grounding_iou", "other_image_iou", "own_minus_other_iou")
        )
        lines.append(
            f"base stage (held-out counting questions whose shape is there once, n={base['n']}): "
            + cells
        )
    seconds = report.get("seconds", {})
    reliance = report.get("image_reliance")
    if reliance and "warmstart" in reliance and "grpo" in reliance:
        gaps = ", ".join(
            f"{label} {reliance['warmstart'][label]['gap']:+.3f} -> {reliance['grpo'][label]['gap']:+.3f}"
            for label in reliance["grpo"]
            if label in reliance["warmstart"]
        )
        lines.append(
            f"image reliance, warm start -> GRPO-GR (nats/token a correct trace costs more after "
            f"another image, n={reliance['n']}): {gaps}"
        )
    lines.append(
        f"{stats['interval']} intervals over {stats['n']} held-out samples "
        f"({stats['resamples']} paired resamples); * = the difference's interval is above 0."
    )
    if seconds:
        lines.append(
            "wall time: "
            + ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items() if k != "total")
            + f"; total {seconds.get('total', float('nan')):.0f} s"
        )
    return "\n".join(lines)


def _read(path: str | os.PathLike) -> list[dict[str, Any]]:
    from grit_fast.eval.predictions import read_jsonl

    return sorted(read_jsonl(path), key=lambda r: r["index"])


def _upscaled(records, image_root, folder: Path, factor: int) -> list[dict[str, Any]]:
    """Copies of records whose image is enlarged ``factor`` x (nearest), boxes and sizes with it."""
    from PIL import Image

    from grit_fast.data import load_image

    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for r in records:
        new = dict(r)
        if factor > 1 and r.get("image"):
            image = load_image(Path(image_root, r["image"]))
            name = f"{int(r['index']):06d}.png"
            size = (image.width * factor, image.height * factor)
            image.resize(size, Image.Resampling.NEAREST).save(folder / name)
            new["image"] = str(folder / name)
            new["width"], new["height"] = size
            for key in ("boxes", "bboxs"):
                new[key] = [[v * factor for v in box] for box in r.get(key) or []]
        elif r.get("image"):
            new["image"] = str(Path(image_root, r["image"]))
        out.append(new)
    return out


def _pick(records: Sequence[Mapping[str, Any]], count: int) -> list[int]:
    """Positions of up to ``count`` samples with gt boxes, alternating datasets, in index order."""
    by_set: dict[str, list[int]] = {}
    for i, r in enumerate(records):
        if r.get("bboxs"):
            by_set.setdefault(str(r.get("dataset")), []).append(i)
    picked: list[int] = []
    queues = [list(v) for _, v in sorted(by_set.items())]
    while len(picked) < count and any(queues):
        for q in queues:
            if q and len(picked) < count:
                picked.append(q.pop(0))
    return sorted(picked)


def gallery_png(warm, grpo, image_root, out: Path, count: int, image_side: int = 224) -> Path:
    """``out``: rows of held-out samples, warm start on the left and GRPO-GR on the right."""
    from PIL import Image, ImageDraw

    from grit_fast.viz.samples import _font, render_sample

    picks = _pick(grpo, count)
    if not picks:
        picks = list(range(min(count, len(grpo))))
    side = max(int(r.get("width") or 1) for r in grpo)
    factor = max(1, image_side // side)
    folder = out.parent / "gallery" / "upscaled"
    cells = []
    for name, records in (("warm start", warm), ("GRPO-GR", grpo)):
        chosen = _upscaled(
            [records[i] for i in picks], image_root, folder / name.replace(" ", "_"), factor
        )
        cells.append([render_sample(r) for r in chosen])
    col_w = [max(p.width for p in col) for col in cells]
    row_h = [max(a.height, b.height) for a, b in zip(*cells, strict=True)]
    title = 28
    canvas = Image.new("RGB", (sum(col_w) + 10, sum(row_h) + title + 4 * len(row_h)), "white")
    draw = ImageDraw.Draw(canvas)
    font = _font(18)
    x = 0
    for name, width in zip(("warm start (supervised)", "GRPO-GR"), col_w, strict=True):
        draw.text((x + 8, 4), name, fill=(0, 0, 0), font=font)
        x += width + 10
    y = title
    for k, height in enumerate(row_h):
        canvas.paste(cells[0][k], (0, y))
        canvas.paste(cells[1][k], (col_w[0] + 10, y))
        y += height + 4
        draw.line((0, y - 2, canvas.width, y - 2), fill=(180, 180, 180), width=1)
    canvas.save(out)
    return out


def write_report(
    out: Path,
    warm_predictions: str | os.PathLike,
    grpo_predictions: str | os.PathLike,
    image_root: str | os.PathLike,
    losses: Mapping[str, Sequence[float]],
    info: Mapping[str, Any],
    base_predictions: str | os.PathLike | None = None,
    gallery: int = 6,
    bootstrap: int = 2000,
    progress: bool = True,
) -> dict[str, Any]:
    """Write ``metrics.json``, ``curves.png``, ``gallery.png``, ``gallery/``, ``summary.txt``.

    ``losses``: each supervised stage's loss per step (``warm_start``, ``base_stage``), summarised as
    ``<stage>_loss``. ``base_predictions``: the base stage's held-out predictions, reported under
    ``base_stage`` (:func:`stage_report`)."""
    from grit_fast.viz.curves import plot_curves
    from grit_fast.viz.samples import render_gallery

    warm, grpo = _read(warm_predictions), _read(grpo_predictions)
    seed = int(info.get("seed", 0))
    report: dict[str, Any] = {"held_out": bootstrap_report(warm, grpo, bootstrap, seed=seed)}
    if base_predictions is not None:
        report["base_stage"] = stage_report(_read(base_predictions), bootstrap, seed=seed)
    for stage, values in losses.items():
        report[f"{stage}_loss"] = {"first": values[0], "last": values[-1], "steps": len(values)}
    report.update(info)
    plot_curves(out / "metrics.jsonl", out / "curves.png", title="GRPO-GR on synthetic shapes")
    gallery_png(warm, grpo, image_root, out / "gallery.png", gallery)
    factor = max(1, 224 // max(int(r.get("width") or 1) for r in grpo))
    render_gallery(
        _upscaled(grpo, image_root, out / "gallery" / "upscaled" / "all", factor), out / "gallery"
    )
    text = summary_table(report)
    (out / "summary.txt").write_text(text + "\n", encoding="utf-8")
    tmp = out / "metrics.json.tmp"
    tmp.write_text(json.dumps(report, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    tmp.replace(out / "metrics.json")
    print(text)
    return report
