"""Data: GRIT JSONL records and images, and synthetic grounded data for the demo."""

from grit_fast.data.grit_jsonl import (
    GritDataError,
    GritRecord,
    image_size,
    load_grit_files,
    load_grit_jsonl,
    load_image,
    load_records,
    records_from_dicts,
    validate_record,
)

__all__ = [
    "GritDataError",
    "GritRecord",
    "image_size",
    "load_grit_files",
    "load_grit_jsonl",
    "load_image",
    "load_records",
    "records_from_dicts",
    "validate_record",
]
