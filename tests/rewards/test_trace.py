"""Trace parsing: sections, tags, boxes in every surface form, spans, labels; compiled == reference."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import grit_fast
from grit_fast import _dispatch
from grit_fast.rewards import reference
from grit_fast.rewards.trace import Trace, parse_trace, parse_traces


def boxes_of(text: str) -> list[list[float]]:
    return parse_trace(text).boxes.tolist()


def test_sections_of_a_well_formed_trace(impl):
    t = parse_trace("<think> look </think>\n<rethink> so </rethink>\n<answer> 3 </answer> tail")
    assert (t.think, t.rethink, t.answer) == (" look ", " so ", " 3 ")
    assert t.well_formed
    assert t.tag_counts == {tag: 1 for tag in grit_fast.rewards.trace.TAGS}


def test_sections_of_truncated_and_garbled_traces(impl):
    t = parse_trace("<think> never closed <rethink> also open <answer> 42")
    assert (t.think, t.rethink, t.answer) == (" never closed ", " also open ", " 42")
    assert not t.well_formed
    t = parse_trace("plain text")
    assert (t.think, t.rethink, t.answer) == (None, None, None)
    assert t.tag_order == () and t.boxes.shape == (0, 4) and t.spans.shape == (0, 2)
    t = parse_trace("<answer>a</answer><think>b</think><answer>c")
    assert t.answer == "a" and t.tag_counts["<answer>"] == 2
    assert t.tag_order == ("<answer>", "</answer>", "<think>", "</think>")


@pytest.mark.parametrize(
    ("text", "boxes"),
    [
        ("[10, 20, 30, 40]", [[10, 20, 30, 40]]),
        ("(10,20,30,40)", [[10, 20, 30, 40]]),
        ('{"bbox_2d": [10, 20, 30, 40], "label": "cup"}', [[10, 20, 30, 40]]),
        ("bbox_2d_3: 380, 209, 453, 293", [[380, 209, 453, 293]]),
        ("[[1,2,3,4],[5,6,7,8]]", [[1, 2, 3, 4], [5, 6, 7, 8]]),
        ("1,2,3,4,5,6,7,8", [[1, 2, 3, 4], [5, 6, 7, 8]]),
        ("[0.5, 1.25, 3, 4.0]", [[0.5, 1.25, 3, 4]]),
        ("[-5, 2, 3, 4]", [[-5, 2, 3, 4]]),
        ("[1 ,\n 2 , 3,4]", [[1, 2, 3, 4]]),
        ("x1,2,3,4", []),  # glued to a word
        ("1,2,3,4x", []),
        ("1,2,3,4.5.6", []),
        ("1,2,3", []),
        ("1,2,3,4,5", [[1, 2, 3, 4]]),
        ("٣,٤,٥,٦", []),  # structured boxes read ASCII numbers only
        ("[1, 2, 3, 4] <rethink> [5, 6, 7, 8]", [[1, 2, 3, 4]]),
    ],
)
def test_box_surface_forms(impl, text, boxes):
    assert boxes_of(text) == boxes


def test_spans_labels_and_answer_boxes(impl):
    text = (
        '<think> é {"bbox_2d": [1, 2, 3, 4], "label": "red cup"}, and ( 5,6,7,8 ) then '
        '{"bbox_2d": [9,10,11,12]} {"label": "late"} </think><rethink>[0,0,1,1]</rethink>'
        '<answer>[100, 200, 300, 400], {"bbox_2d": [5, 6, 7, 8], "label": "dog"}</answer>'
    )
    t = parse_trace(text)
    assert t.boxes.tolist() == [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12]]
    assert [text[s:e] for s, e in t.spans.tolist()] == [
        "[1, 2, 3, 4]",
        "( 5,6,7,8 )",
        "[9,10,11,12]",
    ]
    assert t.labels == ("red cup", None, None)
    assert t.answer_boxes.tolist() == [[100, 200, 300, 400], [5, 6, 7, 8]]
    assert [text[s:e] for s, e in t.answer_spans.tolist()] == [
        "[100, 200, 300, 400]",
        "[5, 6, 7, 8]",
    ]
    assert t.answer_labels == (None, "dog")
    assert t.boxes.dtype == np.float64 and t.spans.dtype == np.int64


def test_icl_example_labels(impl):
    text = (
        '{\n  "bbox_2d": [142, 314, 299, 447],\n  "label": "chair",\n'
        '  "bbox_2d": [0, 439, 58, 531],\n  "label": "stool"\n}'
    )
    t = parse_trace(text)
    assert t.labels == ("chair", "stool") and len(t.boxes) == 2


def test_official_box_count_uses_the_released_pattern(impl):
    t = parse_trace("١,٢,٣,٤ and 1.5,2,3,4 and [1,2,3,4]<rethink>[1,2,3,4]")
    assert t.official_box_count == 3
    assert len(t.boxes) == 2  # '1.5,2,3,4' and '[1,2,3,4]'


def test_huge_numbers_are_read_like_float(impl):
    big = "9" * 400
    t = parse_trace(f"[{big}, 0.{'0' * 400}1, 1e5, 2]")
    assert t.boxes.shape == (0, 4)  # '1e5' is not a number here
    t = parse_trace(f"[{big}, 0.{'0' * 330}1, 3, 2]")
    assert t.boxes.tolist() == [[float(big), float("0." + "0" * 330 + "1"), 3.0, 2.0]]


def test_parse_traces_batch_and_threads():
    texts = [f"<think>[{i}, {i + 1}, 3, 4]</think><answer>{i}" for i in range(100)]
    want = reference.parse_traces(texts)
    for threads in (1, 2, 3):
        with _dispatch.backend("auto"):
            assert parse_traces(texts, num_threads=threads) == want


def test_bad_arguments(impl):
    with pytest.raises(TypeError, match="expects a str"):
        parse_trace(b"bytes")
    with pytest.raises(TypeError, match=r"texts\[1\] must be a str"):
        parse_traces(["ok", 3])
    with pytest.raises(TypeError, match="got one str"):
        parse_traces("abc")


def test_public_names():
    assert grit_fast.parse_trace is parse_trace and grit_fast.Trace is Trace


PIECES = st.sampled_from(
    [
        "<think>", "</think>", "<rethink>", "</rethink>", "<answer>", "</answer>", "[", "]", "(",
        ")", "{", "}", ",", ", ", " ", "\n", "-", ".", "_", "x", '"label"', ": ", '"', '"cup"',
        '"bbox_2d": ', "é", "٣", "\ud800", "\x00", "💡", "\u2003",
        '{"bbox_2d": [1, 2, 3, 4], "label": "cup"}',
    ]
)  # fmt: skip
NUMBERS = st.one_of(st.integers(-20, 2000).map(str), st.floats(0, 1000).map(lambda f: f"{f:.2f}"))
TEXTS = st.lists(st.one_of(PIECES, NUMBERS, st.text(max_size=3)), max_size=40).map("".join)


@pytest.mark.skipif(_dispatch.compiled_module() is None, reason="grit_fast._C is not built")
@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts=st.lists(TEXTS, min_size=1, max_size=5))
def test_compiled_equals_reference(texts):
    with _dispatch.backend("reference"):
        want = parse_traces(texts)
    with _dispatch.backend("fast"):
        got = parse_traces(texts)
    for w, g in zip(want, got, strict=True):
        assert g == w, (w, g)
