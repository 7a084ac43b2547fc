"""Coordinate conventions: from the frame a model writes boxes in to original-image pixels.

* ``"qwen2.5-vl"`` - absolute pixels of the image as resized by the Qwen2.5-VL processor
  (:func:`qwen_resized_size`); mapped back by ``x * W / w``, ``y * H / h`` with ``(W, H)`` the original
  and ``(w, h)`` the resized size.
* ``"internvl"`` - coordinates normalised to 0-1000: ``x * W / 1000``, ``y * H / 1000``.
* ``"pixels"`` - already original-image pixels (copied unchanged).

Boxes are not reordered or clipped here; the geometry functions reorder corners themselves.
"""

from __future__ import annotations

import math

import numpy as np

from grit_fast.rewards._geometry_checks import as_boxes

__all__ = ["CONVENTIONS", "qwen_resized_size", "to_image_pixels"]

CONVENTIONS = ("qwen2.5-vl", "internvl", "pixels")


def qwen_resized_size(
    width: int,
    height: int,
    min_pixels: int = 3136,
    max_pixels: int = 256 * 28 * 28,
    factor: int = 28,
) -> tuple[int, int]:
    """``(width, height)`` of an image after Qwen2.5-VL's ``smart_resize``, exactly.

    Each side is rounded (Python's round-half-even) to a multiple of ``factor``; if the pixel count
    then exceeds ``max_pixels`` both sides are scaled by ``beta = sqrt(W*H / max_pixels)`` and floored
    to multiples of ``factor`` (at least ``factor``); if below ``min_pixels`` they are scaled by
    ``sqrt(min_pixels / (W*H))`` and ceiled. An aspect ratio above 200 is an error, as in
    transformers. Defaults are GRIT's training settings (min 3136, max 256*28*28 pixels).
    """
    for name, value in (("width", width), ("height", height), ("factor", factor)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if max(height, width) / min(height, width) > 200:
        raise ValueError(
            f"absolute aspect ratio must be smaller than 200, got "
            f"{max(height, width) / min(height, width)} for {width}x{height}"
        )
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return int(w_bar), int(h_bar)


def _size(value, name: str) -> tuple[float, float]:
    try:
        w, h = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a (width, height) pair, got {value!r}") from None
    if not (math.isfinite(w) and math.isfinite(h) and w > 0 and h > 0):
        raise ValueError(f"{name} must be positive and finite, got {value!r}")
    return w, h


def to_image_pixels(boxes, convention: str, image_size, model_size=None) -> np.ndarray:
    """Map boxes (K, 4) from a model's frame to original-image pixels -> float64 (K, 4).

    ``image_size`` is the original ``(width, height)``. ``model_size`` is the ``(width, height)`` the
    model saw, used by ``"qwen2.5-vl"`` only; when None it is ``qwen_resized_size(*image_size)`` with
    GRIT's defaults (pass it when the processor used other min/max pixels).
    """
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown box convention {convention!r}; expected one of {CONVENTIONS}")
    boxes = as_boxes(boxes, "boxes")
    width, height = _size(image_size, "image_size")
    if convention == "pixels":
        return boxes.copy()
    if convention == "internvl":
        frame_w = frame_h = 1000.0
    elif model_size is None:
        if width != int(width) or height != int(height):
            raise ValueError(
                f"image_size must be integers to derive model_size, got {image_size!r}"
            )
        frame_w, frame_h = qwen_resized_size(int(width), int(height))
    else:
        frame_w, frame_h = _size(model_size, "model_size")
    scale = np.array([width / frame_w, height / frame_h, width / frame_w, height / frame_h])
    return boxes * scale
