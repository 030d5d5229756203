"""Switching the fast path between the compiled loops and the NumPy loops inside a test."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator


@contextlib.contextmanager
def numpy_path(enabled: bool) -> Iterator[None]:
    """Inside: the kernel choice as with BPTT_KERNELS=numpy (``enabled``) or without it; restored after."""
    saved = os.environ.pop("BPTT_KERNELS", None)
    if enabled:
        os.environ["BPTT_KERNELS"] = "numpy"
    try:
        yield
    finally:
        os.environ.pop("BPTT_KERNELS", None)
        if saved is not None:
            os.environ["BPTT_KERNELS"] = saved
