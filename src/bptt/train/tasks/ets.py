r"""Exponential smoothing (ETS), the classical peer that ``bptt train csv`` reports beside persistence and
seasonal-naive: statsmodels' state-space :class:`~statsmodels.tsa.exponential_smoothing.ets.ETSModel`, never a
version of our own.

**Candidates.** Additive errors, with no trend or an additive damped trend, and with ``season`` :math:`S` also
an additive season of :math:`S` rows: ETS(A,N,N), ETS(A,Ad,N), ETS(A,N,A) and ETS(A,Ad,A). Each is fitted by
maximum likelihood, its initial states :math:`l_{-1}, b_{-1}, s_{-1} \ldots s_{-S}` estimated with its smoothing
parameters (statsmodels' default ``initialization_method="estimated"``), on the first ``fit_end`` rows alone (the
rows before the test split), and the one with the lowest AIC there is kept. A candidate that cannot be fitted
(a seasonal one needs two full seasons of rows, any one more rows than its parameters; an optimisation that does
not converge) is left out; when no seasonal one fits, the non-seasonal ones compete and the spec says why.

**Forecasts.** With the kept variant's fitted parameters held fixed, nothing refitted, the model runs over the
whole series (:meth:`ETSModel.smooth`), giving the state :math:`x_o = (l_o, b_o, s_o \ldots s_{o-S+1})` after
each row :math:`o`. Row :math:`r` is forecast from the origin :math:`o = r - H` (``horizon`` :math:`H`) with
statsmodels' own forecast, the model simulated :math:`H` steps from :math:`x_o` with zero errors
(:meth:`ETSResults.simulate` anchored at :math:`o`); for these additive variants that is

.. math::

    \hat y_{o+H \mid o} = l_o + (\phi + \phi^2 + \dots + \phi^H)\, b_o + s_{o + H - kS}, \qquad
    k = \lceil H / S \rceil,

which uses ``series[:o+1]`` alone: for :math:`H = 1` the one-step fitted value, for :math:`H > 1` the genuine
:math:`H`-step forecast. It equals ``ETSModel(series[:o+1], ...).smooth(params).forecast(H)[-1]``.

**Cost.** The fits dominate (about 2 s for each seasonal candidate on 4,000 rows with :math:`S = 12`); each
forecast is one ``simulate`` call, which rebuilds statsmodels' lagged-state matrix, :math:`O(nS)`: about 0.5 ms a
row on 5,000 rows.

statsmodels is optional (the ``tasks`` and ``data`` extras); its warnings are silenced inside
:func:`ets_forecasts`, a ``ConvergenceWarning`` leaving its candidate out.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from bptt._validation import as_float_array, as_real_array, check_positive_int, check_shape

#: The fewest fitting rows: statsmodels' heuristic for the initial states wants 10.
MIN_FIT_ROWS = 10


@dataclass(frozen=True)
class EtsForecast:
    """The kept ETS variant and its forecasts.

    ``forecasts (len(rows),)`` float64: the ``horizon``-step-ahead forecast of each row; ``spec``: the variant in
    words, e.g. ``"ETS(A,Ad,A) season 12"``; ``aic``: its AIC on the fitting rows; ``params``: its fitted
    smoothing parameters by statsmodels' names (``smoothing_level``, ``smoothing_trend``, ``smoothing_seasonal``,
    ``damping_trend``; the estimated initial states are left out).
    """

    forecasts: NDArray
    spec: str
    aic: float
    params: dict[str, float]


@dataclass(frozen=True)
class _Candidate:
    spec: str                 # "ETS(A,Ad,A) season 12"
    kwargs: dict[str, Any]    # ETSModel's arguments beyond the series


def _candidates(season: int | None) -> tuple[list[_Candidate], list[_Candidate]]:
    """The non-seasonal candidates and, with ``season``, the seasonal ones."""
    trends = [("N", {}), ("Ad", {"trend": "add", "damped_trend": True})]
    plain = [_Candidate(f"ETS(A,{t},N)", {"error": "add", **kw}) for t, kw in trends]
    if season is None:
        return plain, []
    seasonal = [_Candidate(f"ETS(A,{t},A) season {season}",
                           {"error": "add", **kw, "seasonal": "add", "seasonal_periods": season})
                for t, kw in trends]
    return plain, seasonal


def _fit(model_class: type, fit_rows: NDArray, candidate: _Candidate) -> tuple[Any | None, str]:
    """Fit ``candidate`` on ``fit_rows``: ``(results, "")``, or ``(None, why)`` when it cannot be fitted."""
    from statsmodels.tools.sm_exceptions import ConvergenceWarning

    n = fit_rows.shape[0]
    season = candidate.kwargs.get("seasonal_periods")
    if season is not None and season < 2:
        return None, f"a season of {season} row is no season"
    if season is not None and n < 2 * season:
        return None, f"it needs two full seasons, {2 * season} fitting rows, got {n}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warnings.simplefilter("error", ConvergenceWarning)      # raised here, caught below: the candidate is out
        try:
            model = model_class(fit_rows, **candidate.kwargs)
            if n < model.k_params + 2:
                return None, f"it needs more fitting rows than its {model.k_params + 1} parameters, got {n}"
            results = model.fit(disp=False)
        except ConvergenceWarning:
            return None, "its likelihood maximisation did not converge"
        except (ValueError, np.linalg.LinAlgError, FloatingPointError, ZeroDivisionError) as error:
            return None, f"statsmodels failed ({error})"
    retvals = results.mle_retvals or {}
    if not retvals.get("converged", True):
        return None, "its likelihood maximisation did not converge"
    if not np.isfinite(results.aic):
        return None, f"its AIC is {results.aic}"
    return results, ""


def ets_forecasts(series: NDArray, fit_end: int, rows: NDArray, horizon: int,
                  season: int | None = None) -> EtsForecast:
    r"""Fit the ETS variants on the first ``fit_end`` rows, keep the lowest AIC, and forecast ``rows``.

    Parameters
    ----------
    series : ndarray, shape (n,)
        The target column in file order, finite.
    fit_end : int
        The number of leading rows the variants are fitted on (the rows before the test split), at least 10.
    rows : ndarray of int, shape (R,)
        Row indices (from 0) to forecast, each from the origin ``row - horizon`` (>= 0) with ``series[:row -
        horizon + 1]`` alone; ``row < n``.
    horizon : int
        :math:`H`, how many rows ahead each forecast looks.
    season : int or None
        :math:`S`, the season in rows: adds the additive-season candidates.

    Returns
    -------
    EtsForecast
        The forecasts ``(R,)`` float64, the kept variant, its AIC on the fitting rows and its smoothing
        parameters.

    Raises
    ------
    ImportError
        When statsmodels is not installed.
    ValueError
        On bad input, or when no variant can be fitted (the message gives each one's reason).
    """
    where = "ets_forecasts"
    series = as_float_array(where, "series", series, np.float64, copy=False)
    check_shape(where, "series", series, (None,), "The target column, one value a row.")
    n = series.shape[0]
    fit_end = check_positive_int(where, "fit_end", fit_end)
    if not MIN_FIT_ROWS <= fit_end <= n:
        raise ValueError(f"{where}: expected fit_end between {MIN_FIT_ROWS} (the fewest rows ETS is fitted on) "
                         f"and the {n} rows of the series, got {fit_end}.")
    horizon = check_positive_int(where, "horizon", horizon)
    if season is not None:
        season = check_positive_int(where, "season", season)
    rows = as_real_array(where, "rows", rows)
    if rows.dtype.kind not in "iu":
        raise TypeError(f"{where}: expected rows to be an integer array, got dtype {rows.dtype}.")
    check_shape(where, "rows", rows, (None,))
    rows = rows.astype(np.int64)
    if rows.size and (rows.min() - horizon < 0 or rows.max() >= n):
        bad = rows[(rows - horizon < 0) | (rows >= n)][0]
        raise ValueError(f"{where}: expected rows between the horizon ({horizon}) and the last row ({n - 1}), "
                         f"so that each has an origin row - {horizon} >= 0 in the series, got {bad}.")
    try:
        from statsmodels.tsa.exponential_smoothing.ets import ETSModel
    except ImportError as error:
        raise ImportError(f"{where}: the ETS baseline needs statsmodels: pip install 'bptt[tasks]'") from error

    plain, seasonal = _candidates(season)
    fitted: list[tuple[_Candidate, Any]] = []
    reasons: list[str] = []
    for candidate in seasonal + plain:
        results, why = _fit(ETSModel, series[:fit_end], candidate)
        if results is None:
            reasons.append(f"{candidate.spec}: {why}")
        else:
            fitted.append((candidate, results))
    if not fitted:
        raise ValueError(f"{where}: expected at least one ETS variant to fit the {fit_end} fitting rows, got none: "
                         + "; ".join(reasons) + ".")
    candidate, results = min(fitted, key=lambda pair: pair[1].aic)
    spec = candidate.spec
    if seasonal and not any(c in seasonal for c, _ in fitted):
        spec += " (no seasonal variant fits: " + "; ".join(reasons[:len(seasonal)]) + ")"

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = ETSModel(series, **candidate.kwargs).smooth(results.params)
        forecasts = np.empty(rows.shape[0])
        zeros = np.zeros((horizon, 1))
        for i, row in enumerate(rows):                 # anchor o: the simulation starts from the state after row o
            path = run.simulate(horizon, anchor=int(row) - horizon, random_errors=zeros)
            forecasts[i] = np.asarray(path)[-1]
    params = {name: float(value) for name, value in zip(results.param_names, results.params, strict=True)
              if not name.startswith("initial_")}
    return EtsForecast(forecasts=forecasts, spec=spec, aic=float(results.aic), params=params)

