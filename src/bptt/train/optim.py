r"""Optimizers that update a module's ``params`` in place from its ``grads``, learning-rate schedules, and
gradient-norm clipping.

The update formulas follow ``torch.optim``'s single-tensor (for-loop) code paths operation by operation,
so that the same gradient sequence gives the same weights in both libraries. The only difference left is
rounding: PyTorch's vectorised CPU kernels fuse some multiply-adds (``add(alpha=)``, ``addcmul``,
``lerp``), NumPy rounds the product and the sum separately, so results agree to a few units in the last
place per step rather than bitwise.

Every optimizer takes ``params`` and ``grads`` (mappings of the same names to arrays of the same shapes),
reads ``grads`` at each :meth:`~Optimizer.step` and writes ``params`` in place. ``optimizer.lr`` may be
changed between steps; a schedule gives the value for each step::

    optimizer = AdamW(model.params, model.grads, lr=3e-3)
    schedule = LinearWarmup(100, then=CosineLR(900, final_lr=1e-5))
    for step in range(1000):
        optimizer.lr = schedule.lr(step, 3e-3)
        ...  # forward, backward into model.grads
        optimizer.step()

``state_dict()`` returns the step count, ``lr`` and every per-parameter buffer (named as in
``torch.optim``'s ``optimizer.state``, keyed by parameter name) as plain numbers and arrays;
``load_state_dict`` restores them, so a resumed run continues bitwise identically.
"""

from __future__ import annotations

import math
import numbers
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from bptt._validation import as_real_array, check_bool

# Each hyperparameter check: its range as the message writes it, and the test of the value.
_RANGES = {
    "> 0": lambda v: v > 0,
    ">= 0": lambda v: v >= 0,
    "in [0, 1)": lambda v: 0 <= v < 1,
    "in [0, 1]": lambda v: 0 <= v <= 1,
    "in (0, 1]": lambda v: 0 < v <= 1,
}


def _hyper(where: str, name: str, value: object, rule: str) -> float:
    """Return ``value`` as a float after checking that it is a real number within ``rule`` (a key of _RANGES)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{where}: expected {name} to be a real number, got {type(value).__name__}.")
    if not _RANGES[rule](float(value)):  # NaN fails every rule
        raise ValueError(f"{where}: expected {name} {rule}, got {value}.")
    return float(value)


def _count(where: str, name: str, value: object, minimum: int) -> int:
    """Return ``value`` as an int >= ``minimum``; integral floats and 0-d arrays (a loaded checkpoint) pass."""
    array = np.asarray(value) if isinstance(value, (numbers.Real, np.ndarray)) else None
    if array is None or array.ndim != 0 or array.dtype == np.bool_ or not np.issubdtype(array.dtype, np.number):
        raise TypeError(f"{where}: expected {name} to be an int, got {type(value).__name__}.")
    if not (np.isfinite(array) and array == np.floor(array) and array >= minimum):
        raise ValueError(f"{where}: expected {name} to be an int >= {minimum}, got {value}.")
    return int(array)


def _check_float_arrays(where: str, name: str, arrays: object) -> None:
    """Raise unless ``arrays`` maps names to float ndarrays, the only arrays that can be updated in place."""
    if not isinstance(arrays, Mapping):
        raise TypeError(f"{where}: expected {name} to be a mapping of names to arrays, got {type(arrays).__name__}.")
    for key, value in arrays.items():
        if not isinstance(value, np.ndarray) or value.dtype.kind != "f":
            got = f"dtype {value.dtype}" if isinstance(value, np.ndarray) else type(value).__name__
            raise TypeError(f"{where}: expected {name}[{key!r}] to be a float ndarray (it is updated in place), "
                            f"got {got}.")


def _lerp_(start: NDArray, end: NDArray, weight: float) -> None:
    r"""``start`` :math:`\leftarrow` ``start`` + ``weight`` (``end`` - ``start``) in place, in ``torch.lerp``'s
    two-sided form (exact at both ends)."""
    if abs(weight) < 0.5:
        start += weight * (end - start)
    else:
        np.subtract(end, (end - start) * (1.0 - weight), out=start)


def clip_grad_norm(grads: Mapping[str, NDArray], max_norm: float) -> float:
    r"""Scale all gradients together so that their global L2 norm is at most ``max_norm``.

    As ``torch.nn.utils.clip_grad_norm_``: with :math:`\|g\| = \sqrt{\sum_k \|g_k\|^2}`, every gradient is
    multiplied by :math:`\min(1, \mathrm{max\_norm} / (\|g\| + 10^{-6}))`. Returns :math:`\|g\|` before
    clipping.
    """
    _hyper("clip_grad_norm", "max_norm", max_norm, "> 0")
    _check_float_arrays("clip_grad_norm", "grads", grads)
    total = math.sqrt(sum(float(np.vdot(g, g)) for g in grads.values()))
    coefficient = max_norm / (total + 1e-6)
    if coefficient < 1.0:
        for grad in grads.values():
            grad *= coefficient
    return total


class Optimizer(ABC):
    r"""What every optimizer shares: the ``params``/``grads`` pair, ``lr``, the step count and the state dict.

    A subclass names its per-parameter buffers in ``_buffers`` (``torch.optim``'s state keys), holds each
    as an attribute of that name (a dict from parameter name to an array shaped like the parameter), and
    implements :meth:`_update` for one parameter. :meth:`step` counts the step first, so ``_update`` sees
    :math:`t = 1` on the first step, as PyTorch's ``state["step"]``.

    Parameters
    ----------
    params : Mapping[str, NDArray]
        The arrays to update in place.
    grads : Mapping[str, NDArray]
        A gradient for every key of ``params``, of the same shape; read anew at every step.
    lr : float
        The learning rate :math:`\gamma > 0`; the ``lr`` attribute may be changed between steps.
    """

    _buffers: tuple[str, ...] = ()

    def __init__(self, params: Mapping[str, NDArray], grads: Mapping[str, NDArray], lr: float) -> None:
        where = type(self).__name__
        self.lr = _hyper(where, "lr", lr, "> 0")
        _check_float_arrays(where, "params", params)
        if not isinstance(grads, Mapping):
            raise TypeError(f"{where}: expected grads to be a mapping of names to arrays, got {type(grads).__name__}.")
        missing = [k for k in params if k not in grads]
        if missing:
            raise ValueError(f"{where}: expected a gradient for every param, got none for {missing}.")
        for name, param in params.items():
            as_real_array(where, f"grads[{name!r}]", grads[name])
            if np.shape(grads[name]) != np.shape(param):
                raise ValueError(f"{where}: expected the gradient of {name} of shape {np.shape(param)}, "
                                 f"got {np.shape(grads[name])}.")
        self.params, self.grads = params, grads
        self.step_count = 0

    def _zeros(self) -> dict[str, NDArray]:
        return {name: np.zeros_like(param) for name, param in self.params.items()}

    @abstractmethod
    def _update(self, name: str, param: NDArray, grad: NDArray) -> None:
        """Update ``param`` in place from ``grad`` and its buffers; never write to ``grad``."""

    def step(self) -> None:
        """Apply one update to every param, in place. ``lr`` may have been changed since the last step (a
        schedule may reach 0, so 0 is allowed here)."""
        _hyper(f"{type(self).__name__}.step", "lr", self.lr, ">= 0")
        self.step_count += 1
        for name, param in self.params.items():
            self._update(name, param, self.grads[name])

    def state_dict(self) -> dict[str, object]:
        """Copies of the optimizer's state: ``{"step": int, "lr": float, <buffer>: {param name: array}}``.

        The buffers are those of ``torch.optim``'s ``optimizer.state`` (``exp_avg``, ``momentum_buffer``, ...);
        hyperparameters other than ``lr`` belong to the constructor call and are not included.
        """
        state: dict[str, object] = {"step": self.step_count, "lr": self.lr}
        for buffer in self._buffers:
            state[buffer] = {name: value.copy() for name, value in getattr(self, buffer).items()}
        return state

    def load_state_dict(self, state: Mapping[str, object]) -> None:
        """Restore a :meth:`state_dict` (of an optimizer of the same kind and settings over the same params),
        copying into the existing buffers. Checks every key, shape and value first and changes nothing when
        anything is off."""
        where = f"{type(self).__name__}.load_state_dict"
        if not isinstance(state, Mapping):
            raise TypeError(f"{where}: expected a mapping, got {type(state).__name__}.")
        expected = ["step", "lr", *self._buffers]
        if sorted(state) != sorted(expected):
            raise ValueError(f"{where}: expected keys {expected}, got {list(state)}.")
        step = _count(where, "step", state["step"], 0)
        lr = _hyper(where, "lr", state["lr"], ">= 0")  # a schedule may reach 0, as step() allows
        loaded = {}
        for buffer in self._buffers:
            values = state[buffer]
            if not isinstance(values, Mapping) or sorted(values) != sorted(self.params):
                got = list(values) if isinstance(values, Mapping) else type(values).__name__
                raise ValueError(f"{where}: expected {buffer} keyed by {list(self.params)}, got {got}.")
            for name, param in self.params.items():
                value = np.asarray(values[name])
                if value.shape != param.shape:
                    raise ValueError(f"{where}: expected {buffer}[{name!r}] of shape {param.shape}, "
                                     f"got {value.shape}.")
                if not np.issubdtype(value.dtype, np.floating):
                    raise TypeError(f"{where}: expected {buffer}[{name!r}] to be a float array, got dtype "
                                    f"{value.dtype}.")
                if not np.isfinite(value).all():
                    raise ValueError(f"{where}: expected finite values in {buffer}[{name!r}], got NaN or "
                                     "infinite entries.")
                loaded[buffer, name] = value
        for (buffer, name), value in loaded.items():
            np.copyto(getattr(self, buffer)[name], value, casting="same_kind")
        self.step_count, self.lr = step, lr


class SGD(Optimizer):
    r"""Stochastic gradient descent with optional momentum, as ``torch.optim.SGD``.

    With learning rate :math:`\gamma`, momentum :math:`\mu`, dampening :math:`\tau` and weight decay
    :math:`\lambda`, step :math:`t` does

    .. math::
        g &\leftarrow g + \lambda \theta \\
        b_t &= \begin{cases} g & t = 1 \\ \mu b_{t-1} + (1 - \tau) g & t > 1 \end{cases}
            \qquad \text{(when } \mu \ne 0\text{)} \\
        g &\leftarrow \begin{cases} g + \mu b_t & \text{nesterov} \\ b_t & \text{otherwise} \end{cases} \\
        \theta &\leftarrow \theta - \gamma g

    The buffer :math:`b` is ``momentum_buffer`` in the state dict (absent when :math:`\mu = 0`).

    Parameters
    ----------
    params, grads : Mapping[str, NDArray]
        Parameters updated in place, and their gradients (same keys and shapes).
    lr : float
        :math:`\gamma > 0`.
    momentum : float
        :math:`\mu \ge 0`; 0 is plain gradient descent.
    dampening : float
        :math:`\tau \in [0, 1]`, the fraction of the gradient withheld from the buffer after the first step.
    nesterov : bool
        Nesterov momentum; needs :math:`\mu > 0` and :math:`\tau = 0`.
    weight_decay : float
        :math:`\lambda \ge 0`, L2 regularisation added to the gradient.

    Examples
    --------
    >>> import numpy as np
    >>> params, grads = {"w": np.array([1.0, 2.0])}, {"w": np.array([0.5, -1.0])}
    >>> optimizer = SGD(params, grads, lr=0.1, momentum=0.9)
    >>> optimizer.step(); optimizer.step()  # buffer g, then 0.9 g + g
    >>> params["w"]
    array([0.855, 2.29 ])
    """

    def __init__(self, params: Mapping[str, NDArray], grads: Mapping[str, NDArray], lr: float,
                 momentum: float = 0.0, dampening: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0) -> None:
        super().__init__(params, grads, lr)
        self.momentum = _hyper("SGD", "momentum", momentum, ">= 0")
        self.dampening = _hyper("SGD", "dampening", dampening, "in [0, 1]")
        self.nesterov = check_bool("SGD", "nesterov", nesterov)
        self.weight_decay = _hyper("SGD", "weight_decay", weight_decay, ">= 0")
        if self.nesterov and not (self.momentum > 0 and self.dampening == 0):
            raise ValueError(f"SGD: expected momentum > 0 and dampening = 0 with nesterov=True, got "
                             f"momentum={momentum} and dampening={dampening}.")
        self._buffers = ("momentum_buffer",) if self.momentum != 0 else ()
        self.momentum_buffer = self._zeros() if self.momentum != 0 else {}

    def _update(self, name: str, param: NDArray, grad: NDArray) -> None:
        if self.weight_decay != 0:
            grad = grad + self.weight_decay * param
        if self.momentum != 0:
            buf = self.momentum_buffer[name]
            if self.step_count == 1:
                np.copyto(buf, grad)
            else:
                buf *= self.momentum
                buf += (1.0 - self.dampening) * grad
            grad = grad + self.momentum * buf if self.nesterov else buf
        param -= self.lr * grad


class Adam(Optimizer):
    r"""Adam (Kingma & Ba, 2015) with ``torch.optim.Adam``'s arithmetic; L2 weight decay on the gradient.

    With learning rate :math:`\gamma`, :math:`(\beta_1, \beta_2)` = ``betas`` and weight decay
    :math:`\lambda`, step :math:`t` does

    .. math::
        g &\leftarrow g + \lambda \theta \\
        m &\leftarrow m + (1 - \beta_1)(g - m), \qquad v \leftarrow \beta_2 v + (1 - \beta_2) g^2 \\
        \theta &\leftarrow \theta - \frac{\gamma}{1 - \beta_1^t}\,
            \frac{m}{\sqrt{v} / \sqrt{1 - \beta_2^t} + \epsilon}

    :math:`m, v` are ``exp_avg`` and ``exp_avg_sq`` (also attributes of those names), both starting at 0.

    Parameters
    ----------
    params, grads : Mapping[str, NDArray]
        Parameters updated in place, and their gradients (same keys and shapes).
    lr : float
        :math:`\gamma > 0`.
    betas : tuple[float, float]
        Decay rates of the two moments, each in :math:`[0, 1)`.
    eps : float
        :math:`\epsilon \ge 0`, added to the bias-corrected root mean square.
    weight_decay : float
        :math:`\lambda \ge 0`, L2 regularisation added to the gradient (see :class:`AdamW` for the decoupled
        form).

    Examples
    --------
    >>> import numpy as np
    >>> params, grads = {"w": np.array([1.0, -2.0])}, {"w": np.array([0.5, -4.0])}
    >>> Adam(params, grads, lr=0.1, eps=0.0).step()  # the first step moves each weight by lr sign(g)
    >>> params["w"]
    array([ 0.9, -1.9])
    """

    _decoupled = False

    def __init__(self, params: Mapping[str, NDArray], grads: Mapping[str, NDArray], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0) -> None:
        super().__init__(params, grads, lr)
        where = type(self).__name__
        if not (isinstance(betas, (tuple, list)) and len(betas) == 2):
            raise TypeError(f"{where}: expected betas to be a pair of floats, got {betas!r}.")
        if not all(isinstance(b, numbers.Real) and not isinstance(b, bool) and 0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"{where}: expected betas in [0, 1), got {betas}.")
        self.betas = (float(betas[0]), float(betas[1]))
        self.eps = _hyper(where, "eps", eps, ">= 0")
        self.weight_decay = _hyper(where, "weight_decay", weight_decay, ">= 0")
        self._buffers = ("exp_avg", "exp_avg_sq")
        self.exp_avg, self.exp_avg_sq = self._zeros(), self._zeros()

    def _update(self, name: str, param: NDArray, grad: NDArray) -> None:
        beta1, beta2 = self.betas
        if self.weight_decay != 0:
            if self._decoupled:
                param *= 1.0 - self.lr * self.weight_decay
            else:
                grad = grad + self.weight_decay * param
        m, v = self.exp_avg[name], self.exp_avg_sq[name]
        _lerp_(m, grad, 1.0 - beta1)
        v *= beta2
        v += (1.0 - beta2) * grad * grad
        bias_correction1 = 1.0 - beta1 ** self.step_count
        bias_correction2_sqrt = (1.0 - beta2 ** self.step_count) ** 0.5
        step_size = self.lr / bias_correction1
        denominator = np.sqrt(v) / bias_correction2_sqrt + self.eps
        param -= step_size * m / denominator


class AdamW(Adam):
    r"""Adam with decoupled weight decay (Loshchilov & Hutter, 2019), as ``torch.optim.AdamW``.

    The weights shrink before the Adam step, instead of the gradient growing:

    .. math::
        \theta \leftarrow \theta (1 - \gamma \lambda)

    and then the update of :class:`Adam` with :math:`\lambda = 0`.
    Same parameters and state as :class:`Adam`; ``weight_decay`` defaults to :math:`10^{-2}`.

    Examples
    --------
    >>> import numpy as np
    >>> params, grads = {"w": np.array([2.0])}, {"w": np.array([0.0])}
    >>> AdamW(params, grads, lr=0.1, weight_decay=0.5).step()  # zero gradient: only the decay, 2 (1 - 0.05)
    >>> params["w"]
    array([1.9])
    """

    _decoupled = True

    def __init__(self, params: Mapping[str, NDArray], grads: Mapping[str, NDArray], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 1e-2) -> None:
        super().__init__(params, grads, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)


class RMSprop(Optimizer):
    r"""RMSprop (Hinton, 2012), optionally centered (Graves, 2013) and with momentum, as ``torch.optim.RMSprop``.

    With learning rate :math:`\gamma`, smoothing :math:`\alpha`, momentum :math:`\mu` and weight decay
    :math:`\lambda`, step :math:`t` does

    .. math::
        g &\leftarrow g + \lambda \theta \\
        v &\leftarrow \alpha v + (1 - \alpha) g^2 \\
        \tilde v &= \begin{cases} v - \bar g^2, \quad \bar g \leftarrow \bar g + (1 - \alpha)(g - \bar g)
            & \text{centered} \\ v & \text{otherwise} \end{cases} \\
        \theta &\leftarrow \begin{cases} \theta - \gamma b, \quad b \leftarrow \mu b + g / (\sqrt{\tilde v}
            + \epsilon) & \mu > 0 \\ \theta - \gamma g / (\sqrt{\tilde v} + \epsilon) & \mu = 0 \end{cases}

    :math:`v, \bar g, b` are ``square_avg``, ``grad_avg`` (when centered) and ``momentum_buffer`` (when
    :math:`\mu > 0`), all starting at 0.

    Parameters
    ----------
    params, grads : Mapping[str, NDArray]
        Parameters updated in place, and their gradients (same keys and shapes).
    lr : float
        :math:`\gamma > 0`.
    alpha : float
        :math:`\alpha \in [0, 1)`, the decay of the running mean square.
    eps : float
        :math:`\epsilon \ge 0`, added to the root mean square.
    weight_decay : float
        :math:`\lambda \ge 0`, L2 regularisation added to the gradient.
    momentum : float
        :math:`\mu \ge 0`.
    centered : bool
        Normalise by the estimated variance :math:`v - \bar g^2` instead of the mean square.

    Examples
    --------
    >>> import numpy as np
    >>> params, grads = {"w": np.array([1.0])}, {"w": np.array([3.0])}
    >>> RMSprop(params, grads, lr=0.1, alpha=0.75, eps=0.0).step()  # v = 0.25 g^2, step lr g / (g / 2)
    >>> params["w"]
    array([0.8])
    """

    def __init__(self, params: Mapping[str, NDArray], grads: Mapping[str, NDArray], lr: float = 1e-2,
                 alpha: float = 0.99, eps: float = 1e-8, weight_decay: float = 0.0, momentum: float = 0.0,
                 centered: bool = False) -> None:
        super().__init__(params, grads, lr)
        self.alpha = _hyper("RMSprop", "alpha", alpha, "in [0, 1)")
        self.eps = _hyper("RMSprop", "eps", eps, ">= 0")
        self.weight_decay = _hyper("RMSprop", "weight_decay", weight_decay, ">= 0")
        self.momentum = _hyper("RMSprop", "momentum", momentum, ">= 0")
        self.centered = check_bool("RMSprop", "centered", centered)
        self._buffers = ("square_avg",)
        if self.momentum > 0:
            self._buffers += ("momentum_buffer",)
        if self.centered:
            self._buffers += ("grad_avg",)
        self.square_avg = self._zeros()
        self.momentum_buffer = self._zeros() if self.momentum > 0 else {}
        self.grad_avg = self._zeros() if self.centered else {}

    def _update(self, name: str, param: NDArray, grad: NDArray) -> None:
        if self.weight_decay != 0:
            grad = grad + self.weight_decay * param
        square_avg = self.square_avg[name]
        square_avg *= self.alpha
        square_avg += (1.0 - self.alpha) * grad * grad
        if self.centered:
            grad_avg = self.grad_avg[name]
            _lerp_(grad_avg, grad, 1.0 - self.alpha)
            root = np.sqrt(square_avg - grad_avg * grad_avg)
        else:
            root = np.sqrt(square_avg)
        root += self.eps
        if self.momentum > 0:
            buf = self.momentum_buffer[name]
            buf *= self.momentum
            buf += grad / root
            param -= self.lr * buf
        else:
            param -= self.lr * grad / root


OPTIMIZERS: dict[str, type[Optimizer]] = {"sgd": SGD, "adam": Adam, "adamw": AdamW, "rmsprop": RMSprop}
"""The optimizers by name, for configuration files and the command line."""


class Schedule(ABC):
    r"""A learning-rate schedule: ``schedule.lr(step, base_lr)`` is the lr of update ``step``, counted from 0.

    Step 0 is the first update, as the ``last_epoch`` of a freshly built ``torch.optim.lr_scheduler``
    scheduler, so ``optimizer.lr = schedule.lr(step, base_lr)`` before the ``step``-th ``optimizer.step()``
    reproduces PyTorch's ``optimizer.step(); scheduler.step()`` loop. Schedules hold no state.
    """

    @abstractmethod
    def lr(self, step: int, base_lr: float) -> float:
        """The learning rate of update ``step`` (``0, 1, ...``) of a run that starts at ``base_lr``."""


@dataclass(frozen=True)
class StepLR(Schedule):
    r"""Decay by ``gamma`` every ``step_size`` steps, as ``torch.optim.lr_scheduler.StepLR``:
    :math:`\mathrm{lr}_t = \mathrm{base} \cdot \gamma^{\lfloor t / \mathrm{step\_size} \rfloor}`.

    Examples
    --------
    >>> [StepLR(2, gamma=0.5).lr(t, 1.0) for t in range(5)]
    [1.0, 1.0, 0.5, 0.5, 0.25]
    """

    step_size: int
    gamma: float = 0.1

    def __post_init__(self) -> None:
        object.__setattr__(self, "step_size", _count("StepLR", "step_size", self.step_size, 1))
        object.__setattr__(self, "gamma", _hyper("StepLR", "gamma", self.gamma, "> 0"))

    def lr(self, step: int, base_lr: float) -> float:
        base_lr = _hyper("StepLR.lr", "base_lr", base_lr, "> 0")
        return base_lr * self.gamma ** (_count("StepLR.lr", "step", step, 0) // self.step_size)


@dataclass(frozen=True)
class CosineLR(Schedule):
    r"""Cosine decay from ``base_lr`` at step 0 to ``final_lr`` at ``total_steps``, then constant; the closed
    form of ``torch.optim.lr_scheduler.CosineAnnealingLR`` (``T_max = total_steps``, ``eta_min = final_lr``):

    .. math::
        \mathrm{lr}_t = \mathrm{final} + \frac{(\mathrm{base} - \mathrm{final})
            \left(1 + \cos(\pi \min(t, T) / T)\right)}{2}

    (PyTorch's version rises again after :math:`T`; this one stays at ``final_lr``.)

    Examples
    --------
    >>> [CosineLR(4, final_lr=0.1).lr(t, 1.1) for t in (0, 2, 4, 9)]
    [1.1, 0.6, 0.1, 0.1]
    """

    total_steps: int
    final_lr: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "total_steps", _count("CosineLR", "total_steps", self.total_steps, 1))
        object.__setattr__(self, "final_lr", _hyper("CosineLR", "final_lr", self.final_lr, ">= 0"))

    def lr(self, step: int, base_lr: float) -> float:
        step = min(_count("CosineLR.lr", "step", step, 0), self.total_steps)
        base_lr = _hyper("CosineLR.lr", "base_lr", base_lr, "> 0")
        cosine = math.cos(math.pi * step / self.total_steps)
        return self.final_lr + (base_lr - self.final_lr) * (1 + cosine) / 2


@dataclass(frozen=True)
class LinearWarmup(Schedule):
    r"""Ramp linearly from ``start_factor * base_lr`` to ``base_lr`` over ``warmup_steps``, then follow ``then``
    (restarted at its step 0), or stay at ``base_lr`` when ``then`` is None.

    The ramp is ``torch.optim.lr_scheduler.LinearLR(start_factor, end_factor=1, total_iters=warmup_steps)``,
    and the hand-over that of ``SequentialLR([warmup, then], milestones=[warmup_steps])``:

    .. math::
        \mathrm{lr}_t = \begin{cases}
            \mathrm{base} \left(s + (1 - s)\, t / W\right) & t < W \\
            \mathrm{then}(t - W) & t \ge W \end{cases}

    Examples
    --------
    >>> schedule = LinearWarmup(4, then=StepLR(2, gamma=0.5), start_factor=0.25)
    >>> [schedule.lr(t, 1.0) for t in range(8)]
    [0.25, 0.4375, 0.625, 0.8125, 1.0, 1.0, 0.5, 0.5]
    """

    warmup_steps: int
    then: Schedule | None = None
    start_factor: float = 1e-3

    def __post_init__(self) -> None:
        object.__setattr__(self, "warmup_steps", _count("LinearWarmup", "warmup_steps", self.warmup_steps, 1))
        object.__setattr__(self, "start_factor",
                           _hyper("LinearWarmup", "start_factor", self.start_factor, "in (0, 1]"))
        if self.then is not None and not isinstance(self.then, Schedule):
            raise TypeError(f"LinearWarmup: expected then to be a Schedule or None, got {type(self.then).__name__}.")

    def lr(self, step: int, base_lr: float) -> float:
        step = _count("LinearWarmup.lr", "step", step, 0)
        base_lr = _hyper("LinearWarmup.lr", "base_lr", base_lr, "> 0")
        if step >= self.warmup_steps:
            return base_lr if self.then is None else self.then.lr(step - self.warmup_steps, base_lr)
        return base_lr * (self.start_factor + (1.0 - self.start_factor) * step / self.warmup_steps)


def cosine_lr(step: int, total_steps: int, base_lr: float, final_lr: float = 0.0) -> float:
    r"""Functional form of :class:`CosineLR`: cosine decay from ``base_lr`` at step 0 to ``final_lr`` at
    ``total_steps``, :math:`\mathrm{lr}_t = \mathrm{final} + \tfrac12 (\mathrm{base} - \mathrm{final})(1 +
    \cos(\pi t / T))`; steps are clamped to :math:`[0, T]`."""
    for name, value in (("step", step), ("total_steps", total_steps)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(f"cosine_lr: expected {name} to be an int, got {type(value).__name__}.")
    return CosineLR(max(total_steps, 1), final_lr).lr(min(max(step, 0), max(total_steps, 1)), base_lr)
