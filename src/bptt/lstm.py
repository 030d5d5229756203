r"""Long short-term memory: a sequence forward pass, its hand-derived BPTT backward pass, and the layer.

Forward equations, one layer, step :math:`t = 1..T` (``docs/lstm.md`` derives every backward line):

.. math::

    \text{(L1)}\quad & Z^x = X W_{ih}^\top + b_{ih} + b_{hh}
        && \text{input projection of all steps, one GEMM} \\
    \text{(L2)}\quad & z_t = Z^x_t + h_{t-1} W_{hh}^\top && \text{pre-activations, } (N, 4H) \\
    \text{(L3)}\quad & i, f, o = \sigma(z^i_t), \sigma(z^f_t), \sigma(z^o_t);\;\; g = \tanh(z^g_t) \\
    \text{(L4)}\quad & c_t = f \odot c_{t-1} + i \odot g \\
    \text{(L5)}\quad & h_t = o \odot \tanh(c_t)

Backward, from the loss gradient :math:`\partial L/\partial h_t` that reaches each output:

.. math::

    \text{(L6)}\quad & \delta h_t = \partial L / \partial \mathrm{out}_t + \delta z_{t+1} W_{hh}
        && \text{(total gradient at } h_t\text{)} \\
    \text{(L7)}\quad & \delta W_{ih} = \textstyle\sum_t \delta z_t^\top x_t,\;
        \delta W_{hh} = \sum_t \delta z_t^\top h_{t-1},\; \delta b = \sum_t \mathbf{1}^\top \delta z_t \\
    \text{(L8)}\quad & \delta x_t = \delta z_t W_{ih}

Layout. Parameters are stored exactly as PyTorch stores them (gate rows i, f, g, o). Inside the passes the
rows are reordered to i, f, o, g and everything recurrent is feature-major: the gate buffer of a step is
``(4H, N)``, states are ``(H, N)``. Each gate, and the block of the three sigmoid gates, is then one
contiguous run of rows, so every per-step operation reads and writes contiguous memory. The sigmoid rows of
the weights are halved (exact) so that one ``tanh`` call activates all four gates, with
:math:`\sigma(z) = (1 + \tanh(z/2))/2`. Gradients are reordered back before they leave.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from bptt._validation import as_float_array, check_dtype, check_positive_int, check_shape, resolve_rng
from bptt.activations import sigmoid_grad_from_output, tanh_grad_from_output
from bptt.module import Module


class LSTMCache(NamedTuple):
    """What one layer's forward pass keeps for its backward pass: outputs, never pre-activations.

    Everything recurrent is stored feature-major, ``(.., features, N)``, so that every per-step operand
    is one contiguous block: a gate is a run of H rows of the ``(4H, N)`` gate buffer."""

    x: NDArray       # (T, N, I)   layer input, as given (time-major, row-major)
    h: NDArray       # (T+1, H, N) h[0] = h0, h[t] = hidden state after step t
    c: NDArray       # (T+1, H, N) c[0] = c0
    gates: NDArray   # (T, 4H, N)  activated gates in the internal order i, f, o, g
    tanh_c: NDArray  # (T, H, N)   tanh(c[t+1])


class LSTMGrads(NamedTuple):
    """Parameter gradients of one layer, in PyTorch's layout (gate rows i, f, g, o)."""

    weight_ih: NDArray  # (4H, I)
    weight_hh: NDArray  # (4H, H)
    bias: NDArray       # (4H,)   the gradient of b_ih, and equally of b_hh


def internal_gate_rows(hidden_size: int) -> NDArray:
    """Row indices that take PyTorch's gate order (i, f, g, o) to the internal order (i, f, o, g)."""
    H = hidden_size
    return np.concatenate([np.arange(0, 2 * H), np.arange(3 * H, 4 * H), np.arange(2 * H, 3 * H)])


def _halve_sigmoid_rows(rows: NDArray, hidden_size: int) -> NDArray:
    """Scale the three sigmoid gates' rows by 1/2 (exact in floating point): with these weights the
    pre-activations are z/2 for i, f, o and z for g, so one tanh call serves all four gates, as
    sigma(z) = (1 + tanh(z/2)) / 2."""
    rows[:3 * hidden_size] *= 0.5
    return rows


def lstm_forward(weight_ih: NDArray, weight_hh: NDArray, bias: NDArray | None,
                 x: NDArray, h0: NDArray, c0: NDArray) -> tuple[NDArray, NDArray, NDArray, LSTMCache]:
    r"""Run one LSTM layer over a whole sequence.

    Parameters
    ----------
    weight_ih : (4H, I) array, PyTorch gate order i, f, g, o.
    weight_hh : (4H, H) array.
    bias : (4H,) array :math:`b_{ih} + b_{hh}`, or None.
    x : (T, N, I) C-contiguous array in the working dtype.
    h0, c0 : (N, H) initial states.

    Returns
    -------
    out : (T, N, H) hidden states of every step.
    h_n, c_n : (N, H) final states.
    cache : LSTMCache for :func:`lstm_backward`.
    """
    T, N, I = x.shape
    H = weight_hh.shape[1]
    rows = internal_gate_rows(H)
    dtype = x.dtype
    w_ih = _halve_sigmoid_rows(weight_ih[rows], H)          # (4H, I)
    w_hh = _halve_sigmoid_rows(weight_hh[rows], H)          # (4H, H)
    # (L1) Z^x = X W_ih^T + b for all steps in one GEMM, as a (4H, T*N) matrix whose column block t is
    # step t. With I = 1 a GEMM of inner size 1 is slow; an outer product computes the same numbers.
    x_columns = x.reshape(T * N, I).T                       # (I, T*N), a view
    if I == 1:
        projection = np.multiply(w_ih, x_columns)
    else:
        projection = w_ih @ x_columns
    if bias is not None:
        projection += _halve_sigmoid_rows(bias[rows], H)[:, None]
    gates = np.empty((T, 4 * H, N), dtype=dtype)
    h = np.empty((T + 1, H, N), dtype=dtype)
    c = np.empty((T + 1, H, N), dtype=dtype)
    tanh_c = np.empty((T, H, N), dtype=dtype)
    h[0] = h0.T
    c[0] = c0.T
    recurrent = np.empty((4 * H, N), dtype=dtype)
    input_times_candidate = np.empty((H, N), dtype=dtype)
    for t in range(T):
        z = gates[t]
        np.matmul(w_hh, h[t], out=recurrent)                # (L2) z_t = Z^x_t + W_hh h_{t-1}
        np.add(projection[:, t * N:(t + 1) * N], recurrent, out=z)
        np.tanh(z, out=z)                                   # (L3) g = tanh(z), and tanh(z/2) for i, f, o
        sig = z[:3 * H]
        sig *= 0.5
        sig += 0.5                                          # (L3) i, f, o = (1 + tanh(z/2)) / 2
        i, f, o, g = z[:H], z[H:2 * H], z[2 * H:3 * H], z[3 * H:]
        np.multiply(f, c[t], out=c[t + 1])                  # (L4) c = f c_prev + i g
        np.multiply(i, g, out=input_times_candidate)
        c[t + 1] += input_times_candidate
        np.tanh(c[t + 1], out=tanh_c[t])                    # (L5) h = o tanh(c)
        np.multiply(o, tanh_c[t], out=h[t + 1])
    out = h[1:].transpose(0, 2, 1).copy()                 # always a copy: the caller may write to it
    return out, h[T].T.copy(), c[T].T.copy(), LSTMCache(x, h, c, gates, tanh_c)


def lstm_backward(weight_ih: NDArray, weight_hh: NDArray, cache: LSTMCache, dout: NDArray,
                  dh_n: NDArray, dc_n: NDArray) -> tuple[NDArray, NDArray, NDArray, LSTMGrads]:
    r"""Backpropagation through time for one layer; the cache is only read.

    Parameters
    ----------
    weight_ih, weight_hh : the weights of the forward pass, PyTorch layout.
    cache : from :func:`lstm_forward`.
    dout : (T, N, H) :math:`\partial L/\partial \mathrm{out}_t`.
    dh_n, dc_n : (N, H) gradients arriving at the final states.

    Returns
    -------
    dx : (T, N, I); dh0, dc0 : (N, H); grads : LSTMGrads in PyTorch's layout.
    """
    x, h, c, gates, tanh_c = cache
    T, N, I = x.shape
    H = weight_hh.shape[1]
    rows = internal_gate_rows(H)
    dtype = x.dtype
    w_hh_t = weight_hh[rows].T                          # (H, 4H), unscaled: gradients are taken w.r.t. z
    upstream = np.ascontiguousarray(dout.transpose(0, 2, 1))  # (T, H, N)
    dz = np.empty((T, 4 * H, N), dtype=dtype)           # dL/dz_t for every step, internal order
    dh = np.empty((H, N), dtype=dtype)
    dh_recurrent = np.array(dh_n.T, dtype=dtype)        # W_hh^T dz_{t+1}; starts as dL/dh_T
    dc = np.array(dc_n.T, dtype=dtype)                  # carries dL/dc_t backwards
    scratch = np.empty((H, N), dtype=dtype)
    sigmoid_slope = np.empty((3 * H, N), dtype=dtype)
    for t in range(T - 1, -1, -1):
        s = gates[t]
        i, f, o, g = s[:H], s[H:2 * H], s[2 * H:3 * H], s[3 * H:]
        d = dz[t]
        di, df, do, dg = d[:H], d[H:2 * H], d[2 * H:3 * H], d[3 * H:]
        # (L6) dh_t = dL/dout_t + W_hh^T dz_{t+1}
        np.add(upstream[t], dh_recurrent, out=dh)
        # (L5) h = o * tanh(c)
        np.multiply(dh, tanh_c[t], out=do)              # dh/do = tanh c
        np.multiply(dh, o, out=scratch)                 # dh/dtanh(c) = o
        dc += scratch                                   # dtanh(c)/dc = 1 - tanh^2 c, in two adds:
        scratch *= tanh_c[t]
        scratch *= tanh_c[t]
        dc -= scratch                                   # dc += dh o (1 - tanh^2 c); dc carried t+1 in
        # (L4) c = f * c_prev + i * g
        np.multiply(dc, g, out=di)                      # dc/di = g
        np.multiply(dc, c[t], out=df)                   # dc/df = c_prev
        np.multiply(dc, i, out=dg)                      # dc/dg = i
        dc *= f                                         # dc/dc_prev = f: now dL/dc_{t-1} through c
        # (L3) i, f, o = sigmoid(z), g = tanh(z)
        d[:3 * H] *= sigmoid_grad_from_output(s[:3 * H], out=sigmoid_slope)  # s (1 - s)
        dg *= tanh_grad_from_output(g, out=scratch)                          # 1 - g^2
        # (L2) z_t = Z^x_t + W_hh h_{t-1}  =>  dL/dh_{t-1} gets W_hh^T dz_t (used by L6 at t-1)
        np.matmul(w_hh_t, d, out=dh_recurrent)
    dz_columns = dz.transpose(1, 0, 2).reshape(4 * H, T * N)   # (4H, T*N), column block t is step t
    # (L8) dx_t = dz_t W_ih, all steps in one GEMM
    dx = (dz_columns.T @ weight_ih[rows]).reshape(T, N, I)
    # (L7) weight gradients as whole-sequence GEMMs, then back to PyTorch's gate order
    h_prev_columns = h[:T].transpose(1, 0, 2).reshape(H, T * N)
    grads = LSTMGrads(np.empty_like(weight_ih), np.empty_like(weight_hh), np.empty(4 * H, dtype=dtype))
    grads.weight_ih[rows] = dz_columns @ x.reshape(T * N, I)
    grads.weight_hh[rows] = dz_columns @ h_prev_columns.T
    grads.bias[rows] = dz_columns.sum(axis=1)
    return dx, dh_recurrent.T.copy(), dc.T.copy(), grads


class LSTM(Module):
    r"""A multi-layer LSTM with PyTorch's semantics and a hand-derived backward pass.

    Parameters
    ----------
    input_size : I, features of each input step.
    hidden_size : H.
    num_layers : L, stacked layers; layer k > 0 reads layer k-1's output.
    bias : whether to use ``bias_ih_l{k}`` and ``bias_hh_l{k}``.
    batch_first : inputs and outputs are ``(N, T, *)`` instead of ``(T, N, *)``.
    dtype : float64 (default, exact to round-off) or float32.
    rng : int seed or ``numpy.random.Generator`` for the initial weights.

    Shapes: T steps, N batch, I input, H hidden, L layers. ``x (T, N, I)``, or ``(N, T, I)`` with
    ``batch_first``, or unbatched ``(T, I)``; states ``h, c (L, N, H)`` (unbatched ``(L, H)``).
    Parameters as PyTorch: ``weight_ih_l{k} (4H, I or H)``, ``weight_hh_l{k} (4H, H)``,
    ``bias_ih_l{k}, bias_hh_l{k} (4H,)``, gate rows i, f, g, o; every entry :math:`\sim U(-k, k)` with
    :math:`k = 1/\sqrt{H}` (PyTorch's default).

    Equations (L1)-(L8) are in :mod:`bptt.lstm` and derived in ``docs/lstm.md``.

    Examples
    --------
    >>> lstm = LSTM(input_size=3, hidden_size=4, num_layers=2, rng=0)
    >>> out, (h_n, c_n) = lstm(np.zeros((5, 2, 3)))
    >>> out.shape, h_n.shape
    ((5, 2, 4), (2, 2, 4))
    >>> dx, (dh0, dc0) = lstm.backward(np.ones_like(out))
    >>> dx.shape, lstm.grads["weight_hh_l1"].shape
    ((5, 2, 3), (16, 4))
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, *, dtype: object = np.float64, rng: object = None) -> None:
        where = "LSTM"
        self.input_size = check_positive_int(where, "input_size", input_size)
        self.hidden_size = check_positive_int(where, "hidden_size", hidden_size)
        self.num_layers = check_positive_int(where, "num_layers", num_layers)
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.dtype = check_dtype(where, dtype)
        generator = resolve_rng(where, rng)
        H = self.hidden_size
        bound = 1.0 / np.sqrt(H)
        self.params = {}
        for k in range(self.num_layers):
            layer_input = self.input_size if k == 0 else H
            shapes = {f"weight_ih_l{k}": (4 * H, layer_input), f"weight_hh_l{k}": (4 * H, H)}
            if self.bias:
                shapes.update({f"bias_ih_l{k}": (4 * H,), f"bias_hh_l{k}": (4 * H,)})
            for name, shape in shapes.items():
                self.params[name] = generator.uniform(-bound, bound, size=shape).astype(self.dtype)
        self.grads = {name: np.zeros_like(value) for name, value in self.params.items()}
        self._caches: list[LSTMCache] | None = None
        self._batched = True

    def config(self) -> dict:
        """The constructor's arguments (without ``rng``): ``LSTM(**lstm.config())`` builds the same shape."""
        return {"input_size": self.input_size, "hidden_size": self.hidden_size, "num_layers": self.num_layers,
                "bias": self.bias, "batch_first": self.batch_first, "dtype": self.dtype}

    def __repr__(self) -> str:
        return (f"LSTM({self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, bias={self.bias}, "
                f"batch_first={self.batch_first}, dtype={self.dtype})")

    def _layer_bias(self, k: int) -> NDArray | None:
        if not self.bias:
            return None
        return self.params[f"bias_ih_l{k}"] + self.params[f"bias_hh_l{k}"]

    def _to_time_major(self, where: str, name: str, value: object, features: int) -> tuple[NDArray, bool]:
        """Validate a sequence (x or dout); return it as a (T, N, features) time-major array, and whether it
        was batched."""
        array = as_float_array(where, name, value, self.dtype)
        layout = "(N, T, {})" if self.batch_first else "(T, N, {})"
        if array.ndim not in (2, 3):
            hint = "" if self.batch_first else "For batch-first data pass batch_first=True."
            raise ValueError(f"{where}: expected {name} of shape {layout.format(features)} or unbatched "
                             f"(T, {features}), got {array.shape}. {hint}".rstrip())
        expected = (None,) * (array.ndim - 1) + (features,)
        hint = "" if array.ndim == 2 or self.batch_first else "For batch-first data pass batch_first=True."
        check_shape(where, name, array, expected, hint)
        if array.ndim == 2:
            return array[:, None, :], False
        return (np.ascontiguousarray(array.swapaxes(0, 1)) if self.batch_first else array), True

    def _states(self, where: str, names: tuple[str, str], value: object, batch: int,
                batched: bool) -> list[NDArray]:
        """Validate an (h, c) pair and return both as (L, N, H) arrays."""
        if not isinstance(value, (tuple, list)) or len(value) != 2:
            raise TypeError(f"{where}: expected a pair ({names[0]}, {names[1]}), got {type(value).__name__}.")
        L, H = self.num_layers, self.hidden_size
        shape = (L, batch, H) if batched else (L, H)
        states = []
        for name, state in zip(names, value, strict=True):
            array = as_float_array(where, name, state, self.dtype)
            check_shape(where, name, array, shape)
            states.append(array.reshape(L, batch, H))
        return states

    def _from_time_major(self, seq: NDArray, batched: bool) -> NDArray:
        if not batched:
            return seq[:, 0, :]
        return np.ascontiguousarray(seq.swapaxes(0, 1)) if self.batch_first else seq

    def forward(self, x: object, hx: tuple[object, object] | None = None) -> tuple[NDArray, tuple[NDArray, NDArray]]:
        """Run all layers over ``x``; returns ``out, (h_n, c_n)`` as ``torch.nn.LSTM`` does."""
        where = "LSTM.forward"
        seq, batched = self._to_time_major(where, "x", x, self.input_size)
        T, N, _ = seq.shape
        L, H = self.num_layers, self.hidden_size
        if hx is None:
            h0 = c0 = np.zeros((L, N, H), dtype=self.dtype)
        else:
            h0, c0 = self._states(where, ("h0", "c0"), hx, N, batched)
        h_n = np.empty((L, N, H), dtype=self.dtype)
        c_n = np.empty((L, N, H), dtype=self.dtype)
        caches = []
        layer_input = seq
        for k in range(L):
            layer_input, h_n[k], c_n[k], cache = lstm_forward(
                self.params[f"weight_ih_l{k}"], self.params[f"weight_hh_l{k}"], self._layer_bias(k),
                layer_input, h0[k], c0[k])
            caches.append(cache)
        self._caches, self._batched = caches, batched
        states = (h_n, c_n) if batched else (h_n[:, 0, :], c_n[:, 0, :])
        return self._from_time_major(layer_input, batched), states

    def backward(self, dout: object,
                 dhx: tuple[object, object] | None = None) -> tuple[NDArray, tuple[NDArray, NDArray]]:
        """BPTT through the most recent forward pass.

        ``dout`` has the shape of ``out``; ``dhx = (dh_n, dc_n)`` the shape of the final states (zeros when
        omitted). Parameter gradients are added into ``grads``; returns ``dx, (dh0, dc0)``.
        """
        where = "LSTM.backward"
        if self._caches is None:
            raise ValueError(f"{where}: expected a forward pass first, got none.")
        T, N, _ = self._caches[0].x.shape
        L, H = self.num_layers, self.hidden_size
        batched = self._batched
        expected = ((N, T, H) if self.batch_first else (T, N, H)) if batched else (T, H)
        dout_array = np.asarray(dout)
        check_shape(where, "dout", dout_array, expected, "dout must have the shape of the forward output.")
        upstream, _ = self._to_time_major(where, "dout", dout_array, H)
        if dhx is None:
            dh_n = dc_n = np.zeros((L, N, H), dtype=self.dtype)
        else:
            dh_n, dc_n = self._states(where, ("dh_n", "dc_n"), dhx, N, batched)
        dh0 = np.empty((L, N, H), dtype=self.dtype)
        dc0 = np.empty((L, N, H), dtype=self.dtype)
        for k in range(L - 1, -1, -1):
            upstream, dh0[k], dc0[k], grads = lstm_backward(
                self.params[f"weight_ih_l{k}"], self.params[f"weight_hh_l{k}"], self._caches[k],
                upstream, dh_n[k], dc_n[k])
            self.grads[f"weight_ih_l{k}"] += grads.weight_ih
            self.grads[f"weight_hh_l{k}"] += grads.weight_hh
            if self.bias:
                self.grads[f"bias_ih_l{k}"] += grads.bias
                self.grads[f"bias_hh_l{k}"] += grads.bias
        states = (dh0, dc0) if batched else (dh0[:, 0, :], dc0[:, 0, :])
        return self._from_time_major(upstream, batched), states
