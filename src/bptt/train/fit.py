"""The fit loop: mini-batches from a task, an optimizer with linear warm-up and cosine decay, gradient
clipping, truncated BPTT, validation, early stopping and the best weights kept; deterministic for a seed.

A run can stop and continue bitwise as if it never had: ``fit`` hands a :class:`TrainState` (everything the
loop carries from one step to the next) to ``on_checkpoint`` at every evaluation and continues from one given
as ``resume``; :func:`save_train_state` and :func:`load_train_state` keep it in a safetensors file.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from bptt.interop.io import load_arrays, save_arrays
from bptt.layers.inference import inference_mode
from bptt.layers.module import Module
from bptt.train.optim import OPTIMIZERS, Optimizer, clip_grad_norm, cosine_lr

KEEPS = ("best", "last")
"""Which weights a run keeps: those of its best validation loss, or its last step's."""


@dataclass(frozen=True)
class TrainConfig:
    """Optimization settings. The defaults train the sine task to test MSE < 1e-4 for every seed.

    ``tbptt``: chunk length of truncated BPTT (None: whole sequences). Each chunk starts from the state the
    previous chunk ended in, its gradient stops at the chunk's start, and the optimizer steps after each
    chunk. ``patience``: evaluations without a better validation loss before training stops (None: never).
    ``keep``: the weights the run ends with, ``"best"`` (those of the best validation loss) or ``"last"`` (those
    of the last step, for a task whose validation loss bottoms out before its accuracy does).
    ``momentum``: SGD's or RMSprop's (0: none). ``divergence_factor``: training stops with a
    :class:`DivergenceError` when a step's loss exceeds this multiple of the first step's (None: never).
    """

    steps: int = 1500
    batch_size: int = 32
    lr: float = 1e-2
    final_lr: float = 1e-5
    warmup_steps: int = 0
    optimizer: str = "adam"
    momentum: float = 0.0
    weight_decay: float = 0.0
    clip_norm: float = 1.0
    eval_every: int = 100
    tbptt: int | None = None
    patience: int | None = None
    divergence_factor: float | None = 1e6
    keep: str = "best"

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
        if self.keep not in KEEPS:
            raise ValueError(f"TrainConfig: expected keep to be one of {', '.join(KEEPS)}, got {self.keep!r}.")
        if self.keep == "last" and self.patience is not None:
            raise ValueError(f"TrainConfig: expected no patience with keep='last' (a run that keeps its last weights "
                             f"does not stop at its best validation loss), got patience={self.patience}.")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"TrainConfig: expected optimizer to be one of {', '.join(OPTIMIZERS)}, "
                             f"got {self.optimizer!r}.")
        if not (math.isfinite(self.momentum) and self.momentum >= 0):
            raise ValueError(f"TrainConfig: expected momentum >= 0, got {self.momentum!r}.")
        if self.momentum and self.optimizer not in ("sgd", "rmsprop"):
            raise ValueError(f"TrainConfig: expected momentum 0 with {self.optimizer}, got {self.momentum!r}. Only sgd "
                             "and rmsprop take a momentum.")
        if self.divergence_factor is not None and not (math.isfinite(self.divergence_factor)
                                                       and self.divergence_factor > 1):
            raise ValueError(f"TrainConfig: expected divergence_factor to be None or a number > 1, "
                             f"got {self.divergence_factor!r}.")

    def lr_at(self, step: int) -> float:
        """Learning rate of step ``step`` (0-based): linear warm-up to ``lr``, then cosine decay to ``final_lr``."""
        if step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        return cosine_lr(step - self.warmup_steps, self.steps - self.warmup_steps, self.lr, self.final_lr)

    def evaluates_at(self, step: int) -> bool:
        """Whether ``fit`` evaluates after step ``step`` (1-based): every ``eval_every`` steps and at the last."""
        return step % self.eval_every == 0 or step == self.steps


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


SERIES = {"step": np.int64, "loss": np.float64, "grad_norm": np.float64, "lr": np.float64, "eval_step": np.int64,
          "val_loss": np.float64}
"""The per-step and per-evaluation lists of :class:`History`, with the dtype a train-state file stores them in."""


class DivergenceError(RuntimeError):
    """Training diverged: the loss grew past ``divergence_factor`` times the first step's, or went non-finite."""


class TrainingInterrupted(RuntimeError):
    """``fit`` stopped at a step boundary because ``should_stop`` asked it to, after handing the train state of
    that step to ``on_checkpoint``; ``step`` is the last step done."""

    def __init__(self, step: int) -> None:
        super().__init__(f"training interrupted after step {step}")
        self.step = step


class NonFiniteError(DivergenceError):
    """Training produced a NaN or infinite loss, gradient or validation loss."""


@dataclass
class TrainState:
    """Everything ``fit`` carries from one step to the next, after ``step`` completed steps of the run of
    ``config`` and ``seed``: enough to continue it bitwise as if it had never stopped.

    ``params``: the current weights (not the best); ``optimizer``: :meth:`Optimizer.state_dict`; ``rngs``: the
    ``bit_generator.state`` of the training-batch stream (``"train"``) and of every generator the model owns
    (``"model.rnn.rng"``, which draws dropout masks); ``best_params``: the weights of the best validation loss
    so far (its step and value are in ``history``), None before the first evaluation;
    ``evaluations_without_gain``: the early-stopping counter.
    """

    config: TrainConfig
    seed: int
    step: int
    params: dict[str, NDArray]
    optimizer: dict[str, object]
    rngs: dict[str, dict]
    history: History
    best_params: dict[str, NDArray] | None
    evaluations_without_gain: int


TRAIN_STATE_FORMAT = "bptt-train-state"


def save_train_state(path: str | os.PathLike, state: TrainState,
                     metadata: Mapping[str, object] | None = None) -> Path:
    """Write ``state`` to a safetensors file, atomically. Arrays: ``params.<name>``, ``best.<name>``,
    ``optimizer.<buffer>.<name>`` and ``history.<series>``; everything else is JSON metadata under
    ``"train_state"``, beside the entries of ``metadata`` (e.g. the run's settings)."""
    arrays = {f"params.{name}": value for name, value in state.params.items()}
    arrays.update({f"best.{name}": value for name, value in (state.best_params or {}).items()})
    for buffer, values in state.optimizer.items():
        if buffer not in ("step", "lr"):
            arrays.update({f"optimizer.{buffer}.{name}": value for name, value in values.items()})
    arrays.update({f"history.{name}": np.asarray(getattr(state.history, name), dtype=dtype)
                   for name, dtype in SERIES.items()})
    history = state.history
    header = {"format": TRAIN_STATE_FORMAT, "config": asdict(state.config), "seed": state.seed, "step": state.step,
              "optimizer": {"step": state.optimizer["step"], "lr": state.optimizer["lr"]}, "rngs": state.rngs,
              "best_step": history.best_step, "best_val_loss": history.best_val_loss,
              "stopped_early_at": history.stopped_early_at,
              "evaluations_without_gain": state.evaluations_without_gain}
    return save_arrays(path, arrays, {**(metadata or {}), "train_state": header})


def _copy_history(history: History) -> History:
    """A copy of ``history`` whose lists are its own (their numbers are immutable: a shallow copy is enough)."""
    return replace(history, **{name: list(getattr(history, name)) for name in SERIES})


def _group(arrays: Mapping[str, NDArray], prefix: str) -> dict[str, NDArray]:
    """The arrays whose names start with ``prefix``, by the rest of their names."""
    return {name[len(prefix):]: value for name, value in arrays.items() if name.startswith(prefix)}


def load_train_state(path: str | os.PathLike) -> tuple[TrainState, dict[str, object]]:
    """Read a file written by :func:`save_train_state`: the state, and the file's other metadata entries.

    A missing, truncated or corrupt file, or one without a complete train state, raises ValueError naming it.
    """
    arrays, metadata = load_arrays(path)
    try:
        header = metadata.pop("train_state")
        if header["format"] != TRAIN_STATE_FORMAT:
            raise ValueError(f"format {header['format']!r}")
        optimizer: dict[str, object] = dict(header["optimizer"])
        for key, value in _group(arrays, "optimizer.").items():
            buffer, name = key.split(".", 1)
            optimizer.setdefault(buffer, {})[name] = value
        series = _group(arrays, "history.")
        history = History(**{name: series[name].tolist() for name in SERIES},
                          best_step=header["best_step"], best_val_loss=header["best_val_loss"],
                          stopped_early_at=header["stopped_early_at"])
        state = TrainState(TrainConfig(**header["config"]), header["seed"], header["step"], _group(arrays, "params."),
                           optimizer, header["rngs"], history, _group(arrays, "best.") or None,
                           header["evaluations_without_gain"])
        per_step = {name: len(getattr(history, name)) for name in ("step", "loss", "grad_norm", "lr")}
        consistent = (history.step == list(range(1, state.step + 1)) and set(per_step.values()) == {state.step}
                      and len(history.eval_step) == len(history.val_loss))
        if not consistent:
            raise ValueError(f"a history of {per_step} steps and {len(history.eval_step)} evaluations with "
                             f"{len(history.val_loss)} losses after step {state.step}")
    except (AttributeError, KeyError, TypeError, ValueError) as error:
        raise ValueError(f"load_train_state: expected a complete train state in {os.fspath(path)!r}, got "
                         f"{type(error).__name__}: {error}.") from error
    return state, metadata


def check_resume(state: TrainState, config: TrainConfig, seed: int) -> None:
    """Refuse (ValueError) to continue ``state`` under ``config`` and ``seed`` unless the result equals the
    uninterrupted run of ``config`` bitwise: the same seed and settings, with ``steps`` no fewer than those
    done and giving the same learning rates and evaluations so far (a cosine decay to ``final_lr < lr``, and
    the evaluation every run makes at its last step, depend on ``steps``)."""
    if seed != state.seed:
        raise ValueError(f"resume: expected the saved run's seed {state.seed}, got {seed}.")
    changed = [f"{f.name} {getattr(config, f.name)!r} (saved: {getattr(state.config, f.name)!r})"
               for f in fields(TrainConfig)
               if f.name != "steps" and getattr(config, f.name) != getattr(state.config, f.name)]
    if changed:
        raise ValueError(f"resume: expected the saved run's settings, got {', '.join(changed)}.")
    if config.steps < state.step:
        raise ValueError(f"resume: expected steps >= the {state.step} steps done, got {config.steps}.")
    keep = f"Keep steps={state.config.steps}"
    rates = [config.lr_at(s) for s in range(state.step)]
    if rates != state.history.lr:
        step = next(s for s, (new, old) in enumerate(zip(rates, state.history.lr, strict=True), 1) if new != old)
        raise ValueError(f"resume: expected the learning rates of the steps done, got lr {rates[step - 1]:.6g} at "
                         f"step {step} in a run of {config.steps} steps, where the saved run of {state.config.steps} "
                         f"used {state.history.lr[step - 1]:.6g} (a cosine decay to final_lr < lr depends on steps). "
                         f"{keep}, or train with final_lr = lr to change steps later.")
    evaluations = [s for s in range(1, state.step + 1) if config.evaluates_at(s)]
    if evaluations != state.history.eval_step:
        step = min(set(evaluations) ^ set(state.history.eval_step))
        raise ValueError(f"resume: expected the evaluations of the steps done, got a run of {config.steps} steps "
                         f"that {'evaluates' if step in evaluations else 'does not evaluate'} at step {step}, where "
                         f"the saved run {'did not' if step in evaluations else 'did'} (every run evaluates at its "
                         f"last step). {keep}, or make steps a multiple of eval_every.")


def data_streams(seed: int) -> dict[str, np.random.Generator]:
    """Independent generators for training batches, the validation set and the test set of one seed."""
    train, validation, test = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))
    return {"train": train, "validation": validation, "test": test}


def model_generators(module: Module, prefix: str = "") -> dict[str, np.random.Generator]:
    """Every ``numpy.random.Generator`` held by ``module`` and its child modules, by attribute path
    (``"rnn.rng"``)."""
    found = {}
    for name, value in vars(module).items():
        if isinstance(value, np.random.Generator):
            found[prefix + name] = value
        elif isinstance(value, Module):
            found.update(model_generators(value, f"{prefix}{name}."))
    return found


def make_optimizer(model: Module, config: TrainConfig) -> Optimizer:
    """The optimizer ``config`` names, over ``model``'s params and grads, at ``config.lr``."""
    options = {"momentum": config.momentum} if config.momentum else {}
    return OPTIMIZERS[config.optimizer](model.params, model.grads, lr=config.lr, weight_decay=config.weight_decay,
                                        **options)


def predict(model: Module, task, x: object) -> NDArray:
    """The model's output for the task's input ``x``: ``task.forward(model, x)`` where the task has one (a
    sequence-to-sequence task's input is a batch of several arrays), else ``model(x)``."""
    forward = getattr(task, "forward", None)
    return model(x) if forward is None else forward(model, x)


def _evaluate(model: Module, task, x: object) -> NDArray:
    """:func:`predict` for an evaluation, under :func:`bptt.layers.inference.inference_mode`: no backward pass
    follows, so no cache is kept."""
    with inference_mode():
        return predict(model, task, x)


def _step(model: Module, task, optimizer, x: np.ndarray, y: np.ndarray, config: TrainConfig,
          step: int) -> tuple[float, float]:
    """One optimizer step per chunk of the batch (one chunk without ``tbptt``); returns the mean loss and
    the largest gradient norm before clipping."""
    state, losses, norms = None, [], []
    for start in range(0, len(x), config.tbptt) if config.tbptt else [None]:
        if start is None:                          # the whole batch at once
            loss, dpred = task.loss(predict(model, task, x), y)
        else:
            pred = model(x[start:start + config.tbptt], state)
            state = model.final_state  # carried into the next chunk; its gradient stops here
            loss, dpred = task.loss(pred, y[start:start + config.tbptt], start=start)
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


def _check_divergence(loss: float, history: History, config: TrainConfig, step: int) -> None:
    """Raise :class:`DivergenceError` when ``loss`` exceeds ``divergence_factor`` times the first step's (no
    check when that one is 0: there is no ratio to it)."""
    first = history.loss[0] if history.loss else 0.0
    if config.divergence_factor is not None and first > 0 and loss > config.divergence_factor * first:
        raise DivergenceError(f"training stopped at step {step}: non-finite or diverging loss: {loss:.3g} is more "
                              f"than {config.divergence_factor:g} times step 1's ({first:.3g}). Lower the learning "
                              "rate (--lr), or raise --divergence-factor if such growth is expected.")


def beats_baseline(task, pred: NDArray, target: NDArray) -> bool:
    """Whether ``pred`` beats the untrained model's zero output on the held-out ``target`` by more than one
    standard error of the mean difference of their losses (``task.loss_terms``, paired target by target): the
    one-standard-error rule, so that a correction that helped on a few validation targets by chance is not
    kept over the baseline."""
    return better_by_standard_errors(task.loss_terms(pred, target) - task.loss_terms(np.zeros_like(pred), target))


def _set_training(model: Module, mode: bool) -> None:
    """Dropout on (``mode``: the training steps) or off (everything else), for a model with the two modes."""
    if hasattr(model, "training"):
        model.train(mode)


def better_by_standard_errors(difference: NDArray, standard_errors: float = 1.0) -> bool:
    """Whether the paired loss differences ``difference`` (candidate minus baseline, one per target) show the
    candidate better by more than ``standard_errors`` standard errors of their mean (with one target: better
    at all)."""
    difference = np.ravel(difference)
    if difference.size < 2:
        return float(difference.mean()) < 0
    return float(difference.mean() + standard_errors * difference.std(ddof=1) / math.sqrt(difference.size)) < 0


def fit(model: Module, task, config: TrainConfig, seed: int, *,
        on_step: Callable[[int, History], None] | None = None,
        on_best: Callable[[int, History], None] | None = None,
        on_checkpoint: Callable[[TrainState], None] | None = None,
        resume: TrainState | None = None, checkpoint_every: int | None = None,
        should_stop: Callable[[], bool] | None = None) -> History:
    """Train ``model`` on ``task`` in place and leave it with the weights of its best validation loss.

    A model with training and evaluation modes (dropout: :class:`bptt.layers.models.LanguageModel`) is in
    training mode for each step only; evaluations, the callbacks and the caller see it in evaluation mode, and
    it is left so.

    A task whose ``untrained_is_baseline`` is true (its untrained model outputs zeros, a baseline forecast) has
    that model scored on the validation split first (step 0): it is kept unless an evaluation does better, and
    better by more than a standard error of the difference (:func:`beats_baseline`).

    Deterministic for a given ``seed``: batches, the validation set and the test set come from separate
    streams of it (:func:`data_streams`), so held-out data is never trained on. ``on_step(step, history)``
    is called after every step (after the evaluation, on evaluation steps); ``on_best(step, history)`` when
    the validation loss improves (e.g. to write a checkpoint); ``on_checkpoint(state)`` after every
    evaluation (the last step is one) with a :class:`TrainState`, e.g. for :func:`save_train_state`.
    ``resume``: such a state, to continue its run up to ``config.steps``; the result equals the uninterrupted
    run's bitwise (:func:`check_resume` refuses settings under which it could not). ``checkpoint_every``: also
    call ``on_checkpoint`` every that many steps, so that a crash loses fewer. ``should_stop()`` is asked after
    every step: when it answers True before the last step, ``on_checkpoint`` gets that step's state and
    :class:`TrainingInterrupted` is raised (a Ctrl-C that stops at a step boundary, resumable bitwise).

    Raises :class:`NonFiniteError` when a loss or gradient norm is not finite, :class:`DivergenceError` when
    the loss exceeds ``config.divergence_factor`` times the first step's; both name the step.
    """
    if config.tbptt and not getattr(task, "per_step_loss", False):
        raise ValueError(f"fit: truncated BPTT needs a task whose loss is a sum over steps; {task.name!r} scores "
                         "whole sequences. Train it without tbptt.")
    streams = data_streams(seed)
    x_val, y_val = task.held_out("validation", streams["validation"], model.dtype)
    optimizer = make_optimizer(model, config)
    generators = {"train": streams["train"], **{f"model.{k}": g for k, g in model_generators(model).items()}}
    history, best_state, evaluations_without_gain, done = History(), None, 0, 0
    if resume is not None:
        check_resume(resume, config, seed)
        if sorted(resume.rngs) != sorted(generators):
            raise ValueError(f"fit: expected a resume state with the generators {sorted(generators)}, "
                             f"got {sorted(resume.rngs)}.")
        model.load_state_dict(resume.params)
        optimizer.load_state_dict(resume.optimizer)
        for name, generator in generators.items():
            generator.bit_generator.state = resume.rngs[name]
        history, best_state = _copy_history(resume.history), resume.best_params
        evaluations_without_gain, done = resume.evaluations_without_gain, resume.step

    _set_training(model, False)
    baseline = getattr(task, "untrained_is_baseline", False)
    if resume is None and baseline:
        # The untrained model is a forecast worth keeping (the csv task's baseline): it is the first candidate.
        history.best_step, history.best_val_loss = 0, task.loss(_evaluate(model, task, x_val), y_val)[0]
        best_state = model.state_dict()
        if on_best is not None:
            on_best(0, history)

    def snapshot(step: int) -> TrainState:
        return TrainState(config, seed, step, model.state_dict(), optimizer.state_dict(),
                          {name: generator.bit_generator.state for name, generator in generators.items()},
                          _copy_history(history), best_state, evaluations_without_gain)

    last = config.steps if history.stopped_early_at is None else done  # a run that stopped early is over
    for step in range(done + 1, last + 1):
        optimizer.lr = config.lr_at(step - 1)
        x, y = task.batch(streams["train"], config.batch_size, model.dtype)
        _set_training(model, True)
        loss, norm = _step(model, task, optimizer, x, y, config, step)
        _set_training(model, False)                  # evaluations, callbacks and the caller see no dropout
        _check_divergence(loss, history, config, step)
        history.step.append(step)
        history.loss.append(loss)
        history.grad_norm.append(norm)
        history.lr.append(optimizer.lr)
        if config.evaluates_at(step):
            val_pred = _evaluate(model, task, x_val)
            val_loss = task.loss(val_pred, y_val)[0]
            if not math.isfinite(val_loss):
                raise NonFiniteError(f"training stopped at step {step}: non-finite validation loss ({val_loss}). "
                                     "Lower the learning rate (--lr) or the clipping norm.")
            history.eval_step.append(step)
            history.val_loss.append(val_loss)
            better = val_loss < history.best_val_loss and (not baseline or beats_baseline(task, val_pred, y_val))
            if better or config.keep == "last":
                history.best_step, history.best_val_loss = step, val_loss
                best_state, evaluations_without_gain = model.state_dict(), 0
                if on_best is not None:
                    on_best(step, history)
            else:
                evaluations_without_gain += 1
            if config.patience is not None and evaluations_without_gain >= config.patience:
                history.stopped_early_at = step
        saved = config.evaluates_at(step) or bool(checkpoint_every and step % checkpoint_every == 0)
        if on_checkpoint is not None and saved:
            on_checkpoint(snapshot(step))
        if on_step is not None:
            on_step(step, history)
        if history.stopped_early_at is not None:
            break
        if should_stop is not None and step < last and should_stop():
            if on_checkpoint is not None and not saved:
                on_checkpoint(snapshot(step))
            raise TrainingInterrupted(step)
    if best_state is not None:
        model.load_state_dict(best_state)
    return history
