r"""A neural cache: a language model that can copy what it has just read.

Grave, Joulin and Usunier (2017), *Improving Neural Language Models with a Continuous Cache* (ICLR): keep the
model's last :math:`L` hidden states :math:`h_i` with the character :math:`y_i` that followed each, and
predict the next character partly by looking up the states most like the current one:

.. math::

    p_\mathrm{cache}(c \mid h_t) = \sum_{i = t - L}^{t - 1} [y_i = c]\,
        \frac{\exp(\theta\, h_t^\top h_i)}{\sum_{j = t - L}^{t - 1} \exp(\theta\, h_t^\top h_j)},
    \qquad
    p(c) = (1 - \lambda)\, p_\mathrm{model}(c \mid h_t) + \lambda\, p_\mathrm{cache}(c \mid h_t).

Text that repeats itself (source code, documentation) is where a Kneser-Ney n-gram of high order beats a
small recurrent model: it copies long strings exactly. The cache gives the model the same power over the
text already read, with nothing trained: the flatness :math:`\theta` and the weight :math:`\lambda` are
chosen on the validation text (:func:`choose_cache`), and every character is scored before it enters the
cache, so the figure is an honest bits per character. Like dynamic evaluation it measures a model plus a
rule, and it is reported beside the static figure, never in its place. The first character of a stream has
an empty cache and is scored by the model alone.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from bptt._validation import check_positive_int
from bptt.train.dynamic_eval import dynamic_segments

SIZE = 10_000
"""Hidden states kept, :math:`L` (the characters read last)."""

FLATNESS = (0.1, 0.3, 1.0, 3.0)
r"""The flatness :math:`\theta` values :func:`choose_cache` tries."""

WEIGHTS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6)
r"""The weight :math:`\lambda` values :func:`choose_cache` tries."""

CHUNK = 512
"""Steps scored at a time."""


class Cache(NamedTuple):
    """The cache's settings: ``flatness`` :math:`\\theta`, ``weight`` :math:`\\lambda`, ``size`` :math:`L`."""

    flatness: float
    weight: float
    size: int = SIZE


def stream_states(model, x: NDArray, y: NDArray, *, dynamic: bool = False) -> tuple[NDArray, NDArray]:
    """The top layer's hidden state at every step of one stream ``x (n, 1) -> y (n, 1)`` and the model's
    probabilities of the next character: ``(n, H)`` in the model's dtype (the cache computes in it) and
    ``(n, V)`` float64; read as one stream with the state carried, or with ``dynamic`` under dynamic
    evaluation (:func:`bptt.train.dynamic_eval.dynamic_segments`, its defaults: each segment's states and
    probabilities are those it was scored with). ``model`` is a :class:`bptt.layers.models.LanguageModel` and
    is left unchanged."""
    segments = dynamic_segments(model, x, y) if dynamic else dynamic_segments(model, x, y, segment=CHUNK, lr=0.0)
    states, probabilities = [], []
    for logits, hidden, _ in segments:
        logits = logits[:, 0].astype(np.float64)
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        probabilities.append(p / p.sum(axis=1, keepdims=True))
        states.append(hidden[:, 0])
    return np.concatenate(states), np.concatenate(probabilities)


def cache_probabilities(states: NDArray, y: NDArray, flatness: float, size: int = SIZE,
                        vocab_size: int | None = None, chunk: int = CHUNK) -> tuple[NDArray, NDArray]:
    r""":math:`p_\mathrm{cache}(\cdot \mid h_t)` at every step ``(n, V)``, from the states ``(n, H)`` and the
    characters that followed them ``y (n,)``; and whether step ``t`` had a cache at all ``(n,)`` (false at
    ``t = 0``)."""
    return _cache_probabilities(states, y, (flatness,), size, vocab_size, chunk)[0], np.arange(len(states)) > 0


def _cache_probabilities(states: NDArray, y: NDArray, flatness: tuple[float, ...], size: int,
                         vocab_size: int | None, chunk: int) -> list[NDArray]:
    """:func:`cache_probabilities` for each of the ``flatness`` values, from one set of dot products
    :math:`h_t^\top h_i` (the costly part: the exponentials are cheap beside them)."""
    n = len(states)
    vocab_size = int(y.max()) + 1 if vocab_size is None else vocab_size
    results = [np.zeros((n, vocab_size)) for _ in flatness]
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        first = max(0, start - size)                               # the oldest state any step here may see
        similarity = states[start:stop] @ states[first:stop].T     # (chunk, keys)
        steps, keys = np.arange(start, stop)[:, None], np.arange(first, stop)[None, :]
        unseen = (keys >= steps) | (keys < steps - size)           # only the L states before step t count
        following = np.eye(vocab_size, dtype=similarity.dtype)[y[first:stop]]   # (keys, V), one-hot
        for theta, result in zip(flatness, results, strict=True):
            scores = theta * similarity
            scores[unseen] = -np.inf
            top = scores.max(axis=1, keepdims=True)
            weights = np.exp(scores - np.where(np.isfinite(top), top, 0.0))
            total = weights.sum(axis=1, keepdims=True)
            weights /= np.where(total > 0, total, 1.0)
            result[start:stop] = weights @ following                # sum the weights of each next character
    return results


def cache_bits_per_character(model, x: NDArray, y: NDArray, cache: Cache, *, dynamic: bool = False) -> float:
    """Bits per character of ``model`` with the neural ``cache`` on the stream ``x (n, 1) -> y (n, 1)``, read
    statically or with ``dynamic`` under dynamic evaluation (:func:`stream_states`)."""
    return _figures("cache_bits_per_character", model, x, y, cache, dynamic)[1]


def bits_alone_and_cached(model, x: NDArray, y: NDArray, cache: Cache, *,
                          dynamic: bool = False) -> tuple[float, float]:
    """From one reading of the stream ``x (n, 1) -> y (n, 1)``, statically or with ``dynamic``: the bits per
    character of ``model`` alone and with the neural ``cache`` (:func:`cache_bits_per_character`)."""
    return _figures("bits_alone_and_cached", model, x, y, cache, dynamic)


def _figures(where: str, model, x: NDArray, y: NDArray, cache: Cache, dynamic: bool) -> tuple[float, float]:
    """:func:`bits_alone_and_cached`, its errors naming ``where``."""
    check_positive_int(where, "size", cache.size)
    states, model_p = stream_states(model, x, y, dynamic=dynamic)
    alone = _bits(model_p, model_p, np.zeros(len(y), dtype=bool), y[:, 0], 0.0)
    return alone, _bits(model_p, *cache_probabilities(states, y[:, 0], cache.flatness, cache.size, model_p.shape[1]),
                        y[:, 0], cache.weight)


def _bits(model_p: NDArray, cache_p: NDArray, cached: NDArray, y: NDArray, weight: float) -> float:
    """Mean :math:`-\\log_2` of the mixture's probability of ``y`` (the model alone where nothing is cached)."""
    rows = np.arange(len(y))
    mixed = np.where(cached, (1 - weight) * model_p[rows, y] + weight * cache_p[rows, y], model_p[rows, y])
    return float(-np.mean(np.log(mixed)) / math.log(2))


def choose_cache(model, x: NDArray, y: NDArray, flatness: tuple[float, ...] = FLATNESS,
                 weights: tuple[float, ...] = WEIGHTS, size: int = SIZE, *,
                 dynamic: bool = False) -> tuple[Cache, float]:
    """The settings of lowest bits per character on the stream ``x (n, 1) -> y (n, 1)`` (the validation text),
    read statically or with ``dynamic`` under dynamic evaluation (:func:`stream_states`), and that figure.
    Under dynamic evaluation the model alone already predicts what it has just read better, so the cache
    earns a smaller weight: choose its settings in the reading it will be used with."""
    states, model_p = stream_states(model, x, y, dynamic=dynamic)
    cached = np.arange(len(y)) > 0
    best = (Cache(0.0, 0.0, size), _bits(model_p, model_p, ~cached, y[:, 0], 0.0))
    every_cache_p = _cache_probabilities(states, y[:, 0], flatness, size, model_p.shape[1], CHUNK)
    for theta, cache_p in zip(flatness, every_cache_p, strict=True):
        for weight in weights:
            bits = _bits(model_p, cache_p, cached, y[:, 0], weight)
            if bits < best[1]:
                best = (Cache(theta, weight, size), bits)
    return best
