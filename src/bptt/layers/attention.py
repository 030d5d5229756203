r"""Attention over encoder outputs, the fast path: keys computed once per sequence, one step at a time after.

The equations are those of :mod:`bptt.reference.attention` under the same tags, (A1)-(A4), for the *general*
score :math:`e_j = k_j \cdot h`, :math:`k_j = \mathrm{enc}_j W_a^\top`, and the *additive* one
:math:`e_j = v \cdot \tanh(k_j + h W_q^\top)`, :math:`k_j = \mathrm{enc}_j W_k^\top`. What differs is the
order of the work: the keys (A1) depend on the encoder alone, so :meth:`Attention.keys` computes them for
every source position once per sequence, and :meth:`Attention.keys_backward` takes their gradient, summed over
all decoder steps, back through (A1) in one product after the decoder's loop; each step does only (A2)-(A4).

Parameters, as PyTorch's ``nn.Linear`` without bias (init :math:`U(-1/\sqrt{\text{in}}, 1/\sqrt{\text{in}})`):
general ``weight (H, K)``; additive ``key.weight (H, K)``, ``query.weight (H, H)``, ``v.weight (1, H)``.
Shapes: S source positions, N batch, K encoder features, H the decoder's state; ``enc (S, N, K)``,
``keys (S, N, H)``, ``mask (S, N)`` True at padding, ``h (N, H)``.

Examples
--------
>>> attention = Attention(6, 3, "additive", rng=0)
>>> enc = np.ones((4, 2, 6))
>>> mask = np.array([[False, False], [False, False], [False, True], [False, True]])
>>> keys = attention.keys(enc)
>>> a, alpha, step = attention.step(keys, enc, mask, np.zeros((2, 3)))
>>> a.shape, alpha[:, 1].round(3)
((2, 6), array([0.5, 0.5, 0. , 0. ]))
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from bptt._validation import check_dtype, resolve_rng
from bptt.layers._blas import matmul
from bptt.layers.linear import Linear
from bptt.layers.module import Module

SCORES = ("general", "additive")


class AttentionStep(NamedTuple):
    """What one step keeps for its backward pass."""

    h: NDArray              # (N, H)     the query
    u: NDArray | None       # (S, N, H)  tanh(k_j + h W_q^T), additive only
    alpha: NDArray          # (S, N)     the weights


class Attention(Module):
    """The score's parameters and its passes: :meth:`keys` once, :meth:`step` at every decoder step, then
    :meth:`step_backward` at every step in reverse and :meth:`keys_backward` once (module docstring)."""

    def __init__(self, key_size: int, query_size: int, score: str = "general", *, dtype: object = np.float64,
                 rng: object = None) -> None:
        if score not in SCORES:
            raise ValueError(f"Attention: expected score to be one of {', '.join(SCORES)}, got {score!r}.")
        self.score = score
        self.dtype = check_dtype("Attention", dtype)
        generator = resolve_rng("Attention", rng)
        if score == "general":
            shapes = {"weight": (key_size, query_size)}
        else:
            shapes = {"key.weight": (key_size, query_size), "query.weight": (query_size, query_size),
                      "v.weight": (query_size, 1)}
        self.params = {name: Linear(fan_in, out, bias=False, dtype=self.dtype, rng=generator).params["weight"]
                       for name, (fan_in, out) in shapes.items()}
        self.grads = {name: np.zeros_like(value) for name, value in self.params.items()}
        self._key_weight = self.params["weight" if score == "general" else "key.weight"]

    def config(self) -> dict:
        key_weight = self._key_weight
        return {"key_size": key_weight.shape[1], "query_size": key_weight.shape[0], "score": self.score,
                "dtype": self.dtype}

    def keys(self, enc: NDArray) -> NDArray:
        """(A1) :math:`k_j = \\mathrm{enc}_j W^\\top` for every position of ``enc (S, N, K)``: ``(S, N, H)``."""
        return matmul(enc, self._key_weight.T)

    def step(self, keys: NDArray, enc: NDArray, mask: NDArray, h: NDArray) -> tuple[NDArray, NDArray, AttentionStep]:
        """(A2)-(A4) for the query ``h (N, H)``: the context ``a (N, K)``, the weights ``alpha (S, N)`` and what
        :meth:`step_backward` needs."""
        if self.score == "additive":
            u = np.tanh(keys + matmul(h, self.params["query.weight"].T))       # (A2) u_j = tanh(k_j + h W_q^T)
            scores = matmul(u, self.params["v.weight"].T)[..., 0]             # (A2) e_j = u_j v^T
        else:
            u = None
            scores = np.einsum("snh,nh->sn", keys, h)                          # (A2) e_j = k_j . h
        scores[mask] = -np.inf                                                 # (A3) only the positions in M
        scores -= scores.max(axis=0)
        alpha = np.exp(scores, out=scores)
        alpha /= alpha.sum(axis=0)                                             # (A3) masked softmax over j
        a = np.einsum("sn,snk->nk", alpha, enc)                                # (A4) a = sum_j alpha_j enc_j
        return a, alpha, AttentionStep(h, u, alpha)

    def step_backward(self, step: AttentionStep, keys: NDArray, enc: NDArray, da: NDArray, dkeys: NDArray,
                      denc: NDArray) -> NDArray:
        """Back through one :meth:`step` from ``da (N, K)``: adds the step's share into ``dkeys (S, N, H)`` and
        ``denc (S, N, K)`` (the path through the context) and into the query's and ``v``'s gradients; returns
        ``dh (N, H)``."""
        h, u, alpha = step
        # (A4) a = sum_j alpha_j enc_j
        dalpha = np.einsum("nk,snk->sn", da, enc)                              # da/dalpha_j = enc_j
        denc += alpha[..., None] * da                                          # da/denc_j = alpha_j
        # (A3) masked softmax: de_j = alpha_j (dalpha_j - sum_i alpha_i dalpha_i), zero outside M
        dscores = alpha * (dalpha - (alpha * dalpha).sum(axis=0))
        if u is None:
            # (A2) e_j = k_j . h
            dkeys += dscores[..., None] * h                                    # de_j/dk_j = h
            return np.einsum("sn,snh->nh", dscores, keys)                      # de_j/dh = k_j
        # (A2) u_j = tanh(k_j + h W_q^T), e_j = u_j v^T
        self.grads["v.weight"] += np.einsum("sn,snh->h", dscores, u)[None]     # de_j/dv = u_j
        ds = dscores[..., None] * self.params["v.weight"][0] * (1 - u * u)     # de_j/ds_j = v (1 - u_j^2)
        dkeys += ds                                                            # ds_j/dk_j = I
        ds_sum = ds.sum(axis=0)                                                # h is in every s_j
        self.grads["query.weight"] += matmul(ds_sum.T, h)                      # ds_j/dW_q = h
        return matmul(ds_sum, self.params["query.weight"])                     # ds_j/dh = W_q

    def keys_backward(self, enc: NDArray, dkeys: NDArray) -> NDArray:
        """(A1) back from ``dkeys (S, N, H)``, summed over the decoder's steps: adds :math:`\\sum_j \\delta k_j^\\top
        \\mathrm{enc}_j` into the key weight's gradient and returns the path into ``enc``, ``(S, N, K)``."""
        name = "weight" if self.score == "general" else "key.weight"
        H, K = self._key_weight.shape
        self.grads[name] += matmul(dkeys.reshape(-1, H).T, enc.reshape(-1, K))  # dk_j/dW = enc_j
        return matmul(dkeys, self._key_weight)                                   # dk_j/denc_j = W
