"""A user's time series from a CSV file, read with pandas and checked cell by cell before a model sees it.

:func:`read_series_file` returns the chosen numeric columns as a float64 array, the target column and the
time column, or raises ValueError naming the file, the column and the row of the first problem: a missing
file or column, a cell that is not a number, a gap (an empty or NaN cell, refused unless ``fill`` is
``"ffill"`` or ``"interpolate"``), a time value that repeats or goes back.

Rows are numbered as a spreadsheet shows the data: row 1 is the first line after the header (a blank line
is a row of gaps, so that row k is always line k + 1 of the file).

pandas is an optional dependency (``pip install 'bptt[data]'``), imported when a file is read.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

FILLS = ("ffill", "interpolate")
"""How gaps may be filled: carry the last value forward, or interpolate linearly between the neighbours."""

MISSING_PANDAS = "reading a CSV file needs pandas: pip install 'bptt[data]'"


@dataclass(frozen=True)
class SeriesFile:
    """The columns read from one CSV file, rows in file order.

    ``values (n, C)`` the input columns ``columns``, float64, gaps filled; ``target (n,)`` the target column
    (None when the file lacks an optional target); ``time`` the parsed time column (a pandas Series of numbers
    or datetimes), or None without one; ``left_out`` the file's non-numeric columns left out of the default
    choice, each with the reason.
    """

    path: str
    columns: tuple[str, ...]
    values: NDArray
    target_name: str | None
    target: NDArray | None
    time_column: str | None
    time: object
    left_out: tuple[str, ...] = ()

    @property
    def rows(self) -> int:
        return len(self.values)


def import_pandas():
    try:
        import pandas
    except ImportError as error:
        raise ImportError(MISSING_PANDAS) from error
    return pandas


def _read_strings(path: str):
    """Every cell of the file as a string, empty and NaN-like cells (``""``, ``NA``, ``NaN``...) as missing."""
    pd = import_pandas()
    if not Path(path).is_file():
        raise ValueError(f"expected a CSV file at {path!r}, found none.")
    try:
        frame = pd.read_csv(path, dtype=str, skipinitialspace=True, skip_blank_lines=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise ValueError(f"expected a CSV file with a header line at {path!r}, could not read it: {error}") from error
    if frame.empty:
        raise ValueError(f"expected rows of data below the header of {path!r}, got none.")
    return frame


def _numbers(frame, name: str, path: str) -> tuple[NDArray, str | None]:
    """The column as float64 (gaps NaN), and why it is not numeric: None, or the first cell that is no number."""
    pd = import_pandas()
    text = frame[name]
    values = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64)
    bad = np.flatnonzero((np.isnan(values) & text.notna().to_numpy()) | np.isinf(values))
    if len(bad):
        return values, (f"column {name!r} of {path!r} holds {text.iloc[bad[0]]!r} at row {bad[0] + 1}, which is "
                        f"not a finite number ({len(bad)} such cell{'s' if len(bad) > 1 else ''})")
    return values, None


def _rows(indices: NDArray) -> str:
    """Row numbers for a message: ``"12"``, ``"12, 13 and 40"``, or the first five and a count."""
    shown = [str(k + 1) for k in indices[:5]]
    if len(indices) > 5:
        return f"{', '.join(shown)} and {len(indices) - 5} more"
    return shown[0] if len(shown) == 1 else f"{', '.join(shown[:-1])} and {shown[-1]}"


def _fill_gaps(values: NDArray, name: str, path: str, fill: str | None) -> NDArray:
    """The column with its gaps filled by ``fill``, or ValueError naming the rows of the gaps it cannot fill."""
    pd = import_pandas()
    gaps = np.flatnonzero(np.isnan(values))
    if not len(gaps):
        return values
    if fill is None:
        raise ValueError(f"column {name!r} of {path!r} has {len(gaps)} empty or NaN cell"
                         f"{'s' if len(gaps) > 1 else ''}, at row{'s' if len(gaps) > 1 else ''} {_rows(gaps)}. "
                         "Fill them in the file, or pass --fill ffill (carry the last value forward) or --fill "
                         "interpolate (linear between the neighbours).")
    series = pd.Series(values)
    filled = (series.ffill() if fill == "ffill" else series.interpolate(limit_area="inside")).to_numpy()
    left = np.flatnonzero(np.isnan(filled))
    if len(left):
        where = "before the column's first value" if left[0] == 0 else "after the column's last value"
        raise ValueError(f"column {name!r} of {path!r} has gaps at row{'s' if len(left) > 1 else ''} "
                         f"{_rows(left)}, {where}, which --fill {fill} cannot fill. Remove those rows from the "
                         "file or fill them in.")
    return filled


def _time_values(frame, name: str, path: str):
    """The time column parsed as numbers or, failing that, datetimes; ValueError at its first gap, unreadable
    value, repeat or step back."""
    pd = import_pandas()
    text = frame[name]
    gaps = np.flatnonzero(text.isna().to_numpy())
    if len(gaps):
        raise ValueError(f"time column {name!r} of {path!r} is empty at row{'s' if len(gaps) > 1 else ''} "
                         f"{_rows(gaps)}; every row needs its time value.")
    time = pd.to_numeric(text, errors="coerce")
    if time.isna().any():
        time = pd.to_datetime(text, errors="coerce", format="mixed")
        bad = np.flatnonzero(time.isna().to_numpy())
        if len(bad):
            raise ValueError(f"time column {name!r} of {path!r} holds {text.iloc[bad[0]]!r} at row {bad[0] + 1}, "
                             "which is neither a number nor a date.")
    order = time.to_numpy()
    repeats = np.flatnonzero(order[1:] == order[:-1])
    if len(repeats):
        k = repeats[0]
        raise ValueError(f"time column {name!r} of {path!r} holds {text.iloc[k]!r} twice, at rows {k + 1} and "
                         f"{k + 2}; each time value may appear once. Remove the duplicate row.")
    back = np.flatnonzero(order[1:] < order[:-1])
    if len(back):
        k = back[0]
        raise ValueError(f"time column {name!r} of {path!r} goes back at row {k + 2}: {text.iloc[k + 1]!r} after "
                         f"{text.iloc[k]!r} at row {k + 1}. Sort the file by time.")
    return time.reset_index(drop=True)


def _check_names(frame, path: str, wanted: Sequence[str], role: str) -> None:
    """Refuse names of ``wanted`` that are not columns of the file; ``role``: ``"column"``, ``"time column"``..."""
    missing = [name for name in wanted if name not in frame.columns]
    if missing:
        raise ValueError(f"expected the {role}{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))} in "
                         f"{path!r}, got the columns {', '.join(map(repr, frame.columns))}.")


def read_series_file(path: str | os.PathLike, *, columns: Sequence[str] | None = None, target: str | None = None,
                     target_required: bool = True, time_column: str | None = None,
                     fill: str | None = None) -> SeriesFile:
    """Read and check a CSV file: the input ``columns`` (default: every numeric column but the time column),
    the ``target`` column (which may be absent from the file when ``target_required`` is False) and the
    ``time_column``; gaps filled by ``fill`` (None: refused). ValueError names the row and column of the first
    problem; ImportError without pandas.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "series.csv"
    >>> _ = path.write_text("date,sales,price\\n2024-01-01,10,2.5\\n2024-01-02,,2.5\\n2024-01-03,14,2.0\\n")
    >>> data = read_series_file(path, target="sales", time_column="date", fill="interpolate")
    >>> data.columns, data.values.tolist()
    (('sales', 'price'), [[10.0, 2.5], [12.0, 2.5], [14.0, 2.0]])
    """
    path = os.fspath(path)
    if fill is not None and fill not in FILLS:
        raise ValueError(f"expected fill to be one of {', '.join(FILLS)} or None, got {fill!r}.")
    frame = _read_strings(path)
    _check_names(frame, path, [name for name in (time_column,) if name is not None], "time column")
    given = list(columns) if columns is not None else None
    if given is not None:
        if not given or len(set(given)) < len(given):
            raise ValueError(f"expected distinct input column names, got {given}.")
        if time_column in given:
            raise ValueError(f"expected input columns other than the time column {time_column!r}, got {given}.")
        _check_names(frame, path, given, "column")
    if target is not None and target_required:
        _check_names(frame, path, [target], "target column")
    parsed, left_out = {}, []
    for name in frame.columns:
        if name == time_column or (given is not None and name not in given and name != target):
            continue
        values, problem = _numbers(frame, name, path)
        if problem is None:
            parsed[name] = values
        elif given is None and name != target:
            left_out.append(problem)
        else:
            raise ValueError(f"expected numbers, but {problem}.")
    chosen = tuple(given if given is not None else [name for name in frame.columns if name in parsed])
    if not chosen:
        raise ValueError(f"expected at least one numeric column in {path!r} besides the time column, got none: "
                         f"{'; '.join(left_out)}.")
    has_target = target in parsed
    used = [name for name in frame.columns if name in chosen or (has_target and name == target)]
    filled = {name: _fill_gaps(parsed[name], name, path, fill) for name in used}
    return SeriesFile(path, chosen, np.column_stack([filled[name] for name in chosen]),
                      target if has_target else None, filled[target] if has_target else None, time_column,
                      _time_values(frame, time_column, path) if time_column is not None else None, tuple(left_out))
