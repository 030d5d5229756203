"""Every input check of bptt and its message.

Messages follow one form: ``"<where>: expected <what>, got <what>."`` followed, where it helps, by a hint.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

SUPPORTED_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def check_positive_int(where: str, name: str, value: object) -> int:
    """Return ``value`` as an int, or raise if it is not an integer >= 1."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{where}: expected {name} to be an int, got {type(value).__name__}.")
    if value < 1:
        raise ValueError(f"{where}: expected {name} >= 1, got {value}.")
    return int(value)


def check_dtype(where: str, dtype: object) -> np.dtype:
    """Return the working dtype, float32 or float64."""
    try:
        resolved = np.dtype(dtype)
    except TypeError as error:
        raise TypeError(f"{where}: expected dtype float32 or float64, got {dtype!r}.") from error
    if resolved not in SUPPORTED_DTYPES:
        raise TypeError(f"{where}: expected dtype float32 or float64, got {resolved}.")
    return resolved


def resolve_rng(where: str, rng: object) -> np.random.Generator:
    """An int seed, a Generator or None (fresh OS entropy) becomes a Generator."""
    if isinstance(rng, numbers.Integral) and not isinstance(rng, bool):
        if rng < 0:
            raise ValueError(f"{where}: expected a non-negative int seed, got {rng}.")
        return np.random.default_rng(int(rng))
    if rng is None:
        return np.random.default_rng()
    if isinstance(rng, np.random.Generator):
        return rng
    raise TypeError(f"{where}: expected rng to be an int seed or a numpy.random.Generator, got {type(rng).__name__}.")


def as_float_array(where: str, name: str, value: object, dtype: np.dtype) -> NDArray:
    """Convert real numeric input to a fresh C-contiguous array of ``dtype``; refuse anything else.

    The result is a copy, so that later changes to the caller's array cannot alter a cached forward pass.
    """
    array = np.asarray(value)
    if array.dtype == object or not (np.issubdtype(array.dtype, np.floating)
                                     or np.issubdtype(array.dtype, np.integer)
                                     or array.dtype == np.bool_):
        raise TypeError(f"{where}: expected {name} to be a real numeric array, got dtype {array.dtype}.")
    array = np.array(array, dtype=dtype, order="C", copy=True)
    if not np.isfinite(array).all():
        bad = int(array.size - np.count_nonzero(np.isfinite(array)))
        raise ValueError(f"{where}: expected finite values in {name}, got {bad} NaN or infinite entries.")
    return array


def format_shape(shape: Sequence[int | str | None]) -> str:
    """``(5, 'N', None)`` -> ``"(5, N, *)"``; a 1-tuple keeps its comma."""
    parts = ["*" if s is None else str(s) for s in shape]
    return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"


def check_shape(where: str, name: str, array: NDArray, expected: Sequence[int | None], hint: str = "") -> None:
    """Raise unless ``array.shape`` matches ``expected`` (``None`` matches any size)."""
    ok = array.ndim == len(expected) and all(e is None or e == s for e, s in zip(expected, array.shape, strict=True))
    if not ok:
        message = f"{where}: expected {name} of shape {format_shape(expected)}, got {format_shape(array.shape)}."
        raise ValueError(message + (" " + hint if hint else ""))
