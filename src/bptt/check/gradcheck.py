r"""Numerical gradient checking that says which gradient is wrong, where, and why a check fails.

For an entry :math:`p_j` of an array the checker compares the analytic gradient :math:`a_j` with the
central difference

.. math:: n_j = \frac{f(p + \epsilon e_j) - f(p - \epsilon e_j)}{2 \epsilon},

perturbing the entry in place and restoring it bit for bit. The entry passes when
:math:`|a_j - n_j| \le \mathrm{atol} + \mathrm{rtol}\,\max(|a_j|, |n_j|)`. The relative error reported is
:math:`|a_j - n_j| / \max(|a_j|, |n_j|, \mathrm{atol}/\mathrm{rtol})`: below the scale ``atol/rtol`` errors
are measured against that scale, so tiny or exactly-zero gradients cannot blow the measure up.

Before any gradient is blamed the function itself is examined, because most failed checks are not wrong
derivations: ``f`` must return the same value twice (``nondeterministic``), leave its arguments alone
(``params-mutated``) and, when the loss that came with the gradients is given, reproduce it
(``loss-mismatch``: the classic cause is a recurrent state carried from one call to the next). Failing
entries are then examined one by one: a jump between the one-sided slopes that does not shrink with the
step is a ``kink`` (a ReLU at 0, an ``abs``), not a wrong gradient; entries that pass at another step size
point at truncation or rounding error (``step-size``). Working in float32 earns a ``low-precision``
warning with the accuracy that can be trusted.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field

import numpy as np
from numpy.typing import NDArray

from bptt._validation import as_array, as_real_array, resolve_rng

Loss = Callable[[dict[str, NDArray]], float]

MODES = ("full", "sample", "fast")
DEFAULT_SAMPLES = 10
# Defaults per working precision: eps, atol (per unit of max(1, |loss|)), rtol, and the sweep of steps
# tried when entries fail. float64: truncation error O(eps^2) ~ 1e-12, rounding error O(u |f| / eps)
# ~ 1e-10 |f|, both far inside the tolerances.
_PRECISION = {
    np.dtype(np.float64): (1e-6, 1e-7, 1e-5, (1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-9)),
    np.dtype(np.float32): (1e-2, 1e-3, 1e-2, (1e-1, 3e-2, 1e-2, 3e-3, 1e-3)),
}
# How closely two evaluations must agree, relative to max(1, |loss|): for determinism and for `loss`.
_REPEAT_RTOL = {np.dtype(np.float64): 1e-10, np.dtype(np.float32): 1e-5}
_SWEEP_ENTRIES = 3      # failing entries per tensor tried across the eps sweep
_KINK_JUMP = 10.0       # a kink's slope jump exceeds this many tolerances, at eps and at eps / 10
_KINK_NOISE = 100.0     # ... and this many times the rounding noise of the one-sided slopes


@dataclass(frozen=True)
class Diagnosis:
    """A finding about the check: a stable ``code``, a ``message`` that says what to do, a ``severity``
    (``"error"`` fails the check, ``"warning"`` does not) and the tensors it concerns."""

    code: str
    message: str
    severity: str = "error"
    tensors: tuple[str, ...] = ()


@dataclass(frozen=True)
class TensorResult:
    """The comparison for one array over the entries checked (``checked``; 0 where a passing directional
    derivative stood in for them): largest errors, the worst entry with both values there, and how many
    entries exceeded the tolerance. ``location`` names the worst entry in words where the caller knows its
    meaning (e.g. a time step)."""

    name: str
    shape: tuple[int, ...]
    checked: int
    max_abs_error: float
    max_rel_error: float
    worst_index: tuple[int, ...]
    analytic: float
    numeric: float
    failures: int
    location: str = ""

    @property
    def ok(self) -> bool:
        return self.failures == 0


@dataclass
class Report:
    """The outcome of :func:`gradcheck`: ``ok`` when no tensor failed and no diagnosis is an error;
    ``failed`` names the failing tensors in the params' order; ``str(report)`` is a readable table with
    the diagnoses first; ``to_dict()`` is JSON-ready."""

    mode: str = "full"
    eps: float = 0.0
    atol: float = 0.0
    rtol: float = 0.0
    loss: float | None = None
    rows: list[TensorResult] = field(default_factory=list)
    diagnoses: list[Diagnosis] = field(default_factory=list)
    evaluations: int = 0
    names: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[str]:
        bad = {row.name for row in self.rows if not row.ok}
        bad.update(t for d in self.diagnoses if d.code in ("missing-grad", "shape-mismatch") for t in d.tensors)
        return [name for name in self.names if name in bad]

    @property
    def ok(self) -> bool:
        return not self.failed and not any(d.severity == "error" for d in self.diagnoses)

    @property
    def codes(self) -> list[str]:
        return [d.code for d in self.diagnoses]

    def to_dict(self) -> dict:
        return {"ok": self.ok, "failed": self.failed, "mode": self.mode, "eps": self.eps, "atol": self.atol,
                "rtol": self.rtol, "loss": self.loss, "evaluations": self.evaluations,
                "diagnoses": [{**asdict(d), "tensors": list(d.tensors)} for d in self.diagnoses],
                "rows": [{**asdict(r), "shape": list(r.shape), "worst_index": list(r.worst_index), "ok": r.ok}
                         for r in self.rows]}

    def __str__(self) -> str:
        lines = [f"gradcheck: {'PASSED' if self.ok else 'FAILED'} ({self.mode} mode, eps={self.eps:g}, "
                 f"atol={self.atol:g}, rtol={self.rtol:g}, {self.evaluations} loss evaluations)"]
        lines += [f"  {d.severity} [{d.code}]: {d.message}" for d in self.diagnoses]
        if self.rows:
            lines.append(f"  {'tensor':<20} {'shape':<14} {'max abs err':>11} {'max rel err':>11} "
                         f"{'worst index':<16} {'analytic':>12} {'numeric':>12} {'failed':>11}  ok")
            for row in self.rows:
                where = str(row.worst_index) if row.checked else "(direction)"
                counted = f"{row.failures}/{row.checked}" if row.checked else "-"
                lines.append(f"  {row.name:<20} {str(row.shape):<14} {row.max_abs_error:>11.2e} "
                             f"{row.max_rel_error:>11.2e} {where:<16} {row.analytic:>12.5e} {row.numeric:>12.5e} "
                             f"{counted:>11}  {'yes' if row.ok else 'NO'}"
                             + (f"  worst at {row.location}" if row.location and not row.ok else ""))
        return "\n".join(lines)


class _Evaluator:
    """Calls ``f``, counts the calls and turns the result into a float."""

    def __init__(self, f: Loss, params: Mapping[str, NDArray], report: Report) -> None:
        self.f, self.params, self.report = f, params, report
        self.low_precision_loss = False

    def __call__(self) -> float:
        self.report.evaluations += 1
        result = self.f(self.params)
        value = as_array("gradcheck", "the value of f", result)
        if value.size != 1:
            raise TypeError(f"gradcheck: expected f to return a scalar loss, got an array of shape {value.shape}.")
        if value.dtype.kind not in "fiu":
            raise TypeError(f"gradcheck: expected f to return a real number, got {type(result).__name__} "
                            f"of dtype {value.dtype}.")
        self.low_precision_loss |= bool(np.issubdtype(value.dtype, np.floating) and value.dtype.itemsize < 8)
        return float(value.reshape(()))

    def central(self, param: NDArray, index: tuple[int, ...], eps: float) -> tuple[float, float, float]:
        """``(f(p + h e_j), f(p - h e_j), 2h)`` with the steps actually representable in ``param``'s dtype;
        the entry is restored bit for bit, also when ``f`` raises."""
        original = param[index].copy()
        try:
            param[index] = original + eps
            up, plus = float(param[index]), self()
            param[index] = original - eps
            down, minus = float(param[index]), self()
        finally:
            param[index] = original
        return plus, minus, up - down


def _working_dtype(params: Mapping[str, NDArray]) -> np.dtype:
    """The lowest floating precision among the params."""
    return min((np.dtype(p.dtype) for p in params.values()), key=lambda d: d.itemsize, default=np.dtype(np.float64))


def _check_arguments(f: object, params: object, grads: object, mode: str, samples: int | None,
                     numbers_given: Mapping[str, object]) -> None:
    if not callable(f):
        raise TypeError(f"gradcheck: expected f to be callable, got {type(f).__name__}.")
    for name, value in (("params", params), ("grads", grads)):
        if not isinstance(value, Mapping):
            raise TypeError(f"gradcheck: expected {name} to be a mapping of names to arrays, got "
                            f"{type(value).__name__}.")
    for name, value in numbers_given.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Real)):
            raise TypeError(f"gradcheck: expected {name} to be a real number, got {type(value).__name__}.")
    for name in params:
        if name in grads:
            as_real_array("gradcheck", f"grads[{name!r}]", grads[name])
    for name, value in params.items():
        if not isinstance(value, np.ndarray) or value.dtype not in _PRECISION:
            got = f"dtype {value.dtype}" if isinstance(value, np.ndarray) else type(value).__name__
            raise TypeError(f"gradcheck: expected params[{name!r}] to be a float32 or float64 ndarray "
                            f"(it is perturbed in place), got {got}.")
    if not isinstance(mode, str) or mode not in MODES:
        raise ValueError(f"gradcheck: expected mode to be one of {', '.join(MODES)}, got {mode!r}.")
    if samples is not None and (isinstance(samples, bool) or not isinstance(samples, int) or samples < 1):
        raise ValueError(f"gradcheck: expected samples to be an int >= 1, got {samples!r}.")


def _grad_diagnoses(params: Mapping[str, NDArray], grads: Mapping[str, object]) -> list[Diagnosis]:
    """``missing-grad`` and ``shape-mismatch``: tensors that cannot be compared at all."""
    missing = [name for name in params if name not in grads]
    mismatched = [name for name in params if name in grads and np.shape(grads[name]) != params[name].shape]
    found = []
    if missing:
        found.append(Diagnosis("missing-grad", f"grads has no entry for {missing}: every param needs its "
                               "analytic gradient under the same key.", "error", tuple(missing)))
    if mismatched:
        shapes = ", ".join(f"{n}: expected {params[n].shape}, got {np.shape(grads[n])}" for n in mismatched)
        found.append(Diagnosis("shape-mismatch", f"gradients with another shape than their param ({shapes}); "
                               "a transposed or summed gradient is the usual cause.", "error", tuple(mismatched)))
    return found


def _examine_function(evaluate: _Evaluator, params: Mapping[str, NDArray], loss: float | None,
                      dtype: np.dtype) -> tuple[float, list[Diagnosis]]:
    """Evaluate f twice at the point; return its value and any reason not to trust it."""
    before = {name: value.copy() for name, value in params.items()}
    first = evaluate()
    mutated = [name for name, value in params.items() if not np.array_equal(value, before[name], equal_nan=True)]
    if mutated:
        for name in mutated:
            np.copyto(params[name], before[name])
        return first, [Diagnosis(
            "params-mutated", f"f changed the arrays it was given ({mutated}); they were restored. f must only "
            "read its params: copy before modifying, and keep running state outside them.", "error", tuple(mutated))]
    if not math.isfinite(first):
        raise ValueError(f"gradcheck: expected f(params) to be finite, got {first}: differences of a non-finite "
                         "loss say nothing about its slope.")
    second = evaluate()
    if evaluate.low_precision_loss:
        dtype = np.dtype(np.float32)
    tolerance = _REPEAT_RTOL[dtype] * max(1.0, abs(first))
    if not abs(first - second) <= tolerance:
        return first, [Diagnosis(
            "nondeterministic", f"f returned {first:.10g} and then {second:.10g} at the same point, so differences "
            "of f measure its randomness, not its slope. Remove randomness (dropout, sampling: fix the mask or "
            "reseed inside f) and state carried between calls (start every call from the same h0, c0).")]
    if loss is not None and not abs(first - float(loss)) <= tolerance:
        return first, [Diagnosis(
            "loss-mismatch", f"f(params) = {first:.10g} but the gradients came with loss {float(loss):.10g}, so f "
            "is not the function the gradients were computed for. A common cause: the perturbed passes start "
            "from the final (h, c) of an earlier pass instead of the initial state; or f uses other data, "
            "targets or a summed instead of a mean loss.")]
    return first, []


def _precision_diagnosis(params: Mapping[str, NDArray], loss_is_low: bool) -> Diagnosis | None:
    low = [name for name, p in params.items() if p.dtype.itemsize < 8]
    if not low and not loss_is_low:
        return None
    what = f"params {low} are float32" if low else "f returns a float32 loss"
    return Diagnosis(
        "low-precision", f"{what}: central differences then carry errors of about 1e-3 relative (rounding of "
        "about 1e-7 |f| divided by the step), so agreement to 2-3 digits is all that can be trusted and "
        "the tolerances are loosened accordingly. For a real check, compute in float64 (e.g. build the "
        "layer with dtype=np.float64, or bptt.check_layer, which checks a float64 copy).", "warning", tuple(low))


def _entries(param: NDArray, mode: str, samples: int, rng: np.random.Generator) -> Iterator[tuple[int, ...]]:
    if mode == "sample" and samples < param.size:
        chosen = np.sort(rng.choice(param.size, size=samples, replace=False))
        return (tuple(int(k) for k in np.unravel_index(j, param.shape)) for j in chosen)
    return np.ndindex(param.shape)


@dataclass
class _Entry:
    index: tuple[int, ...]
    analytic: float
    numeric: float
    plus: float
    minus: float
    step: float


class _Checker:
    """Checks one tensor at a time with the report's eps and tolerances; records diagnoses on the report."""

    def __init__(self, evaluate: _Evaluator, report: Report, value_at_point: float, sweep: tuple[float, ...],
                 unit_roundoff: float):
        self.evaluate, self.report, self.f0, self.sweep = evaluate, report, value_at_point, sweep
        self.rounding = unit_roundoff * max(1.0, abs(value_at_point))  # error of one evaluation of f

    def tolerance(self, analytic: float, numeric: float) -> float:
        return self.report.atol + self.report.rtol * max(abs(analytic), abs(numeric))

    def passes(self, analytic: float, numeric: float) -> bool:
        return abs(analytic - numeric) <= self.tolerance(analytic, numeric)  # NaN fails

    def entry(self, param: NDArray, grad: NDArray, index: tuple[int, ...], eps: float) -> _Entry:
        plus, minus, step = self.evaluate.central(param, index, eps)
        numeric = (plus - minus) / step if step else math.nan  # a step below the spacing of p: no difference
        return _Entry(index, float(grad[index]), numeric, plus, minus, step)

    def direction_passes(self, name: str, param: NDArray, grad: NDArray, rng: np.random.Generator) -> TensorResult:
        """Compare v.g with (f(p + eps v) - f(p - eps v)) / 2 eps for one random unit direction v."""
        direction = rng.standard_normal(param.shape)
        direction /= np.linalg.norm(direction)
        original = param.copy()
        try:
            np.add(original, self.report.eps * direction, out=param, casting="unsafe")
            plus = self.evaluate()
            np.subtract(original, self.report.eps * direction, out=param, casting="unsafe")
            minus = self.evaluate()
        finally:
            np.copyto(param, original)
        analytic = float(np.vdot(direction, grad))
        numeric = (plus - minus) / (2.0 * self.report.eps)
        error = abs(analytic - numeric)
        scale = max(abs(analytic), abs(numeric), self.report.atol / self.report.rtol)
        return TensorResult(name, param.shape, 0, error, error / scale, (), analytic, numeric,
                            0 if self.passes(analytic, numeric) else 1)

    def tensor(self, name: str, param: NDArray, grad: NDArray, indices) -> TensorResult:
        entries = [self.entry(param, grad, index, self.report.eps) for index in indices]
        failing = [e for e in entries if not self.passes(e.analytic, e.numeric)]
        failing = self._set_aside_kinks(name, param, grad, failing)
        failing = self._rescue_by_step_size(name, param, grad, failing)
        return self._summarise(name, param.shape, entries, failing)

    def _set_aside_kinks(self, name, param, grad, failing: list[_Entry]) -> list[_Entry]:
        """Entries where the left and right slopes differ by a jump that persists at a 10x smaller step,
        with the analytic value between them, are kinks: reported, not failed."""
        kinks, remaining = [], []
        for e in failing:
            if self._is_kink(param, grad, e):
                kinks.append(e.index)
            else:
                remaining.append(e)
        if kinks:
            shown = ", ".join(map(str, kinks[:5])) + (f" and {len(kinks) - 5} more" if len(kinks) > 5 else "")
            self.report.diagnoses.append(Diagnosis(
                "kink", f"{name}: {len(kinks)} entries sit on a non-differentiable point (at {shown}): the slopes "
                "left and right of it differ by a jump that does not shrink with the step, and the analytic "
                "value is one of them. This is a kink (ReLU or abs at 0, max ties), not a wrong gradient; "
                "check at a point away from it.", "warning", (name,)))
        return remaining

    def _is_kink(self, param, grad, e: _Entry) -> bool:
        """A kink's one-sided slopes differ by a jump that stays the same at a 10x smaller step: curvature
        makes the jump shrink with the step, rounding noise makes it grow."""
        slopes, jumps = [], []
        for eps in (self.report.eps, self.report.eps / 10):
            if eps == self.report.eps:
                plus, minus, step = e.plus, e.minus, e.step
            else:
                plus, minus, step = self.evaluate.central(param, e.index, eps)
            if not step:
                return False
            right, left = (plus - self.f0) / (step / 2), (self.f0 - minus) / (step / 2)
            jump = abs(right - left)
            if not (jump > _KINK_JUMP * self.tolerance(right, left) and jump > _KINK_NOISE * self.rounding / step):
                return False
            slopes.append((left, right))
            jumps.append(jump)
        if not 0.5 * jumps[0] <= jumps[1] <= 2.0 * jumps[0]:
            return False
        left, right = slopes[-1]
        margin = self.tolerance(left, right)
        return min(left, right) - margin <= e.analytic <= max(left, right) + margin

    def _rescue_by_step_size(self, name, param, grad, failing: list[_Entry]) -> list[_Entry]:
        """If the worst failing entries all pass at another eps of the sweep, and then every failing entry
        does, the failures were truncation (eps too large) or rounding (eps too small) error."""
        if not failing:
            return failing
        ranked = sorted(failing, key=lambda e: -abs(e.analytic - e.numeric))
        worst, rest = ranked[:_SWEEP_ENTRIES], ranked[_SWEEP_ENTRIES:]
        by_distance = sorted((eps for eps in self.sweep if eps != self.report.eps),
                             key=lambda eps: abs(math.log(eps / self.report.eps)))

        def all_pass(entries: list[_Entry], eps: float) -> bool:
            return all(self.passes(e.analytic, self.entry(param, grad, e.index, eps).numeric) for e in entries)

        for eps in by_distance:
            if all_pass(worst, eps) and all_pass(rest, eps):
                cause = ("truncation error: the step is too large for the curvature of f"
                         if eps < self.report.eps else
                         "rounding error: the step is too small, so f(p + eps) - f(p - eps) loses its digits")
                self.report.diagnoses.append(Diagnosis(
                    "step-size", f"{name}: {len(failing)} entries fail at eps={self.report.eps:g} but pass at "
                    f"eps={eps:g}, so the failures are {cause}, not a wrong gradient. Rerun with eps={eps:g}.",
                    "warning", (name,)))
                return []
        return failing

    def _summarise(self, name: str, shape: tuple[int, ...], entries: list[_Entry],
                   failing: list[_Entry]) -> TensorResult:
        """Largest errors over all entries; the worst entry shown is the worst failing one, if any fails
        (a kink set aside can have a larger error than the real failure)."""
        if not entries:
            return TensorResult(name, shape, 0, 0.0, 0.0, (), 0.0, 0.0, 0)

        def errors(chosen: list[_Entry]) -> tuple[np.ndarray, np.ndarray]:
            analytic = np.array([e.analytic for e in chosen])
            numeric = np.array([e.numeric for e in chosen])
            abs_error = np.nan_to_num(np.abs(analytic - numeric), nan=np.inf)
            scale = np.maximum(np.maximum(np.abs(analytic), np.abs(numeric)), self.report.atol / self.report.rtol)
            return abs_error, np.nan_to_num(abs_error / scale, nan=np.inf)

        abs_error, rel_error = errors(entries)
        shown = failing or entries
        worst = shown[int(np.argmax(errors(shown)[1]))]
        return TensorResult(name, shape, len(entries), float(abs_error.max()), float(rel_error.max()),
                            worst.index, worst.analytic, worst.numeric, len(failing))


def gradcheck(f: Loss, params: Mapping[str, NDArray], grads: Mapping[str, NDArray], *, loss: float | None = None,
              eps: float | None = None, atol: float | None = None, rtol: float | None = None, mode: str = "full",
              samples: int | None = None, seed: int | None = None) -> Report:
    r"""Compare analytic gradients with central differences of ``f`` and explain any disagreement.

    Parameters
    ----------
    f : maps the params dict to a scalar loss. It is called with the very arrays in ``params``, perturbed
        in place, so it must compute the loss from them afresh each call: same initial states, no
        randomness, no writes to its arguments.
    params : dict of float arrays, anything ``f`` reads: weights, inputs, initial states.
    grads : the analytic gradients, same keys and shapes.
    loss : the loss value computed alongside ``grads``; when given, ``f(params)`` must reproduce it.
    eps, atol, rtol : step and tolerances. Defaults by the working precision: float64 ``1e-6``,
        ``1e-7 max(1, |f|)``, ``1e-5``; float32 ``1e-2``, ``1e-3 max(1, |f|)``, ``1e-2``.
    mode : ``"full"`` checks every entry (2 evaluations each); ``"sample"`` ``samples`` random entries per
        tensor; ``"fast"`` one random directional derivative per tensor (2 evaluations), and every entry
        of a tensor whose directional derivative disagrees.
    samples : entries per tensor in ``"sample"`` mode (default 10).
    seed : seeds the sampled entries and directions.

    Returns
    -------
    Report

    Examples
    --------
    >>> w = {"w": np.array([1.0, -2.0])}
    >>> gradcheck(lambda p: float(np.sum(p["w"] ** 3)), w, {"w": 3 * w["w"] ** 2}).ok
    True
    >>> gradcheck(lambda p: float(np.sum(p["w"] ** 3)), w, {"w": 2 * w["w"]}).failed
    ['w']
    """
    _check_arguments(f, params, grads, mode, samples, {"loss": loss, "eps": eps, "atol": atol, "rtol": rtol})
    rng = resolve_rng("gradcheck", seed, "seed")
    report = Report(mode=mode, names=list(params))
    evaluate = _Evaluator(f, params, report)
    report.diagnoses += _grad_diagnoses(params, grads)
    value_at_point, problems = _examine_function(evaluate, params, loss, _working_dtype(params))
    low_precision = _precision_diagnosis(params, evaluate.low_precision_loss)
    default_eps, atol_per_unit, default_rtol, sweep = _PRECISION[np.dtype(np.float32 if low_precision else np.float64)]
    report.loss = value_at_point
    report.eps = default_eps if eps is None else float(eps)
    report.rtol = default_rtol if rtol is None else float(rtol)
    report.atol = atol_per_unit * max(1.0, abs(value_at_point)) if atol is None else float(atol)
    if not all(math.isfinite(v) and v > 0 for v in (report.eps, report.atol, report.rtol)):
        raise ValueError(f"gradcheck: expected eps, atol and rtol > 0 and finite, got {report.eps}, {report.atol}, "
                         f"{report.rtol}.")
    report.diagnoses += [low_precision] if low_precision else []
    if problems:
        report.diagnoses = problems + report.diagnoses
        return report
    checker = _Checker(evaluate, report, value_at_point, sweep,
                       float(np.finfo(np.float32 if low_precision else np.float64).eps))
    skipped = {t for d in report.diagnoses if d.code in ("missing-grad", "shape-mismatch") for t in d.tensors}
    for name, param in params.items():
        if name in skipped:
            continue
        grad = np.asarray(grads[name], dtype=np.float64)
        if mode == "fast":
            row = checker.direction_passes(name, param, grad, rng)
            if row.ok:
                report.rows.append(row)
                continue
        report.rows.append(checker.tensor(name, param, grad, _entries(param, mode, samples or DEFAULT_SAMPLES, rng)))
    return report
