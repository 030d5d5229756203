r"""Next-step prediction of sine waves with random phases.

Each sequence samples :math:`u_k = \sin(\omega k \Delta + \varphi)`, :math:`k = 0..T`, with a phase
:math:`\varphi \sim U(0, 2\pi)` drawn per sequence. The input is :math:`u_0..u_{T-1}` and the target the
next value, :math:`u_1..u_T`: a shift of a sequence one sample longer, never ``np.roll``, which would wrap
the last target around to the first input.

From one value alone the next is ambiguous (a sine passes each level once rising and once falling), so
the first ``warmup`` steps are left out of the loss and of the metric; after them the state has seen
enough of the wave to know its phase.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from bptt.losses import mse_loss


@dataclass(frozen=True)
class SineTask:
    """Sequences of ``seq_len`` steps, ``period`` samples per cycle, loss from step ``warmup`` on."""

    seq_len: int = 50
    period: float = 25.0
    warmup: int = 5
    input_size: int = 1
    output_size: int = 1

    def sample(self, rng: np.random.Generator, batch: int, dtype: object = np.float64) -> tuple[NDArray, NDArray]:
        """Return inputs and next-step targets, both ``(seq_len, batch, 1)``."""
        phase = rng.uniform(0.0, 2.0 * np.pi, size=(1, batch))
        k = np.arange(self.seq_len + 1, dtype=np.float64)[:, None]
        wave = np.sin(2.0 * np.pi * k / self.period + phase)[..., None].astype(dtype)
        return wave[:-1], wave[1:]

    def loss(self, pred: NDArray, target: NDArray) -> tuple[float, NDArray]:
        """MSE over the steps after the warm-up, and its gradient (zero on the warm-up steps)."""
        value, dpred_scored = mse_loss(pred[self.warmup:], target[self.warmup:])
        dpred = np.zeros_like(pred)
        dpred[self.warmup:] = dpred_scored
        return value, dpred
