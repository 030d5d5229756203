"""``bptt predict``: a forecaster trained by ``bptt train csv`` applied to a new CSV file of the same columns.

:class:`Forecaster` rebuilds the model and what the checkpoint stores beside it (input columns, target, time
column, window, horizon, season, gap filling, the training part's scaling,
:mod:`bptt.train.tasks.csv_forecast`); :meth:`Forecaster.forecast_file` forecasts every row that a whole window
of the file's changes precedes by the horizon, including the ``horizon`` rows after the file's end, exactly as
the run did: the baseline (persistence, or seasonal-naive) plus the model's correction. pandas is imported
when a file is read.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from bptt.interop.io import load_arrays
from bptt.interop.serialization import load
from bptt.layers.inference import inference_mode
from bptt.layers.module import Module
from bptt.train.tasks.autoregression import Autoregression
from bptt.train.tasks.csv_forecast import (
    REPRESENTATION,
    Scaling,
    first_window_end,
    input_changes,
    last_step_forecasts,
    windows,
)
from bptt.train.tasks.series_file import import_pandas, read_series_file


def _following_times(time, count: int):
    """``count`` time values after the last of ``time`` (a pandas Series of numbers or datetimes) when it is
    evenly spaced (dates: a frequency pandas recognises, such as quarter ends), else missing values."""
    pd = import_pandas()
    if pd.api.types.is_datetime64_any_dtype(time):
        frequency = pd.DatetimeIndex(time, freq="infer").freq if len(time) >= 3 else None
        if frequency is None:
            return pd.Series([pd.NaT] * count, dtype=time.dtype)
        return pd.Series(pd.date_range(time.iloc[-1], periods=count + 1, freq=frequency)[1:]).astype(time.dtype)
    steps = np.diff(time.to_numpy(dtype=np.float64))
    if len(steps) == 0 or not np.allclose(steps, steps[0], rtol=1e-9, atol=0):
        return pd.Series([np.nan] * count)
    return pd.Series(time.iloc[-1] + steps[0] * np.arange(1, count + 1))


class _FileWindows(NamedTuple):
    """A CSV file read for a forecaster: the model's windows and what the forecasts are written beside."""

    x: NDArray              # (window, forecasts, features)
    rows: NDArray           # the 0-based row each forecast is for
    baseline: NDArray       # the baseline's value for each
    target: NDArray         # the file's target, NaN past its end
    time: object            # the time column (pandas), or None


@dataclass(frozen=True)
class Forecaster:
    """A model of ``bptt train csv`` and its data settings, read from its checkpoint by :meth:`load`."""

    model: Module
    columns: tuple[str, ...]
    target: str
    time_column: str | None
    window: int
    horizon: int
    season: int | None
    lag: int
    fill: str | None
    scaling: Scaling
    linear: Autoregression

    @classmethod
    def load(cls, path: str | os.PathLike) -> Forecaster:
        """The forecaster saved at ``path`` (``model.safetensors`` of a csv run); ValueError when the file is
        not one."""
        model = load(path)
        metadata = load_arrays(path)[1]
        settings = metadata.get("forecast")
        if metadata.get("task") != "csv" or not isinstance(settings, dict):
            raise ValueError(f"expected a checkpoint of bptt train csv (with its columns and scaling), got one of "
                             f"task {metadata.get('task')!r} in {os.fspath(path)!r}.")
        if settings.get("representation") != REPRESENTATION:
            raise ValueError(f"expected a forecaster that corrects a baseline, got one that forecasts levels in "
                             f"{os.fspath(path)!r}: it was trained by an earlier bptt. Train it again with bptt train "
                             "csv.")
        season, window, scaling = settings["season"], int(settings["window"]), Scaling.from_metadata(settings)
        return cls(model, tuple(settings["columns"]), settings["target"], settings["time_column"], window,
                   int(settings["horizon"]), None if season is None else int(season), int(settings["lag"]),
                   settings["fill"], scaling, Autoregression.from_metadata(settings, window, len(scaling.input_scale)))

    def _check_header(self, path: str) -> None:
        """Refuse a file that lacks a column the model reads, naming it and the file's unknown columns."""
        pd = import_pandas()
        if not os.path.isfile(path):
            raise ValueError(f"expected a CSV file at {path!r}, found none.")
        header = list(pd.read_csv(path, nrows=0).columns)
        needed = [*dict.fromkeys([*self.columns, self.target]), *([self.time_column] if self.time_column else [])]
        missing = [name for name in needed if name not in header]
        if missing:
            unknown = [name for name in header if name not in needed]
            renamed = (f"; it has {', '.join(map(repr, unknown))}, which the model does not know: renamed?"
                       if unknown else "")
            raise ValueError(f"expected the columns the model was trained on ({', '.join(map(repr, needed))}), but "
                             f"{path!r} lacks {', '.join(map(repr, missing))}{renamed}")

    def forecast_file(self, path: str | os.PathLike, *, fill: str | None = None):
        """A pandas DataFrame with a row per forecast: ``row`` (the row forecast, from 1; rows past the file's
        end continue the count), the time column (extended past the end when evenly spaced),
        ``<target>_forecast``, and ``<target>``, the actual value where the file has it. The target column must
        be filled up to the rows the forecasts start from (the baseline reads it); it may be empty after them.
        ``fill``: how to fill gaps (default: as in training)."""
        pd = import_pandas()
        read = self._read(path, fill)
        table = {"row": read.rows + 1}
        if read.time is not None:
            time = pd.concat([read.time, _following_times(read.time, self.horizon)], ignore_index=True)
            table[self.time_column] = time.iloc[read.rows].to_numpy()
        with inference_mode():                                  # no backward pass follows: no cache kept
            table[f"{self.target}_forecast"] = last_step_forecasts(self.model, read.x, self.scaling, read.baseline,
                                                                   self.linear)
        table[self.target] = read.target[read.rows]
        return pd.DataFrame(table)

    def model_inputs(self, path: str | os.PathLike, *, fill: str | None = None) -> NDArray:
        """The windows the model reads from the CSV file at ``path``, ``(window, forecasts, features)``: one
        column a forecast, as :meth:`forecast_file` feeds them (``bptt gradflow CHECKPOINT --data FILE``)."""
        return self._read(path, fill).x

    def _read(self, path: str | os.PathLike, fill: str | None) -> _FileWindows:
        """The file's windows and what :meth:`forecast_file` writes beside the forecasts, checked."""
        path = os.fspath(path)
        self._check_header(path)
        data = read_series_file(path, columns=self.columns, target=self.target, target_required=False,
                                time_column=self.time_column, fill=fill or self.fill)
        n = data.rows
        first = max(first_window_end(self.window, self.season), self.lag - self.horizon)  # the first origin
        if n <= first:
            raise ValueError(f"expected more than {first} rows in {path!r} (a window of {self.window} changes"
                             f"{f' and a season of {self.season} rows' if self.season else ''}), got {n}.")
        target = np.full(n + self.horizon, np.nan)
        if data.target is not None:
            target[:n] = data.target
        ends = np.arange(first, n)
        rows = ends + self.horizon
        baseline = target[rows - self.lag]
        if np.isnan(baseline).any():
            row = rows[np.isnan(baseline)][0] - self.lag + 1
            raise ValueError(f"expected the target column {self.target!r} of {path!r} filled where the forecasts "
                             f"read it, got an empty cell at row {row}.")
        moves = input_changes(data.values, target[:n], self.season)
        x = windows(self.scaling.inputs(moves), ends, self.window).astype(self.model.dtype)
        return _FileWindows(x, rows, baseline, target, data.time)
