r"""The textbook LSTM: one time step forward and back, and the loops over a sequence.

PyTorch's LSTM, one layer, one direction, row-major (a batch of N rows), gate order i, f, g, o. Step
:math:`t = 1..T` (``docs/lstm.md`` derives every line under the same tag):

.. math::

    \text{(L1)}\quad & x_t W_{ih}^\top + b_{ih} && \text{input projection, } (N, 4H) \\
    \text{(L2)}\quad & z_t = x_t W_{ih}^\top + b_{ih} + h_{t-1} W_{hh}^\top + b_{hh}
        && \text{pre-activations, } (N, 4H) \\
    \text{(L3)}\quad & i, f, o = \sigma(z^i_t), \sigma(z^f_t), \sigma(z^o_t);\;\; g = \tanh(z^g_t) \\
    \text{(L4)}\quad & c_t = f \odot c_{t-1} + i \odot g \\
    \text{(L5)}\quad & m_t = o \odot \tanh(c_t),\;\; h_t = m_t \\
    \text{(L9)}\quad & h_t = m_t W_{hr}^\top && \text{instead, when } W_{hr}\ (P, H) \text{ is given}

Backward, :math:`\delta` the total derivative of the loss :math:`L`:

.. math::

    \text{(L6)}\quad & \delta h_t = \partial L / \partial \mathrm{out}_t + \delta z_{t+1} W_{hh} \\
    \text{(L7)}\quad & \delta W_{ih} = \textstyle\sum_t \delta z_t^\top x_t,\;
        \delta W_{hh} = \sum_t \delta z_t^\top h_{t-1},\;
        \delta b_{ih} = \delta b_{hh} = \sum_t \mathbf{1}^\top \delta z_t \\
    \text{(L8)}\quad & \delta x_t = \delta z_t W_{ih}

Shapes: T steps, N batch, I input, H hidden, P projection; S = P with a projection, else H. ``x (T, N, I)``,
``h (N, S)``, ``c (N, H)``, ``out (T, N, S)``; ``weight_ih (4H, I)``, ``weight_hh (4H, S)``, optionally
``bias_ih, bias_hh (4H,)`` and ``weight_hr (P, H)``. Derivatives are taken from outputs:
:math:`\sigma' = s (1 - s)`, :math:`\tanh' = 1 - t^2`.

Examples
--------
>>> rng = np.random.default_rng(0)
>>> T, N, I, H = 5, 2, 3, 4
>>> params = {"weight_ih": rng.normal(size=(4 * H, I)), "weight_hh": rng.normal(size=(4 * H, H))}
>>> x, h0, c0 = rng.normal(size=(T, N, I)), np.zeros((N, H)), np.zeros((N, H))
>>> out, (h_n, c_n), cache = lstm_forward(params, x, h0, c0)
>>> out.shape, h_n.shape, bool(np.all(out[-1] == h_n))
((5, 2, 4), (2, 4), True)
>>> dx, (dh0, dc0), grads = lstm_backward(params, cache, rng.normal(size=out.shape), 0 * h_n, 0 * c_n)
>>> dx.shape, sorted(grads)
((5, 2, 3), ['weight_hh', 'weight_ih'])
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray


class LSTMCache(NamedTuple):
    """What the forward pass keeps for the backward pass: its inputs and outputs, never pre-activations."""

    x: NDArray       # (T, N, I)    the input
    h: NDArray       # (T+1, N, S)  h[0] = h0, h[t] = hidden state after step t
    c: NDArray       # (T+1, N, H)  c[0] = c0
    gates: NDArray   # (T, N, 4H)   activated gates i, f, g, o
    tanh_c: NDArray  # (T, N, H)    tanh(c[t+1])


def sigmoid(z: NDArray) -> NDArray:
    r""":math:`\sigma(z) = 1 / (1 + e^{-z})`, written as :math:`(1 + \tanh(z/2)) / 2`, which never overflows."""
    return 0.5 * (1 + np.tanh(0.5 * z))


def lstm_step_forward(params: dict[str, NDArray], x_t: NDArray, h_prev: NDArray,
                      c_prev: NDArray) -> tuple[NDArray, NDArray, NDArray, NDArray]:
    """One step: ``x_t (N, I)``, ``h_prev (N, S)``, ``c_prev (N, H)`` to ``h (N, S)``, ``c (N, H)``, and what
    the step backward needs besides its inputs: ``gates (N, 4H)`` (activated i, f, g, o) and ``tanh_c (N, H)``."""
    z = (x_t @ params["weight_ih"].T + params.get("bias_ih", 0)         # (L1) input projection
         + h_prev @ params["weight_hh"].T + params.get("bias_hh", 0))   # (L2) z, (N, 4H) in order i, f, g, o
    z_i, z_f, z_g, z_o = np.split(z, 4, axis=1)
    i, f, g, o = sigmoid(z_i), sigmoid(z_f), np.tanh(z_g), sigmoid(z_o)  # (L3)
    c = f * c_prev + i * g                                                 # (L4)
    tanh_c = np.tanh(c)
    h = o * tanh_c                                                         # (L5) m = o tanh(c), h = m
    if "weight_hr" in params:
        h = h @ params["weight_hr"].T                                      # (L9) h = m W_hr^T
    return h, c, np.concatenate([i, f, g, o], axis=1), tanh_c


def lstm_step_backward(params: dict[str, NDArray], dh: NDArray, dc: NDArray, x_t: NDArray, h_prev: NDArray,
                       c_prev: NDArray, gates: NDArray,
                       tanh_c: NDArray) -> tuple[NDArray, NDArray, NDArray, dict[str, NDArray]]:
    """Back through one step: the total ``dh (N, S)`` and ``dc (N, H)`` at its outputs, and its inputs and
    outputs as :func:`lstm_step_forward` took and gave them, to ``dx_t``, ``dh_prev``, ``dc_prev`` and the
    step's share of every parameter gradient. Writes into none of its arguments."""
    i, f, g, o = np.split(gates, 4, axis=1)
    grads = {}
    if "weight_hr" in params:
        # (L9) h = m W_hr^T
        grads["weight_hr"] = dh.T @ (o * tanh_c)                          # dh/dW_hr = m
        dh = dh @ params["weight_hr"]                                      # dh/dm = W_hr: dh is now dL/dm
    # (L5) m = o * tanh(c)
    do = dh * tanh_c                                                       # dm/do = tanh c
    dc = dc + dh * o * (1 - tanh_c**2)                                     # dm/dc = o (1 - tanh^2 c); dc carried t+1
    # (L4) c = f * c_prev + i * g
    di, df, dg = dc * g, dc * c_prev, dc * i                               # dc/di = g, dc/df = c_prev, dc/dg = i
    dc_prev = dc * f                                                       # dc/dc_prev = f
    # (L3) i, f, o = sigmoid(z_i, z_f, z_o), g = tanh(z_g); dz (N, 4H) in order i, f, g, o
    dz = np.concatenate([di * i * (1 - i), df * f * (1 - f),              # sigmoid' = s (1 - s)
                         dg * (1 - g**2), do * o * (1 - o)], axis=1)       # tanh' = 1 - g^2
    # (L2) z = x_t W_ih^T + b_ih + h_prev W_hh^T + b_hh
    dh_prev = dz @ params["weight_hh"]                                     # dz/dh_prev = W_hh
    # (L7) this step's terms of dW_ih = sum_t dz_t^T x_t, dW_hh = sum_t dz_t^T h_{t-1}, db = sum_t 1^T dz_t
    grads["weight_ih"], grads["weight_hh"] = dz.T @ x_t, dz.T @ h_prev    # dz/dW_ih = x_t, dz/dW_hh = h_prev
    if "bias_ih" in params:
        grads["bias_ih"] = grads["bias_hh"] = dz.sum(axis=0)               # dz/db = 1
    # (L8) dx_t = dz_t W_ih
    return dz @ params["weight_ih"], dh_prev, dc_prev, grads               # dz/dx_t = W_ih


def lstm_forward(params: dict[str, NDArray], x: NDArray, h0: NDArray,
                 c0: NDArray) -> tuple[NDArray, tuple[NDArray, NDArray], LSTMCache]:
    """Run :func:`lstm_step_forward` over ``x (T, N, I)`` from ``h0 (N, S)``, ``c0 (N, H)``; returns
    ``out (T, N, S)``, ``(h_n, c_n)`` and the cache for :func:`lstm_backward`, in the dtype of ``x``."""
    T, N, _ = x.shape
    H = c0.shape[1]
    h, c = np.empty((T + 1, *h0.shape), dtype=x.dtype), np.empty((T + 1, N, H), dtype=x.dtype)
    gates, tanh_c = np.empty((T, N, 4 * H), dtype=x.dtype), np.empty((T, N, H), dtype=x.dtype)
    h[0], c[0] = h0, c0
    for t in range(T):
        h[t + 1], c[t + 1], gates[t], tanh_c[t] = lstm_step_forward(params, x[t], h[t], c[t])
    return h[1:].copy(), (h[T].copy(), c[T].copy()), LSTMCache(x, h, c, gates, tanh_c)


def lstm_backward(params: dict[str, NDArray], cache: LSTMCache, dout: NDArray, dh_n: NDArray,
                  dc_n: NDArray) -> tuple[NDArray, tuple[NDArray, NDArray], dict[str, NDArray]]:
    """Backpropagation through time: ``dout (T, N, S)`` and ``dh_n (N, S)``, ``dc_n (N, H)`` at the final states
    to ``dx (T, N, I)``, ``(dh0, dc0)`` and ``grads``, with the keys of ``params``. The cache is only read."""
    x, h, c, gates, tanh_c = cache
    dx = np.empty_like(x)
    grads = {name: np.zeros_like(value) for name, value in params.items()}
    dh_next, dc = dh_n, dc_n                     # dL/dh_T, dL/dc_T: what reaches the final states
    for t in reversed(range(len(x))):
        # (L6) dh_t = dL/dout_t + dz_{t+1} W_hh, the latter carried back from step t+1 as dh_next
        dh = dout[t] + dh_next
        dx[t], dh_next, dc, step = lstm_step_backward(params, dh, dc, x[t], h[t], c[t], gates[t], tanh_c[t])
        for name, grad in step.items():
            grads[name] += grad                  # (L7) the sums over steps
    return dx, (dh_next, dc), grads
