"""Pure-Python twins of the compiled trace parser and reward components.

These are the ground truth the C++ core (``grit_fast._C``) is tested against, the fallback where it
is unavailable, and the baseline of ``benches/bench_rewards.py``. The official components port the
released GRIT reward functions line by line, quirks included (docs/method.md §2):

* Python ``re`` semantics: ``\\d`` is any Unicode decimal digit, ``\\b``/``\\w`` use Unicode word
  characters, ``\\s`` and ``str.split()`` use Unicode whitespace;
* tags for ``think_format`` are searched in the text after the previous tag's *last* occurrence;
* BLEU-1 is NLTK's ``sentence_bleu(..., weights=(1, 0, 0, 0))`` without smoothing, computed the way
  NLTK computes it (``bp * exp(fsum(log p1))``), so the floats are bit-identical;
* the repetition reward compares each 8-gram with the one right after it, at word level over
  ``text.split()`` and at token level over the ids cut at the first pad id.

Deviations from the released code, all following docs/method.md §2: the BLEU term is weighted 0.1; the box
pattern is ``\\b\\d+,\\s*\\d+,\\s*\\d+,\\s*\\d+\\b``; the tallyqa count bonus looks at each sample's own
dataset (the released code looked at the batch's first); a tallyqa answer that ``int()`` rejects
gets no count bonus instead of crashing; without ``completion_ids`` the token factor is 1 (with
them, fewer than 16 ids after the cut give 0.5, as released).
"""

from __future__ import annotations

import math
import re
import sys
from collections import Counter
from collections.abc import Sequence

import numpy as np

from grit_fast.rewards.presets import (
    BLEU_WEIGHT,
    COMPONENTS,
    COUNTING_DATASETS,
    NGRAM,
    OFFICIAL_BOX_PATTERN,
    PAD_TOKEN_ID,
    TAGS,
)
from grit_fast.rewards.results import Trace

_NON_ALNUM = re.compile(r"[^a-zA-Z0-9\s]")

# Structured boxes: four ASCII numbers separated by commas (ASCII blanks around them). The look-around
# keeps a box from starting inside a word or number and from ending inside one.
_NUM = r"-?[0-9]+(?:\.[0-9]+)?"
_SEP = r"[ \t\n\r\f\v]*,[ \t\n\r\f\v]*"
STRUCTURED_BOX_PATTERN = re.compile(
    rf"(?<![A-Za-z0-9_.])({_NUM}){_SEP}({_NUM}){_SEP}({_NUM}){_SEP}({_NUM})(?![A-Za-z0-9_]|\.[0-9])"
)
_LABEL_PATTERN = re.compile(r'"label"[ \t\n\r\f\v]*:[ \t\n\r\f\v]*"([^"]*)"')
_BLANKS = " \t\n\r\f\v"


# ---------------------------------------------------------------------------------------------------
# parsing


def _section(text: str, open_tag: str, close_tag: str, stops: tuple[str, ...]) -> str | None:
    """Text after the first ``open_tag`` up to the next ``close_tag``, else the next of ``stops``."""
    start = text.find(open_tag)
    if start < 0:
        return None
    start += len(open_tag)
    end = text.find(close_tag, start)
    if end < 0:
        ends = [e for e in (text.find(s, start) for s in stops) if e >= 0]
        end = min(ends) if ends else len(text)
    return text[start:end]


def _boxes(text: str, begin: int, end: int) -> tuple[list[list[float]], list[list[int]], list]:
    """Structured boxes in ``text[begin:end]``: values, character spans and labels."""
    values: list[list[float]] = []
    spans: list[list[int]] = []
    labels: list[str | None] = []
    matches = list(STRUCTURED_BOX_PATTERN.finditer(text, begin, end))
    for k, m in enumerate(matches):
        values.append([float(m.group(g)) for g in range(1, 5)])
        s, e = m.start(), m.end()
        # A bracket pair around the numbers belongs to the box's span.
        ls = s
        while ls > begin and text[ls - 1] in _BLANKS:
            ls -= 1
        re_ = e
        while re_ < end and text[re_] in _BLANKS:
            re_ += 1
        if ls > begin and re_ < end:
            pair = text[ls - 1] + text[re_]
            if pair in ("[]", "()"):
                s, e = ls - 1, re_ + 1
        spans.append([s, e])
        # The label is the first "label": "..." after the box, before the next box or brace.
        limit = matches[k + 1].start() if k + 1 < len(matches) else end
        for brace in ("{", "}"):
            b = text.find(brace, m.end(), limit)
            if b >= 0:
                limit = b
        at = text.find('"label"', m.end(), limit)
        label = None
        if at >= 0:
            lm = _LABEL_PATTERN.match(text, at, limit)
            if lm is not None:
                label = lm.group(1)
        labels.append(label)
    return values, spans, labels


def _array(rows: list, width: int, dtype) -> np.ndarray:
    return np.asarray(rows, dtype=dtype).reshape(len(rows), width)


def parse_trace(text: str) -> Trace:
    """Reference of :func:`grit_fast.parse_trace`: sections, tags and boxes of one completion."""
    if not isinstance(text, str):
        raise TypeError(f"parse_trace expects a str, got {type(text).__name__}")
    think = _section(text, "<think>", "</think>", ("<rethink>", "<answer>"))
    rethink = _section(text, "<rethink>", "</rethink>", ("<answer>",))
    answer_start = text.find("<answer>")
    answer = answer_begin = answer_end = None
    if answer_start >= 0:
        answer_begin = answer_start + len("<answer>")
        answer_end = text.find("</answer>", answer_begin)
        if answer_end < 0:
            answer_end = len(text)
        answer = text[answer_begin:answer_end]
    rethink_at = text.find("<rethink>")
    reasoning_end = len(text) if rethink_at < 0 else rethink_at
    values, spans, labels = _boxes(text, 0, reasoning_end)
    if answer is None:
        a_values, a_spans, a_labels = [], [], []
    else:
        a_values, a_spans, a_labels = _boxes(text, answer_begin, answer_end)
    counts = {tag: text.count(tag) for tag in TAGS}
    order = tuple(sorted((t for t in TAGS if counts[t]), key=text.find))
    return Trace(
        think=think,
        rethink=rethink,
        answer=answer,
        boxes=_array(values, 4, np.float64),
        spans=_array(spans, 2, np.int64),
        labels=tuple(labels),
        answer_boxes=_array(a_values, 4, np.float64),
        answer_spans=_array(a_spans, 2, np.int64),
        tag_counts=counts,
        tag_order=order,
        official_box_count=len(OFFICIAL_BOX_PATTERN.findall(text[:reasoning_end])),
        answer_labels=tuple(a_labels),
    )


def parse_traces(texts: Sequence[str], num_threads: int = 0) -> list[Trace]:
    """Reference of :func:`grit_fast.parse_traces` (``num_threads`` is accepted and ignored)."""
    return [parse_trace(t) for t in texts]


# ---------------------------------------------------------------------------------------------------
# reward components (preset "official"), one sample at a time


def bleu1(reference: list[str], hypothesis: list[str]) -> float:
    """NLTK ``sentence_bleu([reference], hypothesis, weights=(1, 0, 0, 0))``, no smoothing.

    p1 = sum_w min(c_hyp(w), c_ref(w)) / max(1, |hyp|); BP = 1 if |hyp| > |ref|, else
    exp(1 - |ref|/|hyp|); BLEU-1 = BP * exp(log p1), and 0 when no unigram matches.
    """
    ref_counts = Counter(reference)
    matches = sum(min(c, ref_counts[w]) for w, c in Counter(hypothesis).items())
    if matches == 0:
        return 0.0
    c, r = len(hypothesis), len(reference)
    bp = 1.0 if c > r else math.exp(1 - r / c)
    return bp * math.exp(math.fsum([math.log(matches / max(1, c))]))


def _bleu_tokens(text: str) -> list[str]:
    return _NON_ALNUM.sub(" ", text).lower().split()


def answer_bleu(completion: str, answer: str) -> float:
    """0.1 x BLEU-1 of everything after the first ``<answer>`` against the gt answer."""
    if "<answer>" not in completion:
        return 0.0
    predicted = completion.split("<answer>", 1)[-1]
    return (0.0 + bleu1(_bleu_tokens(answer), _bleu_tokens(predicted))) * BLEU_WEIGHT


def answer_format(completion: str) -> float:
    """0.25 when ``<answer>`` occurs, 0.5 when it occurs exactly once."""
    reward = 0.0
    if "<answer>" in completion:
        reward += 1.0
        if len(completion.split("<answer>")) == 2:
            reward += 1.0
    return reward / 1 / 2 * 0.5


def think_format(completion: str) -> float:
    """Tags found in order, each after the previous one's last occurrence, plus a content check."""
    keys = ("<think>", "</think>", "<rethink>", "</rethink>")
    reward = 0.0
    rest = completion
    for key in keys:
        if key in rest:
            reward += 1.0
            rest = rest.split(key)[-1]
    if reward == len(keys):
        inside = completion.split("<think>")[-1].split("</think>")[0].strip()
        if len(inside) > 1 and len(_NON_ALNUM.sub(" ", inside).split(" ")) > 1:
            reward += 1.0
    return reward / (len(keys) + 1) * 0.5


def python_int(text: str) -> int | None:
    """``int(text)``, or None where Python's ``int`` raises ValueError."""
    try:
        return int(text)
    except ValueError:
        return None


def official_box_count(completion: str) -> int:
    """Matches of the official box pattern before the first ``<rethink>``."""
    return len(OFFICIAL_BOX_PATTERN.findall(completion.split("<rethink>")[0]))


def grounding_format(completion: str, answer: str, dataset: str) -> float:
    """+0.5 for a box before ``<rethink>``; +1 on tallyqa when the box count equals int(answer)."""
    if "<rethink>" not in completion:
        return 0.0
    count = official_box_count(completion)
    reward = 0.0
    if count > 0:
        reward += 0.5
    if dataset == "tallyqa" and python_int(answer) == count:
        reward += 1
    return reward


def _repeat_score(seq: Sequence, last_start: int) -> float:
    total = repeats = 0
    for j in range(last_start):
        total += 1
        if tuple(seq[j : j + NGRAM]) == tuple(seq[j + NGRAM : j + 2 * NGRAM]):
            repeats += 1
    return 1.0 - repeats / total if total > 0 else 1.0


def repetition(completion: str, ids: Sequence[int] | None, pad_token_id: int | None) -> float:
    """(s_tok - (1 - s_word)) / 2 in [-0.5, 0.5]; each s is 1 - (repeated 8-gram pairs / pairs).

    0.5 outright for fewer than 8 words, or for fewer than 16 ids left after the cut at the first
    pad: the released code returns there before the word factor is applied.
    """
    words = completion.split()
    if len(words) < NGRAM:
        return 0.5
    # The released loop runs to len - 8, so its last pairs compare against a short tail.
    word_score = _repeat_score(words, len(words) - NGRAM)
    token_score = 1.0
    if ids is not None:
        ids = list(ids)
        if pad_token_id is not None and pad_token_id in ids:
            ids = ids[: ids.index(pad_token_id)]
        if len(ids) < 2 * NGRAM:
            return 0.5
        token_score = _repeat_score(ids, len(ids) - 2 * NGRAM + 1)
    return (token_score - (1 - word_score)) * 0.5


def needs_judge(completion: str, dataset: str) -> bool:
    """Whether the judge scores this sample (an ``<answer>`` and a dataset that is not ``ovd``)."""
    return "<answer>" in completion and "ovd" not in dataset


def predicted_answer(completion: str) -> str:
    """The text after the first ``<answer>`` up to the next ``</answer>`` (or the end)."""
    return completion.split("<answer>", 1)[-1].split("</answer>")[0]


def _paper_format(completion: str) -> float:
    think = completion.find("<think>")
    think_end = completion.find("</think>", think + 7) if think >= 0 else -1
    reward = 0.0
    if think_end >= 0:
        reward += 0.5
        rethink = completion.find("<rethink>", think_end + 8)
        if rethink >= 0 and completion.find("</rethink>", rethink + 9) >= 0:
            reward += 0.5
    if official_box_count(completion) > 0:
        reward += 0.5
    return reward


def _paper_count(completion: str, answer: str, dataset: str) -> float:
    if dataset not in COUNTING_DATASETS:
        return 0.0
    return 0.5 if python_int(answer) == official_box_count(completion) else 0.0


# ---------------------------------------------------------------------------------------------------
# batch entry point (same signature as the compiled one)


def score_rewards(
    completions: Sequence[str],
    answers: Sequence[str],
    datasets: Sequence[str],
    completion_ids: tuple[np.ndarray, np.ndarray] | None = None,
    preset: str = "official",
    pad_token_id: int | None = PAD_TOKEN_ID,
    num_threads: int = 0,
) -> tuple[dict[str, np.ndarray], np.ndarray, list[str]]:
    """Every judge-free component of ``preset``, and what the judge must see.

    Returns ``(components, judge_index, predictions)``: ``components`` maps each component name of
    the preset to a float64 array (N,), ``answer_accuracy`` left at 0; ``judge_index`` (J,) int64 are
    the samples the judge scores, ``predictions`` their predicted answers. ``completion_ids`` is
    ``(flat, offsets)``: int64 (T,) and (N + 1,), sample i's ids being ``flat[offsets[i]:offsets[i+1]]``.
    ``num_threads`` is accepted and ignored.
    """
    n = len(completions)
    names = COMPONENTS[preset]
    out = {name: np.zeros(n, dtype=np.float64) for name in names}
    judge_index = []
    for i in range(n):
        c, a, d = completions[i], answers[i], datasets[i]
        if preset == "official":
            out["answer_bleu"][i] = answer_bleu(c, a)
            out["answer_format"][i] = answer_format(c)
            ids = None
            if completion_ids is not None:
                flat, offsets = completion_ids
                ids = flat[offsets[i] : offsets[i + 1]].tolist()
            out["repetition"][i] = repetition(c, ids, pad_token_id)
            out["grounding_format"][i] = grounding_format(c, a, d)
            out["think_format"][i] = think_format(c)
        else:
            out["format"][i] = _paper_format(c)
            out["count"][i] = _paper_count(c, a, d)
            out["answer_bleu"][i] = answer_bleu(c, a)
        if needs_judge(c, d):
            judge_index.append(i)
    predictions = [predicted_answer(completions[i]) for i in judge_index]
    return out, np.asarray(judge_index, dtype=np.int64), predictions


def int_max_str_digits() -> int:
    """Python's limit on digits in ``int(str)`` (0 = none); the compiled parser honours it."""
    getter = getattr(sys, "get_int_max_str_digits", None)
    return 0 if getter is None else getter()
