"""``bptt train TASK``: train a model on a task and save its checkpoint, train state, metrics and figures; stopped
by Ctrl-C or SIGTERM it saves the train state, and ``--resume`` continues it bitwise."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from bptt.cli._arguments import holding_lock, positive_int, shown
from bptt.cli._experiment_options import add_training_options, describe, model_options, task_options
from bptt.interop.io import atomic_write_bytes, remove_interrupted_writes
from bptt.interop.serialization import save
from bptt.layers.inference import inference_mode
from bptt.layers.kernels import describe_path, kernels_on_disk
from bptt.train.experiment import Experiment, load_resumable, make_task, resolve, run
from bptt.train.fit import DivergenceError, History, TrainingInterrupted, TrainState, save_train_state
from bptt.train.interrupts import StopRequest


def add_parser(verbs: argparse._SubParsersAction) -> None:
    """The ``train`` verb and its options."""
    train = verbs.add_parser("train", help="train a model on a task and save checkpoint, metrics and figures")
    add_training_options(train)
    output = train.add_argument_group("output")
    output.add_argument("--out", type=Path, default=None, help="output folder (default runs/TASK)")
    output.add_argument("--json", action="store_true", help="print a JSON summary as the last line of stdout")
    output.add_argument("--save-every", type=positive_int, default=None, metavar="N",
                        help="also write the train state every N steps (default: at evaluations only)")
    output.add_argument("--resume", action="store_true",
                        help="continue the run saved in --out to --steps, bitwise as if uninterrupted (its settings)")
    train.set_defaults(command=command)


def command(args: argparse.Namespace) -> int:
    """Resolve the run's settings, take the lock of its folder (one run per folder), and train."""
    out = args.out or Path("runs") / args.task
    try:
        experiment, resume = _train_settings(args, out / "train_state.safetensors")
    except ValueError as error:
        print(f"bptt train: {error}", file=sys.stderr)
        return 2
    return holding_lock("train", out, lambda: _train_in(out, args, experiment, resume))


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
    given = task_options(args)
    if args.resume:
        return load_resumable(train_state, args.task, args.seed, task_options=given, **model_options(args))
    return resolve(args.task, 0 if args.seed is None else args.seed, task_options=given, **model_options(args)), None


def _train_in(out: Path, args: argparse.Namespace, experiment: Experiment, resume: TrainState | None) -> int:
    """The run of :func:`command`, once it holds the lock of ``out``."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from bptt.train.figures import save_run_figures

    console = Console(highlight=False, soft_wrap=True)
    checkpoint, train_state = out / "model.safetensors", out / "train_state.safetensors"
    for path in (checkpoint, train_state, out / "metrics.jsonl"):
        remove_interrupted_writes(path)
    done = resume.step if resume is not None else 0
    resumed = f" | resumed after step {done}" if done else ""
    console.print(f"bptt train | {describe(experiment)} | out {out}{resumed} | {describe_path()}")
    if kernels_on_disk(experiment.cell, experiment.dtype) is False:
        console.print(f"compiling the {experiment.cell.upper()} {experiment.dtype} loops: the first run on this "
                      "installation takes a few seconds more, and numba keeps them for the next")
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
    with inference_mode():                              # the figures' forward passes keep no cache
        figures = save_run_figures(result, out)
    stopped = f", stopped early at step {history.stopped_early_at}" if history.stopped_early_at else ""
    console.print(f"kept the weights of step {history.best_step} (best validation loss "
                  f"{history.best_val_loss:.3e}){stopped}; {len(history.step)} steps, {len(history.step) - done} "
                  f"of them in this run's {result.seconds:.1f} s")
    console.print("test: " + " | ".join(f"{k} {shown(v, 4)}"
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
