"""Qwen2.5-VL resize arithmetic and the mapping of model boxes to original-image pixels."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from grit_fast.rewards.coords import qwen_resized_size, to_image_pixels

pil_qwen = pytest.importorskip(
    "transformers.models.qwen2_vl.image_processing_pil_qwen2_vl",
    reason="transformers' Qwen2-VL PIL image processor is needed to compare smart_resize",
)


def transformers_size(width, height, **kw):
    h, w = pil_qwen.smart_resize(height, width, **kw)
    return w, h


@pytest.mark.parametrize(
    ("width", "height"),
    [
        (640, 354),
        (1, 1),
        (27, 28),
        (14, 14),
        (42, 42),
        (3000, 15),
        (15, 2999),
        (448, 448),
        (449, 449),
        (4032, 3024),
        (1920, 1080),
        (601, 398),
        (70, 98),
        (5000, 5000),
    ],
)
def test_resize_matches_transformers_known(width, height):
    assert qwen_resized_size(width, height) == transformers_size(
        width, height, min_pixels=3136, max_pixels=256 * 28 * 28
    )


@settings(max_examples=400, deadline=None)
@given(
    width=st.integers(1, 6000),
    height=st.integers(1, 6000),
    max_tokens=st.sampled_from([64, 256, 1280, 16384]),
)
def test_resize_matches_transformers_many_sizes(width, height, max_tokens):
    kw = {"min_pixels": 3136, "max_pixels": max_tokens * 28 * 28}
    if max(width, height) / min(width, height) > 200:
        with pytest.raises(ValueError, match="aspect ratio"):
            qwen_resized_size(width, height, **kw)
        return
    got = qwen_resized_size(width, height, **kw)
    assert got == transformers_size(width, height, **kw)
    assert got[0] % 28 == 0 and got[1] % 28 == 0


def test_resize_bad_arguments():
    with pytest.raises(ValueError, match="width must be a positive integer"):
        qwen_resized_size(0, 10)
    with pytest.raises(ValueError, match="height"):
        qwen_resized_size(10, 2.5)


def test_qwen_convention_maps_resized_pixels_back():
    # 640x354 resizes to 588x308 under GRIT's settings.
    assert qwen_resized_size(640, 354) == (588, 308)
    boxes = np.array([[0, 0, 588, 308], [294, 154, 300, 160]])
    got = to_image_pixels(boxes, "qwen2.5-vl", (640, 354))
    np.testing.assert_allclose(got[0], [0, 0, 640, 354], rtol=1e-15)
    np.testing.assert_allclose(got[1], [320, 177, 300 * 640 / 588, 160 * 354 / 308], rtol=1e-15)
    # An explicit model frame wins over the derived one.
    np.testing.assert_allclose(
        to_image_pixels([[10, 10, 20, 20]], "qwen2.5-vl", (100, 50), model_size=(200, 100)),
        [[5, 5, 10, 10]],
    )


def test_internvl_and_pixel_conventions():
    np.testing.assert_allclose(
        to_image_pixels([[0, 500, 1000, 250]], "internvl", (640, 480)), [[0, 240, 640, 120]]
    )
    src = np.array([[1.5, 2.5, 3.5, 4.5]])
    out = to_image_pixels(src, "pixels", (10, 10))
    np.testing.assert_array_equal(out, src)
    assert out is not src
    assert to_image_pixels([], "internvl", (10, 10)).shape == (0, 4)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"convention": "qwen"}, "unknown box convention 'qwen'"),
        ({"image_size": (0, 10)}, "image_size must be positive"),
        ({"image_size": 10}, "image_size must be a"),
        ({"model_size": (10, float("nan"))}, "model_size must be positive"),
    ],
)
def test_to_image_pixels_bad_arguments(kwargs, match):
    args = {"boxes": [[1, 2, 3, 4]], "convention": "qwen2.5-vl", "image_size": (10, 10)}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        to_image_pixels(**args)
