"""bptt.layers.stream.Stream: stepping a layer one time step per call gives the layer's own outputs and states."""

from __future__ import annotations

import numpy as np
import pytest
from errors import rel_err
from hypothesis import given, settings
from hypothesis import strategies as st

from bptt import GRU, LSTM, RNN
from bptt.layers.stream import Stream

LAYERS = {"lstm": LSTM, "gru": GRU, "rnn-tanh": RNN, "rnn-relu": RNN}


def make_layer(kind: str, I: int, H: int, L: int, *, bias: bool = True, proj: int = 0, dtype=np.float64,
               seed: int = 0, **options):
    extra = {"nonlinearity": kind.removeprefix("rnn-")} if kind.startswith("rnn") else {}
    if proj:
        extra["proj_size"] = proj
    return LAYERS[kind](I, H, L, bias=bias, dtype=dtype, rng=seed, **extra, **options)


def as_tuple(state) -> tuple:
    return state if isinstance(state, tuple) else (state,)


@st.composite
def stream_cases(draw):
    kind = draw(st.sampled_from(sorted(LAYERS)))
    H = draw(st.integers(1, 9))
    return {"kind": kind, "T": draw(st.integers(1, 6)), "N": draw(st.integers(1, 4)), "I": draw(st.integers(1, 7)),
            "H": H, "L": draw(st.integers(1, 3)), "bias": draw(st.booleans()),
            "proj": draw(st.integers(0, H - 1)) if kind == "lstm" else 0,
            "initial": draw(st.booleans()), "seed": draw(st.integers(0, 2**16))}


@settings(max_examples=120, deadline=None)
@given(case=stream_cases())
def test_stepping_matches_the_layers_forward_pass_in_float64(case):
    rng = np.random.default_rng(case["seed"])
    layer = make_layer(case["kind"], case["I"], case["H"], case["L"], bias=case["bias"], proj=case["proj"],
                       seed=case["seed"])
    x = rng.standard_normal((case["T"], case["N"], case["I"]))
    hx = None
    if case["initial"]:
        shapes = [(case["L"], case["N"], case["proj"] or case["H"]), (case["L"], case["N"], case["H"])]
        hx = tuple(rng.standard_normal(s) for s in shapes[:len(as_tuple(layer(x)[1]))])
        hx = hx if len(hx) > 1 else hx[0]
    out, final = layer(x, hx)
    stream = Stream(layer, case["N"], hx)
    stepped = np.stack([stream.step(x_t) for x_t in x])
    assert stepped.shape == out.shape
    assert rel_err(stepped, out) <= 1e-12
    for ours, theirs in zip(as_tuple(stream.state), as_tuple(final), strict=True):
        assert ours.shape == theirs.shape
        assert rel_err(ours, theirs) <= 1e-12


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_stepping_matches_the_layer_in_float32(kind):
    layer = make_layer(kind, 4, 6, 2, dtype=np.float32, seed=3)
    x = np.random.default_rng(1).standard_normal((12, 2, 4)).astype(np.float32)
    stream = Stream(layer, 2)
    stepped = np.stack([stream.step(x_t) for x_t in x])
    assert stepped.dtype == np.float32
    assert rel_err(stepped, layer(x)[0]) <= 1e-5


def test_unbatched_steps_take_and_return_vectors():
    layer = make_layer("lstm", 3, 5, 1, seed=1)
    x = np.random.default_rng(0).standard_normal((4, 3))
    stream = Stream(layer)
    stepped = np.stack([stream.step(x_t) for x_t in x])
    assert stepped.shape == (4, 5)
    np.testing.assert_allclose(stepped, layer(x)[0], rtol=0, atol=1e-14)


def test_each_step_returns_a_fresh_array():
    stream = Stream(make_layer("gru", 2, 3, 1))
    first = stream.step(np.ones(2))
    kept = first.copy()
    stream.step(np.ones(2))
    np.testing.assert_array_equal(first, kept)


def test_reset_starts_again_from_zeros_or_from_the_given_state():
    layer = make_layer("lstm", 2, 3, 2, seed=5)
    x = np.random.default_rng(2).standard_normal((5, 1, 2))
    stream = Stream(layer)
    first = np.stack([stream.step(x_t) for x_t in x])
    stream.reset()
    np.testing.assert_array_equal(np.stack([stream.step(x_t) for x_t in x]), first)
    hx = (np.full((2, 1, 3), 0.3), np.full((2, 1, 3), -0.2))
    stream.reset(hx)
    np.testing.assert_allclose(np.stack([stream.step(x_t) for x_t in x]), layer(x, hx)[0], rtol=0, atol=1e-14)


def test_the_weights_are_a_snapshot_taken_when_the_stream_is_made():
    layer = make_layer("rnn-tanh", 2, 3, 1, seed=2)
    x = np.ones((1, 2))
    before = Stream(layer).step(x)
    stream = Stream(layer)
    layer.params["weight_ih_l0"] += 1.0
    np.testing.assert_array_equal(stream.step(x), before)
    assert not np.allclose(Stream(layer).step(x), before)


def test_a_layer_with_dropout_streams_in_evaluation_mode():
    layer = make_layer("gru", 3, 4, 3, seed=4, dropout=0.5)
    x = np.random.default_rng(3).standard_normal((6, 2, 3))
    stream = Stream(layer, 2)
    stepped = np.stack([stream.step(x_t) for x_t in x])
    np.testing.assert_allclose(stepped, layer.eval()(x)[0], rtol=0, atol=1e-14)


def test_a_bidirectional_layer_is_refused():
    with pytest.raises(ValueError, match="expected a unidirectional layer, got bidirectional=True"):
        Stream(LSTM(2, 3, bidirectional=True, rng=0))


def test_something_other_than_a_recurrent_layer_is_refused():
    from bptt import Linear

    with pytest.raises(TypeError, match="expected an LSTM, GRU or RNN layer, got Linear"):
        Stream(Linear(2, 3, rng=0))


@pytest.mark.parametrize("batch_size", [0, -1, 1.5, True])
def test_a_bad_batch_size_is_refused(batch_size):
    with pytest.raises((TypeError, ValueError), match="batch_size"):
        Stream(LSTM(2, 3, rng=0), batch_size)


@pytest.mark.parametrize(("batch_size", "shape", "message"), [
    (1, (2, 2), r"expected x_t of shape \(1, 2\) or \(2,\), got \(2, 2\)"),
    (1, (3,), r"expected x_t of shape \(1, 2\) or \(2,\), got \(3,\)"),
    (2, (2,), r"expected x_t of shape \(2, 2\), got \(2,\)"),
    (2, (1, 2, 2), r"expected x_t of shape \(2, 2\), got \(1, 2, 2\)"),
])
def test_a_step_of_the_wrong_shape_is_refused(batch_size, shape, message):
    with pytest.raises(ValueError, match=message):
        Stream(LSTM(2, 3, rng=0), batch_size).step(np.zeros(shape))


@pytest.mark.parametrize("value", [np.array(["a", "b"]), np.array([1 + 1j, 2]), np.array([None, None])])
def test_a_step_of_the_wrong_dtype_is_refused(value):
    with pytest.raises(TypeError, match="expected x_t to be a real numeric array, got dtype"):
        Stream(GRU(2, 3, rng=0)).step(value)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_a_non_finite_step_is_refused(bad):
    with pytest.raises(ValueError, match="expected finite values in x_t"):
        Stream(RNN(2, 3, rng=0)).step(np.array([0.0, bad]))


def test_a_reset_state_of_the_wrong_shape_is_refused():
    stream = Stream(LSTM(2, 3, num_layers=2, rng=0))
    with pytest.raises(ValueError, match=r"expected h of shape \(2, 1, 3\), got \(1, 1, 3\)"):
        stream.reset((np.zeros((1, 1, 3)), np.zeros((2, 1, 3))))


def test_a_ragged_step_is_refused_with_the_house_message():
    with pytest.raises(ValueError, match="Stream.step: expected x_t"):
        Stream(LSTM(2, 3, rng=0)).step([[0.0, 1.0], [2.0]])


def test_a_float64_step_beyond_the_float32_range_is_refused_as_such():
    stream = Stream(LSTM(2, 3, dtype=np.float32, rng=0))
    with pytest.raises(ValueError, match=r"expected x_t within the float32 range"):
        stream.step(np.array([1e300, 0.0]))


def test_lists_and_integer_steps_are_converted():
    layer = LSTM(2, 3, rng=0)
    np.testing.assert_array_equal(Stream(layer).step([1, 2]), Stream(layer).step(np.array([1.0, 2.0])))
