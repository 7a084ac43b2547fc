"""Small helpers the launchers share. Nothing here imports triton."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import Tensor


def next_power_of_2(n: int) -> int:
    return 1 << max(int(n) - 1, 0).bit_length()


def block_size(n: int, device: Any, gpu_cap: int, cpu_cap: int = 16384) -> int:
    """A power-of-two block covering up to ``n``: capped at ``gpu_cap`` on a GPU (registers), and
    at a larger ``cpu_cap`` in the interpreter, where each block iteration costs ~1 ms of Python."""
    cap = gpu_cap if device.type == "cuda" else cpu_cap
    return max(16, min(next_power_of_2(n), cap))


# Rewards of a group one program reads at once; a larger group is read in several blocks (on a GPU a
# block of 1,024 fp32 fits the registers; groups are usually 4-16 completions).
GROUP_BLOCK_CAP = 1024


def group_block(group_size: int, device: Any) -> int:
    """BLOCK_G of the kernels that compute group advantages (they loop over larger groups)."""
    return block_size(group_size, device, GROUP_BLOCK_CAP, GROUP_BLOCK_CAP)


def on_device(tensor: Tensor) -> Any:
    """A context in which Triton launches on ``tensor``'s GPU. Triton launches on the *current* CUDA
    device, which need not hold the tensors (cuda:1 tensors while cuda:0 is current: another
    device's pointers). A no-op off CUDA."""
    import contextlib

    import torch

    if tensor.device.type != "cuda":
        return contextlib.nullcontext()
    return torch.cuda.device(tensor.device)


def kernel_mask(mask: Tensor) -> Tensor:
    """The mask as a contiguous tensor a kernel can load and cast: bool is viewed as uint8."""
    import torch

    mask = mask.contiguous()
    return mask.view(torch.uint8) if mask.dtype == torch.bool else mask


def as_float_or_tensor(value: Any) -> Any:
    """``normalizer`` may be a Python number or a 0-dim tensor (no host sync for the latter)."""
    return value.float() if hasattr(value, "dim") else float(value)
