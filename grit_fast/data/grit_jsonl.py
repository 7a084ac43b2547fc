"""GRIT JSONL: records, validation that names file, line and field, and image loading.

One record per line (docs/method.md §4)::

    {"question": "What is across from the truck?", "answer": "tv", "image": "000000410123.jpg",
     "width": 640, "height": 354, "bboxs": [[343.87, 94.03, 396.81, 126.06]], "dataset": "vsr"}

``image`` is relative to an image root (or absolute); ``answer`` is cast to str (TallyQA counts are
ints); ``width``/``height`` are optional (read from the image's header when absent); ``bboxs`` are
gt boxes in original-image pixels (evaluation only; optional, default none); ``dataset`` drives the
counting reward (``tallyqa``) and skips the judge (``ovd…``). Extra keys are kept in
:attr:`GritRecord.extra`. In-memory records (dicts) may carry a ``PIL.Image`` as ``image``.

:func:`load_grit_files` reads several files, each with its own image root, as the original's
comma-separated training files.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REQUIRED = ("question", "answer", "image", "dataset")
KNOWN = (*REQUIRED, "width", "height", "bboxs")


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
    """One validated GRIT sample. ``image`` is a resolved path or an in-memory PIL image;
    ``exif_transpose``: whether :meth:`load_image` turns it upright by its EXIF orientation."""

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
    exif_transpose: bool = True

    def load_image(self) -> Any:
        """The image as an RGB ``PIL.Image`` (EXIF orientation applied unless
        ``exif_transpose`` is false)."""
        return load_image(self.image, self.source, self.line, self.exif_transpose)


def _is_pil(value: Any) -> bool:
    return type(value).__module__.startswith("PIL.") and hasattr(value, "convert")


def load_image(
    image: Any, source: str = "<records>", line: int | None = None, exif_transpose: bool = True
) -> Any:
    """Open ``image`` (a path or PIL image) as RGB, turned upright by its EXIF orientation unless
    ``exif_transpose`` is false (the original GRIT code does not).

    A missing or unreadable file raises :class:`GritDataError` naming the record and the path.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    def upright(picture: Any) -> Any:
        return ImageOps.exif_transpose(picture) if exif_transpose else picture

    if _is_pil(image):
        return upright(image).convert("RGB")
    path = Path(image)
    if not path.is_file():
        raise GritDataError(source, line, "image", f"image file not found: {path}")
    try:
        with Image.open(path) as opened:
            opened.load()
            return upright(opened).convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise GritDataError(source, line, "image", f"cannot read image {path}: {exc}") from None


# EXIF orientations that turn the picture by 90° (its upright width and height swap)
_QUARTER_TURNS = (5, 6, 7, 8)


def image_size(
    image: Any, source: str = "<records>", line: int | None = None, exif_transpose: bool = True
) -> tuple[int, int]:
    """(width, height) of ``image`` (a path or PIL image) as :func:`load_image` returns it, from
    the file's header only (no decoding). Errors name the record and the path."""
    from PIL import Image, UnidentifiedImageError

    def oriented(picture: Any) -> tuple[int, int]:
        width, height = picture.size
        turned = exif_transpose and picture.getexif().get(0x0112) in _QUARTER_TURNS
        return (height, width) if turned else (width, height)

    if _is_pil(image):
        return oriented(image)
    path = Path(image)
    if not path.is_file():
        raise GritDataError(
            source, line, "image", f"image file not found: {path} (needed for width/height)"
        )
    try:
        with Image.open(path) as opened:
            return oriented(opened)
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
    raw: Any,
    source: str = "<records>",
    line: int = 0,
    image_root: str | os.PathLike | None = None,
    exif_transpose: bool = True,
) -> GritRecord:
    """One raw record (a mapping) -> :class:`GritRecord`, or :class:`GritDataError` naming the field.

    A record without ``width``/``height`` (or with them null) gets them from the image's header, as
    :func:`load_image` with ``exif_transpose`` will return it."""
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
    width, height = raw.get("width"), raw.get("height")
    if width is None or height is None:
        read = image_size(image, source, line, exif_transpose)
        width, height = read[0] if width is None else width, read[1] if height is None else height
    width = _positive_int(width, source, line, "width")
    height = _positive_int(height, source, line, "height")
    return GritRecord(
        question=question,
        answer=str(answer),
        image=image,
        width=width,
        height=height,
        dataset=dataset,
        bboxs=_boxes(raw.get("bboxs"), source, line),
        source=source,
        line=line,
        extra={k: v for k, v in raw.items() if k not in KNOWN},
        exif_transpose=exif_transpose,
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
    exif_transpose: bool = True,
) -> list[GritRecord]:
    """Validate in-memory records (dicts or :class:`GritRecord`); ``line`` is the 1-based index."""
    records = []
    for i, item in enumerate(items, 1):
        if isinstance(item, GritRecord):
            record = item
        else:
            record = validate_record(item, source, i, image_root, exif_transpose)
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
    exif_transpose: bool = True,
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
            record = validate_record(raw, source, lineno, root, exif_transpose)
            if check_images:
                _check_image_exists(record)
            records.append(record)
    if not records:
        raise GritDataError(source, None, None, "no records")
    return records


def split_paths(value: Any, name: str) -> list[Any]:
    """A path, a list of paths, or a comma-separated string of paths -> list (None -> [])."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    text = str(value)
    # A comma-separated string, as the original's --dataset_name; a path that exists stays whole.
    if "," in text and not Path(text).exists():
        return [part.strip() for part in text.split(",") if part.strip()]
    if not text.strip():
        raise GritDataError(str(value), None, None, f"{name}: expected a path, got an empty string")
    return [value]


def load_grit_files(
    data: Any,
    image_root: Any = None,
    check_images: bool = True,
    exif_transpose: bool = True,
) -> list[GritRecord]:
    """Records of one or several GRIT JSONL files, in order.

    ``data``: a path, a list of paths, or paths separated by commas (as the original takes its
    training files). ``image_root``: None (each file's directory), one folder for every file, or
    one per file (a list, or comma-separated). Errors name the file and line
    (:class:`GritDataError`).
    """
    files = split_paths(data, "data")
    if not files:
        raise GritDataError("<data>", None, None, "no data files given")
    roots = split_paths(image_root, "image_root")
    if len(roots) == 1:
        roots = roots * len(files)
    elif not roots:
        roots = [None] * len(files)
    elif len(roots) != len(files):
        raise GritDataError(
            ",".join(map(str, files)),
            None,
            None,
            f"{len(files)} data files but {len(roots)} image roots; give one root for all "
            "files or one per file, in the same order",
        )
    records: list[GritRecord] = []
    for path, root in zip(files, roots, strict=True):
        records += load_grit_jsonl(path, root, check_images, exif_transpose)
    return records


def _is_path(item: Any) -> bool:
    return isinstance(item, (str, os.PathLike))


def load_records(
    data: Any, image_root: Any = None, exif_transpose: bool = True
) -> list[GritRecord]:
    """Records from GRIT JSONL file(s) or in memory, whichever ``data`` holds.

    ``data``: a path, several (a list or comma-separated; each file with its own image root, see
    :func:`load_grit_files`), in-memory records (dicts or :class:`GritRecord`), or a list mixing
    paths and records (in order). Errors name the file and line, or the record's position.
    """
    if _is_path(data):
        return load_grit_files(data, image_root, exif_transpose=exif_transpose)
    items = list(data)
    if items and all(_is_path(item) for item in items):
        return load_grit_files(items, image_root, exif_transpose=exif_transpose)
    if not any(_is_path(item) for item in items):
        return records_from_dicts(items, image_root=image_root, exif_transpose=exif_transpose)
    records: list[GritRecord] = []
    for item in items:
        if _is_path(item):
            records += load_grit_files(item, image_root, exif_transpose=exif_transpose)
        else:
            records += records_from_dicts([item], image_root, exif_transpose=exif_transpose)
    return records
