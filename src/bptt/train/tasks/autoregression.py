r"""The forecaster's linear stage: a ridge regression of the baseline's error on the window, fitted in closed form.

Beside its network, ``bptt train csv`` fits a linear model of the same window, as LSTNet's autoregressive
component does (Lai et al. 2018, "Modeling long- and short-term temporal patterns with deep neural
networks"): a network is weak where a series is nearly linear in its own past (a drift, a smooth level, a
season), and a few hundred rows do not teach it that. With :math:`x` the window of standardised changes
``(W, C)`` and :math:`y` the baseline's scaled error at its target,

.. math::

    a(x) = \sum_{k=1}^{W} \sum_{c=1}^{C} w_{kc}\, x_{kc} + a_0,
    \qquad
    \min_{w,\, a_0}\; \frac{1}{M} \sum_{m=1}^{M} \bigl(y_m - a(x_m)\bigr)^2 + \lambda \lVert w \rVert^2,

over the :math:`M` training targets, the intercept left out of the penalty. Its solution, with :math:`X` the
``(M, W C)`` flattened windows and :math:`\bar x`, :math:`\bar y` the means over the targets, is

.. math::

    w = \bigl((X - \bar x)^\top (X - \bar x) + M \lambda I\bigr)^{-1} (X - \bar x)^\top (y - \bar y),
    \qquad a_0 = \bar y - \bar x^\top w.

:func:`choose_autoregression` takes the :math:`\lambda` of :data:`PENALTIES` with the lowest validation error
and keeps the stage only when it beats the baseline there by more than :data:`STANDARD_ERRORS` standard errors
of the paired difference (:func:`bptt.train.fit.better_by_standard_errors`); otherwise the stage is zero and
the forecaster starts from the baseline alone. The network then learns what the stage leaves, and starts at
zero. On the training targets, what the stage leaves is taken *out of fold* (:func:`out_of_fold`): on a short
series the in-sample fit of a few dozen weights leaves residuals much smaller than its errors on new rows, and
the network, trained on them, learned nothing that held on the validation split.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from bptt.train.fit import better_by_standard_errors

PENALTIES = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)
"""The ridge penalties :math:`\\lambda` tried, per target (the inputs are standardised, so they are in the
units of a change's variance)."""

STANDARD_ERRORS = 2.0
"""How many standard errors of the paired validation difference the stage must beat the baseline by. Two, not
the network's one (:func:`bptt.train.fit.beats_baseline`): the stage is the best of six fits on the same
validation targets, so its gain there is biased upward. Measured on benchmarks/forecast_panel.py (3 seeds):
with one, the S&P 500 kept a stage that made seed 0 worse than persistence on the test split (171.9 against
169.2); with two it keeps none, and its three seeds are better than persistence (168.0-168.5)."""


class Autoregression(NamedTuple):
    """The linear stage: ``weights (W, C)`` over the window, ``intercept``, and ``penalty`` (the chosen
    :math:`\\lambda`; None when the stage was not kept and is zero)."""

    weights: NDArray
    intercept: float
    penalty: float | None

    @classmethod
    def none(cls, window: int, channels: int) -> Autoregression:
        """The stage that adds nothing: zero weights, zero intercept."""
        return cls(np.zeros((window, channels)), 0.0, None)

    def __call__(self, x: NDArray) -> NDArray:
        """:math:`a(x)` of each window of ``x (W, M, C)``: ``(M,)``."""
        return np.einsum("wmc,wc->m", np.asarray(x, dtype=np.float64), self.weights) + self.intercept

    def to_metadata(self) -> dict[str, Any]:
        return {"linear_weights": self.weights.tolist(), "linear_intercept": self.intercept,
                "linear_penalty": self.penalty}

    @classmethod
    def from_metadata(cls, metadata: dict[str, Any], window: int, channels: int) -> Autoregression:
        """The stage a checkpoint stores; a checkpoint written before the stage existed has none (zero)."""
        if "linear_weights" not in metadata:
            return cls.none(window, channels)
        return cls(np.asarray(metadata["linear_weights"], dtype=np.float64).reshape(window, channels),
                   float(metadata["linear_intercept"]), metadata["linear_penalty"])


def ridge(x: NDArray, y: NDArray, penalty: float) -> Autoregression:
    """The ridge solution of the module's equation for windows ``x (W, M, C)`` and targets ``y (M,)``."""
    window, count, channels = x.shape
    design = np.asarray(x, dtype=np.float64).transpose(1, 0, 2).reshape(count, window * channels)
    mean_x, mean_y = design.mean(axis=0), float(np.mean(y))
    centred = design - mean_x
    gram = centred.T @ centred + count * penalty * np.eye(window * channels)
    weights = np.linalg.solve(gram, centred.T @ (y - mean_y))
    return Autoregression(weights.reshape(window, channels), mean_y - float(mean_x @ weights), penalty)


def choose_autoregression(train: tuple[NDArray, NDArray], validation: tuple[NDArray, NDArray],
                          penalties: tuple[float, ...] = PENALTIES) -> Autoregression:
    """The ridge fit on ``train`` (windows ``(W, M, C)``, targets ``(M,)``) whose penalty gives the lowest
    squared error on ``validation``, or :meth:`Autoregression.none` when that fit does not beat zero (the
    baseline) there by more than :data:`STANDARD_ERRORS` standard errors."""
    (x, y), (x_val, y_val) = train, validation
    fits = [ridge(x, y, penalty) for penalty in penalties]
    errors = [np.mean((fitted(x_val) - y_val) ** 2) for fitted in fits]
    best = fits[int(np.argmin(errors))]
    if math.isfinite(min(errors)) and better_by_standard_errors((best(x_val) - y_val) ** 2 - y_val ** 2,
                                                                STANDARD_ERRORS):
        return best
    return Autoregression.none(x.shape[0], x.shape[2])


def out_of_fold(x: NDArray, y: NDArray, penalty: float, folds: int = 5) -> NDArray:
    """:math:`a(x)` of each window of ``x (W, M, C)``, ``(M,)``, from the ridge fit (``penalty``) on the targets
    ``y (M,)`` of the other ``folds - 1`` contiguous blocks of the windows: how the stage does on rows it has not
    seen."""
    predictions = np.empty(x.shape[1])
    for block in np.array_split(np.arange(x.shape[1]), folds):
        rest = np.setdiff1d(np.arange(x.shape[1]), block)
        predictions[block] = ridge(x[:, rest], y[rest], penalty)(x[:, block])
    return predictions
