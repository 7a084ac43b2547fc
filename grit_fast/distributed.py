"""Thin helpers over ``torch.distributed`` for data-parallel GRPO-GR (DDP, or FSDP2 with
``parallel=fsdp``; gloo on CPU, NCCL on GPU).

``torchrun --nproc_per_node=K grit-fast train …`` sets ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``;
:func:`init_from_env` starts the process group from them. Each rank owns whole prompt groups (so
advantages need no communication); metrics are averaged with one ``all_reduce``; only rank 0 writes
checkpoints and logs. Without those variables everything here is a no-op for a single process.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch
import torch.distributed as dist


def env_world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def init_from_env() -> bool:
    """Start the default process group when launched by torchrun with >1 process; True if running."""
    if dist.is_available() and dist.is_initialized():
        return True
    if env_world_size() <= 1:
        return False
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(local_rank())
    dist.init_process_group(backend=backend)
    return True


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main() -> bool:
    return rank() == 0


def device() -> torch.device:
    """This process's device: its local GPU when CUDA is available, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", local_rank())
    return torch.device("cpu")


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def mean_over_ranks(values: Mapping[str, float], weight: float = 1.0) -> dict[str, float]:
    """Weighted mean of each scalar over ranks (one all_reduce of a float64 vector).

    ``weight`` is this rank's share (e.g. its number of sequences); NaN entries stay NaN.
    """
    keys = sorted(values)
    if not is_distributed():
        return {k: float(values[k]) for k in keys}
    vec = torch.tensor([float(values[k]) * weight for k in keys] + [weight], dtype=torch.float64)
    if dist.get_backend() == "nccl":
        vec = vec.to(device())
    dist.all_reduce(vec)
    total = vec[-1].item()
    return {k: (vec[i] / total).item() for i, k in enumerate(keys)}


def destroy() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
