"""One training run from a task name and options: resolve the settings, build the model, fit, evaluate.

Shared by ``bptt train`` and ``bptt sweep`` (whose worker processes call :func:`run_summary`); no printing,
no plotting, NumPy only.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from bptt.models import CELLS, SequenceRegressor
from bptt.tasks.adding import AddingTask
from bptt.tasks.copy import CopyTask
from bptt.tasks.sine import SineTask
from bptt.tasks.sunspots import SunspotsTask
from bptt.train import History, TrainConfig, data_streams, fit

TASKS = {"sine": SineTask, "adding": AddingTask, "copy": CopyTask, "sunspots": SunspotsTask}
MODEL_OPTIONS = ("cell", "hidden_size", "num_layers")
TRAIN_OPTIONS = tuple(f.name for f in fields(TrainConfig))


@dataclass(frozen=True)
class Experiment:
    """Everything that determines a run: the task, the model, the optimization settings and the seed."""

    task: str
    cell: str
    hidden_size: int
    num_layers: int
    config: TrainConfig
    seed: int

    def metadata(self) -> dict[str, Any]:
        """The run's settings for a checkpoint's metadata (JSON-ready)."""
        return {"format": "bptt", "class": "SequenceRegressor", "task": self.task, "cell": self.cell,
                "hidden_size": self.hidden_size, "num_layers": self.num_layers, "seed": self.seed,
                "train_config": asdict(self.config)}


def resolve(task_name: str, seed: int = 0, **overrides: Any) -> Experiment:
    """The task's defaults, then :class:`TrainConfig`'s, overridden by every option that is not None."""
    if task_name not in TASKS:
        raise ValueError(f"resolve: expected a task from {', '.join(TASKS)}, got {task_name!r}.")
    unknown = sorted(set(overrides) - set(MODEL_OPTIONS) - set(TRAIN_OPTIONS))
    if unknown:
        raise ValueError(f"resolve: expected options from {MODEL_OPTIONS + TRAIN_OPTIONS}, got {unknown}.")
    settings = {"cell": "lstm", "hidden_size": 32, "num_layers": 1, **TASKS[task_name]().defaults}
    settings.update({key: value for key, value in overrides.items() if value is not None})
    if settings["cell"] not in CELLS:
        raise ValueError(f"resolve: expected a model from {', '.join(CELLS)}, got {settings['cell']!r}.")
    config = TrainConfig(**{key: settings[key] for key in TRAIN_OPTIONS if key in settings})
    if "final_lr" not in settings and config.final_lr > config.lr:
        config = TrainConfig(**{**asdict(config), "final_lr": config.lr})
    return Experiment(task_name, settings["cell"], settings["hidden_size"], settings["num_layers"], config, seed)


@dataclass
class Result:
    """A finished run: the trained model (best validation weights), its history, test metrics, seconds."""

    experiment: Experiment
    task: Any
    model: SequenceRegressor
    history: History
    metrics: dict[str, float]
    seconds: float
    test_data: tuple[np.ndarray, np.ndarray]


def run(experiment: Experiment, *, on_step: Callable[[int, History], None] | None = None,
        on_best: Callable[[SequenceRegressor, int, History], None] | None = None) -> Result:
    """Build the model (initialised from the seed), train it, and evaluate it on the test set."""
    task = TASKS[experiment.task]()
    model = SequenceRegressor(task.input_size, experiment.hidden_size, task.output_size, experiment.num_layers,
                              cell=experiment.cell, rng=np.random.default_rng(experiment.seed))
    start = time.perf_counter()
    history = fit(model, task, experiment.config, experiment.seed, on_step=on_step,
                  on_best=None if on_best is None else (lambda step, h: on_best(model, step, h)))
    seconds = time.perf_counter() - start
    test_data = task.held_out("test", data_streams(experiment.seed)["test"], model.dtype)
    return Result(experiment, task, model, history, task.metrics(model, test_data), seconds, test_data)


def succeeded(task: Any, metrics: dict[str, float]) -> bool:
    """Whether every goal the task sets (``goals = {"metric": ("<" or ">", threshold)}``) is met."""
    compare = {"<": lambda a, b: a < b, ">": lambda a, b: a > b}
    return all(compare[op](metrics[name], threshold) for name, (op, threshold) in task.goals.items())


def run_summary(experiment: Experiment) -> dict[str, Any]:
    """:func:`run`, reduced to what a sweep needs (picklable): metrics, success, seconds and the curves."""
    result = run(experiment)
    history = result.history
    return {"seed": experiment.seed, "metrics": result.metrics, "success": succeeded(result.task, result.metrics),
            "seconds": result.seconds, "steps": history.step[-1], "best_step": history.best_step,
            "loss": history.loss, "eval_step": history.eval_step, "val_loss": history.val_loss}
