r"""One-step-ahead forecasting of the yearly sunspot numbers, 1700-2008: a real, noisy, quasi-periodic series.

The data are the 309 yearly values of ``statsmodels.datasets.sunspots`` (column ``SUNACTIVITY``), read on
first use; statsmodels is an optional dependency (``pip install 'bptt[tasks]'``).

Splits are chronological. A value at index :math:`t` is a *target* when it is predicted from the values
before it; the first :math:`n_\mathrm{train}` values (70% by default) form the training part, the next 15%
of the targets the validation split and the last 15% the test split. The model works on standardized
values :math:`z = (u - \mu) / \sigma` with :math:`\mu, \sigma` the mean and standard deviation of the
training part alone, so nothing about the later years leaks into the training inputs.

- **Training batches** are random windows of ``seq_len`` steps lying wholly inside the training part:
  a slice of ``seq_len + 1`` values, the input its first ``seq_len`` and the target its last ``seq_len``
  (a shift, never ``np.roll``, which would wrap the last target around to the first input). Every step is
  scored.
- **Validation and test sets** tile the split's targets with consecutive windows of ``seq_len`` steps, the
  last window ending at the split's last target. The first window reaches back before the split, so that
  its early steps read earlier data as context, as training windows do; the targets of those steps lie
  outside the split, are set to NaN and are not scored. Each target of the split is thus scored exactly
  once, by a window of the same length as in training, started from a zero state like them.

:meth:`SunspotsTask.loss` is the MSE over the targets that are not NaN. :meth:`SunspotsTask.metrics` reports
the MSE in the original units, the MSE of persistence (predicting the previous year's value) on exactly the
same targets, and the skill :math:`1 - \mathrm{MSE} / \mathrm{MSE}_\mathrm{persistence}`: above 0 means
better than persistence.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
from numpy.typing import NDArray

from bptt._validation import check_dtype, check_positive_int, check_shape
from bptt.train.tasks._common import check_split, masked_mse, scored_targets

MISSING_STATSMODELS = "the sunspots task reads its data from statsmodels: pip install 'bptt[tasks]'"


FIRST_YEAR = 1700
"""The year of the series' first value."""


@functools.lru_cache(maxsize=1)
def _load_series() -> NDArray:
    """The yearly sunspot numbers, 1700-2008, as a read-only float64 array of 309 values."""
    try:
        from statsmodels.datasets import sunspots  # the module statsmodels.api.datasets.sunspots
    except ImportError as error:
        raise ImportError(MISSING_STATSMODELS) from error
    series = sunspots.load_pandas().data["SUNACTIVITY"].to_numpy(dtype=np.float64, copy=True)
    series.flags.writeable = False
    return series


def _defaults() -> dict[str, object]:
    # Measured: the validation loss bottoms out after a few hundred steps and then rises (the training
    # part has 217 values), so training stops after 6 evaluations without improvement and keeps the best.
    return {"hidden_size": 32, "num_layers": 1, "steps": 1000, "batch_size": 32, "lr": 3e-3, "eval_every": 50,
            "patience": 6}


@dataclass(frozen=True)
class SunspotsTask:
    """Next-year forecasts of the sunspot number from windows of ``seq_len`` years.

    Shapes: ``x (seq_len, N, 1)`` standardized values; ``y (seq_len, N, 1)`` the next values, NaN where a
    held-out step is not scored. ``validation_fraction`` and ``test_fraction`` are the shares of the series
    whose values are the targets of those splits.

    Examples
    --------
    >>> task = SunspotsTask(seq_len=20)
    >>> task.name, task.input_size, task.output_size
    ('sunspots', 1, 1)
    """

    seq_len: int = 40
    validation_fraction: float = 0.15
    test_fraction: float = 0.15
    name: str = field(default="sunspots", init=False)
    input_size: int = field(default=1, init=False)
    output_size: int = field(default=1, init=False)
    defaults: dict[str, object] = field(default_factory=_defaults, compare=False, repr=False)
    goals: ClassVar[dict] = {"skill": (">", 0.0)}

    def __post_init__(self) -> None:
        check_positive_int("SunspotsTask", "seq_len", self.seq_len)
        for name in ("validation_fraction", "test_fraction"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and 0 < value < 1):
                raise ValueError(f"SunspotsTask: expected 0 < {name} < 1, got {value!r}.")
        if self.validation_fraction + self.test_fraction >= 1:
            raise ValueError("SunspotsTask: expected validation_fraction + test_fraction < 1, got "
                             f"{self.validation_fraction!r} + {self.test_fraction!r}.")

    # ----- the data ------------------------------------------------------------------------------------

    def series(self) -> NDArray:
        """The raw yearly values, original units, read-only ``(309,)``."""
        return _load_series()

    def _bounds(self) -> tuple[int, int, int]:
        """``(n_train, n_train + n_validation, n)``: where the validation and test targets start and end."""
        n = len(self.series())
        n_test = round(n * self.test_fraction)
        n_validation = round(n * self.validation_fraction)
        n_train = n - n_validation - n_test
        if min(n_test, n_validation) < 1 or n_train < self.seq_len + 1:
            raise ValueError(f"SunspotsTask: expected splits of at least one target and a training part of "
                             f"at least seq_len + 1 = {self.seq_len + 1} values, got {n_train} training, "
                             f"{n_validation} validation and {n_test} test values out of {n}. Use a shorter "
                             "seq_len or smaller fractions.")
        return n_train, n_train + n_validation, n

    def split_range(self, split: str) -> range:
        """The indices into :meth:`series` of the targets of ``"train"``, ``"validation"`` or ``"test"``
        (the training part's first value is input only, never a target)."""
        n_train, n_fit, n = self._bounds()
        if split == "train":
            return range(1, n_train)
        check_split("SunspotsTask.split_range", split)
        return range(n_train, n_fit) if split == "validation" else range(n_fit, n)

    @property
    def offset(self) -> float:
        """The mean of the training part, subtracted before scaling."""
        return float(np.mean(self.series()[:self._bounds()[0]]))

    @property
    def scale(self) -> float:
        """The standard deviation of the training part: one unit of the model's values in sunspots."""
        return float(np.std(self.series()[:self._bounds()[0]]))

    def _standardized(self) -> NDArray:
        return (self.series() - self.offset) / self.scale

    def batch(self, rng: np.random.Generator, size: int, dtype: object = np.float64) -> tuple[NDArray, NDArray]:
        """``size`` random training windows: inputs and next-value targets, both ``(seq_len, size, 1)``."""
        size = check_positive_int("SunspotsTask.batch", "size", size)
        dtype = check_dtype("SunspotsTask.batch", dtype)
        n_train = self._bounds()[0]
        z = self._standardized()
        starts = rng.integers(0, n_train - self.seq_len, size=size)       # so that start + seq_len < n_train
        windows = z[starts[None, :] + np.arange(self.seq_len + 1)[:, None]]   # (seq_len + 1, size)
        return windows[:-1, :, None].astype(dtype), windows[1:, :, None].astype(dtype)

    def held_out(self, split: str, rng: np.random.Generator | None = None,
                 dtype: object = np.float64) -> tuple[NDArray, NDArray]:
        """The ``"validation"`` or ``"test"`` windows, in chronological order along ``N``; ``rng`` is unused
        (the split is fixed). Targets before the split are NaN: context, not scored."""
        check_split("SunspotsTask.held_out", split)
        dtype = check_dtype("SunspotsTask.held_out", dtype)
        scored = self.split_range(split)
        ends = np.arange(scored.stop - 1, scored.start - 1, -self.seq_len)[::-1]   # last target of each window
        targets = ends[None, :] + np.arange(-self.seq_len + 1, 1)[:, None]        # (seq_len, windows) indices
        z = self._standardized()
        x = z[targets - 1]
        y = np.where(targets >= scored.start, z[targets], np.nan)
        return x[..., None].astype(dtype), y[..., None].astype(dtype)

    # ----- scoring -------------------------------------------------------------------------------------

    def loss(self, pred: NDArray, target: NDArray) -> tuple[float, NDArray]:
        """MSE over the scored (not NaN) targets, in standardized units; zero gradient elsewhere."""
        return masked_mse("SunspotsTask.loss", pred, target)

    @property
    def first_test_year(self) -> int:
        """The year of the first test target (the series starts in 1700)."""
        return FIRST_YEAR + self.split_range("test").start

    def forecast(self, model, data: tuple[NDArray, NDArray]) -> tuple[NDArray, NDArray]:
        """The scored targets of held-out ``data`` and the model's one-step forecasts of them, in
        chronological order and in sunspots."""
        x, target = data
        scored = ~np.isnan(target[..., 0]).T                    # windows are chronological along N
        pred = model(x)[..., 0].T[scored]
        truth = target[..., 0].T[scored]
        return truth * self.scale + self.offset, pred * self.scale + self.offset

    def metrics(self, model, data: tuple[NDArray, NDArray]) -> dict[str, float]:
        """``test_mse`` in sunspots squared, ``persistence_mse`` (the previous value as forecast) on the same
        targets, and ``skill = 1 - test_mse / persistence_mse``."""
        x, target = data
        pred, target, scored = scored_targets("SunspotsTask.metrics", model(x), target)
        x = np.asarray(x)
        check_shape("SunspotsTask.metrics", "x", x, target.shape)
        truth = target[scored].astype(np.float64)
        test_mse = float(np.mean((pred[scored] - truth) ** 2)) * self.scale**2
        persistence_mse = float(np.mean((x[scored] - truth) ** 2)) * self.scale**2
        return {"test_mse": test_mse, "persistence_mse": persistence_mse, "skill": 1.0 - test_mse / persistence_mse}
