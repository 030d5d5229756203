r"""Long short-term memory: a sequence forward pass, its hand-derived BPTT backward pass, and the layer.

Forward equations, one layer, step :math:`t = 1..T` (``docs/lstm.md`` derives every backward line):

.. math::

    \text{(L1)}\quad & Z^x = X W_{ih}^\top + b_{ih} + b_{hh}
        && \text{input projection of all steps, one GEMM} \\
    \text{(L2)}\quad & z_t = Z^x_t + h_{t-1} W_{hh}^\top && \text{pre-activations, } (N, 4H) \\
    \text{(L3)}\quad & i, f, o = \sigma(z^i_t), \sigma(z^f_t), \sigma(z^o_t);\;\; g = \tanh(z^g_t) \\
    \text{(L4)}\quad & c_t = f \odot c_{t-1} + i \odot g \\
    \text{(L5)}\quad & m_t = o \odot \tanh(c_t),\;\; h_t = m_t \\
    \text{(L9)}\quad & h_t = W_{hr}\, m_t && \text{instead, with } \mathrm{proj\_size} = P > 0

Backward, from the loss gradient :math:`\partial L/\partial h_t` that reaches each output:

.. math::

    \text{(L6)}\quad & \delta h_t = \partial L / \partial \mathrm{out}_t + \delta z_{t+1} W_{hh}
        && \text{(total gradient at } h_t\text{)} \\
    \text{(L7)}\quad & \delta W_{ih} = \textstyle\sum_t \delta z_t^\top x_t,\;
        \delta W_{hh} = \sum_t \delta z_t^\top h_{t-1},\; \delta b = \sum_t \mathbf{1}^\top \delta z_t \\
    \text{(L8)}\quad & \delta x_t = \delta z_t W_{ih}

Padded steps of variable-length batches (``inactive``) keep the state: :math:`h_t = h_{t-1}`,
:math:`c_t = c_{t-1}`, and their gradients pass straight through (see :mod:`bptt.layers.recurrent`).

Layout. Parameters are stored exactly as PyTorch stores them (gate rows i, f, g, o). Inside the passes the
rows are reordered to i, f, o, g and everything recurrent is feature-major: the gate buffer of a step is
``(4H, N)``, states are ``(H, N)``. Each gate, and the block of the three sigmoid gates, is then one
contiguous run of rows, so every per-step operation reads and writes contiguous memory. The sigmoid rows of
the weights are halved (exact) so that one ``tanh`` call activates all four gates, with
:math:`\sigma(z) = (1 + \tanh(z/2))/2`. Gradients are reordered back before they leave.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from bptt.layers._blas import matmul  # np.matmul without OpenBLAS's spurious invalid flag
from bptt.layers.activations import sigmoid_grad_from_output, tanh_grad_from_output
from bptt.layers.kernels import lstm_sequence_kernels, padding_mask
from bptt.layers.recurrent import (
    ChunkedGradients,
    Family,
    FeatureMajorSteps,
    GateProduct,
    RecurrentLayer,
    chunk_steps,
    combined_bias,
    freeze_inactive,
    halved_rows,
    inactive_at,
    step_columns,
)


class LSTMCache(NamedTuple):
    """What one layer's forward pass keeps for its backward pass: outputs, never pre-activations.

    Everything recurrent is stored feature-major, ``(.., features, N)``, so that every per-step operand
    is one contiguous block: a gate is a run of H rows of the ``(4H, N)`` gate buffer."""

    x: NDArray                # (T, N, I)   layer input, as given (time-major, row-major)
    h: NDArray                # (T+1, S, N) h[0] = h0, h[t] = hidden state after step t (S = P or H)
    c: NDArray                # (T+1, H, N) c[0] = c0
    gates: NDArray            # (T, 4H, N)  activated gates in the internal order i, f, o, g
    tanh_c: NDArray           # (T, H, N)   tanh(c[t+1])
    inactive: NDArray | None  # (T, N)      True at padded steps


def compiled_loops() -> tuple[Callable | None, Callable | None]:
    """The compiled whole-sequence forward and backward loops (:func:`bptt.layers.kernels.lstm_sequence_kernels`),
    or ``(None, None)`` where the passes keep the NumPy loop over steps: without numba, without both NumPy's BLAS
    and SciPy, or with ``BPTT_KERNELS=numpy``. They run at every size: their products are NumPy's own BLAS calls,
    and their element-wise work one vectorised loop a step. Measured, compiled loops over the NumPy loop
    (``benchmarks/family_loop.py --family lstm``, 2026-12-02, 3 blocks, docs/performance.md), float64 / float32,
    training step: 0.19 / 0.15 at (T, N, I, H) = (50, 1, 1, 32), 0.71 / 0.59 at (100, 32, 1, 64), 0.72 / 0.76 at
    (100, 32, 32, 128), 1.05 / 0.87 at (100, 32, 128, 256), 1.01 / 0.94 at (100, 64, 256, 512); inference 0.19 /
    0.19, 0.73 / 0.71, 0.85 / 0.76, 0.90 / 0.96, 0.89 / 0.96."""
    return lstm_sequence_kernels() or (None, None)


def internal_gate_rows(hidden_size: int) -> NDArray:
    """Row indices that take PyTorch's gate order (i, f, g, o) to the internal order (i, f, o, g)."""
    H = hidden_size
    return np.concatenate([np.arange(0, 2 * H), np.arange(3 * H, 4 * H), np.arange(2 * H, 3 * H)])


def lstm_forward(weights: dict[str, NDArray], x: NDArray, states: tuple[NDArray, NDArray],
                 inactive: NDArray | None = None) -> tuple[NDArray, tuple[NDArray, NDArray], LSTMCache]:
    r"""Run one LSTM layer, one direction, over a whole sequence.

    Parameters
    ----------
    weights : ``weight_ih (4H, I)``, ``weight_hh (4H, S)``, optionally ``bias_ih, bias_hh (4H,)`` and
        ``weight_hr (P, H)``; PyTorch gate order i, f, g, o.
    x : (T, N, I) C-contiguous array in the working dtype.
    states : ``(h0 (N, S), c0 (N, H))``.
    inactive : (T, N) True at padded steps (their state is kept), or None.

    Returns
    -------
    out : (T, N, S) hidden states of every step; ``(h_n, c_n)``; cache : LSTMCache for :func:`lstm_backward`.
    """
    T, N, _ = x.shape
    weight_hh, weight_hr = weights["weight_hh"], weights.get("weight_hr")
    H, S = weight_hh.shape[0] // 4, weight_hh.shape[1]
    rows = internal_gate_rows(H)
    dtype = x.dtype
    bias = combined_bias(weights)
    # (L1) Z^x = W_ih x_t + b for all steps before the loop, (T, 4H, N), internal row order i, f, o, g with
    # the sigmoid rows halved; it becomes the gate buffer
    gates = GateProduct(weights["weight_ih"], rows, 3 * H, T * N).project(x, bias)
    h = np.empty((T + 1, S, N), dtype=dtype)
    c = np.empty((T + 1, H, N), dtype=dtype)
    tanh_c = np.empty((T, H, N), dtype=dtype)
    h[0] = states[0].T
    c[0] = states[1].T
    half = dtype.type(0.5)
    compiled, _ = compiled_loops()
    if compiled is not None:                                # (L2)-(L5), (L9) for every step in one compiled call
        compiled(gates, halved_rows(weight_hh, rows, 3 * H), h, c, tanh_c, padding_mask(inactive),
                    _projection_weight(weight_hr, dtype),
                    np.empty((H, N), dtype=dtype), half)
        return _results(x, h, c, gates, tanh_c, inactive)
    # Internal row order and halved sigmoid rows on the weights or on the products, as for (L1)
    recurrent_product = GateProduct(weight_hh, rows, 3 * H, T * N)
    recurrent = np.empty((4 * H, N), dtype=dtype)
    input_times_candidate = np.empty((H, N), dtype=dtype)
    output = np.empty((H, N), dtype=dtype) if weight_hr is not None else None
    for t in range(T):
        z = gates[t]
        recurrent_product(h[t], out=recurrent)              # (L2) z_t = Z^x_t + W_hh h_{t-1}
        z += recurrent
        np.tanh(z, out=z)                                   # (L3) g = tanh(z), and tanh(z/2) for i, f, o
        sig = z[:3 * H]
        sig *= 0.5
        sig += 0.5                                          # (L3) i, f, o = (1 + tanh(z/2)) / 2
        i, f, g = z[:H], z[H:2 * H], z[3 * H:]
        np.multiply(f, c[t], out=c[t + 1])                  # (L4) c = f c_prev + i g
        np.multiply(i, g, out=input_times_candidate)
        c[t + 1] += input_times_candidate
        o = z[2 * H:3 * H]
        np.tanh(c[t + 1], out=tanh_c[t])                    # (L5) m = o tanh(c)
        if output is None:
            np.multiply(o, tanh_c[t], out=h[t + 1])         # (L5) h = m
        else:
            np.multiply(o, tanh_c[t], out=output)
            matmul(weight_hr, output, out=h[t + 1])         # (L9) h = W_hr m
        frozen = inactive_at(inactive, t)
        freeze_inactive(c[t + 1], c[t], frozen)
        freeze_inactive(h[t + 1], h[t], frozen)
    return _results(x, h, c, gates, tanh_c, inactive)


def _results(x: NDArray, h: NDArray, c: NDArray, gates: NDArray, tanh_c: NDArray,
             inactive: NDArray | None) -> tuple[NDArray, tuple[NDArray, NDArray], LSTMCache]:
    """What :func:`lstm_forward` returns, from its filled arrays: ``out`` (always a copy: the caller may write
    to it), the final states and the cache."""
    T = len(tanh_c)
    return h[1:].transpose(0, 2, 1).copy(), (h[T].T.copy(), c[T].T.copy()), LSTMCache(x, h, c, gates, tanh_c, inactive)


def lstm_backward(weights: dict[str, NDArray], cache: LSTMCache, dout: NDArray,
                  dstates: tuple[NDArray, NDArray]) -> tuple[NDArray, tuple[NDArray, NDArray], dict[str, NDArray]]:
    r"""Backpropagation through time for one layer, one direction; the cache is only read.

    Parameters
    ----------
    weights : the weights of the forward pass, PyTorch layout.
    cache : from :func:`lstm_forward`.
    dout : (T, N, S) :math:`\partial L/\partial \mathrm{out}_t`.
    dstates : ``(dh_n (N, S), dc_n (N, H))``, gradients arriving at the final states.

    Returns
    -------
    dx : (T, N, I); ``(dh0, dc0)``; grads : dict with the keys of ``weights``, PyTorch layout.
    """
    x, h, c, gates, tanh_c, inactive = cache
    T, N, I = x.shape
    weight_ih, weight_hh, weight_hr = weights["weight_ih"], weights["weight_hh"], weights.get("weight_hr")
    H, S = weight_hh.shape[0] // 4, weight_hh.shape[1]
    _, compiled = compiled_loops()
    if compiled is not None:
        return _backward_in_one_call(compiled, weights, cache, dout, dstates)
    dtype = x.dtype
    w_hh_t = np.ascontiguousarray(weight_hh.T)          # (S, 4H) contiguous; unscaled: gradients are w.r.t. z
    d = np.empty((4 * H, N), dtype=dtype)               # dL/dz_t of the current step, PyTorch's order i, f, g, o
    # (L7), (L8) weight and input gradients, GEMMs over chunks of steps as the loop hands them over
    gradients = ChunkedGradients(x, h[:T], weight_ih, bias="bias_ih" in weights)
    upstream = FeatureMajorSteps(dout, gradients.chunk)    # dout_t as (S, N), a chunk at a time
    dh = np.empty((S, N), dtype=dtype)
    dh_all = np.empty((T, S, N), dtype=dtype) if weight_hr is not None else None
    dm = np.empty((H, N), dtype=dtype) if weight_hr is not None else dh
    dh_recurrent = np.array(dstates[0].T, dtype=dtype, order="C")  # W_hh^T dz_{t+1}; starts as dL/dh_T; C order
    dc = np.array(dstates[1].T, dtype=dtype, order="C")            # carries dL/dc_t backwards
    scratch = np.empty((H, N), dtype=dtype)
    sigmoid_slope = np.empty((3 * H, N), dtype=dtype)
    for t in range(T - 1, -1, -1):
        frozen = inactive_at(inactive, t)
        carried = dc.copy() if frozen is not None else None
        s = gates[t]
        i, f, o, g = s[:H], s[H:2 * H], s[2 * H:3 * H], s[3 * H:]
        di, df, dg, do = d[:H], d[H:2 * H], d[2 * H:3 * H], d[3 * H:]       # PyTorch's order, as the weights
        # (L6) dh_t = dL/dout_t + W_hh^T dz_{t+1}
        np.add(upstream[t], dh_recurrent, out=dh)
        if dh_all is not None:
            # (L9) h = W_hr m  =>  dm = W_hr^T dh (dW_hr after the loop)
            dh_all[t] = dh
            np.matmul(weight_hr.T, dh, out=dm)
        # (L5) m = o * tanh(c)
        np.multiply(dm, tanh_c[t], out=do)                  # dm/do = tanh c
        np.multiply(dm, o, out=scratch)                     # dm/dtanh(c) = o
        dc += scratch                                       # dtanh(c)/dc = 1 - tanh^2 c, in two adds:
        scratch *= tanh_c[t]
        scratch *= tanh_c[t]
        dc -= scratch                                       # dc += dm o (1 - tanh^2 c); dc carried t+1 in
        # (L4) c = f * c_prev + i * g
        np.multiply(dc, g, out=di)                          # dc/di = g
        np.multiply(dc, c[t], out=df)                       # dc/df = c_prev
        np.multiply(dc, i, out=dg)                          # dc/dg = i
        dc *= f                                             # dc/dc_prev = f: now dL/dc_{t-1} through c
        # (L3) i, f, o = sigmoid(z), g = tanh(z)
        sigmoid_grad_from_output(s[:3 * H], out=sigmoid_slope)                   # s (1 - s), rows i, f, o
        d[:2 * H] *= sigmoid_slope[:2 * H]
        do *= sigmoid_slope[2 * H:]
        dg *= tanh_grad_from_output(g, out=scratch)                              # 1 - g^2
        if frozen is not None:                              # padded step: h, c pass through unchanged
            np.copyto(d, 0.0, where=frozen)
        # (L2) z_t = Z^x_t + W_hh h_{t-1}  =>  dL/dh_{t-1} gets W_hh^T dz_t (used by L6 at t-1)
        np.matmul(w_hh_t, d, out=dh_recurrent)
        if frozen is not None:
            np.copyto(dh_recurrent, dh, where=frozen)
            np.copyto(dc, carried, where=frozen)
            if dh_all is not None:
                np.copyto(dh_all[t], 0.0, where=frozen)  # W_hr was not used at a padded step
        gradients.add(t, d)
    # (L7) in PyTorch's gate order, the order of d
    grads = {"weight_ih": gradients.weight_ih_grad, "weight_hh": gradients.weight_hh_grad}
    if "bias_ih" in weights:
        grads["bias_ih"] = grads["bias_hh"] = gradients.bias_ih_grad
    if dh_all is not None:
        grads["weight_hr"] = _projection_gradient(gates, tanh_c, dh_all)
    return gradients.dx, (dh_recurrent.T.copy(), dc.T.copy()), grads


def _backward_in_one_call(kernel, weights: dict[str, NDArray], cache: LSTMCache, dout: NDArray,
                          dstates: tuple[NDArray, NDArray]) -> tuple[NDArray, tuple[NDArray, NDArray], dict]:
    """:func:`lstm_backward` in one compiled call (``kernel``, :func:`bptt.layers.kernels.lstm_sequence_kernels`):
    (L6)-(L3) and the recurrent product of every step, and (L7), (L8) over each chunk of :func:`chunk_steps`
    steps as :class:`ChunkedGradients` takes them; then dW_hr of (L9) in one GEMM, as the NumPy loop. Every
    buffer is allocated here, as NumPy arrays."""
    x, h, c, gates, tanh_c, inactive = cache
    T, N, I = x.shape
    weight_ih, weight_hh, weight_hr = weights["weight_ih"], weights["weight_hh"], weights.get("weight_hr")
    G, S = weight_hh.shape
    dtype = x.dtype
    chunk = chunk_steps(N, T)
    dh = np.array(dstates[0].T, dtype=dtype, order="C")     # dL/dh_T, then dL/dh_0
    dc = np.array(dstates[1].T, dtype=dtype, order="C")     # dL/dc_T, then dL/dc_0
    dh_all = np.empty((T if weight_hr is not None else 0, S, N), dtype=dtype)
    dx = np.empty((T, N, I), dtype=dtype)
    grads = {"weight_ih": np.zeros((G, I), dtype=dtype), "weight_hh": np.zeros((G, S), dtype=dtype)}
    bias = np.zeros(G if "bias_ih" in weights else 0, dtype=dtype)
    kernel(dout, np.ascontiguousarray(x), h, c, gates, tanh_c, padding_mask(inactive), np.ascontiguousarray(weight_ih),
           np.ascontiguousarray(weight_hh.T), _projection_weight(None if weight_hr is None else weight_hr.T, dtype),
           dtype.type(1), dh, dc, dh_all, np.empty((chunk * N, G), dtype=dtype), np.empty((chunk * N, S), dtype=dtype),
           dx, grads["weight_ih"], grads["weight_hh"], bias, np.empty((G, I), dtype=dtype),
           np.empty((G, S), dtype=dtype))
    if "bias_ih" in weights:
        grads["bias_ih"] = grads["bias_hh"] = bias
    if weight_hr is not None:
        grads["weight_hr"] = _projection_gradient(gates, tanh_c, dh_all)
    return dx, (dh.T.copy(), dc.T.copy()), grads


def _projection_gradient(gates: NDArray, tanh_c: NDArray, dh_all: NDArray) -> NDArray:
    """(L9) dW_hr = sum_t dh_t m_t^T with m_t = o_t tanh(c_t), one GEMM over all steps."""
    H = tanh_c.shape[1]
    return matmul(step_columns(dh_all), step_columns(gates[:, 2 * H:3 * H] * tanh_c).T)


def _projection_weight(weight: NDArray | None, dtype: np.dtype) -> NDArray:
    """The compiled loops' ``weight_hr`` argument: ``weight`` C-contiguous, or an empty ``(0, 0)`` array of the
    working dtype without a projection (numba needs an array, of the type the loop's products use)."""
    return np.empty((0, 0), dtype=dtype) if weight is None else np.ascontiguousarray(weight)


LSTM_FAMILY = Family("LSTM", 4, ("h", "c"), lstm_forward, lstm_backward)


class LSTM(RecurrentLayer):
    r"""A multi-layer LSTM with PyTorch's semantics and a hand-derived backward pass.

    Parameters
    ----------
    input_size : I, features of each input step.
    hidden_size : H.
    num_layers : L, stacked layers; layer k > 0 reads layer k-1's output.
    bias : whether to use ``bias_ih_l{k}`` and ``bias_hh_l{k}``.
    batch_first : inputs and outputs are ``(N, T, *)`` instead of ``(T, N, *)``.
    dropout : probability of zeroing each output of every layer but the last, in training mode.
    bidirectional : add a reverse direction per layer (``_reverse`` parameters, outputs ``(T, N, 2S)``).
    proj_size : P > 0 projects the hidden state, :math:`h_t = W_{hr}\, (o \odot \tanh c_t)` (L9).
    dtype : float64 (default, exact to round-off) or float32.
    rng : int seed or ``numpy.random.Generator`` for the initial weights and the dropout masks.

    Notes
    -----
    Shapes: T steps, N batch, I input, H hidden, P projection, L layers, D directions, S = P or H.
    ``x (T, N, I)``, or ``(N, T, I)`` with ``batch_first``, or unbatched ``(T, I)``; ``out (T, N, D*S)``;
    states ``h (L*D, N, S)``, ``c (L*D, N, H)`` (unbatched without N); ``lengths (N,)``.
    Parameters as PyTorch: ``weight_ih_l{k} (4H, I or D*S)``, ``weight_hh_l{k} (4H, S)``,
    ``bias_ih_l{k}, bias_hh_l{k} (4H,)``, ``weight_hr_l{k} (P, H)``, gate rows i, f, g, o; every entry
    :math:`\sim U(-k, k)` with :math:`k = 1/\sqrt{H}` (PyTorch's default).

    Equations (L1)-(L9) are in :mod:`bptt.layers.lstm` and derived in ``docs/lstm.md``.

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

    family = LSTM_FAMILY

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, proj_size: int = 0,
                 *, dtype: object = np.float64, rng: object = None) -> None:
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, proj_size,
                         dtype=dtype, rng=rng)
