"""Each diagnosis of the checker provoked by its own minimal function, and the three modes."""

import json

import numpy as np
import pytest

import bptt
from bptt.check.gradcheck import gradcheck


def relu_sum(p):
    return float(np.sum(np.maximum(p["w"], 0.0)))


def test_nondeterministic_f_is_reported_before_any_gradient():
    rng = np.random.default_rng(0)
    params = {"w": np.ones(4)}

    def dropout_loss(p):
        mask = rng.random(4) > 0.5  # a fresh mask on every call
        return float(np.sum(p["w"] * mask))

    report = gradcheck(dropout_loss, params, {"w": np.full(4, 0.5)})
    assert not report.ok
    assert report.codes == ["nondeterministic"]
    assert report.rows == [] and report.failed == []
    assert "randomness" in report.diagnoses[0].message


def test_params_mutated_is_reported_and_the_params_are_restored():
    params = {"w": np.array([1.0, 2.0]), "b": np.array([3.0])}

    def scaling_loss(p):
        p["w"] *= 2.0  # writes into its argument
        return float(p["w"].sum() + p["b"].sum())

    report = gradcheck(scaling_loss, params, {"w": np.full(2, 2.0), "b": np.ones(1)})
    assert not report.ok
    assert report.codes == ["params-mutated"]
    assert report.diagnoses[0].tensors == ("w",)
    np.testing.assert_array_equal(params["w"], [1.0, 2.0])


@pytest.mark.parametrize("where", ["params", "loss"])
def test_low_precision_is_a_warning_that_says_what_to_trust(where):
    dtype = np.float32 if where == "params" else np.float64
    params = {"w": np.array([0.5, -1.5], dtype=dtype)}

    def f(p):
        value = np.sum(np.tanh(p["w"]))
        return np.float32(value) if where == "loss" else value

    report = gradcheck(f, params, {"w": 1 - np.tanh(params["w"].astype(np.float64)) ** 2})
    assert report.codes == ["low-precision"]
    assert report.diagnoses[0].severity == "warning"
    assert "float64" in report.diagnoses[0].message
    assert report.ok, str(report)
    assert report.eps == pytest.approx(1e-2)


def test_float64_has_no_precision_warning():
    params = {"w": np.array([0.5, -1.5])}
    report = gradcheck(lambda p: float(np.sum(np.tanh(p["w"]))), params, {"w": 1 - np.tanh(params["w"]) ** 2})
    assert report.ok and report.codes == []


def test_step_size_too_large_is_truncation_and_names_an_eps_that_works():
    params = {"w": np.array([0.1, 0.2, 0.3])}
    grads = {"w": 10 * np.exp(10 * params["w"])}
    report = gradcheck(lambda p: float(np.sum(np.exp(10 * p["w"]))), params, grads, eps=1e-2)
    assert report.ok, str(report)
    assert report.codes == ["step-size"]
    message = report.diagnoses[0].message
    assert "truncation" in message and "eps=0.0001" in message


def test_step_size_too_small_is_rounding():
    params = {"w": np.array([0.1, 0.2, 0.3])}
    grads = {"w": np.cos(params["w"])}
    report = gradcheck(lambda p: float(np.sum(np.sin(p["w"])) + 1e3), params, grads, eps=1e-13)
    assert report.ok, str(report)
    assert report.codes == ["step-size"]
    assert "rounding" in report.diagnoses[0].message


def test_a_wrong_gradient_is_not_rescued_by_any_step_size():
    params = {"w": np.array([0.1, 0.2, 0.3])}
    grads = {"w": np.cos(params["w"]) * 1.01}
    report = gradcheck(lambda p: float(np.sum(np.sin(p["w"]))), params, grads)
    assert report.failed == ["w"] and "step-size" not in report.codes


def test_kink_is_reported_as_kink_not_as_a_wrong_gradient():
    params = {"w": np.array([-1.0, 0.0, 2.0])}
    report = gradcheck(relu_sum, params, {"w": (params["w"] > 0).astype(float)})
    assert report.ok, str(report)
    assert report.codes == ["kink"]
    assert "(1,)" in report.diagnoses[0].message


def test_kink_does_not_hide_a_wrong_gradient_elsewhere():
    params = {"w": np.array([-1.0, 0.0, 2.0])}
    report = gradcheck(relu_sum, params, {"w": np.array([0.0, 0.0, 0.5])})
    assert report.failed == ["w"]
    assert report.rows[0].worst_index == (2,) and report.rows[0].failures == 1
    assert "kink" in report.codes


def lstm_case(seed=0, bug=None):
    """A bptt LSTM loss over weights, input and states; ``bug`` adds a wrong term to one gradient."""
    rng = np.random.default_rng(seed)
    lstm = bptt.LSTM(2, 3, 2, rng=rng)
    x, h0, c0 = rng.normal(size=(4, 2, 2)), rng.normal(size=(2, 2, 3)), rng.normal(size=(2, 2, 3))
    weights = rng.normal(size=(4, 2, 3))

    def f(p):
        out, _ = lstm.forward(p["x"], (p["h0"], p["c0"]))
        return float(np.sum(out * weights))

    params = dict(lstm.params, x=x, h0=h0, c0=c0)
    loss = f(params)
    dx, (dh0, dc0) = lstm.backward(weights)
    grads = dict(lstm.grads, x=dx, h0=dh0, c0=dc0)
    if bug:
        grads[bug] = grads[bug] * 1.05
    return f, params, grads, loss


def test_fast_mode_uses_two_evaluations_per_passing_tensor():
    f, params, grads, loss = lstm_case()
    report = gradcheck(f, params, grads, loss=loss, mode="fast", seed=0)
    assert report.ok, str(report)
    assert report.evaluations == 2 + 2 * len(params)
    assert all(row.checked == 0 for row in report.rows)
    assert "(direction)" in str(report)


def test_fast_mode_localises_a_failing_tensor():
    f, params, grads, loss = lstm_case(bug="weight_hh_l1")
    report = gradcheck(f, params, grads, loss=loss, mode="fast", seed=1)
    assert report.failed == ["weight_hh_l1"]
    row = next(r for r in report.rows if r.name == "weight_hh_l1")
    assert row.checked == params["weight_hh_l1"].size and row.failures > 0


def test_sample_mode_checks_samples_entries_per_tensor_reproducibly():
    f, params, grads, loss = lstm_case()
    first = gradcheck(f, params, grads, loss=loss, mode="sample", samples=3, seed=5)
    again = gradcheck(f, params, grads, loss=loss, mode="sample", samples=3, seed=5)
    other = gradcheck(f, params, grads, loss=loss, mode="sample", samples=3, seed=6)
    assert first.ok and first.rows == again.rows and first.rows != other.rows
    assert all(row.checked == min(3, params[row.name].size) for row in first.rows)
    assert first.evaluations == 2 + 2 * sum(min(3, p.size) for p in params.values())


def test_sample_mode_finds_a_wholesale_bug():
    f, params, grads, loss = lstm_case(bug="c0")
    assert gradcheck(f, params, grads, loss=loss, mode="sample", samples=2, seed=0).failed == ["c0"]


def test_report_text_puts_diagnoses_first_and_to_dict_is_json():
    params = {"w": np.array([-1.0, 0.0, 2.0])}
    report = gradcheck(relu_sum, params, {"w": np.array([0.0, 0.0, 0.5])})
    lines = str(report).splitlines()
    assert lines[0].startswith("gradcheck: FAILED")
    assert lines[1].startswith("  warning [kink]")
    data = json.loads(json.dumps(report.to_dict()))
    assert data["ok"] is False and data["failed"] == ["w"]
    assert data["diagnoses"][0]["code"] == "kink"
    assert data["rows"][0]["worst_index"] == [2]


@pytest.mark.parametrize("kwargs, error, message", [
    ({"mode": "slow"}, ValueError, "expected mode to be one of full, sample, fast, got 'slow'"),
    ({"mode": "sample", "samples": 0}, ValueError, "expected samples to be an int >= 1, got 0"),
    ({"eps": -1.0}, ValueError, "expected eps, atol and rtol > 0"),
])
def test_bad_options_raise(kwargs, error, message):
    with pytest.raises(error, match=message):
        gradcheck(lambda p: 0.0, {"w": np.zeros(2)}, {"w": np.zeros(2)}, **kwargs)


def test_f_returning_an_array_raises():
    with pytest.raises(TypeError, match=r"expected f to return a scalar loss, got an array of shape \(2,\)"):
        gradcheck(lambda p: p["w"] * 2, {"w": np.zeros(2)}, {"w": np.zeros(2)})


def test_rounding_noise_at_a_tiny_step_is_not_taken_for_a_kink():
    """At eps=1e-12 the one-sided slopes are noise that jumps apart; a 5% wrong gradient must still fail."""
    w = np.array([0.7])
    report = gradcheck(lambda p: float(np.sum(np.sin(p["w"])) + 1e3), {"w": w.copy()},
                       {"w": 1.05 * np.cos(w)}, eps=1e-12)
    assert report.failed == ["w"] and "kink" not in report.codes


def test_float32_smooth_function_at_a_small_step_has_no_kinks():
    w = np.array([0.3, -0.8, 1.1], dtype=np.float32)
    report = gradcheck(lambda p: float(np.sum(np.tanh(p["w"]))), {"w": w.copy()},
                       {"w": 1.05 * (1 - np.tanh(w.astype(np.float64)) ** 2)}, eps=1e-6)
    assert report.failed == ["w"] and "kink" not in report.codes


@pytest.mark.parametrize("value, dtype", [(1e11, np.float64), (1e6, np.float32)])
def test_a_step_below_the_spacing_of_the_param_fails_cleanly(value, dtype):
    """p + eps rounds back to p: no division by zero; a larger eps of the sweep works (step-size)."""
    report = gradcheck(lambda p: float(np.sum(p["w"])), {"w": np.array([value], dtype=dtype)}, {"w": np.ones(1)})
    assert report.ok, str(report)
    assert "step-size" in report.codes


def test_float32_loss_from_float64_params_is_compared_at_float32_precision():
    w = np.array([0.2, -0.4])
    report = gradcheck(lambda p: np.float32(np.sum(np.tanh(p["w"]))), {"w": w.copy()},
                       {"w": 1 - np.tanh(w) ** 2}, loss=float(np.sum(np.tanh(w))))
    assert "loss-mismatch" not in report.codes
    assert report.ok, str(report)
