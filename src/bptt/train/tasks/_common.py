"""What the task modules share: the names of the held-out splits and their check, and the MSE over the targets
that are scored (not NaN) of the forecasting tasks."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from bptt._validation import check_shape

SPLITS = ("validation", "test")


def check_split(where: str, split: object) -> str:
    """Return ``split`` if it names a held-out split, else raise listing the valid names."""
    if split not in SPLITS:
        raise ValueError(f"{where}: expected split to be one of {', '.join(map(repr, SPLITS))}, got {split!r}.")
    return split


def scored_targets(where: str, pred: NDArray, target: NDArray) -> tuple[NDArray, NDArray, NDArray]:
    """``pred`` and ``target (T, N, 1)`` as arrays, and the mask of the scored targets (those not NaN); raises
    when the shapes differ or nothing is scored."""
    pred, target = np.asarray(pred), np.asarray(target)
    check_shape(where, "target", target, (None, None, 1))
    check_shape(where, "pred", pred, target.shape, "The model's output at every step, time-major.")
    scored = ~np.isnan(target)
    if not scored.any():
        raise ValueError(f"{where}: expected at least one scored (not NaN) target, got none.")
    return pred, target, scored


def masked_mse(where: str, pred: NDArray, target: NDArray) -> tuple[float, NDArray]:
    """MSE over the scored (not NaN) targets, and its gradient with respect to ``pred``: zero elsewhere."""
    pred, target, scored = scored_targets(where, pred, target)
    count = int(np.count_nonzero(scored))
    diff = np.where(scored, pred - target, 0.0)        # a NaN target gives NaN here, replaced by 0
    return float(np.sum(diff * diff) / count), diff * (2.0 / count)
