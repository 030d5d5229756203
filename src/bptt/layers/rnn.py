r"""The plain (Elman) recurrent network: a sequence forward pass, its hand-derived BPTT backward pass, and
the layer.

PyTorch's RNN, one layer, one direction, step :math:`t = 1..T` (``docs/rnn.md`` derives every backward
line), with :math:`\phi = \tanh` or ReLU:

.. math::

    \text{(R1)}\quad & Z^x = W_{ih} x_t + b_{ih} + b_{hh} && \text{input projection of all steps, one GEMM} \\
    \text{(R2)}\quad & z_t = Z^x_t + W_{hh} h_{t-1} \\
    \text{(R3)}\quad & h_t = \phi(z_t)

Backward:

.. math::

    \text{(R4)}\quad & \delta h_t = \partial L/\partial \mathrm{out}_t + W_{hh}^\top \delta z_{t+1},\;\;
        \delta z_t = \delta h_t \odot \phi'(z_t) \\
    \text{(R5)}\quad & \delta W_{ih} = \textstyle\sum_t \delta z_t x_t^\top,\; \delta W_{hh} = \sum_t \delta z_t
        h_{t-1}^\top,\; \delta b = \sum_t \delta z_t \mathbf 1 \\
    \text{(R6)}\quad & \delta x_t = W_{ih}^\top \delta z_t

:math:`\phi'` comes from the output: :math:`1 - h^2` for tanh, :math:`[h > 0]` for ReLU (0 at the kink,
as PyTorch).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from bptt.layers._blas import matmul  # np.matmul without OpenBLAS's spurious invalid flag
from bptt.layers.activations import tanh_grad_from_output
from bptt.layers.kernels import padding_mask, rnn_sequence_kernels
from bptt.layers.recurrent import Family, RecurrentLayer, chunk_steps, combined_bias, inactive_at

NONLINEARITIES = ("tanh", "relu")


class RNNCache(NamedTuple):
    """What one layer's forward pass keeps for its backward pass: its outputs, row-major."""

    x: NDArray                # (T, N, I)   layer input
    h: NDArray                # (T+1, N, H) h[0] = h0, h[t] = phi(z_t); h[1:] is the layer's out
    inactive: NDArray | None  # (T, N)      True at padded steps


def compiled_loops() -> tuple[Callable | None, Callable | None]:
    """The compiled whole-sequence forward and backward loops (:func:`bptt.layers.kernels.rnn_sequence_kernels`),
    or ``(None, None)`` where the passes keep the NumPy loop over steps: without numba, without both NumPy's BLAS
    and SciPy, or with ``BPTT_KERNELS=numpy``. They run at every size and for both nonlinearities. Measured,
    compiled loops over the NumPy loop (``benchmarks/family_loop.py --family rnn``, 2026-12-02, 3 blocks,
    docs/performance.md), float64 / float32, training step, tanh: 0.25 / 0.19 at (T, N, I, H) = (50, 1, 1, 32),
    0.54 / 0.36 at (100, 32, 1, 64), 0.89 / 0.81 at (100, 32, 32, 128), 0.90 / 0.92 at (100, 32, 128, 256),
    0.77 / 0.96 at (100, 64, 256, 512); ReLU 0.18 / 0.15, 0.81 / 0.44, 0.82 / 0.83, 0.89 / 0.87, 0.98 / 0.95."""
    return rnn_sequence_kernels() or (None, None)


def _activate(z: NDArray, nonlinearity: str) -> None:
    if nonlinearity == "tanh":
        np.tanh(z, out=z)
    else:
        np.maximum(z, 0.0, out=z)


def _slope_from_output(h: NDArray, nonlinearity: str, out: NDArray) -> NDArray:
    """phi'(z) from h = phi(z): 1 - h^2 for tanh, [h > 0] for ReLU."""
    if nonlinearity == "tanh":
        return tanh_grad_from_output(h, out=out)
    return np.greater(h, 0.0, out=out, casting="unsafe")


def project_rows(rows: NDArray, weight_ih: NDArray, bias: NDArray | None, out: NDArray) -> None:
    """(R1) for all steps at once: ``rows (T N, I) W_ih^T + b`` into ``out (T N, H)``, one GEMM. A bias is one
    more row of W_ih^T against a column of ones, ``[X 1] [W_ih^T; b]``, so the GEMM adds it instead of a
    second pass over ``out`` (and with one input feature the GEMM's inner size is 2, which OpenBLAS runs well,
    where 1 is slow)."""
    weight_ih_t = weight_ih.T
    if bias is not None:
        rows = np.concatenate([rows, np.ones((len(rows), 1), dtype=rows.dtype)], axis=1)
        weight_ih_t = np.concatenate([weight_ih_t, bias[None, :]], axis=0)
    matmul(rows, weight_ih_t, out=out)


def rnn_forward(weights: dict[str, NDArray], x: NDArray, states: tuple[NDArray], inactive: NDArray | None = None,
                *, nonlinearity: str = "tanh") -> tuple[NDArray, tuple[NDArray], RNNCache]:
    r"""Run one RNN layer, one direction, over a whole sequence.

    ``weights``: ``weight_ih (H, I)``, ``weight_hh (H, H)``, optionally ``bias_ih, bias_hh (H,)``; ``x (T, N, I)``;
    ``states = (h0 (N, H),)``; ``inactive (T, N)`` True at padded steps, or None.
    Returns ``out (T, N, H)``, ``(h_n,)`` and the cache for :func:`rnn_backward`. Without padding ``out`` is
    the cache's ``h[1:]`` itself, made read-only (a caller that wrote to it would change the gradients).
    Where :func:`compiled_loops` gives a compiled forward loop, (R2) and (R3) of every step run in that one call.
    """
    T, N, I = x.shape
    H = weights["weight_hh"].shape[1]
    h = np.empty((T + 1, N, H), dtype=x.dtype)
    h[0] = states[0]
    # (R1) Z^x = X W_ih^T + b for all steps before the loop, one GEMM straight into h[1:], where (R2) adds
    # the recurrent term step by step and (R3) activates it in place
    project_rows(x.reshape(T * N, I), weights["weight_ih"], combined_bias(weights), out=h[1:].reshape(T * N, H))
    weight_hh_t = np.ascontiguousarray(weights["weight_hh"].T)  # a contiguous copy: 1.1-2x faster GEMMs than the view
    compiled, _ = compiled_loops()
    if compiled is not None:                                # (R2), (R3) for every step in one compiled call
        compiled(h, weight_hh_t, padding_mask(inactive), nonlinearity == "relu")
        return _results(x, h, inactive)
    recurrent = np.empty((N, H), dtype=x.dtype)
    for t in range(T):
        z = h[t + 1]
        np.matmul(h[t], weight_hh_t, out=recurrent)          # (R2) z = Z^x_t + W_hh h_{t-1}, as h_{t-1} W_hh^T
        z += recurrent
        _activate(z, nonlinearity)                          # (R3) h = phi(z)
        frozen = inactive_at(inactive, t)
        if frozen is not None:                              # padded step: the state is kept
            np.copyto(z, h[t], where=frozen[:, None])
    return _results(x, h, inactive)


def _results(x: NDArray, h: NDArray, inactive: NDArray | None) -> tuple[NDArray, tuple[NDArray], RNNCache]:
    """What :func:`rnn_forward` returns, from its filled states: ``out``, ``(h_n,)`` and the cache."""
    if inactive is not None:
        out = h[1:].copy()                                  # the stack writes zeros at the padded steps
    else:
        out = h[1:]
        out.flags.writeable = False
    return out, (h[-1].copy(),), RNNCache(x, h, inactive)


def rnn_backward(weights: dict[str, NDArray], cache: RNNCache, dout: NDArray, dstates: tuple[NDArray], *,
                 nonlinearity: str = "tanh") -> tuple[NDArray, tuple[NDArray], dict[str, NDArray]]:
    r"""Backpropagation through time for one RNN layer, one direction; the cache is only read.

    Returns ``dx (T, N, I)``, ``(dh0,)`` and the gradients of ``weights`` in PyTorch's layout. Each step
    writes its :math:`\delta z_t` into the rows of a buffer that holds a chunk of steps (about 512 rows);
    when a chunk is complete, (R5) and (R6) take it in whole-chunk GEMMs. Where :func:`compiled_loops` gives a
    compiled backward loop, the same steps and chunks run in that one call instead
    (:func:`_backward_in_one_call`).
    """
    x, h, inactive = cache
    T, N, I = x.shape
    weight_ih, weight_hh = weights["weight_ih"], weights["weight_hh"]
    H = weight_hh.shape[1]
    _, compiled = compiled_loops()
    if compiled is not None:
        return _backward_in_one_call(compiled, weights, cache, dout, dstates, nonlinearity)
    chunk = chunk_steps(N, T)
    rows = np.empty((chunk * N, H), dtype=x.dtype)            # dL/dz of a chunk's steps, one row a sequence
    grads = {"weight_ih": np.zeros_like(weight_ih), "weight_hh": np.zeros_like(weight_hh)}
    bias = np.zeros(H, dtype=x.dtype) if "bias_ih" in weights else None
    dx = np.empty_like(x)
    dh = np.empty((N, H), dtype=x.dtype)
    slope = np.empty((N, H), dtype=x.dtype)
    dh_recurrent = np.array(dstates[0], dtype=x.dtype, order="C")  # W_hh^T dz_{t+1}; starts as dL/dh_T
    for t in range(T - 1, -1, -1):
        start = t - t % chunk
        d = rows[(t - start) * N:(t - start + 1) * N]
        # (R4) dh_t = dL/dout_t + W_hh^T dz_{t+1};  dz_t = dh_t phi'(z_t)
        np.add(dout[t], dh_recurrent, out=dh)
        np.multiply(dh, _slope_from_output(h[t + 1], nonlinearity, out=slope), out=d)
        frozen = inactive_at(inactive, t)
        if frozen is not None:                                # padded step: h passes through unchanged
            d[frozen] = 0.0
        # (R2) z = Z^x + W_hh h_{t-1}  =>  dL/dh_{t-1} gets W_hh^T dz_t, as dz_t W_hh (used by R4 at t-1)
        np.matmul(d, weight_hh, out=dh_recurrent)
        if frozen is not None:
            dh_recurrent[frozen] = dh[frozen]
        if t == start:
            stop = min(start + chunk, T)
            m = (stop - start) * N
            chunk_dz = rows[:m]                               # row (j, n): dz of step start + j, sequence n
            # (R5) dW_ih += sum_t dz_t x_t^T,  dW_hh += sum_t dz_t h_{t-1}^T,  db += sum_t dz_t
            grads["weight_ih"] += chunk_dz.T @ x[start:stop].reshape(m, I)
            grads["weight_hh"] += chunk_dz.T @ h[start:stop].reshape(m, H)
            if bias is not None:
                bias += chunk_dz.sum(axis=0)
            # (R6) dx_t = W_ih^T dz_t, as dz_t W_ih
            matmul(chunk_dz, weight_ih, out=dx[start:stop].reshape(m, I))
    if bias is not None:
        grads["bias_ih"] = grads["bias_hh"] = bias
    return dx, (dh_recurrent,), grads


def _backward_in_one_call(kernel, weights: dict[str, NDArray], cache: RNNCache, dout: NDArray,
                          dstates: tuple[NDArray], nonlinearity: str) -> tuple[NDArray, tuple[NDArray], dict]:
    """:func:`rnn_backward` in one compiled call (``kernel``, :func:`bptt.layers.kernels.rnn_sequence_kernels`):
    (R4) and the recurrent product of every step, and (R5), (R6) over each chunk of :func:`chunk_steps` steps as
    the NumPy loop takes them. Every buffer is allocated here, as NumPy arrays."""
    x, h, inactive = cache
    T, N, I = x.shape
    H = h.shape[2]
    dtype = x.dtype
    weight_ih, weight_hh = weights["weight_ih"], weights["weight_hh"]
    dh = np.array(dstates[0], dtype=dtype, order="C")       # dL/dh_T, then dL/dh_0
    rows = np.empty((chunk_steps(N, T), N, H), dtype=dtype)  # dL/dz of a chunk's steps
    dx = np.empty((T, N, I), dtype=dtype)
    grads = {"weight_ih": np.zeros((H, I), dtype=dtype), "weight_hh": np.zeros((H, H), dtype=dtype)}
    bias = np.zeros(H if "bias_ih" in weights else 0, dtype=dtype)
    kernel(dout, np.ascontiguousarray(x), h, np.ascontiguousarray(weight_ih), np.ascontiguousarray(weight_hh),
           padding_mask(inactive), nonlinearity == "relu", dtype.type(1), dh, rows, dx, grads["weight_ih"],
           grads["weight_hh"], bias, np.empty((H, I), dtype=dtype), np.empty((H, H), dtype=dtype))
    if "bias_ih" in weights:
        grads["bias_ih"] = grads["bias_hh"] = bias
    return dx, (dh,), grads


RNN_FAMILIES = {name: Family("RNN", 1, ("h",), partial(rnn_forward, nonlinearity=name),
                             partial(rnn_backward, nonlinearity=name)) for name in NONLINEARITIES}


class RNN(RecurrentLayer):
    r"""A multi-layer Elman RNN, :math:`h_t = \phi(W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh})`, with
    PyTorch's semantics and a hand-derived backward pass.

    Parameters as ``torch.nn.RNN``: ``input_size``, ``hidden_size``, ``num_layers``, ``nonlinearity``
    (``"tanh"`` or ``"relu"``), ``bias``, ``batch_first``, ``dropout``, ``bidirectional``; plus ``dtype`` and
    ``rng``. Shapes as :class:`bptt.GRU`; parameters ``weight_ih_l{k} (H, I or D*H)``, ``weight_hh_l{k}
    (H, H)``, ``bias_ih_l{k}, bias_hh_l{k} (H,)``; init :math:`U(-1/\sqrt{H}, 1/\sqrt{H})`. Equations (R1)-(R6)
    are in :mod:`bptt.layers.rnn` and derived in ``docs/rnn.md``.

    ``out`` may be read-only: where the last layer's output needs no reshaping (one direction, no
    ``lengths``, time-major input) it is that layer's cache itself, which the backward pass reads, as PyTorch
    keeps an RNN's output for its backward pass. Copy it to change it.

    Examples
    --------
    >>> rnn = RNN(3, 4, nonlinearity="relu", rng=0)
    >>> out, h_n = rnn(np.zeros((5, 2, 3)))
    >>> out.shape, h_n.shape
    ((5, 2, 4), (1, 2, 4))
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh",
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 *, dtype: object = np.float64, rng: object = None) -> None:
        if not isinstance(nonlinearity, str) or nonlinearity not in NONLINEARITIES:
            raise ValueError(f"RNN: expected nonlinearity 'tanh' or 'relu', got {nonlinearity!r}.")
        self.nonlinearity = nonlinearity
        self.family = RNN_FAMILIES[nonlinearity]
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         dtype=dtype, rng=rng)

    def config(self) -> dict:
        return {**super().config(), "nonlinearity": self.nonlinearity}
