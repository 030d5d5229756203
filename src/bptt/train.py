"""The fit loop: mini-batches from a task, an optimizer with linear warm-up and cosine decay, gradient
clipping, truncated BPTT, validation, early stopping and the best weights kept; deterministic for a seed."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from bptt.module import Module
from bptt.optim import OPTIMIZERS, clip_grad_norm, cosine_lr


@dataclass(frozen=True)
class TrainConfig:
    """Optimization settings. The defaults train the sine task to test MSE < 1e-4 for every seed.

    ``tbptt``: chunk length of truncated BPTT (None: whole sequences). Each chunk starts from the state the
    previous chunk ended in, its gradient stops at the chunk's start, and the optimizer steps after each
    chunk. ``patience``: evaluations without a better validation loss before training stops (None: never).
    """

    steps: int = 1500
    batch_size: int = 32
    lr: float = 1e-2
    final_lr: float = 1e-5
    warmup_steps: int = 0
    optimizer: str = "adam"
    weight_decay: float = 0.0
    clip_norm: float = 1.0
    eval_every: int = 100
    tbptt: int | None = None
    patience: int | None = None

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "eval_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"TrainConfig: expected {name} to be an int >= 1, got {value!r}.")
        for name in ("tbptt", "patience"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"TrainConfig: expected {name} to be None or an int >= 1, got {value!r}.")
        if isinstance(self.warmup_steps, bool) or not isinstance(self.warmup_steps, int) or self.warmup_steps < 0:
            raise ValueError(f"TrainConfig: expected warmup_steps to be an int >= 0, got {self.warmup_steps!r}.")
        for name in ("lr", "clip_norm"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"TrainConfig: expected {name} > 0, got {value!r}.")
        if not (math.isfinite(self.final_lr) and 0 <= self.final_lr <= self.lr):
            raise ValueError(f"TrainConfig: expected 0 <= final_lr <= lr, got final_lr={self.final_lr!r}.")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ValueError(f"TrainConfig: expected weight_decay >= 0, got {self.weight_decay!r}.")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"TrainConfig: expected optimizer to be one of {', '.join(OPTIMIZERS)}, "
                             f"got {self.optimizer!r}.")

    def lr_at(self, step: int) -> float:
        """Learning rate of step ``step`` (0-based): linear warm-up to ``lr``, then cosine decay to ``final_lr``."""
        if step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        return cosine_lr(step - self.warmup_steps, self.steps - self.warmup_steps, self.lr, self.final_lr)


@dataclass
class History:
    """Per-step training loss, gradient norm and learning rate; validation loss at each evaluation; the step
    whose weights were kept (the best validation loss) and, if training stopped early, the step it did."""

    step: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    grad_norm: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    eval_step: list[int] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    best_step: int | None = None
    best_val_loss: float = math.inf
    stopped_early_at: int | None = None


class NonFiniteError(RuntimeError):
    """Training produced a NaN or infinite loss or gradient."""


def data_streams(seed: int) -> dict[str, np.random.Generator]:
    """Independent generators for training batches, the validation set and the test set of one seed."""
    train, validation, test = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))
    return {"train": train, "validation": validation, "test": test}


def _step(model: Module, task, optimizer, x: np.ndarray, y: np.ndarray, config: TrainConfig,
          step: int) -> tuple[float, float]:
    """One optimizer step per chunk of the batch (one chunk without ``tbptt``); returns the mean loss and
    the largest gradient norm before clipping."""
    chunk = config.tbptt or len(x)
    state, losses, norms = None, [], []
    for start in range(0, len(x), chunk):
        pred = model(x[start:start + chunk], state)
        state = model.final_state  # carried into the next chunk; its gradient stops here
        if config.tbptt:
            loss, dpred = task.loss(pred, y[start:start + chunk], start=start)
        else:
            loss, dpred = task.loss(pred, y)
        model.zero_grad()
        model.backward(dpred)
        norm = clip_grad_norm(model.grads, config.clip_norm)
        if not (math.isfinite(loss) and math.isfinite(norm)):
            raise NonFiniteError(f"training stopped at step {step}: non-finite loss ({loss}) or gradient norm "
                                 f"({norm}). Lower the learning rate (--lr) or the clipping norm.")
        optimizer.step()
        losses.append(loss)
        norms.append(norm)
    return float(np.mean(losses)), max(norms)


def fit(model: Module, task, config: TrainConfig, seed: int, *,
        on_step: Callable[[int, History], None] | None = None,
        on_best: Callable[[int, History], None] | None = None) -> History:
    """Train ``model`` on ``task`` in place and leave it with the weights of its best validation loss.

    Deterministic for a given ``seed``: batches, the validation set and the test set come from separate
    streams of it (:func:`data_streams`), so held-out data is never trained on. ``on_step(step, history)``
    is called after every step (after the evaluation, on evaluation steps); ``on_best(step, history)`` when
    the validation loss improves (e.g. to write a checkpoint).
    """
    if config.tbptt and not getattr(task, "per_step_loss", False):
        raise ValueError(f"fit: truncated BPTT needs a task whose loss is a sum over steps; {task.name!r} scores "
                         "whole sequences. Train it without tbptt.")
    streams = data_streams(seed)
    x_val, y_val = task.held_out("validation", streams["validation"], model.dtype)
    optimizer = OPTIMIZERS[config.optimizer](model.params, model.grads, lr=config.lr,
                                             weight_decay=config.weight_decay)
    history = History()
    best_state, evaluations_without_gain = None, 0
    for step in range(1, config.steps + 1):
        optimizer.lr = config.lr_at(step - 1)
        x, y = task.batch(streams["train"], config.batch_size, model.dtype)
        loss, norm = _step(model, task, optimizer, x, y, config, step)
        history.step.append(step)
        history.loss.append(loss)
        history.grad_norm.append(norm)
        history.lr.append(optimizer.lr)
        if step % config.eval_every == 0 or step == config.steps:
            val_loss = task.loss(model(x_val), y_val)[0]
            history.eval_step.append(step)
            history.val_loss.append(val_loss)
            if val_loss < history.best_val_loss:
                history.best_step, history.best_val_loss = step, val_loss
                best_state, evaluations_without_gain = model.state_dict(), 0
                if on_best is not None:
                    on_best(step, history)
            else:
                evaluations_without_gain += 1
            if config.patience is not None and evaluations_without_gain >= config.patience:
                history.stopped_early_at = step
        if on_step is not None:
            on_step(step, history)
        if history.stopped_early_at is not None:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    return history
