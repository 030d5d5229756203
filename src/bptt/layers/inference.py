"""``with bptt.inference_mode():``: forward passes that no backward pass follows, so they keep no cache.

A recurrent layer's forward pass keeps what its backward pass reads: for an LSTM the gates, both states and
tanh of the cell state at every step, about six times the output. Evaluation, forecasting, sampling and
decoding never go back through it. Under :func:`inference_mode` a recurrent layer runs its sequence in chunks
of steps, each chunk's work buffers freed before the next (the output and the states carried from chunk to
chunk are all it keeps), and keeps no tape: a ``backward`` after it is refused. The numbers are those of the
training forward pass, to rounding. PyTorch's ``torch.inference_mode()`` is the model; ``eval()`` is not it (it
turns dropout off, and a backward pass may follow it, in bptt as in PyTorch).

Examples
--------
>>> import numpy as np
>>> from bptt import LSTM
>>> layer = LSTM(3, 4, rng=0)
>>> x = np.ones((5, 2, 3))
>>> with inference_mode():
...     out, (h_n, c_n) = layer(x)
>>> bool(np.allclose(out, layer(x)[0], rtol=1e-12, atol=0))
True
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

_depth = threading.local()


@contextlib.contextmanager
def inference_mode(enabled: bool = True) -> Iterator[None]:
    """Inside: every forward pass of this thread keeps no cache (module docstring); ``enabled=False`` turns it
    off within, for work that goes back through its forward passes inside an inference (dynamic evaluation
    updates the weights as it reads). Nests; the mode outside is restored on exit."""
    outer = getattr(_depth, "value", 0)
    _depth.value = outer + 1 if enabled else 0
    try:
        yield
    finally:
        _depth.value = outer


def is_inference_mode() -> bool:
    """Whether this thread is inside :func:`inference_mode`."""
    return getattr(_depth, "value", 0) > 0
