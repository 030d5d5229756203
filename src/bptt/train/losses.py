"""Losses as ``(loss, dloss/dpred)`` pairs."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from bptt._validation import as_array, as_real_array


def mse_loss(pred: NDArray, target: NDArray) -> tuple[float, NDArray]:
    r"""Mean squared error :math:`L = \frac1n \sum (p - y)^2` and its gradient :math:`2 (p - y) / n`.

    Examples
    --------
    >>> loss, dpred = mse_loss(np.array([1.0, 2.0]), np.array([1.0, 0.0]))
    >>> float(loss), dpred.tolist()
    (2.0, [0.0, 2.0])

    NaN or infinite entries are not refused: they give a non-finite loss, which is how a training loop sees
    that a run diverged.
    """
    pred = as_real_array("mse_loss", "pred", pred)
    target = as_real_array("mse_loss", "target", target)
    if pred.shape != target.shape:
        raise ValueError(f"mse_loss: expected target of the prediction's shape {pred.shape}, got {target.shape}.")
    if pred.size == 0:
        raise ValueError("mse_loss: expected a non-empty prediction, got size 0.")
    diff = pred - target
    return float(np.mean(diff * diff)), diff * (2.0 / diff.size)


def cross_entropy(logits: NDArray, labels: NDArray, *, ignore_index: int | None = None) -> tuple[float, NDArray]:
    r"""Mean softmax cross-entropy over the leading dims and its gradient with respect to the logits.

    For logits :math:`z_{\cdot c}` over :math:`C` classes and integer labels :math:`y`,

    .. math:: L = -\frac1n \sum_k \log \mathrm{softmax}(z_k)_{y_k}, \qquad
              \frac{\partial L}{\partial z_{kc}} = \frac1n \left(\mathrm{softmax}(z_k)_c - [c = y_k]\right),

    with :math:`n` the number of labels. With ``ignore_index`` (PyTorch's ``F.cross_entropy(...,
    ignore_index=...)``, e.g. the padding of a target sequence) the labels equal to it are left out of the sum
    and of :math:`n`, and their logits get zero gradient; it needs at least one other label. The log-softmax
    is computed as :math:`z - \max z - \log \sum e^{z - \max z}` (log-sum-exp), so large logits neither
    overflow nor lose the loss to rounding.

    Parameters
    ----------
    logits : float array ``(..., C)``.
    labels : integer array of the leading shape ``(...)``, each in ``0..C-1``.
    ignore_index : a label to leave out, or None.

    Returns
    -------
    loss : float
    dlogits : array of the logits' shape and float dtype.

    Examples
    --------
    >>> loss, dlogits = cross_entropy(np.zeros((2, 4)), np.array([0, 3]))
    >>> round(loss, 6) == round(float(np.log(4)), 6)
    True
    >>> dlogits.tolist()
    [[-0.375, 0.125, 0.125, 0.125], [0.125, 0.125, 0.125, -0.375]]
    """
    logits = as_array("cross_entropy", "logits", logits)
    labels = as_array("cross_entropy", "labels", labels)
    if not (np.issubdtype(logits.dtype, np.floating) or np.issubdtype(logits.dtype, np.integer)):
        raise TypeError(f"cross_entropy: expected real numeric logits, got dtype {logits.dtype}.")
    if not np.issubdtype(logits.dtype, np.floating):
        logits = logits.astype(np.float64)
    if not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"cross_entropy: expected integer labels, got dtype {labels.dtype}.")
    if logits.ndim == 0:
        raise ValueError("cross_entropy: expected logits of shape (..., C), got a scalar.")
    C = logits.shape[-1]
    if C == 0:
        raise ValueError(f"cross_entropy: expected at least one class, got logits of shape {logits.shape}.")
    if labels.shape != logits.shape[:-1]:
        raise ValueError(f"cross_entropy: expected labels of the logits' leading shape {logits.shape[:-1]}, "
                         f"got {labels.shape}.")
    if labels.size == 0:
        raise ValueError("cross_entropy: expected at least one label, got size 0.")
    if not np.isfinite(logits).all():
        bad = int(logits.size - np.count_nonzero(np.isfinite(logits)))
        raise ValueError(f"cross_entropy: expected finite logits, got {bad} NaN or infinite entries.")
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= C:
        bad = (labels < 0) | (labels >= C)
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"cross_entropy: expected labels in 0..{C - 1}, got values in {low}..{high}: "
                         f"{int(bad.sum())} out of range, the first {int(labels[first])} at index {first}.")
    shifted = logits - logits.max(axis=-1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    index = labels[..., None]
    picked = np.take_along_axis(log_probs, index, axis=-1)            # log softmax(z)_y
    counted = np.ones(labels.shape, dtype=bool) if ignore_index is None else labels != ignore_index
    n = int(counted.sum())
    if n == 0:
        raise ValueError(f"cross_entropy: expected at least one label other than ignore_index {ignore_index}, "
                         "got none.")
    # dL/dz = (softmax(z) - onehot(y)) / n at the counted labels, 0 at the ignored ones
    dlogits = np.exp(log_probs)
    np.put_along_axis(dlogits, index, np.take_along_axis(dlogits, index, axis=-1) - 1.0, axis=-1)
    dlogits *= counted[..., None] / n
    return float(-picked[..., 0][counted].sum() / n), dlogits
