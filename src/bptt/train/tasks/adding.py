r"""The adding problem (Hochreiter & Schmidhuber, 1997): remember two marked numbers over a long gap.

Each sequence has ``seq_len`` steps with two input features: a value :math:`v_t \sim U(0, 1)` and a
marker :math:`m_t \in \{0, 1\}` that is 1 at exactly two steps, one drawn uniformly from the first half
(:math:`t < \lfloor T/2 \rfloor`) and one from the second half. The target is the sum of the two marked
values, :math:`y = \sum_t m_t v_t`, and only the output at the last step is scored: the model must carry
the first marked value across at least half the sequence.

Always answering 1, the mean of the sum, scores :math:`\mathrm{Var}(v_a + v_b) = 2 \cdot \tfrac1{12} =
\tfrac16 \approx 0.167`; :meth:`AddingTask.metrics` reports this baseline beside the model's MSE, since
learning the task means beating it by far.

Targets are time-major like everything else, with one step: ``y (1, N, 1)``, the target of the last step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
from numpy.typing import NDArray

from bptt._validation import check_dtype, check_positive_int, check_shape
from bptt.train.losses import mse_loss
from bptt.train.tasks._common import check_split


def _defaults() -> dict[str, object]:
    # Measured: with these settings an LSTM leaves the 0.167 plateau after about 1,000-1,500 steps and
    # reaches a test MSE near 1e-4 by 4,000 (about 15 ms per step on one core).
    return {"hidden_size": 32, "num_layers": 1, "steps": 4000, "batch_size": 32, "lr": 1e-2, "eval_every": 250}


@dataclass(frozen=True)
class AddingTask:
    """Adding problem on sequences of ``seq_len`` steps; held-out sets of ``held_out_size`` sequences.

    Shapes: ``x (seq_len, N, 2)`` with features (value, marker); ``y (1, N, 1)``, the marked sum, compared
    with the output of the last step ``pred[-1]``.

    Examples
    --------
    >>> task = AddingTask(seq_len=6)
    >>> x, y = task.batch(np.random.default_rng(0), 3)
    >>> x.shape, y.shape
    ((6, 3, 2), (1, 3, 1))
    >>> x[:, :, 1].sum(axis=0).tolist()
    [2.0, 2.0, 2.0]
    """

    seq_len: int = 100
    held_out_size: int = 1000
    name: str = field(default="adding", init=False)
    input_size: int = field(default=2, init=False)
    output_size: int = field(default=1, init=False)
    defaults: dict[str, object] = field(default_factory=_defaults, compare=False, repr=False)
    goals: ClassVar[dict] = {"test_mse": ("<", 0.01)}

    def __post_init__(self) -> None:
        check_positive_int("AddingTask", "seq_len", self.seq_len)
        check_positive_int("AddingTask", "held_out_size", self.held_out_size)
        if self.seq_len < 2:
            raise ValueError(f"AddingTask: expected seq_len >= 2 (a marker in each half), got {self.seq_len}.")

    def batch(self, rng: np.random.Generator, size: int, dtype: object = np.float64) -> tuple[NDArray, NDArray]:
        """A fresh batch: inputs ``(seq_len, size, 2)`` and targets ``(1, size, 1)``."""
        size = check_positive_int("AddingTask.batch", "size", size)
        dtype = check_dtype("AddingTask.batch", dtype)
        T, half = self.seq_len, self.seq_len // 2
        values = rng.uniform(0.0, 1.0, size=(T, size))
        first = rng.integers(0, half, size=size)           # a step in the first half, t < T // 2
        second = rng.integers(half, T, size=size)          # and one in the second half
        columns = np.arange(size)
        markers = np.zeros((T, size))
        markers[first, columns] = 1.0
        markers[second, columns] = 1.0
        x = np.stack([values, markers], axis=-1).astype(dtype)
        target = values[first, columns] + values[second, columns]
        return x, target.reshape(1, size, 1).astype(dtype)

    def held_out(self, split: str, rng: np.random.Generator, dtype: object = np.float64) -> tuple[NDArray, NDArray]:
        """``held_out_size`` sequences drawn from ``rng`` (a stream the training batches never use)."""
        check_split("AddingTask.held_out", split)
        return self.batch(rng, self.held_out_size, dtype)

    def _last_step(self, where: str, pred: NDArray, target: NDArray) -> tuple[NDArray, NDArray]:
        pred, target = np.asarray(pred), np.asarray(target)
        check_shape(where, "target", target, (1, None, 1))
        check_shape(where, "pred", pred, (None, target.shape[1], 1),
                    "The model's output at every step, time-major; only the last step is scored.")
        if pred.shape[0] == 0:
            raise ValueError(f"{where}: expected pred with at least one step, got shape {pred.shape}.")
        return pred[-1:], target

    def loss(self, pred: NDArray, target: NDArray) -> tuple[float, NDArray]:
        """MSE of the last step's output against the marked sum; the gradient is zero at every other step."""
        last, target = self._last_step("AddingTask.loss", pred, target)
        value, dlast = mse_loss(last, target)
        dpred = np.zeros(np.shape(pred), dtype=dlast.dtype)
        dpred[-1:] = dlast
        return value, dpred

    def metrics(self, model, data: tuple[NDArray, NDArray]) -> dict[str, float]:
        """``test_mse`` of the model on ``data`` and ``baseline_mse``, that of always answering 1."""
        x, target = data
        last, target = self._last_step("AddingTask.metrics", model(x), target)
        return {"test_mse": float(np.mean((last - target) ** 2)),
                "baseline_mse": float(np.mean((1.0 - target) ** 2))}
