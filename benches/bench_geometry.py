"""Geometry throughput: grounding IoU over an evaluation-sized batch, pairwise box IoU.

    python -m pytest benches/bench_geometry.py --benchmark-group-by=group \
        --benchmark-columns=min,median,mean,ops

Groups:

* ``grounding-iou-10k`` - 10,000 samples, 0-8 predicted and 1-4 gt boxes each (float pixels of a
  640x480 image): the pure-Python/numpy reference (also the baseline) against the compiled batch on 1
  and 2 threads.
* ``box-iou-500x700`` - (500, 4) x (700, 4): numpy broadcasting (the reference) against the compiled
  loop.
"""

from __future__ import annotations

import numpy as np
import pytest

from grit_fast import _dispatch
from grit_fast.rewards import reference_geometry
from grit_fast.rewards.geometry import box_iou, grounding_iou_batch

N = 10_000


def _boxes(rng: np.random.Generator, k: int) -> np.ndarray:
    xy = rng.uniform(0, [640, 480], size=(k, 2))
    wh = rng.uniform(5, 250, size=(k, 2))
    return np.concatenate([xy, xy + wh], axis=1)


@pytest.fixture(scope="module")
def batch() -> tuple[list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(0)
    preds = [_boxes(rng, int(rng.integers(0, 9))) for _ in range(N)]
    gts = [_boxes(rng, int(rng.integers(1, 5))) for _ in range(N)]
    return preds, gts


def _need_compiled() -> None:
    if _dispatch.compiled_module() is None:
        pytest.skip(f"compiled core unavailable: {_dispatch.compiled_error()}")


@pytest.mark.benchmark(group="grounding-iou-10k")
def test_grounding_iou_reference(benchmark, batch, machine):
    benchmark.extra_info.update(machine, samples=N, boxes="0-8 pred, 1-4 gt")
    benchmark.pedantic(reference_geometry.grounding_iou_batch, args=batch, rounds=3, iterations=1)


@pytest.mark.benchmark(group="grounding-iou-10k")
@pytest.mark.parametrize("threads", [1, 2])
def test_grounding_iou_compiled(benchmark, batch, machine, threads):
    _need_compiled()
    benchmark.extra_info.update(machine, samples=N, threads=threads)
    with _dispatch.backend("fast"):
        got = grounding_iou_batch(*batch, num_threads=threads)
        np.testing.assert_array_equal(got, reference_geometry.grounding_iou_batch(*batch))
        benchmark(grounding_iou_batch, *batch, num_threads=threads)


@pytest.fixture(scope="module")
def pairs() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    return _boxes(rng, 500), _boxes(rng, 700)


@pytest.mark.benchmark(group="box-iou-500x700")
def test_box_iou_numpy(benchmark, pairs, machine):
    benchmark.extra_info.update(machine, shapes="(500,4)x(700,4)")
    benchmark(reference_geometry.box_iou, *pairs)


@pytest.mark.benchmark(group="box-iou-500x700")
def test_box_iou_compiled(benchmark, pairs, machine):
    _need_compiled()
    benchmark.extra_info.update(machine, shapes="(500,4)x(700,4)")
    with _dispatch.backend("fast"):
        np.testing.assert_array_equal(box_iou(*pairs), reference_geometry.box_iou(*pairs))
        benchmark(box_iou, *pairs)
