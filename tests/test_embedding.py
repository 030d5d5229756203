"""``Embedding`` on its own: the gather and the scatter-add against hand-written values and an explicit loop,
central differences, PyTorch's accumulation semantics, float32, the seed, and every bad input.
(Parity with ``torch.nn.Embedding`` is in ``test_embedding_torch.py``.)"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import bptt
from bptt.layers.embedding import Embedding


def loop_backward(V: int, E: int, indices: np.ndarray, dout: np.ndarray, padding_idx: int | None) -> np.ndarray:
    """The scatter-add written the slow way: one position at a time, as the equation reads."""
    dW = np.zeros((V, E))
    for position in np.ndindex(*indices.shape):
        v = int(indices[position])
        if v != padding_idx:
            dW[v] += dout[position]
    return dW


@st.composite
def cases(draw):
    """A random table size, an index array of 0 to 3 dimensions (often with repeats), a padding row or
    None (negative ones included) and a seed."""
    V = draw(st.integers(1, 12))
    E = draw(st.integers(1, 6))
    shape = tuple(draw(st.lists(st.integers(0, 4), max_size=3)))
    padding_idx = draw(st.none() | st.integers(-V, V - 1))
    seed = draw(st.integers(0, 2**32 - 1))
    return V, E, shape, padding_idx, seed


# --- forward and backward against values written out -------------------------------------------------------

W_GOLDEN = np.linspace(-1.0, 1.0, 12).reshape(4, 3)
IDX_GOLDEN = np.array([[1, 3], [1, 0]])
DOUT_GOLDEN = np.arange(1.0, 13.0).reshape(2, 2, 3)        # rows [1 2 3], [4 5 6], [7 8 9], [10 11 12]


def golden_layer(padding_idx: int | None = None) -> Embedding:
    emb = Embedding(4, 3, padding_idx, rng=0)
    emb.load_state_dict({"weight": W_GOLDEN})
    return emb


def test_forward_reads_the_rows_of_the_indices():
    y = golden_layer()(IDX_GOLDEN)
    assert y.shape == (2, 2, 3)
    np.testing.assert_array_equal(y[0, 0], W_GOLDEN[1])
    np.testing.assert_array_equal(y[0, 1], W_GOLDEN[3])
    np.testing.assert_array_equal(y[1, 0], W_GOLDEN[1])
    np.testing.assert_array_equal(y[1, 1], W_GOLDEN[0])


def test_backward_adds_the_upstream_rows_of_each_token():
    emb = golden_layer()
    emb(IDX_GOLDEN)
    assert emb.backward(DOUT_GOLDEN) is None
    np.testing.assert_array_equal(emb.grads["weight"], [[10.0, 11.0, 12.0],   # token 0 at (1, 1)
                                                        [8.0, 10.0, 12.0],    # token 1 at (0, 0) and (1, 0)
                                                        [0.0, 0.0, 0.0],      # token 2 unread
                                                        [4.0, 5.0, 6.0]])     # token 3 at (0, 1)


def test_the_padding_row_is_read_but_gets_no_gradient():
    emb = golden_layer(padding_idx=1)        # the row was loaded non-zero: forward still reads it, as torch
    y = emb(IDX_GOLDEN)
    np.testing.assert_array_equal(y[1, 0], W_GOLDEN[1])
    emb.backward(DOUT_GOLDEN)
    np.testing.assert_array_equal(emb.grads["weight"], [[10.0, 11.0, 12.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0],
                                                        [4.0, 5.0, 6.0]])


@settings(max_examples=60, deadline=None)
@given(cases())
def test_backward_equals_the_loop_over_positions(case):
    V, E, shape, padding_idx, seed = case
    rng = np.random.default_rng(seed)
    emb = Embedding(V, E, padding_idx, rng=rng)
    indices = rng.integers(0, V, size=shape)
    dout = rng.standard_normal(shape + (E,))
    y = emb(indices)
    assert y.shape == shape + (E,)
    np.testing.assert_array_equal(y, emb.params["weight"][indices])
    emb.backward(dout)
    np.testing.assert_allclose(emb.grads["weight"], loop_backward(V, E, indices, dout, emb.padding_idx),
                               rtol=1e-14, atol=1e-15)


def test_a_single_int_gives_one_vector_and_lists_are_accepted():
    emb = Embedding(5, 3, rng=0)
    np.testing.assert_array_equal(emb(2), emb.params["weight"][2])
    np.testing.assert_array_equal(emb([[4, 0]]), emb.params["weight"][[[4, 0]]])
    assert emb(np.array([], dtype=int)).shape == (0, 3)
    for dtype in (np.int8, np.int32, np.uint8, np.uint64):
        np.testing.assert_array_equal(emb(np.array([1, 4], dtype=dtype)), emb.params["weight"][[1, 4]])


def test_forward_returns_a_copy_and_keeps_its_own_indices():
    emb = Embedding(5, 2, rng=0)
    before = emb.params["weight"].copy()
    indices = np.array([0, 1, 1])
    y = emb(indices)
    y += 100.0
    np.testing.assert_array_equal(emb.params["weight"], before)
    indices[:] = 4                                   # the caller reuses its buffer before backward
    emb.backward(np.ones((3, 2)))
    np.testing.assert_array_equal(emb.grads["weight"][:, 0], [1.0, 2.0, 0.0, 0.0, 0.0])


def test_backward_leaves_dout_alone_and_twice_adds_twice():
    emb = Embedding(6, 4, padding_idx=2, rng=1)
    rng = np.random.default_rng(2)
    indices = rng.integers(0, 6, size=(5, 3))
    dout = rng.standard_normal((5, 3, 4))
    kept = dout.copy()
    emb(indices)
    emb.backward(dout)
    once = emb.grads["weight"].copy()
    np.testing.assert_array_equal(dout, kept)
    assert np.abs(once).max() > 0
    emb.backward(dout)                               # adds term by term onto the sum: equal up to rounding
    np.testing.assert_allclose(emb.grads["weight"], 2 * once, rtol=1e-14, atol=1e-15)
    emb.zero_grad()
    np.testing.assert_array_equal(emb.grads["weight"], np.zeros((6, 4)))
    emb.backward(dout)                               # the kept indices survive zero_grad
    np.testing.assert_array_equal(emb.grads["weight"], once)


def test_two_passes_accumulate_their_own_gradients():
    emb = Embedding(4, 2, rng=0)
    rng = np.random.default_rng(3)
    a, b = np.array([0, 0, 3]), np.array([[1], [3]])
    da, db = rng.standard_normal((3, 2)), rng.standard_normal((2, 1, 2))
    emb(a)
    emb.backward(da)
    emb(b)
    emb.backward(db)
    expected = loop_backward(4, 2, a, da, None) + loop_backward(4, 2, b, db, None)
    np.testing.assert_allclose(emb.grads["weight"], expected, rtol=1e-15, atol=0)


def test_zero_dout_gives_zero_gradient_and_all_padding_gives_none():
    emb = Embedding(5, 3, padding_idx=4, rng=0)
    emb(np.array([[0, 4], [2, 2]]))
    emb.backward(np.zeros((2, 2, 3)))
    assert not emb.grads["weight"].any()
    emb(np.full((3, 2), 4))
    emb.backward(np.random.default_rng(0).standard_normal((3, 2, 3)))
    assert not emb.grads["weight"].any()


# --- central differences ---------------------------------------------------------------------------------

def checked_pass(emb: Embedding, indices: np.ndarray, dout: np.ndarray):
    """The loss sum(y * dout) as a function of the weights, its value, and the analytic gradient."""
    def f(params):
        return float(np.sum(emb.forward(indices) * dout))

    loss = f(emb.params)
    emb.zero_grad()
    emb.backward(dout)
    return f, loss


def test_gradcheck_passes_with_repeated_indices():
    rng = np.random.default_rng(4)
    emb = Embedding(7, 3, rng=5)
    indices = rng.integers(0, 7, size=(4, 5))         # 20 positions over 7 rows: repeats are certain
    dout = rng.standard_normal((4, 5, 3))
    f, loss = checked_pass(emb, indices, dout)
    report = bptt.gradcheck(f, emb.params, emb.grads, loss=loss)
    assert report.ok, report


def test_gradcheck_catches_the_fancy_index_bug():
    """``dW[idx] += dout`` keeps one of each repeated index's rows: the classic scatter bug must fail."""
    rng = np.random.default_rng(6)
    emb = Embedding(5, 2, rng=7)
    indices = np.array([[0, 3, 3], [1, 3, 0]])
    dout = rng.standard_normal((2, 3, 2))
    f, loss = checked_pass(emb, indices, dout)
    buggy = np.zeros_like(emb.grads["weight"])
    buggy[indices.reshape(-1)] += dout.reshape(-1, 2)
    assert bptt.gradcheck(f, emb.params, {"weight": buggy}, loss=loss).failed == ["weight"]


def test_with_padding_central_differences_agree_except_on_the_padding_row():
    """PyTorch's rule, not calculus: the padding row is read, so the loss depends on it, but its gradient
    is defined to be zero. Every other row matches central differences."""
    rng = np.random.default_rng(8)
    emb = Embedding(6, 3, padding_idx=-2, rng=9)      # row 4
    emb.load_state_dict({"weight": rng.standard_normal((6, 3))})
    indices = np.array([[4, 1, 4], [0, 1, 5]])
    dout = rng.standard_normal((2, 3, 3))
    f, _ = checked_pass(emb, indices, dout)
    W = emb.params["weight"]
    numeric = np.zeros_like(W)
    eps = 1e-6
    for j in np.ndindex(*W.shape):
        saved = W[j]
        W[j] = saved + eps
        up = f(emb.params)
        W[j] = saved - eps
        down = f(emb.params)
        W[j] = saved
        numeric[j] = (up - down) / (2 * eps)
    rows = [0, 1, 2, 3, 5]
    np.testing.assert_allclose(emb.grads["weight"][rows], numeric[rows], rtol=1e-7, atol=1e-8)
    assert not emb.grads["weight"][4].any()
    assert np.abs(numeric[4]).min() > 1e-3           # the row does feed the loss


# --- dtypes, seeds, configuration -------------------------------------------------------------------------

def test_float32_stays_float32():
    emb = Embedding(5, 3, padding_idx=0, dtype=np.float32, rng=0)
    assert emb.params["weight"].dtype == np.float32 and emb.grads["weight"].dtype == np.float32
    y = emb(np.array([[1, 0], [1, 4]]))
    assert y.dtype == np.float32
    dout = np.random.default_rng(1).standard_normal((2, 2, 3))   # float64 upstream is cast
    emb.backward(dout)
    assert emb.grads["weight"].dtype == np.float32
    np.testing.assert_allclose(emb.grads["weight"], loop_backward(5, 3, np.array([[1, 0], [1, 4]]), dout, 0),
                               rtol=1e-6, atol=1e-7)
    assert Embedding(5, 3, dtype="float32").dtype == np.float32


def test_init_is_standard_normal_from_the_generator_with_the_padding_row_zero():
    emb = Embedding(8, 5, padding_idx=3, rng=11)
    expected = np.random.default_rng(11).standard_normal((8, 5))
    expected[3] = 0.0
    np.testing.assert_array_equal(emb.params["weight"], expected)
    np.testing.assert_array_equal(emb.grads["weight"], np.zeros((8, 5)))
    big = Embedding(400, 50, rng=0).params["weight"]
    assert abs(big.mean()) < 0.02 and abs(big.std() - 1.0) < 0.02


def test_the_same_seed_gives_the_same_weights():
    np.testing.assert_array_equal(Embedding(6, 4, rng=3).params["weight"], Embedding(6, 4, rng=3).params["weight"])
    assert not np.array_equal(Embedding(6, 4, rng=3).params["weight"], Embedding(6, 4, rng=4).params["weight"])
    a, b = np.random.default_rng(5), np.random.default_rng(5)
    np.testing.assert_array_equal(Embedding(6, 4, rng=a).params["weight"], Embedding(6, 4, rng=b).params["weight"])
    # rng=None (the default) draws fresh OS entropy: two layers differ
    assert not np.array_equal(Embedding(6, 4).params["weight"], Embedding(6, 4).params["weight"])


def test_negative_padding_idx_counts_from_the_end():
    emb = Embedding(5, 2, padding_idx=-1, rng=0)
    assert emb.padding_idx == 4
    assert not emb.params["weight"][4].any() and emb.params["weight"][:4].all()
    assert Embedding(5, 2, padding_idx=-5).padding_idx == 0


@pytest.mark.parametrize("padding_idx", [None, 0, -2])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_config_rebuilds_a_twin_and_the_state_dict_round_trips(padding_idx, dtype):
    emb = Embedding(7, 3, padding_idx, dtype=dtype, rng=0)
    twin = Embedding(**emb.config(), rng=1)
    assert twin.config() == emb.config()
    assert twin.params["weight"].shape == (7, 3) and twin.dtype == np.dtype(dtype)
    assert twin.padding_idx == (None if padding_idx is None else padding_idx % 7)
    twin.load_state_dict(emb.state_dict())
    np.testing.assert_array_equal(twin.params["weight"], emb.params["weight"])


def test_repr_shows_the_options():
    assert repr(Embedding(10, 3, rng=0)) == "Embedding(10, 3, dtype=float64)"
    assert repr(Embedding(10, 3, padding_idx=-1, dtype=np.float32, rng=0)) == \
        "Embedding(10, 3, padding_idx=9, dtype=float32)"


# --- bad input ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("indices", "match"), [
    (np.array([0.0, 1.0]), r"Embedding.forward: expected indices of an integer dtype, got dtype float64\. Convert"),
    (np.array([1.5]), r"expected indices of an integer dtype, got dtype float64"),
    (np.array([True, False]), r"expected indices of an integer dtype, got dtype bool"),
    ([], r"got dtype float64\. An empty list becomes float64"),
    (np.array(["a"]), r"expected indices of an integer dtype, got dtype <U1"),
])
def test_non_integer_indices_are_a_type_error(indices, match):
    with pytest.raises(TypeError, match=match):
        Embedding(4, 2, rng=0)(indices)


@pytest.mark.parametrize(("indices", "match"), [
    (np.array([0, -1, 2]), r"expected indices in 0\.\.3 \(num_embeddings=4\), got -1 at position \(1,\)"),
    (np.array([[0, 1], [4, 2]]), r"expected indices in 0\.\.3 \(num_embeddings=4\), got 4 at position \(1, 0\) "
                                 r"\(out of range: 1 of 4 indices\)"),
    (np.array([[9, 7]]), r"got 9 at position \(0, 0\) \(out of range: 2 of 2 indices\)"),
    (np.array(4), r"got 4 at position \(\)"),
    (-1, r"got -1 at position \(\)"),
])
def test_out_of_range_indices_are_a_value_error_naming_the_first(indices, match):
    emb = Embedding(4, 2, rng=0)
    with pytest.raises(ValueError, match=r"^Embedding\.forward: expected indices in 0\.\.3") as info:
        emb(indices)
    assert info.match(match)
    with pytest.raises(ValueError, match=r"expected a forward pass first"):   # a refused pass keeps nothing
        emb.backward(np.ones(np.shape(indices) + (2,)))


def test_ragged_indices_are_a_value_error():
    with pytest.raises(ValueError, match=r"Embedding.forward: expected indices to be a rectangular array"):
        Embedding(4, 2, rng=0)([[0, 1], [2]])


@pytest.mark.parametrize(("padding_idx", "error", "match"), [
    (5, ValueError, r"Embedding: expected padding_idx in -5\.\.4 \(num_embeddings=5\), got 5\."),
    (-6, ValueError, r"Embedding: expected padding_idx in -5\.\.4 \(num_embeddings=5\), got -6\."),
    (1.0, TypeError, r"Embedding: expected padding_idx to be an int or None, got float\."),
    (True, TypeError, r"Embedding: expected padding_idx to be an int or None, got bool\."),
])
def test_bad_padding_idx(padding_idx, error, match):
    with pytest.raises(error, match=match):
        Embedding(5, 2, padding_idx=padding_idx)


@pytest.mark.parametrize(("args", "error", "match"), [
    ((0, 3), ValueError, r"Embedding: expected num_embeddings >= 1, got 0\."),
    ((-2, 3), ValueError, r"Embedding: expected num_embeddings >= 1, got -2\."),
    ((4, 0), ValueError, r"Embedding: expected embedding_dim >= 1, got 0\."),
    ((4.0, 3), TypeError, r"Embedding: expected num_embeddings to be an int, got float\."),
    ((4, True), TypeError, r"Embedding: expected embedding_dim to be an int, got bool\."),
])
def test_bad_sizes(args, error, match):
    with pytest.raises(error, match=match):
        Embedding(*args)


@pytest.mark.parametrize("dtype", [np.int64, np.float16, "complex128"])
def test_unknown_dtype_is_a_type_error(dtype):
    with pytest.raises(TypeError, match=r"Embedding: expected dtype float32 or float64, got"):
        Embedding(4, 2, dtype=dtype)


def test_bad_rng_is_refused():
    with pytest.raises(TypeError, match=r"Embedding: expected rng to be an int seed or a numpy.random.Generator"):
        Embedding(4, 2, rng="0")
    with pytest.raises(ValueError, match=r"Embedding: expected a non-negative int seed, got -1\."):
        Embedding(4, 2, rng=-1)


def test_backward_before_forward():
    with pytest.raises(ValueError, match=r"Embedding.backward: expected a forward pass first, got none\."):
        Embedding(4, 2, rng=0).backward(np.ones((3, 2)))


@pytest.mark.parametrize(("dout_shape", "got"), [((3, 2), r"\(3, 2\)"), ((2, 3, 3), r"\(2, 3, 3\)"),
                                                 ((2, 3), r"\(2, 3\)"), ((6, 2), r"\(6, 2\)")])
def test_backward_checks_the_shape_of_dout(dout_shape, got):
    emb = Embedding(4, 2, rng=0)
    emb(np.zeros((2, 3), dtype=int))
    with pytest.raises(ValueError, match=r"Embedding.backward: expected dout of shape \(2, 3, 2\), got " + got):
        emb.backward(np.ones(dout_shape))
    assert not emb.grads["weight"].any()


def test_backward_refuses_non_finite_and_non_numeric_dout():
    emb = Embedding(4, 2, rng=0)
    emb(np.array([1, 2]))
    with pytest.raises(ValueError, match=r"Embedding.backward: expected finite values in dout"):
        emb.backward(np.array([[1.0, np.nan], [0.0, 1.0]]))
    with pytest.raises(TypeError, match=r"Embedding.backward: expected dout to be a real numeric array"):
        emb.backward(np.array([["a", "b"], ["c", "d"]]))
    assert not emb.grads["weight"].any()
