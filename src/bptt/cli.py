"""The ``bptt`` command line: ``bptt train sine``, ``bptt gradcheck lstm``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from bptt import __version__
from bptt.gru import GRU
from bptt.io import save_arrays
from bptt.layercheck import check_layer
from bptt.lstm import LSTM
from bptt.models import SequenceRegressor
from bptt.rnn import RNN
from bptt.tasks.sine import SineTask
from bptt.train import History, NonFiniteError, TrainConfig, fit

TASKS = {"sine": SineTask}
LAYERS = {"lstm": LSTM, "gru": GRU, "rnn": RNN}
_DEFAULTS = TrainConfig()


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bptt", description="Recurrent networks in NumPy with hand-derived BPTT.")
    parser.add_argument("--version", action="version", version=f"bptt {__version__}")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    train = verbs.add_parser("train", help="train a model on a task and save checkpoint, metrics and figures")
    train.add_argument("task", choices=sorted(TASKS), help="the task to train on")
    model = train.add_argument_group("model")
    model.add_argument("--hidden-size", type=_positive_int, default=32, help="LSTM hidden size H (default 32)")
    model.add_argument("--num-layers", type=_positive_int, default=1, help="stacked LSTM layers (default 1)")
    optimization = train.add_argument_group("optimization")
    optimization.add_argument("--steps", type=_positive_int, default=_DEFAULTS.steps,
                              help=f"training steps (default {_DEFAULTS.steps})")
    optimization.add_argument("--lr", type=_positive_float, default=_DEFAULTS.lr,
                              help=f"Adam's initial learning rate, decayed by a cosine (default {_DEFAULTS.lr:g})")
    optimization.add_argument("--batch-size", type=_positive_int, default=_DEFAULTS.batch_size,
                              help=f"sequences per step (default {_DEFAULTS.batch_size})")
    optimization.add_argument("--seed", type=int, default=0, help="seed of initialisation and data (default 0)")
    output = train.add_argument_group("output")
    output.add_argument("--out", type=Path, default=Path("runs/sine"), help="output folder (default runs/sine)")
    output.add_argument("--json", action="store_true", help="print a JSON summary as the last line of stdout")

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
    return parser


def _write_metrics(path: Path, history: History) -> None:
    test_at = dict(zip(history.eval_step, history.test_mse, strict=True))
    with path.open("w") as handle:
        for step, loss, norm, lr in zip(history.step, history.loss, history.grad_norm, history.lr, strict=True):
            row = {"step": step, "loss": loss, "grad_norm": norm, "lr": lr}
            if step in test_at:
                row["test_mse"] = test_at[step]
            handle.write(json.dumps(row) + "\n")


def _save_figures(out: Path, history: History, task: SineTask, model: SequenceRegressor, seed: int) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bptt.plots import plot_loss, plot_prediction

    paths = [out / "loss.png", out / "prediction.png"]
    fig, ax = plt.subplots(figsize=(7, 4), constrained_layout=True)
    plot_loss(history, ax).set_title("sine: training loss and held-out MSE")
    fig.savefig(paths[0], dpi=120)
    plt.close(fig)
    x, y = task.sample(np.random.default_rng([seed, 1]), 1, model.dtype)
    fig, ax = plt.subplots(figsize=(7, 4), constrained_layout=True)
    plot_prediction(x[:, 0, 0], y[:, 0, 0], model(x)[:, 0, 0], task.warmup, ax).set_title(
        "sine: next-step prediction on a held-out phase")
    fig.savefig(paths[1], dpi=120)
    plt.close(fig)
    return paths


def train_command(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(highlight=False, soft_wrap=True)
    task = TASKS[args.task]()
    config = TrainConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                         final_lr=min(_DEFAULTS.final_lr, args.lr))
    model = SequenceRegressor(task.input_size, args.hidden_size, task.output_size, args.num_layers,
                              rng=np.random.default_rng(args.seed))
    console.print(f"bptt train {args.task} | hidden-size {args.hidden_size} | num-layers {args.num_layers} | "
                  f"steps {config.steps} | batch-size {config.batch_size} | lr {config.lr:g} -> "
                  f"{config.final_lr:g} (cosine) | clip-norm {config.clip_norm:g} | seed {args.seed} | "
                  f"out {args.out}")
    start = time.perf_counter()
    with Progress(TextColumn("training"), BarColumn(), TextColumn("{task.completed}/{task.total} steps"),
                  TimeElapsedColumn(), console=console, transient=True) as progress:
        bar = progress.add_task("train", total=config.steps)

        def log(step: int, history: History) -> None:
            progress.update(bar, completed=step)
            if history.eval_step[-1:] != [step]:
                return
            elapsed = time.perf_counter() - start
            progress.console.print(
                f"step {step:>5} | loss {history.loss[-1]:.2e} | test-mse {history.test_mse[-1]:.2e} | "
                f"grad-norm {history.grad_norm[-1]:.3g} | {1e3 * elapsed / step:.2f} ms/step | {elapsed:.1f} s")

        try:
            history = fit(model, task, config, args.seed, on_step=log)
        except NonFiniteError as error:
            progress.stop()
            console.print(f"error: {error}")
            return 1
    seconds = time.perf_counter() - start
    test_mse = history.test_mse[-1]
    args.out.mkdir(parents=True, exist_ok=True)
    checkpoint = save_arrays(args.out / "model.safetensors", model.params,
                             {"format": "bptt", "class": "SequenceRegressor", "task": args.task,
                              "hidden_size": args.hidden_size, "num_layers": args.num_layers, "seed": args.seed})
    _write_metrics(args.out / "metrics.jsonl", history)
    figures = _save_figures(args.out, history, task, model, args.seed)
    console.print(f"test MSE {test_mse:.3e} on held-out phases after {config.steps} steps in {seconds:.1f} s")
    console.print(f"saved {checkpoint}, {args.out / 'metrics.jsonl'}, " + ", ".join(map(str, figures)))
    if args.json:
        summary = {"task": args.task, "test_mse": test_mse, "train_loss": history.loss[-1], "seconds": seconds,
                   "steps": config.steps, "seed": args.seed, "hidden_size": args.hidden_size,
                   "checkpoint": str(checkpoint), "metrics": str(args.out / "metrics.jsonl"),
                   "figures": [str(p) for p in figures]}
        print(json.dumps(summary))
    return 0


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


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``bptt`` and ``python -m bptt``; returns the exit code."""
    args = build_parser().parse_args(argv)
    commands = {"train": train_command, "gradcheck": gradcheck_command}
    return commands[args.verb](args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
