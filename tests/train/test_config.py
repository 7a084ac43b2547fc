"""GritConfig: defaults, files, overrides and errors that name the key and the allowed values."""

from __future__ import annotations

import json

import pytest

from grit_fast.cli import main
from grit_fast.train.config import ConfigError, GritConfig, parse_overrides


def test_paper_defaults():
    c = GritConfig()
    assert (c.num_generations, c.lr, c.warmup_steps, c.max_grad_norm) == (4, 2e-6, 0, 1.0)
    assert (c.beta, c.eps_low, c.eps_high, c.loss_type, c.num_iterations) == (
        0.01,
        0.2,
        0.2,
        "grpo",
        1,
    )
    assert (c.temperature, c.top_k, c.top_p, c.max_new_tokens) == (0.9, 50, 1.0, 1000)
    assert (c.min_pixels, c.max_pixels, c.reward_preset) == (3136, 256 * 28 * 28, "official")
    assert (c.optimizer, c.lr_scheduler) == ("adamw", "cosine")


def test_yaml_json_and_overrides(tmp_path):
    (tmp_path / "c.yaml").write_text(
        "lr: 1e-6\nbf16: true\nmodel: tiny:internvl3\nadam_betas: [0.9, 0.99]\n"
    )
    c = GritConfig.from_file(tmp_path / "c.yaml", ["max_steps=7", "max_prompt_length=null"])
    assert (c.lr, c.bf16, c.model, c.adam_betas) == (1e-6, True, "tiny:internvl3", (0.9, 0.99))
    assert (c.max_steps, c.max_prompt_length) == (7, None)
    (tmp_path / "c.json").write_text(json.dumps(c.to_dict()))
    assert GritConfig.from_file(tmp_path / "c.json") == c
    assert parse_overrides(["output_dir=123", "lr=3e-5"]) == {"output_dir": "123", "lr": "3e-5"}
    assert c.with_overrides(["output_dir=123"]).output_dir == "123"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "loss_type=ppo",
            r"loss_type='ppo' is not allowed; expected one of \('grpo', 'bnpo', 'dr_grpo', 'dapo'\)",
        ),
        (
            "reward_preset=mine",
            r"reward_preset='mine' is not allowed; expected one of \('official', 'paper'\)",
        ),
        ("lr=fast", r"lr must be a number, got 'fast'"),
        ("lr=-1", r"lr must be a positive finite number"),
        ("num_generations=1", r"num_generations must be >= 2"),
        ("batch_size=0", r"batch_size must be a positive integer"),
        ("top_p=1.5", r"top_p must be in \(0, 1\]"),
        ("bf16=maybe", r"bf16 must be true or false"),
        ("max_pixels=100", r"max_pixels \(100\) is below min_pixels"),
        ("learning_rate=1e-6", r"unknown config key 'learning_rate'.*known keys"),
        ("lr", r"must look like key=value"),
    ],
)
def test_bad_values_name_key_and_allowed(override, message):
    with pytest.raises(ConfigError, match=message):
        GritConfig().with_overrides([override])


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        GritConfig.from_file(tmp_path / "none.yaml")
    (tmp_path / "u.yaml").write_text("lr: 1e-6\nlearnin_rate: 2\n")
    with pytest.raises(ConfigError, match=r"u.yaml: unknown config key\(s\) \['learnin_rate'\]"):
        GritConfig.from_file(tmp_path / "u.yaml")
    (tmp_path / "l.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        GritConfig.from_file(tmp_path / "l.yaml")
    (tmp_path / "b.yaml").write_text("lr: [1\n")
    with pytest.raises(ConfigError, match="not valid yaml"):
        GritConfig.from_file(tmp_path / "b.yaml")


def test_cli_prints_config_and_reports_bad_keys(capsys, tmp_path, caplog):
    assert main(["train", "--set", "lr=1e-5", "--print-config"]) == 0
    assert json.loads(capsys.readouterr().out)["lr"] == 1e-5
    assert main(["train", "--set", "loss_type=nope"]) == 2
    assert "loss_type='nope' is not allowed" in caplog.text
    missing = f"data={tmp_path / 'missing.jsonl'}"
    assert main(["train", "--set", "model=tiny:qwen2.5-vl", "--set", missing]) == 2
    assert "data file not found" in caplog.text
