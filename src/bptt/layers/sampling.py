r"""Sampling from a :class:`bptt.layers.models.LanguageModel`, one token per step through :class:`Stream`.

After a *prime* (tokens read to set the state), each step turns the last token into logits :math:`z`,
draws the next token from

.. math:: p_i = \frac{\exp(z_i / \tau)}{\sum_j \exp(z_j / \tau)},

and feeds it back. The temperature :math:`\tau > 0` sharpens (:math:`\tau < 1`) or flattens
(:math:`\tau > 1`) the model's distribution; :math:`\tau = 0` is its limit, the most likely token every
time (greedy, deterministic). Draws come from the ``numpy.random.Generator`` given, so the same seed gives
the same tokens.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from bptt._validation import check_positive_int, resolve_rng
from bptt.layers.embedding import check_indices
from bptt.layers.stream import Stream


def sample(model, prime: object, length: int, *, temperature: float = 1.0, rng: object = None) -> NDArray:
    """``length`` tokens generated after reading the tokens ``prime`` (1-D, at least one), as a 1-D int array.

    Examples
    --------
    >>> from bptt.layers.models import LanguageModel
    >>> model = LanguageModel(5, 3, 8, rng=0)
    >>> first = sample(model, [1, 2], 6, rng=7)
    >>> first.shape, bool((first == sample(model, [1, 2], 6, rng=7)).all())
    ((6,), True)
    >>> bool((sample(model, [1], 4, temperature=0) == sample(model, [1], 4, temperature=0)).all())
    True
    """
    where = "sample"
    prime = check_indices(where, prime, model.vocab_size, "prime", "vocab_size")
    if prime.ndim != 1 or prime.size == 0:
        raise ValueError(f"{where}: expected prime of shape (T,) with T >= 1, got {prime.shape}.")
    length = check_positive_int(where, "length", length)
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) \
            or not math.isfinite(temperature) or temperature < 0:
        raise ValueError(f"{where}: expected a temperature >= 0 (0: greedy), got {temperature!r}.")
    rng = resolve_rng(where, rng)
    stream = Stream(model.rnn)
    table = model.embedding.params["weight"]
    weight_t = np.ascontiguousarray(model.head.params["weight"].T)
    bias = model.head.params.get("bias")
    generated = np.empty(length, dtype=np.int64)
    for token in prime[:-1]:
        stream.step(table[token])
    token = prime[-1]
    for k in range(length):
        logits = stream.step(table[token]) @ weight_t
        if bias is not None:
            logits += bias
        token = _draw(logits.astype(np.float64), temperature, rng)
        generated[k] = token
    return generated


def _draw(logits: NDArray, temperature: float, rng: np.random.Generator) -> int:
    """One token from ``softmax(logits / temperature)``; the most likely one at temperature 0."""
    if temperature == 0:
        return int(np.argmax(logits))
    scaled = logits / temperature
    probabilities = np.exp(scaled - scaled.max())
    probabilities /= probabilities.sum()
    return int(rng.choice(len(probabilities), p=probabilities))
