"""Train an LSTM to predict sine waves with bptt's Python API, then plot what it learned.

The same run as ``bptt train sine``, built from its parts: a :class:`bptt.layers.models.SequenceRegressor` (an LSTM
with a dense head at every step), the :class:`bptt.train.tasks.sine.SineTask` data, and :func:`bptt.train.fit.fit`
with the default :class:`bptt.train.fit.TrainConfig` (Adam, cosine decay, gradient clipping, best weights kept).

    python examples/train_sine.py                      # 1500 steps, about 10 s on 2 cores
    python examples/train_sine.py --steps 50 --out /tmp/sine

Writes ``sine.png`` in ``--out`` (default ``runs/example-sine``): the loss curves, and 100 steps the model
generates from its own predictions after observing a held-out wave. Prints the test MSE.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np

from bptt.layers.models import SequenceRegressor
from bptt.train.fit import TrainConfig, data_streams, fit
from bptt.train.plots import plot_generation, plot_losses
from bptt.train.tasks.sine import SineTask, generate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=1500, help="training steps (default 1500)")
    parser.add_argument("--seed", type=int, default=0, help="seed of initialisation and data (default 0)")
    parser.add_argument("--out", type=Path, default=Path("runs/example-sine"), help="folder for sine.png")
    args = parser.parse_args(argv)

    task = SineTask()
    config = dataclasses.replace(TrainConfig(), steps=args.steps, eval_every=min(100, args.steps))
    print(f"training an LSTM(1, 32) + Linear(32, 1) on sine for {config.steps} steps: {config}")
    model = SequenceRegressor(task.input_size, 32, task.output_size, rng=np.random.default_rng(args.seed))

    def log(step, history):
        if history.eval_step[-1:] == [step]:
            print(f"step {step:>5} | loss {history.loss[-1]:.2e} | val-loss {history.val_loss[-1]:.2e} | "
                  f"grad-norm {history.grad_norm[-1]:.3g}")

    history = fit(model, task, config, seed=args.seed, on_step=log)   # leaves the best validation weights

    x, y = task.held_out("test", data_streams(args.seed)["test"], model.dtype)
    metrics = task.metrics(model, (x, y))
    print(f"kept the weights of step {history.best_step}; test MSE {metrics['test_mse']:.3e}, "
          f"generation MSE over {task.generation_steps} steps {metrics['generation_mse']:.3e}")

    import matplotlib

    matplotlib.use("Agg")                      # no display needed: write a file
    import matplotlib.pyplot as plt

    observed = x[:, :1]                        # one held-out wave, (T, 1, 1)
    generated = generate(model, observed, task.generation_steps)
    truth = task.continuation(observed, task.generation_steps)
    fig, (ax_loss, ax_wave) = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    plot_losses(history, ax_loss)
    plot_generation(observed[:, 0, 0], generated[:, 0, 0], truth[:, 0, 0], ax_wave)
    fig.suptitle(f"sine: {config.steps} steps, test MSE {metrics['test_mse']:.2e}")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "sine.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"saved {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
