"""Atomic checkpoints: model, processor, optimizer, scheduler, RNG states and data position.

Layout: ``output_dir/checkpoint-<step>/`` holding the model (``save_pretrained``, fp32 master
weights; the adapter only under LoRA), the processor, ``trainer_state.pt`` (optimizer, scheduler, RNG
states, sampler position, step), ``grit_config.json`` and ``release.json`` (the starting
checkpoint's dtype, which ``grit-fast export`` returns to). A save is written to a hidden temporary directory beside it and
renamed into place only when complete, so an interrupted save leaves at most a stray temporary
directory and never damages an earlier checkpoint; :func:`latest_checkpoint` ignores temporaries.
The trainer decides what its state is (:meth:`GritTrainer.state_dict`); this module writes and
reads the files.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from grit_fast.models.loading import write_adapter_options
from grit_fast.train.export import RELEASE_FILE

logger = logging.getLogger(__name__)

PREFIX = "checkpoint-"
STATE_FILE = "trainer_state.pt"
_NAME = re.compile(rf"^{PREFIX}(\d+)$")


def rng_state() -> dict[str, Any]:
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.random.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.random.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def list_checkpoints(output_dir: str | os.PathLike) -> list[Path]:
    """Complete checkpoints in ``output_dir``, oldest step first."""
    root = Path(output_dir)
    if not root.is_dir():
        return []
    found = []
    for child in root.iterdir():
        match = _NAME.match(child.name)
        if match and child.is_dir() and (child / STATE_FILE).is_file():
            found.append((int(match.group(1)), child))
    return [path for _, path in sorted(found)]


def latest_checkpoint(output_dir: str | os.PathLike) -> Path | None:
    found = list_checkpoints(output_dir)
    return found[-1] if found else None


def save_checkpoint(
    output_dir: str | os.PathLike,
    step: int,
    model: Any,
    processor: Any,
    trainer_state: dict[str, Any],
    config: dict[str, Any],
    model_state: dict[str, Any] | None = None,
    release: dict[str, Any] | None = None,
    adapter_options: dict[str, Any] | None = None,
) -> Path:
    """Write ``checkpoint-<step>`` atomically (temporary directory, then rename); returns its path.

    ``model_state``: the full state dict to write instead of the model's own (FSDP gathers it).
    ``release``: what to record of the starting checkpoint (``release.json``: its dtype, for the
    serving export). ``adapter_options``: the run's adapter options (``grit_adapter.json``, read
    back when the folder is evaluated or exported)."""
    root = Path(output_dir)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"{PREFIX}{step}"
    tmp = root / f".tmp-{PREFIX}{step}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        if model_state is None:
            model.save_pretrained(tmp)
        else:
            model.save_pretrained(tmp, state_dict=model_state)
        if processor is not None:
            processor.save_pretrained(tmp)
        torch.save({**trainer_state, "rng": rng_state(), "step": step}, tmp / STATE_FILE)
        (tmp / "grit_config.json").write_text(json.dumps(config, indent=2, default=str))
        if release is not None:
            (tmp / RELEASE_FILE).write_text(json.dumps(release, indent=2))
        if adapter_options is not None:
            write_adapter_options(tmp, adapter_options)
        _fsync_dir(tmp)
        if final.exists():  # re-saving a step: move the old one aside first, then drop it
            old = root / f".old-{PREFIX}{step}-{os.getpid()}"
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
        _fsync_dir(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("saved checkpoint %s", final)
    return final


def _fsync_dir(path: Path) -> None:
    for child in path.iterdir():
        if child.is_file():
            with child.open("rb") as handle:
                os.fsync(handle.fileno())
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load_trainer_state(path: str | os.PathLike) -> dict[str, Any]:
    """``trainer_state.pt`` of a checkpoint (optimizer, scheduler, RNG, sampler, step)."""
    path = Path(path)
    file = path / STATE_FILE
    if not file.is_file():
        raise FileNotFoundError(f"{path} is not a complete grit_fast checkpoint (no {STATE_FILE})")
    return torch.load(file, map_location="cpu", weights_only=False)


def load_model_weights(model: Any, path: str | os.PathLike) -> None:
    """Load the weights saved in checkpoint ``path`` into ``model`` (full model or LoRA adapter)."""
    path = Path(path)
    if hasattr(model, "peft_config"):
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        set_peft_model_state_dict(model, load_file(str(path / "adapter_model.safetensors")))
        return
    missing, unexpected = model.load_state_dict(saved_model_state(model, path), strict=False)
    if missing or unexpected:
        raise RuntimeError(
            f"checkpoint {path} does not match the model: missing {missing}, unexpected {unexpected}"
        )


def saved_model_state(model: Any, path: str | os.PathLike) -> dict[str, Any]:
    """The full weights of checkpoint ``path`` keyed as ``model.state_dict()`` keys them."""
    # save_pretrained writes the checkpoint format (keys may be renamed from the module tree), so
    # load through from_pretrained, which knows the mapping.
    dtype = next(model.parameters()).dtype
    return type(model).from_pretrained(Path(path), dtype=dtype).state_dict()
