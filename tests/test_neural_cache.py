"""bptt.train.neural_cache: the cache's probabilities against a loop over the steps, the mixture's limits, and
a text that repeats itself."""

import math

import numpy as np
import pytest

from bptt.layers.models import LanguageModel
from bptt.train.dynamic_eval import dynamic_bits_per_character
from bptt.train.neural_cache import (
    FLATNESS,
    WEIGHTS,
    Cache,
    bits_alone_and_cached,
    cache_bits_per_character,
    cache_probabilities,
    choose_cache,
    stream_states,
)


def test_cache_probabilities_equal_a_loop_over_the_steps():
    """p_cache(c | h_t) = sum over the L steps i before t with y_i = c of softmax_i(theta h_t . h_i); chunks
    smaller than the stream and a cache shorter than it."""
    rng = np.random.default_rng(0)
    states, y = rng.standard_normal((23, 4)), rng.integers(0, 5, 23)
    result, cached = cache_probabilities(states, y, 0.7, size=6, vocab_size=5, chunk=4)
    expected = np.zeros((23, 5))
    for t in range(1, 23):
        keys = np.arange(max(0, t - 6), t)
        weights = np.exp(0.7 * states[keys] @ states[t])
        for i, w in zip(keys, weights / weights.sum(), strict=True):
            expected[t, y[i]] += w
    np.testing.assert_allclose(result, expected, rtol=1e-12, atol=1e-15)
    assert not cached[0] and cached[1:].all()


def _stream(text, vocab):
    ids = np.array([vocab.index(c) for c in text])
    return ids[:-1, None], ids[1:, None]


def test_weight_zero_is_the_model_alone_static_or_dynamic():
    model = LanguageModel(4, 3, 8, rng=1).eval()
    x, y = _stream("abcdabdcabcd" * 6, "abcd")
    states, p = stream_states(model, x, y)
    rows = np.arange(len(y))
    static = -np.mean(np.log2(p[rows, y[:, 0]]))
    assert cache_bits_per_character(model, x, y, Cache(0.5, 0.0)) == pytest.approx(static, rel=1e-12)
    model(x)                                                     # the whole stream in one pass
    np.testing.assert_allclose(states, model.hidden[:, 0], rtol=1e-12, atol=1e-15)
    assert static == pytest.approx(dynamic_bits_per_character(model, x, y, lr=0.0), rel=1e-10)
    dynamic = cache_bits_per_character(model, x, y, Cache(0.5, 0.0), dynamic=True)
    assert dynamic == pytest.approx(dynamic_bits_per_character(model, x, y), rel=1e-10)


def test_the_cache_copies_a_text_that_repeats_itself():
    """States that tell the contexts apart (here one-hot of the last six characters of a random string said
    four times): in every repeat the cache gives the character that followed the same context before."""
    rng = np.random.default_rng(2)
    phrase = rng.integers(0, 8, 60)
    text = np.tile(phrase, 4)
    contexts = [tuple(text[max(0, t - 5):t + 1]) for t in range(len(text) - 1)]
    index = {context: k for k, context in enumerate(dict.fromkeys(contexts))}
    states = np.eye(len(index))[[index[c] for c in contexts]]
    assert len(set(contexts[:60])) == 60                                   # every context of the phrase is new
    p, _ = cache_probabilities(states, text[1:], flatness=20.0, size=200, vocab_size=8)
    repeats = np.arange(65, len(text) - 1)                                 # contexts wholly inside a repeat
    assert p[repeats, text[1:][repeats]].min() > 0.99


def test_choose_cache_takes_the_best_of_its_grid_or_none():
    model = LanguageModel(8, 4, 16, rng=3).eval()
    x, y = _stream("abcdefgh" * 3 + "hgfedcba" * 3, "abcdefgh")
    static = cache_bits_per_character(model, x, y, Cache(1.0, 0.0))
    best, bits = choose_cache(model, x, y)
    assert bits <= static and (best.weight == 0.0 or (best.flatness in FLATNESS and best.weight in WEIGHTS))
    assert bits == pytest.approx(cache_bits_per_character(model, x, y, best), rel=1e-12)
    assert not model.training and math.isfinite(bits)


def test_choose_cache_in_the_dynamic_reading_scores_what_it_chose_there():
    """Every flatness of the grid from one set of dot products gives what one flatness at a time gives, in
    the reading the settings are chosen for."""
    model = LanguageModel(8, 4, 16, rng=3).eval()
    x, y = _stream("abcdefgh" * 4 + "hgfedcba" * 4, "abcdefgh")
    best, bits = choose_cache(model, x, y, dynamic=True)
    assert bits == pytest.approx(cache_bits_per_character(model, x, y, best, dynamic=True), rel=1e-12)
    assert bits != pytest.approx(choose_cache(model, x, y)[1], rel=1e-6)   # not the static reading
    grid = [(cache_bits_per_character(model, x, y, Cache(theta, weight), dynamic=True), theta, weight)
            for theta in FLATNESS for weight in WEIGHTS]
    assert bits == pytest.approx(min(min(grid)[0], dynamic_bits_per_character(model, x, y)), rel=1e-12)


@pytest.mark.parametrize("dynamic", [False, True])
def test_one_reading_gives_the_model_alone_and_with_the_cache(dynamic):
    model = LanguageModel(4, 3, 8, rng=1).eval()
    x, y = _stream("abcdabdcabcd" * 6, "abcd")
    alone, cached = bits_alone_and_cached(model, x, y, Cache(0.5, 0.3), dynamic=dynamic)
    lr = {} if dynamic else {"lr": 0.0}
    assert alone == pytest.approx(dynamic_bits_per_character(model, x, y, **lr), rel=1e-10)
    assert cached == pytest.approx(cache_bits_per_character(model, x, y, Cache(0.5, 0.3), dynamic=dynamic),
                                   rel=1e-12)
    assert cached != pytest.approx(alone, rel=1e-6)


@pytest.mark.parametrize("function", [cache_bits_per_character, bits_alone_and_cached])
def test_a_cache_size_below_one_is_refused(function):
    model = LanguageModel(4, 3, 8, rng=1)
    x, y = _stream("abcdabcd", "abcd")
    with pytest.raises(ValueError, match=f"{function.__name__}: expected size"):
        function(model, x, y, Cache(0.5, 0.2, size=0))
