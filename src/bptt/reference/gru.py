r"""The textbook GRU: one time step forward and back, and the loops over a sequence.

PyTorch's GRU, one layer, one direction, row-major (a batch of N rows), gate order r, z, n. Step
:math:`t = 1..T` (``docs/gru.md`` derives every line under the same tag):

.. math::

    \text{(G1)}\quad & X_t = x_t W_{ih}^\top + b_{ih} && \text{input projection, } (N, 3H) \\
    \text{(G2)}\quad & a_t = h_{t-1} W_{hh}^\top + b_{hh} && \text{recurrent projection, } (N, 3H) \\
    \text{(G3)}\quad & r = \sigma(X_r + a_r),\;\; z = \sigma(X_z + a_z) \\
    \text{(G4)}\quad & n = \tanh(X_n + r \odot a_n) && b_{hn} \text{ stays inside the reset product} \\
    \text{(G5)}\quad & h_t = (1 - z) \odot n + z \odot h_{t-1}

Backward, :math:`\delta` the total derivative of the loss :math:`L`:

.. math::

    \text{(G6)}\quad & \delta h_t = \partial L/\partial \mathrm{out}_t + \delta a_{t+1} W_{hh}
        + z_{t+1} \odot \delta h_{t+1} \\
    \text{(G7)}\quad & \delta W_{ih} = \textstyle\sum_t \delta X_t^\top x_t,\;
        \delta W_{hh} = \sum_t \delta a_t^\top h_{t-1},\;
        \delta b_{ih} = \sum_t \mathbf 1^\top \delta X_t,\; \delta b_{hh} = \sum_t \mathbf 1^\top \delta a_t \\
    \text{(G8)}\quad & \delta x_t = \delta X_t W_{ih}

where :math:`\delta X` and :math:`\delta a` agree on the r and z columns and differ on the n columns:
:math:`\delta X_n = \delta n \odot (1 - n^2)`, :math:`\delta a_n = r \odot \delta X_n`.

Shapes: T steps, N batch, I input, H hidden. ``x (T, N, I)``, ``h (N, H)``, ``out (T, N, H)``;
``weight_ih (3H, I)``, ``weight_hh (3H, H)``, optionally ``bias_ih, bias_hh (3H,)``. Derivatives are taken
from outputs: :math:`\sigma' = s (1 - s)`, :math:`\tanh' = 1 - t^2`.

Examples
--------
>>> rng = np.random.default_rng(0)
>>> T, N, I, H = 5, 2, 3, 4
>>> params = {"weight_ih": rng.normal(size=(3 * H, I)), "weight_hh": rng.normal(size=(3 * H, H)),
...           "bias_ih": rng.normal(size=3 * H), "bias_hh": rng.normal(size=3 * H)}
>>> out, h_n, cache = gru_forward(params, rng.normal(size=(T, N, I)), np.zeros((N, H)))
>>> out.shape, h_n.shape, bool(np.all(out[-1] == h_n))
((5, 2, 4), (2, 4), True)
>>> dx, dh0, grads = gru_backward(params, cache, rng.normal(size=out.shape), 0 * h_n)
>>> dx.shape, dh0.shape, sorted(grads) == sorted(params)
((5, 2, 3), (2, 4), True)
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray


class GRUCache(NamedTuple):
    """What the forward pass keeps for the backward pass: its inputs and outputs, never pre-activations."""

    x: NDArray         # (T, N, I)    the input
    h: NDArray         # (T+1, N, H)  h[0] = h0, h[t] = hidden state after step t
    gates: NDArray     # (T, N, 3H)   activated r, z, n
    hidden_n: NDArray  # (T, N, H)    a_n = h_{t-1} W_hn^T + b_hn, the term the reset gate scales


def sigmoid(z: NDArray) -> NDArray:
    r""":math:`\sigma(z) = 1 / (1 + e^{-z})`, written as :math:`(1 + \tanh(z/2)) / 2`, which never overflows."""
    return 0.5 * (1 + np.tanh(0.5 * z))


def gru_step_forward(params: dict[str, NDArray], x_t: NDArray,
                     h_prev: NDArray) -> tuple[NDArray, NDArray, NDArray]:
    """One step: ``x_t (N, I)``, ``h_prev (N, H)`` to ``h (N, H)``, and what the step backward needs besides
    its inputs: ``gates (N, 3H)`` (activated r, z, n) and ``hidden_n (N, H)``, the a_n of (G4)."""
    X_r, X_z, X_n = np.split(x_t @ params["weight_ih"].T + params.get("bias_ih", 0), 3, axis=1)       # (G1)
    a_r, a_z, a_n = np.split(h_prev @ params["weight_hh"].T + params.get("bias_hh", 0), 3, axis=1)  # (G2)
    r, z = sigmoid(X_r + a_r), sigmoid(X_z + a_z)          # (G3)
    n = np.tanh(X_n + r * a_n)                             # (G4)
    h = (1 - z) * n + z * h_prev                           # (G5)
    return h, np.concatenate([r, z, n], axis=1), a_n


def gru_step_backward(params: dict[str, NDArray], dh: NDArray, x_t: NDArray, h_prev: NDArray, gates: NDArray,
                      hidden_n: NDArray) -> tuple[NDArray, NDArray, dict[str, NDArray]]:
    """Back through one step: the total ``dh (N, H)`` at its output, and its inputs and outputs as
    :func:`gru_step_forward` took and gave them, to ``dx_t``, ``dh_prev`` and the step's share of every
    parameter gradient. Writes into none of its arguments."""
    r, z, n = np.split(gates, 3, axis=1)
    # (G5) h = (1 - z) * n + z * h_prev
    dn, dz = dh * (1 - z), dh * (h_prev - n)                # dh/dn = 1 - z, dh/dz = h_prev - n
    dh_prev = dh * z                                        # dh/dh_prev = z, the direct path
    # (G4) n = tanh(X_n + r * a_n)
    dX_n = dn * (1 - n**2)                                  # tanh' = 1 - n^2
    dr, da_n = dX_n * hidden_n, dX_n * r                    # d(r a_n)/dr = a_n, d(r a_n)/da_n = r
    # (G3) r, z = sigmoid(X_r + a_r), sigmoid(X_z + a_z)
    drz = np.concatenate([dr * r * (1 - r), dz * z * (1 - z)], axis=1)  # sigmoid' = s (1 - s); same for X and a
    dX, da = np.concatenate([drz, dX_n], axis=1), np.concatenate([drz, da_n], axis=1)  # (N, 3H), r, z, n
    # (G2) a = h_prev W_hh^T + b_hh, the recurrent path, joins the direct path of (G5)
    dh_prev = dh_prev + da @ params["weight_hh"]            # da/dh_prev = W_hh
    # (G7) this step's terms of dW_ih = sum_t dX_t^T x_t, dW_hh = sum_t da_t^T h_{t-1}, and the biases
    grads = {"weight_ih": dX.T @ x_t, "weight_hh": da.T @ h_prev}  # dX/dW_ih = x_t, da/dW_hh = h_prev
    if "bias_ih" in params:
        grads["bias_ih"], grads["bias_hh"] = dX.sum(axis=0), da.sum(axis=0)  # dX/db_ih = da/db_hh = 1
    # (G8) dx_t = dX_t W_ih
    return dX @ params["weight_ih"], dh_prev, grads         # dX/dx_t = W_ih


def gru_forward(params: dict[str, NDArray], x: NDArray, h0: NDArray) -> tuple[NDArray, NDArray, GRUCache]:
    """Run :func:`gru_step_forward` over ``x (T, N, I)`` from ``h0 (N, H)``; returns ``out (T, N, H)``,
    ``h_n`` and the cache for :func:`gru_backward`, in the dtype of ``x``."""
    T, N, _ = x.shape
    H = h0.shape[1]
    h = np.empty((T + 1, N, H), dtype=x.dtype)
    gates, hidden_n = np.empty((T, N, 3 * H), dtype=x.dtype), np.empty((T, N, H), dtype=x.dtype)
    h[0] = h0
    for t in range(T):
        h[t + 1], gates[t], hidden_n[t] = gru_step_forward(params, x[t], h[t])
    return h[1:].copy(), h[T].copy(), GRUCache(x, h, gates, hidden_n)


def gru_backward(params: dict[str, NDArray], cache: GRUCache, dout: NDArray,
                 dh_n: NDArray) -> tuple[NDArray, NDArray, dict[str, NDArray]]:
    """Backpropagation through time: ``dout (T, N, H)`` and ``dh_n (N, H)`` at the final state to
    ``dx (T, N, I)``, ``dh0`` and ``grads``, with the keys of ``params``. The cache is only read."""
    x, h, gates, hidden_n = cache
    dx = np.empty_like(x)
    grads = {name: np.zeros_like(value) for name, value in params.items()}
    dh_next = dh_n                               # dL/dh_T: what reaches the final state
    for t in reversed(range(len(x))):
        # (G6) dh_t = dL/dout_t + da_{t+1} W_hh + z_{t+1} dh_{t+1}, the last two carried back as dh_next
        dh = dout[t] + dh_next
        dx[t], dh_next, step = gru_step_backward(params, dh, x[t], h[t], gates[t], hidden_n[t])
        for name, grad in step.items():
            grads[name] += grad                  # (G7) the sums over steps
    return dx, dh_next, grads
