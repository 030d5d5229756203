"""Time to train the chars task to a validation BPC: `bptt train chars` (default settings, float32) against the
identical language model, initialisation, optimizer, schedule, clipping, loss and batches in PyTorch, measured
in one process.

What is compared, per seed (settings from ``bptt.train.experiment.resolve("chars", seed)`` without the task's
dropout, :data:`NO_DROPOUT`: an LSTM language model, embedding 32, H = 256, batch 32 of 128 characters, Adam at
3e-3 with 50 warm-up steps and a cosine decay to 1e-4 over 4,000 steps, clipping at 1.0, float32):

* bptt: the ``LanguageModel`` ``CharsTask.build_model`` builds, initialised as ``bptt train`` does
  (``rng=np.random.default_rng(seed)``), ``bptt.train.optim`` Adam, ``clip_grad_norm``, ``task.loss`` (the mean
  cross-entropy over every step and sequence); each step is the body of ``bptt.train.fit.fit`` (the task trains
  without truncated BPTT: every batch is one forward from zero states): forward, loss, zero_grad, backward,
  clip, finite check, optimizer step, with ``optimizer.lr = config.lr_at(step - 1)``.
* torch: the twin ``bptt.interop.torch_interop.to_torch(model)`` makes (``nn.Embedding``, ``nn.LSTM``,
  ``nn.Linear``, float32, the bptt model's initial weights copied; ``logits, state = twin(tokens)``);
  ``torch.optim.Adam`` (defaults: the single-tensor CPU path), ``param_group["lr"] = config.lr_at(step - 1)``
  each step, ``torch.nn.utils.clip_grad_norm_`` with the same max norm, ``F.cross_entropy`` over the flattened
  ``(T N, V)`` logits (mean reduction, as the task's loss), zero initial states; the same work per step.
* Both get exactly the same training batches: ``task.batch(data_streams(seed)["train"], batch_size)`` drawn
  once, in order, before anything is timed (the sequence ``bptt train`` itself draws), and the same validation
  set: ``task.held_out("validation")``, the validation text as 32 contiguous streams side by side, read in one
  forward call from zero states, as ``fit`` evaluates it: bptt's under ``bptt.inference_mode()``, torch's under
  ``torch.no_grad()``.

Every ``--eval-every`` steps (default 100; ``bptt train chars`` evaluates every 500, which only decides when it
looks: an evaluation leaves the weights alone) each side computes its validation BPC (the mean validation
cross-entropy over ln 2); its clock stops at the first evaluation below ``--target-bpc`` (default 2.25: seed 0's
bptt run measured 3.15, 2.58, 2.32 and 2.19 at steps 100 to 400, so the target lies between two evaluations
rather than at one, where float32 drift could move one side's stop by a whole block; the full 4,000-step run
reaches about 1.6). Evaluation time
is EXCLUDED from the training time (reported separately); so are batch generation, model construction and the
pauses.

Timing follows ``/work/shared/BENCHMARKING.md`` as ``sine_vs_torch.py`` does, with the same harness
(``benchmarks/_race.py``): one process, ``torch.set_num_threads(2)``, blocks interleaved bptt/torch with a pause
and one untimed forward + backward before each, the CPU share other processes took while each side was timed.
Before the timed runs of each seed, a consistency check trains fresh copies of both for ``--check-steps``
(default 10) steps and exits with an error unless their weights agree to 1e-3 relative (float32; 1e-10 with
``--dtype float64``). In float32 the two trajectories drift apart by rounding, so they may reach the target at
different steps; compare the per-step times then as well.

Usage::

    python benchmarks/chars_vs_torch.py                         # seed 0, float32, H = 256, target 2.25 BPC
    python benchmarks/chars_vs_torch.py --seeds 3 --json chars.json
    python benchmarks/chars_vs_torch.py --hidden-size 32 --steps-limit 20 --eval-every 10 --check-steps 3
                                                                # a smoke run (seconds)
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/chars_vs_torch.py   # see BENCHMARKING.md
"""

from __future__ import annotations

import argparse
import math

import torch
from _race import Contest, Metric, check_args, make_parser
from _race import main as race_main

from bptt.train.experiment import make_task, resolve
from bptt.train.tasks.chars import CharsTask

NO_DROPOUT = {"dropout": 0.0}
"""The task without its dropout (0.2 on the language model's input and output in training), on both sides:
torch's ``nn.LSTM`` drops only between layers, so its twin has nowhere to put it, and the two would train
different models."""
VALIDATION_BPC = Metric("val_bpc", "validation BPC", ".3f", scale=1 / math.log(2))


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The task's loss: mean cross-entropy over every step and sequence, logits ``(T, N, V)``, targets ``(T, N)``."""
    return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def contest(task: CharsTask, seed: int, args: argparse.Namespace) -> Contest:
    """Seed ``seed`` of the chars task: the batches ``bptt train`` draws and the validation streams."""
    experiment = resolve("chars", seed, task_options=NO_DROPOUT, hidden_size=args.hidden_size, dtype=args.dtype)
    return Contest.draw("chars_vs_torch", experiment, task, "validation", cross_entropy, VALIDATION_BPC,
                        args.steps_limit, args.check_steps)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = make_parser(__doc__, seeds=1, dtype="float32", eval_every=100,
                         dtype_help="dtype of both sides (default float32, as `bptt train chars`)")
    parser.add_argument("--target-bpc", type=float, default=2.25, help="target validation BPC (default 2.25)")
    parser.add_argument("--hidden-size", type=int, default=None,
                        help="hidden size of both models (default: the task's, 256); smaller for a smoke run")
    args = check_args(parser, parser.parse_args(argv), "target_bpc")
    if args.hidden_size is not None and args.hidden_size < 1:
        parser.error("--hidden-size must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    task = make_task("chars", **NO_DROPOUT)
    experiment = resolve("chars", args.first_seed, task_options=NO_DROPOUT, hidden_size=args.hidden_size,
                         dtype=args.dtype)

    def describe() -> None:
        length, streams = task.held_out("validation")[0].shape
        print(f"corpus: {task.corpus_chars:,} characters (sha256 {task.corpus_sha256[:12]}), vocabulary "
              f"{task.input_size}; model: LanguageModel(embedding {task.embedding_dim}, {experiment.cell} "
              f"H={experiment.hidden_size}, L={experiment.num_layers}); batches ({task.seq_len}, "
              f"{experiment.config.batch_size}); validation: {streams} streams of {length} characters")

    return race_main(args, source="resolve('chars', seed)", config=experiment.config, metric=VALIDATION_BPC,
                     target=args.target_bpc, contest=lambda seed: contest(task, seed, args), column="val BPC",
                     describe=describe)


if __name__ == "__main__":
    raise SystemExit(main())
