"""GRPO-GR rewards as TRL reward functions: one per component, all from one scoring pass.

TRL calls each reward function of a batch in turn with the same keyword arguments
(``prompts``, ``completions``, ``completion_ids`` and the dataset columns). The first call scores
the whole batch with :class:`~grit_fast.rewards.RewardScorer` (the compiled core when it is built)
and the others read the same :class:`~grit_fast.rewards.RewardBatch`, so a batch is parsed and
scored once, not once per component.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from grit_fast.rewards import RewardBatch, RewardScorer
from grit_fast.rewards.reference import PAD_TOKEN_ID


def completion_text(completion: Any, index: int = 0) -> str:
    """The text of a plain (str) or conversational (list of messages) completion: the contents of
    its assistant messages, in order (string contents or lists of ``{"type": "text"}`` blocks)."""
    if isinstance(completion, str):
        return completion
    if not isinstance(completion, list):
        raise TypeError(
            f"completions[{index}] must be a str or a list of chat messages, "
            f"got {type(completion).__name__}"
        )
    parts = []
    for message in completion:
        if not isinstance(message, Mapping) or "role" not in message:
            raise TypeError(
                f"completions[{index}] must hold chat messages (dicts with 'role' and 'content'), "
                f"got {message!r}"
            )
        if message["role"] != "assistant":
            continue
        content = message.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(b.get("text") or "" for b in content if b.get("type") == "text")
    return "".join(parts)


class SharedScoring:
    """Scores a batch once and hands the same :class:`RewardBatch` to every component function.

    The batch is recognised by the identity of the ``completions`` list TRL passes to all reward
    functions of one step (and of ``completion_ids`` and ``answer``); one batch is kept.
    """

    def __init__(self, scorer: RewardScorer) -> None:
        self.scorer = scorer
        self._key: tuple[Any, ...] | None = None
        self._batch: RewardBatch | None = None
        self.passes = 0  # scoring passes run (for tests and benchmarks)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_key": None, "_batch": None}

    def __call__(
        self, completions: Sequence[Any], completion_ids: Any, columns: dict
    ) -> RewardBatch:
        answer = columns.get("answer")
        key = (completions, completion_ids, answer)
        if self._key is not None and all(a is b for a, b in zip(key, self._key, strict=True)):
            return self._batch
        missing = [name for name in ("answer", "dataset") if columns.get(name) is None]
        if missing:
            raise KeyError(
                f"the GRIT reward functions need the dataset columns {missing} (build the dataset "
                f"with grit_fast.trl.grit_dataset); got columns {sorted(columns)}"
            )
        texts = [completion_text(c, i) for i, c in enumerate(completions)]
        batch = self.scorer.score(
            texts,
            [str(a) for a in answer],
            list(columns["dataset"]),
            questions=columns.get("question"),
            completion_ids=completion_ids,
        )
        self.passes += 1
        self._key, self._batch = key, batch
        return batch


class ComponentReward:
    """The TRL reward function of one component: ``weight x component`` per completion.

    ``__name__`` is the component's name, so TRL logs ``rewards/<name>/mean``.
    """

    def __init__(self, name: str, weight: float, shared: SharedScoring) -> None:
        self.__name__ = name
        self.weight = weight
        self.shared = shared

    def __call__(
        self,
        prompts: Any = None,
        completions: Sequence[Any] = (),
        completion_ids: Any = None,
        **columns: Any,
    ) -> list[float]:
        batch = self.shared(completions, completion_ids, columns)
        return (batch.components[self.__name__] * self.weight).tolist()

    def __repr__(self) -> str:
        return f"ComponentReward({self.__name__!r}, weight={self.weight})"


def reward_functions(
    preset: str = "official",
    judge: Any = None,
    weights: Mapping[str, float] | None = None,
    *,
    num_threads: int = 0,
    pad_token_id: int | None = PAD_TOKEN_ID,
) -> list[ComponentReward]:
    """One TRL reward function per component of ``preset``, in the preset's order.

    Each returns its component times its weight (``weights``: name -> factor, default 1), so their
    sum is ``RewardScorer(preset, judge, weights).score(...).total``; leave ``GRPOConfig.reward_weights``
    unset. They accept plain and conversational completions and ``completion_ids`` (lists of ids or a
    tensor; the repetition reward reads them, cut at ``pad_token_id``), and read the ``answer``,
    ``dataset`` and ``question`` columns of :func:`grit_fast.trl.grit_dataset`. ``judge`` decides
    ``answer_accuracy`` (default: the offline :class:`~grit_fast.rewards.RuleJudge`).
    """
    scorer = RewardScorer(
        preset, judge=judge, weights=weights, num_threads=num_threads, pad_token_id=pad_token_id
    )
    shared = SharedScoring(scorer)
    return [ComponentReward(name, scorer.weights[name], shared) for name in scorer.components]
