r"""Numerical gradient checking by central differences, with a report that says where a gradient is wrong.

For every entry :math:`p_j` of every array the checker compares the analytic gradient :math:`a_j` with

.. math:: n_j = \frac{f(p + \epsilon e_j) - f(p - \epsilon e_j)}{2 \epsilon},

perturbing the entry in place and restoring it bit for bit. An entry passes when
:math:`|a_j - n_j| \le \mathrm{atol} + \mathrm{rtol}\,\max(|a_j|, |n_j|)`. The relative error it reports is
:math:`|a_j - n_j| / \max(|a_j|, |n_j|, \mathrm{atol}/\mathrm{rtol})`: below the gradient scale
``atol/rtol`` errors are measured against that scale, so tiny or exactly-zero gradients cannot blow the
measure up.

The first thing checked is the function itself: when the loss that came with the gradients is passed as
``loss``, ``f(params)`` must reproduce it. If it does not, ``f`` is not the function the gradients were
computed for, and no entry comparison can mean anything; the classic cause in a recurrent network is a
loss that starts its perturbed passes from the final ``(h, c)`` of an earlier pass instead of the
initial state.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

# Defaults per working precision: (eps, atol, rtol). float64: central-difference truncation error is
# O(eps^2) ~ 1e-12 and rounding error O(u |f| / eps) ~ 1e-10 |f|, well inside the tolerances.
_DEFAULTS = {
    np.dtype(np.float64): (1e-6, 1e-7, 1e-5),
    np.dtype(np.float32): (1e-2, 1e-3, 1e-2),
}
# How closely f(params) must reproduce a given loss, relative to max(1, |loss|).
_LOSS_MATCH_RTOL = {np.dtype(np.float64): 1e-10, np.dtype(np.float32): 1e-5}


@dataclass(frozen=True)
class TensorResult:
    """The comparison for one array: worst entry, largest errors and how many entries failed."""

    name: str
    shape: tuple[int, ...]
    max_abs_error: float
    max_rel_error: float
    worst_index: tuple[int, ...]
    analytic: float
    numeric: float
    failures: int

    @property
    def ok(self) -> bool:
        return self.failures == 0


@dataclass
class Report:
    """The outcome of :func:`gradcheck`. ``ok`` is True when every entry of every array passed and no
    problem with the function itself was found; ``failed`` names the failing arrays in the params' order."""

    rows: list[TensorResult] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    eps: float = 0.0
    atol: float = 0.0
    rtol: float = 0.0
    evaluations: int = 0

    @property
    def failed(self) -> list[str]:
        return [row.name for row in self.rows if not row.ok]

    @property
    def ok(self) -> bool:
        return not self.problems and not self.failed

    def __str__(self) -> str:
        lines = [f"gradcheck: {'PASSED' if self.ok else 'FAILED'} "
                 f"(eps={self.eps:g}, atol={self.atol:g}, rtol={self.rtol:g}, {self.evaluations} loss evaluations)"]
        lines += [f"  problem: {problem}" for problem in self.problems]
        if self.rows:
            header = (f"  {'tensor':<20} {'shape':<14} {'max abs err':>11} {'max rel err':>11} "
                      f"{'worst index':<14} {'analytic':>12} {'numeric':>12} {'failed':>8}  ok")
            lines.append(header)
            for row in self.rows:
                size = math.prod(row.shape)
                lines.append(f"  {row.name:<20} {str(row.shape):<14} {row.max_abs_error:>11.2e} "
                             f"{row.max_rel_error:>11.2e} {str(row.worst_index):<14} {row.analytic:>12.5e} "
                             f"{row.numeric:>12.5e} {f'{row.failures}/{size}':>8}  {'yes' if row.ok else 'NO'}")
        return "\n".join(lines)


def _working_dtype(params: Mapping[str, NDArray]) -> np.dtype:
    """The lowest floating precision among the params (float64 when all are float64)."""
    dtypes = [np.dtype(p.dtype) for p in params.values()]
    return min(dtypes, key=lambda d: d.itemsize) if dtypes else np.dtype(np.float64)


def _validate(params: Mapping[str, object], grads: Mapping[str, object]) -> None:
    where = "gradcheck"
    for name, value in params.items():
        if not isinstance(value, np.ndarray) or value.dtype not in _DEFAULTS:
            got = type(value).__name__ if not isinstance(value, np.ndarray) else f"dtype {value.dtype}"
            raise TypeError(f"{where}: expected params[{name!r}] to be a float32 or float64 ndarray "
                            f"(it is perturbed in place), got {got}.")
        if name not in grads:
            raise ValueError(f"{where}: expected a gradient for every param, got none for {name!r}.")
        grad = np.asarray(grads[name])
        if grad.shape != value.shape:
            raise ValueError(f"{where}: expected grads[{name!r}] of shape {value.shape} (the param's), "
                             f"got {grad.shape}.")


def gradcheck(f: Callable[[dict[str, NDArray]], float], params: Mapping[str, NDArray],
              grads: Mapping[str, NDArray], *, loss: float | None = None, eps: float | None = None,
              atol: float | None = None, rtol: float | None = None) -> Report:
    r"""Compare analytic gradients with central differences of ``f``, entry by entry.

    Parameters
    ----------
    f : maps the params dict to a scalar loss. It is called with the very arrays in ``params``, perturbed
        in place, so it must compute the loss from them afresh each call (same initial states, no
        randomness).
    params : dict of float arrays: weights, inputs, initial states, anything ``f`` reads.
    grads : the analytic gradients, same keys and shapes.
    loss : the loss value computed alongside ``grads``; when given, ``f(params)`` must reproduce it.
    eps, atol, rtol : step and tolerances; defaults depend on the working precision
        (float64: 1e-6, 1e-7, 1e-5; float32: 1e-2, 1e-3, 1e-2).

    Returns
    -------
    Report : ``ok``, ``failed``, ``rows`` and a readable ``str()``.

    Examples
    --------
    >>> w = {"w": np.array([1.0, -2.0])}
    >>> gradcheck(lambda p: float(np.sum(p["w"] ** 3)), w, {"w": 3 * w["w"] ** 2}).ok
    True
    >>> gradcheck(lambda p: float(np.sum(p["w"] ** 3)), w, {"w": 2 * w["w"]}).failed
    ['w']
    """
    _validate(params, grads)
    dtype = _working_dtype(params)
    default_eps, default_atol, default_rtol = _DEFAULTS[dtype]
    report = Report(eps=default_eps if eps is None else float(eps),
                    atol=default_atol if atol is None else float(atol),
                    rtol=default_rtol if rtol is None else float(rtol))
    if loss is not None:
        value = float(f(params))
        report.evaluations += 1
        if abs(value - float(loss)) > _LOSS_MATCH_RTOL[dtype] * max(1.0, abs(float(loss))):
            report.problems.append(
                f"loss-mismatch: f(params) = {value:.10g} but the gradients came with loss {float(loss):.10g}. "
                "f is not the function the gradients were computed for: a common cause is a recurrent "
                "state carried over from an earlier pass (start every pass from the same h0, c0), or "
                "randomness inside f.")
            return report
    for name, param in params.items():
        report.rows.append(_check_tensor(f, params, name, param, np.asarray(grads[name]), report))
    return report


def _check_tensor(f: Callable[[dict[str, NDArray]], float], params: Mapping[str, NDArray], name: str,
                  param: NDArray, grad: NDArray, report: Report) -> TensorResult:
    if param.size == 0:
        return TensorResult(name, tuple(param.shape), 0.0, 0.0, (), 0.0, 0.0, 0)
    numeric = np.empty(param.shape, dtype=np.float64)
    for index in np.ndindex(param.shape):  # writes through param itself reach the array f reads
        original = param[index].copy()
        param[index] = original + report.eps
        plus = float(f(params))
        param[index] = original - report.eps
        minus = float(f(params))
        param[index] = original  # bit-exact restore
        numeric[index] = (plus - minus) / (2.0 * report.eps)
    report.evaluations += 2 * param.size
    analytic = grad.astype(np.float64)
    abs_error = np.abs(analytic - numeric)
    scale = np.maximum(np.abs(analytic), np.abs(numeric))
    rel_error = abs_error / np.maximum(scale, report.atol / report.rtol)
    failures = int(np.count_nonzero(~(abs_error <= report.atol + report.rtol * scale)))  # NaN fails too
    worst = np.unravel_index(int(np.argmax(np.nan_to_num(rel_error, nan=np.inf))), param.shape)
    return TensorResult(name, tuple(param.shape), float(abs_error.max()), float(rel_error.max()),
                        tuple(int(k) for k in worst), float(analytic[worst]), float(numeric[worst]), failures)
