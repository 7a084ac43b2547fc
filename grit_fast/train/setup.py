"""What the trainer builds once: the prompt order, the optimizer, the LR schedule, LoRA, activation
checkpointing, DDP or FSDP2, and the judge as the config asks for it.

The LR schedule (``lr_lambda``): linear warm-up over ``warmup_steps`` updates, then ``cosine``
(0.5·(1 + cos(π·p)), p the fraction of the remaining updates done), ``linear`` (1 - p) or
``constant``; the total is ``max_steps × num_iterations`` optimizer updates.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from grit_fast.train.config import GritConfig


class EpochSampler:
    """Prompt indices in a seeded random order per epoch; resumable (``state_dict``).

    Every process holds the same sampler, so all agree on the global batch; each takes its slice.
    """

    def __init__(self, size: int, seed: int) -> None:
        self.size = size
        self.seed = seed
        self.epoch = 0
        self.position = 0

    def _order(self) -> list[int]:
        generator = torch.Generator().manual_seed(self.seed * 7919 + self.epoch)
        return torch.randperm(self.size, generator=generator).tolist()

    def take(self, count: int) -> list[int]:
        out: list[int] = []
        order = self._order()
        while len(out) < count:
            if self.position == self.size:
                self.epoch += 1
                self.position = 0
                order = self._order()
            n = min(count - len(out), self.size - self.position)
            out.extend(order[self.position : self.position + n])
            self.position += n
        return out

    def state_dict(self) -> dict[str, int]:
        return {
            "size": self.size,
            "seed": self.seed,
            "epoch": self.epoch,
            "position": self.position,
        }

    def load_state_dict(self, state: dict[str, int]) -> None:
        if state["size"] != self.size:
            raise ValueError(
                f"the checkpoint was taken on {state['size']} records but the data has {self.size}"
            )
        self.seed, self.epoch, self.position = state["seed"], state["epoch"], state["position"]


class UserTextJudge:
    """A judge whose question slot receives GRIT's whole user text (``"\\nQuestion: " + question
    + suffix``, :func:`grit_fast.models.grit_user_text`), as the released code's judge does
    (``judge_question: user_text``); ``judge`` receives (questions, answers, predictions)."""

    def __init__(self, judge: Any) -> None:
        self.judge = judge

    def __call__(self, questions: Any, answers: Any, predictions: Any) -> Any:
        from grit_fast.models import grit_user_text

        return self.judge([grit_user_text(q) for q in questions], answers, predictions)

    def __repr__(self) -> str:
        return f"UserTextJudge({self.judge!r})"


def judge_for(judge: Any, config: GritConfig) -> Any:
    """``judge`` as ``config.judge_question`` asks: as it is (``question``) or wrapped in
    :class:`UserTextJudge`. None and a plain :class:`~grit_fast.rewards.RuleJudge` read no
    question and stay as they are (so the rule judge keeps running in the compiled core)."""
    from grit_fast.rewards import RuleJudge

    if judge is None or type(judge) is RuleJudge or config.judge_question == "question":
        return judge
    return UserTextJudge(judge)


def lr_lambda(config: GritConfig) -> Any:
    total = config.max_steps * config.num_iterations
    warmup = config.warmup_steps

    def factor(update: int) -> float:
        if update < warmup:
            return (update + 1) / (warmup + 1)
        p = min(1.0, (update - warmup) / max(1, total - warmup))
        if config.lr_scheduler == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * p))
        if config.lr_scheduler == "linear":
            return 1.0 - p
        return 1.0

    return factor


def build_optimizer(params: list[torch.nn.Parameter], config: GritConfig) -> tuple[Any, Any]:
    """(AdamW, LambdaLR) over the trainable ``params``."""
    optimizer = torch.optim.AdamW(
        params, lr=config.lr, betas=config.adam_betas, weight_decay=config.weight_decay
    )
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(config))


def apply_lora(model: Any, config: GritConfig) -> Any:
    """Wrap ``model`` with PEFT LoRA adapters (the ``lora`` extra: ``pip install grit-fast[lora]``)."""
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError:
        raise ImportError("lora=true needs PEFT: pip install 'grit-fast[lora]'") from None
    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=config.lora_target_modules,
    )
    return get_peft_model(model, lora)


# gradient_checkpointing: null turns it on from this size: every released model (2-4 B parameters)
# needs it at the paper's lengths (grit_fast.train.memory), the tiny test models (~10 M) do not.
AUTO_CHECKPOINTING_PARAMS = 100_000_000


def wants_checkpointing(setting: bool | None, params: int) -> bool:
    """The config's ``gradient_checkpointing``, with None (auto) decided by the model's size."""
    return params >= AUTO_CHECKPOINTING_PARAMS if setting is None else setting


def enable_checkpointing(model: Any) -> None:
    """Recompute activations in the backward (non-reentrant; transformers >= 5.x renamed the call)."""
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


def wrap_parallel(
    module: torch.nn.Module, config: GritConfig, device: torch.device
) -> torch.nn.Module:
    """When running distributed: DDP around ``module``, or ``parallel=fsdp``: :func:`shard_fsdp`."""
    from grit_fast import distributed

    if not distributed.is_distributed():
        return module
    if config.parallel == "fsdp":
        return shard_fsdp(module)
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    # Gradients as views of DDP's all-reduce buckets: no second fp32 copy of every gradient.
    return DistributedDataParallel(module, device_ids=ids, gradient_as_bucket_view=True)


def shard_fsdp(policy: torch.nn.Module) -> torch.nn.Module:
    """FSDP2 (``fully_shard``) in place: each transformer block (the model's ``_no_split_modules``)
    is one unit, everything else (embeddings, vision merger, final norm, lm_head) the root, which is
    ``policy`` so that its forward unshards all the weights the loss touches. ``policy.generate`` and
    ``policy.logprobs`` are registered as forward methods, so generation unshards them too."""
    from torch.distributed.fsdp import fully_shard, register_fsdp_forward_method

    names: set[str] = set()
    for module in policy.modules():
        names.update(getattr(module, "_no_split_modules", None) or ())
    blocks = [
        m
        for m in policy.modules()
        if type(m).__name__ in names or type(m).__name__.endswith("DecoderLayer")
    ]
    if not blocks:
        raise ValueError("parallel=fsdp: found no transformer blocks to shard in the model")
    for block in blocks:
        fully_shard(block)
    fully_shard(policy)
    for method in ("generate", "logprobs"):
        register_fsdp_forward_method(policy, method)
    return policy


def full_tensor(x: Any) -> torch.Tensor:
    """A DTensor (FSDP2) gathered into a plain tensor; anything else as it is."""
    return x.full_tensor() if hasattr(x, "full_tensor") else x


def gather_full_state(model: torch.nn.Module, optimizer: Any) -> tuple[dict, dict]:
    """(model, optimizer) full state dicts of an FSDP-sharded model, on CPU, on rank 0 (the others
    get empty dicts). A collective: every process must call it."""
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        get_model_state_dict,
        get_optimizer_state_dict,
    )

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    model_state = get_model_state_dict(model, options=options)
    return model_state, get_optimizer_state_dict(model, optimizer, options=options)


def load_full_state(
    model: torch.nn.Module, optimizer: Any, model_state: dict, optimizer_state: dict
) -> None:
    """Load full (unsharded) state dicts into an FSDP-sharded model and its optimizer; each process
    passes the full dicts and keeps its own shard."""
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        set_model_state_dict,
        set_optimizer_state_dict,
    )

    options = StateDictOptions(full_state_dict=True)
    set_model_state_dict(model, model_state, options=options)
    set_optimizer_state_dict(model, optimizer, optimizer_state, options=options)
