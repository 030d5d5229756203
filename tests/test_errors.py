"""Every bad-input path: the right exception type, and a message that names what was expected and what came.

``ValueError`` for values and shapes, ``TypeError`` for types (STYLE.md section 5). Patterns match the
content of the message (the expected and the received parts), not its exact wording around them.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from bptt import LSTM, Linear, mse_loss

I, H, L, T, N = 3, 4, 2, 5, 2


def lstm(**kwargs) -> LSTM:
    return LSTM(I, H, num_layers=L, rng=0, **kwargs)


def randn(*shape: int) -> np.ndarray:
    return np.random.default_rng(sum(shape)).standard_normal(shape)


def states(*shape: int) -> tuple[np.ndarray, np.ndarray]:
    return randn(*shape), randn(*shape) + 1.0


def esc(text: str) -> str:
    return re.escape(text)


# ---------------------------------------------------------------------------------------------------------
# LSTM.forward: x
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("batch_first", "shape"), [
    (False, (T, N, 7)),
    (True, (N, T, 7)),
    (False, (T, 7)),   # unbatched
    (True, (T, 7)),    # unbatched ignores batch_first, as in torch
])
def test_forward_wrong_feature_size(batch_first, shape):
    with pytest.raises(ValueError, match=r"LSTM\.forward: expected x of shape \(.*\b3\), got "
                                         + esc(str(shape)[:-1])):
        lstm(batch_first=batch_first).forward(np.zeros(shape))


@pytest.mark.parametrize("shape", [(T,), (1, T, N, I)])
def test_forward_wrong_rank(shape):
    got = "(5,)" if len(shape) == 1 else "(1, 5, 2, 3)"
    with pytest.raises(ValueError, match=r"expected x of shape \(T, N, 3\) or unbatched \(T, 3\), got "
                                         + esc(got)):
        lstm().forward(np.zeros(shape))


def test_forward_wrong_rank_batch_first_says_so():
    with pytest.raises(ValueError, match=esc("expected x of shape (N, T, 3) or unbatched (T, 3)")):
        lstm(batch_first=True).forward(np.zeros((1, N, T, I)))


def test_forward_batch_first_hint_only_where_it_can_help():
    with pytest.raises(ValueError, match=esc("For batch-first data pass batch_first=True.")):
        lstm().forward(np.zeros((T, N, 7)))
    with pytest.raises(ValueError, match=esc("got (2, 5, 7).")) as excinfo:
        lstm(batch_first=True).forward(np.zeros((N, T, 7)))
    assert "batch_first=True" not in str(excinfo.value), "the hint is wrong for a layer already batch-first"


@pytest.mark.parametrize(("value", "dtype_name"), [
    (np.zeros((T, N, I), dtype=np.complex128), "complex128"),
    (np.zeros((T, N, I), dtype=object), "object"),
    (np.full((T, N, I), "a"), "<U1"),
])
def test_forward_x_not_real_numeric(value, dtype_name):
    pattern = r"expected x to be a real numeric array, got dtype " + esc(dtype_name)
    with pytest.raises(TypeError, match=pattern):
        lstm().forward(value)


@pytest.mark.parametrize(("bad", "count"), [(np.nan, 1), (np.inf, 1), (-np.inf, 2)])
def test_forward_non_finite_x(bad, count):
    x = randn(T, N, I)
    x.flat[:count] = bad
    with pytest.raises(ValueError, match=rf"expected finite values in x, got {count} NaN or infinite"):
        lstm().forward(x)


# ---------------------------------------------------------------------------------------------------------
# LSTM.forward: hx
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("which", "shape"), [
    ("h0", (1, N, H)),      # too few layers
    ("c0", (L, N + 1, H)),  # wrong batch
    ("h0", (L, N, H + 1)),  # wrong hidden size
    ("c0", (N, H)),         # unbatched states for batched x
])
def test_forward_wrong_state_shape(which, shape):
    h0, c0 = states(L, N, H)
    hx = {"h0": h0, "c0": c0}
    hx[which] = np.zeros(shape)
    with pytest.raises(ValueError, match=esc(f"expected {which} of shape (2, 2, 4), got {shape}.")):
        lstm().forward(randn(T, N, I), (hx["h0"], hx["c0"]))


def test_forward_unbatched_wants_unbatched_states():
    with pytest.raises(ValueError, match=esc("expected h0 of shape (2, 4), got (2, 1, 4).")):
        lstm().forward(randn(T, I), states(L, 1, H))


@pytest.mark.parametrize("hx", [
    np.zeros((2, L, N, H)),                                  # an array, not a pair
    (np.zeros((L, N, H)),),                                  # a 1-tuple
    (np.zeros((L, N, H)), np.zeros((L, N, H)), np.zeros((L, N, H))),
    {"h0": np.zeros((L, N, H)), "c0": np.zeros((L, N, H))},
])
def test_forward_hx_not_a_pair(hx):
    with pytest.raises(TypeError, match=r"expected a pair \(h0, c0\), got " + type(hx).__name__):
        lstm().forward(randn(T, N, I), hx)


def test_forward_non_finite_state():
    h0, c0 = states(L, N, H)
    c0[1, 0, 2] = np.nan
    with pytest.raises(ValueError, match="expected finite values in c0, got 1 NaN"):
        lstm().forward(randn(T, N, I), (h0, c0))


def test_refused_forward_leaves_the_last_pass_usable():
    layer = lstm()
    out, _ = layer.forward(randn(T, N, I))
    with pytest.raises(ValueError):
        layer.forward(np.full((T, I), np.nan))
    dx, _ = layer.backward(randn(*out.shape))
    assert dx.shape == (T, N, I)


# ---------------------------------------------------------------------------------------------------------
# LSTM.backward
# ---------------------------------------------------------------------------------------------------------

def test_backward_before_forward():
    with pytest.raises(ValueError, match=r"LSTM\.backward: expected a forward pass first, got none"):
        lstm().backward(np.zeros((T, N, H)))


@pytest.mark.parametrize(("batch_first", "unbatched", "expected", "given"), [
    (False, False, (T, N, H), (T, N, H + 1)),
    (False, False, (T, N, H), (T - 1, N, H)),
    (True, False, (N, T, H), (T, N, H)),      # time-major dout for a batch-first layer
    (False, True, (T, H), (T, 1, H)),
    (False, False, (T, N, H), (T * N, H)),
])
def test_backward_wrong_dout_shape(batch_first, unbatched, expected, given):
    layer = lstm(batch_first=batch_first)
    x_shape = (T, I) if unbatched else ((N, T, I) if batch_first else (T, N, I))
    layer.forward(randn(*x_shape))
    with pytest.raises(ValueError, match=esc(f"expected dout of shape {expected}, got {given}.")):
        layer.backward(np.zeros(given))


@pytest.mark.parametrize(("which", "shape"), [("dh_n", (L, N, H + 1)), ("dc_n", (1, N, H)), ("dh_n", (N, H))])
def test_backward_wrong_dhx_shape(which, shape):
    layer = lstm()
    out, (h_n, c_n) = layer.forward(randn(T, N, I))
    dhx = {"dh_n": randn(*h_n.shape), "dc_n": randn(*c_n.shape)}
    dhx[which] = np.zeros(shape)
    with pytest.raises(ValueError, match=esc(f"expected {which} of shape {h_n.shape}, got {shape}.")):
        layer.backward(randn(*out.shape), (dhx["dh_n"], dhx["dc_n"]))


def test_backward_dhx_not_a_pair():
    layer = lstm()
    out, (h_n, _) = layer.forward(randn(T, N, I))
    with pytest.raises(TypeError, match=r"expected a pair \(dh_n, dc_n\), got ndarray"):
        layer.backward(randn(*out.shape), h_n)


def test_backward_non_finite_dout():
    layer = lstm()
    out, _ = layer.forward(randn(T, N, I))
    dout = randn(*out.shape)
    dout[0, 0, 0] = np.inf
    with pytest.raises(ValueError, match="expected finite values in dout, got 1 NaN or infinite"):
        layer.backward(dout)


# ---------------------------------------------------------------------------------------------------------
# Constructors
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("dtype", "shown"), [
    (int, "int64"), (np.float16, "float16"), ("complex64", "complex64"), ("not a dtype", "'not a dtype'"),
])
@pytest.mark.parametrize("make", [lambda d: LSTM(I, H, dtype=d), lambda d: Linear(I, H, dtype=d)],
                         ids=["LSTM", "Linear"])
def test_constructor_bad_dtype(make, dtype, shown):
    with pytest.raises(TypeError, match=r"expected dtype float32 or float64, got " + esc(shown)):
        make(dtype)


SIZE_ARGS = {"input_size": I, "hidden_size": H, "num_layers": L}


@pytest.mark.parametrize("name", list(SIZE_ARGS))
@pytest.mark.parametrize(("value", "error", "message"), [
    (0, ValueError, ">= 1, got 0."),
    (-1, ValueError, ">= 1, got -1."),
    (2.5, TypeError, "to be an int, got float."),
    (True, TypeError, "to be an int, got bool."),
    ("3", TypeError, "to be an int, got str."),
])
def test_lstm_bad_sizes(name, value, error, message):
    with pytest.raises(error, match=rf"^LSTM: expected {name} " + esc(message)):
        LSTM(**{**SIZE_ARGS, name: value})


@pytest.mark.parametrize("name", ["in_features", "out_features"])
@pytest.mark.parametrize(("value", "error", "message"), [
    (0, ValueError, ">= 1, got 0."), (2.5, TypeError, "to be an int, got float."),
    (True, TypeError, "to be an int, got bool."),
])
def test_linear_bad_sizes(name, value, error, message):
    with pytest.raises(error, match=rf"^Linear: expected {name} " + esc(message)):
        Linear(**{"in_features": 3, "out_features": 2, name: value})


@pytest.mark.parametrize(("rng", "shown"), [("seed", "str"), (1.5, "float"), (True, "bool"),
                                            (np.random.RandomState(0), "RandomState")])
@pytest.mark.parametrize("make", [lambda r: LSTM(I, H, rng=r), lambda r: Linear(I, H, rng=r)],
                         ids=["LSTM", "Linear"])
def test_bad_rng_type(make, rng, shown):
    with pytest.raises(TypeError, match=r"expected rng to be an int seed or a numpy\.random\.Generator, got "
                                        + shown):
        make(rng)


def test_negative_seed_names_the_seed():
    with pytest.raises(ValueError, match="LSTM: expected a non-negative int seed, got -1"):
        LSTM(I, H, rng=-1)


# ---------------------------------------------------------------------------------------------------------
# load_state_dict: refuse, say why, and change nothing
# ---------------------------------------------------------------------------------------------------------

def new_state(layer: LSTM) -> dict[str, np.ndarray]:
    """A complete, valid state that differs from the layer's current parameters everywhere."""
    return {name: value + 0.25 for name, value in layer.params.items()}


def assert_refused_and_unchanged(layer: LSTM, state: object, error: type, pattern: str) -> None:
    before = {name: value.copy() for name, value in layer.params.items()}
    with pytest.raises(error, match=pattern):
        layer.load_state_dict(state)
    assert list(layer.params) == list(before)
    for name, value in before.items():
        np.testing.assert_array_equal(layer.params[name], value, err_msg=f"{name} changed by a refused load")


def test_load_state_dict_missing_key():
    layer = lstm()
    state = new_state(layer)
    del state["bias_hh_l1"]
    assert_refused_and_unchanged(layer, state, ValueError,
                                 r"missing keys \['bias_hh_l1'\] and unexpected keys \[\]")


def test_load_state_dict_unexpected_key():
    layer = lstm()
    state = new_state(layer)
    state["weight_ih_l2"] = np.zeros((4 * H, H))
    assert_refused_and_unchanged(layer, state, ValueError,
                                 r"missing keys \[\] and unexpected keys \['weight_ih_l2'\]")


def test_load_state_dict_wrong_shape():
    layer = lstm()
    state = new_state(layer)
    last = list(state)[-1]        # every earlier key is valid: a partial copy would show
    state[last] = np.zeros(4 * H + 1)
    assert_refused_and_unchanged(layer, state, ValueError, esc(f"expected {last} of shape (16,), got (17,)."))


def test_load_state_dict_transposed_weight():
    layer = lstm()
    state = new_state(layer)
    state["weight_hh_l1"] = state["weight_hh_l1"].T
    assert_refused_and_unchanged(layer, state, ValueError,
                                 esc("expected weight_hh_l1 of shape (16, 4), got (4, 16)."))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_load_state_dict_non_finite(bad):
    layer = lstm()
    state = new_state(layer)
    last = list(state)[-1]
    state[last][3] = bad
    assert_refused_and_unchanged(layer, state, ValueError,
                                 f"expected finite values in {last}, got NaN or infinite")


def test_load_state_dict_complex_value():
    layer = lstm()
    state = new_state(layer)
    state["weight_hh_l1"] = state["weight_hh_l1"].astype(np.complex128)
    assert_refused_and_unchanged(layer, state, TypeError,
                                 "expected weight_hh_l1 to be a real numeric array, got dtype complex128")


def test_load_state_dict_not_a_mapping():
    layer = lstm()
    assert_refused_and_unchanged(layer, list(new_state(layer).items()), TypeError,
                                 "expected a mapping of names to arrays, got list")


def test_load_state_dict_valid_state_does_change_params():
    """The counterpart of the refusals above: the same state, unbroken, is loaded."""
    layer = lstm()
    state = new_state(layer)
    layer.load_state_dict(state)
    for name, value in state.items():
        np.testing.assert_array_equal(layer.params[name], value)


# ---------------------------------------------------------------------------------------------------------
# Linear and mse_loss
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(7,), (4, 7), (2, 3, 2)])
def test_linear_forward_wrong_feature_size(shape):
    with pytest.raises(ValueError, match=r"Linear\.forward: expected x of shape \((\*, )*3,?\), got "
                                         + esc(str(shape))):
        Linear(3, 2, rng=0).forward(np.zeros(shape))


def test_linear_forward_scalar():
    with pytest.raises(ValueError, match=r"expected x of shape \(\*, 3\), got a scalar"):
        Linear(3, 2, rng=0).forward(1.0)


def test_linear_forward_non_finite():
    with pytest.raises(ValueError, match="expected finite values in x, got 1 NaN"):
        Linear(3, 2, rng=0).forward(np.array([[1.0, np.nan, 0.0]]))


def test_linear_backward_before_forward():
    with pytest.raises(ValueError, match=r"Linear\.backward: expected a forward pass first, got none"):
        Linear(3, 2, rng=0).backward(np.zeros((4, 2)))


def test_linear_backward_wrong_dy_shape():
    layer = Linear(3, 2, rng=0)
    layer.forward(np.zeros((4, 3)))
    with pytest.raises(ValueError, match=esc("expected dy of shape (4, 2), got (4, 3).")):
        layer.backward(np.zeros((4, 3)))


@pytest.mark.parametrize(("pred", "target"), [((2, 3), (3, 2)), ((4,), (4, 1)), ((3,), ())])
def test_mse_loss_shape_mismatch(pred, target):
    pattern = esc(f"expected target of the prediction's shape {pred}, got {target}.")
    with pytest.raises(ValueError, match=pattern):
        mse_loss(np.zeros(pred), np.zeros(target))


def test_mse_loss_empty():
    with pytest.raises(ValueError, match="expected a non-empty prediction, got size 0"):
        mse_loss(np.zeros((0, 3)), np.zeros((0, 3)))
