r"""A zoo of planted BPTT bugs in a user-style LSTM: the checker must catch each one and blame the right arrays.

The model is the LSTM a student writes by hand: plain functions over a dict of weights, one sequence
(no batch), a dense head and an MSE loss, in float64:

.. math::

    a_t &= W_x x_t + W_h h_{t-1} + b                                   && (L1) \\
    i_t, f_t, o_t &= \sigma(a^{i,f,o}_t), \quad g_t = \tanh(a^g_t)     && (L2) \\
    c_t &= f_t \odot c_{t-1} + i_t \odot g_t                           && (L3) \\
    h_t &= o_t \odot \tanh c_t                                         && (L4) \\
    y_t &= W_y h_t + b_y                                               && (L5) \\
    \ell &= \tfrac{1}{T} \textstyle\sum_t (y_{t,0} - \hat y_t)^2       && (L6)

The head has O = 2 outputs but the loss scores only output 0, so ``Wy[1, :]`` and ``by[1]`` have gradients
that are exactly zero; the correct backward must pass with them included.

Each planted bug is a real formula mistake switched on by a ``bug`` string in :func:`lstm_backward`. Before
trusting the checker with them, :func:`test_the_zoo_itself_against_plain_central_differences` confirms,
with an independent finite-difference helper, that the correct backward is right and that every bug
corrupts exactly the arrays it claims to.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pytest
from numpy.typing import NDArray

import bptt

NAMES = ["Wx", "Wh", "b", "Wy", "by", "x", "h0", "c0"]  # the params' order, which report.failed follows
O = 2  # head outputs; the loss scores output 0 only

# Bugs that corrupt exactly one array's gradient, and the array.
SINGLE_TENSOR_BUGS = {
    "dWx-uses-previous-input": "Wx",       # dWx += da_t x_{t-1}^T: off by one step
    "dWh-uses-current-h": "Wh",            # dWh += da_t h_t^T instead of h_{t-1}^T
    "db-misses-first-step": "b",           # the t = 0 term of sum_t da_t is dropped
    "dWy-uses-previous-h": "Wy",           # dWy += dy_t h_{t-1}^T instead of h_t^T
    "dby-halved": "by",                    # dby = 0.5 sum_t dy_t (a stray 1/2 from d(u^2)/du)
    "dx-uses-next-step-da": "x",           # dx_t = Wx^T da_{t+1}: the wrong step's dz
    "dh0-before-recurrent-product": "h0",  # dh0 = dh_1 instead of Wh^T da_1
    "dc0-not-times-forget-gate": "c0",     # dc0 = dc_1 instead of dc_1 * f_1
}
# Bugs that corrupt many arrays, and the arrays they corrupt. The head's gradients come from y alone
# and stay right in all of them.
MANY_TENSOR_BUGS = {
    "sigmoid-derivative-s": ["Wx", "Wh", "b", "x", "h0", "c0"],           # sigma' = s, not s (1 - s)
    "recurrent-dh-dropped": ["Wx", "Wh", "b", "x", "h0", "c0"],           # dh_t = Wy^T dy_t only
    "tanh-derivative-of-c-not-tanh-c": ["Wx", "Wh", "b", "x", "h0", "c0"],  # 1 - c^2, not 1 - tanh^2 c
}
BUGS = {**{bug: [name] for bug, name in SINGLE_TENSOR_BUGS.items()}, **MANY_TENSOR_BUGS}


class Cache(NamedTuple):
    h: NDArray        # (T+1, H), h[0] = h0
    c: NDArray        # (T+1, H), c[0] = c0
    gates: NDArray    # (T, 4H) activated i, f, g, o
    tanh_c: NDArray   # (T, H)


def sigmoid(a: NDArray) -> NDArray:
    return 1.0 / (1.0 + np.exp(-a))


def lstm_forward(p: dict[str, NDArray]) -> tuple[NDArray, Cache]:
    """Head outputs y (T, O) of the LSTM over one sequence p["x"] (T, I), and the cache."""
    x, Wx, Wh, b = p["x"], p["Wx"], p["Wh"], p["b"]
    T, H = x.shape[0], p["h0"].shape[0]
    h, c = np.empty((T + 1, H)), np.empty((T + 1, H))
    h[0], c[0] = p["h0"], p["c0"]
    gates, tanh_c = np.empty((T, 4 * H)), np.empty((T, H))
    for t in range(T):
        a = Wx @ x[t] + Wh @ h[t] + b                                     # (L1)
        i, f, o = sigmoid(a[:H]), sigmoid(a[H:2 * H]), sigmoid(a[3 * H:])  # (L2)
        g = np.tanh(a[2 * H:3 * H])
        gates[t] = np.concatenate([i, f, g, o])
        c[t + 1] = f * c[t] + i * g                                       # (L3)
        tanh_c[t] = np.tanh(c[t + 1])
        h[t + 1] = o * tanh_c[t]                                          # (L4)
    y = h[1:] @ p["Wy"].T + p["by"]                                       # (L5)
    return y, Cache(h, c, gates, tanh_c)


def mse_first_output(y: NDArray, target: NDArray) -> tuple[float, NDArray]:
    """(L6) MSE of output 0 against target (T,), and dloss/dy (T, O): zero in every other column."""
    err = y[:, 0] - target
    dy = np.zeros_like(y)
    dy[:, 0] = 2.0 * err / len(err)
    return float(np.mean(err**2)), dy


def lstm_backward(p: dict[str, NDArray], cache: Cache, dy: NDArray, bug: str | None = None) -> dict[str, NDArray]:
    """Gradients of the loss for every entry of p, given dy (T, O); ``bug`` plants one mistake."""
    if bug is not None and bug not in BUGS:
        raise ValueError(f"lstm_backward: unknown bug {bug!r}; expected one of {sorted(BUGS)}.")
    x, Wx, Wh = p["x"], p["Wx"], p["Wh"]
    h, c, gates, tanh_c = cache
    T, H = x.shape[0], h.shape[1]
    # (L5) y_t = Wy h_t + by
    dWy = dy.T @ (h[:-1] if bug == "dWy-uses-previous-h" else h[1:])
    dby = dy.sum(axis=0) * (0.5 if bug == "dby-halved" else 1.0)
    dh_head = dy @ p["Wy"]                                                # (T, H)

    grads = {name: np.zeros_like(p[name]) for name in ["Wx", "Wh", "b", "x"]}
    dh_next, dc_next, da_next = np.zeros(H), np.zeros(H), np.zeros(4 * H)
    for t in reversed(range(T)):
        i, f, g, o = np.split(gates[t], 4)
        dh = dh_head[t] if bug == "recurrent-dh-dropped" else dh_head[t] + dh_next
        # (L4) h = o * tanh(c)
        do = dh * tanh_c[t]                                               # dh/do = tanh c
        tanh_grad = 1 - c[t + 1] ** 2 if bug == "tanh-derivative-of-c-not-tanh-c" else 1 - tanh_c[t] ** 2
        dc = dc_next + dh * o * tanh_grad                                 # dh/dc = o (1 - tanh^2 c)
        # (L3) c = f * c_prev + i * g
        di, df, dg = dc * g, dc * c[t], dc * i
        dc_next = dc if (bug == "dc0-not-times-forget-gate" and t == 0) else dc * f
        # (L2) sigma' = s (1 - s), tanh' = 1 - g^2
        sig_grad = (lambda s: s) if bug == "sigmoid-derivative-s" else (lambda s: s * (1 - s))
        da = np.concatenate([di * sig_grad(i), df * sig_grad(f), dg * (1 - g**2), do * sig_grad(o)])
        # (L1) a = Wx x_t + Wh h_prev + b
        grads["Wx"] += np.outer(da, x[t - 1] if bug == "dWx-uses-previous-input" else x[t])
        grads["Wh"] += np.outer(da, h[t + 1] if bug == "dWh-uses-current-h" else h[t])
        if not (bug == "db-misses-first-step" and t == 0):
            grads["b"] += da
        grads["x"][t] = Wx.T @ (da_next if bug == "dx-uses-next-step-da" else da)
        dh_next = dh if (bug == "dh0-before-recurrent-product" and t == 0) else Wh.T @ da
        da_next = da
    grads.update(Wy=dWy, by=dby, h0=dh_next, c0=dc_next)
    return {name: grads[name] for name in NAMES}


def make_problem(seed: int, T: int = 6, I: int = 3, H: int = 4, bug: str | None = None):
    """(f, params, grads, loss) for one random LSTM problem, the grads from the backward with ``bug``."""
    rng = np.random.default_rng(seed)
    params = {
        "Wx": rng.normal(scale=0.5, size=(4 * H, I)),
        "Wh": rng.normal(scale=0.5, size=(4 * H, H)),
        "b": rng.normal(scale=0.5, size=4 * H),
        "Wy": rng.normal(size=(O, H)),
        "by": rng.normal(size=O),
        "x": rng.normal(size=(T, I)),
        "h0": rng.normal(scale=0.5, size=H),
        "c0": rng.normal(size=H),
    }
    target = rng.normal(size=T)

    def f(p: dict[str, NDArray]) -> float:
        return mse_first_output(lstm_forward(p)[0], target)[0]

    y, cache = lstm_forward(params)
    loss, dy = mse_first_output(y, target)
    return f, params, lstm_backward(params, cache, dy, bug=bug), loss


def central_differences(f, params: dict[str, NDArray], eps: float = 1e-6) -> dict[str, NDArray]:
    """The reference gradients, independent of bptt.gradcheck: plain central differences, entry by entry."""
    numeric = {}
    for name, param in params.items():
        numeric[name] = np.empty_like(param)
        for index in np.ndindex(param.shape):
            original = param[index]
            param[index] = original + eps
            plus = f(params)
            param[index] = original - eps
            minus = f(params)
            param[index] = original
            numeric[name][index] = (plus - minus) / (2 * eps)
    return numeric


def test_the_zoo_itself_against_plain_central_differences():
    """The fixture is right before the checker is judged on it: the correct backward agrees with central
    differences, the head's unscored row is exactly zero, and each bug corrupts exactly its arrays."""
    f, params, grads, _ = make_problem(0)
    numeric = central_differences(f, params)
    for name in NAMES:
        np.testing.assert_allclose(grads[name], numeric[name], rtol=1e-6, atol=1e-8, err_msg=name)
    assert np.all(grads["Wy"][1] == 0) and grads["by"][1] == 0
    assert np.all(numeric["Wy"][1] == 0) and numeric["by"][1] == 0
    for bug, corrupted in BUGS.items():
        buggy = make_problem(0, bug=bug)[2]
        wrong = [name for name in NAMES if not np.allclose(buggy[name], numeric[name], rtol=1e-4, atol=1e-6)]
        assert wrong == corrupted, f"{bug}: corrupts {wrong}, the zoo says {corrupted}"


def test_lstm_backward_rejects_an_unknown_bug():
    with pytest.raises(ValueError, match="unknown bug 'typo'"):
        make_problem(0, bug="typo")


# Diagnoses that would explain a failure away (the function is at fault, or the failures are numerical
# artefacts, not a wrong gradient); a planted formula mistake must never earn one.
EXCUSES = {"loss-mismatch", "nondeterministic", "params-mutated", "low-precision", "kink", "step-size"}


@pytest.mark.parametrize(("seed", "T", "I", "H"), [(0, 6, 3, 4), (1, 1, 1, 1), (2, 3, 2, 5), (3, 8, 4, 2)])
def test_the_correct_backward_passes_in_full_mode(seed, T, I, H):
    f, params, grads, loss = make_problem(seed, T, I, H)
    report = bptt.gradcheck(f, params, grads, loss=loss)
    assert report.ok, str(report)
    assert report.failed == []
    assert [row.name for row in report.rows] == NAMES
    assert report.codes == [], str(report)  # no loss-mismatch, nondeterministic, step-size, ... and no warnings
    entries = sum(p.size for p in params.values())
    assert 2 * entries < report.evaluations <= 2 * entries + 4  # two per entry, a few to examine f itself
    # The unscored head row is compared too: its analytic and numeric gradients are both exactly zero.
    assert max(row.max_rel_error for row in report.rows) < 1e-6, str(report)


@pytest.mark.parametrize(("bug", "name"), list(SINGLE_TENSOR_BUGS.items()))
def test_a_single_tensor_bug_is_blamed_on_that_tensor_alone(bug, name):
    f, params, grads, loss = make_problem(10, bug=bug)
    report = bptt.gradcheck(f, params, grads, loss=loss)
    assert not report.ok
    assert report.failed == [name], str(report)
    row = next(row for row in report.rows if row.name == name)
    assert row.failures > 0
    assert row.analytic != pytest.approx(row.numeric, rel=1e-5, abs=1e-7)
    assert name in str(report)
    assert not EXCUSES & set(report.codes), str(report)


@pytest.mark.parametrize(("bug", "names"), list(MANY_TENSOR_BUGS.items()))
def test_a_many_tensor_bug_fails_every_corrupted_tensor(bug, names):
    f, params, grads, loss = make_problem(11, bug=bug)
    report = bptt.gradcheck(f, params, grads, loss=loss)
    assert not report.ok
    assert set(names) <= set(report.failed), str(report)
    assert {"Wy", "by"}.isdisjoint(report.failed), str(report)  # the head's gradients are still right
    assert not EXCUSES & set(report.codes), str(report)


@pytest.mark.parametrize("bug", list(BUGS))
def test_fast_mode_detects_every_bug(bug):
    f, params, grads, loss = make_problem(12, bug=bug)
    report = bptt.gradcheck(f, params, grads, loss=loss, mode="fast", seed=0)
    assert not report.ok, str(report)
    assert set(BUGS[bug]) <= set(report.failed), str(report)
    if bug in SINGLE_TENSOR_BUGS:
        assert report.failed == BUGS[bug], str(report)
    # A failing direction sends its tensor to the entry-by-entry check; a passing one stands in for it.
    for row, param in zip(report.rows, params.values(), strict=True):
        assert row.checked == (param.size if row.name in BUGS[bug] else 0), str(report)


def test_fast_mode_passes_the_correct_backward_with_fewer_evaluations():
    f, params, grads, loss = make_problem(12)
    full = bptt.gradcheck(f, params, grads, loss=loss)
    fast = bptt.gradcheck(f, params, grads, loss=loss, mode="fast", seed=0)
    assert full.ok and fast.ok, str(fast)
    assert fast.evaluations < full.evaluations
    assert fast.evaluations < 10 * len(params), str(fast)  # a few per tensor, not a few per entry


def rows_of(report) -> list[tuple]:
    return [(row.name, row.max_abs_error, row.max_rel_error, tuple(row.worst_index), row.analytic, row.numeric,
             row.failures) for row in report.rows]


def test_sample_mode_is_reproducible_for_a_seed():
    f, params, grads, loss = make_problem(13)
    first = bptt.gradcheck(f, params, grads, loss=loss, mode="sample", samples=5, seed=7)
    again = bptt.gradcheck(f, params, grads, loss=loss, mode="sample", samples=5, seed=7)
    assert first.ok, str(first)
    assert rows_of(first) == rows_of(again)
    assert first.to_dict() == again.to_dict()
    full = bptt.gradcheck(f, params, grads, loss=loss)
    assert first.evaluations == again.evaluations < full.evaluations
    # Two evaluations per checked entry, min(5, size) entries per tensor, on top of what examining f costs.
    assert [row.checked for row in first.rows] == [min(5, p.size) for p in params.values()]
    sampled, entries = sum(min(5, p.size) for p in params.values()), sum(p.size for p in params.values())
    assert first.evaluations - 2 * sampled == full.evaluations - 2 * entries


def test_sample_mode_checks_every_entry_of_a_tensor_smaller_than_samples():
    """dby-halved corrupts by[0] only (by[1] is exactly zero either way); by has 2 < 5 entries, so both are
    checked and the bug cannot be missed."""
    f, params, grads, loss = make_problem(13, bug="dby-halved")
    report = bptt.gradcheck(f, params, grads, loss=loss, mode="sample", samples=5, seed=7)
    assert report.failed == ["by"], str(report)
