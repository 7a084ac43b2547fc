"""Synthetic grounded data: coloured shapes on varied backgrounds, exact gt boxes, GRIT JSONL.

Each image holds a few filled shapes (circle, square, triangle in a few saturated colours) of
several sizes at random positions, some overlapping a little, drawn without anti-aliasing on a light
background (plain, gradient or speckled; every background channel >= 120, so no background pixel
has an object's colour). A gt box is the exact pixel extent of its shape as drawn: ``[x1, y1, x2,
y2]`` with ``x2``/``y2`` exclusive (pixel ``i`` covers ``[i, i + 1)``), in original-image pixels.

Tasks (a small fixed vocabulary, learnable by a tiny model):

* ``"count"`` - "How many red circles are there?", answer ``"0"``..``"4"``, dataset ``tallyqa`` (so
  the official preset's count bonus applies); ``bboxs`` are the counted shapes (none for 0: such
  samples are left out of the grounding-IoU mean, docs/method.md §5);
* ``"spatial"`` - "Is the red triangle left of the blue square?", answer ``"yes"``/``"no"``, dataset
  ``vsr``; ``bboxs`` are the two shapes named, subject first. The two are separated along the axis of
  the relation (no overlap of their extents on it), so the answer is never ambiguous.

Besides the GRIT fields every record keeps ``task``, ``objects`` (every shape, in drawing order:
``shape``, ``color``, ``box``) and the question's parts (``target`` for count; ``subject``,
``relation``, ``object`` for spatial), which :func:`grounded_trace` uses.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from grit_fast.data.synthetic_trace import grounded_trace, to_model_frame_fn

__all__ = [
    "COLORS",
    "RELATIONS",
    "SHAPES",
    "TASKS",
    "SyntheticSpec",
    "grounded_trace",
    "longest_traces",
    "make_dataset",
    "make_sample",
    "to_model_frame_fn",
]

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (230, 25, 25),
    "green": (30, 160, 50),
    "blue": (30, 70, 230),
    "yellow": (240, 200, 0),
}
SHAPES = ("circle", "square", "triangle")
TASKS = ("count", "spatial")
RELATIONS = ("left of", "right of", "above", "below")
DATASET_OF_TASK = {"count": "tallyqa", "spatial": "vsr"}
COUNT_QUESTION = "How many {color} {shape}s are there?"
SPATIAL_QUESTION = "Is the {subject} {relation} the {object}?"
_SPLIT_IDS = {"train": 0, "eval": 1}


@dataclass(frozen=True)
class SyntheticSpec:
    """What :func:`make_sample` draws.

    ``image_size``: ``(W, H)`` for every image, or ``((w_min, w_max), (h_min, h_max))`` drawn per image
    (inclusive). The default 112 x 112 is a 4 x 4 grid of Qwen2.5-VL image tokens (16 tokens). ``tasks``:
    subset of :data:`TASKS`, alternated per sample. ``object_size``: side of a shape's box as a fraction
    of ``min(W, H)``. ``min_count``, ``max_count``: count answers are uniform in ``min_count..max_count``
    (``min_count=max_count=1`` asks only for shapes that are there once). ``distractors``:
    inclusive range of extra shapes that the question is not about. ``max_overlap``: the most any two
    boxes may share, as a fraction of the smaller one's area.
    """

    image_size: Any = (112, 112)
    tasks: tuple[str, ...] = TASKS
    colors: tuple[str, ...] = tuple(COLORS)
    shapes: tuple[str, ...] = SHAPES
    relations: tuple[str, ...] = RELATIONS
    object_size: tuple[float, float] = (0.14, 0.28)
    max_count: int = 4
    min_count: int = 0
    distractors: tuple[int, int] = (1, 3)
    max_overlap: float = 0.2

    def __post_init__(self) -> None:
        _size_range(self.image_size)
        if not self.tasks or any(t not in TASKS for t in self.tasks):
            raise ValueError(f"tasks must be a non-empty subset of {TASKS}, got {self.tasks!r}")
        if any(c not in COLORS for c in self.colors) or len(self.colors) < 2:
            raise ValueError(f"colors must be 2 or more of {tuple(COLORS)}, got {self.colors!r}")
        if any(s not in SHAPES for s in self.shapes) or len(self.shapes) < 2:
            raise ValueError(f"shapes must be 2 or more of {SHAPES}, got {self.shapes!r}")
        if not self.relations or any(r not in RELATIONS for r in self.relations):
            raise ValueError(f"relations must be a subset of {RELATIONS}, got {self.relations!r}")
        lo, hi = self.object_size
        if not 0.05 <= lo <= hi <= 0.5:
            raise ValueError(f"object_size must be 0.05 <= lo <= hi <= 0.5, got {self.object_size}")
        if not 0 <= self.min_count <= self.max_count <= 6:
            raise ValueError(
                f"counts must be 0 <= min_count <= max_count <= 6, got {self.min_count}..{self.max_count}"
            )
        if not 0 <= self.distractors[0] <= self.distractors[1] <= 6:
            raise ValueError(f"distractors must be 0 <= lo <= hi <= 6, got {self.distractors}")
        if not 0 <= self.max_overlap < 1:
            raise ValueError(f"max_overlap must be in [0, 1), got {self.max_overlap}")


def _size_range(image_size: Any) -> tuple[tuple[int, int], tuple[int, int]]:
    """``(W, H)`` or ``((w_min, w_max), (h_min, h_max))`` -> the ranges; ValueError otherwise."""
    try:
        w, h = image_size
        w = (w, w) if isinstance(w, (int, np.integer)) else tuple(w)
        h = (h, h) if isinstance(h, (int, np.integer)) else tuple(h)
        ranges = (int(w[0]), int(w[1])), (int(h[0]), int(h[1]))
        ok = len(w) == 2 and len(h) == 2
    except (TypeError, ValueError, IndexError):
        ok = False
    if not ok or not all(28 <= lo <= hi <= 2048 for lo, hi in ranges):
        raise ValueError(
            "image_size must be (W, H) or ((w_min, w_max), (h_min, h_max)) with sides in 28..2048, "
            f"got {image_size!r}"
        )
    return ranges


def _background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A light background (H, W, 3) uint8: plain, a gradient or speckles; every channel >= 120."""
    base = rng.integers(170, 256, size=3)
    kind = rng.integers(3)
    if kind == 0:
        img = np.broadcast_to(base, (height, width, 3)).astype(np.float64)
    elif kind == 1:
        other = rng.integers(170, 256, size=3)
        axis = rng.integers(2)
        t = np.linspace(0.0, 1.0, width if axis else height)
        ramp = base[None, :] * (1 - t[:, None]) + other[None, :] * t[:, None]
        img = ramp[None, :, :] if axis else ramp[:, None, :]
        img = np.broadcast_to(img, (height, width, 3)).astype(np.float64)
    else:
        img = base + rng.normal(0.0, 12.0, size=(height, width, 1))
    return np.clip(np.rint(img), 120, 255).astype(np.uint8)


def _shape_mask(shape: str, box: tuple[int, int, int, int], size: tuple[int, int]) -> Any:
    """A 1-bit mask of the shape filling the integer box ``[x1, y1, x2, y2)``."""
    from PIL import Image, ImageDraw

    mask = Image.new("1", size, 0)
    draw = ImageDraw.Draw(mask)
    x1, y1, x2, y2 = box
    if shape == "circle":
        draw.ellipse([x1, y1, x2 - 1, y2 - 1], fill=1)
    elif shape == "square":
        draw.rectangle([x1, y1, x2 - 1, y2 - 1], fill=1)
    else:
        draw.polygon([((x1 + x2 - 1) / 2, y1), (x2 - 1, y2 - 1), (x1, y2 - 1)], fill=1)
    return mask


def _overlap_ok(box: list[int], placed: list[list[int]], max_overlap: float) -> bool:
    for other in placed:
        iw = min(box[2], other[2]) - max(box[0], other[0])
        ih = min(box[3], other[3]) - max(box[1], other[1])
        if iw > 0 and ih > 0:
            smaller = min(
                (box[2] - box[0]) * (box[3] - box[1]), (other[2] - other[0]) * (other[3] - other[1])
            )
            if iw * ih > max_overlap * smaller:
                return False
    return True


def _place(rng, spec, width, height, placed, apart=None) -> list[int] | None:
    """A random square box that overlaps ``placed`` boxes little, or None after many tries.

    ``apart = (box, axis)``: the new box must not overlap ``box``'s extent along ``axis`` (0 = x).
    """
    lo, hi = (round(f * min(width, height)) for f in spec.object_size)
    for _ in range(200):
        side = int(rng.integers(max(lo, 6), max(hi, 6) + 1))
        x1 = int(rng.integers(0, width - side + 1))
        y1 = int(rng.integers(0, height - side + 1))
        box = [x1, y1, x1 + side, y1 + side]
        if apart is not None:
            other, axis = apart
            if box[axis + 2] > other[axis] and other[axis + 2] > box[axis]:
                continue
        if _overlap_ok(box, placed, spec.max_overlap):
            return box
    return None


def _pick_other(rng, spec, exclude: set[tuple[str, str]]) -> tuple[str, str]:
    pairs = [(c, s) for c in spec.colors for s in spec.shapes if (c, s) not in exclude]
    return pairs[int(rng.integers(len(pairs)))]


def _parts(rng, spec, task) -> dict[str, Any]:
    """What the question asks, drawn once per sample (before layout, so retries do not bias it)."""
    if task == "count":
        color = spec.colors[int(rng.integers(len(spec.colors)))]
        shape = spec.shapes[int(rng.integers(len(spec.shapes)))]
        return {
            "target": {"color": color, "shape": shape},
            "count": int(rng.integers(spec.min_count, spec.max_count + 1)),
        }
    subject = _pick_other(rng, spec, set())
    obj = _pick_other(rng, spec, {subject})
    relation = spec.relations[int(rng.integers(len(spec.relations)))]
    return {
        "subject": {"color": subject[0], "shape": subject[1]},
        "relation": relation,
        "object": {"color": obj[0], "shape": obj[1]},
    }


def _scene(rng, spec, parts, width, height) -> list[dict] | None:
    """The objects (colour, shape, integer box) in drawing order, or None to retry."""
    objects: list[dict] = []
    boxes: list[list[int]] = []

    def add(color, shape, apart=None) -> bool:
        box = _place(rng, spec, width, height, boxes, apart)
        if box is None:
            return False
        boxes.append(box)
        objects.append({"shape": shape, "color": color, "box": box})
        return True

    def pair(name: str) -> tuple[str, str]:
        return parts[name]["color"], parts[name]["shape"]

    if "target" in parts:
        if not all(add(*pair("target")) for _ in range(parts["count"])):
            return None
        exclude = {pair("target")}
    else:
        axis = 0 if parts["relation"] in ("left of", "right of") else 1
        if not (add(*pair("subject")) and add(*pair("object"), apart=(boxes[0], axis))):
            return None
        exclude = {pair("subject"), pair("object")}
    for _ in range(int(rng.integers(spec.distractors[0], spec.distractors[1] + 1))):
        add(*_pick_other(rng, spec, exclude))  # a distractor that does not fit is left out
    order = rng.permutation(len(objects))  # drawing order: targets are not always on top
    return [objects[i] for i in order]


def _draw(rng, objects: list[dict], width: int, height: int) -> Any:
    """Render the objects in order; each box becomes the exact extent of the drawn shape."""
    from PIL import Image

    image = Image.fromarray(_background(rng, width, height), "RGB")
    for obj in objects:
        mask = _shape_mask(obj["shape"], tuple(obj["box"]), (width, height))
        image.paste(COLORS[obj["color"]], (0, 0), mask)
        obj["box"] = [float(v) for v in mask.getbbox()]
    return image


def _answer(task: str, objects: list[dict], parts: dict[str, Any]) -> tuple[str, list[list[float]]]:
    if task == "count":
        t = parts["target"]
        boxes = [o["box"] for o in objects if (o["color"], o["shape"]) == (t["color"], t["shape"])]
        return str(len(boxes)), sorted(boxes)  # left to right: a trace has one right order
    find = {(o["color"], o["shape"]): o["box"] for o in objects}
    a = find[parts["subject"]["color"], parts["subject"]["shape"]]
    b = find[parts["object"]["color"], parts["object"]["shape"]]
    holds = {
        "left of": a[2] <= b[0],
        "right of": a[0] >= b[2],
        "above": a[3] <= b[1],
        "below": a[1] >= b[3],
    }[parts["relation"]]
    return ("yes" if holds else "no"), [a, b]


def _question(task: str, parts: dict[str, Any]) -> str:
    if task == "count":
        return COUNT_QUESTION.format(**parts["target"])
    name = "{color} {shape}".format
    return SPATIAL_QUESTION.format(
        subject=name(**parts["subject"]), relation=parts["relation"], object=name(**parts["object"])
    )


def make_sample(
    rng: np.random.Generator, spec: SyntheticSpec | None = None, task: str | None = None
) -> tuple[Any, dict[str, Any]]:
    """One image (RGB ``PIL.Image``) and its GRIT record (a dict; ``image`` left for the caller)."""
    spec = SyntheticSpec() if spec is None else spec
    task = spec.tasks[int(rng.integers(len(spec.tasks)))] if task is None else task
    if task not in spec.tasks:
        raise ValueError(f"task {task!r} is not one of the spec's tasks {spec.tasks}")
    (w_lo, w_hi), (h_lo, h_hi) = _size_range(spec.image_size)
    parts = _parts(rng, spec, task)
    for _ in range(100):
        width, height = int(rng.integers(w_lo, w_hi + 1)), int(rng.integers(h_lo, h_hi + 1))
        objects = _scene(rng, spec, parts, width, height)
        if objects is not None:
            break
    else:
        raise ValueError(
            f"cannot place {parts.get('count', 2)} shapes of size {spec.object_size} overlapping at most "
            f"{spec.max_overlap} in a {spec.image_size} image; lower max_count or object_size"
        )
    parts.pop("count", None)  # the answer says it
    image = _draw(rng, objects, width, height)
    answer, bboxs = _answer(task, objects, parts)
    record = {
        "question": _question(task, parts),
        "answer": answer,
        "image": None,
        "width": width,
        "height": height,
        "bboxs": bboxs,
        "dataset": DATASET_OF_TASK[task],
        "task": task,
        **parts,
        "objects": objects,
    }
    return image, record


def longest_traces(
    spec: SyntheticSpec | None = None, to_model_frame: Any = None, style: str = "short"
) -> list[str]:
    """Correct traces of the longest kinds ``spec`` can ask for: what a generation budget must fit.

    One trace per question (every colour, shape and relation) at the largest image size, with the most
    boxes the task has (``max_count`` for count, 2 for spatial) and every box at the far corner, so each
    coordinate has as many digits as the frame allows. A token budget that fits the longest of these
    (plus the end-of-turn token) never cuts a correct answer short.
    """
    spec = SyntheticSpec() if spec is None else spec
    (_, width), (_, height) = _size_range(spec.image_size)
    corner = [float(width - 12), float(height - 12), float(width), float(height)]
    pairs = [{"color": c, "shape": s} for c in spec.colors for s in spec.shapes]
    base = {"width": width, "height": height}
    records: list[dict[str, Any]] = []
    if "count" in spec.tasks:
        n = spec.max_count
        records += [
            {**base, "task": "count", "target": t, "answer": str(n), "bboxs": [corner] * n}
            for t in pairs
        ]
    if "spatial" in spec.tasks:
        records += [
            {
                **base,
                "task": "spatial",
                "subject": a,
                "object": b,
                "relation": rel,
                "answer": answer,
                "bboxs": [corner, corner],
            }
            for a in pairs
            for b in pairs
            if a != b
            for rel in spec.relations
            for answer in ("yes", "no")
        ]
    return [grounded_trace(r, to_model_frame=to_model_frame, style=style) for r in records]


def make_dataset(
    out_dir: str | os.PathLike,
    n_train: int = 500,
    n_eval: int = 100,
    seed: int = 0,
    image_size: Any = None,
    tasks: tuple[str, ...] | None = None,
    spec: SyntheticSpec | None = None,
    progress: bool = True,
) -> dict[str, Path]:
    """Write ``train.jsonl``, ``eval.jsonl`` and PNG images under ``out_dir/images``.

    Returns ``{"train": Path, "eval": Path, "images": Path}``. ``image_size`` and ``tasks`` override
    the ``spec``'s (default :class:`SyntheticSpec`). Sample ``i`` of a split is drawn from its own
    generator seeded by ``(seed, split, i)`` and takes task ``tasks[i % len(tasks)]``, so the output
    is the same for a seed and a sample does not depend on the split's size. Image paths in the JSONL
    are relative to ``out_dir`` (the loader's default image root). Train and eval never share an
    image: eval images that equal a train image pixel for pixel are drawn again.
    """
    from tqdm.auto import tqdm

    spec = SyntheticSpec() if spec is None else spec
    overrides = {"image_size": image_size, "tasks": None if tasks is None else tuple(tasks)}
    spec = replace(spec, **{k: v for k, v in overrides.items() if v is not None})
    for name, n in (("n_train", n_train), ("n_eval", n_eval)):
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {n!r}")
    out = Path(out_dir)
    images = out / "images"
    images.mkdir(parents=True, exist_ok=True)
    paths = {"train": out / "train.jsonl", "eval": out / "eval.jsonl", "images": images}
    seen: set[bytes] = set()
    bar = tqdm(total=n_train + n_eval, desc="make-data", unit="img", disable=not progress)
    for split, n in (("train", n_train), ("eval", n_eval)):
        tmp = _private_tmp(paths[split])
        with tmp.open("w", encoding="utf-8") as handle:
            for i in range(n):
                task = spec.tasks[i % len(spec.tasks)]
                rng = np.random.default_rng([seed, _SPLIT_IDS[split], i])
                while True:
                    image, record = make_sample(rng, spec, task)
                    key = image.tobytes() + bytes(str(image.size), "ascii")
                    if split == "train" or key not in seen:
                        break
                seen.add(key)
                name = f"{split}_{i:06d}.png"
                png = _private_tmp(images / name)
                image.save(png, format="PNG", optimize=False)
                png.replace(images / name)
                record["image"] = f"images/{name}"
                handle.write(json.dumps(record) + "\n")
                bar.update()
        tmp.replace(paths[split])
    bar.close()
    return paths


def _private_tmp(path: Path) -> Path:
    """A name beside ``path`` that no other writer uses (the file is then renamed onto ``path``).

    Two runs writing the same folder at once (same seed, so the same content) each rename their own
    complete file into place instead of one renaming the other's half-written one.
    """
    return path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
