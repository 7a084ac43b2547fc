"""Correct GRIT traces for synthetic records, with boxes in the frame the model writes them in.

:func:`grounded_trace` writes ``<think> … box … </think> <rethink> … </rethink> <answer> A``
(docs/method.md §1, no closing ``</answer>``: the official BLEU reads everything after
``<answer>``, so a closing tag would cost half of it). Boxes are integers (the official box regex counts integers only) in the model's
frame: Qwen2.5-VL's resized-image pixels by default, or whatever ``to_model_frame`` says (a model
adapter, a convention name, or a callable). A count-0 trace names no box, which is what the official
preset rewards most (the tallyqa bonus wants as many boxes as the count).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

__all__ = ["STYLES", "from_image_pixels", "grounded_trace", "to_model_frame_fn"]

STYLES = ("full", "short")

FrameFn = Callable[[np.ndarray, int, int], np.ndarray]

# A few phrasings per step, all from one small vocabulary; without an rng the first is used.
_LOOK = ("I look for the {plural}.", "Let me find every {name} in the image.")
_FOUND = ("{Name} {k} is at {box}.", "{Name} {k}: {box}.")
_NONE = ("I see no {name} in the image.", "There is no {name} here.")
_COUNT_RETHINK = ("I found {n} {noun}, so the answer is {n}.", "I count {n} {noun}.")
_SPATIAL_LOOK = ("The {name} is at {box}.", "I find the {name} at {box}.")
_SPATIAL_RETHINK = (
    "The {subject} is {neg}{relation} the {object}, so the answer is {answer}.",
    "So the {subject} is {neg}{relation} the {object}: {answer}.",
)
_OPPOSITE = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}


def from_image_pixels(boxes: Any, convention: str, image_size: Any, model_size: Any = None) -> Any:
    """The inverse of :func:`grit_fast.rewards.coords.to_image_pixels`: original pixels -> frame.

    ``convention`` ``"qwen2.5-vl"`` (``model_size`` defaults to the GRIT resize of ``image_size``),
    ``"internvl"`` (0-1000) or ``"pixels"``. Returns float64 (K, 4), not rounded.
    """
    from grit_fast.rewards.coords import CONVENTIONS, qwen_resized_size

    if convention not in CONVENTIONS:
        raise ValueError(f"unknown box convention {convention!r}; expected one of {CONVENTIONS}")
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    width, height = (float(v) for v in image_size)
    if convention == "pixels":
        return boxes.copy()
    if convention == "internvl":
        frame_w = frame_h = 1000.0
    elif model_size is None:
        frame_w, frame_h = qwen_resized_size(int(width), int(height))
    else:
        frame_w, frame_h = (float(v) for v in model_size)
    return boxes * np.array([frame_w / width, frame_h / height, frame_w / width, frame_h / height])


def to_model_frame_fn(to_model_frame: Any = None) -> FrameFn:
    """``(boxes (K, 4) original pixels, width, height) -> (K, 4)`` in the model's frame.

    ``to_model_frame``: None (Qwen2.5-VL with GRIT's min/max pixels), a convention name (see
    :data:`grit_fast.rewards.coords.CONVENTIONS`), a :class:`grit_fast.models.ModelAdapter` (its
    convention and its processor's resize), or such a callable itself.
    """
    if to_model_frame is None or isinstance(to_model_frame, str):
        convention = "qwen2.5-vl" if to_model_frame is None else to_model_frame
        from_image_pixels(np.zeros((0, 4)), convention, (1, 1))  # unknown names fail here
        return lambda boxes, w, h: from_image_pixels(boxes, convention, (w, h))
    if hasattr(to_model_frame, "coordinate_convention") and hasattr(to_model_frame, "model_size"):
        adapter = to_model_frame
        return lambda boxes, w, h: from_image_pixels(
            boxes, adapter.coordinate_convention, (w, h), adapter.model_size(w, h)
        )
    if callable(to_model_frame):
        return to_model_frame
    raise TypeError(
        "to_model_frame must be None, a convention name, a model adapter or a callable "
        f"(boxes, width, height) -> boxes, got {type(to_model_frame).__name__}"
    )


def _field(record: Any, name: str, default: Any = None) -> Any:
    if isinstance(record, Mapping):
        return record.get(name, default)
    if hasattr(record, name):
        return getattr(record, name)
    return getattr(record, "extra", {}).get(name, default)


def _fmt(box: np.ndarray, sep: str = ", ") -> str:
    return "[" + sep.join(str(int(v)) for v in box) + "]"


def _pick(options: tuple[str, ...], rng: Any) -> str:
    return options[0] if rng is None else options[int(rng.integers(len(options)))]


def grounded_trace(
    record: Any,
    rng: np.random.Generator | None = None,
    to_model_frame: Any = None,
    style: str = "full",
) -> str:
    """A correct GRIT trace for ``record`` (a synthetic record: dict or GritRecord).

    The think section names each object the question is about with its box in the model's frame
    (:func:`to_model_frame_fn`), rounded to integers; the rethink restates the conclusion; the
    answer is the gt answer. ``style="full"`` writes sentences (``rng``, a numpy Generator, varies the
    phrasing among a few fixed templates; None always gives the first); ``style="short"`` writes as
    few tokens as the format allows, boxes without blanks (``[28,3,48,23]``), and ignores ``rng``::

        <think> yellow square [28,3,48,23] [1,16,18,33] </think> <rethink> 2 yellow squares </rethink> <answer> 2

    A record without the synthetic fields (``task``) gets a generic trace that lists its gt boxes.
    """
    if style not in STYLES:
        raise ValueError(f"style must be one of {STYLES}, got {style!r}")
    frame = to_model_frame_fn(to_model_frame)
    width, height = int(_field(record, "width")), int(_field(record, "height"))
    answer = str(_field(record, "answer"))
    gt = np.asarray(_field(record, "bboxs") or [], dtype=np.float64).reshape(-1, 4)
    sep = ", " if style == "full" else ","
    boxes = [_fmt(b, sep) for b in np.rint(frame(gt, width, height))] if len(gt) else []
    task = _field(record, "task")
    if task == "count":
        target = _field(record, "target")
        name = f"{target['color']} {target['shape']}"
        noun = name if len(boxes) == 1 else name + "s"
        if style == "short":
            think = [name, *boxes] if boxes else ["no", name]
            rethink = f"{len(boxes)} {noun}"
        else:
            think = [_pick(_LOOK, rng).format(plural=name + "s", name=name)]
            found = _pick(_FOUND, rng)
            think += [
                found.format(Name=name.capitalize(), k=k, box=b) for k, b in enumerate(boxes, 1)
            ]
            if not boxes:
                think.append(_pick(_NONE, rng).format(name=name))
            rethink = _pick(_COUNT_RETHINK, rng).format(n=len(boxes), noun=noun)
    elif task == "spatial":
        sub, obj = (_field(record, k) for k in ("subject", "object"))
        sub, obj = f"{sub['color']} {sub['shape']}", f"{obj['color']} {obj['shape']}"
        relation = _field(record, "relation")
        yes = answer == "yes"
        holds = relation if yes else _OPPOSITE[relation]
        if style == "short":
            think = [sub, boxes[0], obj, boxes[1]]
            rethink = f"{sub} {holds} {obj}"
        else:
            think = [
                _pick(_SPATIAL_LOOK, rng).format(name=n, box=b)
                for n, b in zip((sub, obj), boxes, strict=True)
            ]
            think.append(f"The {sub} is {holds} the {obj}.")
            rethink = _pick(_SPATIAL_RETHINK, rng).format(
                subject=sub, neg="" if yes else "not ", relation=relation, object=obj, answer=answer
            )
    elif style == "short":
        think = ["regions", *boxes] if boxes else ["no", "regions"]
        rethink = f"answer {answer}"
    else:
        think = ["The relevant regions are " + ", ".join(boxes) + "." if boxes else "I look."]
        rethink = f"So the answer is {answer}."
    return f"<think> {' '.join(think)} </think> <rethink> {rethink} </rethink> <answer> {answer}"
