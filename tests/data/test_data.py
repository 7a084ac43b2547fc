"""GRIT JSONL loading: valid records, errors naming file/line/field, images, fuzzed input."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

Image = pytest.importorskip("PIL.Image")

from grit_fast.data import (  # noqa: E402
    GritDataError,
    load_grit_jsonl,
    load_image,
    records_from_dicts,
)

GOOD = {
    "question": "What is across from the truck?",
    "answer": "tv",
    "image": "a.jpg",
    "width": 64,
    "height": 40,
    "bboxs": [[3.5, 4, 20, 30.25]],
    "dataset": "vsr",
}


@pytest.fixture
def root(tmp_path):
    Image.new("RGB", (64, 40), (200, 10, 10)).save(tmp_path / "a.jpg")
    return tmp_path


def write(path, lines):
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")
    return path


def test_loads_valid_records(root):
    tally = dict(GOOD, answer=3, dataset="tallyqa", bboxs=[], note="kept")
    path = write(root / "d.jsonl", [GOOD, "", tally])
    records = load_grit_jsonl(path)
    assert [r.line for r in records] == [1, 3]
    assert records[0].image == root / "a.jpg" and records[0].bboxs == [[3.5, 4.0, 20.0, 30.25]]
    assert records[1].answer == "3" and records[1].extra == {"note": "kept"}
    image = records[0].load_image()
    assert image.mode == "RGB" and image.size == (64, 40)


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"question": None}, "question", "non-empty string"),
        ({"question": "  "}, "question", "non-empty string"),
        ({"answer": [1]}, "answer", "string or number"),
        ({"answer": True}, "answer", "string or number"),
        ({"width": "64"}, "width", "positive integer"),
        ({"height": 0}, "height", "positive integer"),
        ({"width": 12.5}, "width", "positive integer"),
        ({"bboxs": [[1, 2, 3]]}, "bboxs[0]", "4 finite numbers"),
        ({"bboxs": [[1, 2, 3, float("nan")]]}, "bboxs[0]", "4 finite numbers"),
        ({"bboxs": "1,2,3,4"}, "bboxs", "list of"),
        ({"dataset": 7}, "dataset", "string"),
        ({"image": 5}, "image", "path or PIL image"),
        ({"image": "missing.jpg"}, "image", "image file not found"),
    ],
)
def test_bad_field_names_file_line_and_field(root, change, field, message):
    path = write(root / "d.jsonl", [GOOD, dict(GOOD, **change)])
    with pytest.raises(GritDataError, match=message) as info:
        load_grit_jsonl(path)
    assert (info.value.source, info.value.line, info.value.field) == (str(path), 2, field)
    assert f"d.jsonl:2: field {field!r}" in str(info.value)


@pytest.mark.parametrize("name", ["question", "answer", "image", "dataset"])
def test_missing_field(root, name):
    path = write(root / "d.jsonl", [{k: v for k, v in GOOD.items() if k != name}])
    with pytest.raises(GritDataError, match=f"d.jsonl:1: field '{name}': missing required field"):
        load_grit_jsonl(path)


def test_bad_lines_and_files(root):
    with pytest.raises(GritDataError, match=r"d.jsonl:2: invalid JSON"):
        load_grit_jsonl(write(root / "d.jsonl", [GOOD, "{not json"]))
    with pytest.raises(GritDataError, match=r"d.jsonl:1: expected a JSON object, got list"):
        load_grit_jsonl(write(root / "d.jsonl", ["[1, 2]"]))
    (root / "b.jsonl").write_bytes(json.dumps(GOOD).encode() + b"\n\xff\xfe\n")
    with pytest.raises(GritDataError, match=r"b.jsonl:2: not UTF-8"):
        load_grit_jsonl(root / "b.jsonl")
    with pytest.raises(GritDataError, match="no records"):
        load_grit_jsonl(write(root / "e.jsonl", ["", "  "]))
    with pytest.raises(GritDataError, match="data file not found"):
        load_grit_jsonl(root / "nope.jsonl")


def test_unreadable_image_names_its_path(root):
    (root / "bad.jpg").write_bytes(b"not a picture")
    records = load_grit_jsonl(write(root / "d.jsonl", [dict(GOOD, image="bad.jpg")]))
    with pytest.raises(
        GritDataError, match=r"d.jsonl:1: field 'image': cannot read image .*bad.jpg"
    ):
        records[0].load_image()


def test_image_root_and_in_memory_records(root, tmp_path_factory):
    other = tmp_path_factory.mktemp("elsewhere")
    path = write(other / "d.jsonl", [GOOD])
    assert load_grit_jsonl(path, image_root=root)[0].image == root / "a.jpg"
    picture = Image.new("L", (9, 7))
    records = records_from_dicts([dict(GOOD, image=picture, width=9, height=7)])
    assert records[0].load_image().mode == "RGB"
    with pytest.raises(GritDataError, match=r"<records>:1: field 'image': image file not found"):
        records_from_dicts([GOOD], image_root=other)


def test_exif_orientation_is_applied(tmp_path):
    image = Image.new("RGB", (30, 10), "white")
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    image.save(tmp_path / "r.jpg", exif=exif)
    assert load_image(tmp_path / "r.jpg").size == (10, 30)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.binary(max_size=300))
def test_fuzzed_lines_fail_cleanly(tmp_path, data):
    path = tmp_path / "f.jsonl"
    path.write_bytes(data)
    try:
        load_grit_jsonl(path, check_images=False)
    except GritDataError as exc:
        assert str(path) in str(exc)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=10,
)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from([*GOOD, "x"]), json_values, max_size=8))
def test_fuzzed_records_fail_cleanly(raw):
    try:
        records_from_dicts([raw], check_images=False)
    except GritDataError as exc:
        assert "<records>:1" in str(exc)
