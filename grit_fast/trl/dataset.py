"""GRIT records as a TRL dataset: the conversational prompt our trainer builds, the image, and the
record's fields as columns the reward functions read."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from grit_fast.data import GritRecord, load_grit_jsonl, records_from_dicts
from grit_fast.data.grit_jsonl import GritDataError, _is_pil
from grit_fast.models import FAMILIES, adapter_for

COLUMNS = ("prompt", "image", "answer", "dataset", "question", "bboxs", "width", "height")


def _features() -> Any:
    from datasets import Features, Image, List, Value

    text = Value("string")
    return Features(
        {
            "prompt": List({"role": text, "content": List({"type": text, "text": text})}),
            # decoded on access, EXIF orientation applied, as GritRecord.load_image does
            "image": Image(mode="RGB"),
            "answer": text,
            "dataset": text,
            "question": text,
            "bboxs": List(List(Value("float64"))),
            "width": Value("int64"),
            "height": Value("int64"),
        }
    )


def _image(record: GritRecord) -> Any:
    if _is_pil(record.image):
        return record.load_image()
    path = Path(record.image)
    if not path.is_file():
        raise GritDataError(record.source, record.line, "image", f"image file not found: {path}")
    return str(path)


def grit_dataset(
    path_or_records: str | os.PathLike | Iterable[Any],
    *,
    family: str = "qwen2.5-vl",
    image_root: str | os.PathLike | None = None,
) -> Any:
    """A ``datasets.Dataset`` of GRIT records for ``trl.GRPOTrainer`` (or :class:`GritGRPOTrainer`).

    ``path_or_records``: a GRIT JSONL file (images relative to ``image_root``, default its folder)
    or records (dicts or :class:`~grit_fast.data.GritRecord`; images may be PIL images).
    Columns: ``prompt`` - the conversational GRIT prompt of ``family``'s adapter (the image, then
    ``"\\nQuestion: " + question + GRIT_SUFFIX``; TRL puts the ``image`` into it and applies the
    processor's chat template, giving the prompt :class:`~grit_fast.train.GritTrainer` builds);
    ``image`` (RGB, decoded on access); ``answer``, ``dataset``, ``question``, ``bboxs`` (gt boxes,
    original pixels), ``width``, ``height``. Bad records raise :class:`GritDataError` naming the
    file, line and field.
    """
    from datasets import Dataset

    if family not in FAMILIES:
        raise ValueError(f"family {family!r} is not supported; expected one of {FAMILIES}")
    if isinstance(path_or_records, (str, os.PathLike)):
        records = load_grit_jsonl(path_or_records, image_root=image_root)
    else:
        records = records_from_dicts(path_or_records, image_root=image_root)
    adapter = adapter_for(family, None)
    rows = {name: [] for name in COLUMNS}
    for r in records:
        rows["prompt"].append(adapter.messages(r.question))
        rows["image"].append(_image(r))
        rows["answer"].append(r.answer)
        rows["dataset"].append(r.dataset)
        rows["question"].append(r.question)
        rows["bboxs"].append(r.bboxs)
        rows["width"].append(r.width)
        rows["height"].append(r.height)
    return Dataset.from_dict(rows, features=_features())
