"""The memory estimate printed at the start of a run: its arithmetic, term by term, on the paper's
Qwen2.5-VL-3B, and what the trainer logs."""

from __future__ import annotations

import json
import logging

import pytest

torch = pytest.importorskip("torch")

from grit_fast.train import memory  # noqa: E402
from grit_fast.train.config import GritConfig  # noqa: E402
from grit_fast.train.memory import ModelShape, RunShape, estimate_memory  # noqa: E402
from grit_fast.train.setup import wants_checkpointing  # noqa: E402

QWEN_3B = ModelShape(
    params=3_754_622_976,
    trainable=3_754_622_976,
    layers=36,
    hidden=2048,
    kv_width=256,  # 2 KV heads x head_dim 128
    intermediate=11008,
    vocab=151936,
    vision_layers=32,
    vision_hidden=1280,
    vision_intermediate=3420,
)
# the case: 16 completions of a 750-token prompt and 1,000 new tokens, bf16 autocast
PAPER = RunShape(rows=16, tokens=1750, completion_tokens=1000, patches=1024, bf16=True)


def test_states_cost_16_bytes_per_trainable_parameter():
    e = estimate_memory(QWEN_3B, PAPER)
    assert (e.weights, e.gradients, e.optimizer) == (
        4 * 3_754_622_976,
        4 * 3_754_622_976,
        8 * 3_754_622_976,
    )
    assert e.reference == 0
    with_ref = estimate_memory(QWEN_3B, RunShape(**{**PAPER.__dict__, "reference_bytes": 2}))
    assert with_ref.reference == 2 * 3_754_622_976
    lora = ModelShape(**{**QWEN_3B.__dict__, "trainable": 1_000_000})
    e = estimate_memory(lora, PAPER)
    assert (e.weights, e.gradients, e.optimizer) == (4 * 3_754_622_976, 4_000_000, 8_000_000)


def test_fsdp_shards_the_states_and_the_reference():
    run = RunShape(**{**PAPER.__dict__, "world": 8, "fsdp": True, "reference_bytes": 2})
    e = estimate_memory(QWEN_3B, run)
    assert e.weights == 4 * 3_754_622_976 // 8
    assert e.optimizer == 8 * 3_754_622_976 // 8
    assert e.reference == 2 * 3_754_622_976 // 8
    ddp = estimate_memory(QWEN_3B, RunShape(**{**PAPER.__dict__, "world": 8}))
    assert ddp.weights == 4 * 3_754_622_976  # DDP keeps a full copy


def test_activations_at_the_paper_scale():
    text_per_token = (7 * 2048 + 2 * 256 + 4 * 11008) * 2  # bytes per token and layer
    vision_per_patch = (7 * 1280 + 2 * 1280 + 4 * 3420) * 2
    loss = 512 * 2**20 + 16_000 * 2048 * 2 + 151936 * 2048 * 2  # chunk, d h, d W
    full = 16 * 1750 * 36 * text_per_token + 16 * 1024 * 32 * vision_per_patch
    assert memory.activation_bytes(QWEN_3B, PAPER) == full + loss
    assert 118e9 < 16 * 1750 * 36 * text_per_token < 119e9  # the "~100 GB" of the issue
    ckpt = RunShape(**{**PAPER.__dict__, "checkpointing": True})
    kept = 16 * 1750 * (36 * 4 * 2048 + text_per_token)
    kept += 16 * 1024 * (32 * 4 * 1280 + vision_per_patch)
    assert memory.activation_bytes(QWEN_3B, ckpt) == kept + loss
    assert 15e9 < kept < 15.1e9
    unfused = RunShape(**{**PAPER.__dict__, "checkpointing": True, "fused_loss": False})
    assert memory.activation_bytes(QWEN_3B, unfused) == kept + 2 * 16_000 * 151936 * 2
    fp32 = RunShape(rows=1, tokens=10, completion_tokens=4, patches=0)  # elements of 4 bytes
    fp32_loss = 4 * 151936 * 4 + 4 * 2048 * 4 + 151936 * 2048 * 4
    assert memory.activation_bytes(QWEN_3B, fp32) == 10 * 36 * text_per_token * 2 + fp32_loss


def test_the_estimate_of_a_real_width_config(tmp_path):
    """model_shape reads the widths a Qwen2.5-VL-3B config carries (on the meta device)."""
    from transformers import AutoConfig, Qwen2_5_VLForConditionalGeneration

    from tests.release_folders import QWEN2_5_VL_3B, qwen2_5_vl_config_json

    (tmp_path / "config.json").write_text(json.dumps(qwen2_5_vl_config_json(QWEN2_5_VL_3B, 36, 32)))
    with torch.device("meta"):
        model = Qwen2_5_VLForConditionalGeneration(AutoConfig.from_pretrained(tmp_path))
    assert memory.model_shape(model) == QWEN_3B


def test_run_shape_of_the_default_config():
    class Adapter:
        family = "qwen2.5-vl"

    run = memory.run_shape(GritConfig(bf16=True), Adapter(), 1, False, True, 2)
    # 8 prompts x 4 completions per micro-batch on one process; 750 + 1,000 tokens; 256·28²/14²
    assert (run.rows, run.tokens, run.completion_tokens, run.patches) == (32, 1750, 1000, 1024)
    assert memory.run_shape(GritConfig(), Adapter(), 8, True, True, 2).rows == 4


def test_report_warns_when_it_does_not_fit(caplog):
    e = estimate_memory(QWEN_3B, PAPER)
    with caplog.at_level(logging.INFO, logger="grit_fast.train.memory"):
        memory.report(e, 80 * 10**9, hint=": try x")
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert "does not fit: try x" in record.message and "total" in record.message
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="grit_fast.train.memory"):
        memory.report(e, 10**15)
    assert [r.levelno for r in caplog.records] == [logging.INFO]


def test_checkpointing_is_on_by_default_for_real_models_only():
    assert wants_checkpointing(None, 3_754_622_976)
    assert not wants_checkpointing(None, 10_000_000)  # a tiny test model
    assert not wants_checkpointing(False, 3_754_622_976)
    assert wants_checkpointing(True, 10)
    assert GritConfig().gradient_checkpointing is None
