"""The one place that decides which implementation a public function runs.

Every accelerated public function has a pure-Python/torch reference twin with the same signature and
a fast path of one of two kinds:

* ``compiled`` - the C++ extension ``grit_fast._C`` (used whenever it imported);
* ``triton``   - a Triton kernel, used for CUDA tensors, and for CPU tensors when
  ``TRITON_INTERPRET=1`` was set before triton was imported (Triton's CPU interpreter, for tests).

The backend mode comes from ``GRIT_FAST_BACKEND`` (read at each call) or the :func:`backend`
context manager, which wins over the variable:

* ``auto`` (default) - the fast path where it applies, the reference otherwise;
* ``reference``      - always the reference (for debugging and comparisons);
* ``fast``           - always the fast path; raises :class:`FastPathUnavailable` where it cannot run
  (the test suite turns that into a skip, or a failure under ``GRIT_FAST_REQUIRE_FAST=1``).

Public functions ask ``use_fast(op, *tensors)`` and branch; :data:`FAST_PATHS` lists every op so that
``grit-fast info`` can report what each one dispatches to. Nothing here imports triton or touches a
GPU at import time.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import importlib.util
import os
from collections.abc import Iterator
from functools import cache
from types import ModuleType
from typing import Any

COMPILED = "compiled"
TRITON = "triton"
MODES = ("auto", "reference", "fast")
BACKEND_ENV = "GRIT_FAST_BACKEND"

# Every public op with a fast path, and the kind of that path. One line per op.
FAST_PATHS: dict[str, str] = {
    # trace parsing and rewards (grit_fast.rewards)
    "parse_traces": COMPILED,
    "score_rewards": COMPILED,
    "rule_judge": COMPILED,
    # geometry and coordinates (grit_fast.rewards.geometry)
    "box_iou": COMPILED,
    "grounding_iou_batch": COMPILED,
    # loss ops (grit_fast.ops)
    "group_advantages": TRITON,
    "grpo_loss": TRITON,
    "selective_log_softmax": TRITON,
    "grpo_loss_from_logits": TRITON,
    # fused linear ops (grit_fast.ops.fused_linear; CPU tensors otherwise take its chunked torch path)
    "fused_linear_grpo_loss": TRITON,
    "fused_linear_log_probs": TRITON,
    "fused_linear_policy_loss": TRITON,
}

# Ops whose CPU tensors, without Triton's interpreter, take a path of their own rather than the twin.
CPU_PATHS: dict[str, str] = {
    "fused_linear_grpo_loss": "chunked torch",
    "fused_linear_log_probs": "chunked torch",
    "fused_linear_policy_loss": "chunked torch",
}

_mode_override: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "grit_fast_backend", default=None
)


class FastPathUnavailable(RuntimeError):
    """The backend mode is ``fast`` but the op's fast path cannot run on these inputs here."""

    def __init__(self, op: str, reason: str) -> None:
        super().__init__(f"{op}: fast path unavailable: {reason}")
        self.op = op
        self.reason = reason


def mode() -> str:
    """The backend mode in force: the :func:`backend` context if any, else ``GRIT_FAST_BACKEND``."""
    override = _mode_override.get()
    if override is not None:
        return override
    value = os.environ.get(BACKEND_ENV, "auto").strip().lower() or "auto"
    if value not in MODES:
        raise ValueError(f"{BACKEND_ENV}={value!r} is not a backend mode; expected one of {MODES}")
    return value


@contextlib.contextmanager
def backend(name: str) -> Iterator[None]:
    """Run the block with backend mode ``name`` (``auto``, ``reference`` or ``fast``)."""
    if name not in MODES:
        raise ValueError(f"backend {name!r} is not a backend mode; expected one of {MODES}")
    token = _mode_override.set(name)
    try:
        yield
    finally:
        _mode_override.reset(token)


@cache
def compiled_module() -> ModuleType | None:
    """``grit_fast._C`` if it was built and imports, else None (see :func:`compiled_error`)."""
    try:
        return importlib.import_module("grit_fast._C")
    except ImportError:
        return None


@cache
def compiled_error() -> str | None:
    """Why ``grit_fast._C`` is unavailable, or None when it imported."""
    try:
        importlib.import_module("grit_fast._C")
    except ImportError as exc:
        return f"grit_fast._C did not import ({exc}); reinstall with `pip install .` to compile it"
    return None


def require_compiled() -> ModuleType:
    """``grit_fast._C``, or an ImportError that says how to get it."""
    module = compiled_module()
    if module is None:
        raise ImportError(compiled_error())
    return module


def triton_interpreter() -> bool:
    """True when Triton's CPU interpreter was requested (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


@cache
def triton_installed() -> bool:
    """True when the triton package is installed (found without importing it)."""
    return importlib.util.find_spec("triton") is not None


def _devices(tensors: tuple[Any, ...]) -> set[str]:
    return {t.device.type for t in tensors if hasattr(t, "device")}


def fast_path_reason(op: str, *tensors: Any) -> str | None:
    """None when ``op``'s fast path can run on ``tensors`` here, else why it cannot."""
    kind = FAST_PATHS.get(op)
    if kind is None:
        raise KeyError(f"{op!r} is not registered in grit_fast._dispatch.FAST_PATHS")
    if kind == COMPILED:
        return compiled_error()
    if not triton_installed():
        return "triton is not installed (pip install triton; Linux only)"
    devices = _devices(tensors)
    if len(devices) > 1:
        return f"tensors are on several device types {sorted(devices)}"
    device = devices.pop() if devices else "cpu"
    if device == "cuda":
        return None
    if device == "cpu" and triton_interpreter():
        return None
    if device == "cpu":
        return "Triton runs CPU tensors only when TRITON_INTERPRET=1 is set"
    return f"no Triton path for {device} tensors"


def use_fast(op: str, *tensors: Any) -> bool:
    """Whether ``op`` should run its fast path on ``tensors`` under the current backend mode."""
    current = mode()
    if current == "reference":
        return False
    reason = fast_path_reason(op, *tensors)
    if reason is None:
        return True
    if current == "fast":
        raise FastPathUnavailable(op, reason)
    return False


def describe(op: str, device: str = "cpu") -> str:
    """What ``op`` dispatches to for tensors on ``device`` under the current mode, in words."""
    if mode() == "reference":
        return "reference (forced by GRIT_FAST_BACKEND=reference)"
    reason = fast_path_reason(op, _DeviceOnly(device))
    if reason is None:
        return FAST_PATHS[op]
    if device == "cpu" and op in CPU_PATHS:
        return f"{CPU_PATHS[op]} ({reason})"
    return f"reference ({reason})"


class _DeviceOnly:
    """Stands for a tensor on ``device`` so that dispatch can be described without allocating one."""

    def __init__(self, device: str) -> None:
        self.device = type("device", (), {"type": device})()
