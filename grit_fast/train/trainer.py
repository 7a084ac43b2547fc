"""GritTrainer: GRPO-GR on a vision-language model, read top to bottom.

One step (docs/method.md §3), for each of ``gradient_accumulation_steps`` micro-batches of
``batch_size`` prompts (global; each process takes whole groups):

1. rollout  - G completions per prompt (``grit_fast.train.rollout``);
2. score    - GRPO-GR rewards of the decoded completions (``RewardScorer``), grounding IoU as a metric;
3. advantage and loss - group-relative advantages fused with the clipped PG + KL loss on the
   completion tokens' log-probs (``grit_fast.train.loss``, the ``grit_fast.ops`` kernels);
4. step     - backward, gradient clipping, AdamW, LR schedule; ``num_iterations`` (μ) updates per
   rollout, with the first update's own log-probs as the old policy when μ > 1.

``GritTrainer(config, model=None, processor=None, records=None, judge=None, extra_reward=None)``:
pass a model and processor to skip loading, records (dicts, :class:`GritRecord` or a JSONL path) to
skip ``config.data``, a judge callable for ``answer_accuracy``, and ``extra_reward(texts, records) ->
(N,) floats`` to add a reward of your own to the preset's total (logged as ``reward/extra``).
Metrics go to ``output_dir/metrics.jsonl``; checkpoints (fp32 masters) to
``output_dir/checkpoint-<step>``; a finished run's weights in the release's dtype (bf16) to
``output_dir/model`` (``export_model``);
``eval_every``/``eval_on_start`` add evaluation rows (``eval/…``) to the metrics. Where the released
GRIT code behaves differently, a config setting chooses (:class:`GritConfig`, docs/method.md §7).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from grit_fast import distributed
from grit_fast.data import GritRecord, load_records
from grit_fast.data.grit_jsonl import split_paths
from grit_fast.models.forward import model_inputs, token_logprobs
from grit_fast.models.internvl import jpeg_augment
from grit_fast.train import checkpoint, precision
from grit_fast.train.config import ConfigError, GritConfig
from grit_fast.train.export import export_trainer, release_info, wants_export
from grit_fast.train.metrics import (
    PhaseClock,
    eval_metrics,
    rollout_metrics,
    step_metrics,
    zero_advantage_fraction,
)
from grit_fast.train.metrics_log import MetricsLog
from grit_fast.train.policy import build_policy
from grit_fast.train.rollout import Rollout, generate_rollout, prompt_seed
from grit_fast.train.setup import (
    EpochSampler,
    build_optimizer,
    gather_full_state,
    judge_for,
    load_full_state,
)

logger = logging.getLogger(__name__)


def _as_config(config: GritConfig | dict[str, Any] | str | os.PathLike) -> GritConfig:
    if isinstance(config, GritConfig):
        return config
    if isinstance(config, dict):
        return GritConfig.from_dict(config)
    return GritConfig.from_file(config)


@dataclass
class MicroBatch:
    """One micro-batch of a step: its rollout, the model inputs over prompt + completion, the
    rewards (N,), the old-policy (μ > 1) and reference (β > 0) log-probs (N, T) and its metrics."""

    rollout: Rollout
    inputs: dict[str, torch.Tensor]
    rewards: torch.Tensor
    old_logp: torch.Tensor | None
    ref_logp: torch.Tensor | None
    stats: dict[str, float]


class GritTrainer:
    """GRPO-GR training of a Qwen2.5-VL or InternVL3 model; see the module docstring."""

    def __init__(
        self,
        config: GritConfig | dict[str, Any] | str | os.PathLike,
        model: Any = None,
        processor: Any = None,
        records: Sequence[Any] | str | os.PathLike | None = None,
        judge: Any = None,
        extra_reward: Callable[[list[str], list[GritRecord]], Sequence[float]] | None = None,
    ) -> None:
        from grit_fast.rewards import RewardScorer

        self.config = cfg = _as_config(config)
        distributed.init_from_env()
        self.device = distributed.device()
        self.is_main = distributed.is_main()
        self.world = distributed.world_size()
        if cfg.batch_size % self.world:
            raise ValueError(
                f"batch_size={cfg.batch_size} must be a multiple of the {self.world} processes"
            )
        if cfg.parallel == "fsdp" and cfg.lora and self.world > 1:
            # The LoRA reference runs the model outside the sharded forward; LoRA fits with DDP.
            raise NotImplementedError("lora=true with parallel=fsdp is not supported; use ddp")
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed % 2**32)

        if model is None and cfg.model is None:
            raise ConfigError(
                "no model to train: set `model` to a checkpoint folder (e.g. --set "
                "model=path/to/Qwen2.5-VL-3B-Instruct), or to tiny:qwen2.5-vl / tiny:internvl3 "
                "for a tiny random model on purpose"
            )
        # Data first: a bad record should fail before minutes of model loading.
        data = records if records is not None else cfg.data
        if data is None:
            raise ValueError("no training data: set `data` in the config or pass records=")
        self.records = load_records(data, cfg.image_root, cfg.exif_transpose)
        self.sampler = EpochSampler(len(self.records), cfg.seed)
        self.log = MetricsLog(cfg.output_dir, enabled=self.is_main, tensorboard=cfg.tensorboard)

        if (model is None) != (processor is None):
            raise ValueError(
                "pass both model and processor, or neither (then config.model is loaded)"
            )
        built = build_policy(cfg, model, processor, self.device)
        self.model, self.processor, self.adapter = built.model, built.processor, built.adapter
        self.loss_settings = built.loss_settings
        self.policy_loss, self.policy = built.policy_loss, built.policy
        self.ref_model, self.ref_policy = built.ref_model, built.ref_policy
        self.release_dtype, self.fsdp = built.release_dtype, built.fsdp
        self.optimizer, self.scheduler = build_optimizer(
            [p for p in self.model.parameters() if p.requires_grad], cfg
        )
        judge = judge_for(judge, cfg)
        self.scorer = RewardScorer(
            cfg.reward_preset,
            judge=judge,
            weights=cfg.reward_weights,
            num_threads=cfg.reward_threads,
            pad_token_id=self.adapter.pad_token_id,
        )
        self.judge = judge
        self.extra_reward = extra_reward
        self.step = 0
        self._resume()

    # ------------------------------------------------------------------ training
    def train(self, steps: int | None = None) -> list[dict[str, float]]:
        """Run until ``max_steps`` (or ``steps`` more steps); returns each step's metrics."""
        cfg = self.config
        end = cfg.max_steps if steps is None else min(cfg.max_steps, self.step + steps)
        history = []
        bar = tqdm(
            total=end, initial=self.step, desc="grit", disable=not self.is_main, dynamic_ncols=True
        )
        if cfg.eval_on_start and self.step == 0 and self.step < end:
            self._evaluate_and_log()
        while self.step < end:
            metrics = self.training_step()
            history.append(metrics)
            if self.step % cfg.log_every == 0 or self.step == end:
                self.log.log(self.step, metrics)
            bar.set_postfix(
                reward=f"{metrics['reward/mean']:.3f}",
                iou=f"{metrics.get('grounding_iou', float('nan')):.3f}",
                kl=f"{metrics['kl']:.4f}",
                s=f"{metrics['time/step']:.2f}",
            )
            bar.update(1)
            if cfg.eval_every and self.step % cfg.eval_every == 0:
                self._evaluate_and_log()
            if cfg.save_every and self.step % cfg.save_every == 0:
                self.save()
        bar.close()
        # At the end, unless that step was just saved (or no step ran: a finished run resumed).
        saved = cfg.save_every and self.step % cfg.save_every == 0
        if history and self.step == cfg.max_steps:
            if not saved:
                self.save()
            if wants_export(cfg.export_model, self.release_dtype):
                export_trainer(self)
        return history

    def training_step(self) -> dict[str, float]:
        cfg, clock = self.config, PhaseClock()
        batches: list[MicroBatch] = []
        for micro in range(cfg.gradient_accumulation_steps):
            records = self._local_records(micro)
            with clock("generate"), self._autocast():
                rollout = self._rollout(records, micro)
            with clock("score"):
                rewards, stats = self._score(rollout, records)
            with clock("forward_backward"):
                inputs = model_inputs(
                    rollout.prompt_inputs, rollout.completion_ids, rollout.completion_mask
                )
                ref = self._ref_logprobs(inputs, rollout)
            batches.append(MicroBatch(rollout, inputs, rewards, None, ref, stats))

        normalizer = self._token_normalizer(batches)
        # μ > 1: the old policy's log-probs are those the first iteration's loss used (its rows,
        # chunks and kernels), so no extra forward runs and the first ratio is exactly 1; the first
        # iteration itself needs none (ρ ≡ 1).
        for iteration in range(cfg.num_iterations):
            outputs = []
            for i, b in enumerate(batches):
                last = i == len(batches) - 1
                sync = (
                    contextlib.nullcontext()
                    if last or not hasattr(self.policy, "no_sync")
                    else self.policy.no_sync()
                )
                with clock("forward_backward"), sync, self._autocast(cache=False):
                    out = self.policy(
                        b.inputs,
                        b.rollout.completion_ids,
                        b.rollout.completion_mask,
                        b.rewards,
                        b.old_logp,
                        b.ref_logp,
                        normalizer,
                    )
                    (out.loss / len(batches)).backward()
                if iteration == 0 and cfg.num_iterations > 1:
                    b.old_logp = out.logp
                outputs.append(out)
            with clock("optimizer"):
                grad_norm = torch.nn.utils.clip_grad_norm_(
                    self.model.parameters(), cfg.max_grad_norm
                )
                self.optimizer.step()
                lr = self.scheduler.get_last_lr()[0]  # the rate this update used
                self.scheduler.step()
                self.optimizer.zero_grad(set_to_none=True)

        self.step += 1
        stats = [b.stats for b in batches]
        metrics = distributed.mean_over_ranks(step_metrics(stats, outputs, grad_norm, lr, clock))
        if metrics["zero_advantage_group_fraction"] >= 1.0:
            logger.warning(
                "step %d: every group has equal rewards, so every advantage is 0 and nothing is "
                "learned from this step (check the prompt suffix, the reward preset and the "
                "sampling temperature)",
                self.step,
            )
        return metrics

    # ------------------------------------------------------------------ pieces
    def _local_records(self, micro: int) -> list[tuple[int, GritRecord]]:
        """(global position, record) of this process's whole groups in micro-batch ``micro``."""
        cfg = self.config
        indices = self.sampler.take(cfg.batch_size)
        local = cfg.batch_size // self.world
        start = distributed.rank() * local
        base = micro * cfg.batch_size
        return [(base + j, self.records[indices[j]]) for j in range(start, start + local)]

    def _rollout(self, records: list[tuple[int, GritRecord]], micro: int) -> Rollout:
        cfg = self.config
        seeds = [prompt_seed(cfg.seed, self.step, pos) for pos, _ in records]
        images = [r.load_image() for _, r in records]
        if cfg.jpeg_augment:  # one JPEG quality per prompt, shared by its group
            images = [jpeg_augment(image, seed) for image, seed in zip(images, seeds, strict=True)]
        return generate_rollout(
            self.policy_loss,
            self.adapter,
            [r.question for _, r in records],
            images,
            group_size=cfg.num_generations,
            seeds=seeds,
            max_new_tokens=cfg.max_new_tokens,
            temperature=cfg.temperature,
            top_k=cfg.top_k,
            top_p=cfg.top_p,
            max_prompt_length=cfg.max_prompt_length,
            synced_gpus=self.fsdp,
        )

    def _score(
        self, rollout: Rollout, records: list[tuple[int, GritRecord]]
    ) -> tuple[torch.Tensor, dict[str, float]]:
        g = rollout.group_size
        expanded = [r for _, r in records for _ in range(g)]
        batch = self.scorer.score(
            rollout.texts,
            [r.answer for r in expanded],
            [r.dataset for r in expanded],
            questions=[r.question for r in expanded],
            completion_ids=rollout.completion_ids.cpu(),
        )
        stats = rollout_metrics(batch, rollout, expanded, self.adapter)
        total = np.asarray(batch.total, dtype=np.float64)
        if self.extra_reward is not None:
            extra = np.asarray(self.extra_reward(rollout.texts, expanded), dtype=np.float64)
            if extra.shape != total.shape or not np.isfinite(extra).all():
                raise ValueError(
                    f"extra_reward must return {len(total)} finite numbers, got shape {extra.shape}"
                )
            total = total + extra
            stats["reward/extra"] = float(extra.mean())
            stats["reward/mean"] = float(total.mean())
            stats["reward/std"] = float(total.std())
            stats["zero_advantage_group_fraction"] = zero_advantage_fraction(
                total, rollout.group_size
            )
        return torch.as_tensor(total, dtype=torch.float32, device=self.device), stats

    def _ref_logprobs(
        self, inputs: dict[str, torch.Tensor], rollout: Rollout
    ) -> torch.Tensor | None:
        if self.config.beta == 0:
            return None
        s, ids = self.loss_settings, rollout.completion_ids
        with self._autocast():
            if self.ref_policy is not None:
                logp = self.ref_policy.logprobs(inputs, ids)
                if self.fsdp:  # FSDP keeps a root's weights gathered after its forward
                    self.ref_policy.reshard()
                return logp
            with self.model.disable_adapter():  # LoRA: the base weights are the reference
                return token_logprobs(self.model, inputs, ids, s.temperature, s.fused)

    def _token_normalizer(self, batches: list[MicroBatch]) -> float | None:
        """``loss_type=dapo``: the step's unmasked-token count over micro-batches and processes,
        scaled so that the per-micro-batch mean and the gradient average over ranks give
        Σ token losses / count."""
        if self.config.loss_type != "dapo":
            return None
        local = sum(float(b.rollout.completion_mask.sum()) for b in batches)
        per_rank = distributed.mean_over_ranks({"tokens": local})["tokens"]
        return max(per_rank, 1.0) / len(batches)

    def _autocast(self, cache: bool = True) -> Any:
        return precision.autocast(self.config.bf16, self.device, cache)

    # ------------------------------------------------------------------ evaluation, checkpoints
    def evaluate(
        self,
        records: Sequence[Any] | str | os.PathLike | None = None,
        max_new_tokens: int | None = None,
        out_dir: str | os.PathLike | None = None,
    ) -> dict[str, Any]:
        """Greedy completions of ``records`` (default ``config.eval_data``, else the training set),
        generated and scored by the batched evaluator of :func:`grit_fast.evaluate`:
        ``{"overall": …, "datasets": {…}}`` with ACC, grounding IoU, format compliance and the
        mean of each reward component. ``predictions.jsonl`` and ``metrics.json`` go to
        ``out_dir`` (default ``output_dir/eval/step-<step>``)."""
        from grit_fast.eval.evaluation import EvalOptions, evaluate_records

        cfg = self.config
        data = records if records is not None else cfg.eval_data
        root = cfg.image_root
        if data is not None:
            root = cfg.eval_image_root
            if root is None and len(split_paths(cfg.image_root, "image_root")) == 1:
                root = cfg.image_root  # one training image folder serves evaluation too
        items = self.records if data is None else load_records(data, root, cfg.exif_transpose)
        out = Path(cfg.output_dir) / "eval" / f"step-{self.step}" if out_dir is None else out_dir
        options = EvalOptions(
            judge=self.judge,
            batch_size=max(1, cfg.batch_size * cfg.num_generations // self.world),
            max_new_tokens=max_new_tokens or cfg.max_new_tokens,
            resume=False,
            preset=cfg.reward_preset,
            image_root=root,
            synced_gpus=self.fsdp,
        )
        return evaluate_records(self.policy_loss, self.adapter, items, out, options)

    def _evaluate_and_log(self) -> None:
        """Evaluate (``eval_data``, else the training set) and add the numbers to
        ``metrics.jsonl`` at this step (``eval/…``), as ``eval_every``/``eval_on_start`` ask."""
        metrics = eval_metrics(self.evaluate())
        self.log.log(self.step, metrics)
        logger.info("step %d: evaluation %s", self.step, metrics)

    def state_dict(self) -> dict[str, Any]:
        """What resuming needs besides the config: ``model`` (the full weights under FSDP, else None:
        the checkpoint's model folder holds them), ``optimizer``, ``scheduler``, ``sampler`` (the
        prompt order) and ``step``. Under FSDP a collective: every process must call it, and rank 0
        gets the full state."""
        if self.fsdp:
            model_state, optimizer_state = gather_full_state(self.model, self.optimizer)
        else:
            model_state, optimizer_state = None, self.optimizer.state_dict()
        return {
            "model": model_state,
            "optimizer": optimizer_state,
            "scheduler": self.scheduler.state_dict(),
            "sampler": self.sampler.state_dict(),
            "step": self.step,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """The inverse of :meth:`state_dict` (``model`` None: the weights are already in place)."""
        if self.fsdp:
            load_full_state(self.model, self.optimizer, state["model"], state["optimizer"])
        else:
            if state["model"] is not None:
                self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.sampler.load_state_dict(state["sampler"])
        self.step = int(state["step"])

    def save(self) -> Path | None:
        """Write ``checkpoint-<step>`` (main process only; under FSDP every process first helps
        gather the state); every process waits for it."""
        cfg = self.config
        state = self.state_dict()
        path = None
        if self.is_main:
            model_state = state.pop("model")
            path = checkpoint.save_checkpoint(
                cfg.output_dir,
                self.step,
                self.model,
                self.processor,
                state,
                cfg.to_dict(),
                model_state,
                release_info(self.release_dtype, cfg.model),
                self.adapter.options,
            )
        distributed.barrier()
        return path

    def _resume(self) -> None:
        """Apply ``config.resume`` (None, "auto" or a checkpoint path)."""
        cfg = self.config
        if cfg.resume is None:
            return
        path = checkpoint.latest_checkpoint(cfg.output_dir) if cfg.resume == "auto" else cfg.resume
        if path is None:
            logger.info("resume=auto: no checkpoint in %s, starting fresh", cfg.output_dir)
            return
        state = checkpoint.load_trainer_state(path)
        if self.fsdp:
            state["model"] = checkpoint.saved_model_state(self.model, path)
        else:
            checkpoint.load_model_weights(self.model, path)
            state["model"] = None
        self.load_state_dict(state)
        checkpoint.set_rng_state(state["rng"])
        logger.info("resumed from %s at step %d", path, self.step)
