"""Does a model read the image? Held-out loss of correct traces with each sample's own image vs another's.

Generation metrics cannot tell boxes that follow the image from boxes that follow the question
alone. This teacher-forced check can: it scores the same correct completion twice, once after the
sample's own image and once after another sample's image (the question is kept), and reports the
mean negative log-likelihood per token class:

* ``"box"``    - digits inside ``[...]`` (the coordinates);
* ``"answer"`` - tokens after ``<answer>``;
* ``"text"``   - every other token (tags, names, the counts written in the reasoning, the end token).

``other - own`` is how many nats per token the image is worth to that class. A gap of zero means
those tokens ignore the image (the model would write them the same for any picture). Log-probs come
from the project's ``token_logprobs`` (the fused chunked path when it is available), without
gradient; the model's train/eval mode is restored afterwards.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["CLASSES", "image_reliance", "token_classes"]

CLASSES = ("box", "answer", "text")


def token_classes(tokenizer: Any, ids: Sequence[int]) -> list[str]:
    """The class (:data:`CLASSES`) of each token of one completion, read from its decoded text."""
    out: list[str] = []
    text = ""
    for token in ids:
        piece = tokenizer.decode([int(token)])
        inside = text.count("[") > text.count("]")
        if inside and piece.strip().isdigit():
            out.append("box")
        elif "<answer>" in text and piece.strip() and "<|" not in piece:
            out.append("answer")
        else:
            out.append("text")
        text += piece
    return out


def image_reliance(
    model: Any,
    adapter: Any,
    records: Sequence[Any],
    trace: Callable[[Any], str],
    batch_size: int = 8,
    offset: int = 1,
) -> dict[str, dict[str, float]]:
    """``{class: {"own", "other", "gap", "tokens"}}``: mean NLL (nats/token) of ``trace(record)``.

    ``records``: GRIT records with images (``load_image()``); ``trace``: the correct completion of
    a record. Sample ``i`` is also scored after the image of sample ``(i + offset) % n``; pick
    ``offset`` so that the pair asks the same kind of question (the demo's data alternate tasks, so
    2). Classes with no tokens are left out.
    """
    from grit_fast.models.forward import completion_batch, model_inputs, token_logprobs

    n = len(records)
    if n < 2:
        raise ValueError(f"image_reliance needs at least 2 records, got {n}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if offset % n == 0:
        raise ValueError(f"offset {offset} pairs every record with its own image ({n} records)")
    images = [r.load_image() for r in records]
    completions = [trace(r) for r in records]
    sums = {c: {"own": 0.0, "other": 0.0, "tokens": 0} for c in CLASSES}
    was_training = model.training
    model.eval()
    try:
        for start in range(0, n, batch_size):
            rows = range(start, min(n, start + batch_size))
            ids, mask = completion_batch(adapter, [completions[i] for i in rows])
            classes = [
                token_classes(adapter.tokenizer, ids[k, : int(mask[k].sum())].tolist())
                for k in range(len(rows))
            ]
            for label in (label for labels in classes for label in labels):
                sums[label]["tokens"] += 1
            for which, shift in (("own", 0), ("other", offset)):
                prompts = adapter.encode(
                    [records[i].question for i in rows], [images[(i + shift) % n] for i in rows]
                )
                inputs = model_inputs(dict(prompts), ids, mask)
                logp = token_logprobs(model, inputs, ids).tolist()
                for labels, row in zip(classes, logp, strict=True):
                    for label, value in zip(labels, row, strict=False):  # row runs on into padding
                        sums[label][which] -= value
    finally:
        model.train(was_training)
    out = {}
    for label, s in sums.items():
        if s["tokens"]:
            own, other = s["own"] / s["tokens"], s["other"] / s["tokens"]
            out[label] = {"own": own, "other": other, "gap": other - own, "tokens": s["tokens"]}
    return out
