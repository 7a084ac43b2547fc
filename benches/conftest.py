"""Benchmarks run under pytest-benchmark and are not part of the default test run.

    pip install -e ".[bench]"
    python -m pytest benches --benchmark-columns=min,median,mean,ops --benchmark-group-by=group

Each bench groups its implementations side by side, checks they agree once before timing, and records
the shapes and device in ``extra_info``. GPU numbers recorded in benches/RESULTS.md.
"""

from __future__ import annotations

import platform

import pytest


@pytest.fixture
def machine() -> dict[str, str]:
    """Where a benchmark ran, for its extra_info."""
    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    return {
        "machine": platform.machine(),
        "processor": platform.processor() or "?",
        "device": device,
    }
