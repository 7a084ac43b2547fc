"""Top-k group sampling (grit_fast.models.sampling) against Hugging Face's own sampling warpers, and the
rollout property it exists for: a prompt's samples do not depend on the other prompts in the call."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from PIL import Image  # noqa: E402
from transformers import (  # noqa: E402
    LogitsProcessorList,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from grit_fast.models import adapter_for, build_tiny_qwen2_5_vl  # noqa: E402
from grit_fast.models.sampling import GroupSampler, candidate_probs  # noqa: E402
from grit_fast.train.rollout import generate_rollout  # noqa: E402


def hf_probs(scores, temperature, top_k, top_p):
    """The distribution ``generate(do_sample=True, ...)`` samples from (its warper order)."""
    warpers = [TemperatureLogitsWarper(temperature)]
    if top_k:
        warpers.append(TopKLogitsWarper(top_k))
    if top_p < 1.0:
        warpers.append(TopPLogitsWarper(top_p))
    return torch.softmax(LogitsProcessorList(warpers)(None, scores.clone()), dim=-1)


@pytest.mark.parametrize("temperature", [0.6, 1.0, 1.7])
@pytest.mark.parametrize("top_k", [1, 7, 50, 0])
@pytest.mark.parametrize("top_p", [1.0, 0.9, 0.4])
def test_distribution_equals_hugging_face_warpers(temperature, top_k, top_p):
    gen = torch.Generator().manual_seed(top_k * 100 + int(temperature * 10))
    scores = torch.randn(6, 997, generator=gen) * 3
    scores[0, :] = 0.0  # all tied: top-k keeps k of them, top-p cuts among equals
    probs, ids = candidate_probs(scores, temperature, top_k, top_p)
    assert probs.shape == ids.shape == (6, top_k or 997)
    ours = torch.zeros_like(scores).scatter_(-1, ids, probs)
    theirs = hf_probs(scores[1:], temperature, top_k, top_p)
    torch.testing.assert_close(ours[1:], theirs, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(probs.sum(-1), torch.ones(6))
    kept = (probs[0] > 0).sum().item()  # ties: exactly k candidates, top-p keeps ceil(p*k)-ish
    assert 1 <= kept <= (top_k or 997)


def test_draws_follow_the_distribution():
    scores = torch.tensor([[2.0, 1.0, 0.5, 0.0, -1.0, -9.0]]).repeat(4, 1)
    sampler = GroupSampler([7], group_size=4, temperature=1.0, top_k=4)
    counts = torch.zeros(6)
    for _ in range(5000):
        out = sampler(None, scores)
        assert torch.isfinite(out).sum().item() == 4  # one token per row, at score 0
        counts += (out == 0).float().sum(0)
    freq = counts / counts.sum()
    expected = torch.softmax(scores[0, :4], -1)
    torch.testing.assert_close(freq[:4], expected, rtol=0, atol=0.015)
    assert counts[4:].sum() == 0  # outside the top 4: never drawn


def test_groups_have_their_own_streams():
    scores = torch.randn(6, 300, generator=torch.Generator().manual_seed(0))

    def draw(seeds, rows):
        sampler = GroupSampler(seeds, group_size=2, temperature=1.0, top_k=100)
        return [sampler(None, rows).argmax(-1) for _ in range(5)]

    alone = draw([11], scores[:2])
    together = draw([11, 12, 13], scores)
    for a, t in zip(alone, together, strict=True):
        assert torch.equal(a, t[:2])  # group 0 does not see groups 1 and 2
    again = draw([11, 12, 13], scores)
    assert all(torch.equal(a, b) for a, b in zip(together, again, strict=True))
    other = draw([99, 12, 13], scores)
    assert any(not torch.equal(a[:2], b[:2]) for a, b in zip(together, other, strict=True))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"temperature": 0.0}, "temperature"),
        ({"top_k": -1}, "top_k"),
        ({"top_p": 0.0}, "top_p"),
        ({"top_p": 1.5}, "top_p"),
        ({"group_size": 0}, "group_size"),
    ],
)
def test_bad_settings_are_refused(kwargs, message):
    settings = {"seeds": [1], "group_size": 2, "temperature": 1.0, "top_k": 5, **kwargs}
    with pytest.raises(ValueError, match=message):
        GroupSampler(**settings)


def test_row_count_mismatch_is_an_error():
    sampler = GroupSampler([1, 2], group_size=2, temperature=1.0, top_k=5)
    with pytest.raises(ValueError, match="2 groups of 2 rows, but generate passed 3 rows"):
        sampler(None, torch.zeros(3, 10))


def test_rollout_samples_do_not_depend_on_the_other_prompts():
    model, processor = build_tiny_qwen2_5_vl(seed=0)
    adapter = adapter_for(model, processor, 3136, 256 * 28 * 28)
    images = [Image.new("RGB", (61, 45), (200, 30, 30)), Image.new("RGB", (50, 70), (20, 30, 230))]
    questions = ["How many red squares are there?", "Is the blue square left of it?"]
    settings = {"max_new_tokens": 8, "temperature": 0.9, "top_k": 50, "top_p": 1.0}
    both = generate_rollout(
        model, adapter, questions, images, group_size=3, seeds=[5, 6], **settings
    )
    second = generate_rollout(
        model, adapter, questions[1:], images[1:], group_size=3, seeds=[6], **settings
    )
    assert torch.equal(
        both.completion_ids[3:, : second.completion_ids.shape[1]], second.completion_ids
    )
    assert both.texts[3:] == second.texts
    assert len(set(both.texts)) > 1  # sampled, not greedy
    with pytest.raises(ValueError, match="2 questions, 2 images and 1 seeds"):
        generate_rollout(model, adapter, questions, images, group_size=3, seeds=[5], **settings)
