r"""Next-step prediction of sine waves with random phases, and free-running generation.

Each sequence samples :math:`u_k = \sin(2\pi k / P + \varphi)`, :math:`k = 0..T`, with a phase
:math:`\varphi \sim U(0, 2\pi)` drawn per sequence. The input is :math:`u_0..u_{T-1}` and the target the
next value, :math:`u_1..u_T`: a shift of a sequence one sample longer, never ``np.roll``, which would wrap
the last target around to the first input.

From one value alone the next is ambiguous (a sine passes each level once rising and once falling), so
the first ``warmup`` steps are left out of the loss and of the metric; after them the state has seen
enough of the wave to know its phase.

Generation: after observing the :math:`T` inputs of a held-out sequence, the model's last prediction is fed
back as the next input, ``generation_steps`` times; ``generation_mse`` compares these values with the true
continuation of the wave.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
from numpy.typing import NDArray

from bptt.train.losses import mse_loss


def generate(model, observed: NDArray, steps: int) -> NDArray:
    """Feed ``observed (T, N, 1)`` to ``model``, then its own predictions back for ``steps - 1`` more steps.
    Returns the ``steps`` predictions that follow ``observed``: ``(steps, N, 1)``."""
    pred = model(observed)
    generated = [pred[-1:]]
    for _ in range(steps - 1):
        generated.append(model(generated[-1], model.final_state))
    return np.concatenate(generated, axis=0)


@dataclass(frozen=True)
class SineTask:
    """Sequences of ``seq_len`` steps, ``period`` samples per cycle, loss from step ``warmup`` on."""

    name: ClassVar[str] = "sine"
    per_step_loss: ClassVar[bool] = True
    goals: ClassVar[dict] = {"test_mse": ("<", 1e-4), "generation_mse": ("<", 1e-2)}
    seq_len: int = 50
    period: float = 25.0
    warmup: int = 5
    generation_steps: int = 100
    held_out_size: int = 256
    input_size: int = 1
    output_size: int = 1
    defaults: dict = field(default_factory=lambda: {"hidden_size": 32, "num_layers": 1, "steps": 1500,
                                                    "batch_size": 32, "lr": 1e-2, "eval_every": 100})

    def _waves(self, phase: NDArray, steps: int, dtype: object, first: int = 0) -> NDArray:
        k = np.arange(first, first + steps, dtype=np.float64)[:, None]
        return np.sin(2.0 * np.pi * k / self.period + phase)[..., None].astype(dtype)

    def sample(self, rng: np.random.Generator, batch: int, dtype: object = np.float64) -> tuple[NDArray, NDArray]:
        """Return inputs and next-step targets, both ``(seq_len, batch, 1)``."""
        wave = self._waves(rng.uniform(0.0, 2.0 * np.pi, size=(1, batch)), self.seq_len + 1, dtype)
        return wave[:-1], wave[1:]

    def batch(self, rng: np.random.Generator, size: int, dtype: object) -> tuple[NDArray, NDArray]:
        return self.sample(rng, size, dtype)

    def held_out(self, split: str, rng: np.random.Generator, dtype: object) -> tuple[NDArray, NDArray]:
        return self.sample(rng, self.held_out_size, dtype)

    def loss(self, pred: NDArray, target: NDArray, start: int = 0) -> tuple[float, NDArray]:
        """MSE over the steps after the warm-up, and its gradient (zero on the warm-up steps). ``start`` is
        the step of ``pred[0]`` within its sequence, for chunks of truncated BPTT."""
        skip = min(max(self.warmup - start, 0), len(pred))
        dpred = np.zeros_like(pred)
        if skip == len(pred):
            return 0.0, dpred
        value, dpred[skip:] = mse_loss(pred[skip:], target[skip:])
        return value, dpred

    def continuation(self, x: NDArray, steps: int) -> NDArray:
        """The true values that follow the inputs ``x``, :math:`u_T .. u_{T+steps-1}`, from the phase each
        sequence's first two samples determine."""
        omega = 2.0 * np.pi / self.period
        u0, u1 = x[0, :, 0].astype(np.float64), x[1, :, 0].astype(np.float64)
        phase = np.arctan2(u0, (u1 - u0 * np.cos(omega)) / np.sin(omega))
        return self._waves(phase[None, :], steps, x.dtype, first=len(x))

    def metrics(self, model, data: tuple[NDArray, NDArray]) -> dict[str, float]:
        x, y = data
        generated = generate(model, x, self.generation_steps)
        truth = self.continuation(x, self.generation_steps)
        return {"test_mse": self.loss(model(x), y)[0],
                "generation_mse": float(np.mean((generated - truth) ** 2))}
