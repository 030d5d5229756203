"""One training run from a task name and options: resolve the settings, build the model, fit, evaluate.

Shared by ``bptt train`` and ``bptt sweep`` (whose worker processes call :func:`run_summary`); no printing,
no plotting, NumPy only.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from bptt._validation import check_dtype
from bptt.layers.inference import inference_mode
from bptt.layers.models import CELLS, SequenceRegressor
from bptt.layers.module import Module
from bptt.train.fit import History, TrainConfig, TrainState, check_resume, data_streams, fit, load_train_state
from bptt.train.tasks.adding import AddingTask
from bptt.train.tasks.addition import AdditionTask
from bptt.train.tasks.chars import CharsTask
from bptt.train.tasks.copy import CopyTask
from bptt.train.tasks.csv_forecast import CsvTask
from bptt.train.tasks.dates import DatesTask
from bptt.train.tasks.digits import DigitsTask
from bptt.train.tasks.sine import SineTask
from bptt.train.tasks.sunspots import SunspotsTask

TASKS = {"sine": SineTask, "adding": AddingTask, "copy": CopyTask, "sunspots": SunspotsTask, "digits": DigitsTask,
         "chars": CharsTask, "csv": CsvTask, "addition": AdditionTask, "dates": DatesTask}
MODEL_OPTIONS = ("cell", "hidden_size", "num_layers", "dtype")
DTYPES = ("float64", "float32")
TRAIN_OPTIONS = tuple(f.name for f in fields(TrainConfig))


@dataclass(frozen=True)
class Experiment:
    """Everything that determines a run: the task and its options, the model, the optimization settings, the
    working dtype and the seed."""

    task: str
    cell: str
    hidden_size: int
    num_layers: int
    config: TrainConfig
    seed: int
    dtype: str = "float64"
    task_options: Mapping[str, Any] = field(default_factory=dict)

    def metadata(self) -> dict[str, Any]:
        """The run's settings for a checkpoint's metadata (JSON-ready); :meth:`from_metadata` reads them back."""
        return {"task": self.task, "cell": self.cell, "hidden_size": self.hidden_size, "num_layers": self.num_layers,
                "seed": self.seed, "dtype": self.dtype, "task_options": dict(self.task_options),
                "train_config": asdict(self.config)}

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any]) -> Experiment:
        """The experiment whose :meth:`metadata` this is; ValueError when an entry is missing or invalid. Files
        written before ``dtype`` and ``task_options`` existed read as float64 without task options."""
        try:
            experiment = cls(metadata["task"], metadata["cell"], metadata["hidden_size"], metadata["num_layers"],
                             TrainConfig(**metadata["train_config"]), metadata["seed"],
                             metadata.get("dtype", "float64"), dict(metadata.get("task_options", {})))
        except (KeyError, TypeError) as error:
            raise ValueError(f"Experiment.from_metadata: expected the entries of Experiment.metadata(), got "
                             f"{type(error).__name__}: {error}.") from error
        if experiment.task not in TASKS or experiment.cell not in CELLS or experiment.dtype not in DTYPES:
            raise ValueError(f"Experiment.from_metadata: expected a task from {', '.join(TASKS)}, a model from "
                             f"{', '.join(CELLS)} and a dtype from {', '.join(DTYPES)}, got {experiment.task!r}, "
                             f"{experiment.cell!r} and {experiment.dtype!r}.")
        return experiment


def make_task(name: str, seed: int = 0, **options: Any):
    """The task ``name`` with its ``options`` (e.g. ``pixels=True``); a task with a ``seed`` field (one whose
    data split depends on the seed) also gets the run's seed. Unknown options raise ValueError."""
    if name not in TASKS:
        raise ValueError(f"make_task: expected a task from {', '.join(TASKS)}, got {name!r}.")
    cls = TASKS[name]
    accepted = {f.name for f in fields(cls) if f.init} if is_dataclass(cls) else set()
    unknown = sorted(set(options) - accepted)
    if unknown:
        valid = sorted(accepted - {"seed"})
        raise ValueError(f"make_task: expected options of the {name} task from {valid or 'none'}, got {unknown}.")
    if "seed" in accepted:
        options = {**options, "seed": seed}
    return cls(**options)


def build_model(task, experiment: Experiment) -> Module:
    """The model the task trains, initialised from the experiment's seed: the task's own ``build_model`` where
    it has one (a classifier, a language model), else a :class:`SequenceRegressor` from the task's input and
    output sizes."""
    options = {"cell": experiment.cell, "dtype": np.dtype(experiment.dtype),
               "rng": np.random.default_rng(experiment.seed)}
    if hasattr(task, "build_model"):
        return task.build_model(experiment.hidden_size, experiment.num_layers, **options)
    return SequenceRegressor(task.input_size, experiment.hidden_size, task.output_size, experiment.num_layers,
                             **options)


def _check_option_names(where: str, overrides: Mapping[str, Any]) -> None:
    unknown = sorted(set(overrides) - set(MODEL_OPTIONS) - set(TRAIN_OPTIONS))
    if unknown:
        raise ValueError(f"{where}: expected options from {MODEL_OPTIONS + TRAIN_OPTIONS}, got {unknown}.")


def resolve(task_name: str, seed: int = 0, task_options: Mapping[str, Any] | None = None,
            **overrides: Any) -> Experiment:
    """The task's defaults, then :class:`TrainConfig`'s, overridden by every option that is not None."""
    task_options = dict(task_options or {})
    task = make_task(task_name, seed, **task_options)
    _check_option_names("resolve", overrides)
    settings = {"cell": "lstm", "hidden_size": 32, "num_layers": 1, "dtype": "float64", **task.defaults}
    settings.update({key: value for key, value in overrides.items() if value is not None})
    if settings["cell"] not in CELLS:
        raise ValueError(f"resolve: expected a model from {', '.join(CELLS)}, got {settings['cell']!r}.")
    dtype = np.dtype(check_dtype("resolve", settings["dtype"])).name
    config = TrainConfig(**{key: settings[key] for key in TRAIN_OPTIONS if key in settings})
    if "final_lr" not in settings and config.final_lr > config.lr:
        config = TrainConfig(**{**asdict(config), "final_lr": config.lr})
    return Experiment(task_name, settings["cell"], settings["hidden_size"], settings["num_layers"], config, seed,
                      dtype, task_options)


def load_resumable(path: str | os.PathLike, task_name: str, seed: int | None = None,
                   task_options: Mapping[str, Any] | None = None, **overrides: Any) -> tuple[Experiment, TrainState]:
    """The run saved at ``path`` (by :func:`bptt.train.fit.save_train_state`, with :meth:`Experiment.metadata`),
    ready to continue with :func:`run`: its experiment, ``steps`` replaced when given, and its train state.

    Every other option given (not None), the task and the seed must equal the saved ones. A missing or
    unreadable file, a contradicting option, or ``steps`` the run cannot be continued to bitwise
    (:func:`bptt.train.fit.check_resume`) raise ValueError.
    """
    name = os.fspath(path)
    _check_option_names("load_resumable", overrides)
    if not Path(path).is_file():
        raise ValueError(f"load_resumable: expected a train state at {name!r}, found none. Start the run without "
                         "resuming.")
    state, metadata = load_train_state(path)
    try:
        saved = Experiment.from_metadata(metadata)
    except ValueError as error:
        raise ValueError(f"load_resumable: expected the run's settings in {name!r}: {error}") from error
    recorded = {"task": saved.task, "seed": saved.seed, "task_options": dict(saved.task_options),
                **{key: getattr(saved, key) for key in MODEL_OPTIONS}, **asdict(saved.config)}
    given = {"task": task_name, "seed": seed, "task_options": dict(task_options) if task_options else None,
             **overrides}
    contradictions = [f"{key} {value!r} (saved: {recorded[key]!r})" for key, value in given.items()
                      if key != "steps" and value is not None and value != recorded[key]]
    if contradictions:
        raise ValueError(f"load_resumable: expected the settings of the run saved in {name!r} (leave an option out "
                         f"to keep it), got {', '.join(contradictions)}.")
    experiment = replace(saved, config=replace(saved.config, steps=overrides.get("steps") or saved.config.steps))
    check_resume(state, experiment.config, experiment.seed)
    return experiment, state


@dataclass
class Result:
    """A finished run: the trained model (best validation weights), its history, test metrics, seconds."""

    experiment: Experiment
    task: Any
    model: Module
    history: History
    metrics: dict[str, float]
    seconds: float
    test_data: tuple[np.ndarray, np.ndarray]


def run(experiment: Experiment, *, task: Any = None, on_step: Callable[[int, History], None] | None = None,
        on_best: Callable[[Module, int, History], None] | None = None,
        on_checkpoint: Callable[[TrainState], None] | None = None,
        on_evaluation: Callable[[Module, int, History], None] | None = None,
        resume: TrainState | None = None, checkpoint_every: int | None = None,
        should_stop: Callable[[], bool] | None = None) -> Result:
    """Build the model (initialised from the seed), train it, and evaluate it on the test set.

    ``task``: the experiment's task when the caller has made it already (:func:`make_task`), else made here.
    ``on_step``, ``on_checkpoint`` and ``resume`` are :func:`bptt.train.fit.fit`'s; ``on_best`` also receives the
    model; ``on_evaluation(model, step, history)`` is called after each evaluation, once ``on_checkpoint`` has
    run; ``checkpoint_every`` and ``should_stop`` are :func:`~bptt.train.fit.fit`'s too. ``seconds`` counts
    this call's training only, not the steps a resumed run did before.
    """
    task = task if task is not None else make_task(experiment.task, experiment.seed, **experiment.task_options)
    model = build_model(task, experiment)

    def evaluated(state: TrainState) -> None:
        if on_checkpoint is not None:
            on_checkpoint(state)
        if on_evaluation is not None and state.history.eval_step[-1:] == [state.step]:
            on_evaluation(model, state.step, state.history)

    start = time.perf_counter()
    history = fit(model, task, experiment.config, experiment.seed, on_step=on_step,
                  on_best=None if on_best is None else (lambda step, h: on_best(model, step, h)),
                  on_checkpoint=evaluated if on_checkpoint or on_evaluation else None, resume=resume,
                  checkpoint_every=checkpoint_every, should_stop=should_stop)
    seconds = time.perf_counter() - start
    test_data = task.held_out("test", data_streams(experiment.seed)["test"], model.dtype)
    with inference_mode():                           # dynamic evaluation turns it off where it goes back
        metrics = task.metrics(model, test_data)
    return Result(experiment, task, model, history, metrics, seconds, test_data)


def succeeded(task: Any, metrics: dict[str, float]) -> bool:
    """Whether every goal the task sets (``goals = {"metric": ("<", ">" or ">=", threshold)}``) is met."""
    compare = {"<": lambda a, b: a < b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b}
    return all(compare[op](metrics[name], threshold) for name, (op, threshold) in task.goals.items())


def run_summary(experiment: Experiment) -> dict[str, Any]:
    """:func:`run`, reduced to what a sweep needs (picklable): metrics, success, seconds and the curves."""
    result = run(experiment)
    history = result.history
    return {"seed": experiment.seed, "metrics": result.metrics, "success": succeeded(result.task, result.metrics),
            "seconds": result.seconds, "steps": history.step[-1], "best_step": history.best_step,
            "loss": history.loss, "eval_step": history.eval_step, "val_loss": history.val_loss}
