"""Training tasks, one module each: data, loss, the task's own metrics and its default settings.

A task is any object with this interface (:class:`Task`); ``bptt train TASK`` and ``bptt sweep TASK`` find
tasks by name in :data:`TASKS`.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
from numpy.typing import NDArray


class Task(Protocol):
    """What the trainer and the command line need from a task.

    Arrays are time-major: inputs ``x (T, N, input_size)``; targets ``y`` whatever :meth:`loss` compares
    the model's output ``(T, N, output_size)`` with (values, or integer class labels).
    """

    name: str
    input_size: int
    output_size: int
    defaults: dict[str, object]   # the task's default model and training settings (hidden_size, steps, lr, ...)

    def batch(self, rng: np.random.Generator, size: int, dtype: object) -> tuple[NDArray, NDArray]:
        """A fresh training batch of ``size`` sequences."""

    def held_out(self, split: str, rng: np.random.Generator, dtype: object) -> tuple[NDArray, NDArray]:
        """The ``"validation"`` or ``"test"`` set: never trained on. Synthetic tasks draw it from ``rng``."""

    def loss(self, pred: NDArray, target: NDArray) -> tuple[float, NDArray]:
        """The training loss and its gradient with respect to ``pred``."""

    def metrics(self, model, data: tuple[NDArray, NDArray]) -> dict[str, float]:
        """The task's own figures on held-out ``data`` (e.g. ``{"test_mse": ...}``), computed with ``model(x)``."""
