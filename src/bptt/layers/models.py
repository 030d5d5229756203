"""Composite models built from bptt layers: a recurrent stack with a dense head at every step
(:class:`SequenceRegressor`, many-to-many) or on the final state (:class:`SequenceClassifier`, many-to-one)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from bptt._validation import (
    as_array,
    as_float_array,
    check_bool,
    check_dtype,
    check_positive_int,
    check_shape,
    resolve_rng,
)
from bptt.layers.gru import GRU
from bptt.layers.linear import Linear
from bptt.layers.lstm import LSTM
from bptt.layers.module import Module
from bptt.layers.rnn import RNN

CELLS = {"lstm": LSTM, "gru": GRU, "rnn": RNN}


def _check_cell(where: str, cell: object) -> str:
    if not isinstance(cell, str) or cell not in CELLS:
        raise ValueError(f"{where}: expected cell to be one of {', '.join(CELLS)}, got {cell!r}.")
    return cell


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
        _check_cell(where, cell)
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


class SequenceClassifier(Module):
    r"""A recurrent stack read once, at the end: a dense head on the last layer's final hidden state gives one
    vector of logits per sequence (many-to-one classification).

    Shapes (T steps, N batch, I input, H hidden, C classes, L layers, D directions): ``x (T, N, I)`` or
    unbatched ``(T, I)`` -> ``logits (N, C)`` or ``(C,)``; ``lengths (N,)``, each in ``1..T``. Time-major only.
    ``cell`` picks the recurrent family: ``"lstm"`` (default), ``"gru"`` or ``"rnn"``. Parameters are the
    stack's and the head's under the prefixes ``rnn.`` and ``head.``, the same arrays
    (``params["head.weight"] is model.head.params["weight"]``), so the keys are those of the equivalent
    PyTorch module with attributes ``rnn`` and ``head`` (``head = Linear(D*H, C)``). Init: each child's own,
    as PyTorch's.

    The features are PyTorch's idiom ``h_n[-1]``, or ``cat(h_n[-2], h_n[-1])`` when bidirectional (an LSTM's
    ``h_n`` being the first of its pair): with :math:`\overrightarrow{h}_t, \overleftarrow{h}_t` the last
    layer's forward and reverse hidden states at step :math:`t = 1..T` and :math:`\ell_n` the length of
    sequence :math:`n` (:math:`T` without ``lengths``),

    .. math:: f_n = \overrightarrow{h}_{\ell_n, n} \quad \text{or} \quad
              f_n = \big[\overrightarrow{h}_{\ell_n, n};\ \overleftarrow{h}_{1, n}\big], \qquad
              z_n = W f_n + b,

    the reverse direction's final state being the one at step 1, where its pass over the sequence ends.
    With ``lengths`` the stack has packed-sequence semantics (:mod:`bptt.layers.recurrent`), so steps after
    :math:`\ell_n` are never read. In the backward pass the loss reaches the stack only through those final
    states,

    .. math:: \frac{\partial L}{\partial f_n} = \frac{\partial L}{\partial z_n} W, \qquad
              \frac{\partial L}{\partial \overrightarrow{h}_{t, n}} = 0 \ (t \ne \ell_n), \qquad
              \frac{\partial L}{\partial \overleftarrow{h}_{t, n}} = 0 \ (t \ne 1),

    so :meth:`backward` hands :math:`\partial L / \partial f` to the stack as the gradient of its final
    states (zero for the other layers' states and for an LSTM's cell) with a zero gradient for its output
    sequence, and BPTT carries it back from there; padded steps get zero gradient.

    Examples
    --------
    >>> model = SequenceClassifier(3, 8, 4, bidirectional=True, rng=0)
    >>> logits = model(np.ones((6, 2, 3)), lengths=[6, 2])
    >>> logits.shape
    (2, 4)
    >>> dx = model.backward(np.ones_like(logits))
    >>> dx.shape, bool((dx[2:, 1] == 0).all())
    ((6, 2, 3), True)
    """

    def __init__(self, input_size: int, hidden_size: int, num_classes: int, num_layers: int = 1, *,
                 cell: str = "lstm", bidirectional: bool = False, dtype: object = np.float64,
                 rng: object = None) -> None:
        where = "SequenceClassifier"
        self.cell = _check_cell(where, cell)
        for name, size in (("input_size", input_size), ("hidden_size", hidden_size), ("num_classes", num_classes),
                           ("num_layers", num_layers)):
            check_positive_int(where, name, size)
        bidirectional = check_bool(where, "bidirectional", bidirectional)
        self.dtype = check_dtype(where, dtype)
        generator = resolve_rng(where, rng)
        self.rnn = CELLS[cell](input_size, hidden_size, num_layers=num_layers, bidirectional=bidirectional,
                               dtype=self.dtype, rng=generator)
        self.head = Linear(self.rnn.num_directions * self.rnn.output_size, num_classes, dtype=self.dtype,
                           rng=generator)
        children = {"rnn": self.rnn, "head": self.head}
        self.params = {f"{prefix}.{k}": v for prefix, child in children.items() for k, v in child.params.items()}
        self.grads = {f"{prefix}.{k}": v for prefix, child in children.items() for k, v in child.grads.items()}
        self._out_shape: tuple[int, ...] | None = None      # the last forward pass's stack output shape
        self._logits_shape: tuple[int, ...] | None = None   # ... and logits shape

    def config(self) -> dict:
        return {"input_size": self.rnn.input_size, "hidden_size": self.rnn.hidden_size,
                "num_classes": self.head.out_features, "num_layers": self.rnn.num_layers, "cell": self.cell,
                "bidirectional": self.rnn.bidirectional, "dtype": self.dtype}

    def forward(self, x: object, lengths: object = None) -> NDArray:
        """Logits ``(N, C)`` (``(C,)`` for unbatched ``x (T, I)``) from the last layer's final hidden state;
        with ``lengths`` each sequence's own last step."""
        where = "SequenceClassifier.forward"
        if lengths is not None:
            x_shape, counts = as_array(where, "x", x).shape, as_array(where, "lengths", lengths).shape
            if len(x_shape) == 3 and counts != (x_shape[1],):
                raise ValueError(f"{where}: expected one length per sequence, lengths of shape ({x_shape[1]},) "
                                 f"for x of shape {x_shape}, got lengths of shape {counts}.")
        out, states = self.rnn(x, lengths=lengths)
        h_n = states[0] if isinstance(states, tuple) else states     # (L*D, N, S), or (L*D, S) unbatched
        self._out_shape = out.shape
        D = self.rnn.num_directions
        logits = self.head(np.concatenate(list(h_n[-D:]), axis=-1))  # h_n[-1], or [h_n[-2], h_n[-1]]
        self._logits_shape = logits.shape
        return logits

    def backward(self, dlogits: object) -> NDArray:
        """Given dL/dlogits, add every parameter gradient into ``grads`` and return dL/dx (zero at padded
        steps). The gradient enters the stack only at the final states that fed the head."""
        where = "SequenceClassifier.backward"
        if self._out_shape is None:
            raise ValueError(f"{where}: expected a forward pass first, got none.")
        dlogits = as_float_array(where, "dlogits", dlogits, self.dtype, copy=False)
        check_shape(where, "dlogits", dlogits, self._logits_shape,
                    "dlogits must have the shape of the logits.")
        # z = W f + b:  dL/df = dL/dz W
        dfeatures = self.head.backward(dlogits)                       # (N, D*S) or (D*S,)
        D, S = self.rnn.num_directions, self.rnn.output_size
        batch = self._out_shape[1:-1]                                 # (N,), or () unbatched
        LD = self.rnn.num_layers * D
        # f = [h_n[-D], ..., h_n[-1]]: each final state gets its slice of dL/df, every other state zero
        dh_n = np.zeros((LD, *batch, S), dtype=self.dtype)
        for d in range(D):
            dh_n[LD - D + d] = dfeatures[..., d * S:(d + 1) * S]
        if self.cell == "lstm":
            dhx = (dh_n, np.zeros((LD, *batch, self.rnn.hidden_size), dtype=self.dtype))   # the cell: dc_n = 0
        else:
            dhx = dh_n
        # the outputs out_t are not read: dL/dout_t = 0 at every step
        dx, _ = self.rnn.backward(np.zeros(self._out_shape, dtype=self.dtype), dhx)
        return dx
