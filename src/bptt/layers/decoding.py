r"""Decoding a :class:`bptt.layers.seq2seq.Seq2Seq`: greedy, and beam search with length normalisation.

Without a target the decoder reads its own last output token: step :math:`t` feeds :math:`\hat y_{t-1}`
(``<s>`` first) and o_{t-1} as in training, and the output stops at ``</s>`` or after ``max_length`` tokens.

*Greedy* takes the most likely token at every step. *Beam search* keeps the ``beam`` most likely prefixes:
at each step every live prefix is extended by every token, and the ``beam`` extensions of highest total
log-probability :math:`\sum_t \log p(\hat y_t \mid \hat y_{<t}, x)` go on; a prefix that emits ``</s>`` is
finished. Summed log-probabilities favour short outputs, so finished outputs are ranked by their mean
log-probability per token (``</s>`` counted): :math:`\frac{1}{|\hat y|} \sum_t \log p(\hat y_t \mid \cdot)`
(Wu et al. 2016 use a softer power of the length; the mean is its exponent 1). The search stops when ``beam``
outputs have finished or ``max_length`` steps have run; prefixes still live then are ranked beside the finished
ones. With ``beam = 1`` it is greedy decoding, token for token. Dropout is never applied.

Each output comes with its attention weights, ``(len(output), source_length)``: row :math:`t` is
:math:`\alpha` of the step that emitted token :math:`t` (the ``</s>`` step's row included when it was emitted).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray


class Decoded(NamedTuple):
    """One source's output: its ``tokens`` (without ``<s>`` and ``</s>``), the ``attention`` weights of every
    emitted token (``</s>``'s row included when it was emitted), and the mean log-probability per token."""

    tokens: list[int]
    attention: NDArray
    score: float


def _log_softmax(logits: NDArray) -> NDArray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def greedy(model, source: NDArray, lengths: NDArray, bos: int, eos: int, max_length: int) -> list[Decoded]:
    """Greedy decoding of every source column of ``source (S, N)`` at once (checked arguments)."""
    enc, mask, states = model.encode(source, lengths)
    keys = model.attention.keys(enc)
    N = source.shape[1]
    previous = np.full(N, bos)
    o = np.zeros((N, model.hidden_size), dtype=model.dtype)
    tokens, weights, log_probabilities = [], [], []
    done = np.zeros(N, dtype=bool)
    for _ in range(max_length):
        states, o, step = model.decode_step(previous, o, states, enc, keys, mask)
        logp = _log_softmax(o @ model.target_vocab_projection.params["weight"].T)       # (N, V)
        previous = logp.argmax(axis=1)
        tokens.append(previous)
        weights.append(step.alpha.T)
        log_probabilities.append(logp[np.arange(N), previous])
        done |= previous == eos
        if done.all():
            break
    tokens, weights, log_probabilities = np.array(tokens), np.array(weights), np.array(log_probabilities)
    return [_cut(tokens[:, n], weights[:, n, :lengths[n]], log_probabilities[:, n], eos) for n in range(N)]


def _cut(tokens: NDArray, weights: NDArray, log_probabilities: NDArray, eos: int) -> Decoded:
    """One greedy output, cut after its first ``</s>``."""
    ends = np.flatnonzero(tokens == eos)
    count = int(ends[0]) + 1 if len(ends) else len(tokens)
    output = [int(t) for t in tokens[:count] if t != eos]
    return Decoded(output, weights[:count], float(np.mean(log_probabilities[:count])))


class _Hypothesis(NamedTuple):
    """A prefix: its tokens (``</s>`` last once finished), its attention rows and its total log-probability."""

    tokens: list[int]
    rows: list[NDArray]
    total: float


def beam_search(model, source: NDArray, lengths: NDArray, bos: int, eos: int, max_length: int,
                beam: int) -> list[Decoded]:
    """Beam search for every source column of ``source (S, N)``, one at a time (checked arguments)."""
    return [_beam_one(model, source[:lengths[n], n:n + 1], lengths[n:n + 1], bos, eos, max_length, beam)
            for n in range(source.shape[1])]


def _beam_one(model, source: NDArray, lengths: NDArray, bos: int, eos: int, max_length: int, beam: int) -> Decoded:
    """Beam search for one source ``(S, 1)``; the live prefixes are the rows of one batch."""
    enc, mask, states = model.encode(source, lengths)
    keys = model.attention.keys(enc)
    live, finished = [_Hypothesis([], [], 0.0)], []
    o = np.zeros((1, model.hidden_size), dtype=model.dtype)
    for _ in range(max_length):
        rows = len(live)
        previous = np.array([h.tokens[-1] if h.tokens else bos for h in live])
        states, o, step = model.decode_step(previous, o, states, np.repeat(enc, rows, axis=1),
                                            np.repeat(keys, rows, axis=1), np.repeat(mask, rows, axis=1))
        logp = _log_softmax(o @ model.target_vocab_projection.params["weight"].T)       # (rows, V)
        totals = np.array([h.total for h in live])[:, None] + logp
        extended, parents = [], []
        for index in np.argsort(-totals.ravel(), kind="stable"):     # best first; ties to the lower index
            row, token = divmod(int(index), logp.shape[1])
            hypothesis = _Hypothesis(live[row].tokens + [token], live[row].rows + [step.alpha[:, row]],
                                     float(totals[row, token]))
            if token == eos:
                finished.append(hypothesis)
            else:
                extended.append(hypothesis)
                parents.append(row)
            if len(extended) == beam:
                break
        if len(finished) >= beam:
            break
        live = extended
        states, o = tuple(s[parents] for s in states), o[parents]
    candidates = finished if len(finished) >= beam else finished + live
    best = max(candidates, key=lambda h: h.total / len(h.tokens))
    return Decoded([t for t in best.tokens if t != eos], np.array(best.rows), best.total / len(best.tokens))
