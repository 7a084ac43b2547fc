"""Pictures: boxes drawn where they belong (pixel colours), mentions highlighted, the gallery."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from grit_fast.cli import main
from grit_fast.eval.predictions import score_records
from grit_fast.viz.samples import GT_COLOR, PALETTE, render_gallery, render_sample

W, H = 400, 300
BACKGROUND = (250, 250, 250)
COMPLETION = (
    '<think> the cup {"bbox_2d": [56, 56, 168, 112], "label": "cup"} and the tv (224, 28, 336, 84)'
    " </think> <rethink> ok </rethink> <answer> yes </answer>"
)


@pytest.fixture
def scene(tmp_path):
    Image.new("RGB", (W, H), BACKGROUND).save(tmp_path / "scene.png")
    record = {
        "index": 3,
        "question": "Is the cup left of the tv?",
        "answer": "yes",
        "image": "scene.png",
        "width": W,
        "height": H,
        "bboxs": [[20, 200, 120, 280]],
        "dataset": "vsr",
        "completion": COMPLETION,
        "convention": "qwen2.5-vl",
    }
    (scored,) = score_records([record])
    return tmp_path, scored


def close(pixel, color, tol=40):
    return all(abs(int(a) - int(b)) <= tol for a, b in zip(pixel, color, strict=True))


def test_boxes_drawn_in_original_pixels(scene):
    root, record = scene
    # 400x300 is seen by Qwen2.5-VL as 392x308: box coordinates scale by 400/392 and 300/308.
    assert record["model_size"] == [392, 308]
    picture = render_sample(record, root)
    assert picture.size[1] >= H and picture.size[0] > W
    x1, y1, x2, y2 = record["boxes"][0]
    assert (x1, x2) == pytest.approx((56 * W / 392, 168 * W / 392))
    mid_y = int((y1 + y2) / 2)
    # Box 1's left and right edges are in colour 1, its inside is untouched background.
    assert close(picture.getpixel((round(x1), mid_y)), PALETTE[0])
    assert close(picture.getpixel((round(x2), mid_y)), PALETTE[0])
    assert picture.getpixel((int((x1 + x2) / 2), mid_y)) == BACKGROUND
    # Box 2 in colour 2 (its bottom edge, away from the number tag).
    bx1, _, bx2, by2 = record["boxes"][1]
    # The 3-pixel outline lies inside the box, so step one pixel up from its bottom coordinate.
    assert close(picture.getpixel((int((bx1 + bx2) / 2), int(by2) - 1)), PALETTE[1])
    # The gt box is dashed green: some pixels of its top edge are green, some are not.
    top = [picture.getpixel((x, 200)) for x in range(22, 118)]
    green = sum(close(p, GT_COLOR) for p in top)
    assert 30 < green < len(top) - 10
    # Where the model's frame was not mapped back, nothing is drawn.
    assert picture.getpixel((168, mid_y)) == BACKGROUND


def test_box_mentions_are_highlighted_in_their_colours(scene):
    root, record = scene
    picture = render_sample(record, root)
    panel = picture.crop((W, 0, picture.width, picture.height))
    colours = panel.getcolors(maxcolors=1 << 16)
    counts = {c: n for n, c in colours}
    assert counts.get(PALETTE[0], 0) > 300  # the highlight behind "[56, 56, 168, 112]"
    assert counts.get(PALETTE[1], 0) > 300
    assert counts.get(PALETTE[2], 0) == 0  # no third box


def test_large_images_scale_down_with_their_boxes(tmp_path):
    Image.new("RGB", (2000, 1000), BACKGROUND).save(tmp_path / "big.png")
    record = {
        "image": "big.png",
        "width": 2000,
        "height": 1000,
        "boxes": [[400, 200, 1200, 800]],
        "box_spans": [],
        "bboxs": [],
        "completion": "x",
    }
    picture = render_sample(record, tmp_path, max_side=500)
    assert picture.size[1] >= 250
    assert close(picture.getpixel((100, 125)), PALETTE[0])
    assert close(picture.getpixel((300, 125)), PALETTE[0])
    assert picture.getpixel((200, 125)) == BACKGROUND


def test_missing_image_gives_a_placeholder_not_an_error(scene):
    root, record = scene
    picture = render_sample(dict(record, image="gone.png"), root)
    assert picture.size[1] >= H
    assert picture.getpixel((W - 5, H - 5)) == (200, 200, 200)  # grey canvas of the record's size
    assert close(picture.getpixel((round(record["boxes"][0][0]), 84)), PALETTE[0])


def test_gallery_and_cli(scene, tmp_path):
    root, record = scene
    other = dict(record, index=5, grounding_iou=None, question="<b>escaped?</b>")
    html_path = render_gallery([record, other], tmp_path / "gallery", root)
    text = html_path.read_text()
    assert (tmp_path / "gallery" / "samples" / "000003.png").is_file()
    assert 'href="samples/000005.png"' in text
    assert "&lt;b&gt;escaped?&lt;/b&gt;" in text and "<b>escaped" not in text
    assert f'data-value="{record["grounding_iou"]!r}"' in text
    assert 'data-type="num">IoU' in text and "addEventListener" in text

    preds = tmp_path / "preds.jsonl"
    raw = {k: record[k] for k in ("question", "answer", "image", "width", "height", "bboxs")}
    preds.write_text(json.dumps(dict(raw, completion=COMPLETION, convention="qwen2.5-vl")) + "\n")
    out = tmp_path / "cli"
    assert (
        main(["viz", "--predictions", str(preds), "--image-root", str(root), "--out", str(out)])
        == 0
    )
    drawn = Image.open(out / "samples" / "000000.png")
    assert drawn.size == render_sample(record, root).size
    assert (out / "index.html").is_file()
    assert main(["viz", "--predictions", str(tmp_path / "nope.jsonl"), "--out", str(out)]) == 1


def _ovd(tmp_path, completion):
    Image.new("RGB", (W, H), BACKGROUND).save(tmp_path / "ovd.png")
    record = {
        "image": "ovd.png",
        "width": W,
        "height": H,
        "answer": "cup",
        "bboxs": [],
        "dataset": "ovdeval",
        "completion": completion,
        "convention": "pixels",
    }
    (scored,) = score_records([record])
    return scored


def test_answer_boxes_of_detection_sets_are_drawn_and_highlighted(tmp_path):
    record = _ovd(
        tmp_path,
        "<think> find it </think> <rethink> ok </rethink> <answer> "
        '[{"bbox_2d": [50, 100, 150, 200], "label": "cup"}]</answer>',
    )
    assert record["boxes"] == [] and record["answer_boxes"] == [[50, 100, 150, 200]]
    assert record["answer_box_labels"] == ["cup"]
    start, end = record["answer_box_spans"][0]
    assert record["completion"][start:end] == "[50, 100, 150, 200]"
    picture = render_sample(record, tmp_path)
    assert close(picture.getpixel((50, 150)), PALETTE[0])
    assert close(picture.getpixel((149, 150)), PALETTE[0])
    assert picture.getpixel((100, 150)) == BACKGROUND
    counts = {
        c: n for n, c in picture.crop((W, 0, picture.width, picture.height)).getcolors(1 << 16)
    }
    assert counts.get(PALETTE[0], 0) > 300 and counts.get(PALETTE[1], 0) == 0


def test_a_box_found_in_reasoning_and_answer_is_drawn_once(tmp_path):
    # Without <rethink> the whole text is reasoning, so the answer's box is found twice.
    record = _ovd(tmp_path, "<think> find it </think> <answer> [50, 100, 150, 200]")
    assert record["boxes"] == record["answer_boxes"] == [[50, 100, 150, 200]]
    picture = render_sample(record, tmp_path)
    colours = {c for _, c in picture.getcolors(1 << 16)}
    assert PALETTE[0] in colours and PALETTE[1] not in colours


def test_tags_stay_inside_the_image(tmp_path):
    record = _ovd(
        tmp_path,
        '<think> {"bbox_2d": [330, 100, 398, 200], "label": "a very long label for a small box"}'
        " </think> <rethink> ok </rethink> <answer> cup",
    )
    assert record["box_labels"] == ["a very long label for a small box"]
    picture = render_sample(record, tmp_path)
    # The tag above the box is moved left so that it ends at the image's right edge...
    assert close(picture.getpixel((W - 2, 90)), PALETTE[0])
    assert close(picture.getpixel((300, 90)), PALETTE[0])
    # ...and does not run into the text panel.
    assert picture.getpixel((W + 1, 90)) == (255, 255, 255)


def test_small_images_scale_up_with_their_boxes(tmp_path):
    Image.new("RGB", (100, 80), BACKGROUND).save(tmp_path / "small.png")
    record = {
        "image": "small.png",
        "width": 100,
        "height": 80,
        "boxes": [[10, 40, 50, 70]],
        "box_spans": [],
        "bboxs": [],
        "completion": "x",
    }
    picture = render_sample(record, tmp_path, min_side=400)
    assert picture.size[1] >= 320
    assert close(picture.getpixel((41, 220)), PALETTE[0])  # x = 10 * 4
    assert close(picture.getpixel((198, 220)), PALETTE[0])  # x = 50 * 4
    assert picture.getpixel((120, 220)) == BACKGROUND
