"""The checker over bptt's own LSTM, and the checker itself: planted bugs must be caught and named."""

import numpy as np
import pytest

import bptt
from bptt.check.gradcheck import gradcheck


def lstm_problem(seed, T=4, N=2, I=3, H=4, L=2, bias=True):
    """An LSTM loss with random upstream weights on out, h_n and c_n, its params (weights, x, h0, c0),
    the loss value and the analytic gradients."""
    rng = np.random.default_rng(seed)
    lstm = bptt.LSTM(I, H, L, bias=bias, rng=rng)
    inputs = {"x": rng.normal(size=(T, N, I)), "h0": rng.normal(size=(L, N, H)), "c0": rng.normal(size=(L, N, H))}
    w_out, w_h, w_c = rng.normal(size=(T, N, H)), rng.normal(size=(L, N, H)), rng.normal(size=(L, N, H))

    def f(p):
        out, (h_n, c_n) = lstm.forward(p["x"], (p["h0"], p["c0"]))
        return float(np.sum(out * w_out) + np.sum(h_n * w_h) + np.sum(c_n * w_c))

    params = dict(lstm.params, **inputs)
    loss = f(params)
    lstm.zero_grad()
    dx, (dh0, dc0) = lstm.backward(w_out, (w_h, w_c))
    grads = dict(lstm.grads, x=dx, h0=dh0, c0=dc0)
    return f, params, grads, loss


@pytest.mark.parametrize("seed", range(6))
def test_lstm_gradients_pass_in_float64(seed):
    rng = np.random.default_rng(100 + seed)
    T, N, I, H, L = (int(v) for v in rng.integers(1, 5, size=5))
    f, params, grads, loss = lstm_problem(seed, T, N, I, H, min(L, 3), bias=bool(seed % 2))
    report = gradcheck(f, params, grads, loss=loss)
    assert report.ok, str(report)
    assert max(row.max_rel_error for row in report.rows) < 1e-6


def test_params_are_restored_bit_exactly():
    f, params, grads, loss = lstm_problem(0)
    before = {k: v.copy() for k, v in params.items()}
    gradcheck(f, params, grads, loss=loss)
    for name, value in params.items():
        assert np.array_equal(value, before[name]), name


@pytest.mark.parametrize("name", ["weight_ih_l0", "weight_hh_l1", "bias_hh_l0", "x", "h0", "c0"])
def test_a_corrupted_gradient_is_named(name):
    f, params, grads, loss = lstm_problem(1)
    grads = dict(grads)
    bad = grads[name].copy()
    bad.reshape(-1)[1] += 1e-3 * (1 + abs(bad.reshape(-1)[1]))
    grads[name] = bad
    report = gradcheck(f, params, grads, loss=loss)
    assert not report.ok
    assert report.failed == [name]
    row = next(r for r in report.rows if r.name == name)
    assert row.failures == 1
    assert row.worst_index == np.unravel_index(1, bad.shape)
    assert name in str(report) and "FAILED" in str(report)


def test_a_transposed_gradient_is_caught():
    f, params, grads, loss = lstm_problem(2, H=3)
    grads = dict(grads)
    grads["weight_hh_l0"] = grads["weight_hh_l0"][::-1].copy()  # gate rows in the wrong order
    report = gradcheck(f, params, grads, loss=loss)
    assert report.failed == ["weight_hh_l0"]


def stale_state_problem():
    """The classic bug: the loss used by the check starts from the final (h, c) of an earlier pass."""
    rng = np.random.default_rng(3)
    lstm = bptt.LSTM(2, 3, rng=rng)
    x = rng.normal(size=(5, 1, 2))
    lstm.zero_grad()
    out, final_state = lstm.forward(x)  # the analytic pass, from zero states
    loss = float(np.sum(out**2))
    lstm.backward(2 * out)
    return lstm, x, final_state, loss


def test_a_stale_initial_state_is_reported_as_loss_mismatch():
    lstm, x, final_state, loss = stale_state_problem()

    def loss_from_stale_state(p):
        out, _ = lstm.forward(x, final_state)
        return float(np.sum(out**2))

    report = gradcheck(loss_from_stale_state, lstm.params, lstm.grads, loss=loss)
    assert not report.ok
    assert report.codes == ["loss-mismatch"]
    assert "not the function the gradients were computed for" in str(report)
    assert "final (h, c) of an earlier pass" in report.diagnoses[0].message
    assert report.rows == []  # no gradient is blamed


def test_state_carried_from_call_to_call_is_reported_as_nondeterministic():
    lstm, x, final_state, loss = stale_state_problem()
    carried = {"hc": final_state}

    def leaky_loss(p):
        out, carried["hc"] = lstm.forward(x, carried["hc"])
        return float(np.sum(out**2))

    report = gradcheck(leaky_loss, lstm.params, lstm.grads, loss=loss)
    assert not report.ok
    assert report.codes == ["nondeterministic"]
    assert "same h0, c0" in report.diagnoses[0].message
    assert report.rows == []


def test_tiny_and_exactly_zero_gradients_do_not_blow_up_the_relative_error():
    params = {"w": np.array([1e-12, 0.0, 2.0])}

    def f(p):
        return float(1e-12 * p["w"][0] + 0.0 * p["w"][1] + p["w"][2] ** 2)

    report = gradcheck(f, params, {"w": np.array([1e-12, 0.0, 4.0])})
    assert report.ok, str(report)
    assert report.rows[0].max_rel_error < 1e-3


def test_float32_uses_float32_defaults():
    params = {"w": np.array([0.5, -1.5], dtype=np.float32)}

    def f(p):
        return float(np.sum(np.tanh(p["w"])))

    report = gradcheck(f, params, {"w": 1 - np.tanh(params["w"]) ** 2})
    assert report.ok, str(report)
    assert report.eps == pytest.approx(1e-2)


def test_missing_grad_and_shape_mismatch_are_diagnosed_and_the_rest_is_checked():
    params = {"a": np.ones(2), "b": np.ones(3), "c": np.ones(2)}
    report = gradcheck(lambda p: float(sum(v.sum() for v in p.values())), params,
                       {"a": np.ones(2), "c": np.ones(3)})
    assert report.codes == ["missing-grad", "shape-mismatch"]
    assert report.failed == ["b", "c"]
    assert [row.name for row in report.rows] == ["a"] and report.rows[0].ok
    assert "expected (2,), got (3,)" in str(report)


def test_non_float_or_non_array_params_raise():
    with pytest.raises(TypeError, match=r"expected params\['a'\] to be a float32 or float64 ndarray.*got list"):
        gradcheck(lambda p: 0.0, {"a": [1.0]}, {"a": [0.0]})
    with pytest.raises(TypeError, match="got dtype int64"):
        gradcheck(lambda p: 0.0, {"a": np.zeros(2, dtype=np.int64)}, {"a": np.zeros(2)})


def test_non_contiguous_params_are_perturbed_in_place():
    base = np.arange(12.0).reshape(3, 4)
    params = {"a": base[:, 1:3]}  # a strided view into base
    report = gradcheck(lambda p: float(np.sum(p["a"] ** 2)), params, {"a": 2 * params["a"]})
    assert report.ok, str(report)
    assert np.array_equal(base, np.arange(12.0).reshape(3, 4))


def test_evaluations_are_counted():
    params = {"a": np.ones((2, 3)), "b": np.ones(4)}
    report = gradcheck(lambda p: float(p["a"].sum() + p["b"].sum()), params,
                       {"a": np.ones((2, 3)), "b": np.ones(4)}, loss=10.0)
    assert report.ok
    assert report.evaluations == 2 + 2 * (6 + 4)  # two at the point, two per entry


def test_a_planted_bug_in_the_lstm_backward_is_caught(monkeypatch):
    """A wrong local derivative inside lstm_backward (tanh' = 1 - t instead of 1 - t^2 for the candidate
    gate) corrupts the gradients of everything upstream of the candidate, and the check fails."""
    import bptt.layers.lstm

    monkeypatch.setenv("BPTT_KERNELS", "numpy")  # the bug is planted in the NumPy lines, not bptt.layers.kernels
    monkeypatch.setattr(bptt.layers.lstm, "tanh_grad_from_output", lambda t, out=None: np.subtract(1.0, t, out=out))
    f, params, grads, loss = lstm_problem(4, L=1)
    report = gradcheck(f, params, grads, loss=loss)
    assert not report.ok
    assert {"weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0", "x"} <= set(report.failed)


def test_a_non_finite_loss_fails_the_check():
    params = {"w": np.array([0.0, 1.0])}

    def f(p):
        return float(np.sqrt(p["w"][0]) + p["w"][1])  # sqrt of a negative perturbation is NaN

    with np.errstate(invalid="ignore"):
        report = gradcheck(f, params, {"w": np.array([0.0, 1.0])})
    assert report.failed == ["w"]
    assert report.rows[0].worst_index == (0,)
