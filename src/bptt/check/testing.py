"""Assertions for users' own test suites."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from numpy.typing import NDArray

from bptt.check.gradcheck import Report, gradcheck


def assert_gradients_close(f: Callable[[dict[str, NDArray]], float], params: Mapping[str, NDArray],
                           grads: Mapping[str, NDArray], **kwargs) -> Report:
    """Run :func:`bptt.gradcheck` and raise ``AssertionError`` with the report as message unless it passes.

    Keyword arguments go to :func:`bptt.gradcheck` (``loss``, ``eps``, ``atol``, ``rtol``, ``mode``,
    ``samples``, ``seed``). Returns the report when the check passes.

    Examples
    --------
    >>> import numpy as np
    >>> w = {"w": np.array([1.0, 2.0])}
    >>> assert_gradients_close(lambda p: float(np.sum(p["w"] ** 2)), w, {"w": 2 * w["w"]}).ok
    True
    """
    report = gradcheck(f, params, grads, **kwargs)
    if not report.ok:
        raise AssertionError(str(report))
    return report
