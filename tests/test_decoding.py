"""Decoding a Seq2Seq (bptt.layers.decoding): greedy output is what teacher forcing on that output predicts,
a beam of one is greedy, a beam wide enough to keep every prefix finds the best output of an exhaustive search
(scored by an independent teacher-forced pass), padding changes nothing, and bad arguments are named."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from bptt import Seq2Seq
from bptt.layers.decoding import beam_search, greedy

BOS, EOS = 1, 2


def _model_and_sources(seed: int, vocab: int = 7, cell: str = "lstm", score: str = "general"):
    model = Seq2Seq(8, vocab, 4, 6, cell=cell, attention=score, rng=seed).eval()
    rng = np.random.default_rng(seed)
    lengths = np.array([5, 3, 1])
    source = rng.integers(3, 8, size=(5, 3))
    source[np.arange(5)[:, None] >= lengths[None, :]] = 0
    return model, source, lengths


def _log_probability(model, source, length, output):
    """The mean log-probability per token of ``output`` (``</s>`` included when present), by teacher forcing."""
    target_in = np.array([BOS, *output[:-1]])[:, None]
    logits = model(source[:length, None], [length], target_in)[:, 0]
    shifted = logits - logits.max(axis=1, keepdims=True)
    logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return float(np.mean(logp[np.arange(len(output)), output]))


@pytest.mark.parametrize(("cell", "score"), [("lstm", "general"), ("gru", "additive")])
def test_greedy_output_is_what_teacher_forcing_on_it_predicts(cell, score):
    model, source, lengths = _model_and_sources(1, cell=cell, score=score)
    for n, decoded in enumerate(greedy(model, source, lengths, BOS, EOS, max_length=8)):
        emitted = decoded.tokens + ([EOS] if len(decoded.attention) > len(decoded.tokens) else [])
        target_in = np.array([BOS, *emitted[:-1]])[:, None]
        logits = model(source[:lengths[n], n:n + 1], lengths[n:n + 1], target_in)[:, 0]
        np.testing.assert_array_equal(logits.argmax(axis=1), emitted)
        assert decoded.attention.shape == (len(emitted), lengths[n])
        np.testing.assert_allclose(decoded.attention.sum(axis=1), 1.0, rtol=1e-12)
        assert decoded.score == pytest.approx(_log_probability(model, source[:, n], lengths[n], emitted), rel=1e-10)


@pytest.mark.parametrize("seed", range(4))
def test_a_beam_of_one_is_greedy(seed):
    model, source, lengths = _model_and_sources(seed, cell="gru" if seed % 2 else "lstm")
    for mine, theirs in zip(beam_search(model, source, lengths, BOS, EOS, 9, beam=1),
                            greedy(model, source, lengths, BOS, EOS, 9), strict=True):
        assert mine.tokens == theirs.tokens
        np.testing.assert_allclose(mine.attention, theirs.attention, rtol=1e-12, atol=1e-15)
        assert mine.score == pytest.approx(theirs.score, rel=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_a_beam_that_keeps_every_prefix_finds_the_exhaustive_best(seed):
    """Vocabulary of 4 (padding, <s>, </s>, one word), outputs of at most 3 tokens: 64 prefixes at most."""
    model, source, lengths = _model_and_sources(seed, vocab=4, score="additive")
    outputs = [list(prefix) + [EOS] for k in range(3) for prefix in itertools.product(range(4), repeat=k)
               if EOS not in prefix] + [list(p) for p in itertools.product(range(4), repeat=3) if EOS not in p]
    for n, decoded in enumerate(beam_search(model, source, lengths, BOS, EOS, 3, beam=64)):
        scores = {tuple(o): _log_probability(model, source[:, n], lengths[n], o) for o in outputs}
        best = max(scores, key=scores.get)
        assert decoded.tokens == [t for t in best if t != EOS]
        assert decoded.score == pytest.approx(scores[best], rel=1e-10)


def test_padding_and_batching_change_no_output():
    model, source, lengths = _model_and_sources(2)
    together = model.decode(source, lengths, bos=BOS, eos=EOS, max_length=7)
    for n, decoded in enumerate(together):
        alone = model.decode(source[:lengths[n], n:n + 1], lengths[n:n + 1], bos=BOS, eos=EOS, max_length=7)[0]
        assert alone.tokens == decoded.tokens
        np.testing.assert_allclose(alone.attention, decoded.attention, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize(("options", "error", "message"), [
    ({"bos": 7}, ValueError, r"Seq2Seq.decode: expected bos to be a target id in 0..6, got 7"),
    ({"eos": True}, ValueError, r"expected eos to be a target id in 0..6, got True"),
    ({"beam": 0}, ValueError, r"beam"),
    ({"max_length": 0}, ValueError, r"max_length"),
])
def test_bad_decoding_arguments_are_named(options, error, message):
    model, source, lengths = _model_and_sources(0)
    with pytest.raises(error, match=message):
        model.decode(source, lengths, **{"bos": BOS, "eos": EOS, **options})
