"""Prediction records: what evaluation writes per sample, how it is (re)computed, JSONL I/O.

A prediction record is a GRIT data record (``question``, ``answer``, ``image``, ``width``,
``height``, ``bboxs``, ``dataset``) plus the model's ``completion`` and everything derived from it
by :func:`score_records`:

============================  =================================================================
``index``                     position in the evaluated set (metrics and files are ordered by it)
``completion``                the generated text (``completion_tokens``: its length in tokens, if known)
``think``/``rethink``         the trace sections (None when the tag is absent)
``prediction``                the answer section: after the first ``<answer>`` up to ``</answer>``
``convention``                frame of the boxes the model wrote: ``qwen2.5-vl``, ``internvl``, ``pixels``
``model_size``                ``[w, h]`` of the frame the model saw (``qwen2.5-vl``), else None
``boxes_model``/``boxes``     boxes before ``<rethink>``, as written / in original-image pixels
``box_spans``/``box_labels``  each box's character span ``[start, end)`` and label (or None)
``answer_boxes_model``/...    boxes inside the answer (``answer_boxes`` in original pixels,
                              ``answer_box_spans``/``answer_box_labels`` their spans and labels)
``judge_score``               judge score in [0, 1]; 0 without ``<answer>``; None for ``ovd`` sets
``grounding_iou``             IoU of the union of predicted boxes (answer boxes for ``ovd`` sets) with
                              the union of ``bboxs``, original pixels; None without gt boxes
``rewards``/``reward_total``  every reward component of the preset, and their sum
``format``                    ``think``, ``rethink``, ``answer`` present, ``ordered``, ``box``: >= 1
                              box before ``<rethink>``, or none on a counting set (``tallyqa``)
                              whose gt count is 0, the trace that grounds "none" (the official
                              reward's count bonus scores exactly that)
============================  =================================================================

Only ``completion`` and ``answer`` are required to score a record; ``question`` and ``dataset``
default to ``""``; ``width``/``height`` are needed when boxes must be mapped from a model frame.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from grit_fast import jsonl

__all__ = [
    "PredictionError",
    "grounded_boxes_key",
    "read_jsonl",
    "score_records",
]

SAMPLE_KEYS = ("question", "answer", "image", "width", "height", "bboxs", "dataset")
_ORDER = ("<think>", "</think>", "<rethink>", "</rethink>", "<answer>")


class PredictionError(ValueError):
    """A bad prediction record: names the source, the record and the field."""


def grounded_boxes_key(dataset: str) -> str:
    """The record field grounding IoU scores: ``answer_boxes`` for ``ovd`` sets, else ``boxes``."""
    return "answer_boxes" if "ovd" in dataset else "boxes"


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Records of a predictions JSONL file; errors (:class:`PredictionError`) name the file and line."""
    return jsonl.read_jsonl(path, PredictionError)


def _where(record: Mapping[str, Any], i: int, source: str) -> str:
    return f"{source}: record {record.get('index', i)}"


def _text(record: Mapping[str, Any], key: str, where: str, default: str | None = None) -> str:
    value = record.get(key, default)
    if value is None:
        raise PredictionError(f"{where}: missing field {key!r}")
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise PredictionError(f"{where}: field {key!r} must be a string, got {value!r}")
    return str(value)


def _boxes(value: Any, where: str, key: str) -> np.ndarray:
    from grit_fast.rewards._geometry_checks import as_boxes

    try:
        return as_boxes([] if value is None else value, key)
    except (TypeError, ValueError) as exc:
        raise PredictionError(f"{where}: field {exc}") from None


def _list(boxes: np.ndarray) -> list[list[float]]:
    return [[float(v) for v in row] for row in boxes]


def _pixels(record, boxes, convention, model_size, where):
    from grit_fast.rewards.coords import to_image_pixels

    if convention == "pixels" or len(boxes) == 0:
        return boxes.copy()
    if "width" not in record or "height" not in record:
        raise PredictionError(
            f"{where}: fields 'width' and 'height' are needed to map {convention} boxes to pixels"
        )
    try:
        return to_image_pixels(boxes, convention, (record["width"], record["height"]), model_size)
    except ValueError as exc:
        raise PredictionError(f"{where}: {exc}") from None


def _model_size(record, convention, where):
    if convention != "qwen2.5-vl":
        return None
    size = record.get("model_size")
    if size is not None:
        return size
    from grit_fast.rewards.coords import qwen_resized_size

    try:
        return list(qwen_resized_size(int(record["width"]), int(record["height"])))
    except (KeyError, TypeError, ValueError) as exc:
        raise PredictionError(
            f"{where}: cannot derive model_size from width/height: {exc}"
        ) from None


def score_records(
    records: Sequence[Mapping[str, Any]],
    judge: Any = None,
    convention: str | None = None,
    preset: str = "official",
    source: str = "<predictions>",
    num_threads: int = 0,
) -> list[dict[str, Any]]:
    """Recompute every derived field of prediction records (see the module doc) -> new records.

    ``judge``: any judge callable (default :class:`grit_fast.RuleJudge`), called once for the whole
    list. ``convention``: the box frame for records without a ``convention`` field (default
    ``"pixels"``). Records keep their other fields; ``index`` defaults to the position.
    """
    from grit_fast.rewards import RewardScorer, parse_traces
    from grit_fast.rewards.coords import CONVENTIONS
    from grit_fast.rewards.geometry import grounding_iou_batch
    from grit_fast.rewards.reference import COUNTING_DATASETS, python_int

    default_convention = convention or "pixels"
    n = len(records)
    wheres = [_where(r, i, source) for i, r in enumerate(records)]
    completions = [_text(r, "completion", w) for r, w in zip(records, wheres, strict=True)]
    answers = [_text(r, "answer", w) for r, w in zip(records, wheres, strict=True)]
    questions = [_text(r, "question", w, "") for r, w in zip(records, wheres, strict=True)]
    datasets = [_text(r, "dataset", w, "") for r, w in zip(records, wheres, strict=True)]
    traces = parse_traces(completions, num_threads=num_threads)
    batch = RewardScorer(preset=preset, judge=judge, num_threads=num_threads).score(
        completions, answers, datasets, questions=questions
    )
    judged = dict(zip(batch.judged.tolist(), batch.judge_scores.tolist(), strict=True))

    out: list[dict[str, Any]] = []
    preds, gts = [], []
    for i, (record, trace, where) in enumerate(zip(records, traces, wheres, strict=True)):
        conv = record.get("convention") or default_convention
        if conv not in CONVENTIONS:
            raise PredictionError(f"{where}: convention {conv!r} is not one of {CONVENTIONS}")
        has_boxes = len(trace.boxes) > 0 or len(trace.answer_boxes) > 0
        model_size = _model_size(record, conv, where) if has_boxes else record.get("model_size")
        boxes = _pixels(record, trace.boxes, conv, model_size, where)
        answer_boxes = _pixels(record, trace.answer_boxes, conv, model_size, where)
        gt = _boxes(record.get("bboxs"), where, "bboxs")
        ovd = grounded_boxes_key(datasets[i]) == "answer_boxes"
        preds.append(answer_boxes if ovd else boxes)
        gts.append(gt)
        present = [t for t in trace.tag_order if t in _ORDER]
        fmt = {
            "think": trace.think is not None,
            "rethink": trace.rethink is not None,
            "answer": trace.answer is not None,
            "ordered": tuple(present) == _ORDER,
            "box": len(trace.boxes) > 0
            or (datasets[i] in COUNTING_DATASETS and python_int(answers[i]) == 0),
        }
        rewards = {name: float(batch.components[name][i]) for name in batch.components}
        new = dict(record)
        new.update(
            index=int(record.get("index", i)),
            answer=answers[i],
            question=questions[i],
            dataset=datasets[i],
            bboxs=_list(gt),
            think=trace.think,
            rethink=trace.rethink,
            prediction=trace.answer,
            convention=conv,
            model_size=None if model_size is None else [int(v) for v in model_size],
            boxes_model=_list(trace.boxes),
            boxes=_list(boxes),
            box_spans=[[int(a), int(b)] for a, b in trace.spans],
            box_labels=list(trace.labels),
            answer_boxes_model=_list(trace.answer_boxes),
            answer_boxes=_list(answer_boxes),
            answer_box_spans=[[int(a), int(b)] for a, b in trace.answer_spans],
            answer_box_labels=list(trace.answer_labels),
            judge_score=None if ovd else judged.get(i, 0.0),
            rewards=rewards,
            reward_total=float(batch.total[i]),
            format=fmt,
        )
        out.append(new)
    ious = grounding_iou_batch(preds, gts, num_threads=num_threads) if n else np.zeros(0)
    for new, iou in zip(out, ious.tolist(), strict=True):
        new["grounding_iou"] = None if math.isnan(iou) else float(iou)
    return out
