"""Score a batch of GRPO-GR completions: :class:`RewardScorer` -> :class:`RewardBatch`.

Presets (docs/method.md §2):

* ``official`` - what the released GRIT code sums, weight 1 each: ``answer_accuracy`` (judge,
  binarised ``> 0``), ``answer_bleu`` (0.1 x BLEU-1), ``answer_format`` (0/0.25/0.5), ``repetition``
  ([-0.5, 0.5]), ``grounding_format`` (0/0.5/1/1.5), ``think_format`` ({0, 0.1, ..., 0.5}); max 4.1;
* ``paper`` - the paper's formula: ``format`` (0.5 think pair + 0.5 rethink pair after it + 0.5 a
  box before ``<rethink>``), ``count`` (0.5 when a tallyqa sample's box count equals its answer),
  ``answer_accuracy`` and ``answer_bleu`` as above.

The judge-free components run in the compiled core for the whole batch (GIL released, threads) or
in the reference twin; the judge is called once per :meth:`RewardScorer.score` call, in Python, with
only the samples that have an ``<answer>`` and a dataset name without ``ovd`` (not at all when there
are none). ``total`` is ``sum_k weight_k * component_k`` in float64 (the released trainer summed
in float32).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from grit_fast import _dispatch
from grit_fast.rewards import _fast, reference
from grit_fast.rewards.judge import Judge, RuleJudge, validate_scores
from grit_fast.rewards.presets import COMPONENTS, PAD_TOKEN_ID, PRESETS
from grit_fast.rewards.results import RewardBatch

__all__ = ["PRESETS", "RewardBatch", "RewardScorer", "pack_completion_ids"]


def _strings(values: Any, name: str, n: int | None) -> list[str]:
    if isinstance(values, str):
        raise TypeError(f"{name} must be a sequence of str, got one str (wrap it in a list)")
    try:
        # A list is used as it is (the compiled core snapshots it itself): no 10k-entry copy.
        out = values if type(values) is list else list(values)
    except TypeError:
        raise TypeError(f"{name} must be a sequence of str, got {type(values).__name__}") from None
    if n is not None and len(out) != n:
        raise ValueError(f"{name} has {len(out)} entries but completions has {n}")
    return out


def _check_str_items(values: list[str], name: str) -> None:
    for i, v in enumerate(values):
        if not isinstance(v, str):
            raise TypeError(f"{name}[{i}] must be a str, got {type(v).__name__}")


_INT64 = np.iinfo(np.int64)


def _as_int_array(value: Any, name: str) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor, converted without importing torch
        value = value.detach().cpu().numpy()
    try:
        arr = np.asarray(value)
    except ValueError:  # ragged: a sequence among the ids
        raise _bad_ids(value, None, name) from None
    if arr.size and not (np.issubdtype(arr.dtype, np.integer) and arr.dtype != np.bool_):
        raise _bad_ids(value, arr, name)
    if arr.size and arr.dtype == np.uint64 and arr.max() > _INT64.max:
        raise _bad_ids(value, arr, name)
    return arr.astype(np.int64, copy=False)


def _bad_ids(value: Any, arr: np.ndarray | None, name: str) -> Exception:
    """The error for ids that are not all int64 integers: the first bad id of a list, else the dtype."""
    if isinstance(value, (list, tuple)):
        for j, v in enumerate(value):
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
                return TypeError(
                    f"{name}[{j}] is {v!r} ({type(v).__name__}); expected an integer token id"
                )
            if not _INT64.min <= v <= _INT64.max:
                return ValueError(f"{name}[{j}] is {v}, beyond int64")
    if arr is not None and arr.dtype == np.uint64:
        return ValueError(f"{name} holds the id {arr.max()}, beyond int64")
    dtype = "ragged rows" if arr is None else f"dtype {arr.dtype}"
    return TypeError(f"{name} must hold integer token ids, got {dtype}")


def pack_completion_ids(
    completion_ids: Any, n: int, compiled: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """``(flat, offsets)`` int64 from a 2-D array/tensor (N, T) or N 1-D sequences of ids.

    With ``compiled``, rows that are lists or tuples of ``int`` (what TRL hands reward functions)
    are packed by the compiled core in one pass; anything else, and every error, takes the numpy
    path below, so both give the same arrays.
    """
    if hasattr(completion_ids, "ndim") and completion_ids.ndim == 2:
        arr = _as_int_array(completion_ids, "completion_ids")
        if arr.shape[0] != n:
            raise ValueError(f"completion_ids has {arr.shape[0]} rows but completions has {n}")
        flat = np.ascontiguousarray(arr).reshape(-1)
        return flat, np.arange(n + 1, dtype=np.int64) * arr.shape[1]
    if hasattr(completion_ids, "ndim"):
        raise ValueError(
            f"completion_ids must be 2-D (N, T) or a sequence of 1-D rows, got {completion_ids.ndim}-D"
        )
    if isinstance(completion_ids, (str, bytes)):
        raise TypeError("completion_ids must be token ids, got a string")
    packed = _fast.pack_ids(completion_ids) if compiled else None
    if packed is not None and len(packed[1]) == n + 1:
        return packed
    try:
        rows = list(completion_ids)
    except TypeError:
        raise TypeError(
            f"completion_ids must be a 2-D array or a sequence of rows, got {type(completion_ids).__name__}"
        ) from None
    if len(rows) != n:
        raise ValueError(f"completion_ids has {len(rows)} rows but completions has {n}")
    arrays = []
    for i, row in enumerate(rows):
        a = _as_int_array(row, f"completion_ids[{i}]")
        if a.ndim != 1:
            raise ValueError(f"completion_ids[{i}] must be 1-D, got shape {a.shape}")
        arrays.append(a)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum([len(a) for a in arrays], out=offsets[1:])
    flat = np.concatenate(arrays) if arrays else np.zeros(0, dtype=np.int64)
    return np.ascontiguousarray(flat, dtype=np.int64), offsets


class RewardScorer:
    """Computes the GRPO-GR rewards of a preset for batches of completions.

    ``judge``: a callable ``(questions, answers, predictions) -> floats in [0, 1]`` (default
    :class:`RuleJudge`). ``weights``: component name -> factor (default 1; an unknown name is a
    ValueError). ``num_threads``: compiled-core threads (0 = ``GRIT_FAST_NUM_THREADS`` or all cores).
    ``pad_token_id``: token ids are cut at its first occurrence for the repetition reward (None:
    not cut). Without ``completion_ids`` the token factor of the repetition reward is 1; with them,
    fewer than 16 ids after the cut give 0.5 outright, as do texts of fewer than 8 words (as
    released). ``completion_ids``: a 2-D (N, T) array or tensor, or N rows of ints (lists of int,
    as TRL passes them, are packed in the compiled core).
    """

    def __init__(
        self,
        preset: str = "official",
        judge: Judge | None = None,
        weights: Mapping[str, float] | None = None,
        num_threads: int = 0,
        pad_token_id: int | None = PAD_TOKEN_ID,
    ) -> None:
        if preset not in PRESETS:
            raise ValueError(f"preset {preset!r} is not a reward preset; expected one of {PRESETS}")
        if judge is not None and not callable(judge):
            raise TypeError(f"judge must be callable, got {type(judge).__name__}")
        self.preset = preset
        self.judge = RuleJudge() if judge is None else judge
        self.components = COMPONENTS[preset]
        self.weights = {name: 1.0 for name in self.components}
        for name, w in (weights or {}).items():
            if name not in self.weights:
                raise ValueError(
                    f"weights: {name!r} is not a component of preset {preset!r}; "
                    f"expected one of {self.components}"
                )
            if not isinstance(w, (int, float)) or not math.isfinite(w):
                raise ValueError(f"weights[{name!r}] must be a finite number, got {w!r}")
            self.weights[name] = float(w)
        if not isinstance(num_threads, int):
            raise TypeError(f"num_threads must be an int, got {type(num_threads).__name__}")
        self.num_threads = num_threads
        if pad_token_id is not None and not isinstance(pad_token_id, int):
            raise TypeError(f"pad_token_id must be an int or None, got {pad_token_id!r}")
        self.pad_token_id = pad_token_id

    def score(
        self,
        completions: Sequence[str],
        answers: Sequence[str],
        datasets: Sequence[str],
        questions: Sequence[str] | None = None,
        completion_ids: Any = None,
    ) -> RewardBatch:
        """Rewards of N completions against their gt answers (N str each) and dataset names."""
        completions = _strings(completions, "completions", None)
        n = len(completions)
        answers = _strings(answers, "answers", n)
        datasets = _strings(datasets, "datasets", n)
        if questions is not None:
            questions = _strings(questions, "questions", n)
        fast = _dispatch.use_fast("score_rewards")
        ids = None if completion_ids is None else pack_completion_ids(completion_ids, n, fast)
        args = (
            completions,
            answers,
            datasets,
            ids,
            self.preset,
            self.pad_token_id,
            self.num_threads,
        )
        scores = None
        if fast:
            # A plain RuleJudge runs inside the compiled pass: no per-sample Python objects.
            rule_judge = type(self.judge) is RuleJudge and _dispatch.use_fast("rule_judge")
            components, judged, predictions, scores = _fast.score_rewards(
                *args, rule_judge=rule_judge
            )
        else:
            for values, name in (
                (completions, "completions"),
                (answers, "answers"),
                (datasets, "datasets"),
            ):
                _check_str_items(values, name)
            components, judged, predictions = reference.score_rewards(*args)
        if scores is not None:  # judged in the core; the questions are still checked
            if questions is not None and len(judged):
                _check_str_items([questions[i] for i in judged.tolist()], "questions")
        elif not len(judged):
            scores = np.zeros(0, dtype=np.float64)
        else:
            index = judged.tolist()
            qs = [""] * len(index) if questions is None else [questions[i] for i in index]
            if questions is not None:
                _check_str_items(qs, "questions")
            gts = [answers[i] for i in index]
            scores = validate_scores(self.judge(qs, gts, predictions), len(index), self.judge)
            components["answer_accuracy"][judged] = (scores > 0).astype(np.float64)
        total = np.zeros(n, dtype=np.float64)
        for name in self.components:
            w = self.weights[name]
            total += components[name] if w == 1.0 else w * components[name]
        return RewardBatch(total, components, judged, scores, predictions)

    def __repr__(self) -> str:
        return f"RewardScorer(preset={self.preset!r}, judge={self.judge!r}, weights={self.weights})"
