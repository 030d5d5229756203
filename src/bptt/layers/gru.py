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
from bptt.layers.kernels import gru_backward_cell, gru_forward_cells, gru_sequence_kernels, padding_mask
from bptt.layers.recurrent import (
    ChunkedGradients,
    Family,
    FeatureMajorSteps,
    GateProduct,
    RecurrentLayer,
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


COMPILED_FORWARD_UNITS = 128
"""Largest H N for which, with numba and SciPy installed, the forward pass runs all its steps in one compiled
call (:func:`bptt.layers.kernels.gru_sequence_kernels`) instead of a loop over steps in Python. The compiled loop
saves a step's half-dozen calls (about 1-2 µs each), but evaluates its 3 H N values of tanh one at a time with the
C library's ``tanh`` (7-20 ns a value) where NumPy's vectorised one takes 0.4 to 1.7 ns, so it gains only while a
step holds few values. Measured, inference, compiled over the Python loop, float64 and float32
(``benchmarks/gru_loop.py``, 2026-12-02, ``docs/performance.md``): 0.29-0.35 at (T, N, I, H) = (50, 1, 1, 32),
0.35-0.39 at (50, 1, 1, 64), 0.63 at (50, 4, 1, 32), 0.66-0.70 at (50, 1, 1, 128); 0.92-1.10 at H N = 256,
1.48-1.79 at (50, 16, 1, 32), 1.6-3.0 at (100, 32, 1, 64) and 2.0-8.7 above."""

COMPILED_BACKWARD_PRODUCT = 2**15
"""Largest N H^2, a third of the multiply-adds of one step's recurrent product, for which the backward pass
runs its steps in compiled calls, one per chunk of steps (:func:`_backward_in_chunks`). It has no tanh to pay
for, but its products run in SciPy's OpenBLAS, a second thread pool beside NumPy's, which busy-waits after each
chunk's NumPy GEMMs: once a step's product is large enough for SciPy's to use its threads, the two fight for the
two cores. Measured, training step with the compiled backward over the Python loop, float64 and float32: 0.70-0.74
at (50, 1, 1, 32), 0.70 at (50, 1, 1, 64), 0.82-0.83 at (50, 4, 1, 32), 0.65-0.81 at (50, 8, 1, 32), 0.70-0.90 at
(50, 16, 1, 32), 0.80-0.97 at (50, 1, 1, 128) (all N H^2 <= 2^15); 0.84-1.11 at (50, 1, 1, 256) (2^16), 1.01-1.04
at (100, 32, 1, 64) (2^17), 4.5-7.5 at (100, 32, 32, 128), 3.0-4.1 at (100, 32, 128, 256), 1.9-2.7 at
(100, 64, 256, 512). These figures predate the loops' SciPy BLAS running on one thread during each call
(:func:`bptt.layers.kernels.gru_sequence_kernels`, as the RNN's), which settles that fight; the bound has not been
measured again since."""

def compiled_loops(batch: int, hidden_size: int) -> tuple[Callable | None, Callable | None]:
    """The compiled whole-sequence forward and backward loops (:func:`bptt.layers.kernels.gru_sequence_kernels`)
    that a layer of ``batch`` N and ``hidden_size`` H uses, each None where it keeps the loop over steps in
    Python: both without numba or SciPy or with ``BPTT_KERNELS=numpy``; the forward above
    :data:`COMPILED_FORWARD_UNITS`, the backward above :data:`COMPILED_BACKWARD_PRODUCT` (every size within the
    first is within the second). The two are independent: both forward loops fill the same cache, which both
    backward loops read."""
    kernels = gru_sequence_kernels()
    if kernels is None:
        return None, None
    forward, backward = kernels
    return (forward if batch * hidden_size <= COMPILED_FORWARD_UNITS else None,
            backward if batch * hidden_size**2 <= COMPILED_BACKWARD_PRODUCT else None)


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
    compiled, _ = compiled_loops(N, H)
    if compiled is not None:                                # (G2) to (G5) for every step in one compiled call
        compiled(gates, halved_rows(weights["weight_hh"], None, 2 * H), h, hidden_n, n_bias, padding_mask(inactive),
                 half)
        return _results(x, h, gates, hidden_n, inactive)
    recurrent = np.empty((3 * H, N), dtype=dtype)
    scratch = np.empty((H, N), dtype=dtype)
    gates_kernel, state_kernel = gru_forward_cells() or (None, None)  # bptt.layers.kernels, with numba
    for t in range(T):
        s = gates[t]
        recurrent_product(h[t], out=recurrent)                             # (G2) a = W_hh h_{t-1} + b_hh
        s[:2 * H] += recurrent[:2 * H]
        np.tanh(s[:2 * H], out=s[:2 * H])
        n = s[2 * H:]
        if gates_kernel is not None:
            gates_kernel(s, recurrent, n_bias, hidden_n[t], half)          # (G3) r, z; (G4) X_n + r a_n
            np.tanh(n, out=n)                                               # (G4) n = tanh(X_n + r a_n)
            state_kernel(s, h[t], h[t + 1])                                 # (G5) h = n + z (h_prev - n)
        else:
            s[:2 * H] *= 0.5
            s[:2 * H] += 0.5                                                # (G3) r, z = (1 + tanh(./2)) / 2
            r, z = s[:H], s[H:2 * H]
            if has_bias:
                np.add(recurrent[2 * H:], n_bias[:, None], out=hidden_n[t])
            else:
                hidden_n[t] = recurrent[2 * H:]
            np.multiply(r, hidden_n[t], out=scratch)                        # (G4) n = tanh(X_n + r a_n)
            n += scratch
            np.tanh(n, out=n)
            np.subtract(h[t], n, out=scratch)                               # (G5) h = n + z (h_prev - n)
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
    :func:`compiled_loops` gives a compiled backward loop, the steps run in it, one call per chunk of steps
    (:func:`_backward_in_chunks`).
    """
    x, h, gates, hidden_n, inactive = cache
    T, N, I = x.shape
    H = weights["weight_hh"].shape[1]
    dtype = x.dtype
    _, compiled = compiled_loops(N, H)
    if compiled is not None:
        return _backward_in_chunks(compiled, weights, cache, dout, dstates)
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
    # The compiled kernel of bptt.layers.kernels where numba is installed: the same operations, fused; it covers
    # steps without padding
    fused = gru_backward_cell() if inactive is None else None
    one = dtype.type(1)
    for t in range(T - 1, -1, -1):
        s = gates[t]
        frozen = inactive_at(inactive, t)
        if fused is not None:  # (G6) to (G3) in one loop; scratch gets z dh, the direct path of (G5)
            fused(upstream[t], dh_recurrent, s, h[t], hidden_n[t], d, dn, scratch, one)
        else:
            r, z, n = s[:H], s[H:2 * H], s[2 * H:]
            dr, dz, dn_hidden = d[:H], d[H:2 * H], d[2 * H:]
            # (G6) dh_t = dL/dout_t + (recurrent and direct paths from t+1)
            np.add(upstream[t], dh_recurrent, out=dh)
            # (G5) h = (1 - z) n + z h_prev
            np.subtract(1.0, z, out=scratch)
            np.multiply(dh, scratch, out=dn)                # dh/dn = 1 - z
            np.subtract(h[t], n, out=scratch)
            np.multiply(dh, scratch, out=dz)                # dh/dz = h_prev - n
            # (G4) n = tanh(X_n + r a_n)
            dn *= tanh_grad_from_output(n, out=scratch)     # dn/dX_n = 1 - n^2: dn is now dL/dX^x_n
            np.multiply(dn, hidden_n[t], out=dr)            # d(r a_n)/dr = a_n
            np.multiply(dn, r, out=dn_hidden)               # d(r a_n)/da_n = r
            # (G3) r, z = sigmoid(.)
            d[:2 * H] *= sigmoid_grad_from_output(s[:2 * H], out=sigmoid_slope)  # s (1 - s)
            if frozen is not None:                          # padded step: h passes through unchanged
                np.copyto(d, 0.0, where=frozen)
                np.copyto(dn, 0.0, where=frozen)
            np.multiply(dh, z, out=scratch)                 # (G5) the direct path to h_prev: z dh
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


def _backward_in_chunks(kernel: Callable, weights: dict[str, NDArray], cache: GRUCache, dout: NDArray,
                        dstates: tuple[NDArray]) -> tuple[NDArray, tuple[NDArray], dict[str, NDArray]]:
    """:func:`gru_backward` with (G6) to (G2) of every step in compiled calls (``kernel``,
    :func:`bptt.layers.kernels.gru_sequence_kernels`), one per chunk of steps: each call fills the chunk's columns
    of the weight-gradient buffers, and (G7), (G8) take them as GEMMs in NumPy's BLAS between the calls, so the
    pass holds no more than the NumPy loop does (issue 17: a training step's peak at most 1.5x the cache)."""
    x, h, gates, hidden_n, inactive = cache
    T, N, _ = x.shape
    H = weights["weight_hh"].shape[1]
    dtype = x.dtype
    weight_hh_t = np.ascontiguousarray(weights["weight_hh"].T)  # (H, 3H), PyTorch's rows, as the NumPy loop's
    gradients = ChunkedGradients(x, h[:T], weights["weight_ih"], bias="bias_ih" in weights, input_tail=H)
    d = np.empty((3 * H, N), dtype=dtype)                  # dL/da of the chunk's first step, as the NumPy loop's
    dn = np.empty((H, N), dtype=dtype)                     # dL/dX^x_n likewise
    dh_recurrent = np.array(dstates[0].T, dtype=dtype, order="C")
    padding, one = padding_mask(inactive), dtype.type(1)
    for start in range((T - 1) // gradients.chunk * gradients.chunk, -1, -gradients.chunk):
        stop = min(start + gradients.chunk, T)
        kernel(dout, gates, h, hidden_n, weight_hh_t, padding, start, stop, one, dh_recurrent, d, dn,
               gradients.hidden_columns, gradients.tail_columns)
        gradients.add(start, d, dn)                        # step start's columns, then (G7), (G8) for the chunk
    grads = {"weight_ih": gradients.weight_ih_grad, "weight_hh": gradients.weight_hh_grad}
    if "bias_ih" in weights:
        grads["bias_ih"], grads["bias_hh"] = gradients.bias_ih_grad, gradients.bias_hh_grad
    return gradients.dx, (dh_recurrent.T.copy(),), grads


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
