"""Pictures of grounded reasoning: one PNG per sample and an ``index.html`` gallery (Pillow only).

Each PNG puts the original image on the left, with

* the predicted boxes in original-image pixels, in the order the trace wrote them: the reasoning's
  (``record["boxes"]``), then those of the answer (``record["answer_boxes"]``, the predictions of
  detection-style sets such as OVDEval) that are not already among them; box ``k`` is outlined in
  ``PALETTE[k % len(PALETTE)]`` and tagged ``k+1`` plus its label when the trace gives one
  (``box_labels``, ``answer_box_labels``);
* the ground-truth boxes (``record["bboxs"]``) as dashed :data:`GT_COLOR` outlines;

and on the right a header (index, dataset, judge score, grounding IoU, question, gt answer,
prediction, a key to the box styles) above the completion, where the text of each box
(``box_spans``, ``answer_box_spans``) is highlighted in its box's colour. Images larger than
``max_side`` are scaled down and images smaller than ``min_side`` scaled up, boxes with them. A
missing image is drawn as a grey canvas of the record's size with a note, so a gallery is never cut
short.

:func:`render_gallery` writes ``samples/<index>.png`` for every record and ``index.html``: a table of
thumbnails with answer, prediction, judge score and IoU, sortable by clicking a column header.
"""

from __future__ import annotations

import html
import logging
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["GT_COLOR", "PALETTE", "render_gallery", "render_sample"]

log = logging.getLogger(__name__)

# Distinct, saturated colours for predicted boxes (no green: that is the ground truth's).
PALETTE = (
    (230, 25, 75),
    (0, 110, 230),
    (245, 130, 48),
    (145, 30, 180),
    (0, 170, 190),
    (240, 50, 230),
    (128, 64, 0),
    (0, 0, 128),
    (200, 160, 0),
    (128, 0, 0),
)
GT_COLOR = (0, 200, 0)
_BOX_WIDTH = 3
_GT_WIDTH = 2
_DASH, _GAP = 8, 5
_MAX_CHARS = 6000
_MAX_TAG_CHARS = 32
_TEXT_PANEL = 520
_MARGIN = 10
_TOKEN = re.compile(r"\n|[^\S\n]+|\S+")


def _font(size: int) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow built without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _dashed_rectangle(draw, box, color, width) -> None:
    x1, y1, x2, y2 = box
    edges = (((x1, y1), (x2, y1)), ((x2, y1), (x2, y2)), ((x2, y2), (x1, y2)), ((x1, y2), (x1, y1)))
    for (ax, ay), (bx, by) in edges:
        length = max(abs(bx - ax), abs(by - ay))
        pos = 0.0
        while pos < length:
            end = min(pos + _DASH, length)
            t0, t1 = pos / length, end / length
            draw.line(
                [
                    (ax + (bx - ax) * t0, ay + (by - ay) * t0),
                    (ax + (bx - ax) * t1, ay + (by - ay) * t1),
                ],
                fill=color,
                width=width,
            )
            pos += _DASH + _GAP
        if length == 0:
            draw.point((ax, ay), fill=color)


def _ordered(box: Sequence[float], scale: float) -> tuple[float, float, float, float]:
    x1, y1, x2, y2 = (float(v) * scale for v in box)
    return min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)


def _load(record: Mapping[str, Any], image_root: Any) -> tuple[Any, str | None]:
    """(RGB image, None) or (grey placeholder of the record's size, reason)."""
    from PIL import Image

    from grit_fast.data import GritDataError, load_image

    name = record.get("image")
    size = (int(record.get("width") or 320), int(record.get("height") or 240))
    if not name:
        return Image.new("RGB", size, (200, 200, 200)), "no image in record"
    path = Path(name) if image_root is None else Path(image_root, name)
    try:
        return load_image(path), None
    except GritDataError as exc:
        log.warning("record %s: %s", record.get("index"), exc)
        return Image.new("RGB", size, (200, 200, 200)), f"image not found: {name}"


def _segments(text: str, spans: Sequence[Sequence[int]]) -> list[tuple[str, int | None]]:
    """``text`` cut into (piece, box number or None) at the box spans."""
    out: list[tuple[str, int | None]] = []
    pos = 0
    for k, (start, end) in sorted(enumerate(spans), key=lambda item: item[1][0]):
        start, end = max(start, pos), min(end, len(text))
        if start >= end:
            continue
        if start > pos:
            out.append((text[pos:start], None))
        out.append((text[start:end], k))
        pos = end
    if pos < len(text):
        out.append((text[pos:], None))
    return out


def _layout(segments, font, width: int, line_height: int):
    """Positions (x, y, token, box number or None) of the wrapped text, and its height."""
    placed = []
    x = y = 0
    for piece, k in segments:
        for token in _TOKEN.findall(piece):
            if token == "\n":
                x, y = 0, y + line_height
                continue
            w = font.getlength(token)
            if x > 0 and x + w > width:
                x, y = 0, y + line_height
                if token.isspace():
                    continue
            while w > width and len(token) > 1:  # a run longer than a line: break it anywhere
                cut = max(1, int(len(token) * (width - x) / w))
                placed.append((x, y, token[:cut], k))
                token = token[cut:]
                x, y = 0, y + line_height
                w = font.getlength(token)
            placed.append((x, y, token, k))
            x += w
    return placed, y + line_height


def _drawn_boxes(record: Mapping[str, Any]) -> tuple[list, list, list]:
    """(boxes, spans, labels) to draw: the reasoning's, then the answer's not already among them.

    Without ``<rethink>`` the reasoning is the whole text, so answer boxes are found twice; a span
    that overlaps a reasoning box's span is the same box.
    """
    boxes = list(record.get("boxes") or [])
    spans = [(int(a), int(b)) for a, b in record.get("box_spans") or []]
    labels = list(record.get("box_labels") or [])
    labels += [None] * (len(boxes) - len(labels))
    spans += [(0, 0)] * (len(boxes) - len(spans))
    taken = list(spans)
    answer_boxes = record.get("answer_boxes") or []
    answer_spans = record.get("answer_box_spans") or []
    answer_labels = list(record.get("answer_box_labels") or [])
    answer_labels += [None] * (len(answer_boxes) - len(answer_labels))
    for box, (start, end), label in zip(answer_boxes, answer_spans, answer_labels, strict=False):
        start, end = int(start), int(end)
        if any(start < b and a < end for a, b in taken):
            continue
        boxes.append(box)
        spans.append((start, end))
        labels.append(label)
    return boxes, spans, labels


def _tag_text(k: int, label: Any) -> str:
    tag = str(k + 1) + (f" {label}" if label else "")
    return tag if len(tag) <= _MAX_TAG_CHARS else tag[: _MAX_TAG_CHARS - 1] + "\u2026"


def _draw_boxes(image: Any, record: Mapping[str, Any], boxes, labels, sx: float) -> None:
    from PIL import ImageDraw

    draw = ImageDraw.Draw(image)
    font = _font(13)
    for k, box in enumerate(boxes):
        color = PALETTE[k % len(PALETTE)]
        draw.rectangle(_ordered(box, sx), outline=color, width=_BOX_WIDTH)
    # Ground truth over the predictions: its dashes stay visible where the two coincide.
    for box in record.get("bboxs") or []:
        _dashed_rectangle(draw, _ordered(box, sx), GT_COLOR, _GT_WIDTH)
    # Tags last, so that no outline crosses a number or label; kept inside the image.
    for k, box in enumerate(boxes):
        color = PALETTE[k % len(PALETTE)]
        x1, y1, _, _ = _ordered(box, sx)
        tag = _tag_text(k, labels[k])
        tw = font.getlength(tag) + 6
        tx = max(0.0, min(x1, image.width - tw))
        ty = y1 - 17 if y1 >= 17 else max(0.0, y1) + _BOX_WIDTH
        ty = min(ty, image.height - 16)
        draw.rectangle((tx, ty, tx + tw, ty + 16), fill=color)
        draw.text((tx + 3, ty + 1), tag, fill=(255, 255, 255), font=font)


def render_sample(
    record: Mapping[str, Any],
    image_root: str | os.PathLike | None = None,
    max_side: int = 768,
    min_side: int = 384,
) -> Any:
    """The picture of one scored prediction record (see the module doc) as an RGB PIL image."""
    from PIL import Image, ImageDraw

    image, problem = _load(record, image_root)
    longest = max(image.size)
    scale = max_side / longest if longest > max_side else max(1.0, min_side / longest)
    if scale != 1.0:
        image = image.resize(
            (max(1, round(image.width * scale)), max(1, round(image.height * scale))),
            Image.Resampling.BILINEAR if scale < 1.0 else Image.Resampling.BICUBIC,
        )
    # Boxes are in original pixels; the record's size is the frame (the image may be a placeholder).
    frame_w = float(record.get("width") or image.width / scale)
    sx = image.width / frame_w
    boxes, spans, labels = _drawn_boxes(record)
    _draw_boxes(image, record, boxes, labels, sx)
    if problem:
        ImageDraw.Draw(image).text((6, 6), problem, fill=(60, 60, 60), font=_font(13))

    text_font = _font(14)
    line_height = 19
    width = _TEXT_PANEL - 2 * _MARGIN
    iou, judge = record.get("grounding_iou"), record.get("judge_score")
    key = "boxes: numbered in the order written; ground truth dashed green" if boxes else ""
    header = (
        f"#{record.get('index', '?')}  {record.get('dataset', '')}   "
        f"judge {'-' if judge is None else f'{judge:.2f}'}   "
        f"IoU {'-' if iou is None else f'{iou:.3f}'}\n"
        f"Q: {record.get('question', '')}\nGT: {record.get('answer', '')}\n"
        f"Pred: {(record.get('prediction') or '').strip() or '-'}\n"
        f"{key or 'no predicted box'}\n\n"
    )
    completion = str(record.get("completion") or "")
    if len(completion) > _MAX_CHARS:
        completion = completion[:_MAX_CHARS] + " \u2026"
    shown = min(len(completion), _MAX_CHARS)
    spans = [(len(header) + a, len(header) + b) if a < shown else (0, 0) for a, b in spans]
    placed, text_h = _layout(_segments(header + completion, spans), text_font, width, line_height)

    canvas = Image.new(
        "RGB",
        (image.width + _TEXT_PANEL, max(image.height, text_h + 2 * _MARGIN)),
        (255, 255, 255),
    )
    canvas.paste(image, (0, 0))
    draw = ImageDraw.Draw(canvas)
    ox = image.width + _MARGIN
    for x, y, token, k in placed:
        fill = (20, 20, 20)
        if k is not None:
            w = text_font.getlength(token)
            draw.rectangle(
                (ox + x, _MARGIN + y - 1, ox + x + w, _MARGIN + y + line_height - 3),
                fill=PALETTE[k % len(PALETTE)],
            )
            fill = (255, 255, 255)
        if not token.isspace():
            draw.text((ox + x, _MARGIN + y), token, fill=fill, font=text_font)
    return canvas


_HTML = """<!doctype html>
<html><head><meta charset="utf-8"><title>grit-fast predictions</title>
<style>
body {{ font-family: sans-serif; margin: 1em; }}
table {{ border-collapse: collapse; }}
td, th {{ border: 1px solid #ccc; padding: 4px 8px; vertical-align: top; max-width: 28em; }}
th {{ cursor: pointer; background: #f0f0f0; user-select: none; }}
img {{ max-width: 240px; }}
</style></head><body>
<h1>Predictions ({count})</h1>
<p>Click a column header to sort (click again to reverse). Predicted boxes are coloured and numbered
in order of appearance, ground truth is dashed green.</p>
<table id="preds"><thead><tr>
<th data-type="num">#</th><th>dataset</th><th>picture</th><th>question</th><th>answer</th>
<th>prediction</th><th data-type="num">judge</th><th data-type="num">IoU</th>
</tr></thead><tbody>
{rows}
</tbody></table>
<script>
document.querySelectorAll("#preds th").forEach((th, col) => {{
  th.addEventListener("click", () => {{
    const body = document.querySelector("#preds tbody");
    const num = th.dataset.type === "num";
    const dir = th.dataset.dir === "asc" ? -1 : 1;
    th.dataset.dir = dir === 1 ? "asc" : "desc";
    const key = (tr) => {{
      const v = tr.children[col].dataset.value ?? tr.children[col].textContent;
      return num ? (v === "" ? -Infinity : parseFloat(v)) : v.toLowerCase();
    }};
    [...body.rows].sort((a, b) => (key(a) > key(b) ? 1 : key(a) < key(b) ? -1 : 0) * dir)
      .forEach((tr) => body.appendChild(tr));
  }});
}});
</script>
</body></html>
"""


def _num_cell(value: Any, digits: int) -> str:
    if value is None:
        return '<td data-value="">-</td>'
    return f'<td data-value="{float(value)!r}">{float(value):.{digits}f}</td>'


def render_gallery(
    records: Sequence[Mapping[str, Any]],
    out_dir: str | os.PathLike,
    image_root: str | os.PathLike | None = None,
    max_side: int = 768,
    min_side: int = 384,
) -> Path:
    """Write ``samples/<index>.png`` per scored record and ``index.html``; returns the html path."""
    from tqdm.auto import tqdm

    out = Path(out_dir)
    (out / "samples").mkdir(parents=True, exist_ok=True)
    rows = []
    for i, record in enumerate(tqdm(records, desc="pictures", unit="sample")):
        index = record.get("index", i)
        name = f"samples/{int(index):06d}.png"
        render_sample(record, image_root, max_side, min_side).save(out / name)
        esc = [html.escape(str(record.get(k) or "")) for k in ("dataset", "question", "answer")]
        pred = html.escape((record.get("prediction") or "").strip())
        rows.append(
            f'<tr><td data-value="{int(index)}">{int(index)}</td><td>{esc[0]}</td>'
            f'<td><a href="{name}"><img src="{name}" loading="lazy" alt="sample {int(index)}"></a>'
            f"</td><td>{esc[1]}</td><td>{esc[2]}</td><td>{pred}</td>"
            f"{_num_cell(record.get('judge_score'), 2)}{_num_cell(record.get('grounding_iou'), 3)}"
            "</tr>"
        )
    path = out / "index.html"
    path.write_text(_HTML.format(count=len(rows), rows="\n".join(rows)), encoding="utf-8")
    return path
