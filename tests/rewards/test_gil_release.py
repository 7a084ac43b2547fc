"""The compiled batch calls release the GIL: a Python thread keeps running while they work.

A background thread records the longest pause between two of its loop iterations while the main
thread makes one call. A call that held the GIL throughout would stall it for about the whole call;
a pathological regex (``re`` never releases the GIL) shows that the probe sees such a stall here.
"""

from __future__ import annotations

import re
import threading
import time

import numpy as np
import pytest

from grit_fast import _dispatch

pytestmark = pytest.mark.skipif(
    _dispatch.compiled_module() is None, reason="grit_fast._C is not built"
)


def longest_stall(call) -> tuple[float, float]:
    """(longest pause of a spinning Python thread during ``call()``, duration of the call)."""
    stop = threading.Event()
    started = threading.Event()
    worst = [0.0]

    def spin() -> None:
        last = time.perf_counter()
        started.set()
        while not stop.is_set():
            now = time.perf_counter()
            worst[0] = max(worst[0], now - last)
            last = now

    thread = threading.Thread(target=spin, daemon=True)
    thread.start()
    started.wait()
    begin = time.perf_counter()
    call()
    elapsed = time.perf_counter() - begin
    stop.set()
    thread.join()
    return worst[0], elapsed


def best_of(call, tries: int = 3) -> tuple[float, float]:
    """The run whose stall is the smallest share of its call (other jobs on a shared CPU add noise)."""
    return min((longest_stall(call) for _ in range(tries)), key=lambda r: r[0] / r[1])


def _check(call) -> None:
    with _dispatch.backend("fast"):
        call()  # warm up (imports, thread pool)
        stall, elapsed = best_of(call)
    assert elapsed > 0.1, f"the workload is too small to tell ({elapsed:.3f} s)"
    assert stall < 0.5 * elapsed, f"a Python thread stalled {stall:.3f} s of a {elapsed:.3f} s call"


def test_probe_sees_a_call_that_holds_the_gil():
    stall, elapsed = longest_stall(lambda: re.fullmatch(r"(a+)+b", "a" * 22))
    assert elapsed > 0.05 and stall > 0.8 * elapsed


TEXT = "<think> the cup [10, 20, 30, 40] and 1,2,3,4,5 " * 40_000 + "</think><rethink> x </rethink>"


def test_parse_traces_releases_the_gil():
    from grit_fast import parse_traces

    _check(lambda: parse_traces([TEXT] * 16, num_threads=1))


def test_score_releases_the_gil():
    from grit_fast import RewardScorer

    scorer = RewardScorer(num_threads=1)
    _check(lambda: scorer.score([TEXT + "<answer> 2"] * 64, ["2"] * 64, ["tallyqa"] * 64))


def test_grounding_iou_batch_releases_the_gil():
    from grit_fast import grounding_iou_batch

    rng = np.random.default_rng(0)
    corners = rng.uniform(0, 1000, (8, 1200, 2))
    boxes = np.concatenate([corners, corners + rng.uniform(1, 200, (8, 1200, 2))], axis=2)
    _check(lambda: grounding_iou_batch(list(boxes[:4]), list(boxes[4:]), num_threads=1))
