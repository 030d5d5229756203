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

from functools import partial
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from bptt.activations import tanh_grad_from_output
from bptt.recurrent import (
    ChunkedGradients,
    Family,
    FeatureMajorSteps,
    RecurrentLayer,
    combined_bias,
    freeze_inactive,
    inactive_at,
    project_inputs,
)

NONLINEARITIES = ("tanh", "relu")


class RNNCache(NamedTuple):
    """What one layer's forward pass keeps for its backward pass (feature-major, outputs only)."""

    x: NDArray                # (T, N, I)   layer input
    h: NDArray                # (T+1, H, N) h[0] = h0, h[t] = phi(z_t)
    inactive: NDArray | None  # (T, N)      True at padded steps


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


def rnn_forward(weights: dict[str, NDArray], x: NDArray, states: tuple[NDArray], inactive: NDArray | None = None,
                *, nonlinearity: str = "tanh") -> tuple[NDArray, tuple[NDArray], RNNCache]:
    r"""Run one RNN layer, one direction, over a whole sequence.

    ``weights``: ``weight_ih (H, I)``, ``weight_hh (H, H)``, optionally ``bias_ih, bias_hh (H,)``; ``x (T, N, I)``;
    ``states = (h0 (N, H),)``; ``inactive (T, N)`` True at padded steps, or None.
    Returns ``out (T, N, H)``, ``(h_n,)`` and the cache for :func:`rnn_backward`.
    """
    T, N, _ = x.shape
    H = weights["weight_hh"].shape[1]
    bias = combined_bias(weights)
    # (R1) Z^x = W_ih x_t + b for all steps before the loop, (T, H, N), block t = step t
    projection = project_inputs(weights["weight_ih"], x, bias)
    weight_hh = weights["weight_hh"]
    h = np.empty((T + 1, H, N), dtype=x.dtype)
    h[0] = states[0].T
    for t in range(T):
        z = h[t + 1]
        np.matmul(weight_hh, h[t], out=z)                    # (R2) z = Z^x_t + W_hh h_{t-1}
        z += projection[t]
        _activate(z, nonlinearity)                          # (R3) h = phi(z)
        freeze_inactive(z, h[t], inactive_at(inactive, t))
    out = h[1:].transpose(0, 2, 1).copy()
    return out, (h[T].T.copy(),), RNNCache(x, h, inactive)


def rnn_backward(weights: dict[str, NDArray], cache: RNNCache, dout: NDArray, dstates: tuple[NDArray], *,
                 nonlinearity: str = "tanh") -> tuple[NDArray, tuple[NDArray], dict[str, NDArray]]:
    r"""Backpropagation through time for one RNN layer, one direction; the cache is only read.

    Returns ``dx (T, N, I)``, ``(dh0,)`` and the gradients of ``weights`` in PyTorch's layout.
    """
    x, h, inactive = cache
    T, N, I = x.shape
    H = weights["weight_hh"].shape[1]
    w_hh_t = np.ascontiguousarray(weights["weight_hh"].T)  # a contiguous copy makes the per-step GEMM faster
    d = np.empty((H, N), dtype=x.dtype)                       # dL/dz_t of the current step
    # (R5), (R6) weight and input gradients, GEMMs over chunks of steps as the loop hands them over
    gradients = ChunkedGradients(x, h[:T], weights["weight_ih"], bias="bias_ih" in weights)
    upstream = FeatureMajorSteps(dout, gradients.chunk)    # dout_t as (H, N), a chunk at a time
    dh = np.empty((H, N), dtype=x.dtype)
    dh_recurrent = np.array(dstates[0].T, dtype=x.dtype, order="C")  # W_hh^T dz_{t+1}; starts as dL/dh_T; C order
    for t in range(T - 1, -1, -1):
        # (R4) dh_t = dL/dout_t + W_hh^T dz_{t+1};  dz_t = dh_t phi'(z_t)
        np.add(upstream[t], dh_recurrent, out=dh)
        np.multiply(dh, _slope_from_output(h[t + 1], nonlinearity, out=d), out=d)
        frozen = inactive_at(inactive, t)
        if frozen is not None:                                # padded step: h passes through unchanged
            np.copyto(d, 0.0, where=frozen)
        # (R2) z = Z^x + W_hh h_{t-1}  =>  dL/dh_{t-1} gets W_hh^T dz_t (used by R4 at t-1)
        np.matmul(w_hh_t, d, out=dh_recurrent)
        if frozen is not None:
            np.copyto(dh_recurrent, dh, where=frozen)
        gradients.add(t, d)
    grads = {"weight_ih": gradients.weight_ih_grad, "weight_hh": gradients.weight_hh_grad}
    if "bias_ih" in weights:
        grads["bias_ih"] = grads["bias_hh"] = gradients.bias_ih_grad
    return gradients.dx, (dh_recurrent.T.copy(),), grads


RNN_FAMILIES = {name: Family("RNN", 1, ("h",), partial(rnn_forward, nonlinearity=name),
                             partial(rnn_backward, nonlinearity=name)) for name in NONLINEARITIES}


class RNN(RecurrentLayer):
    r"""A multi-layer Elman RNN, :math:`h_t = \phi(W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh})`, with
    PyTorch's semantics and a hand-derived backward pass.

    Parameters as ``torch.nn.RNN``: ``input_size``, ``hidden_size``, ``num_layers``, ``nonlinearity``
    (``"tanh"`` or ``"relu"``), ``bias``, ``batch_first``, ``dropout``, ``bidirectional``; plus ``dtype`` and
    ``rng``. Shapes as :class:`bptt.GRU`; parameters ``weight_ih_l{k} (H, I or D*H)``, ``weight_hh_l{k}
    (H, H)``, ``bias_ih_l{k}, bias_hh_l{k} (H,)``; init :math:`U(-1/\sqrt{H}, 1/\sqrt{H})`. Equations (R1)-(R6)
    are in :mod:`bptt.rnn` and derived in ``docs/rnn.md``.

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
