"""Several training files, each with its own image root (the original takes comma-separated files),
and width/height read from the image when a record leaves them out."""

from __future__ import annotations

import json

import pytest

Image = pytest.importorskip("PIL.Image")

from grit_fast.data import (  # noqa: E402
    GritDataError,
    image_size,
    load_grit_files,
    load_grit_jsonl,
    load_records,
    records_from_dicts,
)

RECORD = {"question": "How many?", "answer": 2, "image": "p.png", "dataset": "tallyqa"}


def write(path, lines):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")
    return path


@pytest.fixture
def two_sets(tmp_path):
    """vsr/train.jsonl with images under imgs_vsr/, tally/train.jsonl with images under imgs_tally/
    (a different picture size in each, so a record resolved against the wrong root shows)."""
    for name, size in (("vsr", (31, 17)), ("tally", (12, 45))):
        (tmp_path / f"imgs_{name}").mkdir()
        Image.new("RGB", size, "white").save(tmp_path / f"imgs_{name}" / "p.png")
        write(tmp_path / name / "train.jsonl", [dict(RECORD, dataset=name), RECORD])
    return tmp_path


def test_each_file_has_its_own_image_root(two_sets):
    files = [two_sets / "vsr" / "train.jsonl", two_sets / "tally" / "train.jsonl"]
    roots = [two_sets / "imgs_vsr", two_sets / "imgs_tally"]
    for data, image_root in (
        (files, roots),
        (",".join(map(str, files)), ",".join(map(str, roots))),  # as the original takes them
    ):
        records = load_grit_files(data, image_root)
        assert [r.dataset for r in records] == ["vsr", "tallyqa", "tally", "tallyqa"]
        assert [r.source for r in records] == [str(f) for f in files for _ in range(2)]
        assert [r.image.parent for r in records] == [r for r in roots for _ in range(2)]
        assert [(r.width, r.height) for r in records] == [(31, 17)] * 2 + [(12, 45)] * 2


def test_one_root_for_every_file_or_each_file_s_folder(two_sets):
    files = [two_sets / "vsr" / "train.jsonl", two_sets / "tally" / "train.jsonl"]
    shared = load_grit_files(files, two_sets / "imgs_vsr")
    assert {r.image for r in shared} == {two_sets / "imgs_vsr" / "p.png"}
    with pytest.raises(GritDataError, match=r"train.jsonl:1: field 'image': image file not found"):
        load_grit_files(files)  # default root: each file's own folder, which has no p.png
    with pytest.raises(GritDataError, match="2 data files but 3 image roots"):
        load_grit_files(files, [two_sets] * 3)
    with pytest.raises(GritDataError, match="no data files"):
        load_grit_files([])


def test_load_records_takes_paths_records_or_both(two_sets):
    """What the trainer and the evaluator accept as data: a path, comma-separated paths, a list of
    paths (each with its root), in-memory records, or a list mixing paths and records in order."""
    files = [two_sets / "vsr" / "train.jsonl", two_sets / "tally" / "train.jsonl"]
    roots = [two_sets / "imgs_vsr", two_sets / "imgs_tally"]
    joined = ",".join(map(str, files)), ",".join(map(str, roots))
    for data, image_root in ((files, roots), joined, (tuple(files), roots)):
        got = load_records(data, image_root)
        assert [r.dataset for r in got] == ["vsr", "tallyqa", "tally", "tallyqa"]
    one = load_records(str(files[0]), roots[0])
    assert [r.source for r in one] == [str(files[0])] * 2
    memory = dict(RECORD, image=str(roots[1] / "p.png"))
    mixed = load_records([files[0], memory], roots[0])
    assert [r.source for r in mixed] == [str(files[0])] * 2 + ["<records>"]
    assert load_records([memory])[0].source == "<records>"
    with pytest.raises(GritDataError, match=r"<records>:1: field 'question'"):
        load_records([{k: v for k, v in memory.items() if k != "question"}])


def test_a_bad_record_in_the_second_file_names_that_file_and_line(two_sets):
    bad = write(two_sets / "tally" / "bad.jsonl", [RECORD, RECORD, dict(RECORD, width=-4)])
    with pytest.raises(GritDataError) as info:
        load_grit_files([two_sets / "vsr" / "train.jsonl", bad], two_sets / "imgs_tally")
    assert (info.value.source, info.value.line, info.value.field) == (str(bad), 3, "width")
    assert "bad.jsonl:3: field 'width': expected a positive integer, got -4" in str(info.value)


def test_width_and_height_are_read_from_the_image_when_absent(tmp_path):
    Image.new("RGB", (31, 17)).save(tmp_path / "p.png")
    path = write(
        tmp_path / "d.jsonl",
        [
            RECORD,
            dict(RECORD, width=40),
            dict(RECORD, width=None, height=None),
            dict(RECORD, width=40, height=50),
        ],
    )
    sizes = [(r.width, r.height) for r in load_grit_jsonl(path)]
    assert sizes == [(31, 17), (40, 17), (31, 17), (40, 50)]
    in_memory = records_from_dicts([dict(RECORD, image=Image.new("RGB", (9, 4)))])
    assert (in_memory[0].width, in_memory[0].height) == (9, 4)


def test_missing_or_unreadable_image_without_a_size_names_file_line_and_path(tmp_path):
    path = write(tmp_path / "d.jsonl", [dict(RECORD, image="gone.png")])
    with pytest.raises(
        GritDataError, match=r"d.jsonl:1: field 'image': image file not found: .*gone.png"
    ):
        load_grit_jsonl(path)
    (tmp_path / "junk.png").write_bytes(b"not a picture")
    path = write(
        tmp_path / "e.jsonl",
        [RECORD | {"image": "junk.png", "width": 5, "height": 5}, dict(RECORD, image="junk.png")],
    )
    with pytest.raises(
        GritDataError, match=r"e.jsonl:2: field 'image': cannot read image .*junk.png"
    ):
        load_grit_jsonl(path)


@pytest.mark.parametrize("exif_transpose", [True, False])
def test_size_and_pixels_follow_the_exif_setting(tmp_path, exif_transpose):
    picture = Image.new("RGB", (30, 10), "white")
    exif = picture.getexif()
    exif[0x0112] = 6  # shown turned by 90°
    picture.save(tmp_path / "p.jpg", exif=exif)
    path = write(tmp_path / "d.jsonl", [dict(RECORD, image="p.jpg")])
    [record] = load_grit_jsonl(path, exif_transpose=exif_transpose)
    want = (10, 30) if exif_transpose else (30, 10)
    assert (record.width, record.height) == want
    assert record.load_image().size == want
    assert image_size(tmp_path / "p.jpg", exif_transpose=exif_transpose) == want
