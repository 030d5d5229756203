"""The exponential-smoothing peer of ``bptt train csv`` (bptt.train.tasks.ets): its forecasts against statsmodels'
own per-origin forecasts, its choice of variant by AIC, its fallbacks and its refusals."""

from __future__ import annotations

import functools
import warnings

import numpy as np
import pytest

from bptt.train.tasks.ets import ets_forecasts

pytest.importorskip("statsmodels")

from statsmodels.tools.sm_exceptions import ConvergenceWarning  # noqa: E402
from statsmodels.tsa.exponential_smoothing.ets import ETSModel  # noqa: E402

N, FIT_END, SEASON = 110, 80, 4
DAMPED = {"trend": "add", "damped_trend": True}
SEASONAL = {"seasonal": "add", "seasonal_periods": SEASON}
KWARGS = {"ETS(A,N,N)": {}, "ETS(A,Ad,N)": DAMPED, f"ETS(A,N,A) season {SEASON}": SEASONAL,
          f"ETS(A,Ad,A) season {SEASON}": {**DAMPED, **SEASONAL}}


def drifting(seed: int, n: int = N) -> np.ndarray:
    """A random walk with a strong drift (1 a row against steps of sd 0.3) and noise (sd 1): a trend, no season."""
    rng = np.random.default_rng(seed)
    return 10 + 1.0 * np.arange(n) + np.cumsum(rng.normal(0, 0.3, n)) + rng.normal(0, 1, n)


def cycle(seed: int, n: int = N) -> np.ndarray:
    """A slow random walk (steps of sd 0.3) plus a cycle of ``SEASON`` rows (amplitude 4) and noise (sd 0.5)."""
    rng = np.random.default_rng(seed)
    phase = 2 * np.pi * np.arange(n) / SEASON + 0.3
    return 20 + 4 * np.sin(phase) + np.cumsum(rng.normal(0, 0.3, n)) + rng.normal(0, 0.5, n)


def seasonal(seed: int, n: int = N) -> np.ndarray:
    """The ``cycle`` with a drift of 0.5 a row: a trend and a season."""
    return cycle(seed, n) + 0.5 * np.arange(n)


SERIES = {"drifting": (drifting, None), "cycle": (cycle, SEASON), "seasonal": (seasonal, SEASON)}


@functools.cache
def forecast(kind: str, horizon: int):
    """``ets_forecasts`` on the series ``kind`` (seed 0), the test rows ``FIT_END..N-1``; computed once."""
    make, season = SERIES[kind]
    series = make(0)
    return series, ets_forecasts(series, FIT_END, np.arange(FIT_END, N), horizon, season)


@functools.cache
def refit(kind: str, spec: str):
    """statsmodels' own fit of ``spec`` on the fitting rows of ``kind``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ETSModel(SERIES[kind][0](0)[:FIT_END], **KWARGS[spec]).fit(disp=False)


@pytest.mark.parametrize(("kind", "horizon"), [("drifting", 1), ("drifting", 3), ("seasonal", 1), ("seasonal", 3),
                                               ("cycle", 3)])
def test_forecasts_equal_statsmodels_from_each_origin(kind, horizon):
    series, result = forecast(kind, horizon)
    fitted = refit(kind, result.spec)
    assert result.aic == fitted.aic
    assert result.params == {k: v for k, v in zip(fitted.param_names, fitted.params, strict=True)
                             if not k.startswith("initial_")}
    assert result.forecasts.shape == (N - FIT_END,) and result.forecasts.dtype == np.float64
    for row in (FIT_END, FIT_END + 17, N - 1):
        origin = row - horizon
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = ETSModel(series[:origin + 1], **KWARGS[result.spec]).smooth(fitted.params).forecast(horizon)
        np.testing.assert_allclose(result.forecasts[row - FIT_END], expected[-1], rtol=1e-9, atol=0)


@pytest.mark.parametrize("kind", ["seasonal", "cycle"])
def test_h_step_forecast_is_the_closed_form_from_the_origin_state(kind):
    r"""Three rows ahead with season 4: :math:`\hat y_{o+3} = l_o + (\phi + \phi^2 + \phi^3) b_o + s_{o-1}`
    from the state after the origin :math:`o` (no trend term without one), not a one-step value."""
    series, result = forecast(kind, 3)
    fitted = refit(kind, result.spec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = ETSModel(series, **KWARGS[result.spec]).smooth(fitted.params)
    origins = np.arange(FIT_END, N) - 3
    expected = run.level[origins] + run.season[origins - 1]
    if "Ad" in result.spec:
        phi = fitted.params[fitted.param_names.index("damping_trend")]
        expected += (phi + phi**2 + phi**3) * run.slope[origins]
    np.testing.assert_allclose(result.forecasts, expected, rtol=1e-9)
    assert np.abs(result.forecasts - run.fittedvalues[origins + 3]).max() > 0.1     # three steps differ from one


@pytest.mark.parametrize("kind", ["drifting", "seasonal"])
def test_spec_is_the_lowest_aic_of_the_candidates(kind):
    _, result = forecast(kind, 1)
    specs = [s for s in KWARGS if kind == "seasonal" or "season" not in s]
    aics = {spec: refit(kind, spec).aic for spec in specs}
    assert result.spec == min(aics, key=aics.get)
    assert result.aic == min(aics.values())
    # The evidence is overwhelming, not seed luck: the kept family beats the others by far more than the
    # AIC's penalty of 2 a parameter.
    if kind == "seasonal":
        assert result.spec == "ETS(A,Ad,A) season 4"
        assert result.aic < min(aics["ETS(A,N,N)"], aics["ETS(A,Ad,N)"]) - 100
        assert result.aic < aics["ETS(A,N,A) season 4"] - 15
    else:
        assert result.spec == "ETS(A,Ad,N)"
        assert result.aic < aics["ETS(A,N,N)"] - 20


def test_too_short_for_the_season_falls_back_to_plain_variants():
    series = seasonal(1, 40)
    result = ets_forecasts(series, 20, np.arange(20, 40), 2, season=12)
    assert result.spec.startswith(("ETS(A,N,N) ", "ETS(A,Ad,N) "))
    assert "no seasonal variant fits" in result.spec and "24 fitting rows, got 20" in result.spec
    assert np.isfinite(result.forecasts).all()


def test_a_season_of_one_row_is_no_season():
    result = ets_forecasts(drifting(5, 40), 30, np.arange(30, 40), 1, season=1)
    assert result.spec.endswith("(no seasonal variant fits: ETS(A,N,A) season 1: a season of 1 row is no season; "
                                "ETS(A,Ad,A) season 1: a season of 1 row is no season)")


def test_a_candidate_that_does_not_converge_is_left_out(monkeypatch):
    original = ETSModel.fit

    def fit(self, *args, **kwargs):
        if self.has_seasonal:
            warnings.warn("Maximum Likelihood optimization failed to converge.", ConvergenceWarning, stacklevel=2)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(ETSModel, "fit", fit)
    result = ets_forecasts(seasonal(2, 60), 40, np.arange(40, 60), 1, season=SEASON)
    assert "ETS(A,N,A) season 4: its likelihood maximisation did not converge" in result.spec
    assert "season 4" not in result.spec.split(" (")[0]


def test_nothing_fits_names_every_reason(monkeypatch):
    def fit(self, *args, **kwargs):
        raise ValueError("planted failure")

    monkeypatch.setattr(ETSModel, "fit", fit)
    with pytest.raises(ValueError, match=r"ets_forecasts: expected at least one ETS variant to fit the 30 fitting "
                                         r"rows, got none: ETS\(A,N,A\) season 4: statsmodels failed \(planted"):
        ets_forecasts(seasonal(3, 40), 30, np.arange(30, 40), 1, season=SEASON)


def test_no_warning_escapes_a_tiny_noisy_fit():
    rng = np.random.default_rng(4)
    series = rng.standard_t(1.5, 16) * 100                          # heavy tails, ten fitting rows
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = ets_forecasts(series, 10, np.arange(10, 16), 1, season=5)
    assert np.isfinite(result.forecasts).all() and np.isfinite(result.aic)


@pytest.mark.parametrize(("args", "message"), [
    ((np.arange(9.0), 9, np.array([9 - 1]), 1), r"expected fit_end between 10 .* and the 9 rows of the series, "
                                                 r"got 9\."),
    ((np.arange(50.0), 60, np.array([55]), 1), r"expected fit_end between 10 .* and the 50 rows .*, got 60\."),
    ((np.arange(50.0), 20, np.array([2, 30]), 3), r"expected rows between the horizon \(3\) and the last row "
                                                  r"\(49\), so that each has an origin row - 3 >= 0 .*, got 2\."),
    ((np.arange(50.0), 20, np.array([30, 50]), 1), r"got 50\."),
    ((np.array([1.0, np.nan] * 10), 10, np.array([15]), 1), r"expected finite values in series"),
    ((np.ones((20, 1)), 10, np.array([15]), 1), r"expected series of shape \(\*,\), got \(20, 1\)"),
    ((np.arange(50.0), 20, np.array([[30]]), 1), r"expected rows of shape \(\*,\)"),
])
def test_bad_input_is_refused(args, message):
    with pytest.raises(ValueError, match=message):
        ets_forecasts(*args)


def test_rows_must_be_integers():
    with pytest.raises(TypeError, match=r"expected rows to be an integer array, got dtype float64"):
        ets_forecasts(np.arange(50.0), 20, np.array([30.0]), 1)
