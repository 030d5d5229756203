r"""Numerically stable activations, in place where asked, with derivatives taken from outputs.

The logistic sigmoid is evaluated as :math:`\sigma(a) = \tfrac12\,(1 + \tanh(a/2))`, which is exact
algebra, never overflows (``sigmoid(-1e3)`` is 0 and ``sigmoid(1e3)`` is 1, without a warning) and costs
one transcendental call, like ``np.exp`` would.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def sigmoid(a: NDArray, out: NDArray | None = None) -> NDArray:
    r"""Return :math:`\sigma(a) = 1 / (1 + e^{-a})`, written into ``out`` when given (``out=a`` is allowed)."""
    out = np.multiply(a, 0.5, out=out)
    np.tanh(out, out=out)
    out *= 0.5
    out += 0.5
    return out


def sigmoid_grad_from_output(s: NDArray, out: NDArray | None = None) -> NDArray:
    r""":math:`\sigma'(a) = s\,(1 - s)` from the output :math:`s = \sigma(a)`."""
    out = np.subtract(1.0, s, out=out)
    out *= s
    return out


def tanh_grad_from_output(t: NDArray, out: NDArray | None = None) -> NDArray:
    r""":math:`\tanh'(a) = 1 - t^2` from the output :math:`t = \tanh(a)`."""
    out = np.multiply(t, t, out=out)
    np.subtract(1.0, out, out=out)
    return out
