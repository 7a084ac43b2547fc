"""Stub of grit_fast._C, the compiled core. Private: call it through the grit_fast package."""

__version__: str

def default_num_threads() -> int:
    """Threads a batch call uses when num_threads <= 0 (GRIT_FAST_NUM_THREADS, else all cores)."""

def build_info() -> dict[str, object]:
    """Compiler and flags the extension was built with."""
