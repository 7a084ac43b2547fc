"""Shared fixtures.

``impl`` runs a test twice: once with every public function forced to its reference twin, once forced
to its fast path (C++ or Triton). Where a fast path cannot run here, the dispatcher raises
FastPathUnavailable and the test is skipped with that reason - or fails when GRIT_FAST_REQUIRE_FAST=1
(set it on machines that have the fast path: CI with the compiled core, a GPU runner).
"""

from __future__ import annotations

import os

import pytest

from grit_fast import _dispatch

REQUIRE_FAST = os.environ.get("GRIT_FAST_REQUIRE_FAST", "0") not in ("", "0")


@pytest.fixture(params=["reference", "fast"])
def impl(request: pytest.FixtureRequest):
    """The backend under test: 'reference' or 'fast'. Public functions dispatch accordingly."""
    with _dispatch.backend(request.param):
        yield request.param


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    try:
        return (yield)
    except _dispatch.FastPathUnavailable as exc:
        if REQUIRE_FAST:
            raise
        pytest.skip(f"fast path unavailable here: {exc.reason}")


def require_triton_interpreter() -> None:
    """Skip (or fail under GRIT_FAST_REQUIRE_FAST=1) unless Triton kernels can run on CPU here."""
    reason = None
    if not _dispatch.triton_installed():
        reason = "triton is not installed"
    elif not _dispatch.triton_interpreter():
        reason = "TRITON_INTERPRET=1 is not set, so Triton kernels cannot run on CPU"
    if reason is not None:
        if REQUIRE_FAST:
            pytest.fail(reason)
        pytest.skip(reason)
