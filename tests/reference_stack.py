"""A whole recurrent layer (layers, directions, lengths) computed from ``bptt.reference`` alone: the oracle that
holds the fast path equal without torch.

Every sequence is run on its own, cut to its length, which is what a packed sequence means: no padding ever
enters a computation, so this oracle shares no masking code with the fast path. The reverse direction reads
the cut sequence backwards; layer k > 0 reads ``[forward, reverse]`` of layer k-1; in the backward pass the
two directions' input gradients add up and every sequence's parameter gradients add into one sum.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from bptt.reference import gru_backward, gru_forward, lstm_backward, lstm_forward, rnn_backward, rnn_forward


class StackResult(NamedTuple):
    out: np.ndarray                   # (T, N, D*S), zeros at padded steps
    finals: list[np.ndarray]          # h_n (and c_n) as (L*D, N, *)
    dx: np.ndarray                    # (T, N, I), zeros at padded steps
    dinitials: list[np.ndarray]       # dh0 (and dc0) as (L*D, N, *)
    grads: dict[str, np.ndarray]      # keyed by the layer's parameter names


def _single_layer(layer):
    """The reference's forward and backward for ``layer``'s family, taking and returning states as lists."""
    name = layer.family.name
    if name == "LSTM":
        def forward(params, x, states):
            out, (h_n, c_n), cache = lstm_forward(params, x, *states)
            return out, [h_n, c_n], cache

        def backward(params, cache, dout, dstates):
            dx, (dh0, dc0), grads = lstm_backward(params, cache, dout, *dstates)
            return dx, [dh0, dc0], grads
    elif name == "GRU":
        def forward(params, x, states):
            out, h_n, cache = gru_forward(params, x, *states)
            return out, [h_n], cache

        def backward(params, cache, dout, dstates):
            dx, dh0, grads = gru_backward(params, cache, dout, *dstates)
            return dx, [dh0], grads
    else:
        def forward(params, x, states):
            out, h_n, cache = rnn_forward(params, x, *states, nonlinearity=layer.nonlinearity)
            return out, [h_n], cache

        def backward(params, cache, dout, dstates):
            dx, dh0, grads = rnn_backward(params, cache, dout, *dstates)
            return dx, [dh0], grads
    return forward, backward


def reference_stack(layer, x: np.ndarray, initials: list[np.ndarray], lengths: np.ndarray | None,
                    dout: np.ndarray, dfinals: list[np.ndarray]) -> StackResult:
    """Forward and backward of ``layer`` (a bptt LSTM, GRU or RNN without dropout) on time-major ``x (T, N, I)``
    with initial states ``initials`` and upstream gradients ``dout (T, N, D*S)``, ``dfinals``, all as lists of
    ``(L*D, N, *)`` arrays, through the single-layer reference only."""
    forward, backward = _single_layer(layer)
    T, N, _ = x.shape
    D, S, L = layer.num_directions, layer.output_size, layer.num_layers
    lengths = np.full(N, T) if lengths is None else np.asarray(lengths)
    out = np.zeros((T, N, D * S), dtype=x.dtype)
    dx = np.zeros_like(x)
    finals = [np.zeros_like(s) for s in initials]
    dinitials = [np.zeros_like(s) for s in dfinals]
    grads = {name: np.zeros_like(value) for name, value in layer.params.items()}

    def weights(k: int, d: int) -> dict[str, np.ndarray]:
        suffix = f"_l{k}{'_reverse' if d else ''}"
        return {name.removesuffix(suffix): value for name, value in layer.params.items() if name.endswith(suffix)}

    for n in range(N):
        ell = int(lengths[n])
        seq, caches = x[:ell, n:n + 1], {}
        for k in range(L):
            outputs = []
            for d in range(D):
                j = k * D + d
                step_input = seq[::-1] if d else seq
                result, states, caches[j] = forward(weights(k, d), step_input, [s[j, n:n + 1] for s in initials])
                outputs.append(result[::-1] if d else result)
                for final, state in zip(finals, states, strict=True):
                    final[j, n] = state[0]
            seq = np.concatenate(outputs, axis=2)
        out[:ell, n] = seq[:, 0]
        upstream = dout[:ell, n:n + 1]
        for k in range(L - 1, -1, -1):
            dx_sum = 0.0
            for d in range(D):
                j = k * D + d
                dout_d = upstream[:, :, d * S:(d + 1) * S]
                dx_d, dstates, layer_grads = backward(weights(k, d), caches[j], dout_d[::-1] if d else dout_d,
                                                      [s[j, n:n + 1] for s in dfinals])
                dx_sum = dx_sum + (dx_d[::-1] if d else dx_d)
                for target, value in zip(dinitials, dstates, strict=True):
                    target[j, n] = value[0]
                for base, grad in layer_grads.items():
                    grads[f"{base}_l{k}{'_reverse' if d else ''}"] += grad
            upstream = dx_sum
        dx[:ell, n] = upstream[:, 0]
    return StackResult(out, finals, dx, dinitials, grads)
