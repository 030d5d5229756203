r"""Forecasting a column of the user's own CSV file, ``horizon`` rows ahead, from windows of ``window`` rows.

The file is read and checked by :func:`~bptt.train.tasks.series_file.read_series_file` (pandas). With
:math:`W` the window and :math:`H` the horizon, the model reads the input columns' changes over rows
:math:`t-W+1 \ldots t` and, at every step :math:`s` of the window, forecasts the target at row :math:`s+H`.

**A model that has learned nothing is the baseline.** The network never forecasts the target's level. It
forecasts the *correction* to a baseline that needs no training:

.. math::

    \hat u_{s+H} = b_{s+H} + \sigma_e\, \bigl(a(\text{window}) + f(\text{window})\bigr), \qquad b_r = u_{r-\ell},

where :math:`b` is persistence (:math:`\ell = H`: the last value the window shows) or, with ``season``
:math:`S`, the seasonal-naive forecast (:math:`\ell = S \lceil H / S \rceil`: the same season, last observed),
:math:`f` is the network's output, :math:`a` the linear stage and :math:`\sigma_e` the root mean square of
the baseline's error :math:`e_r = u_r - b_r` over the training targets. The network's head starts at zero, so
the untrained model *is* the baseline (plus the linear stage, where one was kept), and
:func:`bptt.train.fit.fit` keeps it unless training beats it on the validation split
(:attr:`CsvTask.untrained_is_baseline`), and only by more than a standard error of the paired difference
(the one-standard-error rule: :func:`bptt.train.fit.beats_baseline`); a loss of 1 is the baseline's, below 1
beats it.

**The linear stage** :math:`a` (``linear``, on by default; :mod:`~bptt.train.tasks.autoregression`) is a
ridge regression of the baseline's scaled error on the same window, fitted in closed form before training,
as LSTNet's autoregressive component: it is kept only when it beats the baseline on the validation split by
two standard errors, and the network learns what it leaves. On the forecasting panel it took the median
test RMSE of US real GDP from 78.8 to 70.4 (ETS: 78.3), of CO2 from 0.347 to 0.327 and of El Niño from 0.519
to 0.498; on CPI, where the network alone did better (1.776), the stage's 1.933 was kept.

**Inputs are free of the level.** Each input column enters as its change from the row before,
:math:`\Delta u_t = u_t - u_{t-1}`, standardised with the mean and standard deviation of the changes over the
training part. A series that trends out of the range it was trained on (prices, indices, GDP) therefore
shows the network the same kind of numbers as in training. :class:`Scaling` keeps the statistics, and the
checkpoint stores them for ``bptt predict``.

**Splits** are contiguous and in time order. Row :math:`r` is a *target* when a whole window of changes ends
at :math:`r - H` (so :math:`r \ge W + H`, or :math:`S + W - 1 + H` with ``season`` :math:`S`, whose input
reaches a season back) and its baseline exists (:math:`r \ge \ell`); the last 15% of the
targets form the test split, the 15% before them the validation split (``test_fraction``,
``validation_fraction``), and every row before the first validation target is the *training part*.

- **Training batches** are random windows lying wholly, targets included, inside the training part; every
  step whose baseline exists is scored (the MSE of :math:`e / \sigma_e`).
- **Validation and test sets** hold one window per target of the split, ending :math:`H` rows before it; only
  its last step (the forecast made with a full window of context) is scored: the other targets are NaN.

:meth:`CsvTask.metrics` reports, in the target's own units, the MAE and RMSE of the model on the test targets
beside those of persistence (:math:`\hat u_r = u_{r-H}`), with ``season`` of the seasonal-naive forecast, and
of statsmodels' exponential smoothing (:func:`~bptt.train.tasks.ets.ets_forecasts`: the ETS variant of lowest
AIC fitted on the rows before the test split); and the skill :math:`1 - \mathrm{MSE} /
\mathrm{MSE}_\mathrm{persistence}`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple

import numpy as np
from numpy.typing import NDArray

from bptt._validation import check_dtype, check_positive_int, check_shape
from bptt.layers.models import SequenceRegressor
from bptt.train.tasks._common import check_split, masked_mse, scored_targets
from bptt.train.tasks.autoregression import Autoregression, choose_autoregression, out_of_fold
from bptt.train.tasks.series_file import FILLS, SeriesFile, read_series_file

REPRESENTATION = "change"
"""How a checkpoint's forecaster reads and writes the series (stored in its metadata): input changes in, the
correction to the baseline out. Checkpoints of the earlier level forecaster lack it and are refused."""


def baseline_lag(horizon: int, season: int | None) -> int:
    """How many rows back the baseline looks: the horizon (persistence), or with ``season`` the whole seasons
    that cover it (seasonal-naive)."""
    return horizon if season is None else season * math.ceil(horizon / season)


def changes(values: NDArray, lag: int = 1) -> NDArray:
    """Changes of ``values (n, C)`` over ``lag`` rows: row ``t`` holds ``values[t] - values[t - lag]``, the first
    ``lag`` rows NaN."""
    values = np.asarray(values, dtype=np.float64)
    return np.concatenate([np.full((lag, values.shape[1]), np.nan), values[lag:] - values[:-lag]])


def input_changes(values: NDArray, target: NDArray, season: int | None) -> NDArray:
    """What the network reads at each row, before scaling: the change of every input column ``values (n, C)``
    from the row before and, with ``season`` :math:`S`, the target's change over the last season,
    :math:`u_t - u_{t-S}` (``(n, C + 1)``); NaN where a row has no row that far back."""
    moves = changes(values)
    if season is None:
        return moves
    return np.concatenate([moves, changes(np.asarray(target, dtype=np.float64)[:, None], season)], axis=1)


def baseline_errors(target: NDArray, lag: int) -> NDArray:
    """``e_r = u_r - u_{r - lag}`` for every row of ``target (n,)``; NaN for the first ``lag`` rows."""
    return changes(np.asarray(target)[:, None], lag)[:, 0]


def first_window_end(window: int, season: int | None) -> int:
    """The first row (from 0) a whole window of changes ends at: every change of the window reaches back one
    row, or with ``season`` a season (:func:`input_changes`)."""
    return (1 if season is None else season) + window - 1


class Scaling(NamedTuple):
    """The training part's statistics: ``input_offset``/``input_scale`` ``(C,)``, the mean and standard deviation
    of each change the network reads (:func:`input_changes`); ``target_scale``, the root mean square of the
    baseline's errors over the training targets (the unit of the network's output)."""

    input_offset: NDArray
    input_scale: NDArray
    target_scale: float

    @classmethod
    def fit(cls, moves: NDArray, errors: NDArray) -> Scaling:
        """From the training part's input changes ``(n, C)`` and baseline errors ``(n,)`` (NaN where a row has
        none). A statistic that is zero (a column that moves by the same amount every row, a baseline that is
        exact in training) scales by 1 instead."""
        offset, scale = np.nanmean(moves, axis=0), np.nanstd(moves, axis=0)
        target_scale = float(np.sqrt(np.nanmean(errors ** 2)))
        return cls(offset, np.where(scale > 0, scale, 1.0), target_scale if target_scale > 0 else 1.0)

    def inputs(self, moves: NDArray) -> NDArray:
        """The input changes ``(n, C)`` (:func:`input_changes`) standardised."""
        return (moves - self.input_offset) / self.input_scale

    def correction(self, z: NDArray) -> NDArray:
        """The network's output in the target's own units: what it adds to the baseline."""
        return z * self.target_scale

    def to_metadata(self) -> dict[str, Any]:
        return {"input_offset": self.input_offset.tolist(), "input_scale": self.input_scale.tolist(),
                "target_scale": self.target_scale}

    @classmethod
    def from_metadata(cls, metadata: dict[str, Any]) -> Scaling:
        return cls(np.asarray(metadata["input_offset"], dtype=np.float64),
                   np.asarray(metadata["input_scale"], dtype=np.float64), float(metadata["target_scale"]))


def windows(z: NDArray, ends: NDArray, window: int) -> NDArray:
    """The windows of ``window`` rows of ``z (n, C)`` that end at the rows ``ends (M,)``: ``(window, M, C)``."""
    return z[ends[None, :] + np.arange(1 - window, 1)[:, None]]


def last_step_forecasts(model, x: NDArray, scaling: Scaling, baseline: NDArray, linear: Autoregression,
                        chunk: int = 4096) -> NDArray:
    """The forecasts made at the last step of each window of ``x (W, M, C)``, in the target's units ``(M,)``: the
    ``baseline (M,)`` plus the corrections of the ``linear`` stage and of the model; ``chunk`` windows at a
    time."""
    parts = [model(x[:, k:k + chunk])[-1, :, 0] for k in range(0, x.shape[1], chunk)]
    return baseline + scaling.correction(linear(x) + np.concatenate(parts).astype(np.float64))


def zero_head(model: SequenceRegressor) -> SequenceRegressor:
    """``model`` with its dense head's weights and bias set to zero, so that its output is zero (in place)."""
    for value in model.head.params.values():
        value[...] = 0
    return model


def _defaults() -> dict[str, object]:
    # Chosen on the twelve series of benchmarks/forecast_panel.py (3 seeds each; docs/forecasting.md), not on
    # one: with patience 25 (evaluations every 20 steps) the median test RMSE is <= persistence on 12 of 12 and
    # ahead of ETS on 6 (7 with the linear stage); patience 10 stopped 2 of 3 seeds of the 55-quarter
    # danish-money series after a noisy first gain (11 of 12, 5 ahead of ETS). Not kept: 16 units (4 ahead of
    # ETS), lr 3e-4 (5), 2,000 steps (5), all measured without the linear stage.
    return {"hidden_size": 32, "num_layers": 1, "steps": 1000, "batch_size": 32, "lr": 1e-3, "eval_every": 20,
            "patience": 25}


@dataclass(frozen=True)
class CsvTask:
    """Forecasts of the ``target`` column of the CSV ``file``, ``horizon`` rows ahead, from windows of ``window``
    rows of the input ``columns`` (comma-separated; default: every numeric column but ``time_column``).

    Shapes: ``x (window, N, C)`` the input columns' standardised changes; ``y (window, N, 1)`` the baseline's
    error ``horizon`` rows after each step over its training RMS, less the linear stage's forecast of it
    (:attr:`residuals`), NaN where a step is not scored. ``fill`` (``"ffill"`` or ``"interpolate"``) fills gaps,
    which are refused without it; ``season`` makes the baseline seasonal-naive instead of persistence;
    ``linear=False`` leaves out the linear stage.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "series.csv"
    >>> _ = path.write_text("t,u\\n" + "".join(f"{k},{np.sin(k / 3):.4f}\\n" for k in range(100)))
    >>> task = CsvTask(str(path), target="u", time_column="t", window=10)
    >>> task.name, task.input_size, task.output_size, task.columns_used
    ('csv', 1, 1, ('u',))
    >>> [len(task.split_range(split)) for split in ("train", "validation", "test")]
    [63, 13, 13]
    """

    file: str | None = None
    target: str | None = None
    columns: str | None = None
    time_column: str | None = None
    window: int = 24
    horizon: int = 1
    season: int | None = None
    fill: str | None = None
    linear: bool = True
    validation_fraction: float = 0.15
    test_fraction: float = 0.15
    name: str = field(default="csv", init=False)
    output_size: int = field(default=1, init=False)
    defaults: dict[str, object] = field(default_factory=_defaults, compare=False, repr=False)
    goals: ClassVar[dict] = {"skill": (">=", 0.0)}
    """Never worse than persistence on the test split: a run that kept the baseline (skill 0) meets it."""
    untrained_is_baseline: ClassVar[bool] = True
    """The model :meth:`build_model` returns forecasts the baseline until it is trained: :func:`~bptt.train.fit.fit`
    scores it before the first step and keeps it unless training does better on the validation split, by more
    than a standard error (:func:`~bptt.train.fit.beats_baseline`)."""
    data: SeriesFile = field(init=False, compare=False, repr=False)
    standardised: tuple[NDArray, NDArray] = field(init=False, compare=False, repr=False)
    """The inputs' standardised changes ``(n, C)`` and the baseline's errors over their scale ``(n,)``, float64,
    made once (NaN where a row has no change or no baseline)."""
    autoregression: Autoregression = field(init=False, compare=False, repr=False)
    """The linear stage (:mod:`~bptt.train.tasks.autoregression`), fitted on the training targets and kept when
    it beats the baseline on the validation split; zero when it does not, or without ``linear``."""
    residuals: NDArray = field(init=False, compare=False, repr=False)
    """What the network learns, ``(n,)``: the baseline's scaled errors less the linear stage's forecast of them,
    out of fold on the training targets (:func:`~bptt.train.tasks.autoregression.out_of_fold`); NaN where a row
    has no baseline, or with a kept stage no whole window before it."""
    scaling: Scaling = field(init=False, compare=False, repr=False)
    lag: int = field(init=False, compare=False, repr=False)
    """How many rows back the baseline looks: the horizon (persistence) or whole seasons (seasonal-naive)."""
    _peers: dict = field(default_factory=dict, init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.file is None or self.target is None:
            raise ValueError(f"CsvTask: expected a file and a target column (bptt train csv --file F --target "
                             f"COL), got file={self.file!r} and target={self.target!r}.")
        for name in ("window", "horizon") + (("season",) if self.season is not None else ()):
            check_positive_int("CsvTask", name, getattr(self, name))
        if self.fill is not None and self.fill not in FILLS:
            raise ValueError(f"CsvTask: expected fill to be one of {', '.join(FILLS)}, got {self.fill!r}.")
        for name in ("validation_fraction", "test_fraction"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and 0 < value < 1):
                raise ValueError(f"CsvTask: expected 0 < {name} < 1, got {value!r}.")
        columns = None if self.columns is None else [name.strip() for name in self.columns.split(",")]
        data = read_series_file(self.file, columns=columns, target=self.target, time_column=self.time_column,
                                fill=self.fill)
        object.__setattr__(self, "data", data)
        train_end = self._bounds()[0]
        self._check_variation(train_end)
        object.__setattr__(self, "lag", self._choose_baseline(train_end))
        errors, moves = baseline_errors(data.target, self.lag), input_changes(data.values, data.target, self.season)
        object.__setattr__(self, "scaling", Scaling.fit(moves[:train_end], errors[:train_end]))
        z, scaled = self.scaling.inputs(moves), errors / self.scaling.target_scale
        object.__setattr__(self, "standardised", (z, scaled))
        stage = self._fit_autoregression(z, scaled) if self.linear else Autoregression.none(self.window,
                                                                                            self.input_size)
        object.__setattr__(self, "autoregression", stage)
        linear = np.zeros(data.rows)
        if stage.penalty is not None:
            rows = np.arange(self.first_target, data.rows)
            linear[:self.first_target] = np.nan
            linear[rows] = stage(windows(z, rows - self.horizon, self.window))
            train = np.arange(self.split_range("train").start, self.split_range("train").stop)
            linear[train] = out_of_fold(windows(z, train - self.horizon, self.window), scaled[train], stage.penalty)
        object.__setattr__(self, "residuals", scaled - linear)

    def _fit_autoregression(self, z: NDArray, scaled: NDArray) -> Autoregression:
        """The linear stage: ridge fits on the training targets, the penalty and whether to keep it chosen on
        the validation targets (:func:`~bptt.train.tasks.autoregression.choose_autoregression`)."""
        def targets(split: str) -> tuple[NDArray, NDArray]:
            rows = np.arange(self.split_range(split).start, self.split_range(split).stop)
            return windows(z, rows - self.horizon, self.window), scaled[rows]
        return choose_autoregression(targets("train"), targets("validation"))

    # ----- the data ------------------------------------------------------------------------------------

    @property
    def input_size(self) -> int:
        """One change per input column, and with ``season`` the target's change over the season."""
        return len(self.data.columns) + (self.season is not None)

    @property
    def columns_used(self) -> tuple[str, ...]:
        """The input columns, in file order (``columns`` as given, or every numeric one)."""
        return self.data.columns

    @property
    def baseline(self) -> str:
        """The forecast the model corrects: ``"persistence"`` or ``"seasonal-naive"`` (:attr:`lag`)."""
        return "persistence" if self.lag == self.horizon else "seasonal-naive"

    def _choose_baseline(self, train_end: int) -> int:
        """The lag of the baseline: persistence's, or with ``season`` the one of persistence and seasonal-naive
        whose error over the training targets is smaller (a quarterly series with a weak season and a strong
        trend is forecast better by its last value than by last year's)."""
        seasonal = baseline_lag(self.horizon, self.season)
        if seasonal == self.horizon:
            return seasonal
        rows = slice(self.first_target, train_end)
        mse = {lag: np.mean(baseline_errors(self.data.target, lag)[rows] ** 2) for lag in (seasonal, self.horizon)}
        return min(mse, key=mse.get)

    @property
    def first_window_end(self) -> int:
        """The first row (from 0) a whole window of changes ends at (:func:`first_window_end`)."""
        return first_window_end(self.window, self.season)

    @property
    def first_target(self) -> int:
        """The first row (from 0) with a whole window of changes ``horizon`` rows before it and a baseline."""
        return max(self.first_window_end + self.horizon, baseline_lag(self.horizon, self.season))

    def _bounds(self) -> tuple[int, int, int]:
        """``(first validation target, first test target, rows)``: the training part is the rows before the
        first."""
        n, first_target = self.data.rows, self.first_target
        where, season = f"{self.file!r}", f", the season {self.season}" if self.season is not None else ""
        if n <= first_target:
            needs = (f"window + horizon = {self.window} + {self.horizon} = {first_target} rows (a window of changes "
                     "needs the row before it)" if self.season is None else
                     f"{first_target} rows (a window of {self.window} changes, the first reaching a season of "
                     f"{self.season} rows back, then the horizon {self.horizon})")
            raise ValueError(f"{where}: expected more than {needs}, got {n}. Use a shorter --window, --horizon or "
                             "--season, or a longer file.")
        targets = n - first_target
        n_test, n_validation = round(targets * self.test_fraction), round(targets * self.validation_fraction)
        train_end = n - n_test - n_validation
        if min(n_test, n_validation) < 1 or train_end <= first_target:
            raise ValueError(f"{where}: expected rows for a window of {self.window}, the horizon {self.horizon}"
                             f"{season} and at least one training, validation and test target, got {n} rows: "
                             f"{max(train_end - first_target, 0)} training, {n_validation} validation and {n_test} "
                             "test targets. Use a shorter --window, --horizon or --season, or a longer file.")
        return train_end, n - n_test, n

    def _check_variation(self, train_end: int) -> None:
        """Refuse a column that is constant over the training part: it carries nothing to learn from."""
        named = [*zip(self.data.columns, self.data.values.T, strict=True), (self.target, self.data.target)]
        for name, values in named:
            if np.ptp(values[:train_end]) == 0:
                raise ValueError(f"column {name!r} of {self.file!r} is constant ({values[0]:g}) over the "
                                 f"{train_end} rows of the training part (rows 1-{train_end}): it carries nothing "
                                 "to learn from and cannot be standardised. Leave it out with --columns.")

    def split_range(self, split: str) -> range:
        """The row indices (from 0) of the targets of ``"train"``, ``"validation"`` or ``"test"``."""
        train_end, test_start, n = self._bounds()
        if split == "train":
            return range(self.first_target, train_end)
        check_split("CsvTask.split_range", split)
        return range(train_end, test_start) if split == "validation" else range(test_start, n)

    def batch(self, rng: np.random.Generator, size: int, dtype: object = np.float64) -> tuple[NDArray, NDArray]:
        """``size`` random windows of the training part and the scaled baseline errors ``horizon`` rows after
        each step (NaN where a row has no baseline)."""
        size = check_positive_int("CsvTask.batch", "size", size)
        dtype = check_dtype("CsvTask.batch", dtype)
        z, residuals = self.standardised[0], self.residuals
        train_end = self._bounds()[0]
        ends = rng.integers(self.first_window_end, train_end - self.horizon, size=size)  # + horizon < train_end
        x = windows(z, ends, self.window)
        y = windows(residuals[:, None], ends + self.horizon, self.window)
        return x.astype(dtype), y.astype(dtype)

    def held_out(self, split: str, rng: np.random.Generator | None = None,
                 dtype: object = np.float64) -> tuple[NDArray, NDArray]:
        """One window per target of the ``"validation"`` or ``"test"`` split, in time order along ``N``; only the
        last step is scored. ``rng`` is unused (the split is fixed)."""
        check_split("CsvTask.held_out", split)
        dtype = check_dtype("CsvTask.held_out", dtype)
        z = self.standardised[0]
        rows = np.arange(self.split_range(split).start, self.split_range(split).stop)
        y = np.full((self.window, len(rows), 1), np.nan, dtype=dtype)
        y[-1, :, 0] = self.residuals[rows]
        return windows(z, rows - self.horizon, self.window).astype(dtype), y

    # ----- the model -----------------------------------------------------------------------------------

    def build_model(self, hidden_size: int, num_layers: int = 1, *, cell: str = "lstm", dtype: object = np.float64,
                    rng: object = None) -> SequenceRegressor:
        """A :class:`SequenceRegressor` whose head starts at zero: untrained, it forecasts the baseline."""
        return zero_head(SequenceRegressor(self.input_size, hidden_size, 1, num_layers, cell=cell, dtype=dtype,
                                           rng=rng))

    # ----- scoring -------------------------------------------------------------------------------------

    def loss(self, pred: NDArray, target: NDArray) -> tuple[float, NDArray]:
        """MSE over the scored (not NaN) targets, in units of the baseline's training RMS error (1 is the
        baseline's); zero gradient elsewhere."""
        return masked_mse("CsvTask.loss", pred, target)

    def loss_terms(self, pred: NDArray, target: NDArray) -> NDArray:
        """The squared error of each scored (not NaN) target, flat: what :meth:`loss` averages."""
        pred, target, scored = scored_targets("CsvTask.loss_terms", pred, target)
        return (pred[scored] - target[scored]) ** 2

    def ets(self) -> Any:
        """statsmodels' ETS forecasts of the test targets (:func:`~bptt.train.tasks.ets.ets_forecasts`), fitted
        on the rows before the test split; made once."""
        if "ets" not in self._peers:
            from bptt.train.tasks.ets import ets_forecasts

            test = self.split_range("test")
            self._peers["ets"] = ets_forecasts(self.data.target, test.start, np.arange(test.start, test.stop),
                                               self.horizon, self.season)
        return self._peers["ets"]

    def forecast(self, model, data: tuple[NDArray, NDArray]) -> dict[str, NDArray]:
        """The test targets' rows (from 0), their values, and the forecasts of the model, of its linear stage
        alone, of persistence, (with ``season``) of the seasonal-naive method and of ETS, in the target's
        units."""
        rows = np.arange(self.split_range("test").start, self.split_range("test").stop)
        x = np.asarray(data[0])
        check_shape("CsvTask.forecast", "x", x, (self.window, len(rows), self.input_size),
                    "The test split's windows, CsvTask.held_out('test').")
        target = self.data.target
        result = {"row": rows, "actual": target[rows],
                  "model": last_step_forecasts(model, x, self.scaling, target[rows - self.lag], self.autoregression),
                  "linear": target[rows - self.lag] + self.scaling.correction(self.autoregression(x)),
                  "persistence": target[rows - self.horizon]}
        if self.season is not None:
            result["seasonal"] = target[rows - baseline_lag(self.horizon, self.season)]
        result["ets"] = self.ets().forecasts
        return result

    def metrics(self, model, data: tuple[NDArray, NDArray]) -> dict[str, float]:
        """On the test split, in the target's units: ``test_mae`` and ``test_rmse`` (the model),
        ``linear_mae`` and ``linear_rmse`` (the linear stage alone, without the network),
        ``baseline_mae`` and ``baseline_rmse`` (persistence), ``seasonal_mae`` and ``seasonal_rmse`` with
        ``season``, ``ets_mae`` and ``ets_rmse``; ``skill = 1 - MSE / MSE_persistence`` (-inf where persistence
        is exact and the model is not); and ``ets_spec``, the ETS variant chosen."""
        forecasts = self.forecast(model, data)
        out: dict[str, Any] = {}
        for name, prefix in (("model", "test"), ("linear", "linear"), ("persistence", "baseline"),
                             ("seasonal", "seasonal"), ("ets", "ets")):
            if name in forecasts:
                error = forecasts[name] - forecasts["actual"]
                out[f"{prefix}_mae"] = float(np.mean(np.abs(error)))
                out[f"{prefix}_rmse"] = float(np.sqrt(np.mean(error ** 2)))
        mse, baseline_mse = out["test_rmse"] ** 2, out["baseline_rmse"] ** 2
        out["skill"] = 1.0 - mse / baseline_mse if baseline_mse > 0 else (0.0 if mse == 0 else -math.inf)
        out["ets_spec"] = self.ets().spec
        return out

    def time_of(self, rows: NDArray) -> NDArray:
        """The time values of ``rows`` (from 0), or their row numbers (from 1) without a time column."""
        return rows + 1 if self.data.time is None else self.data.time.to_numpy()[rows]

    def summary(self) -> str:
        """The data as the run uses it, in a line or two: columns, rows of each split, what was left out."""
        ranges = {split: self.split_range(split) for split in ("train", "validation", "test")}
        spans = ", ".join(f"{split} targets rows {r.start + 1}-{r.stop}" for split, r in ranges.items())
        left_out = f"\nleft out (not numeric): {'; '.join(self.data.left_out)}" if self.data.left_out else ""
        baseline = self.baseline + ("" if self.season is None else f" (season {self.season})")
        penalty = self.autoregression.penalty
        stage = ("" if not self.linear else f" and a linear stage (ridge, penalty {penalty:g})" if penalty is not None
                 else " (the linear stage did not beat it on the validation split)")
        seasonal = "" if self.season is None else f"; {self.target} over the season"
        return (f"csv {self.file} | {self.data.rows} rows | inputs {', '.join(self.columns_used)} "
                f"(changes{seasonal}) | target {self.target}, {self.horizon} row{'s' if self.horizon > 1 else ''} "
                f"ahead of a {self.window}-row window, as a correction to {baseline}{stage} | {spans}{left_out}")

    def checkpoint_metadata(self) -> dict[str, object]:
        """What ``bptt predict`` needs to apply the model to a new file: the columns, window, horizon, season,
        gap filling and the training part's scaling."""
        return {"forecast": {"representation": REPRESENTATION, "columns": list(self.columns_used),
                             "target": self.target, "time_column": self.time_column, "window": self.window,
                             "horizon": self.horizon, "season": self.season, "lag": self.lag, "fill": self.fill,
                             **self.scaling.to_metadata(), **self.autoregression.to_metadata()}}
