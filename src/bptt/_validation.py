"""Every input check of bptt and its message.

Messages follow one form: ``"<where>: expected <what>, got <what>."`` followed, where it helps, by a hint.
"""

from __future__ import annotations

import numbers
import os
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


def check_bool(where: str, name: str, value: object) -> bool:
    """Return ``value`` as a bool, or raise if it is not one (a string such as ``"False"`` would be truthy)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{where}: expected {name} to be a bool, got {type(value).__name__}.")
    return bool(value)


def check_dropout(where: str, value: object) -> float:
    """Return ``value`` as a float, or raise if it is not a real number in ``[0, 1)`` (a dropout probability)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{where}: expected dropout to be a real number, got {type(value).__name__}.")
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{where}: expected dropout in [0, 1), got {value!r}.")
    return float(value)


def check_path(where: str, path: object) -> str:
    """Return ``path`` as a string, or raise if it is not a ``str`` or ``os.PathLike``."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{where}: expected path to be a str or os.PathLike, got {type(path).__name__}.")
    return os.fspath(path)


def check_dtype(where: str, dtype: object) -> np.dtype:
    """Return the working dtype, float32 or float64."""
    try:
        resolved = np.dtype(dtype)
    except TypeError as error:
        raise TypeError(f"{where}: expected dtype float32 or float64, got {dtype!r}.") from error
    if resolved not in SUPPORTED_DTYPES:
        raise TypeError(f"{where}: expected dtype float32 or float64, got {resolved}.")
    return resolved


def resolve_rng(where: str, rng: object, name: str = "rng") -> np.random.Generator:
    """An int seed, a Generator or None (fresh OS entropy) becomes a Generator; ``name`` is the argument's."""
    if isinstance(rng, numbers.Integral) and not isinstance(rng, bool):
        if rng < 0:
            raise ValueError(f"{where}: expected a non-negative int seed, got {rng}.")
        return np.random.default_rng(int(rng))
    if rng is None:
        return np.random.default_rng()
    if isinstance(rng, np.random.Generator):
        return rng
    raise TypeError(f"{where}: expected {name} to be an int seed or a numpy.random.Generator, got "
                    f"{type(rng).__name__}.")


def as_array(where: str, name: str, value: object) -> NDArray:
    """``np.asarray(value)``; ragged nested sequences, which NumPy cannot stack, raise ValueError."""
    try:
        return np.asarray(value)
    except (ValueError, TypeError) as error:
        raise ValueError(f"{where}: expected {name} to be a rectangular array, got a ragged "
                         f"{type(value).__name__} ({error}).") from error


def as_real_array(where: str, name: str, value: object, *, allow_bool: bool = False) -> NDArray:
    """``np.asarray(value)`` if its dtype is real numeric (floats, ints, and bools where allowed); refuse
    complex, object and string data, and ragged nested sequences."""
    array = as_array(where, name, value)
    if array.dtype.kind not in ("fiub" if allow_bool else "fiu"):
        raise TypeError(f"{where}: expected {name} to be a real numeric array, got dtype {array.dtype}.")
    return array


def cast_within_range(where: str, name: str, array: NDArray, dtype: np.dtype, *, copy: bool = True) -> NDArray:
    """The finite array ``array`` in ``dtype``, C-contiguous: a fresh copy, or with ``copy=False`` the array
    itself when it already is one; refuse values that overflow ``dtype`` (float64 ``1e300`` would become
    ``inf`` in float32)."""
    narrowing = array.dtype.kind == "f" and array.dtype.itemsize > np.dtype(dtype).itemsize
    if not narrowing:                                       # nothing can overflow: no errstate, no check
        return np.array(array, dtype=dtype, order="C", copy=True) if copy else np.ascontiguousarray(array, dtype=dtype)
    with np.errstate(over="ignore"):
        converted = (np.array(array, dtype=dtype, order="C", copy=True) if copy
                     else np.ascontiguousarray(array, dtype=dtype))
    if not np.isfinite(converted).all():
        beyond = int(converted.size - np.count_nonzero(np.isfinite(converted)))
        raise ValueError(f"{where}: expected {name} within the {converted.dtype} range (|value| <= "
                         f"{np.finfo(converted.dtype).max:.4g}), got {beyond} entries beyond it.")
    return converted


def as_float_array(where: str, name: str, value: object, dtype: np.dtype, *, copy: bool = True) -> NDArray:
    """Convert real numeric input to a C-contiguous array of ``dtype``; refuse anything else.

    The result is a copy, so that later changes to the caller's array cannot alter a cached forward pass;
    ``copy=False`` skips the copy where none is needed (an input that is only read, like ``dout``).
    """
    array = as_real_array(where, name, value, allow_bool=True)
    if not np.isfinite(array).all():
        bad = int(array.size - np.count_nonzero(np.isfinite(array)))
        raise ValueError(f"{where}: expected finite values in {name}, got {bad} NaN or infinite entries.")
    return cast_within_range(where, name, array, dtype, copy=copy)


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
