"""The ``bptt`` command line: ``bptt train TASK``, ``bptt sweep TASK``, ``bptt gradcheck lstm|gru|rnn``,
``bptt bench`` (speed and memory against PyTorch, :mod:`bptt.perf.bench`), ``bptt sample`` and ``bptt visualize``
(a character model's text and units, :mod:`bptt.train.visualize`), ``bptt export``."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, fields, replace
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from bptt import __version__
from bptt.check.layercheck import check_layer
from bptt.interop.io import atomic_write_bytes, load_arrays, remove_interrupted_writes
from bptt.interop.onnx_export import DEFAULT_OPSET, describe_inputs, export_onnx
from bptt.interop.serialization import load, save
from bptt.layers.gru import GRU
from bptt.layers.kernels import describe_path
from bptt.layers.lstm import LSTM
from bptt.layers.models import CELLS
from bptt.layers.rnn import RNN
from bptt.perf import bench
from bptt.train import visualize as vis
from bptt.train.experiment import DTYPES, TASKS, Experiment, load_resumable, make_task, resolve, run, run_summary
from bptt.train.fit import KEEPS, DivergenceError, History, TrainingInterrupted, TrainState, save_train_state
from bptt.train.interrupts import StopRequest
from bptt.train.optim import OPTIMIZERS
from bptt.train.runlock import FolderInUse, RunLock
from bptt.train.tasks.series_file import FILLS

LAYERS = {"lstm": LSTM, "gru": GRU, "rnn": RNN}


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text}")
    return value


def _add_training_options(parser: argparse.ArgumentParser) -> None:
    """Model and optimization options shared by ``train`` and ``sweep``; None means the task's default."""
    parser.add_argument("task", choices=sorted(TASKS), help="the task to train on")
    model = parser.add_argument_group("model (defaults: the task's)")
    model.add_argument("--model", dest="cell", choices=sorted(CELLS), default=None, help="recurrent family (lstm)")
    model.add_argument("--hidden-size", type=_positive_int, default=None, help="hidden size H")
    model.add_argument("--num-layers", type=_positive_int, default=None, help="stacked layers")
    model.add_argument("--dtype", choices=list(DTYPES), default=None, help="working precision (float64)")
    optimization = parser.add_argument_group("optimization (defaults: the task's)")
    optimization.add_argument("--steps", type=_positive_int, default=None, help="training steps")
    optimization.add_argument("--lr", type=_positive_float, default=None, help="peak learning rate")
    optimization.add_argument("--final-lr", type=float, default=None, help="learning rate at the end of the cosine")
    optimization.add_argument("--warmup-steps", type=int, default=None, help="steps of linear warm-up")
    optimization.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default=None, help="optimizer (adam)")
    optimization.add_argument("--momentum", type=float, default=None, help="momentum of sgd or rmsprop (0)")
    optimization.add_argument("--weight-decay", type=float, default=None, help="weight decay")
    optimization.add_argument("--batch-size", type=_positive_int, default=None, help="sequences per step")
    optimization.add_argument("--clip-norm", type=_positive_float, default=None, help="gradient-norm clipping")
    optimization.add_argument("--tbptt", type=_positive_int, default=None, help="truncated BPTT chunk length")
    optimization.add_argument("--patience", type=_positive_int, default=None,
                              help="evaluations without improvement before stopping early")
    optimization.add_argument("--eval-every", type=_positive_int, default=None, help="steps between evaluations")
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
    task.add_argument("--window", type=_positive_int, default=None, metavar="W", help="csv: rows the model reads (24)")
    task.add_argument("--horizon", type=_positive_int, default=None, metavar="H",
                      help="csv: how many rows ahead to forecast (1)")
    task.add_argument("--season", type=_positive_int, default=None, metavar="S",
                      help="csv: the season's length in rows, for the seasonal-naive baseline (e.g. 12 for months)")
    task.add_argument("--fill", choices=list(FILLS), default=None,
                      help="csv: fill empty cells by carrying the last value forward or interpolating (default: "
                           "refuse them)")
    task.add_argument("--digits", type=_positive_int, default=None, metavar="D",
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bptt", description="Recurrent networks in NumPy with hand-derived BPTT.")
    parser.add_argument("--version", action="version", version=f"bptt {__version__} | {describe_path()}")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    train = verbs.add_parser("train", help="train a model on a task and save checkpoint, metrics and figures")
    _add_training_options(train)
    output = train.add_argument_group("output")
    output.add_argument("--out", type=Path, default=None, help="output folder (default runs/TASK)")
    output.add_argument("--json", action="store_true", help="print a JSON summary as the last line of stdout")
    output.add_argument("--save-every", type=_positive_int, default=None, metavar="N",
                        help="also write the train state every N steps (default: at evaluations only)")
    output.add_argument("--resume", action="store_true",
                        help="continue the run saved in --out to --steps, bitwise as if uninterrupted (its settings)")

    sweep = verbs.add_parser("sweep", help="train many seeds in parallel; success rate, spread and a figure")
    _add_training_options(sweep)
    sweep.add_argument("--seeds", type=_positive_int, default=10, help="seeds 0 .. N-1 (default 10)")
    sweep.add_argument("--workers", type=_positive_int, default=None, help="processes (default: CPU cores)")
    sweep.add_argument("--out", type=Path, default=None, help="output folder (default runs/TASK-sweep)")
    sweep.add_argument("--json", action="store_true", help="print a JSON summary as the last line of stdout")

    check = verbs.add_parser("gradcheck", help="check a layer's hand-derived gradients against central differences")
    check.add_argument("layer", choices=sorted(LAYERS), help="the layer family to check")
    shape = check.add_argument_group("model")
    shape.add_argument("--input-size", type=_positive_int, default=3, help="I (default 3)")
    shape.add_argument("--hidden-size", type=_positive_int, default=4, help="H (default 4)")
    shape.add_argument("--num-layers", type=_positive_int, default=1, help="stacked layers (default 1)")
    shape.add_argument("--seq-len", type=_positive_int, default=5, help="T, time steps (default 5)")
    shape.add_argument("--batch", type=_positive_int, default=2, help="N, sequences (default 2)")
    shape.add_argument("--bidirectional", action="store_true", help="add the reverse direction")
    shape.add_argument("--proj-size", type=int, default=0, help="LSTM only: projection size P (default 0, none)")
    shape.add_argument("--nonlinearity", choices=["tanh", "relu"], default="tanh", help="RNN only (default tanh)")
    how = check.add_argument_group("check")
    how.add_argument("--mode", choices=["full", "sample", "fast"], default="full",
                     help="every entry, random samples per tensor, or one directional derivative (default full)")
    how.add_argument("--samples", type=_positive_int, default=None, help="entries per tensor in sample mode")
    how.add_argument("--seed", type=int, default=0, help="seed of weights, inputs and upstream gradients (default 0)")
    check.add_argument("--json", action="store_true", help="print the report as JSON on the last line of stdout")

    timing = verbs.add_parser("bench", help="time training, inference and streaming steps against PyTorch "
                                            "(needs torch); --memory adds the peak memory of a training step",
                              description=bench.__doc__.split("\n\n")[0])
    bench.add_arguments(timing)

    generate = verbs.add_parser("sample", help="generate text from a character model saved by bptt train chars")
    generate.add_argument("checkpoint", type=Path, help="the model.safetensors of a chars run")
    generate.add_argument("--prime", default=None,
                          help="text to read before generating (default: a newline, or the vocabulary's first)")
    generate.add_argument("--length", type=_positive_int, default=500, help="characters to generate (500)")
    generate.add_argument("--temperature", type=float, default=0.8,
                          help="softmax temperature; 0 takes the most likely character every time (0.8)")
    generate.add_argument("--seed", type=int, default=0, help="seed of the draws (default 0)")

    visualize = verbs.add_parser("visualize", help="colour a text by the activations of a character model's units "
                                                   "(HTML page and PNG)",
                                 description="Read a text through a character model saved by bptt train chars and "
                                             "colour each character by a unit's activation after it (blue -1, "
                                             "white 0, red +1; a cell unit divided by its largest |c|), by default "
                                             "for the units with the most slow structure.")
    visualize.add_argument("checkpoint", type=Path, help="the model.safetensors of a chars run")
    text = visualize.add_argument_group("text")
    text.add_argument("--text", type=Path, default=None, metavar="FILE",
                      help="a UTF-8 text file to read (default: the run's own test text from its first line start, "
                           "rebuilt from the checkpoint's task options)")
    text.add_argument("--length", type=_positive_int, default=2000, help="characters read, from the start (2000)")
    units = visualize.add_argument_group("units")
    units.add_argument("--units", nargs="+", default=None, metavar="UNIT",
                       help="units to show, each LAYER:KIND:INDEX (KIND h: hidden state, c: an LSTM's cell "
                            "state), e.g. 0:c:17, or a plain INDEX: layer 0's cell unit (LSTM) or hidden unit "
                            "(default: the units with the most structure)")
    units.add_argument("--top", type=_positive_int, default=vis.DEFAULT_UNITS,
                       help=f"how many units to choose without --units ({vis.DEFAULT_UNITS})")
    output = visualize.add_argument_group("output")
    output.add_argument("--out", type=Path, default=None,
                        help="the HTML page to write (default: cells.html beside the checkpoint); the PNG goes "
                             "beside it, with the suffix .png")
    output.add_argument("--json", action="store_true", help="print a JSON summary as the last line of stdout")

    predict = verbs.add_parser("predict", help="forecast a CSV file with a model saved by bptt train csv",
                               description="Apply a forecaster of bptt train csv (its columns, scaling, window and "
                                           "horizon, stored in the checkpoint) to a CSV file of the same columns, "
                                           "and write a forecast for every row a whole window precedes, the rows "
                                           "after the file's end included.")
    predict.add_argument("checkpoint", type=Path, help="the model.safetensors of a csv run")
    predict.add_argument("--file", type=Path, required=True, help="the CSV file to forecast")
    predict.add_argument("--fill", choices=list(FILLS), default=None,
                         help="fill empty cells this way (default: as the run did)")
    predict.add_argument("--out", type=Path, default=None,
                         help="the CSV file to write (default: forecasts.csv beside the checkpoint)")
    predict.add_argument("--json", action="store_true", help="print a JSON summary as the last line of stdout")

    export = verbs.add_parser("export", help="write a checkpoint saved by bptt.save as an ONNX model (needs onnx)")
    export.add_argument("checkpoint", type=Path, help="the .safetensors file written by bptt.save")
    export.add_argument("out", type=Path, help="the .onnx file to write")
    export.add_argument("--opset", type=_positive_int, default=DEFAULT_OPSET,
                        help=f"ONNX opset to target (default {DEFAULT_OPSET})")
    return parser


def _options(args: argparse.Namespace) -> dict:
    names = ("cell", "hidden_size", "num_layers", "dtype", "steps", "lr", "final_lr", "warmup_steps", "optimizer",
             "momentum", "weight_decay", "batch_size", "clip_norm", "tbptt", "patience", "eval_every",
             "divergence_factor", "keep")
    return {name: getattr(args, name) for name in names}


def _task_options(args: argparse.Namespace) -> dict:
    """The task options given on the command line (a flag left out is not an option); ValueError when the task
    does not take one."""
    given = {name: getattr(args, name) for name in TASK_OPTIONS if getattr(args, name) is not None}
    for name in given:
        owners = [task for task, cls in TASKS.items() if name in {f.name for f in fields(cls) if f.init}]
        if args.task not in owners:
            raise ValueError(f"--{name.replace('_', '-')} is an option of the {' and '.join(owners)} task, not of "
                             f"the {args.task} task. Leave it out, or train {' or '.join(owners)}.")
    return given


def _describe(experiment: Experiment) -> str:
    c = experiment.config
    options = "".join(f" --{name.replace('_', '-')}" if value is True else f" {name}={value!r}"
                      for name, value in experiment.task_options.items())
    return (f"task {experiment.task}{options} | model {experiment.cell} | hidden-size {experiment.hidden_size} | "
            f"num-layers {experiment.num_layers} | {experiment.dtype} | steps {c.steps} | batch-size {c.batch_size} | "
            f"{c.optimizer}{f' momentum {c.momentum:g}' if c.momentum else ''} lr {c.lr:g} -> {c.final_lr:g} "
            f"(warm-up {c.warmup_steps}, cosine) | "
            f"clip-norm {c.clip_norm:g} | tbptt {c.tbptt} | patience {c.patience} | keep {c.keep} | "
            f"seed {experiment.seed}")


def _write_metrics(path: Path, history: History) -> None:
    """One JSON line per step, with ``val_loss`` on evaluation steps; written atomically."""
    validation = dict(zip(history.eval_step, history.val_loss, strict=True))
    lines = []
    for step, loss, norm, lr in zip(history.step, history.loss, history.grad_norm, history.lr, strict=True):
        row = {"step": step, "loss": loss, "grad_norm": norm, "lr": lr}
        if step in validation:
            row["val_loss"] = validation[step]
        lines.append(json.dumps(row) + "\n")
    atomic_write_bytes(path, "".join(lines).encode())


def _train_settings(args: argparse.Namespace, train_state: Path) -> tuple[Experiment, TrainState | None]:
    """The run to train: from the options, or with ``--resume`` the one saved in ``train_state`` and its state."""
    task_options = _task_options(args)
    if args.resume:
        return load_resumable(train_state, args.task, args.seed, task_options=task_options, **_options(args))
    return resolve(args.task, 0 if args.seed is None else args.seed, task_options=task_options, **_options(args)), None


def train_command(args: argparse.Namespace) -> int:
    """Resolve the run's settings, take the lock of its folder (one run per folder), and train."""
    out = args.out or Path("runs") / args.task
    try:
        experiment, resume = _train_settings(args, out / "train_state.safetensors")
    except ValueError as error:
        print(f"bptt train: {error}", file=sys.stderr)
        return 2
    return _holding_lock("train", out, lambda: _train_in(out, args, experiment, resume))


def _holding_lock(verb: str, out: Path, work: Callable[[], int]) -> int:
    """``work()`` while this process holds the lock of the folder ``out`` (made if missing): one run per folder.
    A folder a live run holds is refused (exit 2, its PID named); a dead run's lock is taken over, saying so."""
    out.mkdir(parents=True, exist_ok=True)
    try:
        with RunLock(out) as lock:
            if lock.took_over is not None:
                print(f"bptt {verb}: took over the lock of {out} from PID {lock.took_over}, which no longer runs.",
                      file=sys.stderr)
            return work()
    except FolderInUse as error:
        print(f"bptt {verb}: {error}", file=sys.stderr)
        return 2


def _train_in(out: Path, args: argparse.Namespace, experiment: Experiment, resume: TrainState | None) -> int:
    """The run of ``train_command``, once it holds the lock of ``out``."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from bptt.train.figures import save_run_figures

    console = Console(highlight=False, soft_wrap=True)
    checkpoint, train_state = out / "model.safetensors", out / "train_state.safetensors"
    for path in (checkpoint, train_state, out / "metrics.jsonl"):
        remove_interrupted_writes(path)
    done = resume.step if resume is not None else 0
    resumed = f" | resumed after step {done}" if done else ""
    console.print(f"bptt train | {_describe(experiment)} | out {out}{resumed} | {describe_path()}")
    task = make_task(experiment.task, experiment.seed, **experiment.task_options)
    if hasattr(task, "summary"):
        console.print(task.summary(), markup=False)
    task_metadata = task.checkpoint_metadata() if hasattr(task, "checkpoint_metadata") else {}
    start = time.perf_counter()
    try:
        with Progress(TextColumn("training"), BarColumn(), TextColumn("{task.completed}/{task.total} steps"),
                      TimeElapsedColumn(), console=console, transient=True) as progress:
            bar = progress.add_task("train", total=experiment.config.steps, completed=done)

            def advance(step: int, history: History) -> None:
                progress.update(bar, completed=step)

            def report(model, step: int, history: History) -> None:
                elapsed = time.perf_counter() - start
                progress.console.print(
                    f"step {step:>5} | loss {history.loss[-1]:.2e} | val-loss {history.val_loss[-1]:.2e} | "
                    f"grad-norm {history.grad_norm[-1]:.3g} | {1e3 * elapsed / (step - done):.2f} ms/step | "
                    f"{elapsed:.1f} s")
                if hasattr(task, "progress_note"):
                    progress.console.print(f"{'':>10} | {task.progress_note(model)}", markup=False)

            def save_best(model, step: int, history: History) -> None:
                save(model, checkpoint, {**experiment.metadata(), **task_metadata, "step": step})

            saved: list[TrainState] = []

            def save_state(state: TrainState) -> None:
                save_train_state(train_state, state, experiment.metadata())
                saved[:] = [state]

            with StopRequest() as stop:
                result = run(experiment, task=task, on_step=advance, on_best=save_best, on_checkpoint=save_state,
                             on_evaluation=report, resume=resume, checkpoint_every=args.save_every,
                             should_stop=stop.requested)
    except DivergenceError as error:  # after the progress bar is gone, so that nothing overwrites the line
        print(f"bptt train: {error}", file=sys.stderr)
        return 1
    except TrainingInterrupted as interrupted:
        history = saved[0].history
        _write_metrics(out / "metrics.jsonl", history)
        best = (f" and the best weights (step {history.best_step}) in {checkpoint}"
                if history.best_step is not None else "; no evaluation yet, so no weights were kept")
        print(f"bptt train: stopped by {stop.name} after step {interrupted.step} of {experiment.config.steps}; "
              f"saved the train state in {train_state}{best}.\nresume with: bptt train {args.task} --out {out} "
              "--resume", file=sys.stderr)
        return stop.exit_code
    history = result.history
    save(result.model, checkpoint, {**experiment.metadata(), **task_metadata, "step": history.best_step})
    _write_metrics(out / "metrics.jsonl", history)
    figures = save_run_figures(result, out)
    stopped = f", stopped early at step {history.stopped_early_at}" if history.stopped_early_at else ""
    console.print(f"kept the weights of step {history.best_step} (best validation loss "
                  f"{history.best_val_loss:.3e}){stopped}; {len(history.step)} steps, {len(history.step) - done} "
                  f"of them in this run's {result.seconds:.1f} s")
    console.print("test: " + " | ".join(f"{k} {_shown(v, 4)}"
                                        for k, v in result.metrics.items()))
    console.print(f"saved {checkpoint}, {train_state}, {out / 'metrics.jsonl'}, " + ", ".join(map(str, figures)))
    if args.json:
        summary = {"task": args.task, "task_options": dict(experiment.task_options), "model": experiment.cell,
                   "dtype": experiment.dtype, **result.metrics, "seconds": result.seconds,
                   **{key: value for key, value in task_metadata.items() if key != "vocabulary"},
                   "steps": len(history.step), "best_step": history.best_step,
                   "sequences_seen": len(history.step) * experiment.config.batch_size, "seed": experiment.seed,
                   "hidden_size": experiment.hidden_size, "checkpoint": str(checkpoint),
                   "train_state": str(train_state), "metrics": str(out / "metrics.jsonl"),
                   "figures": [str(p) for p in figures]}
        print(json.dumps(summary))
    return 0


def _shown(value: object, digits: int) -> str:
    """A metric as the command line prints it: a float to ``digits`` significant digits, anything else as is
    (an integer count, a name such as ``ets_spec``, None)."""
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def _pool(workers: int) -> ProcessPoolExecutor:
    """Worker processes with one BLAS thread each, so that parallel seeds do not fight over the cores."""
    saved = {k: os.environ.get(k) for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    os.environ.update({k: "1" for k in saved})
    try:
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"))
        pool.submit(int).result()  # start the workers while the variables are set
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return pool


def sweep_command(args: argparse.Namespace) -> int:
    """Resolve the sweep's settings, take the lock of its folder, and train every seed."""
    try:
        base = resolve(args.task, 0, task_options=_task_options(args), **_options(args))
    except ValueError as error:
        print(f"bptt sweep: {error}", file=sys.stderr)
        return 2
    workers = min(args.seeds, args.workers or os.cpu_count() or 1)
    out = args.out or Path("runs") / f"{args.task}-sweep"
    return _holding_lock("sweep", out, lambda: _sweep_in(out, args, base, workers))


def _sweep_in(out: Path, args: argparse.Namespace, base: Experiment, workers: int) -> int:
    """The seeds of ``sweep_command``, once it holds the lock of ``out``."""
    from bptt.train.figures import save_sweep_figure

    print(f"bptt sweep | {_describe(base).rsplit(' | seed', 1)[0]} | seeds 0..{args.seeds - 1} | "
          f"{workers} worker processes | out {out}", flush=True)
    start = time.perf_counter()
    summaries = []
    with _pool(workers) as pool:
        for summary in pool.map(run_summary, [replace(base, seed=seed) for seed in range(args.seeds)]):
            summaries.append(summary)
            shown = " | ".join(f"{k} {_shown(v, 3)}" for k, v in summary["metrics"].items())
            print(f"seed {summary['seed']:>3} | {'ok  ' if summary['success'] else 'FAIL'} | {shown} | "
                  f"{summary['seconds']:.1f} s", flush=True)
    task = make_task(args.task, 0, **base.task_options)
    goals = ", ".join(f"{name} {op} {threshold:g}" for name, (op, threshold) in task.goals.items())
    passed = sum(s["success"] for s in summaries)
    metric = next(iter(task.goals))
    values = [s["metrics"][metric] for s in summaries]
    seconds = [s["seconds"] for s in summaries]
    figure = save_sweep_figure(summaries, metric, out / "sweep.png", title=f"{args.task}: {args.seeds} seeds",
                               goal=task.goals[metric][1])
    print(f"{passed}/{len(summaries)} seeds reached {goals}; {metric}: median {statistics.median(values):.3g}, "
          f"min {min(values):.3g}, max {max(values):.3g}; median {statistics.median(seconds):.1f} s per seed; "
          f"{time.perf_counter() - start:.1f} s in all; figure {figure}")
    if args.json:
        print(json.dumps({"task": args.task, "task_options": dict(base.task_options), "seeds": args.seeds,
                          "passed": passed, "goals": task.goals,
                          "median_seconds": statistics.median(seconds), "config": asdict(base.config),
                          "runs": [{k: s[k] for k in ("seed", "metrics", "success", "seconds", "best_step")}
                                   for s in summaries], "figure": str(figure)}))
    return 0 if passed == len(summaries) else 1


def gradcheck_command(args: argparse.Namespace) -> int:
    """Check a random layer of the family in float64; exit 1 when the check fails."""
    rng = np.random.default_rng(args.seed)
    options = {"num_layers": args.num_layers, "bidirectional": args.bidirectional}
    if args.layer == "lstm":
        options["proj_size"] = args.proj_size
    elif args.proj_size:
        print(f"bptt gradcheck: --proj-size is an LSTM option, not a {args.layer.upper()} one.", file=sys.stderr)
        return 2
    if args.layer == "rnn":
        options["nonlinearity"] = args.nonlinearity
    try:
        layer = LAYERS[args.layer](args.input_size, args.hidden_size, **options, rng=rng)
    except ValueError as error:
        print(f"bptt gradcheck: {error}", file=sys.stderr)
        return 2
    x = rng.standard_normal((args.seq_len, args.batch, args.input_size))
    print(f"bptt gradcheck {args.layer} | input-size {args.input_size} | hidden-size {args.hidden_size} | "
          f"num-layers {args.num_layers} | bidirectional {args.bidirectional} | seq-len {args.seq_len} | "
          f"batch {args.batch} | mode {args.mode} | seed {args.seed}")
    report = check_layer(layer, x, mode=args.mode, samples=args.samples, seed=args.seed)
    print(report)
    if args.json:
        print(json.dumps(report.to_dict()))
    return 0 if report.ok else 1


def _character_model(checkpoint: Path):
    """The LanguageModel, vocabulary and metadata of a checkpoint of ``bptt train chars``; ValueError when it is
    something else."""
    from bptt.layers.models import LanguageModel

    model = load(checkpoint)
    metadata = load_arrays(checkpoint)[1]
    vocabulary = metadata.get("vocabulary")
    if isinstance(model, LanguageModel):
        model.eval()                                  # read, never trained here: no dropout
    if not isinstance(model, LanguageModel) or not isinstance(vocabulary, str):
        raise ValueError(f"expected a character model saved by bptt train chars (a LanguageModel with its "
                         f"vocabulary), got a {type(model).__name__} in {os.fspath(checkpoint)!r}"
                         f"{'' if isinstance(vocabulary, str) else ' without a vocabulary'}.")
    return model, vocabulary, metadata


def sample_command(args: argparse.Namespace) -> int:
    """Print the prime and ``--length`` characters generated after it; exit 2 when the checkpoint is not a
    character model, or the prime has characters outside its vocabulary."""
    from bptt.layers.sampling import sample

    try:
        model, vocabulary, _ = _character_model(args.checkpoint)
        prime = args.prime if args.prime is not None else ("\n" if "\n" in vocabulary else vocabulary[0])
        unknown = sorted(set(prime) - set(vocabulary))
        if unknown or not prime:
            raise ValueError(f"expected a prime of characters in the model's vocabulary, got {prime!r}"
                             + (f", whose {''.join(unknown)!r} it never saw." if unknown else ", which is empty."))
        table = {c: k for k, c in enumerate(vocabulary)}
        tokens = sample(model, [table[c] for c in prime], args.length, temperature=args.temperature,
                        rng=args.seed)
    except ValueError as error:
        print(f"bptt sample: {error}", file=sys.stderr)
        return 2
    print(prime + "".join(vocabulary[k] for k in tokens))
    return 0


LINE_START_SEARCH = 200
"""``bptt visualize`` without ``--text`` starts the test text just after its first newline, when that is within
this many characters of the start: a picture that begins mid-line reads worse."""


def _visualized_text(args: argparse.Namespace, metadata: dict) -> tuple[str, str]:
    """The first ``--length`` characters of ``--text``, or of the run's test text from its first line start (see
    :data:`LINE_START_SEARCH`); and where they come from."""
    from bptt.train.tasks.chars import read_text

    if args.text is not None:
        try:
            return read_text(args.text)[:args.length], repr(os.fspath(args.text))
        except ValueError as error:
            raise ValueError(f"--text: {str(error).removeprefix('chars: ')}") from error
    if metadata.get("task") != "chars":
        raise ValueError(f"expected a checkpoint of bptt train chars to rebuild its test text, got one of task "
                         f"{metadata.get('task')!r}. Pass the text to read with --text FILE.")
    options = dict(metadata.get("task_options") or {})
    try:
        task = make_task("chars", metadata.get("seed", 0), **options)
    except ValueError as error:
        raise ValueError(f"could not rebuild the run's test text ({error}) Pass the text to read with --text "
                         f"FILE.") from error
    source = f"the test text of {options['text']!r}" if options.get("text") else "the test text of the corpus"
    test = task.splits["test"]
    newlines = np.flatnonzero(test[:LINE_START_SEARCH] == task.vocabulary.find("\n"))
    start = int(newlines[0]) + 1 if len(newlines) and newlines[0] + 1 < len(test) else 0
    return task.decode(test[start:start + args.length]), source


def visualize_command(args: argparse.Namespace) -> int:
    """Write the HTML page and the PNG of :mod:`bptt.train.visualize` for a character model; exit 2 when the
    checkpoint is not one, the text cannot be read or has characters outside its vocabulary, or a unit is out
    of range."""
    try:
        model, vocabulary, metadata = _character_model(args.checkpoint)
        text, source = _visualized_text(args, metadata)
        unknown = sorted(set(text) - set(vocabulary))
        if unknown or not text:
            raise ValueError(f"expected a text of characters in the model's vocabulary, got {source}"
                             + (f", whose {''.join(unknown)!r} it never saw." if unknown else ", which is empty."))
        table = {c: k for k, c in enumerate(vocabulary)}
        config = model.config()
        out = args.out or args.checkpoint.parent / "cells.html"
        choice = " ".join(args.units) if args.units else f"the {args.top} with the most structure"
        print(f"bptt visualize | {args.checkpoint} | model {config['cell']} | hidden-size {config['hidden_size']} | "
              f"num-layers {config['num_layers']} | text {source}, {len(text)} characters | units {choice} | "
              f"out {out}", flush=True)
        states = vis.activations(model, np.array([table[c] for c in text]))
        if args.units:
            try:
                units = [vis.parse_unit(spec, states) for spec in args.units]
            except ValueError as error:
                raise ValueError(f"--units: {str(error).removeprefix('parse_unit: ')}") from error
            values = vis.display_values(states, units)
            chosen = list(zip(units, map(float, vis.structure_scores(values.T)), strict=True))
        else:
            chosen = vis.choose_units(states, args.top)
    except ValueError as error:
        print(f"bptt visualize: {error}", file=sys.stderr)
        return 2
    units = [unit for unit, _ in chosen]
    values = vis.display_values(states, units)
    labels = [f"{unit} | {unit.describe()} | structure {score:.3f}" for unit, score in chosen]
    note = (f"{len(text)} characters of {source} read by {args.checkpoint} ({config['cell']}, "
            f"{config['num_layers']} x {config['hidden_size']}), the state carried from the first; each "
            f"character coloured by the unit's value after reading it; a cell unit divided by its largest |c|.")
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out, vis.html(text, values, labels, note=note).encode("utf-8"))
    png = vis.save_png(out.with_suffix(".png"), text, values, labels)
    for unit, score in chosen:
        print(f"unit {str(unit):>9} | structure {score:.3f} | {unit.describe()}")
    print(f"wrote {out} and {png}")
    if args.json:
        print(json.dumps({"html": str(out), "png": str(png), "characters": len(text), "text": source,
                          "units": [{"unit": str(unit), "score": score} for unit, score in chosen]}))
    return 0


def predict_command(args: argparse.Namespace) -> int:
    """Write the forecasts of a csv run's model for ``--file``; exit 2 when the checkpoint is not one or the
    file cannot be read, lacks a column or has bad data."""
    from bptt.train.predict import Forecaster

    out = args.out or args.checkpoint.parent / "forecasts.csv"
    try:
        forecaster = Forecaster.load(args.checkpoint)
        print(f"bptt predict | {args.checkpoint} | target {forecaster.target}, {forecaster.horizon} ahead of "
              f"{forecaster.window}-row windows of {', '.join(forecaster.columns)} | file {args.file} | out {out}",
              flush=True)
        table = forecaster.forecast_file(args.file, fill=args.fill)
    except (ImportError, ValueError) as error:
        print(f"bptt predict: {error}", file=sys.stderr)
        return 2
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out, table.to_csv(index=False).encode("utf-8"))
    actual = table[forecaster.target].to_numpy()
    scored = ~np.isnan(actual)
    errors = table[f"{forecaster.target}_forecast"].to_numpy()[scored] - actual[scored]
    summary = {"out": str(out), "forecasts": len(table), "beyond_end": forecaster.horizon, "scored": int(scored.sum()),
               "mae": float(np.mean(np.abs(errors))) if scored.any() else None,
               "rmse": float(np.sqrt(np.mean(errors**2))) if scored.any() else None}
    accuracy = (f"; against the file's {summary['scored']} actual values: MAE {summary['mae']:.4g}, RMSE "
                f"{summary['rmse']:.4g}" if scored.any() else "")
    print(f"wrote {len(table)} forecasts of {forecaster.target} (rows {table['row'].iloc[0]}-{table['row'].iloc[-1]}, "
          f"the last {forecaster.horizon} after the file's end) to {out}{accuracy}")
    if args.json:
        print(json.dumps(summary))
    return 0


def export_command(args: argparse.Namespace) -> int:
    """Rebuild the module saved at ``args.checkpoint`` and write it as an ONNX model; exit 2 when the file
    cannot be read or the module has no ONNX form (an LSTM with a projection), or onnx is missing."""
    try:
        module = load(args.checkpoint)
        path = export_onnx(module, args.out, opset=args.opset)
    except (ImportError, TypeError, ValueError) as error:
        print(f"bptt export: {error}", file=sys.stderr)
        return 2
    print(f"bptt export | wrote {path}: the {type(module).__name__} of {args.checkpoint} as ONNX opset {args.opset}; "
          f"{describe_inputs(module, opset=args.opset)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``bptt`` and ``python -m bptt``; returns the exit code."""
    args = build_parser().parse_args(argv)
    commands = {"train": train_command, "sweep": sweep_command, "gradcheck": gradcheck_command, "bench": bench.run,
                "sample": sample_command, "visualize": visualize_command, "predict": predict_command,
                "export": export_command}
    return commands[args.verb](args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
