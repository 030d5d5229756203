r"""``gradient_flow``: how far back through time a loss's gradient reaches, read from the hand-derived backward
pass, for every step and every layer.

A loss is placed at one step :math:`t^*` of the top layer's output (the last step by default),
:math:`L = \sum_n u_n \cdot h^{(L)}_{t^*, n}` with a fixed random direction :math:`u` of unit norm (the same
for every family on the same seed, so that the flows compare). Two norms come back for every step :math:`t` and
layer :math:`k`, each over the batch:

- ``input_norms[k, t]`` :math:`= \lVert \partial L / \partial x^{(k)}_t \rVert`, the gradient reaching layer
  :math:`k`'s input at step :math:`t` (layer 0's input is the model's sequence): the backward pass of the stack,
  one core call per layer;
- ``state_norms[k, t]`` :math:`= \lVert \partial L / \partial h^{(k)}_t \rVert`, the total gradient of layer
  :math:`k`'s hidden state after step :math:`t`, along every path: up to layer :math:`k + 1` at step :math:`t`
  and on through the recurrence, :math:`\partial L/\partial h_t = \delta_t + (\partial h_{t+1}/\partial h_t)^\top
  \partial L/\partial h_{t+1}`. The recurrent part is the initial-state gradient the core's backward pass
  returns for the steps after :math:`t`, started from the state at :math:`t`.

A bidirectional stack of one layer gives two rows, ``"forward"`` and ``"reverse"`` (``labels``), each direction
with a loss at step :math:`t^*` of its own reading: the reverse direction's over the sequence reversed, so its
steps back count from the other end. Above one layer each direction reads both, and it is refused.

``distance[t]`` :math:`= t^* - t` is how many steps back step :math:`t` lies (negative after :math:`t^*`, where
the gradient is zero). ``decay_per_step[k]`` is the geometric rate the state norm falls by per step back, fitted
as :math:`\exp` of the slope of :math:`\log \lVert \partial L/\partial h_t \rVert` against the distance over the
steps up to :math:`t^*` where it is above :math:`10^{-300}`: below 1 the gradient vanishes, above 1 it explodes.

Examples
--------
>>> import numpy as np
>>> from bptt import RNN
>>> flow = gradient_flow(RNN(1, 16, rng=0), np.zeros((30, 4, 1)), seed=0)
>>> flow.state_norms.shape, int(flow.distance[0]), bool(flow.decay_per_step[0] < 1)
((1, 30), 29, True)
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from bptt._validation import as_float_array, resolve_rng
from bptt.layers.recurrent import RecurrentLayer

TINY = 1e-300
"""Norms at or below this are left out of the fitted decay (an exact zero, or an underflow)."""


class GradientFlow(NamedTuple):
    """What :func:`gradient_flow` measured (module docstring); ``k`` indexes the layers from the input."""

    distance: NDArray          # (T,)   t* - t
    input_norms: NDArray       # (L, T) ||dL/dx_t|| at each layer's input
    state_norms: NDArray       # (L, T) ||dL/dh_t|| of each layer's state, every path
    decay_per_step: NDArray    # (L,)   the fitted geometric rate of state_norms per step back
    loss_step: int             # t*
    direction: NDArray         # (N, S) u, the loss's direction: L = sum_n u_n . h_{t*, n}
    labels: tuple[str, ...]    # what each row is: "layer k", or "forward" and "reverse"


def fitted_decay(norms: NDArray, distance: NDArray) -> float:
    """:math:`\\exp` of the least-squares slope of ``log(norms)`` against ``distance`` over the steps with
    ``distance >= 0`` and a norm above :data:`TINY`; NaN with fewer than two such steps."""
    kept = (distance >= 0) & (norms > TINY)
    if kept.sum() < 2:
        return float("nan")
    slope = np.polyfit(distance[kept], np.log(norms[kept]), 1)[0]
    return float(np.exp(slope))


def _stack(where: str, model: object) -> RecurrentLayer:
    """The recurrent stack of a layer or of a composite model (its ``rnn``), checked."""
    layer = model if isinstance(model, RecurrentLayer) else getattr(model, "rnn", None)
    if not isinstance(layer, RecurrentLayer):
        raise TypeError(f"{where}: expected an LSTM, GRU or RNN, or a model with one as its rnn, got "
                        f"{type(model).__name__}.")
    if layer.bidirectional and layer.num_layers > 1:
        raise ValueError(f"{where}: expected a one-direction stack or a bidirectional one of one layer, got a "
                         f"bidirectional {layer.family.name} of {layer.num_layers} layers: above the first, each "
                         f"direction reads both, so 'steps back from the loss' has no single meaning there.")
    return layer


def _stack_input(model: object, x: object, layer: RecurrentLayer) -> NDArray:
    """The sequence the stack reads, ``(T, N, I)`` time-major in its dtype: a language model's tokens
    embedded, anything else as given."""
    embedding = getattr(model, "embedding", None)
    if embedding is not None and not isinstance(model, RecurrentLayer):
        x = embedding(x)
    seq = as_float_array("gradient_flow", "x", x, layer.dtype)
    if seq.ndim != 3 or seq.shape[2] != layer.input_size or 0 in seq.shape[:2]:
        raise ValueError(f"gradient_flow: expected x of shape (T, N, {layer.input_size}), time-major, T and N >= 1, "
                         f"got {seq.shape}.")
    return np.ascontiguousarray(seq)


def gradient_flow(model: object, x: object, *, loss_step: int = -1, seed: object = 0) -> GradientFlow:
    """The gradient norms of a loss at step ``loss_step`` (default the last) of ``model``'s top layer, at every
    step and layer (module docstring).

    ``model``: an :class:`~bptt.LSTM`, :class:`~bptt.GRU` or :class:`~bptt.RNN` (one direction, or two in one
    layer: module docstring), or a composite
    model of :mod:`bptt.layers.models` (its ``rnn``; a ``LanguageModel``'s tokens are embedded first). ``x``:
    the stack's input ``(T, N, I)``, time-major (a ``LanguageModel``'s: token ids ``(T, N)``). ``seed``: of the
    loss's direction :math:`u`. Zero initial states, no dropout; the model's parameters and gradients are left
    as they were.
    """
    where = "gradient_flow"
    layer = _stack(where, model)
    seq = _stack_input(model, x, layer)
    T, N, _ = seq.shape
    if isinstance(loss_step, bool) or not isinstance(loss_step, (int, np.integer)) or not -T <= loss_step < T:
        raise ValueError(f"{where}: expected loss_step to be a step of the sequence, in {-T}..{T - 1}, got "
                         f"{loss_step!r}.")
    target = int(loss_step) % T
    direction = resolve_rng(where, seed).standard_normal((N, layer.output_size))
    direction /= np.linalg.norm(direction)
    if layer.bidirectional:                            # one layer: each direction a stack of its own
        rows = [_one_stack(layer, [layer._weights(0, d)], seq if d == 0 else seq[::-1].copy(), target, direction)
                for d in range(2)]
        labels = ("forward", "reverse")
    else:
        rows = [_one_stack(layer, [layer._weights(k, 0) for k in range(layer.num_layers)], seq, target, direction)]
        labels = tuple(f"layer {k}" for k in range(layer.num_layers))
    input_norms = np.concatenate([row[0] for row in rows])
    state_norms = np.concatenate([row[1] for row in rows])
    distance = target - np.arange(T)
    decay = np.array([fitted_decay(norms, distance) for norms in state_norms])
    return GradientFlow(distance, input_norms, state_norms, decay, target, direction, labels)


def _one_stack(layer: RecurrentLayer, weights: list[dict[str, NDArray]], seq: NDArray, target: int,
               direction: NDArray) -> tuple[NDArray, NDArray]:
    """``input_norms`` and ``state_norms`` ``(len(weights), T)`` of the one-direction stack of the cores with
    ``weights`` over ``seq``, for the loss ``direction . h_{target}`` of its top layer."""
    family, (T, N, _) = layer.family, seq.shape
    zeros = tuple(np.zeros((N, size), dtype=layer.dtype) for size in layer._state_sizes())
    inputs, caches, states = [seq], [], []
    for k, w in enumerate(weights):                   # the stack forward, keeping every layer's states
        out, _, cache = family.forward(w, inputs[-1], zeros, None)
        caches.append(cache)
        inputs.append(np.ascontiguousarray(out))
        carried, per_step = zeros, []
        for t in range(T):
            _, carried, _ = family.forward(w, inputs[k][t:t + 1], carried, None)
            per_step.append(carried)
        states.append(per_step)
    upstream = np.zeros((T, N, direction.shape[1]), dtype=layer.dtype)
    upstream[target] = direction                                          # L = u . h_{t*}, |u| = 1
    input_norms, state_norms = np.zeros((len(weights), T)), np.zeros((len(weights), T))
    no_final = tuple(np.zeros_like(s) for s in zeros)
    for k in range(len(weights) - 1, -1, -1):
        w = weights[k]
        for t in range(T):                             # dL/dh_t = delta_t + the recurrence's share from t+1 on
            total = upstream[t].copy()
            if t + 1 < T and np.any(upstream[t + 1:]):
                _, _, tail = family.forward(w, inputs[k][t + 1:], states[k][t], None)
                _, dinitial, _ = family.backward(w, tail, np.ascontiguousarray(upstream[t + 1:]), no_final)
                total += dinitial[0]
            state_norms[k, t] = np.linalg.norm(total)
        dx, _, _ = family.backward(w, caches[k], upstream, no_final)     # dL/dx_t of layer k
        input_norms[k] = np.linalg.norm(dx.reshape(T, -1), axis=1)
        upstream = np.ascontiguousarray(dx)
    return input_norms, state_norms

