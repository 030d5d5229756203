"""Composite models built from bptt layers."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from bptt._validation import check_dtype, check_positive_int, resolve_rng
from bptt.layers.gru import GRU
from bptt.layers.linear import Linear
from bptt.layers.lstm import LSTM
from bptt.layers.module import Module
from bptt.layers.rnn import RNN

CELLS = {"lstm": LSTM, "gru": GRU, "rnn": RNN}


class SequenceRegressor(Module):
    r"""A recurrent stack followed by a dense head applied at every step: ``y_t = head(h_t)``.

    Shapes: ``x (T, N, input_size)`` -> ``y (T, N, output_size)`` (values, or logits for a classifier).
    ``cell`` picks the recurrent family: ``"lstm"`` (default), ``"gru"`` or ``"rnn"``. Parameters are the
    stack's and the head's under the prefixes ``rnn.`` and ``head.``, the same arrays
    (``params["rnn.weight_ih_l0"] is model.rnn.params["weight_ih_l0"]``), so the keys are those of the
    equivalent PyTorch module with attributes ``rnn`` and ``head``.

    ``forward(x, hx)`` starts from the states ``hx`` (zeros when omitted) and keeps the final states in
    ``final_state``, so a long sequence can be fed chunk by chunk (truncated BPTT) or one step at a time
    (generation).

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
                 cell: str = "lstm", dtype: object = np.float64, rng: object = None) -> None:
        where = "SequenceRegressor"
        if not isinstance(cell, str) or cell not in CELLS:
            raise ValueError(f"{where}: expected cell to be one of {', '.join(CELLS)}, got {cell!r}.")
        for name, size in (("input_size", input_size), ("hidden_size", hidden_size), ("output_size", output_size),
                           ("num_layers", num_layers)):
            check_positive_int(where, name, size)
        self.cell = cell
        self.dtype = check_dtype(where, dtype)
        generator = resolve_rng(where, rng)
        self.rnn = CELLS[cell](input_size, hidden_size, num_layers=num_layers, dtype=self.dtype, rng=generator)
        self.head = Linear(hidden_size, output_size, dtype=self.dtype, rng=generator)
        children = {"rnn": self.rnn, "head": self.head}
        self.params = {f"{prefix}.{k}": v for prefix, child in children.items() for k, v in child.params.items()}
        self.grads = {f"{prefix}.{k}": v for prefix, child in children.items() for k, v in child.grads.items()}
        self.final_state = None

    def config(self) -> dict:
        return {"input_size": self.rnn.input_size, "hidden_size": self.rnn.hidden_size,
                "output_size": self.head.out_features, "num_layers": self.rnn.num_layers, "cell": self.cell,
                "dtype": self.dtype}

    def forward(self, x: object, hx: object = None) -> NDArray:
        out, self.final_state = self.rnn(x, hx)
        return self.head(out)

    def backward(self, dy: object) -> NDArray:
        """Given dL/dy, add every parameter gradient into ``grads`` and return dL/dx. No gradient flows into
        the initial states (truncated BPTT stops there)."""
        dx, _ = self.rnn.backward(self.head.backward(dy))
        return dx
