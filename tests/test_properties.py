"""Properties that hold for every shape: backward is pure, zero upstream gives zero gradients, degenerate
sizes work, inputs are never aliased, the sigmoid is stable, and initialization is seeded and uniform."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from lstm_cases import lstm_cases, user_shapes

from bptt import LSTM
from bptt.layers.activations import sigmoid, sigmoid_grad_from_output, tanh_grad_from_output


def build(case: dict) -> tuple[LSTM, dict]:
    """A layer with random (seeded) weights and random inputs, states and upstream gradients for ``case``."""
    rng = np.random.default_rng(case["seed"])
    I, H, L = case["I"], case["H"], case["L"]
    layer = LSTM(I, H, L, bias=case["bias"], batch_first=case["batch_first"], rng=rng)
    x_shape, state_shape, out_shape = user_shapes(case)
    arrays = {"x": rng.standard_normal(x_shape),
              "hx": (rng.standard_normal(state_shape), rng.standard_normal(state_shape)),
              "dout": rng.standard_normal(out_shape),
              "dhx": (rng.standard_normal(state_shape), rng.standard_normal(state_shape))}
    return layer, arrays


def snapshot(dx, dh0, dc0, grads) -> dict:
    result = {"dx": dx.copy(), "dh0": dh0.copy(), "dc0": dc0.copy()}
    result.update({f"grad {k}": v.copy() for k, v in grads.items()})
    return result


def assert_all_equal(actual: dict, expected: dict) -> None:
    assert set(actual) == set(expected)
    for name, value in expected.items():
        np.testing.assert_array_equal(actual[name], value, err_msg=name)


# ---------------------------------------------------------------------------------------------------------
# Backward is a pure function of the cache and the upstream gradients
# ---------------------------------------------------------------------------------------------------------

@settings(max_examples=30, deadline=None)
@given(case=lstm_cases(max_steps=6, max_batch=3, max_features=5))
def test_backward_twice_gives_identical_results(case):
    layer, a = build(case)
    layer.forward(a["x"], a["hx"])
    dx, (dh0, dc0) = layer.backward(a["dout"], a["dhx"])
    first = snapshot(dx, dh0, dc0, layer.grads)
    returned = {"dx": dx, "dh0": dh0, "dc0": dc0}

    layer.zero_grad()
    dx2, (dh02, dc02) = layer.backward(a["dout"], a["dhx"])
    assert_all_equal(snapshot(dx2, dh02, dc02, layer.grads), first)
    # the first call's results are the caller's own: the second call did not write into them
    for name, value in returned.items():
        np.testing.assert_array_equal(value, first[name], err_msg=f"{name} of the first call was overwritten")


@settings(max_examples=20, deadline=None)
@given(case=lstm_cases(max_steps=6, max_batch=3, max_features=5))
def test_forward_and_backward_leave_params_alone_and_forward_repeats(case):
    layer, a = build(case)
    before = layer.state_dict()
    out, (h_n, c_n) = layer.forward(a["x"], a["hx"])
    layer.backward(a["dout"], a["dhx"])
    for name, value in before.items():
        np.testing.assert_array_equal(layer.params[name], value, err_msg=f"{name} changed")
    out2, (h_n2, c_n2) = layer.forward(a["x"], a["hx"])
    for first, second in ((out, out2), (h_n, h_n2), (c_n, c_n2)):
        np.testing.assert_array_equal(second, first)


@settings(max_examples=30, deadline=None)
@given(case=lstm_cases(max_steps=6, max_batch=3, max_features=5), with_dhx=st.booleans())
def test_zero_upstream_gives_exactly_zero_gradients(case, with_dhx):
    layer, a = build(case)
    out, (h_n, c_n) = layer.forward(a["x"], a["hx"])
    dhx = (np.zeros_like(h_n), np.zeros_like(c_n)) if with_dhx else None
    dx, (dh0, dc0) = layer.backward(np.zeros_like(out), dhx)
    for name, value in snapshot(dx, dh0, dc0, layer.grads).items():
        assert not np.any(value), f"{name} is not exactly zero"
    # and a non-zero upstream does reach every input (so the check above is not vacuous)
    dx, (dh0, dc0) = layer.backward(a["dout"], a["dhx"])
    for name, value in snapshot(dx, dh0, dc0, layer.grads).items():
        assert np.any(value), f"{name} stayed zero for a random upstream gradient"


# ---------------------------------------------------------------------------------------------------------
# Degenerate sizes, against an independent reference and central differences
# ---------------------------------------------------------------------------------------------------------

def reference_lstm(params: dict, x: np.ndarray, h0: np.ndarray, c0: np.ndarray, bias: bool):
    """The textbook equations, time-major x (T, N, I), PyTorch gate order i, f, g, o, plain exp sigmoid."""
    L, H = h0.shape[0], h0.shape[2]
    layer_input, h_n, c_n = x, [], []
    for k in range(L):
        h, c, outs = h0[k], c0[k], []
        for x_t in layer_input:
            z = x_t @ params[f"weight_ih_l{k}"].T + h @ params[f"weight_hh_l{k}"].T
            if bias:
                z = z + params[f"bias_ih_l{k}"] + params[f"bias_hh_l{k}"]
            i, f, g, o = (z[:, j * H:(j + 1) * H] for j in range(4))
            i, f, o, g = 1 / (1 + np.exp(-i)), 1 / (1 + np.exp(-f)), 1 / (1 + np.exp(-o)), np.tanh(g)
            c = f * c + i * g
            h = o * np.tanh(c)
            outs.append(h)
        layer_input = np.stack(outs)
        h_n.append(h)
        c_n.append(c)
    return layer_input, np.stack(h_n), np.stack(c_n)


@pytest.mark.parametrize(("T", "N", "batch_first", "unbatched"), [
    (1, 1, False, False), (1, 1, True, False), (1, 1, False, True), (1, 3, True, False),
    (4, 1, True, False), (4, 1, False, True), (1, 2, False, False),
])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_degenerate_sizes_forward_and_gradients(T, N, batch_first, unbatched, num_layers):
    I, H, L = 2, 3, num_layers
    rng = np.random.default_rng(T * 100 + N * 10 + L)
    layer = LSTM(I, H, L, batch_first=batch_first, rng=rng)
    n = 1 if unbatched else N
    x_tm = rng.standard_normal((T, n, I))
    h0, c0, dh_n, dc_n = rng.standard_normal((4, L, n, H))
    dout_tm = rng.standard_normal((T, n, H))

    def user(seq):   # time-major (T, n, F) -> the layout the layer takes
        if unbatched:
            return seq[:, 0]
        return seq.swapaxes(0, 1).copy() if batch_first else seq

    def states(s):
        return s[:, 0] if unbatched else s

    out, (h_n, c_n) = layer.forward(user(x_tm), (states(h0), states(c0)))
    ref_out, ref_h, ref_c = reference_lstm(layer.params, x_tm, h0, c0, bias=True)
    np.testing.assert_allclose(out, user(ref_out), rtol=0, atol=1e-14)
    np.testing.assert_allclose(h_n, states(ref_h), rtol=0, atol=1e-14)
    np.testing.assert_allclose(c_n, states(ref_c), rtol=0, atol=1e-14)

    dx, (dh0, dc0) = layer.backward(user(dout_tm), (states(dh_n), states(dc_n)))

    def loss() -> float:
        o, hn, cn = reference_lstm(layer.params, x_tm, h0, c0, bias=True)
        return float(np.sum(o * dout_tm) + np.sum(hn * dh_n) + np.sum(cn * dc_n))

    def numeric(array: np.ndarray) -> np.ndarray:
        grad, eps = np.zeros_like(array), 1e-6
        for index in np.ndindex(array.shape):
            keep = array[index]
            array[index] = keep + eps
            up = loss()
            array[index] = keep - eps
            down = loss()
            array[index] = keep
            grad[index] = (up - down) / (2 * eps)
        return grad

    checks = {"dx": (dx, user(numeric(x_tm))), "dh0": (dh0, states(numeric(h0))),
              "dc0": (dc0, states(numeric(c0)))}
    checks.update({f"grad {k}": (layer.grads[k], numeric(p)) for k, p in layer.params.items()})
    for name, (analytic, expected) in checks.items():
        assert analytic.shape == expected.shape, name
        scale = max(np.max(np.abs(expected)), 1e-3)
        assert np.max(np.abs(analytic - expected)) <= 1e-7 * scale, name


# ---------------------------------------------------------------------------------------------------------
# The caller's arrays are neither modified nor aliased
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("unbatched", [False, True])
def test_forward_and_backward_leave_the_callers_arrays_alone(dtype, unbatched):
    _, a = build({"T": 4, "N": 2, "I": 3, "H": 5, "L": 2, "bias": True, "batch_first": False,
                  "unbatched": unbatched, "seed": 1})
    layer = LSTM(3, 5, 2, dtype=dtype, rng=1)
    x = a["x"].astype(dtype)
    h0, c0 = (s.astype(dtype) for s in a["hx"])
    dout = a["dout"].astype(dtype)
    dh_n, dc_n = (s.astype(dtype) for s in a["dhx"])
    inputs = {"x": x, "h0": h0, "c0": c0, "dout": dout, "dh_n": dh_n, "dc_n": dc_n}
    before = {name: value.copy() for name, value in inputs.items()}
    layer.forward(x, (h0, c0))
    layer.backward(dout, (dh_n, dc_n))
    for name, value in inputs.items():
        np.testing.assert_array_equal(value, before[name], err_msg=f"{name} was modified")


@settings(max_examples=20, deadline=None)
@given(case=lstm_cases(max_steps=6, max_batch=3, max_features=5))
def test_later_changes_to_inputs_and_outputs_do_not_reach_backward(case):
    """The cache holds copies: scribbling over x, hx and the returned out/h_n/c_n changes nothing."""
    layer, a = build(case)
    twin, _ = build(case)      # same seed, same weights
    expected = snapshot(*_forward_backward(twin, a["x"].copy(), tuple(s.copy() for s in a["hx"]), a))

    x, hx = a["x"].copy(), tuple(s.copy() for s in a["hx"])
    out, (h_n, c_n) = layer.forward(x, hx)
    for array in (x, *hx, out, h_n, c_n):
        array[...] = 1e3
    dx, (dh0, dc0) = layer.backward(a["dout"], a["dhx"])
    assert_all_equal(snapshot(dx, dh0, dc0, layer.grads), expected)


def _forward_backward(layer: LSTM, x, hx, a):
    layer.forward(x, hx)
    dx, (dh0, dc0) = layer.backward(a["dout"], a["dhx"])
    return dx, dh0, dc0, layer.grads


# ---------------------------------------------------------------------------------------------------------
# Activations
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sigmoid_saturates_without_warnings(dtype):
    a = np.array([-1e308 if dtype == np.float64 else -3e38, -1e3, -800.0, 800.0, 1e3], dtype=dtype)
    with warnings.catch_warnings(), np.errstate(all="raise"):
        warnings.simplefilter("error")
        s = sigmoid(a)
    np.testing.assert_array_equal(s, np.array([0, 0, 0, 1, 1], dtype=dtype))
    assert s.dtype == dtype


@given(hnp.arrays(np.float64, hnp.array_shapes(max_dims=2, max_side=20),
                  elements=st.floats(-30, 30, allow_nan=False)))
def test_sigmoid_matches_the_definition(a):
    expected = 1.0 / (1.0 + np.exp(-a))
    np.testing.assert_allclose(sigmoid(a), expected, rtol=0, atol=1e-15)
    in_place = a.copy()
    assert sigmoid(in_place, out=in_place) is in_place
    np.testing.assert_allclose(in_place, expected, rtol=0, atol=1e-15)


@given(hnp.arrays(np.float64, hnp.array_shapes(max_dims=2, max_side=20),
                  elements=st.floats(-15, 15, allow_nan=False)))
def test_derivatives_from_outputs(a):
    np.testing.assert_allclose(sigmoid_grad_from_output(sigmoid(a)), np.exp(-a) / (1 + np.exp(-a)) ** 2,
                               rtol=0, atol=1e-15)
    np.testing.assert_allclose(tanh_grad_from_output(np.tanh(a)), 1 / np.cosh(a) ** 2, rtol=0, atol=1e-15)


# ---------------------------------------------------------------------------------------------------------
# Initialization
# ---------------------------------------------------------------------------------------------------------

def test_int_seed_reproduces_params_and_different_seeds_differ():
    first, again, other = (LSTM(3, 4, num_layers=2, rng=seed) for seed in (7, 7, 8))
    from_generator = LSTM(3, 4, num_layers=2, rng=np.random.default_rng(7))
    for name in first.params:
        np.testing.assert_array_equal(first.params[name], again.params[name], err_msg=name)
        np.testing.assert_array_equal(first.params[name], from_generator.params[name], err_msg=name)
        assert not np.array_equal(first.params[name], other.params[name]), name
    # distinct parameters are distinct draws, not one block repeated
    assert not np.array_equal(first.params["bias_ih_l0"], first.params["bias_hh_l0"])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_init_is_uniform_within_one_over_sqrt_hidden(dtype):
    # input_size 100 > hidden_size 64: a bound of 1/sqrt(I) = 0.1 instead of 1/sqrt(H) = 0.125 would show
    H = 64
    layer = LSTM(100, H, num_layers=2, dtype=dtype, rng=0)
    bound = dtype(1 / np.sqrt(H))
    for name, value in layer.params.items():
        assert value.dtype == dtype, name
        assert np.max(np.abs(value)) <= bound, f"{name} leaves [-1/sqrt(H), 1/sqrt(H)]"
        gap = 0.05 if value.ndim == 1 else 0.005            # 256 biases vs >= 16384 weights
        assert value.min() < -(1 - gap) * bound and value.max() > (1 - gap) * bound, name
        if value.ndim == 2:
            counts, _ = np.histogram(value, bins=10, range=(-bound, bound))
            assert np.all(np.abs(counts / value.size - 0.1) < 0.01), f"{name} histogram {counts}"
            assert abs(value.mean()) < 0.02 * bound, name
            assert abs(value.std() - bound / np.sqrt(3)) < 0.02 * bound, name


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_lstm_saturated_gates_stay_finite_without_warnings(dtype):
    """Pre-activations of +-1e3 and beyond: no overflow warning (warnings are errors here), finite values,
    gates exactly at 0 or 1, and finite gradients."""
    layer = LSTM(2, 3, rng=0, dtype=dtype)
    x = np.array([[[1e3, -1e3]], [[-1e4, 1e4]], [[1e5, 1e5]]], dtype=dtype)
    out, (h_n, c_n) = layer(x)
    dx, (dh0, dc0) = layer.backward(np.random.default_rng(1).normal(size=out.shape).astype(dtype))
    for value in (out, h_n, c_n, dx, dh0, dc0, *layer.grads.values()):
        assert np.isfinite(value).all()
    assert np.all(np.abs(out) <= 1)
