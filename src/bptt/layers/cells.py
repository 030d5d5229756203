r"""One step of a recurrent family as a module of its own: :class:`LSTMCell`, :class:`GRUCell`, :class:`RNNCell`.

PyTorch's ``nn.LSTMCell``, ``nn.GRUCell`` and ``nn.RNNCell``: the same parameters as one layer of the stack
without the ``_l0`` suffix (``weight_ih (G H, I)``, ``weight_hh (G H, H)``, ``bias_ih``, ``bias_hh``), the same
init (every entry :math:`\sim U(-k, k)`, :math:`k = 1/\sqrt{H}`, in that order), the same step. A cell is what
a loop needs when each step's input depends on the step before, as a decoder that reads its own last output
(:class:`bptt.Seq2Seq`'s input feeding): the whole-sequence stack cannot run it.

The step is the stack's compiled core run over one step (:mod:`bptt.layers.lstm` and its siblings), so the
cell is held equal to the layer and, through it, to PyTorch. Two interfaces:

- ``forward(x, hx)`` / ``backward(dh[, dc])``, as a user calls PyTorch's cell: the cell keeps the last step's
  cache, and ``backward`` goes back through that step;
- ``step(x, states)`` / ``step_backward(cache, dstates)``, for a model that loops over many steps: the caller
  keeps one cache per step and goes back through them in reverse order. No checks: the caller's.

Shapes (N batch, I input, H hidden): ``x (N, I)`` or unbatched ``(I,)``; ``h``, ``c (N, H)`` or ``(H,)``.

Examples
--------
>>> cell = LSTMCell(3, 4, rng=0)
>>> h, c = cell(np.ones((2, 3)))
>>> h.shape, c.shape
((2, 4), (2, 4))
>>> dx, (dh0, dc0) = cell.backward(np.ones_like(h), np.zeros_like(c))
>>> dx.shape, sorted(cell.grads)
((2, 3), ['bias_hh', 'bias_ih', 'weight_hh', 'weight_ih'])
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from bptt._validation import as_float_array, check_bool, check_dtype, check_positive_int, check_shape, resolve_rng
from bptt.layers.gru import GRU_FAMILY
from bptt.layers.lstm import LSTM_FAMILY
from bptt.layers.module import Module
from bptt.layers.recurrent import Family
from bptt.layers.rnn import NONLINEARITIES, RNN_FAMILIES

State = tuple[NDArray, ...]


class RecurrentCell(Module):
    """One step of ``family``: the parameters, the two interfaces and their checks (module docstring)."""

    family: Family

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, *, dtype: object = np.float64,
                 rng: object = None) -> None:
        where = type(self).__name__
        self.input_size = check_positive_int(where, "input_size", input_size)
        self.hidden_size = check_positive_int(where, "hidden_size", hidden_size)
        self.bias = check_bool(where, "bias", bias)
        self.dtype = check_dtype(where, dtype)
        generator = resolve_rng(where, rng)
        G, H = self.family.gates, self.hidden_size
        shapes = {"weight_ih": (G * H, self.input_size), "weight_hh": (G * H, H)}
        if self.bias:
            shapes.update(bias_ih=(G * H,), bias_hh=(G * H,))
        bound = 1.0 / np.sqrt(H)
        self.params = {name: generator.uniform(-bound, bound, size=shape).astype(self.dtype)
                       for name, shape in shapes.items()}
        self.grads = {name: np.zeros_like(value) for name, value in self.params.items()}
        self._last: tuple[object, bool] | None = None      # the last forward call's cache, and whether batched

    def config(self) -> dict:
        """The constructor's arguments (without ``rng``)."""
        return {"input_size": self.input_size, "hidden_size": self.hidden_size, "bias": self.bias,
                "dtype": self.dtype}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.input_size}, {self.hidden_size}, bias={self.bias})"

    # -- the loop's interface --------------------------------------------------------------------------------

    def step(self, x: NDArray, states: State) -> tuple[State, object]:
        """One step from ``states`` (a tuple: ``(h, c)`` for an LSTM, ``(h,)`` otherwise, each ``(N, ·)``) on
        ``x (N, I)`` C-contiguous in the cell's dtype: the new states and the step's cache."""
        _, new_states, cache = self.family.forward(self.params, x[None], states, None)
        return new_states, cache

    def step_backward(self, cache: object, dstates: State) -> tuple[NDArray, State]:
        """Back through the step of ``cache``: ``dstates`` at its new states to ``dx (N, I)`` and the gradients
        of the states it started from; the step's parameter gradients are added into ``grads``."""
        h = dstates[0]
        dx, dprevious, grads = self.family.backward(self.params, cache, np.zeros((1, *h.shape), dtype=h.dtype),
                                                    dstates)
        for name, grad in grads.items():
            self.grads[name] += grad
        return dx[0], dprevious

    # -- the user's interface --------------------------------------------------------------------------------

    def forward(self, x: object, hx: object = None):
        """The next states from ``hx`` (zeros when omitted) on ``x``: ``(h, c)`` for an LSTM, ``h`` otherwise."""
        where = f"{type(self).__name__}.forward"
        x = as_float_array(where, "x", x, self.dtype)
        if x.ndim not in (1, 2):
            raise ValueError(f"{where}: expected x of shape (N, {self.input_size}) or unbatched "
                             f"({self.input_size},), got {x.shape}.")
        check_shape(where, "x", x, (None,) * (x.ndim - 1) + (self.input_size,))
        batched = x.ndim == 2
        x = np.ascontiguousarray(x if batched else x[None])
        states = self._states(where, hx, x.shape[0], batched, "")
        new_states, cache = self.step(x, states)
        self._last = cache, batched
        return self._user_form(new_states, batched)

    def backward(self, dh: object, dc: object = None):
        """Back through the last :meth:`forward` call: ``dh`` (and, for an LSTM, ``dc``; zeros when omitted) at
        its new states to ``dx`` and the gradients of ``hx`` (a pair for an LSTM); parameter gradients are
        added into ``grads``."""
        where = f"{type(self).__name__}.backward"
        if self._last is None:
            raise ValueError(f"{where}: expected a forward call first, got none.")
        cache, batched = self._last
        N = cache.x.shape[1]
        if len(self.family.state_names) == 1 and dc is not None:
            raise TypeError(f"{where}: expected dh alone (only an LSTM cell has a cell state), got dc too.")
        given = (dh,) if len(self.family.state_names) == 1 else (dh, dc)
        dstates = tuple(np.zeros((N, self.hidden_size), dtype=self.dtype) if value is None else
                        self._state(where, f"d{name}", value, N, batched)
                        for name, value in zip(self.family.state_names, given, strict=True))
        dx, dprevious = self.step_backward(cache, dstates)
        return (dx if batched else dx[0]), self._user_form(dprevious, batched)

    def _states(self, where: str, hx: object, batch: int, batched: bool, prefix: str) -> State:
        """``hx`` as a tuple of ``(N, H)`` arrays (zeros when None), checked."""
        names = self.family.state_names
        if hx is None:
            return tuple(np.zeros((batch, self.hidden_size), dtype=self.dtype) for _ in names)
        if len(names) > 1:
            if not isinstance(hx, (tuple, list)) or len(hx) != len(names):
                raise TypeError(f"{where}: expected hx as a pair ({', '.join(names)}), got {type(hx).__name__}.")
            values = tuple(hx)
        elif isinstance(hx, (tuple, list)):
            raise TypeError(f"{where}: expected hx as one array h, got a {type(hx).__name__} (only an LSTM cell "
                            "takes a pair).")
        else:
            values = (hx,)
        return tuple(self._state(where, f"{prefix}{name}", value, batch, batched)
                     for name, value in zip(names, values, strict=True))

    def _state(self, where: str, name: str, value: object, batch: int, batched: bool) -> NDArray:
        array = as_float_array(where, name, value, self.dtype)
        check_shape(where, name, array, (batch, self.hidden_size) if batched else (self.hidden_size,))
        return np.ascontiguousarray(array.reshape(batch, self.hidden_size))

    @staticmethod
    def _user_form(states: State, batched: bool):
        shaped = tuple(s if batched else s[0] for s in states)
        return shaped if len(shaped) > 1 else shaped[0]


class LSTMCell(RecurrentCell):
    """One LSTM step, PyTorch's ``nn.LSTMCell``: gates i, f, g, o; ``(h, c)`` in and out (module docstring)."""

    family = LSTM_FAMILY


class GRUCell(RecurrentCell):
    """One GRU step, PyTorch's ``nn.GRUCell``: gates r, z, n; ``h`` in and out (module docstring)."""

    family = GRU_FAMILY


class RNNCell(RecurrentCell):
    """One Elman step, PyTorch's ``nn.RNNCell``, ``nonlinearity`` ``"tanh"`` or ``"relu"`` (module docstring)."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh", *,
                 dtype: object = np.float64, rng: object = None) -> None:
        if nonlinearity not in NONLINEARITIES:
            raise ValueError(f"RNNCell: expected nonlinearity to be one of {', '.join(NONLINEARITIES)}, got "
                             f"{nonlinearity!r}.")
        self.nonlinearity = nonlinearity
        self.family = RNN_FAMILIES[nonlinearity]
        super().__init__(input_size, hidden_size, bias, dtype=dtype, rng=rng)

    def config(self) -> dict:
        return {**super().config(), "nonlinearity": self.nonlinearity}
