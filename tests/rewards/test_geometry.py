"""Box IoU and grounding IoU (union of boxes vs union of boxes, exact areas)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from grit_fast import _dispatch
from grit_fast.rewards import reference_geometry
from grit_fast.rewards.geometry import box_iou, grounding_iou, grounding_iou_batch


def raster_iou(pred, gt, size):
    """Brute-force IoU on the integer grid (exact for integer boxes inside [0, size))."""
    masks = []
    for boxes in (pred, gt):
        m = np.zeros((size, size), dtype=bool)
        for x1, y1, x2, y2 in boxes:
            x1, x2 = sorted((int(x1), int(x2)))
            y1, y2 = sorted((int(y1), int(y2)))
            m[y1:y2, x1:x2] = True
        masks.append(m)
    union = (masks[0] | masks[1]).sum()
    return (masks[0] & masks[1]).sum() / union if union else 0.0


def test_box_iou_known_values(impl):
    a = np.array([[0, 0, 10, 10], [0, 0, 0, 0], [3, 3, 1, 1]], dtype=np.float64)
    b = np.array([[5, 5, 15, 15], [10, 0, 0, 10], [20, 20, 30, 30], [1, 1, 3, 3]], dtype=np.float64)
    got = box_iou(a, b)
    expected = np.array(
        [[25 / 175, 1.0, 0.0, 4 / 100], [0.0, 0.0, 0.0, 0.0], [0.0, 4 / 100, 0.0, 1.0]]
    )
    assert got.shape == (3, 4) and got.dtype == np.float64
    np.testing.assert_allclose(got, expected, rtol=1e-15, atol=0)


def test_box_iou_empty_and_int_inputs(impl):
    assert box_iou(np.zeros((0, 4)), [[0, 0, 1, 1]]).shape == (0, 1)
    assert box_iou([[0, 0, 1, 1]], []).shape == (1, 0)
    assert box_iou(np.array([[0, 0, 2, 2]], dtype=np.int32), [[1, 1, 2, 2]])[0, 0] == 0.25


@pytest.mark.parametrize(
    ("a", "error", "match"),
    [
        (np.zeros((2, 3)), ValueError, r"a must have shape \(K, 4\)"),
        (np.zeros(4), ValueError, "shape"),
        (np.array([["a", "b", "c", "d"]]), TypeError, "real numbers"),
        (np.array([[0, 0, np.nan, 1]]), ValueError, "a row 0 has a non-finite"),
        (np.array([[0, 0, 1, 1], [0, 0, np.inf, 1]]), ValueError, "a row 1"),
    ],
)
def test_box_iou_bad_input(impl, a, error, match):
    with pytest.raises(error, match=match):
        box_iou(a, np.zeros((1, 4)))


def test_grounding_iou_semantics(impl):
    square = [[0, 0, 10, 10]]
    assert grounding_iou(square, square) == 1.0
    assert grounding_iou([], square) == 0.0
    assert math.isnan(grounding_iou(square, []))
    assert math.isnan(grounding_iou([], []))
    # Inverted corners are reordered.
    assert grounding_iou([[10, 10, 0, 0]], square) == 1.0
    # Non-finite boxes are dropped: all gt dropped -> NaN, all pred dropped -> 0.
    assert math.isnan(grounding_iou(square, [[0, np.nan, 1, 1]]))
    assert grounding_iou([[0, 0, np.inf, 1]], square) == 0.0
    assert grounding_iou([[0, 0, 10, 10], [np.nan] * 4], square) == 1.0
    # Zero-area prediction against a real gt: 0, and both unions empty: 0.
    assert grounding_iou([[5, 5, 5, 9]], square) == 0.0
    assert grounding_iou([[1, 1, 1, 1]], [[2, 2, 2, 5]]) == 0.0


def test_grounding_iou_is_union_not_matching(impl):
    # Two overlapping predictions: union area 175, gt 15x15 covers it.
    assert grounding_iou([[0, 0, 10, 10], [5, 5, 15, 15]], [[0, 0, 15, 15]]) == pytest.approx(
        175 / 225, rel=1e-15
    )
    # A duplicated box changes nothing (a sum of IoUs would).
    once = grounding_iou([[0, 0, 4, 4]], [[2, 2, 6, 6]])
    assert grounding_iou([[0, 0, 4, 4]] * 5, [[2, 2, 6, 6]]) == once == pytest.approx(4 / 28)
    # Gt is a union too: two disjoint gt boxes, predicted one of them.
    assert grounding_iou([[0, 0, 1, 1]], [[0, 0, 1, 1], [5, 5, 6, 6]]) == 0.5


def test_grounding_iou_decimal_coordinates(impl):
    got = grounding_iou([[0.5, 0.25, 1.5, 2.25]], [[1.0, 0.25, 2.0, 2.25]])
    assert got == pytest.approx(1.0 / 3.0, rel=1e-15)


boxes_st = st.lists(st.tuples(*[st.integers(0, 23)] * 4).map(list), min_size=0, max_size=7)


@settings(max_examples=150, deadline=None)
@given(pred=boxes_st, gt=boxes_st.filter(bool))
def test_grounding_iou_matches_rasterised_grid(pred, gt):
    expected = raster_iou(pred, gt, 24)
    with _dispatch.backend("reference"):
        ref = grounding_iou(pred, gt)
    assert ref == pytest.approx(expected, rel=1e-12, abs=1e-15)
    if _dispatch.compiled_module() is not None:
        with _dispatch.backend("fast"):
            assert grounding_iou(pred, gt) == ref


def test_fast_matches_reference_bitwise_on_irregular_batch():
    if _dispatch.compiled_module() is None:
        pytest.skip(f"compiled core unavailable: {_dispatch.compiled_error()}")
    rng = np.random.default_rng(7)
    preds, gts = [], []
    for i in range(257):
        k, m = rng.integers(0, 9), rng.integers(0, 5)
        p = rng.uniform(-50, 1000, size=(k, 4))
        g = rng.uniform(0, 1000, size=(m, 4))
        if i % 13 == 0 and k:
            p[0, rng.integers(4)] = np.nan
        preds.append(p)
        gts.append(g)
    with _dispatch.backend("fast"):
        fast1 = grounding_iou_batch(preds, gts, num_threads=1)
        fast2 = grounding_iou_batch(preds, gts, num_threads=2)
        fast_pair = box_iou(np.concatenate(gts), np.concatenate(gts[:40]))
    ref = reference_geometry.grounding_iou_batch(preds, gts)
    ref_pair = reference_geometry.box_iou(np.concatenate(gts), np.concatenate(gts[:40]))
    np.testing.assert_array_equal(fast1, ref)
    np.testing.assert_array_equal(fast2, ref)
    np.testing.assert_array_equal(fast_pair, ref_pair)
    assert np.isnan(ref).sum() == sum(len(g) == 0 for g in gts)


def test_many_boxes_exact_and_quadratic(impl):
    # 300 overlapping 2x2 squares on a staircase: the sweep (O(n^2 log n)) must stay exact and fast.
    n = 300
    pred = np.array([[i, i, i + 2, i + 2] for i in range(n)], dtype=np.float64)
    assert grounding_iou_batch([pred], [pred.copy()])[0] == 1.0
    shifted = pred + np.array([1, 0, 1, 0])
    # Each staircase covers 3n + 1 unit cells (|x - y| <= 1); shifted by one in x the two share the
    # cells with y - x in {-1, 0}: 2n of them, so IoU = 2n / (2 (3n + 1) - 2n).
    got = grounding_iou(pred, shifted)
    assert got == pytest.approx(2 * n / (4 * n + 2), rel=1e-13)
    assert got == pytest.approx(raster_iou(pred, shifted, n + 3), rel=1e-13)


def test_batch_bad_input(impl):
    with pytest.raises(ValueError, match="lengths 2 and 1"):
        grounding_iou_batch([[], []], [[]])
    with pytest.raises(ValueError, match=r"gts\[1\] must have shape"):
        grounding_iou_batch([[], []], [[], [[1, 2, 3]]])
    with pytest.raises(TypeError, match="preds must be a list"):
        grounding_iou_batch("boxes", [])
    assert grounding_iou_batch([], []).shape == (0,)


def test_compiled_boundary_rejects_bad_offsets():
    module = _dispatch.compiled_module()
    if module is None:
        pytest.skip(f"compiled core unavailable: {_dispatch.compiled_error()}")
    boxes = np.zeros((2, 4))
    with pytest.raises(ValueError, match="end at the number of boxes"):
        module.grounding_iou_batch(boxes, np.array([0, 5]), boxes, np.array([0, 2]))
    with pytest.raises(ValueError, match="non-decreasing"):
        module.grounding_iou_batch(boxes, np.array([0, 3, 2]), boxes, np.array([0, 1, 2]))
    with pytest.raises(TypeError, match="float64"):
        module.box_iou(np.zeros((1, 4), dtype=np.float32), boxes)
    with pytest.raises(ValueError, match="samples"):
        module.grounding_iou_batch(boxes, np.array([0, 2]), boxes, np.array([0, 1, 2]))


any_float = st.floats(allow_nan=True, allow_infinity=True, width=64) | st.sampled_from(
    [0.0, -0.0, 1e-310, 5e-324, 1e150, 1e300, -1e308, 1.7976931348623157e308]
)
ragged = st.lists(st.lists(st.tuples(*[any_float] * 4), max_size=5), max_size=6)


@settings(max_examples=300, deadline=None)
@given(preds=ragged, data=st.data())
def test_fuzz_fast_equals_reference_on_arbitrary_floats(preds, data):
    gts = data.draw(
        st.lists(
            st.lists(st.tuples(*[any_float] * 4), max_size=5),
            min_size=len(preds),
            max_size=len(preds),
        )
    )
    ref = reference_geometry.grounding_iou_batch(preds, gts)
    for g, value in zip(gts, ref, strict=True):
        has_gt = any(all(math.isfinite(v) for v in box) for box in g)
        # NaN exactly when there is no usable gt box; otherwise a number in [0, 1].
        assert math.isnan(value) == (not has_gt)
        if has_gt:
            assert 0.0 <= value <= 1.0
    if _dispatch.compiled_module() is not None:
        with _dispatch.backend("fast"):
            np.testing.assert_array_equal(grounding_iou_batch(preds, gts, num_threads=2), ref)
        finite = [b for p in preds for b in p if all(math.isfinite(v) for v in b)]
        others = [b for g in gts for b in g if all(math.isfinite(v) for v in b)]
        with _dispatch.backend("fast"):
            pair = box_iou(np.array(finite).reshape(-1, 4), np.array(others).reshape(-1, 4))
        expected = reference_geometry.box_iou(
            np.array(finite).reshape(-1, 4), np.array(others).reshape(-1, 4)
        )
        np.testing.assert_array_equal(pair, expected)
        assert not np.isnan(pair).any() and ((pair >= 0) & (pair <= 1)).all()


def test_huge_coordinates_do_not_overflow(impl):
    big = 1e300
    assert grounding_iou([[0, 0, big, big]], [[0, 0, big, big / 2]]) == 0.5
    assert box_iou([[-big, -big, big, big]], [[0, 0, big, big]])[0, 0] == 0.25
    assert grounding_iou([[-1.7e308, 0, 1.7e308, 1]], [[0, 0, 1.7e308, 1]]) == 0.5
