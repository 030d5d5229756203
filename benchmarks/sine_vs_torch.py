"""Time to train the sine task to test MSE < 1e-4: `bptt train sine` (default settings) against the identical
model, initialisation, optimizer, schedule, clipping, loss and batches in PyTorch, measured in one process.

What is compared, per seed (settings from ``bptt.train.experiment.resolve("sine", seed)``):

* bptt: ``SequenceRegressor`` (LSTM + Linear head) built and initialised as ``bptt train`` does
  (``build_model``: ``rng=np.random.default_rng(seed)``), ``bptt.train.optim`` Adam, ``clip_grad_norm``,
  ``task.loss``; each step is the body of ``bptt.train.fit.fit`` without truncation: forward, loss, zero_grad,
  backward, clip, finite check, optimizer step, with ``optimizer.lr = config.lr_at(step - 1)``.
* torch: the twin ``bptt.interop.torch_interop.to_torch(model)`` makes (``rnn = nn.LSTM(1, H)`` and
  ``head = nn.Linear(H, 1)`` of the same dtype, the bptt model's initial weights copied); ``torch.optim.Adam``
  (defaults: the single-tensor CPU path), ``param_group["lr"] = config.lr_at(step - 1)`` each step,
  ``torch.nn.utils.clip_grad_norm_`` with the same max norm, MSE over the steps after the task's warm-up (mean
  reduction), zero initial states; the same work per step (forward, loss, zero_grad, backward, clip, finite
  check with ``.item()``, step).
* Both get exactly the same training batches: ``task.batch(data_streams(seed)["train"], batch_size, dtype)``
  drawn once, in order, before anything is timed (the sequence ``bptt train`` itself draws), and the same
  test set ``task.held_out("test", data_streams(seed)["test"], dtype)``.

Every ``--eval-every`` steps (default 50) each side evaluates the test MSE with its own model; its clock
stops at the first evaluation below ``--threshold``. Evaluation time is EXCLUDED from the training time
(it is reported separately); so are batch generation, model construction and the pauses.

Timing follows ``/work/shared/BENCHMARKING.md``: one process, ``torch.set_num_threads(2)``, NumPy's BLAS
threads as they are (printed with threadpoolctl); the two runs are interleaved block by block (bptt block,
torch block, bptt block, ...; a block is the ``--eval-every`` steps between two evaluations), each block
preceded by a ~0.2 s pause and one untimed warm-up forward + backward on that block's first batch (no
optimizer step, so the trajectory is unchanged). Garbage collection stays enabled, as in real training.
Before the timed runs of each seed, a consistency check trains fresh copies of both for ``--check-steps``
(default 10) steps and exits with an error unless their weights agree (float64: 1e-10 relative).
The sides, the check, the race and the report are ``benchmarks/_race.py``'s, shared with ``chars_vs_torch.py``.

Usage::

    python benchmarks/sine_vs_torch.py                        # seeds 0, 1, 2, float64
    python benchmarks/sine_vs_torch.py --seeds 5 --json out.json
    python benchmarks/sine_vs_torch.py --dtype float32        # both sides float32 (torch: oneDNN LSTM)
    python benchmarks/sine_vs_torch.py --seeds 1 --steps-limit 20 --eval-every 10   # a smoke run (~10 s)
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/sine_vs_torch.py   # see BENCHMARKING.md

``--dtype float32`` runs both sides in float32 (``bptt train sine --dtype float32``; the default is float64).
In float32 the two trajectories drift apart by rounding, so they may reach the target at different steps;
compare the per-step times then as well.
"""

from __future__ import annotations

import argparse

import torch
from _race import Contest, Metric, check_args, make_parser
from _race import main as race_main

from bptt.train.experiment import TASKS, resolve

TEST_MSE = Metric("test_mse", "test MSE", ".2e")


def contest(seed: int, args: argparse.Namespace) -> Contest:
    """Seed ``seed`` of the sine task: the batches ``bptt train`` draws, the test set, MSE after the warm-up."""
    experiment = resolve("sine", seed, dtype=args.dtype)
    task = TASKS[experiment.task]()

    def mse_after_warmup(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.mse_loss(pred[task.warmup:], y[task.warmup:])   # mean over steps >= warm-up

    return Contest.draw("sine_vs_torch", experiment, task, "test", mse_after_warmup, TEST_MSE, args.steps_limit,
                        args.check_steps)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = make_parser(__doc__, seeds=3, dtype="float64", eval_every=50,
                         dtype_help="dtype of both sides (default float64, as `bptt train`)")
    parser.add_argument("--threshold", type=float, default=1e-4, help="target test MSE (default 1e-4)")
    return check_args(parser, parser.parse_args(argv), "threshold")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return race_main(args, source="resolve('sine', seed)", config=resolve("sine", args.first_seed).config,
                     metric=TEST_MSE, target=args.threshold, contest=lambda seed: contest(seed, args))


if __name__ == "__main__":
    raise SystemExit(main())
