r"""Honest baselines for a character model: the unigram, and an interpolated Kneser-Ney character n-gram.

Both are fitted on the training text only and scored, like the network, in bits per character (BPC) on
held-out text: :math:`\mathrm{BPC} = -\frac{1}{n} \sum_t \log_2 p(c_t \mid c_{<t})`.

- **Unigram**: :math:`p(c) = (\mathrm{count}(c) + 1) / (n + V)` (add-one, so that a character unseen in
  training still has a probability).
- **Kneser-Ney** of order :math:`k` (Chen and Goodman 1998, interpolated, one discount per order): the
  highest order interpolates the discounted count of the context :math:`h` followed by :math:`c` with the
  next lower order,

  .. math::

      p_k(c \mid h) = \frac{\max(N(hc) - D_k, 0)}{N(h\,\cdot)} + \frac{D_k\, T(h\,\cdot)}{N(h\,\cdot)}\,
      p_{k-1}(c \mid h'),

  where :math:`h'` drops the oldest character of :math:`h`, :math:`T(h\,\cdot)` is the number of distinct
  characters seen after :math:`h`, and a context never seen passes straight to :math:`p_{k-1}`. The lower
  orders use the same formula with *continuation* counts (the number of distinct characters seen before
  :math:`hc`) in place of :math:`N`, and the recursion ends in the uniform :math:`1/V`. The discount is
  Ney's estimate :math:`D_k = n_1 / (n_1 + 2 n_2)` from the number of :math:`k`-grams seen once and
  twice. :func:`best_ngram` picks the order by validation BPC, and reports the test BPC of that order.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import numpy as np


def unigram_bpc(train: str, test: str, vocabulary: str) -> float:
    """The add-one unigram's bits per character on ``test``, fitted on ``train``, over ``vocabulary``."""
    counts = Counter(train)
    total = len(train) + len(vocabulary)
    return -sum(math.log2((counts[c] + 1) / total) for c in test) / len(test)


@dataclass
class _Order:
    """The counts of one order k: of every k-gram (raw for the highest order, continuation below), and per
    context of k-1 characters their sum and the number of distinct characters that follow."""

    grams: dict[str, int]
    context_total: dict[str, int]
    context_types: dict[str, int]
    discount: float


def _order(grams: Counter) -> _Order:
    total: Counter = Counter()
    types: Counter = Counter()
    for gram, count in grams.items():
        total[gram[:-1]] += count
        types[gram[:-1]] += 1
    n1 = sum(1 for count in grams.values() if count == 1)
    n2 = sum(1 for count in grams.values() if count == 2)
    discount = n1 / (n1 + 2 * n2) if n1 + n2 else 0.5
    return _Order(dict(grams), dict(total), dict(types), discount)


class KneserNey:
    """Interpolated Kneser-Ney character models of every order from 1 to ``max_order``, fitted on ``text``
    over ``vocabulary`` (every character that can occur).

    The models share their lower orders: in a model of order :math:`n`, orders below :math:`n` use
    continuation counts, which do not depend on :math:`n`, and order :math:`n` its raw counts. So one pass
    over a text scores every order at once (:meth:`bpc`)."""

    def __init__(self, text: str, vocabulary: str, max_order: int) -> None:
        if max_order < 1:
            raise ValueError(f"KneserNey: expected max_order >= 1, got {max_order}.")
        self.max_order, self.vocabulary_size = max_order, len(vocabulary)
        raw = [Counter(text[i:i + k] for i in range(len(text) - k + 1)) for k in range(1, max_order + 1)]
        self.raw = [_order(counts) for counts in raw]                               # self.raw[k - 1]: order k
        # the continuation count of a k-gram: the distinct (k+1)-grams it ends, one each
        self.continuation = [_order(Counter(gram[1:] for gram in raw[k])) for k in range(1, max_order)]

    @staticmethod
    def _interpolate(counts: _Order, context: str, char: str, lower: float) -> float:
        total = counts.context_total.get(context, 0)
        if not total:
            return lower
        seen = counts.grams.get(context + char, 0)
        return (max(seen - counts.discount, 0.0) + counts.discount * counts.context_types[context] * lower) / total

    def probabilities(self, history: str, char: str) -> list[float]:
        r""":math:`p_n(c \mid h)` for every order :math:`n = 1..` ``max_order``, from the last ``n - 1``
        characters of ``history`` (a shorter history caps the context)."""
        lower, result = 1.0 / self.vocabulary_size, []
        for k in range(1, self.max_order + 1):
            context = history[len(history) - (k - 1):] if 1 < k <= len(history) + 1 else ""
            result.append(self._interpolate(self.raw[k - 1], context, char, lower))
            if k < self.max_order:
                lower = self._interpolate(self.continuation[k - 1], context, char, lower)
        return result

    def bpc(self, text: str, start: int = 0) -> list[float]:
        """Bits per character on ``text[start:]`` of the model of each order (index ``n - 1``), each character
        predicted from the ones before it in ``text``: the first ``start`` characters serve as context only."""
        bits = np.zeros(self.max_order)
        for t in range(start, len(text)):
            bits -= np.log2(self.probabilities(text[max(0, t - self.max_order + 1):t], text[t]))
        return [float(b) for b in bits / (len(text) - start)]


def best_ngram(train: str, validation: str, test: str, vocabulary: str,
               max_order: int = 12) -> tuple[int, float, dict[int, float]]:
    """Fit :class:`KneserNey` of orders 1 to ``max_order`` on ``train``; return the order with the lowest
    validation BPC, its test BPC, and the validation BPC of every order. Test BPC is taken on ``test[1:]``,
    each character predicted from all of ``test`` before it: the characters a model reading ``test`` as one
    stream predicts."""
    model = KneserNey(train, vocabulary, max_order)
    scores = dict(enumerate(model.bpc(validation), start=1))
    best = min(scores, key=scores.get)
    return best, model.bpc(test, start=1)[best - 1], scores
