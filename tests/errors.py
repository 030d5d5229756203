"""The relative error every comparison in the suite uses."""

from __future__ import annotations

import numpy as np


def rel_err(actual: object, expected: object, floor: float = 0.0, *, same_dtype: bool = False) -> float:
    """``max|a - b| / max(max|b|, floor)`` over one tensor, in float64; shapes must agree exactly (and dtypes,
    with ``same_dtype``); 0 for empty tensors.

    ``floor`` is the scale of what the tensor is computed from, e.g. the largest upstream gradient. It matters
    only for a tensor whose entries have all but vanished or cancelled: a gradient through saturated units,
    where :math:`1 - h^2` with :math:`h` near 1 is known to about one ulp of 1 whatever its size, or a cell
    gradient :math:`\\delta c_n + \\delta h\\, o\\, (1 - \\tanh^2 c)` whose two terms nearly cancel. Two correct
    implementations that round differently agree there to round-off of the terms, not of their small result.
    """
    a, b = np.asarray(actual), np.asarray(expected)
    assert a.shape == b.shape, f"shape {a.shape}, reference shape {b.shape}"
    if same_dtype:
        assert a.dtype == b.dtype, f"dtype {a.dtype}, reference dtype {b.dtype}"
    if a.size == 0:
        return 0.0
    a, b = a.astype(np.float64), b.astype(np.float64)
    scale = max(float(np.max(np.abs(b))), floor, np.finfo(np.float64).tiny)
    return float(np.max(np.abs(a - b))) / scale
