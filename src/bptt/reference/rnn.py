r"""The textbook plain (Elman) RNN: one time step forward and back, and the loops over a sequence.

PyTorch's RNN, one layer, one direction, row-major (a batch of N rows), with :math:`\phi = \tanh` or ReLU.
Step :math:`t = 1..T` (``docs/rnn.md`` derives every line under the same tag):

.. math::

    \text{(R1)}\quad & x_t W_{ih}^\top + b_{ih} && \text{input projection, } (N, H) \\
    \text{(R2)}\quad & z_t = x_t W_{ih}^\top + b_{ih} + h_{t-1} W_{hh}^\top + b_{hh} \\
    \text{(R3)}\quad & h_t = \phi(z_t)

Backward, :math:`\delta` the total derivative of the loss :math:`L`:

.. math::

    \text{(R4)}\quad & \delta h_t = \partial L/\partial \mathrm{out}_t + \delta z_{t+1} W_{hh},\;\;
        \delta z_t = \delta h_t \odot \phi'(z_t) \\
    \text{(R5)}\quad & \delta W_{ih} = \textstyle\sum_t \delta z_t^\top x_t,\; \delta W_{hh} = \sum_t \delta z_t^\top
        h_{t-1},\; \delta b_{ih} = \delta b_{hh} = \sum_t \mathbf 1^\top \delta z_t \\
    \text{(R6)}\quad & \delta x_t = \delta z_t W_{ih}

:math:`\phi'` comes from the output: :math:`1 - h^2` for tanh, :math:`[h > 0]` for ReLU (0 at the kink, as
PyTorch).

Shapes: T steps, N batch, I input, H hidden. ``x (T, N, I)``, ``h (N, H)``, ``out (T, N, H)``;
``weight_ih (H, I)``, ``weight_hh (H, H)``, optionally ``bias_ih, bias_hh (H,)``.

Examples
--------
>>> rng = np.random.default_rng(0)
>>> T, N, I, H = 5, 2, 3, 4
>>> params = {"weight_ih": rng.normal(size=(H, I)), "weight_hh": rng.normal(size=(H, H))}
>>> out, h_n, cache = rnn_forward(params, rng.normal(size=(T, N, I)), np.zeros((N, H)), nonlinearity="relu")
>>> out.shape, h_n.shape, bool(np.all(out >= 0)), cache.nonlinearity
((5, 2, 4), (2, 4), True, 'relu')
>>> dx, dh0, grads = rnn_backward(params, cache, rng.normal(size=out.shape), 0 * h_n)
>>> dx.shape, dh0.shape, sorted(grads)
((5, 2, 3), (2, 4), ['weight_hh', 'weight_ih'])
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray


class RNNCache(NamedTuple):
    """What the forward pass keeps for the backward pass: its input, its outputs and its nonlinearity."""

    x: NDArray          # (T, N, I)    the input
    h: NDArray          # (T+1, N, H)  h[0] = h0, h[t] = phi(z_t), the hidden state after step t
    nonlinearity: str   # "tanh" or "relu"


def rnn_step_forward(params: dict[str, NDArray], x_t: NDArray, h_prev: NDArray,
                     nonlinearity: str = "tanh") -> NDArray:
    """One step: ``x_t (N, I)``, ``h_prev (N, H)`` to ``h (N, H)``."""
    z = (x_t @ params["weight_ih"].T + params.get("bias_ih", 0)         # (R1) input projection
         + h_prev @ params["weight_hh"].T + params.get("bias_hh", 0))   # (R2) z, (N, H)
    return np.tanh(z) if nonlinearity == "tanh" else np.maximum(z, 0)  # (R3) h = phi(z)


def rnn_step_backward(params: dict[str, NDArray], dh: NDArray, x_t: NDArray, h_prev: NDArray, h: NDArray,
                      nonlinearity: str = "tanh") -> tuple[NDArray, NDArray, dict[str, NDArray]]:
    """Back through one step: the total ``dh (N, H)`` at its output ``h``, and its inputs, to ``dx_t``,
    ``dh_prev`` and the step's share of every parameter gradient. Writes into none of its arguments."""
    # (R4) dz = dh * phi'(z), phi' from the output h
    dz = dh * (1 - h**2) if nonlinearity == "tanh" else dh * (h > 0)  # tanh' = 1 - h^2, relu' = [h > 0]
    # (R2) z = x_t W_ih^T + b_ih + h_prev W_hh^T + b_hh
    dh_prev = dz @ params["weight_hh"]                                  # dz/dh_prev = W_hh
    # (R5) this step's terms of dW_ih = sum_t dz_t^T x_t, dW_hh = sum_t dz_t^T h_{t-1}, db = sum_t 1^T dz_t
    grads = {"weight_ih": dz.T @ x_t, "weight_hh": dz.T @ h_prev}      # dz/dW_ih = x_t, dz/dW_hh = h_prev
    if "bias_ih" in params:
        grads["bias_ih"] = grads["bias_hh"] = dz.sum(axis=0)            # dz/db = 1
    # (R6) dx_t = dz_t W_ih
    return dz @ params["weight_ih"], dh_prev, grads                     # dz/dx_t = W_ih


def rnn_forward(params: dict[str, NDArray], x: NDArray, h0: NDArray,
                nonlinearity: str = "tanh") -> tuple[NDArray, NDArray, RNNCache]:
    """Run :func:`rnn_step_forward` over ``x (T, N, I)`` from ``h0 (N, H)``; returns ``out (T, N, H)``,
    ``h_n`` and the cache for :func:`rnn_backward`, in the dtype of ``x``. ``nonlinearity``: "tanh" or "relu"."""
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"rnn_forward: nonlinearity must be 'tanh' or 'relu'. Got {nonlinearity!r} instead.")
    T = len(x)
    h = np.empty((T + 1, *h0.shape), dtype=x.dtype)
    h[0] = h0
    for t in range(T):
        h[t + 1] = rnn_step_forward(params, x[t], h[t], nonlinearity)
    return h[1:].copy(), h[T].copy(), RNNCache(x, h, nonlinearity)


def rnn_backward(params: dict[str, NDArray], cache: RNNCache, dout: NDArray,
                 dh_n: NDArray) -> tuple[NDArray, NDArray, dict[str, NDArray]]:
    """Backpropagation through time: ``dout (T, N, H)`` and ``dh_n (N, H)`` at the final state to
    ``dx (T, N, I)``, ``dh0`` and ``grads``, with the keys of ``params``. The cache is only read."""
    x, h, nonlinearity = cache
    dx = np.empty_like(x)
    grads = {name: np.zeros_like(value) for name, value in params.items()}
    dh_next = dh_n                               # dL/dh_T: what reaches the final state
    for t in reversed(range(len(x))):
        # (R4) dh_t = dL/dout_t + dz_{t+1} W_hh, the latter carried back from step t+1 as dh_next
        dh = dout[t] + dh_next
        dx[t], dh_next, step = rnn_step_backward(params, dh, x[t], h[t], h[t + 1], nonlinearity)
        for name, grad in step.items():
            grads[name] += grad                  # (R5) the sums over steps
    return dx, dh_next, grads
