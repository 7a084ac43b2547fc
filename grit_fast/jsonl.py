"""JSON Lines files: one JSON object per line (data, predictions, metrics).

:func:`read_jsonl` names the file and line of anything it cannot read, in the caller's error type;
:func:`write_jsonl` replaces the file atomically (a temporary file renamed over it).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["read_jsonl", "write_jsonl"]


def read_jsonl(
    path: str | os.PathLike, error: type[Exception] = ValueError, what: str = "file"
) -> list[dict[str, Any]]:
    """The objects of a JSONL file, blank lines skipped. A missing file, invalid JSON or a line that
    is not an object raises ``error`` naming the file (``what`` says what kind) and the line."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: {what} not found")
    rows = []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise error(f"{path}:{lineno}: invalid JSON: {exc.msg}") from None
            if not isinstance(row, dict):
                raise error(f"{path}:{lineno}: expected a JSON object per line")
            rows.append(row)
    return rows


def write_jsonl(path: str | os.PathLike, records: Iterable[Mapping[str, Any]]) -> None:
    """Write records atomically (a temporary file renamed over ``path``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False, allow_nan=False) + "\n")
    os.replace(tmp, path)
