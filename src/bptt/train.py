"""The fit loop: mini-batches from a task, Adam with a cosine learning-rate decay, gradient clipping,
periodic evaluation on held-out data, and a history of every step."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from bptt.module import Module
from bptt.optim import Adam, clip_grad_norm, cosine_lr


@dataclass(frozen=True)
class TrainConfig:
    """Optimization settings; the defaults train the sine task to test MSE < 1e-4 for every seed."""

    steps: int = 1500
    batch_size: int = 32
    lr: float = 1e-2
    final_lr: float = 1e-5
    clip_norm: float = 1.0
    eval_every: int = 100
    eval_batch: int = 256

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "eval_every", "eval_batch"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"TrainConfig: expected {name} to be an int >= 1, got {value!r}.")
        for name in ("lr", "clip_norm"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"TrainConfig: expected {name} > 0, got {value!r}.")
        if not (math.isfinite(self.final_lr) and 0 <= self.final_lr <= self.lr):
            raise ValueError(f"TrainConfig: expected 0 <= final_lr <= lr, got final_lr={self.final_lr!r}.")


@dataclass
class History:
    """Per-step training loss, gradient norm and learning rate; test MSE at each evaluation."""

    step: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    grad_norm: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    eval_step: list[int] = field(default_factory=list)
    test_mse: list[float] = field(default_factory=list)


class NonFiniteError(RuntimeError):
    """Training produced a NaN or infinite loss or gradient."""


def evaluate(model: Module, task, data: tuple[np.ndarray, np.ndarray]) -> float:
    """The task's loss on held-out data, without touching gradients."""
    x, y = data
    return task.loss(model(x), y)[0]


def fit(model: Module, task, config: TrainConfig, seed: int,
        on_step: Callable[[int, History], None] | None = None) -> History:
    """Train ``model`` on ``task`` in place; deterministic for a given ``seed``.

    Batches are drawn from one stream of the seed and the held-out set from another, so the test phases
    are never trained on. ``on_step(step, history)`` is called after every step (after the evaluation, on
    evaluation steps).
    """
    train_stream, test_stream = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    held_out = task.sample(test_stream, config.eval_batch, model.dtype)
    optimizer = Adam(model.params, model.grads, lr=config.lr)
    history = History()
    for step in range(1, config.steps + 1):
        optimizer.lr = cosine_lr(step - 1, config.steps, config.lr, config.final_lr)
        x, y = task.sample(train_stream, config.batch_size, model.dtype)
        loss, dpred = task.loss(model(x), y)
        model.zero_grad()
        model.backward(dpred)
        norm = clip_grad_norm(model.grads, config.clip_norm)
        if not (math.isfinite(loss) and math.isfinite(norm)):
            raise NonFiniteError(f"training stopped at step {step}: non-finite loss ({loss}) or gradient norm "
                                 f"({norm}). Lower the learning rate (--lr) or the clipping norm.")
        optimizer.step()
        history.step.append(step)
        history.loss.append(loss)
        history.grad_norm.append(norm)
        history.lr.append(optimizer.lr)
        if step % config.eval_every == 0 or step == config.steps:
            history.eval_step.append(step)
            history.test_mse.append(evaluate(model, task, held_out))
        if on_step is not None:
            on_step(step, history)
    return history
