"""The textbook reference (bptt.reference) without torch: central differences agree with every gradient,
backward only reads its cache, degenerate sizes work, the batch rows are independent, zero upstream gives
zero gradients, and float32 stays float32. Parity with torch is in test_reference_torch.py."""

from __future__ import annotations

import numpy as np
import pytest

from bptt.reference import gru, lstm, rnn

# Each case: (gate count G, whether there is a cell state, nonlinearity for the RNN, projection)
CASES = {
    "lstm": (4, True, None, False),
    "lstm-proj": (4, True, None, True),
    "gru": (3, False, None, False),
    "rnn-tanh": (1, False, "tanh", False),
    "rnn-relu": (1, False, "relu", False),
}


def build(case: str, T: int, N: int, I: int, H: int, bias: bool = True, seed: int = 0,
          dtype: type = np.float64) -> tuple[dict, dict]:
    """Random params, and random inputs: ``x``, the initial states and the upstream gradients (never all ones)."""
    G, has_cell, _, projected = CASES[case]
    P = max(H - 1, 1) if projected else 0
    S = P or H
    rng = np.random.default_rng(seed)
    params = {"weight_ih": rng.normal(size=(G * H, I)), "weight_hh": rng.normal(size=(G * H, S))}
    if bias:
        params["bias_ih"], params["bias_hh"] = rng.normal(size=G * H), rng.normal(size=G * H)
    if projected:
        params["weight_hr"] = rng.normal(size=(P, H))
    inputs = {"x": rng.normal(size=(T, N, I)), "h0": rng.normal(size=(N, S)),
              "dout": rng.normal(size=(T, N, S)), "dh_n": rng.normal(size=(N, S))}
    if has_cell:
        inputs.update(c0=rng.normal(size=(N, H)), dc_n=rng.normal(size=(N, H)))
    cast = {name: value.astype(dtype) for name, value in params.items()}
    return cast, {name: value.astype(dtype) for name, value in inputs.items()}


def forward(case: str, params: dict, a: dict) -> tuple[np.ndarray, tuple, tuple]:
    """``out``, the final states as a tuple, and the cache."""
    if CASES[case][1]:
        out, states, cache = lstm.lstm_forward(params, a["x"], a["h0"], a["c0"])
        return out, states, cache
    if case == "gru":
        out, h_n, cache = gru.gru_forward(params, a["x"], a["h0"])
    else:
        out, h_n, cache = rnn.rnn_forward(params, a["x"], a["h0"], nonlinearity=CASES[case][2])
    return out, (h_n,), cache


def backward(case: str, params: dict, cache: tuple, a: dict) -> dict[str, np.ndarray]:
    """Every gradient, keyed by what it is the gradient of: ``x``, ``h0`` (``c0``) and the params."""
    if CASES[case][1]:
        dx, (dh0, dc0), grads = lstm.lstm_backward(params, cache, a["dout"], a["dh_n"], a["dc_n"])
        return {"x": dx, "h0": dh0, "c0": dc0, **grads}
    backward_of = gru.gru_backward if case == "gru" else rnn.rnn_backward
    dx, dh0, grads = backward_of(params, cache, a["dout"], a["dh_n"])
    return {"x": dx, "h0": dh0, **grads}


def loss(case: str, params: dict, a: dict) -> float:
    """The scalar whose gradients backward computes: sum(out dout) + sum(h_n dh_n) (+ sum(c_n dc_n))."""
    out, states, _ = forward(case, params, a)
    upstream = (a["dh_n"], a["dc_n"]) if CASES[case][1] else (a["dh_n"],)
    return float(np.sum(out * a["dout"]) + sum(np.sum(s * d) for s, d in zip(states, upstream, strict=True)))


def numerical_gradients(case: str, params: dict, a: dict, eps: float = 1e-6) -> dict[str, np.ndarray]:
    """Central differences of :func:`loss` for every entry of the params, ``x`` and the initial states."""
    variables = {**params, **{name: a[name] for name in ("x", "h0", "c0") if name in a}}
    numeric = {}
    for name, value in variables.items():
        numeric[name] = np.zeros_like(value)
        for index in np.ndindex(value.shape):
            old = value[index]
            value[index] = old + eps
            plus = loss(case, params, a)
            value[index] = old - eps
            minus = loss(case, params, a)
            value[index] = old
            numeric[name][index] = (plus - minus) / (2 * eps)
    return numeric


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no-bias"])
@pytest.mark.parametrize(("T", "N"), [(4, 3), (1, 3), (4, 1), (1, 1)], ids=lambda v: str(v))
@pytest.mark.parametrize("case", CASES)
def test_every_gradient_agrees_with_central_differences(case, T, N, bias):
    params, a = build(case, T, N, I=3, H=4, bias=bias, seed=T * 10 + N)
    out, _, cache = forward(case, params, a)
    analytic = backward(case, params, cache, a)
    numeric = numerical_gradients(case, params, a)
    assert set(analytic) == set(numeric)
    for name, value in numeric.items():
        assert analytic[name].shape == value.shape, name
        np.testing.assert_allclose(analytic[name], value, rtol=1e-6, atol=1e-7, err_msg=f"{case}: d{name}")


def test_the_numerical_check_catches_a_wrong_gradient():
    """The check above can fail: a forget-gate gradient off by a factor 1.01 in one entry is caught."""
    params, a = build("lstm", 3, 2, 3, 4)
    analytic = backward("lstm", params, forward("lstm", params, a)[2], a)
    numeric = numerical_gradients("lstm", params, a)
    analytic["weight_hh"][4, 0] *= 1.01                 # row 4: the first unit of the forget gate f
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(analytic["weight_hh"], numeric["weight_hh"], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("case", CASES)
def test_backward_only_reads_its_cache_and_twice_gives_identical_results(case):
    params, a = build(case, T=5, N=3, I=3, H=4)
    _, _, cache = forward(case, params, a)
    saved_cache = [np.copy(field) for field in cache]
    saved_inputs = {name: value.copy() for name, value in {**params, **a}.items()}
    first = backward(case, params, cache, a)
    first_copy = {name: value.copy() for name, value in first.items()}
    second = backward(case, params, cache, a)
    for name, value in first_copy.items():
        np.testing.assert_array_equal(second[name], value, err_msg=name)
        np.testing.assert_array_equal(first[name], value, err_msg=f"the second call wrote into the first's {name}")
    for name, field, saved in zip(cache._fields, cache, saved_cache, strict=True):
        np.testing.assert_array_equal(field, saved, err_msg=f"backward wrote into cache.{name}")
    for name, value in {**params, **a}.items():
        np.testing.assert_array_equal(value, saved_inputs[name], err_msg=f"backward wrote into {name}")


@pytest.mark.parametrize("case", CASES)
def test_one_step_of_the_sequence_is_the_step_pair(case):
    """T = 1: the sequence loops add nothing to the step functions."""
    params, a = build(case, T=1, N=2, I=3, H=4)
    out, states, cache = forward(case, params, a)
    grads = backward(case, params, cache, a)
    x_t = a["x"][0]
    if CASES[case][1]:
        h, c, gates, tanh_c = lstm.lstm_step_forward(params, x_t, a["h0"], a["c0"])
        dx, dh0, dc0, step = lstm.lstm_step_backward(params, a["dout"][0] + a["dh_n"], a["dc_n"], x_t, a["h0"],
                                                     a["c0"], gates, tanh_c)
        np.testing.assert_array_equal(states[1], c)
        np.testing.assert_array_equal(grads["c0"], dc0)
    elif case == "gru":
        h, gates, hidden_n = gru.gru_step_forward(params, x_t, a["h0"])
        dx, dh0, step = gru.gru_step_backward(params, a["dout"][0] + a["dh_n"], x_t, a["h0"], gates, hidden_n)
    else:
        nonlinearity = CASES[case][2]
        h = rnn.rnn_step_forward(params, x_t, a["h0"], nonlinearity)
        dx, dh0, step = rnn.rnn_step_backward(params, a["dout"][0] + a["dh_n"], x_t, a["h0"], h, nonlinearity)
    np.testing.assert_array_equal(out[0], h)
    np.testing.assert_array_equal(states[0], h)
    np.testing.assert_array_equal(grads["x"][0], dx)
    np.testing.assert_array_equal(grads["h0"], dh0)
    for name in params:
        np.testing.assert_array_equal(grads[name], step[name], err_msg=name)


@pytest.mark.parametrize("case", CASES)
def test_the_rows_of_a_batch_are_independent(case):
    """A batch of N gives each row what N = 1 gives it, and the parameter gradients add up over the rows."""
    params, a = build(case, T=4, N=3, I=3, H=4)
    out, states, cache = forward(case, params, a)
    grads = backward(case, params, cache, a)
    summed = {name: np.zeros_like(value) for name, value in params.items()}
    for n in range(3):
        row = {name: value[:, n:n + 1] if value.ndim == 3 else value[n:n + 1] for name, value in a.items()}
        out_n, states_n, cache_n = forward(case, params, row)
        grads_n = backward(case, params, cache_n, row)
        np.testing.assert_allclose(out_n, out[:, n:n + 1], rtol=1e-13, atol=1e-14)
        for state, state_n in zip(states, states_n, strict=True):
            np.testing.assert_allclose(state_n, state[n:n + 1], rtol=1e-13, atol=1e-14)
        np.testing.assert_allclose(grads_n["x"], grads["x"][:, n:n + 1], rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(grads_n["h0"], grads["h0"][n:n + 1], rtol=1e-12, atol=1e-13)
        for name in params:
            summed[name] += grads_n[name]
    for name in params:
        np.testing.assert_allclose(summed[name], grads[name], rtol=1e-12, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no-bias"])
@pytest.mark.parametrize("case", CASES)
def test_zero_upstream_gives_exactly_zero_gradients_with_the_keys_of_params(case, bias):
    params, a = build(case, T=4, N=2, I=3, H=4, bias=bias)
    for name in ("dout", "dh_n", "dc_n"):
        if name in a:
            a[name] = np.zeros_like(a[name])
    grads = backward(case, params, forward(case, params, a)[2], a)
    assert set(grads) - {"x", "h0", "c0"} == set(params)
    for name, value in grads.items():
        assert not np.any(value), f"{case}: d{name} is not zero for a zero upstream gradient"


@pytest.mark.parametrize("case", CASES)
def test_float32_in_gives_float32_out_close_to_float64(case):
    params64, a64 = build(case, T=5, N=2, I=3, H=4)
    params32, a32 = build(case, T=5, N=2, I=3, H=4, dtype=np.float32)
    out32, states32, cache32 = forward(case, params32, a32)
    out64, states64, cache64 = forward(case, params64, a64)
    grads32, grads64 = backward(case, params32, cache32, a32), backward(case, params64, cache64, a64)
    results32 = {"out": out32, **{f"state {k}": s for k, s in enumerate(states32)}, **grads32}
    results32.update({f"cache.{name}": field for name, field in zip(cache32._fields, cache32, strict=True)
                      if isinstance(field, np.ndarray)})
    for name, value in results32.items():
        assert value.dtype == np.float32, f"{case}: {name} is {value.dtype}"
    for name, value in {"out": out64, **grads64}.items():    # float32 round-off, relative to each tensor's size
        np.testing.assert_allclose(results32[name], value, rtol=0, atol=1e-5 * np.max(np.abs(value)), err_msg=name)


def test_rnn_forward_names_the_valid_nonlinearities():
    params, a = build("rnn-tanh", T=2, N=1, I=2, H=3)
    with pytest.raises(ValueError, match="nonlinearity must be 'tanh' or 'relu'. Got 'sigmoid' instead."):
        rnn.rnn_forward(params, a["x"], a["h0"], nonlinearity="sigmoid")


def test_the_rnn_cache_keeps_its_nonlinearity_and_relu_outputs_are_nonnegative():
    params, a = build("rnn-relu", T=6, N=3, I=3, H=5)
    out, h_n, cache = rnn.rnn_forward(params, a["x"], a["h0"], nonlinearity="relu")
    assert cache.nonlinearity == "relu"
    assert np.all(out >= 0) and np.any(out == 0) and np.any(out > 0)
    np.testing.assert_array_equal(h_n, out[-1])
