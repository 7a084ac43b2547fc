"""The serving export: the trained weights in the release's dtype, as a folder a serving stack loads.

Training checkpoints hold fp32 master weights (exact resume; :mod:`grit_fast.train.precision`), twice
the size of the bf16 release. :func:`export_model` writes ``model.safetensors`` cast to the release's
dtype, ``config.json`` saying so, the model's ``generation_config.json`` (the release's own serving
defaults; training never reads them) and the processor, whose files name transformers' own
processor class rather than grit_fast's image-only subclass. A finished run from a checkpoint that is
not fp32 (the releases are bf16) writes ``output_dir/model/`` (:func:`export_trainer`,
``export_model``); ``grit-fast export CHECKPOINT`` does it for any training checkpoint, which records
the release's dtype in ``release.json``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from grit_fast.models.loading import write_adapter_options

logger = logging.getLogger(__name__)

RELEASE_FILE = "release.json"
DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def release_info(dtype: torch.dtype, model: str) -> dict[str, str]:
    """What a training checkpoint records of the checkpoint it started from."""
    return {"dtype": dtype_name(dtype), "model": model}


def release_dtype(checkpoint: str | os.PathLike) -> torch.dtype | None:
    """The release dtype a training checkpoint recorded, or None when it has no ``release.json``."""
    path = Path(checkpoint) / RELEASE_FILE
    if not path.is_file():
        return None
    try:
        name = json.loads(path.read_text(encoding="utf-8"))["dtype"]
        return DTYPES[name]
    except (ValueError, KeyError, TypeError):
        raise ValueError(f"{path}: expected {{'dtype': one of {sorted(DTYPES)}, ...}}") from None


def _transformers_class_name(processor: Any) -> str:
    """The nearest class of ``processor`` that transformers itself defines."""
    for cls in type(processor).__mro__:
        if cls.__module__.startswith("transformers."):
            return cls.__name__
    return type(processor).__name__


# The processor's small settings files (tokenizer.json, megabytes, names no class).
SETTINGS_FILES = (
    "processor_config.json",
    "preprocessor_config.json",
    "tokenizer_config.json",
    "video_preprocessor_config.json",
)


def _name_processor_class(folder: Path, name: str) -> None:
    for path in (folder / f for f in SETTINGS_FILES):
        if not path.is_file():
            continue
        settings = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(settings, dict) and "processor_class" in settings:
            settings["processor_class"] = name
            path.write_text(json.dumps(settings, indent=2, ensure_ascii=False) + "\n", "utf-8")


def _set_config_dtype(folder: Path, dtype: torch.dtype) -> None:
    """``config.json`` says the weights' dtype (save_pretrained writes the live model's, fp32)."""

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key in ("dtype", "torch_dtype"):
                if key in node:
                    node[key] = dtype_name(dtype)
            for value in node.values():
                walk(value)

    path = folder / "config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    walk(config)
    config["dtype"] = dtype_name(dtype)
    path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _cast_state(state: dict[str, torch.Tensor], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """``state`` on the host with floating tensors in ``dtype``, one tensor at a time (no second
    copy on the device). Tensors that share memory (tied embeddings) stay shared, so that
    ``save_pretrained`` still writes them once."""
    done: dict[tuple, torch.Tensor] = {}
    out = {}
    for key, value in state.items():
        value = value.detach()
        same = (value.data_ptr(), value.dtype, tuple(value.shape), tuple(value.stride()))
        if value.data_ptr() == 0 or same not in done:
            target = dtype if value.is_floating_point() else value.dtype
            done[same] = value.to("cpu", target)
        out[key] = done[same]
    return out


def export_model(
    model: Any,
    processor: Any,
    out_dir: str | os.PathLike,
    dtype: torch.dtype,
    state_dict: dict[str, torch.Tensor] | None = None,
    adapter_options: dict[str, Any] | None = None,
) -> Path:
    """Write ``model`` (or the full ``state_dict`` of it, as FSDP gathers it) with floating weights in
    ``dtype``, ``processor`` and the run's ``adapter_options`` (``grit_adapter.json``) to ``out_dir``;
    atomically (a temporary folder, then a rename)."""
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".tmp-{out.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    state = model.state_dict() if state_dict is None else state_dict
    cast = _cast_state(state, dtype)
    try:
        model.save_pretrained(tmp, state_dict=cast)
        _set_config_dtype(tmp, dtype)
        if processor is not None:
            processor.save_pretrained(tmp)
            _name_processor_class(tmp, _transformers_class_name(processor))
        if adapter_options is not None:
            write_adapter_options(tmp, adapter_options)
        if out.exists():
            old = out.parent / f".old-{out.name}-{os.getpid()}"
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("exported %s weights to %s", dtype_name(dtype), out)
    return out


def wants_export(setting: bool | None, checkpoint_dtype: torch.dtype) -> bool:
    """The config's ``export_model``; None (auto): when the serving dtype differs from the training
    checkpoints' fp32 (a bf16 release), else the last checkpoint already is the serving folder."""
    return checkpoint_dtype != torch.float32 if setting is None else setting


def export_trainer(trainer: Any) -> Path | None:
    """``output_dir/model/`` of a :class:`~grit_fast.train.trainer.GritTrainer` in its release
    dtype, written by the main process (under FSDP every process first helps gather the weights)."""
    from grit_fast import distributed

    if hasattr(trainer.model, "peft_config"):
        logger.info(
            "lora=true: no serving export; the checkpoints hold the adapter (merge it with peft)"
        )
        return None
    state = None
    if trainer.fsdp:
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            get_model_state_dict,
        )

        options = StateDictOptions(full_state_dict=True, cpu_offload=True)
        state = get_model_state_dict(trainer.model, options=options)
    path = None
    if trainer.is_main:
        out = Path(trainer.config.output_dir) / "model"
        path = export_model(
            trainer.model,
            trainer.processor,
            out,
            trainer.release_dtype,
            state,
            trainer.adapter.options,
        )
    distributed.barrier()
    return path
