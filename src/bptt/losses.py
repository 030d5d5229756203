"""Losses as ``(loss, dloss/dpred)`` pairs."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def mse_loss(pred: NDArray, target: NDArray) -> tuple[float, NDArray]:
    r"""Mean squared error :math:`L = \frac1n \sum (p - y)^2` and its gradient :math:`2 (p - y) / n`.

    Examples
    --------
    >>> loss, dpred = mse_loss(np.array([1.0, 2.0]), np.array([1.0, 0.0]))
    >>> float(loss), dpred.tolist()
    (2.0, [0.0, 2.0])
    """
    pred = np.asarray(pred)
    target = np.asarray(target)
    if pred.shape != target.shape:
        raise ValueError(f"mse_loss: expected target of the prediction's shape {pred.shape}, got {target.shape}.")
    if pred.size == 0:
        raise ValueError("mse_loss: expected a non-empty prediction, got size 0.")
    diff = pred - target
    return float(np.mean(diff * diff)), diff * (2.0 / diff.size)
