"""What this install can do (:func:`info`, shown by ``grit-fast info``) and what each public op
dispatches to."""

from __future__ import annotations

import importlib.metadata
import platform
from typing import Any

from grit_fast import _dispatch
from grit_fast._version import __version__


def _package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _triton_status(cuda: bool) -> str:
    if not _dispatch.triton_installed():
        return "not installed"
    if cuda:
        return "runs on the GPU"
    if _dispatch.triton_interpreter():
        return "runs on CPU tensors through its interpreter (TRITON_INTERPRET=1)"
    return "installed, but cannot run here (no GPU; set TRITON_INTERPRET=1 for the CPU interpreter)"


def info() -> dict[str, Any]:
    """A dict describing this install: versions, the compiled core, Triton, and each op's backend."""
    import torch

    compiled = _dispatch.compiled_module()
    cuda = torch.cuda.is_available()
    return {
        "grit_fast": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "compiled_core": {
            "available": compiled is not None,
            "threads": compiled.default_num_threads() if compiled else None,
            "build": compiled.build_info() if compiled else None,
            "error": _dispatch.compiled_error(),
        },
        "triton": {"version": _package_version("triton"), "status": _triton_status(cuda)},
        "torch": {
            "version": torch.__version__,
            "cuda_build": torch.version.cuda,
            "cuda_available": cuda,
            "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        },
        "transformers": _package_version("transformers"),
        "backend_mode": _dispatch.mode(),
        "ops": {
            op: {"cpu": _dispatch.describe(op, "cpu"), "cuda": _dispatch.describe(op, "cuda")}
            for op in sorted(_dispatch.FAST_PATHS)
        },
    }
