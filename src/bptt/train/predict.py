"""``bptt predict``: a forecaster trained by ``bptt train csv`` applied to a new CSV file of the same columns.

:class:`Forecaster` rebuilds the model and what the checkpoint stores beside it (input columns, target, time
column, window, horizon, gap filling, the training part's scaling, :mod:`bptt.train.tasks.csv_forecast`);
:meth:`Forecaster.forecast_file` forecasts every row that a whole window of the file precedes by the horizon,
including the ``horizon`` rows after the file's end. pandas is imported when a file is read.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from bptt.interop.io import load_arrays
from bptt.interop.serialization import load
from bptt.layers.module import Module
from bptt.train.tasks.csv_forecast import Scaling, last_step_forecasts, windows
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


@dataclass(frozen=True)
class Forecaster:
    """A model of ``bptt train csv`` and its data settings, read from its checkpoint by :meth:`load`."""

    model: Module
    columns: tuple[str, ...]
    target: str
    time_column: str | None
    window: int
    horizon: int
    fill: str | None
    scaling: Scaling

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
        return cls(model, tuple(settings["columns"]), settings["target"], settings["time_column"],
                   int(settings["window"]), int(settings["horizon"]), settings["fill"],
                   Scaling.from_metadata(settings))

    def _check_header(self, path: str) -> None:
        """Refuse a file that lacks a column the model reads, naming it and the file's unknown columns."""
        pd = import_pandas()
        if not os.path.isfile(path):
            raise ValueError(f"expected a CSV file at {path!r}, found none.")
        header = list(pd.read_csv(path, nrows=0).columns)
        needed = [*self.columns, *([self.time_column] if self.time_column else [])]
        missing = [name for name in needed if name not in header]
        if missing:
            unknown = [name for name in header if name not in needed and name != self.target]
            renamed = (f"; it has {', '.join(map(repr, unknown))}, which the model does not know: renamed?"
                       if unknown else "")
            raise ValueError(f"expected the columns the model was trained on ({', '.join(map(repr, needed))}), but "
                             f"{path!r} lacks {', '.join(map(repr, missing))}{renamed}")

    def forecast_file(self, path: str | os.PathLike, *, fill: str | None = None):
        """A pandas DataFrame with a row per forecast: ``row`` (the row forecast, from 1; rows past the file's
        end continue the count), the time column (extended past the end when evenly spaced),
        ``<target>_forecast``, and ``<target>``, the actual value where the file has it. ``fill``: how to fill
        gaps (default: as in training)."""
        pd = import_pandas()
        path = os.fspath(path)
        self._check_header(path)
        data = read_series_file(path, columns=self.columns, target=self.target, target_required=False,
                                time_column=self.time_column, fill=fill or self.fill)
        n = data.rows
        if n < self.window:
            raise ValueError(f"expected at least a window of {self.window} rows in {path!r}, got {n}.")
        ends = np.arange(self.window - 1, n)
        x = windows(self.scaling.inputs(data.values), ends, self.window).astype(self.model.dtype)
        rows = ends + self.horizon
        table = {"row": rows + 1}
        if data.time is not None:
            time = pd.concat([data.time, _following_times(data.time, self.horizon)], ignore_index=True)
            table[self.time_column] = time.iloc[rows].to_numpy()
        table[f"{self.target}_forecast"] = last_step_forecasts(self.model, x, self.scaling)
        actual = np.full(len(rows), np.nan)
        if data.target is not None:
            inside = rows < n
            actual[inside] = data.target[rows[inside]]
        table[self.target] = actual
        return pd.DataFrame(table)
