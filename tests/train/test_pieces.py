"""The trainer's small pieces: completion mask, stop string, per-prompt seeds, the epoch sampler, the
learning-rate schedule, grounding IoU and zero-advantage metrics, and hard kills during a save."""

from __future__ import annotations

import itertools
import math
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from grit_fast.data import records_from_dicts  # noqa: E402
from grit_fast.models.generation import completion_mask  # noqa: E402
from grit_fast.train import checkpoint  # noqa: E402
from grit_fast.train.config import GritConfig  # noqa: E402
from grit_fast.train.metrics import grounding_ious, zero_advantage_fraction  # noqa: E402
from grit_fast.train.rollout import prompt_seed  # noqa: E402
from grit_fast.train.setup import EpochSampler, lr_lambda  # noqa: E402

EOS, PAD = 151645, 151643


def test_completion_mask_keeps_up_to_and_including_the_first_end():
    ids = torch.tensor(
        [
            [5, 6, EOS, 7, PAD],  # EOS kept, what follows dropped
            [5, PAD, PAD, PAD, PAD],  # pad ends it too
            [5, 6, 7, 8, 9],  # never ended: all kept
            [EOS, 5, EOS, 6, 7],  # only the first end counts
        ]
    )
    want = [[1, 1, 1, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]]
    assert completion_mask(ids, [EOS, PAD]).tolist() == want
    assert completion_mask(ids, [EOS, PAD]).dtype == torch.float32


def test_prompt_seeds_differ_per_step_and_position():
    seeds = {prompt_seed(42, step, i) for step in range(50) for i in range(64)}
    assert len(seeds) == 50 * 64
    assert prompt_seed(42, 3, 7) == prompt_seed(42, 3, 7) != prompt_seed(43, 3, 7)


def test_epoch_sampler_permutes_each_epoch_and_resumes():
    a = EpochSampler(7, seed=1)
    first, second = a.take(7), a.take(7)
    assert sorted(first) == sorted(second) == list(range(7)) and first != second
    b = EpochSampler(7, seed=1)
    b.take(5)
    state = b.state_dict()
    c = EpochSampler(7, seed=99)
    c.load_state_dict(state)
    assert c.take(9) == b.take(9)  # crosses an epoch boundary identically
    with pytest.raises(ValueError, match="taken on 7 records but the data has 8"):
        EpochSampler(8, seed=1).load_state_dict(state)


@pytest.mark.parametrize("kind", ["cosine", "linear", "constant"])
def test_lr_schedule_warmup_then_decay(kind):
    cfg = GritConfig(lr_scheduler=kind, warmup_steps=3, max_steps=10, num_iterations=2)
    f = lr_lambda(cfg)
    assert [f(u) for u in range(3)] == [0.25, 0.5, 0.75]
    assert f(3) == 1.0
    total = 10 * 2
    end = {"cosine": 0.0, "linear": 0.0, "constant": 1.0}[kind]
    assert f(total) == pytest.approx(end, abs=1e-12)
    mid = {"cosine": 0.5, "linear": 0.5, "constant": 1.0}[kind]
    assert f(3 + (total - 3) / 2) == pytest.approx(mid)
    values = [f(u) for u in range(3, total + 1)]
    assert all(x >= y for x, y in itertools.pairwise(values))
    assert all(math.isfinite(v) for v in values)


class _HalfScale:
    """An adapter whose model saw the image at half size: boxes map back by x2."""

    def to_original_pixels(self, boxes, width, height):
        return np.asarray(boxes, dtype=np.float64) * 2.0


def test_grounding_iou_maps_reasoning_boxes_to_original_pixels():
    base = {"question": "q", "answer": "a", "image": "x.png", "width": 100, "height": 80}
    base["dataset"] = "vsr"
    records = records_from_dicts(
        [
            {**base, "bboxs": [[20, 40, 60, 80], [60, 40, 100, 80]]},
            {**base, "bboxs": [[0, 0, 10, 10]]},
            {**base, "bboxs": []},  # no gt boxes: left out
            {**base, "bboxs": [[0, 0, 10, 10]]},
        ],
        check_images=False,
    )
    texts = [
        "<think>the cup [10, 20, 30, 40]</think><rethink>and [0, 0, 50, 40]</rethink>",
        "<think>no box here</think>",
        "<think>[1, 1, 2, 2]</think>",
        "<think>[0, 0, 5, 5]</think>",
    ]
    ious = grounding_ious(texts, records, _HalfScale())
    # [20, 40, 60, 80] covers half of the gt union; the box after <rethink> does not count.
    np.testing.assert_allclose(ious, [0.5, 0.0, 1.0])


def test_zero_advantage_fraction_counts_constant_groups():
    assert zero_advantage_fraction(np.array([1, 1, 0, 2, 3, 3.0]), 2) == pytest.approx(2 / 3)
    assert zero_advantage_fraction(np.zeros(8), 4) == 1.0


class _Model:
    def save_pretrained(self, path):
        (path / "model.safetensors").write_bytes(b"weights")


KILLED_SAVE = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from grit_fast.train import checkpoint

    class Model:
        def save_pretrained(self, path):
            (Path(path) / "model.safetensors").write_bytes(b"half")
            os.kill(os.getpid(), signal.SIGKILL)  # a hard kill: no cleanup runs

    checkpoint.save_checkpoint(sys.argv[1], 2, Model(), None, {"x": 2}, {})
    """
)


def test_hard_kill_during_save_leaves_the_previous_checkpoint(tmp_path):
    checkpoint.save_checkpoint(tmp_path, 1, _Model(), None, {"x": 1}, {"lr": 1})
    done = subprocess.run(
        [sys.executable, "-c", KILLED_SAVE, str(tmp_path)], capture_output=True, timeout=120
    )
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]
    assert len(leftovers) == 1  # the half-written save, never renamed into place
    assert checkpoint.latest_checkpoint(tmp_path) == tmp_path / "checkpoint-1"
    assert checkpoint.load_trainer_state(tmp_path / "checkpoint-1")["x"] == 1
    # The next save works beside the leftover.
    path = checkpoint.save_checkpoint(tmp_path, 2, _Model(), None, {"x": 2}, {})
    assert checkpoint.latest_checkpoint(tmp_path) == path
    assert os.listdir(path) and checkpoint.load_trainer_state(path)["x"] == 2
