"""The shipped configs of the released GRIT runs: every value against the paper's run
(docs/method.md §7), one comment per line citing the original, and the README's command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from grit_fast.cli import main
from grit_fast.train.config import GritConfig

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
QWEN = CONFIGS / "grit_qwen2_5_vl_3b.yaml"
INTERNVL = CONFIGS / "grit_internvl3_2b.yaml"

# The released runs (docs/method.md §3 and §7): the same for both models.
COMMON = {
    "num_generations": 4,
    "max_steps": 200,
    "lr": 2e-6,
    "lr_scheduler": "cosine",
    "warmup_steps": 0,
    "optimizer": "adamw",
    "max_grad_norm": 1.0,
    "beta": 0.01,
    "temperature": 0.9,
    "top_k": 50,
    "top_p": 1.0,
    "max_new_tokens": 1000,
    "bf16": True,
    "save_every": 50,
    "eval_every": 50,
    "eval_on_start": True,
    "loss_type": "grpo",
    "num_iterations": 1,
    "scale_rewards": True,
    "adv_eps": 1e-4,
    "reward_preset": "official",
    # the original's behaviours (docs/method.md, "original behaviour → ours → setting")
    "temperature_in_logprobs": False,
    "judge_question": "user_text",
    "exif_transpose": False,
}
QWEN_ONLY = {
    "family": "qwen2.5-vl",
    "max_prompt_length": 750,
    "min_pixels": 3136,
    "max_pixels": 256 * 28 * 28,
    "generation_header": True,
    "qwen_double_resize": True,
}
INTERNVL_ONLY = {
    "family": "internvl3",
    "max_prompt_length": 1500,
    "generation_header": False,
    "max_tiles": 2,
    "jpeg_augment": True,
}


@pytest.mark.parametrize(("path", "own"), [(QWEN, QWEN_ONLY), (INTERNVL, INTERNVL_ONLY)])
def test_values_are_the_released_run(path, own):
    config = GritConfig.from_file(path)
    for key, want in {**COMMON, **own}.items():
        assert getattr(config, key) == want, key
    # 128 completions per optimizer step: 8 GPUs × 4 per device × accumulation 4
    completions = config.batch_size * config.num_generations * config.gradient_accumulation_steps
    assert completions == 128 and config.gradient_accumulation_steps == 4
    # what a user must set, and nothing that downloads
    assert config.model is None and config.data is None


@pytest.mark.parametrize("path", [QWEN, INTERNVL])
def test_every_setting_cites_the_original(path):
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    settings = [line for line in lines if not line.startswith("#")]
    assert len(settings) == len(_keys(path))  # one line per key
    for line in settings:
        _, _, comment = line.partition("#")
        assert comment.strip(), f"no comment: {line!r}"
        assert "original" in comment, f"the comment does not cite the original: {line!r}"


def _keys(path):
    import yaml

    return set(yaml.safe_load(path.read_text(encoding="utf-8")))


def test_qwen_file_notes_the_smaller_script_batch():
    lines = QWEN.read_text(encoding="utf-8").splitlines()
    text = " ".join(" ".join(line.lstrip("# ") for line in lines).split())
    for phrase in (
        "128 completions per optimizer step",
        "8 GPUs × 4 completions per device × gradient accumulation 4",
        "1 completion per device and no accumulation",
        "8 completions (2 prompts) per step",
        "~2,000 steps",
        "--set batch_size=2 --set gradient_accumulation_steps=1 --set max_steps=2000",
    ):
        assert phrase in text, phrase
    smaller = GritConfig.from_file(
        QWEN, ["batch_size=2", "gradient_accumulation_steps=1", "max_steps=2000"]
    )
    assert smaller.batch_size * smaller.num_generations == 8


@pytest.mark.parametrize("path", [QWEN, INTERNVL])
def test_the_readme_command_resolves(path, capsys, tmp_path):
    args = ["train", "--config", str(path), "--set", f"model={tmp_path / 'ckpt'}"]
    args += ["--set", f"data={tmp_path / 'a.jsonl'},{tmp_path / 'b.jsonl'}", "--print-config"]
    assert main(args) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["model"] == str(tmp_path / "ckpt")
    assert printed["data"] == f"{tmp_path / 'a.jsonl'},{tmp_path / 'b.jsonl'}"
    assert printed["max_steps"] == 200 and printed["bf16"] is True
