"""Composite models built from bptt layers."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from bptt._validation import check_dtype, resolve_rng
from bptt.linear import Linear
from bptt.lstm import LSTM
from bptt.module import Module


class SequenceRegressor(Module):
    r"""An LSTM followed by a dense head applied at every step: ``y_t = head(h_t)``.

    Shapes: ``x (T, N, input_size)`` -> ``y (T, N, output_size)``. Parameters are the LSTM's and the head's
    under the prefixes ``rnn.`` and ``head.``, the same arrays (``params["rnn.weight_ih_l0"] is
    model.rnn.params["weight_ih_l0"]``), so the keys are those of the equivalent PyTorch module with
    attributes ``rnn`` and ``head``.

    Examples
    --------
    >>> model = SequenceRegressor(1, 8, 1, rng=0)
    >>> y = model(np.zeros((10, 4, 1)))
    >>> y.shape
    (10, 4, 1)
    >>> model.backward(np.ones_like(y)).shape
    (10, 4, 1)
    """

    def __init__(self, input_size: int, hidden_size: int, output_size: int, num_layers: int = 1, *,
                 dtype: object = np.float64, rng: object = None) -> None:
        self.dtype = check_dtype("SequenceRegressor", dtype)
        generator = resolve_rng("SequenceRegressor", rng)
        self.rnn = LSTM(input_size, hidden_size, num_layers, dtype=self.dtype, rng=generator)
        self.head = Linear(hidden_size, output_size, dtype=self.dtype, rng=generator)
        children = {"rnn": self.rnn, "head": self.head}
        self.params = {f"{prefix}.{k}": v for prefix, child in children.items() for k, v in child.params.items()}
        self.grads = {f"{prefix}.{k}": v for prefix, child in children.items() for k, v in child.grads.items()}

    def forward(self, x: object) -> NDArray:
        out, _ = self.rnn(x)
        return self.head(out)

    def backward(self, dy: object) -> NDArray:
        """Given dL/dy, add every parameter gradient into ``grads`` and return dL/dx."""
        dx, _ = self.rnn.backward(self.head.backward(dy))
        return dx
