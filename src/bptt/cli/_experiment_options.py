"""The options of ``bptt train`` and ``bptt sweep``: the task, the model and its optimization, each left at the
task's default unless given, and how a resolved run is described in one line."""

from __future__ import annotations

import argparse
from dataclasses import fields

from bptt.cli._arguments import positive_float, positive_int
from bptt.layers.models import CELLS
from bptt.train.experiment import DTYPES, TASKS, Experiment
from bptt.train.fit import KEEPS
from bptt.train.optim import OPTIMIZERS
from bptt.train.tasks.series_file import FILLS


def add_training_options(parser: argparse.ArgumentParser) -> None:
    """Model and optimization options shared by ``train`` and ``sweep``; None means the task's default."""
    parser.add_argument("task", choices=sorted(TASKS), help="the task to train on")
    model = parser.add_argument_group("model (defaults: the task's)")
    model.add_argument("--model", dest="cell", choices=sorted(CELLS), default=None, help="recurrent family (lstm)")
    model.add_argument("--hidden-size", type=positive_int, default=None, help="hidden size H")
    model.add_argument("--num-layers", type=positive_int, default=None, help="stacked layers")
    model.add_argument("--dtype", choices=list(DTYPES), default=None, help="working precision (float64)")
    optimization = parser.add_argument_group("optimization (defaults: the task's)")
    optimization.add_argument("--steps", type=positive_int, default=None, help="training steps")
    optimization.add_argument("--lr", type=positive_float, default=None, help="peak learning rate")
    optimization.add_argument("--final-lr", type=float, default=None, help="learning rate at the end of the cosine")
    optimization.add_argument("--warmup-steps", type=int, default=None, help="steps of linear warm-up")
    optimization.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default=None, help="optimizer (adam)")
    optimization.add_argument("--momentum", type=float, default=None, help="momentum of sgd or rmsprop (0)")
    optimization.add_argument("--weight-decay", type=float, default=None, help="weight decay")
    optimization.add_argument("--batch-size", type=positive_int, default=None, help="sequences per step")
    optimization.add_argument("--clip-norm", type=positive_float, default=None, help="gradient-norm clipping")
    optimization.add_argument("--tbptt", type=positive_int, default=None, help="truncated BPTT chunk length")
    optimization.add_argument("--patience", type=positive_int, default=None,
                              help="evaluations without improvement before stopping early")
    optimization.add_argument("--eval-every", type=positive_int, default=None, help="steps between evaluations")
    optimization.add_argument("--keep", choices=KEEPS, default=None,
                              help="the weights to keep: of the best validation loss, or of the last step (best)")
    optimization.add_argument("--divergence-factor", type=float, default=None,
                              help="stop when the loss exceeds this multiple of the first step's (1e6)")
    optimization.add_argument("--seed", type=int, default=None, help="seed of initialisation and data (default 0)")
    task = parser.add_argument_group("task options (only for the task named)")
    task.add_argument("--pixels", action="store_true", default=None,
                      help="digits: read an image pixel by pixel (64 steps of 1 feature) instead of row by row (8 "
                           "steps of 8)")
    task.add_argument("--text", default=None, metavar="FILE",
                      help="chars: train on this UTF-8 text file (default: a corpus of Python's standard library)")
    task.add_argument("--dropout", type=float, default=None, metavar="P",
                      help="chars: dropout on the model's non-recurrent connections in training (0.2)")
    task.add_argument("--file", default=None, metavar="FILE", help="csv: the CSV file to forecast (a header line)")
    task.add_argument("--target", default=None, metavar="COL", help="csv: the column to forecast")
    task.add_argument("--columns", default=None, metavar="A,B,..",
                      help="csv: the input columns (default: every numeric column but the time column)")
    task.add_argument("--time-column", default=None, metavar="COL",
                      help="csv: the column of time values (numbers or dates; unique and increasing)")
    task.add_argument("--window", type=positive_int, default=None, metavar="W", help="csv: rows the model reads (24)")
    task.add_argument("--horizon", type=positive_int, default=None, metavar="H",
                      help="csv: how many rows ahead to forecast (1)")
    task.add_argument("--season", type=positive_int, default=None, metavar="S",
                      help="csv: the season's length in rows, for the seasonal-naive baseline (e.g. 12 for months)")
    task.add_argument("--fill", choices=list(FILLS), default=None,
                      help="csv: fill empty cells by carrying the last value forward or interpolating (default: "
                           "refuse them)")
    task.add_argument("--digits", type=positive_int, default=None, metavar="D",
                      help="addition: the most digits an operand has (3)")
    task.add_argument("--reverse", action="store_true", default=None,
                      help="addition: read the problem backwards, as Keras' addition example does")
    task.add_argument("--linear", action=argparse.BooleanOptionalAction, default=None,
                      help="csv: fit the linear stage, a ridge regression on the window that the network then "
                           "corrects (kept only when it beats the baseline on the validation split; default: on)")


TASK_OPTIONS = ("pixels", "text", "dropout", "file", "target", "columns", "time_column", "window", "horizon",
                "season", "fill", "linear", "digits", "reverse")
"""The task options the command line takes, each a field of the task(s) it belongs to (``--pixels``: digits,
``--text`` and ``--dropout``: chars, ``--digits`` and ``--reverse``: addition, the rest: csv); a flag left out
or an option not given is no option."""


def model_options(args: argparse.Namespace) -> dict:
    """The model and optimization options, None where the task's default stands."""
    names = ("cell", "hidden_size", "num_layers", "dtype", "steps", "lr", "final_lr", "warmup_steps", "optimizer",
             "momentum", "weight_decay", "batch_size", "clip_norm", "tbptt", "patience", "eval_every",
             "divergence_factor", "keep")
    return {name: getattr(args, name) for name in names}


def task_options(args: argparse.Namespace) -> dict:
    """The task options given on the command line (a flag left out is not an option); ValueError when the task
    does not take one."""
    given = {name: getattr(args, name) for name in TASK_OPTIONS if getattr(args, name) is not None}
    for name in given:
        owners = [task for task, cls in TASKS.items() if name in {f.name for f in fields(cls) if f.init}]
        if args.task not in owners:
            raise ValueError(f"--{name.replace('_', '-')} is an option of the {' and '.join(owners)} task, not of "
                             f"the {args.task} task. Leave it out, or train {' or '.join(owners)}.")
    return given


def describe(experiment: Experiment) -> str:
    c = experiment.config
    options = "".join(f" --{name.replace('_', '-')}" if value is True else f" {name}={value!r}"
                      for name, value in experiment.task_options.items())
    return (f"task {experiment.task}{options} | model {experiment.cell} | hidden-size {experiment.hidden_size} | "
            f"num-layers {experiment.num_layers} | {experiment.dtype} | steps {c.steps} | batch-size {c.batch_size} | "
            f"{c.optimizer}{f' momentum {c.momentum:g}' if c.momentum else ''} lr {c.lr:g} -> {c.final_lr:g} "
            f"(warm-up {c.warmup_steps}, cosine) | "
            f"clip-norm {c.clip_norm:g} | tbptt {c.tbptt} | patience {c.patience} | keep {c.keep} | "
            f"seed {experiment.seed}")
