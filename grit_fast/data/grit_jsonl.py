"""GRIT JSONL: records, validation that names file, line and field, and image loading.

One record per line (GRIT_SPEC §4)::

    {"question": "What is across from the truck?", "answer": "tv", "image": "000000410123.jpg",
     "width": 640, "height": 354, "bboxs": [[343.87, 94.03, 396.81, 126.06]], "dataset": "vsr"}

``image`` is relative to an image root (or absolute); ``answer`` is cast to str (TallyQA counts are
ints); ``bboxs`` are gt boxes in original-image pixels (evaluation only; optional, default none);
``dataset`` drives the counting reward (``tallyqa``) and skips the judge (``ovd…``). Extra keys are
kept in :attr:`GritRecord.extra`. In-memory records (dicts) may carry a ``PIL.Image`` as ``image``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REQUIRED = ("question", "answer", "image", "width", "height", "dataset")
KNOWN = (*REQUIRED, "bboxs")


class GritDataError(ValueError):
    """A bad record or image: ``source`` (file or "<records>"), ``line`` (1-based), ``field``."""

    def __init__(self, source: str, line: int | None, field: str | None, message: str) -> None:
        where = source if line is None else f"{source}:{line}"
        if field is not None:
            where += f": field {field!r}"
        super().__init__(f"{where}: {message}")
        self.source = source
        self.line = line
        self.field = field


@dataclass
class GritRecord:
    """One validated GRIT sample. ``image`` is a resolved path or an in-memory PIL image."""

    question: str
    answer: str
    image: Any
    width: int
    height: int
    dataset: str
    bboxs: list[list[float]] = field(default_factory=list)
    source: str = "<records>"
    line: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def load_image(self) -> Any:
        """The image as an RGB ``PIL.Image`` (EXIF orientation applied)."""
        return load_image(self.image, self.source, self.line)


def _is_pil(value: Any) -> bool:
    return type(value).__module__.startswith("PIL.") and hasattr(value, "convert")


def load_image(image: Any, source: str = "<records>", line: int | None = None) -> Any:
    """Open ``image`` (a path or PIL image) as RGB with its EXIF orientation applied.

    A missing or unreadable file raises :class:`GritDataError` naming the record and the path.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    if _is_pil(image):
        return ImageOps.exif_transpose(image).convert("RGB")
    path = Path(image)
    if not path.is_file():
        raise GritDataError(source, line, "image", f"image file not found: {path}")
    try:
        with Image.open(path) as opened:
            opened.load()
            return ImageOps.exif_transpose(opened).convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise GritDataError(source, line, "image", f"cannot read image {path}: {exc}") from None


def _positive_int(value: Any, source: str, line: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise GritDataError(
            source, line, name, f"expected a positive integer, got {type(value).__name__}"
        )
    if not math.isfinite(value) or value != int(value) or value <= 0:
        raise GritDataError(source, line, name, f"expected a positive integer, got {value!r}")
    return int(value)


def _boxes(value: Any, source: str, line: int) -> list[list[float]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise GritDataError(
            source,
            line,
            "bboxs",
            f"expected a list of [x1, y1, x2, y2], got {type(value).__name__}",
        )
    boxes = []
    for k, box in enumerate(value):
        ok = isinstance(box, list) and len(box) == 4
        ok = ok and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in box)
        if not ok or not all(math.isfinite(v) for v in box):
            raise GritDataError(
                source, line, f"bboxs[{k}]", f"expected 4 finite numbers, got {box!r}"
            )
        boxes.append([float(v) for v in box])
    return boxes


def validate_record(
    raw: Any, source: str = "<records>", line: int = 0, image_root: str | os.PathLike | None = None
) -> GritRecord:
    """One raw record (a mapping) -> :class:`GritRecord`, or :class:`GritDataError` naming the field."""
    if not isinstance(raw, Mapping):
        raise GritDataError(source, line, None, f"expected a JSON object, got {type(raw).__name__}")
    for name in REQUIRED:
        if name not in raw:
            raise GritDataError(source, line, name, "missing required field")
    question = raw["question"]
    if not isinstance(question, str) or not question.strip():
        raise GritDataError(
            source, line, "question", f"expected a non-empty string, got {question!r}"
        )
    answer = raw["answer"]
    if isinstance(answer, bool) or not isinstance(answer, (str, int, float)):
        raise GritDataError(
            source, line, "answer", f"expected a string or number, got {type(answer).__name__}"
        )
    dataset = raw["dataset"]
    if not isinstance(dataset, str):
        raise GritDataError(
            source, line, "dataset", f"expected a string, got {type(dataset).__name__}"
        )
    image = raw["image"]
    if isinstance(image, (str, os.PathLike)):
        if not str(image):
            raise GritDataError(source, line, "image", "expected a file name, got an empty string")
        image = Path(image_root, image) if image_root is not None else Path(image)
    elif not _is_pil(image):
        raise GritDataError(
            source, line, "image", f"expected a path or PIL image, got {type(image).__name__}"
        )
    return GritRecord(
        question=question,
        answer=str(answer),
        image=image,
        width=_positive_int(raw["width"], source, line, "width"),
        height=_positive_int(raw["height"], source, line, "height"),
        dataset=dataset,
        bboxs=_boxes(raw.get("bboxs"), source, line),
        source=source,
        line=line,
        extra={k: v for k, v in raw.items() if k not in KNOWN},
    )


def _check_image_exists(record: GritRecord) -> None:
    if not _is_pil(record.image) and not Path(record.image).is_file():
        raise GritDataError(
            record.source, record.line, "image", f"image file not found: {record.image}"
        )


def records_from_dicts(
    items: Iterable[Any],
    image_root: str | os.PathLike | None = None,
    source: str = "<records>",
    check_images: bool = True,
) -> list[GritRecord]:
    """Validate in-memory records (dicts or :class:`GritRecord`); ``line`` is the 1-based index."""
    records = []
    for i, item in enumerate(items, 1):
        record = (
            item if isinstance(item, GritRecord) else validate_record(item, source, i, image_root)
        )
        if check_images:
            _check_image_exists(record)
        records.append(record)
    if not records:
        raise GritDataError(source, None, None, "no records")
    return records


def load_grit_jsonl(
    path: str | os.PathLike,
    image_root: str | os.PathLike | None = None,
    check_images: bool = True,
) -> list[GritRecord]:
    """Read and validate a GRIT JSONL file.

    ``image_root`` defaults to the file's directory. Blank lines are skipped. Every error names the
    file, the 1-based line and the field; ``check_images`` also checks that each image file exists
    (opening and decoding happens in :meth:`GritRecord.load_image`).
    """
    path = Path(path)
    source = str(path)
    if not path.is_file():
        raise GritDataError(source, None, None, "data file not found")
    root = path.parent if image_root is None else Path(image_root)
    records = []
    with path.open("rb") as handle:
        for lineno, data in enumerate(handle, 1):
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise GritDataError(source, lineno, None, f"not UTF-8 text: {exc.reason}") from None
            if not text.strip():
                continue
            try:
                raw = json.loads(text)
            except (json.JSONDecodeError, RecursionError) as exc:
                msg = exc.msg if isinstance(exc, json.JSONDecodeError) else "nested too deeply"
                raise GritDataError(source, lineno, None, f"invalid JSON: {msg}") from None
            record = validate_record(raw, source, lineno, root)
            if check_images:
                _check_image_exists(record)
            records.append(record)
    if not records:
        raise GritDataError(source, None, None, "no records")
    return records
