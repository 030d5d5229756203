r"""Gated recurrent unit: a sequence forward pass, its hand-derived BPTT backward pass, and the layer.

PyTorch's GRU, one layer, one direction, step :math:`t = 1..T` (``docs/gru.md`` derives every backward
line); gate rows r, z, n:

.. math::

    \text{(G1)}\quad & X^x = W_{ih} x_t + b_{ih} && \text{input projection of all steps, one GEMM} \\
    \text{(G2)}\quad & a_t = W_{hh} h_{t-1} + b_{hh} && \text{recurrent projection, } (3H, N) \\
    \text{(G3)}\quad & r = \sigma(X^x_r + a_r),\;\; z = \sigma(X^x_z + a_z) \\
    \text{(G4)}\quad & n = \tanh(X^x_n + r \odot a_n) && b_{hn} \text{ stays inside the reset product} \\
    \text{(G5)}\quad & h_t = (1 - z) \odot n + z \odot h_{t-1}

Backward, with :math:`\delta` the total derivative of the loss:

.. math::

    \text{(G6)}\quad & \delta h_t = \partial L/\partial \mathrm{out}_t + W_{hh}^\top \delta a_{t+1}
        + z_{t+1} \odot \delta h_{t+1} \\
    \text{(G7)}\quad & \delta W_{ih} = \textstyle\sum_t \delta X_t x_t^\top,\; \delta W_{hh} = \sum_t \delta a_t
        h_{t-1}^\top,\; \delta b_{ih} = \sum_t \delta X_t \mathbf 1,\; \delta b_{hh} = \sum_t \delta a_t \mathbf 1 \\
    \text{(G8)}\quad & \delta x_t = W_{ih}^\top \delta X_t

where :math:`\delta X` and :math:`\delta a` agree on the r and z rows and differ on the n rows:
:math:`\delta X_n = \delta n \odot (1 - n^2)`, :math:`\delta a_n = r \odot \delta X_n`.

Layout as in :mod:`bptt.layers.lstm`: feature-major per step (gates ``(3H, N)``, states ``(H, N)``), the r and z
rows of the weights halved (exact) so that one ``tanh`` call and an affine map give both sigmoids.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from bptt.layers.activations import sigmoid_grad_from_output, tanh_grad_from_output
from bptt.layers.kernels import gru_sequence_kernels, padding_mask
from bptt.layers.recurrent import (
    ChunkedGradients,
    Family,
    FeatureMajorSteps,
    GateProduct,
    RecurrentLayer,
    chunk_steps,
    freeze_inactive,
    halved_rows,
    inactive_at,
)


class GRUCache(NamedTuple):
    """What one layer's forward pass keeps for its backward pass (feature-major, outputs only)."""

    x: NDArray                # (T, N, I)   layer input
    h: NDArray                # (T+1, H, N) h[0] = h0
    gates: NDArray            # (T, 3H, N)  activated r, z, n
    hidden_n: NDArray         # (T, H, N)   a_n = W_hn h_{t-1} + b_hn, the term the reset gate scales
    inactive: NDArray | None  # (T, N)      True at padded steps


def compiled_loops() -> tuple[Callable | None, Callable | None]:
    """The compiled whole-sequence forward and backward loops (:func:`bptt.layers.kernels.gru_sequence_kernels`),
    or ``(None, None)`` where the passes keep the loop over steps in Python: without numba, without both NumPy's
    BLAS and SciPy, or with ``BPTT_KERNELS=numpy``. They run at every size. Measured, compiled loops over the
    Python loop (``benchmarks/family_loop.py --family gru``, 2026-12-02, 3 blocks, docs/performance.md), float64 /
    float32, training step: 0.15 / 0.12 at (T, N, I, H) = (50, 1, 1, 32), 0.64 / 0.53 at (100, 32, 1, 64),
    0.87 / 0.81 at (100, 32, 32, 128), 0.91 / 0.85 at (100, 32, 128, 256), 0.98 / 1.00 at (100, 64, 256, 512);
    inference 0.15 / 0.14, 0.62 / 0.49, 0.68 / 0.81, 0.84 / 0.87, 0.82 / 0.96."""
    return gru_sequence_kernels() or (None, None)


def gru_forward(weights: dict[str, NDArray], x: NDArray, states: tuple[NDArray],
                inactive: NDArray | None = None) -> tuple[NDArray, tuple[NDArray], GRUCache]:
    r"""Run one GRU layer, one direction, over a whole sequence.

    Parameters
    ----------
    weights : ``weight_ih (3H, I)``, ``weight_hh (3H, H)``, optionally ``bias_ih, bias_hh (3H,)``; rows r, z, n.
    x : (T, N, I) C-contiguous array in the working dtype.
    states : ``(h0 (N, H),)``.
    inactive : (T, N) True at padded steps (their state is kept), or None.

    Returns
    -------
    out : (T, N, H); ``(h_n,)``; cache : GRUCache for :func:`gru_backward`.

    Where :func:`compiled_loops` gives a compiled forward loop, (G2) to (G5) of every step run in that one call.
    """
    T, N, _ = x.shape
    H = weights["weight_hh"].shape[1]
    dtype = x.dtype
    has_bias = "bias_ih" in weights
    # The r and z rows halved, on the weights or on the products (GateProduct)
    recurrent_product = GateProduct(weights["weight_hh"], None, 2 * H, T * N)
    input_bias = None
    if has_bias:
        # b_hr and b_hz only ever add to the input projection; b_hn must stay inside r * (W_hn h + b_hn)
        input_bias = weights["bias_ih"].copy()
        input_bias[:2 * H] += weights["bias_hh"][:2 * H]
    # (G1) X^x = W_ih x_t + b for all steps before the loop, (T, 3H, N); it becomes the gate buffer
    gates = GateProduct(weights["weight_ih"], None, 2 * H, T * N).project(x, input_bias)
    h = np.empty((T + 1, H, N), dtype=dtype)
    hidden_n = np.empty((T, H, N), dtype=dtype)
    h[0] = states[0].T
    half = dtype.type(0.5)
    n_bias = weights["bias_hh"][2 * H:] if has_bias else np.empty(0, dtype=dtype)  # b_hn
    compiled, _ = compiled_loops()
    if compiled is not None:                                # (G2) to (G5) for every step in one compiled call
        compiled(gates, halved_rows(weights["weight_hh"], None, 2 * H), h, hidden_n,
                 np.ascontiguousarray(np.broadcast_to((n_bias if has_bias else np.zeros(H, dtype=dtype))[:, None],
                                                      (H, N))),
                 padding_mask(inactive), half)
        return _results(x, h, gates, hidden_n, inactive)
    recurrent = np.empty((3 * H, N), dtype=dtype)
    scratch = np.empty((H, N), dtype=dtype)
    for t in range(T):
        s = gates[t]
        recurrent_product(h[t], out=recurrent)                             # (G2) a = W_hh h_{t-1} + b_hh
        s[:2 * H] += recurrent[:2 * H]
        np.tanh(s[:2 * H], out=s[:2 * H])
        n = s[2 * H:]
        s[:2 * H] *= 0.5
        s[:2 * H] += 0.5                                                    # (G3) r, z = (1 + tanh(./2)) / 2
        r, z = s[:H], s[H:2 * H]
        if has_bias:
            np.add(recurrent[2 * H:], n_bias[:, None], out=hidden_n[t])
        else:
            hidden_n[t] = recurrent[2 * H:]
        np.multiply(r, hidden_n[t], out=scratch)                            # (G4) n = tanh(X_n + r a_n)
        n += scratch
        np.tanh(n, out=n)
        np.subtract(h[t], n, out=scratch)                                   # (G5) h = n + z (h_prev - n)
        scratch *= z
        np.add(n, scratch, out=h[t + 1])
        freeze_inactive(h[t + 1], h[t], inactive_at(inactive, t))
    return _results(x, h, gates, hidden_n, inactive)


def _results(x: NDArray, h: NDArray, gates: NDArray, hidden_n: NDArray,
             inactive: NDArray | None) -> tuple[NDArray, tuple[NDArray], GRUCache]:
    """What :func:`gru_forward` returns, from its filled states: ``out``, ``(h_n,)`` and the cache."""
    out = h[1:].transpose(0, 2, 1).copy()
    return out, (h[-1].T.copy(),), GRUCache(x, h, gates, hidden_n, inactive)


def gru_backward(weights: dict[str, NDArray], cache: GRUCache, dout: NDArray,
                 dstates: tuple[NDArray]) -> tuple[NDArray, tuple[NDArray], dict[str, NDArray]]:
    r"""Backpropagation through time for one GRU layer, one direction; the cache is only read.

    Returns ``dx (T, N, I)``, ``(dh0,)`` and the gradients of ``weights`` in PyTorch's layout. Where
    :func:`compiled_loops` gives a compiled backward loop, the whole pass runs in that one call
    (:func:`_backward_in_one_call`).
    """
    x, h, gates, hidden_n, inactive = cache
    T, N, I = x.shape
    H = weights["weight_hh"].shape[1]
    dtype = x.dtype
    _, compiled = compiled_loops()
    if compiled is not None:
        return _backward_in_one_call(compiled, weights, cache, dout, dstates)
    w_hh_t = np.ascontiguousarray(weights["weight_hh"].T)  # (H, 3H); a contiguous copy makes the GEMM faster
    d = np.empty((3 * H, N), dtype=dtype)               # dL/da_t of the current step: r, z rows as dX, n rows r dX_n
    dn = np.empty((H, N), dtype=dtype)                  # dL/dX^x_n of the current step, the n rows of dX
    # (G7), (G8) weight and input gradients, GEMMs over chunks of steps as the loop hands them over
    gradients = ChunkedGradients(x, h[:T], weights["weight_ih"], bias="bias_ih" in weights, input_tail=H)
    upstream = FeatureMajorSteps(dout, gradients.chunk)    # dout_t as (H, N), a chunk at a time
    dh = np.empty((H, N), dtype=dtype)
    # W_hh^T da_{t+1} + z_{t+1} dh_{t+1}; starts as dL/dh_T (C order, as the kernels and the GEMM want)
    dh_recurrent = np.array(dstates[0].T, dtype=dtype, order="C")
    scratch = np.empty((H, N), dtype=dtype)
    sigmoid_slope = np.empty((2 * H, N), dtype=dtype)
    for t in range(T - 1, -1, -1):
        s = gates[t]
        frozen = inactive_at(inactive, t)
        r, z, n = s[:H], s[H:2 * H], s[2 * H:]
        dr, dz, dn_hidden = d[:H], d[H:2 * H], d[2 * H:]
        # (G6) dh_t = dL/dout_t + (recurrent and direct paths from t+1)
        np.add(upstream[t], dh_recurrent, out=dh)
        # (G5) h = (1 - z) n + z h_prev
        np.subtract(1.0, z, out=scratch)
        np.multiply(dh, scratch, out=dn)                    # dh/dn = 1 - z
        np.subtract(h[t], n, out=scratch)
        np.multiply(dh, scratch, out=dz)                    # dh/dz = h_prev - n
        # (G4) n = tanh(X_n + r a_n)
        dn *= tanh_grad_from_output(n, out=scratch)         # dn/dX_n = 1 - n^2: dn is now dL/dX^x_n
        np.multiply(dn, hidden_n[t], out=dr)                # d(r a_n)/dr = a_n
        np.multiply(dn, r, out=dn_hidden)                   # d(r a_n)/da_n = r
        # (G3) r, z = sigmoid(.)
        d[:2 * H] *= sigmoid_grad_from_output(s[:2 * H], out=sigmoid_slope)      # s (1 - s)
        if frozen is not None:                              # padded step: h passes through unchanged
            np.copyto(d, 0.0, where=frozen)
            np.copyto(dn, 0.0, where=frozen)
        np.multiply(dh, z, out=scratch)                     # (G5) the direct path to h_prev: z dh
        # (G2) a = W_hh h_prev + b_hh, and the direct path of (G5): dh_prev = W_hh^T da + z dh
        np.matmul(w_hh_t, d, out=dh_recurrent)
        dh_recurrent += scratch
        if frozen is not None:
            np.copyto(dh_recurrent, dh, where=frozen)
        gradients.add(t, d, dn)
    grads = {"weight_ih": gradients.weight_ih_grad, "weight_hh": gradients.weight_hh_grad}
    if "bias_ih" in weights:
        grads["bias_ih"], grads["bias_hh"] = gradients.bias_ih_grad, gradients.bias_hh_grad
    return gradients.dx, (dh_recurrent.T.copy(),), grads


def _backward_in_one_call(kernel: Callable, weights: dict[str, NDArray], cache: GRUCache, dout: NDArray,
                          dstates: tuple[NDArray]) -> tuple[NDArray, tuple[NDArray], dict[str, NDArray]]:
    """:func:`gru_backward` in one compiled call (``kernel``, :func:`bptt.layers.kernels.gru_sequence_kernels`):
    (G6) to (G2) of every step, and (G7), (G8) over each chunk of :func:`chunk_steps` steps as
    :class:`ChunkedGradients` takes them, so the pass holds no more than the NumPy loop does. Every buffer is
    allocated here, as NumPy arrays."""
    x, h, gates, hidden_n, inactive = cache
    T, N, I = x.shape
    H = weights["weight_hh"].shape[1]
    dtype = x.dtype
    width = chunk_steps(N, T) * N
    dh = np.array(dstates[0].T, dtype=dtype, order="C")     # dL/dh_T, then dL/dh_0
    dx = np.empty((T, N, I), dtype=dtype)
    grads = {"weight_ih": np.zeros((3 * H, I), dtype=dtype), "weight_hh": np.zeros((3 * H, H), dtype=dtype)}
    biases = [np.zeros(3 * H if "bias_ih" in weights else 0, dtype=dtype) for _ in range(2)]
    kernel(dout, np.ascontiguousarray(x), h, gates, hidden_n, padding_mask(inactive),
           np.ascontiguousarray(weights["weight_ih"]), np.ascontiguousarray(weights["weight_hh"].T), dtype.type(1), dh,
           np.empty((width, 3 * H), dtype=dtype), np.empty((width, H), dtype=dtype), np.empty((width, H), dtype=dtype),
           dx, np.empty((width, I), dtype=dtype), grads["weight_ih"], grads["weight_hh"], *biases,
           np.empty((3 * H, I), dtype=dtype), np.empty((3 * H, H), dtype=dtype))
    if "bias_ih" in weights:
        grads["bias_ih"], grads["bias_hh"] = biases
    return dx, (dh.T.copy(),), grads


GRU_FAMILY = Family("GRU", 3, ("h",), gru_forward, gru_backward)


class GRU(RecurrentLayer):
    r"""A multi-layer GRU with PyTorch's semantics and a hand-derived backward pass.

    Parameters as :class:`bptt.LSTM` (without ``proj_size``): ``input_size``, ``hidden_size``,
    ``num_layers``, ``bias``, ``batch_first``, ``dropout``, ``bidirectional``, ``dtype``, ``rng``.

    Shapes: ``x (T, N, I)`` (``(N, T, I)`` with ``batch_first``, unbatched ``(T, I)``), ``out (T, N, D*H)``,
    ``h (L*D, N, H)``. Parameters ``weight_ih_l{k} (3H, I or D*H)``, ``weight_hh_l{k} (3H, H)``,
    ``bias_ih_l{k}, bias_hh_l{k} (3H,)``, gate rows r, z, n; init :math:`U(-1/\sqrt{H}, 1/\sqrt{H})`.
    Equations (G1)-(G8) are in :mod:`bptt.layers.gru` and derived in ``docs/gru.md``.

    Examples
    --------
    >>> gru = GRU(3, 4, num_layers=2, bidirectional=True, rng=0)
    >>> out, h_n = gru(np.zeros((5, 2, 3)))
    >>> out.shape, h_n.shape
    ((5, 2, 8), (4, 2, 4))
    >>> dx, dh0 = gru.backward(np.ones_like(out))
    >>> dx.shape, gru.grads["weight_hh_l1_reverse"].shape
    ((5, 2, 3), (12, 4))
    """

    family = GRU_FAMILY

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 *, dtype: object = np.float64, rng: object = None) -> None:
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         dtype=dtype, rng=rng)
