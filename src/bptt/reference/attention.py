r"""The textbook attention: one decoder step's look at the encoder outputs, forward and back.

At each step the decoder's state :math:`h` (the query) scores every encoder output :math:`\mathrm{enc}_j`,
the scores become weights by a softmax over the source positions that are not padding, and the context is the
weighted mean of the encoder outputs (``docs/seq2seq.md`` derives every line under the same tag). Two scores:

*general* (Luong, Pham and Manning 2015), one matrix :math:`W_a` (``att_projection.weight``, ``(H, K)``):

.. math::

    \text{(A1)}\quad & k_j = \mathrm{enc}_j W_a^\top && \text{keys, } (N, H) \text{ each} \\
    \text{(A2)}\quad & e_j = k_j \cdot h && \text{scores, one per row}

*additive* (Bahdanau, Cho and Bengio 2015), :math:`W_k` ``(H, K)``, :math:`W_q` ``(H, H)`` and :math:`v`
``(1, H)`` (``attention.key.weight``, ``attention.query.weight``, ``attention.v.weight``):

.. math::

    \text{(A1)}\quad & k_j = \mathrm{enc}_j W_k^\top \\
    \text{(A2)}\quad & u_j = \tanh(k_j + h W_q^\top), \quad e_j = u_j v^\top

and for both, with :math:`M` the source positions of a row that are not padding,

.. math::

    \text{(A3)}\quad & \alpha_j = \frac{[j \in M]\, e^{e_j}}{\sum_{i \in M} e^{e_i}} && \text{masked softmax} \\
    \text{(A4)}\quad & a = \textstyle\sum_j \alpha_j\, \mathrm{enc}_j && \text{context, } (N, K)

Backward, :math:`\delta` the total derivative of the loss, from :math:`\delta a`:

.. math::

    \text{(A4)}\quad & \delta\alpha_j = \delta a \cdot \mathrm{enc}_j, \quad
        \delta \mathrm{enc}_j \mathrel{+}= \alpha_j\, \delta a \\
    \text{(A3)}\quad & \delta e_j = \alpha_j \bigl(\delta\alpha_j - \textstyle\sum_i \alpha_i\, \delta\alpha_i\bigr)
        && \text{zero where } j \notin M \\
    \text{(A2)}\quad & \text{general: } \delta k_j = \delta e_j\, h, \quad
        \delta h = \textstyle\sum_j \delta e_j\, k_j \\
        & \text{additive: } \delta s_j = \delta e_j\, v \odot (1 - u_j^2), \quad
        \delta v = \textstyle\sum_j \delta e_j\, u_j, \quad \delta k_j = \delta s_j, \\
        & \phantom{\text{additive: }} \delta W_q = \bigl(\textstyle\sum_j \delta s_j\bigr)^\top h, \quad
        \delta h = \bigl(\textstyle\sum_j \delta s_j\bigr) W_q \\
    \text{(A1)}\quad & \delta W = \textstyle\sum_j \delta k_j^\top \mathrm{enc}_j, \quad
        \delta \mathrm{enc}_j \mathrel{+}= \delta k_j W

so the loss reaches each encoder output along two paths: through the context it was mixed into (A4) and
through the key it was scored by (A1).

Shapes: S source positions, N batch, K encoder features (2H for a bidirectional encoder), H the decoder's
state. ``enc (S, N, K)``, ``h (N, H)``, ``mask (S, N)`` bool, True where a source position is padding (as
PyTorch's ``key_padding_mask``; every row needs one position that is not); ``alpha (S, N)``, ``a (N, K)``.
The keys are computed at every step here, as a student writes them; the fast path computes them once per
sequence. Nothing is checked: shapes and masks are the caller's (:class:`bptt.Seq2Seq` checks them).

Examples
--------
>>> rng = np.random.default_rng(0)
>>> S, N, K, H = 4, 2, 6, 3
>>> params = {"att_projection.weight": rng.normal(size=(H, K))}
>>> enc, h = rng.normal(size=(S, N, K)), rng.normal(size=(N, H))
>>> mask = np.array([[False, False], [False, False], [False, True], [False, True]])   # lengths 4 and 2
>>> a, alpha, cache = attention_step_forward(params, enc, h, mask)
>>> a.shape, alpha.sum(axis=0).round(12), alpha[2:, 1]
((2, 6), array([1., 1.]), array([0., 0.]))
>>> denc, dh, grads = attention_step_backward(params, cache, rng.normal(size=a.shape))
>>> denc.shape, dh.shape, sorted(grads)
((4, 2, 6), (2, 3), ['att_projection.weight'])
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

GENERAL = ("att_projection.weight",)
"""The parameters of the general score."""

ADDITIVE = ("attention.key.weight", "attention.query.weight", "attention.v.weight")
"""The parameters of the additive score."""


class AttentionCache(NamedTuple):
    """What the forward step keeps for the backward step: its inputs and outputs, never pre-activations."""

    enc: NDArray           # (S, N, K)  the encoder outputs
    h: NDArray             # (N, H)     the query, the decoder's state
    mask: NDArray          # (S, N)     True where the source position is padding
    keys: NDArray          # (S, N, H)  k_j
    u: NDArray | None      # (S, N, H)  tanh(k_j + h W_q^T), additive only
    alpha: NDArray         # (S, N)     the attention weights


def _is_additive(params: dict[str, NDArray]) -> bool:
    """Whether ``params`` hold the additive score's weights (else the general one's)."""
    return "attention.v.weight" in params


def attention_step_forward(params: dict[str, NDArray], enc: NDArray, h: NDArray,
                           mask: NDArray) -> tuple[NDArray, NDArray, AttentionCache]:
    """One decoder step's attention: the context ``a (N, K)``, the weights ``alpha (S, N)`` and the cache for
    :func:`attention_step_backward`. The score is additive when ``params`` hold ``attention.v.weight``, else
    general (``att_projection.weight``)."""
    if _is_additive(params):
        keys = enc @ params["attention.key.weight"].T                          # (A1) k_j = enc_j W_k^T
        u = np.tanh(keys + h @ params["attention.query.weight"].T)            # (A2) u_j = tanh(k_j + h W_q^T)
        scores = (u @ params["attention.v.weight"].T)[..., 0]                  # (A2) e_j = u_j v^T, (S, N)
    else:
        keys, u = enc @ params["att_projection.weight"].T, None                # (A1) k_j = enc_j W_a^T
        scores = np.einsum("snh,nh->sn", keys, h)                              # (A2) e_j = k_j . h
    scores = np.where(mask, -np.inf, scores)                                   # (A3) only positions in M
    weights = np.exp(scores - scores.max(axis=0))
    alpha = weights / weights.sum(axis=0)                                      # (A3) masked softmax over j
    a = np.einsum("sn,snk->nk", alpha, enc)                                    # (A4) a = sum_j alpha_j enc_j
    return a, alpha, AttentionCache(enc, h, mask, keys, u, alpha)


def attention_step_backward(params: dict[str, NDArray], cache: AttentionCache,
                            da: NDArray) -> tuple[NDArray, NDArray, dict[str, NDArray]]:
    """Back through one step's attention: ``da (N, K)`` at the context to ``denc (S, N, K)``, ``dh (N, H)`` and
    the step's gradient of every parameter, with the keys of ``params``. Reads only its cache."""
    enc, h, mask, keys, u, alpha = cache
    # (A4) a = sum_j alpha_j enc_j
    dalpha = np.einsum("nk,snk->sn", da, enc)                                  # da/dalpha_j = enc_j
    denc = alpha[..., None] * da                                               # da/denc_j = alpha_j
    # (A3) alpha = softmax over M: dalpha_j/de_i = alpha_j ([i = j] - alpha_i); alpha_j = 0 outside M
    dscores = alpha * (dalpha - (alpha * dalpha).sum(axis=0))
    grads = {}
    if u is not None:
        # (A2) u_j = tanh(k_j + h W_q^T), e_j = u_j v^T
        v = params["attention.v.weight"]
        grads["attention.v.weight"] = np.einsum("sn,snh->h", dscores, u)[None]   # de_j/dv = u_j
        ds = dscores[..., None] * v[0] * (1 - u**2)                            # de_j/ds_j = v (1 - u_j^2)
        dkeys, ds_sum = ds, ds.sum(axis=0)                                     # ds_j/dk_j = I; h is in every s_j
        grads["attention.query.weight"] = ds_sum.T @ h                         # ds_j/dW_q = h
        dh = ds_sum @ params["attention.query.weight"]                         # ds_j/dh = W_q
        key_weight = "attention.key.weight"
    else:
        # (A2) e_j = k_j . h
        dkeys = dscores[..., None] * h                                         # de_j/dk_j = h
        dh = np.einsum("sn,snh->nh", dscores, keys)                            # de_j/dh = k_j
        key_weight = "att_projection.weight"
    # (A1) k_j = enc_j W^T
    grads[key_weight] = np.einsum("snh,snk->hk", dkeys, enc)                   # dk_j/dW = enc_j
    denc += dkeys @ params[key_weight]                                         # dk_j/denc_j = W: the second path
    return denc, dh, grads
