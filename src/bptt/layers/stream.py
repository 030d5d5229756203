r"""Streaming inference: a trained LSTM, GRU or RNN stack stepped one time step per call.

A layer's ``forward`` is built for sequences: it checks and copies its input, transposes it, builds a cache
for the backward pass and reorders the weights for the call. For one step at a time (a controller, a
generator, an online filter) that per-call work costs more than the arithmetic. :class:`Stream` does it once:
it packs each layer's weights when it is created and keeps, per layer, a column buffer
:math:`v = [x_t, h_{t-1}, 1]` (one row per sequence) so that a step is one vector-matrix product per layer
(:math:`v W^\top` with :math:`W^\top` stored contiguous, which OpenBLAS runs 1.3-1.5x faster than
:math:`W v^\top`) plus a few in-place ufuncs: the forward equations of ``docs/lstm.md``, ``gru.md`` and
``rnn.md``, with nothing cached.

The packed weights are a snapshot: a stream keeps stepping with the weights its layer had when the stream
was made; make a new stream after changing them. A stream always runs in evaluation mode (no dropout) and
in one direction: a bidirectional layer needs the whole sequence and is refused.

Examples
--------
>>> from bptt import LSTM
>>> layer = LSTM(3, 5, num_layers=2, rng=0)
>>> stream = Stream(layer)
>>> x = np.ones((4, 1, 3))
>>> outputs = np.stack([stream.step(x_t) for x_t in x])
>>> bool(np.allclose(outputs, layer(x)[0]))
True
>>> [s.shape for s in stream.state]
[(2, 1, 5), (2, 1, 5)]
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from bptt._validation import as_float_array, check_positive_int
from bptt.layers._blas import dot, matmul  # np.dot, np.matmul without OpenBLAS's spurious invalid flag
from bptt.layers.lstm import internal_gate_rows
from bptt.layers.recurrent import RecurrentLayer, combined_bias


def _packed(blocks: list[NDArray | None], rows: NDArray | slice, halved: int) -> NDArray:
    """``[W_ih | W_hh | b]`` (a bias as one more column, multiplied by the constant 1 of ``v``; None blocks left
    out), rows in ``rows`` order, the first ``halved`` rows halved, stored transposed and contiguous:
    ``(inputs, gate rows)``."""
    columns = [block if block.ndim == 2 else block[:, None] for block in blocks if block is not None]
    packed = np.concatenate(columns, axis=1)[rows]
    packed[:halved] *= 0.5
    return np.ascontiguousarray(packed.T)


class _LSTMStep:
    """One LSTM layer: gates ``z = [x, h, 1] [W_ih | W_hh | b]^T`` in the internal order i, f, o, g with the
    sigmoid rows halved (one tanh for all four gates), then the cell and hidden state in place."""

    def __init__(self, weights: dict[str, NDArray], inputs: int, batch: int) -> None:
        H, S = weights["weight_hh"].shape[0] // 4, weights["weight_hh"].shape[1]
        blocks = [weights["weight_ih"], weights["weight_hh"], combined_bias(weights)]
        self.weight = _packed(blocks, internal_gate_rows(H), 3 * H)
        self.weight_hr = None if "weight_hr" not in weights else np.ascontiguousarray(weights["weight_hr"].T)
        dtype = self.weight.dtype
        self.v = np.zeros((batch, self.weight.shape[0]), dtype=dtype)    # [x, h, 1]
        self.v[:, inputs + S:] = 1.0
        self.x, self.h = self.v[:, :inputs], self.v[:, inputs:inputs + S]
        self.c = np.zeros((batch, H), dtype=dtype)
        self.z = np.empty((batch, 4 * H), dtype=dtype)
        self.sigmoid_gates = self.z[:, :3 * H]
        self.gates = self.z[:, :H], self.z[:, H:2 * H], self.z[:, 2 * H:3 * H], self.z[:, 3 * H:]
        self.scratch = np.empty((batch, H), dtype=dtype)

    def states(self) -> tuple[NDArray, ...]:
        return self.h, self.c

    def __call__(self) -> None:
        z, sig, scratch = self.z, self.sigmoid_gates, self.scratch
        np.dot(self.v, self.weight, out=z)                 # (L1, L2) z = W_ih x + W_hh h_prev + b
        np.tanh(z, out=z)                                  # (L3) g = tanh(z), tanh(z/2) for i, f, o
        sig *= 0.5
        sig += 0.5                                         # (L3) i, f, o = (1 + tanh(z/2)) / 2
        i, f, o, g = self.gates
        self.c *= f                                        # (L4) c = f c_prev + i g
        np.multiply(i, g, out=scratch)
        self.c += scratch
        np.tanh(self.c, out=scratch)                       # (L5) m = o tanh(c)
        if self.weight_hr is None:
            np.multiply(o, scratch, out=self.h)            # (L5) h = m
        else:
            scratch *= o
            matmul(scratch, self.weight_hr, out=self.h)     # (L9) h = W_hr m (out is a strided view)


class _GRUStep:
    """One GRU layer: ``[x, 1] [W_ih | b_ih]^T`` and ``[h, 1] [W_hh | b_hh]^T`` (the r, z rows halved), then
    the gates and the new state in place."""

    def __init__(self, weights: dict[str, NDArray], inputs: int, batch: int) -> None:
        H = weights["weight_hh"].shape[1]
        bias = "bias_ih" in weights
        self.weight_x, self.weight_h = (
            _packed([weights[w], weights[b]] if bias else [weights[w]], slice(None), 2 * H)
            for w, b in (("weight_ih", "bias_ih"), ("weight_hh", "bias_hh")))
        dtype = self.weight_x.dtype
        self.vx = np.zeros((batch, self.weight_x.shape[0]), dtype=dtype)   # [x, 1]
        self.vh = np.zeros((batch, self.weight_h.shape[0]), dtype=dtype)   # [h, 1]
        self.vx[:, inputs:] = 1.0
        self.vh[:, H:] = 1.0
        self.x, self.h = self.vx[:, :inputs], self.vh[:, :H]
        self.input_part = np.empty((batch, 3 * H), dtype=dtype)
        self.hidden_part = np.empty((batch, 3 * H), dtype=dtype)
        s, a = self.input_part, self.hidden_part
        self.gates = s[:, :2 * H], s[:, :H], s[:, H:2 * H], s[:, 2 * H:]     # r and z, r, z, n
        self.hidden_parts = a[:, :2 * H], a[:, 2 * H:]                       # the r and z rows, the n rows

    def states(self) -> tuple[NDArray, ...]:
        return (self.h,)

    def __call__(self) -> None:
        (rz, r, z, n), (a_rz, a_n) = self.gates, self.hidden_parts
        np.dot(self.vx, self.weight_x, out=self.input_part)    # (G1) W_ih x + b_ih
        np.dot(self.vh, self.weight_h, out=self.hidden_part)   # (G2) a = W_hh h_prev + b_hh
        rz += a_rz
        np.tanh(rz, out=rz)
        rz *= 0.5
        rz += 0.5                                         # (G3) r, z = (1 + tanh(./2)) / 2
        a_n *= r                                          # (G4) n = tanh(X_n + r a_n)
        n += a_n
        np.tanh(n, out=n)
        self.h -= n                                       # (G5) h = n + z (h_prev - n)
        self.h *= z
        self.h += n


class _RNNStep:
    """One plain RNN layer: ``h = phi([x, h, 1] [W_ih | W_hh | b]^T)``."""

    def __init__(self, weights: dict[str, NDArray], inputs: int, batch: int, nonlinearity: str) -> None:
        H = weights["weight_hh"].shape[0]
        blocks = [weights["weight_ih"], weights["weight_hh"], combined_bias(weights)]
        self.weight = _packed(blocks, slice(None), 0)
        self.v = np.zeros((batch, self.weight.shape[0]), dtype=self.weight.dtype)   # [x, h, 1]
        self.v[:, inputs + H:] = 1.0
        self.x, self.h = self.v[:, :inputs], self.v[:, inputs:inputs + H]
        self.z = np.empty((batch, H), dtype=self.weight.dtype)
        self.relu = nonlinearity == "relu"

    def states(self) -> tuple[NDArray, ...]:
        return (self.h,)

    def __call__(self) -> None:
        dot(self.v, self.weight, out=self.z)              # (R1, R2) z = W_ih x + W_hh h_prev + b
        if self.relu:
            np.maximum(self.z, 0.0, out=self.h)           # (R3) h = max(z, 0)
        else:
            np.tanh(self.z, out=self.h)                   # (R3) h = tanh(z)


class Stream:
    r"""Step ``layer`` (a :class:`~bptt.LSTM`, :class:`~bptt.GRU` or :class:`~bptt.RNN`, one direction) one
    time step per call, carrying its state; evaluation mode, weights packed once (see the module's notes).

    ``step(x_t)`` takes ``x_t (N, I)`` (or ``(I,)`` when ``batch_size`` is 1) and returns the last layer's
    output ``(N, S)`` (or ``(S,)``), a fresh array; ``state`` is the layer's state in its own format
    (``(h, c)`` for the LSTM, ``h`` otherwise, each ``(L, N, ·)``); ``reset(hx)`` sets it (zeros when omitted).
    """

    def __init__(self, layer: RecurrentLayer, batch_size: int = 1, hx: object = None) -> None:
        if not isinstance(layer, RecurrentLayer):
            raise TypeError(f"Stream: expected an LSTM, GRU or RNN layer, got {type(layer).__name__}.")
        if layer.bidirectional:
            raise ValueError("Stream: expected a unidirectional layer, got bidirectional=True; the reverse "
                             "direction needs the whole sequence, use the layer's forward instead.")
        self.layer = layer
        self.batch_size = check_positive_int("Stream", "batch_size", batch_size)
        self.input_size, self.dtype = layer.input_size, layer.dtype
        self.layer_steps = []
        inputs = layer.input_size
        for k in range(layer.num_layers):
            self.layer_steps.append(self._layer_step(layer, k, inputs))
            inputs = layer.output_size
        self.reset(hx)

    def _layer_step(self, layer: RecurrentLayer, k: int, inputs: int):
        weights = layer._weights(k, 0)
        name = layer.family.name
        if name == "LSTM":
            return _LSTMStep(weights, inputs, self.batch_size)
        if name == "GRU":
            return _GRUStep(weights, inputs, self.batch_size)
        return _RNNStep(weights, inputs, self.batch_size, layer.nonlinearity)

    @property
    def state(self) -> NDArray | tuple[NDArray, NDArray]:
        per_kind = zip(*(step.states() for step in self.layer_steps), strict=True)
        stacked = tuple(np.stack(states) for states in per_kind)
        return stacked if len(stacked) > 1 else stacked[0]

    def reset(self, hx: object = None) -> None:
        """Start again from ``hx`` (the layer's state format, batched ``(L, N, ·)``), or from zeros."""
        if hx is None:
            for step in self.layer_steps:
                for buffer in step.states():
                    buffer.fill(0.0)
            return
        states = self.layer._states("Stream.reset", hx, self.batch_size, True, "", "")
        for kind, state in enumerate(states):           # h, then the LSTM's c: each (L, N, .)
            for k, step in enumerate(self.layer_steps):
                np.copyto(step.states()[kind], state[k])

    def step(self, x_t: object) -> NDArray:
        """Advance one time step on ``x_t (N, I)`` (or ``(I,)``) and return the output ``(N, S)`` (or ``(S,)``)."""
        x = x_t
        if not (isinstance(x, np.ndarray) and x.dtype == self.dtype):  # else: convert, refusing what can't be
            x = as_float_array("Stream.step", "x_t", x, self.dtype, copy=False)
        unbatched = x.shape == (self.input_size,) and self.batch_size == 1
        if x.shape != (self.batch_size, self.input_size) and not unbatched:
            raise ValueError(f"Stream.step: expected x_t of shape ({self.batch_size}, {self.input_size})"
                             + (f" or ({self.input_size},)" if self.batch_size == 1 else "")
                             + f", got {x.shape}.")
        first = self.layer_steps[0]
        np.copyto(first.x, x.reshape(self.batch_size, self.input_size))
        if not np.isfinite(first.x).all():
            raise ValueError("Stream.step: expected finite values in x_t, got NaN or infinite entries.")
        below = None
        for step in self.layer_steps:
            if below is not None:
                np.copyto(step.x, below)
            step()
            below = step.h
        out = below.copy()
        return out.reshape(-1) if unbatched else out
