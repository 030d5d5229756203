"""Time to train the sine task to test MSE < 1e-4: `bptt train sine` (default settings) against the identical
model, initialisation, optimizer, schedule, clipping, loss and batches in PyTorch, measured in one process.

What is compared, per seed (settings from ``bptt.train.experiment.resolve("sine", seed)``):

* bptt: ``SequenceRegressor`` (LSTM + Linear head) initialised as ``bptt train`` does
  (``rng=np.random.default_rng(seed)``), ``bptt.train.optim`` Adam, ``clip_grad_norm``, ``task.loss``; each step is
  the body of ``bptt.train.fit.fit`` without truncation: forward, loss, zero_grad, backward, clip, finite check,
  optimizer step, with ``optimizer.lr = config.lr_at(step - 1)``.
* torch: a ``torch.nn.Module`` with ``rnn = nn.LSTM(1, H)`` and ``head = nn.Linear(H, 1)`` of the same dtype,
  loaded with the bptt model's initial state dict; ``torch.optim.Adam`` (defaults: the single-tensor CPU
  path), ``param_group["lr"] = config.lr_at(step - 1)`` each step, ``torch.nn.utils.clip_grad_norm_`` with the
  same max norm, MSE over the steps after the task's warm-up (mean reduction), zero initial states; the
  same work per step (forward, loss, zero_grad, backward, clip, finite check with ``.item()``, step).
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

Usage::

    python benchmarks/sine_vs_torch.py                        # seeds 0, 1, 2, float64
    python benchmarks/sine_vs_torch.py --seeds 5 --json out.json
    python benchmarks/sine_vs_torch.py --dtype float32        # both sides float32 (torch: oneDNN LSTM)
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/sine_vs_torch.py   # see BENCHMARKING.md

``--dtype float32`` runs both sides in float32 (bptt: ``SequenceRegressor(dtype=np.float32)``; ``bptt train``
itself has no dtype option and always trains in float64). In float32 the two trajectories drift apart by
rounding, so they may reach the target at different steps; compare the per-step times then as well.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import statistics
import sys
import time
from dataclasses import asdict

import numpy as np
import torch

from bptt.layers.models import SequenceRegressor
from bptt.perf.timing import FOREIGN_WARN, PAUSE_S, TORCH_THREADS, ForeignLoad, environment_report
from bptt.train.experiment import TASKS, resolve
from bptt.train.fit import data_streams
from bptt.train.optim import OPTIMIZERS, clip_grad_norm

NP_DTYPE = {"float64": np.float64, "float32": np.float32}
TORCH_DTYPE = {"float64": torch.float64, "float32": torch.float32}
CHECK_TOLERANCE = {"float64": 1e-10, "float32": 1e-3}


# ---------------------------------------------------------------------------------------------------------
# The two sides
# ---------------------------------------------------------------------------------------------------------

class BpttSide:
    """bptt's model, optimizer, clipping and loss; one step = the body of ``bptt.train.fit.fit`` (no tbptt)."""

    name = "bptt"

    def __init__(self, experiment, task, dtype: str) -> None:
        config = experiment.config
        self.task, self.config = task, config
        self.model = SequenceRegressor(task.input_size, experiment.hidden_size, task.output_size,
                                       experiment.num_layers, cell=experiment.cell, dtype=NP_DTYPE[dtype],
                                       rng=np.random.default_rng(experiment.seed))
        self.optimizer = OPTIMIZERS[config.optimizer](self.model.params, self.model.grads, lr=config.lr,
                                                      weight_decay=config.weight_decay)

    def initial_state(self) -> dict[str, np.ndarray]:
        return self.model.state_dict()

    def step(self, step: int, x: np.ndarray, y: np.ndarray) -> float:
        model, config = self.model, self.config
        self.optimizer.lr = config.lr_at(step - 1)
        pred = model(x)
        loss, dpred = self.task.loss(pred, y)
        model.zero_grad()
        model.backward(dpred)
        norm = clip_grad_norm(model.grads, config.clip_norm)
        if not (math.isfinite(loss) and math.isfinite(norm)):
            raise FloatingPointError(f"bptt: non-finite loss ({loss}) or gradient norm ({norm}) at step {step}")
        self.optimizer.step()
        return loss

    def warm_up(self, x: np.ndarray, y: np.ndarray) -> None:
        """Forward + backward without an update (the next step zeroes the gradients again)."""
        _, dpred = self.task.loss(self.model(x), y)
        self.model.zero_grad()
        self.model.backward(dpred)

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> float:
        return float(self.task.loss(self.model(x), y)[0])

    def weights(self) -> dict[str, np.ndarray]:
        return {k: v.astype(np.float64) for k, v in self.model.params.items()}


class TorchRegressor(torch.nn.Module):
    """The torch twin of ``SequenceRegressor``: attributes ``rnn`` and ``head``, so the state-dict keys match."""

    def __init__(self, input_size: int, hidden_size: int, output_size: int, num_layers: int,
                 dtype: torch.dtype) -> None:
        super().__init__()
        self.rnn = torch.nn.LSTM(input_size, hidden_size, num_layers, dtype=dtype)
        self.head = torch.nn.Linear(hidden_size, output_size, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)            # zero initial states
        return self.head(out)


class TorchSide:
    """The same model, initial weights, optimizer, schedule, clipping and loss in PyTorch."""

    name = "torch"

    def __init__(self, experiment, task, dtype: str, initial_state: dict[str, np.ndarray]) -> None:
        config = experiment.config
        if config.optimizer != "adam" or config.tbptt or experiment.cell != "lstm":
            raise SystemExit(f"sine_vs_torch: expected an LSTM trained with Adam and no tbptt, got cell="
                             f"{experiment.cell!r}, optimizer={config.optimizer!r}, tbptt={config.tbptt!r}")
        self.config, self.skip = config, task.warmup
        self.module = TorchRegressor(task.input_size, experiment.hidden_size, task.output_size,
                                     experiment.num_layers, TORCH_DTYPE[dtype])
        self.module.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in initial_state.items()},
                                    strict=True)
        self.params = list(self.module.parameters())
        self.optimizer = torch.optim.Adam(self.params, lr=config.lr, weight_decay=config.weight_decay)

    def _loss(self, pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.mse_loss(pred[self.skip:], y[self.skip:])   # mean over steps >= warm-up

    def step(self, step: int, x: torch.Tensor, y: torch.Tensor) -> float:
        for group in self.optimizer.param_groups:
            group["lr"] = self.config.lr_at(step - 1)
        self.optimizer.zero_grad(set_to_none=True)
        loss = self._loss(self.module(x), y)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(self.params, self.config.clip_norm)
        loss_value, norm_value = loss.item(), norm.item()
        if not (math.isfinite(loss_value) and math.isfinite(norm_value)):
            raise FloatingPointError(f"torch: non-finite loss ({loss_value}) or gradient norm ({norm_value}) "
                                     f"at step {step}")
        self.optimizer.step()
        return loss_value

    def warm_up(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Forward + backward without an update (the next step sets the gradients to None first)."""
        self._loss(self.module(x), y).backward()
        self.optimizer.zero_grad(set_to_none=True)

    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> float:
        with torch.no_grad():
            return float(self._loss(self.module(x), y).item())

    def weights(self) -> dict[str, np.ndarray]:
        return {k: v.detach().to(torch.float64).numpy().copy() for k, v in self.module.state_dict().items()}


def build_sides(experiment, task, dtype: str) -> tuple[BpttSide, TorchSide]:
    ours = BpttSide(experiment, task, dtype)
    return ours, TorchSide(experiment, task, dtype, ours.initial_state())


def weight_divergence(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> dict[str, float]:
    """Per parameter, ``max|a - b| / max|b|``."""
    return {k: float(np.max(np.abs(a[k] - b[k])) / max(float(np.max(np.abs(b[k]))), 1e-300)) for k in b}


# ---------------------------------------------------------------------------------------------------------
# One seed
# ---------------------------------------------------------------------------------------------------------

def consistency_check(experiment, task, dtype: str, batches: list, torch_batches: list, steps: int) -> dict:
    """Train fresh copies of both sides for ``steps`` steps on the same batches; exit unless they agree."""
    ours, theirs = build_sides(experiment, task, dtype)
    divergence_at_start = weight_divergence(ours.weights(), theirs.weights())
    losses = []
    for step in range(1, steps + 1):
        losses.append((ours.step(step, *batches[step - 1]), theirs.step(step, *torch_batches[step - 1])))
    divergence = weight_divergence(ours.weights(), theirs.weights())
    worst = max(divergence.values())
    loss_rel = max(abs(a - b) / max(abs(b), 1e-300) for a, b in losses)
    tolerance = CHECK_TOLERANCE[dtype]
    print(f"  seed {experiment.seed}: consistency after {steps} steps: max relative weight difference "
          f"{worst:.2e} (worst {max(divergence, key=divergence.get)}), max relative loss difference "
          f"{loss_rel:.2e}; tolerance {tolerance:.0e} ({dtype}); at step 0: {max(divergence_at_start.values()):.1e}",
          flush=True)
    if not (worst <= tolerance and max(divergence_at_start.values()) == 0.0):
        details = ", ".join(f"{k} {v:.3e}" for k, v in divergence.items())
        sys.exit(f"sine_vs_torch: FAILED consistency check for seed {experiment.seed} ({dtype}): bptt and torch "
                 f"weights differ after {steps} steps by more than {tolerance:.0e} relative: {details}. "
                 f"They do not compute the same thing; refusing to time them.")
    return {"steps": steps, "max_rel_weight_diff": worst, "rel_weight_diff": divergence,
            "max_rel_loss_diff": loss_rel, "tolerance": tolerance}


def race(experiment, task, dtype: str, batches: list, torch_batches: list, test: tuple, torch_test: tuple,
         args: argparse.Namespace) -> dict:
    """Train both sides from the same start, interleaved block by block, until each reaches the target."""
    config = experiment.config
    sides = build_sides(experiment, task, dtype)
    data = {"bptt": (batches, test), "torch": (torch_batches, torch_test)}
    record = {side.name: {"step": 0, "train_s": 0.0, "eval_s": 0.0, "done": False, "reached_step": None,
                          "eval_step": [], "test_mse": [], "train_s_at_eval": [], "block_ms_per_step": [],
                          "monitor": ForeignLoad()} for side in sides}
    while not all(r["done"] for r in record.values()):
        for side in sides:                                          # A B A B ...
            r = record[side.name]
            if r["done"]:
                continue
            side_batches, (x_test, y_test) = data[side.name]
            first = r["step"] + 1
            last = min(config.steps, (r["step"] // args.eval_every + 1) * args.eval_every)
            gc.collect()
            time.sleep(args.pause)
            side.warm_up(*side_batches[first - 1])
            with r["monitor"]:
                started = time.perf_counter()
                for step in range(first, last + 1):
                    side.step(step, *side_batches[step - 1])
                elapsed = time.perf_counter() - started
            r["train_s"] += elapsed
            r["block_ms_per_step"].append(1e3 * elapsed / (last - first + 1))
            r["step"] = last
            started = time.perf_counter()
            mse = side.evaluate(x_test, y_test)
            r["eval_s"] += time.perf_counter() - started
            r["eval_step"].append(last)
            r["test_mse"].append(mse)
            r["train_s_at_eval"].append(r["train_s"])
            if mse < args.threshold:
                r["done"], r["reached_step"] = True, last
            elif last >= config.steps:
                r["done"] = True
    final = weight_divergence(sides[0].weights(), sides[1].weights())
    for r in record.values():
        r["foreign_cpu_fraction"] = r.pop("monitor").fraction
        r["ms_per_step"] = 1e3 * r["train_s"] / r["step"]
        r["median_block_ms_per_step"] = statistics.median(r["block_ms_per_step"])
        r["final_test_mse"] = r["test_mse"][-1]
        del r["done"]
    same_stop = record["bptt"]["step"] == record["torch"]["step"]
    return {"sides": record, "final_max_rel_weight_diff": max(final.values()) if same_stop else None}


def run_seed(seed: int, args: argparse.Namespace) -> dict:
    experiment = resolve("sine", seed)
    config = experiment.config
    task = TASKS[experiment.task]()
    np_dtype = NP_DTYPE[args.dtype]
    streams = data_streams(seed)
    batches = [task.batch(streams["train"], config.batch_size, np_dtype) for _ in range(config.steps)]
    torch_batches = [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in batches]
    test = task.held_out("test", data_streams(seed)["test"], np_dtype)
    torch_test = tuple(torch.from_numpy(a) for a in test)
    check = consistency_check(experiment, task, args.dtype, batches, torch_batches, args.check_steps)
    result = race(experiment, task, args.dtype, batches, torch_batches, test, torch_test, args)
    sides = result["sides"]
    b, t = sides["bptt"], sides["torch"]
    both = b["reached_step"] is not None and t["reached_step"] is not None
    row = {"seed": seed, "dtype": args.dtype, "check": check, **result,
           "ratio_time_to_target": b["train_s"] / t["train_s"] if both else None,
           "ratio_ms_per_step": b["ms_per_step"] / t["ms_per_step"],
           "ratio_median_block_ms_per_step": b["median_block_ms_per_step"] / t["median_block_ms_per_step"]}
    for name in ("bptt", "torch"):
        r = sides[name]
        reached = f"step {r['reached_step']}" if r["reached_step"] else f"NOT reached in {r['step']} steps"
        print(f"  seed {seed}: {name:5s} {reached}, train {r['train_s']:.2f} s ({r['ms_per_step']:.2f} ms/step), "
              f"eval {r['eval_s']:.2f} s, test MSE {r['final_test_mse']:.2e}, "
              f"other CPU {100 * r['foreign_cpu_fraction']:.0f}%", flush=True)
    return row


# ---------------------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------------------

def print_table(rows: list[dict], threshold: float) -> None:
    header = (f"{'seed':>4} {'side':<6} {'steps to target':>16} {'train s':>9} {'ms/step':>8} {'eval s':>7} "
              f"{'med blk ms/step':>15} {'test MSE':>9} {'other CPU':>9} {'bptt/torch time':>16} {'(med blk)':>10}")
    print(header)
    print("-" * len(header))
    for row in rows:
        for name in ("bptt", "torch"):
            r = row["sides"][name]
            steps = str(r["reached_step"]) if r["reached_step"] else f"> {r['step']}"
            ratio = ratio_step = ""
            if name == "torch":
                ratio = "n/a" if row["ratio_time_to_target"] is None else f"{row['ratio_time_to_target']:.2f}"
                ratio_step = f"{row['ratio_median_block_ms_per_step']:.2f}"
            print(f"{row['seed']:>4} {name:<6} {steps:>16} {r['train_s']:>9.2f} {r['ms_per_step']:>8.2f} "
                  f"{r['eval_s']:>7.2f} {r['median_block_ms_per_step']:>15.2f} {r['final_test_mse']:>9.2e} "
                  f"{100 * r['foreign_cpu_fraction']:>8.0f}% {ratio:>16} {ratio_step:>10}")
    ratios = [row["ratio_time_to_target"] for row in rows if row["ratio_time_to_target"] is not None]
    step_ratios = [row["ratio_median_block_ms_per_step"] for row in rows]
    print("-" * len(header))
    if ratios:
        print(f"median ratio bptt/torch of the time to test MSE < {threshold:g}: {statistics.median(ratios):.2f} "
              f"over {len(ratios)} seed(s) (min {min(ratios):.2f}, max {max(ratios):.2f})")
    else:
        print(f"no seed reached test MSE < {threshold:g} on both sides: no time-to-target ratio")
    print(f"median ratio bptt/torch of the per-block median ms/step (robust to a disturbed block): "
          f"{statistics.median(step_ratios):.2f}")
    missed = [(row["seed"], n) for row in rows for n in ("bptt", "torch") if not row["sides"][n]["reached_step"]]
    if missed:
        print("WARNING: target not reached by " + ", ".join(f"seed {s} {n}" for s, n in missed))
    loaded = [row for row in rows if any(row["sides"][n]["foreign_cpu_fraction"] > FOREIGN_WARN
                                         for n in ("bptt", "torch"))]
    if loaded:
        print(f"WARNING: other processes used more than {100 * FOREIGN_WARN:.0f}% of the CPUs while {len(loaded)} "
              f"of {len(rows)} seeds were timed ('other CPU'); on a 2-core machine that distorts both sides. "
              f"Rerun on a quiet machine.")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3, help="number of seeds (default 3)")
    parser.add_argument("--first-seed", type=int, default=0, help="first seed (default 0)")
    parser.add_argument("--dtype", choices=sorted(NP_DTYPE), default="float64",
                        help="dtype of both sides (default float64, as `bptt train`)")
    parser.add_argument("--eval-every", type=int, default=50, help="steps between test evaluations (default 50)")
    parser.add_argument("--threshold", type=float, default=1e-4, help="target test MSE (default 1e-4)")
    parser.add_argument("--check-steps", type=int, default=10,
                        help="steps of the weight-consistency check before timing (default 10)")
    parser.add_argument("--pause", type=float, default=PAUSE_S, help=f"seconds before each block (default {PAUSE_S})")
    parser.add_argument("--torch-threads", type=int, default=TORCH_THREADS,
                        help=f"torch.set_num_threads (default {TORCH_THREADS}, as BENCHMARKING.md says)")
    parser.add_argument("--json", metavar="PATH", default=None, help="also write the results as JSON")
    args = parser.parse_args(argv)
    for name in ("seeds", "eval_every", "check_steps", "torch_threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if not args.threshold > 0 or args.pause < 0:
        parser.error("expected --threshold > 0 and --pause >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.torch_threads)
    env = environment_report(args.torch_threads)
    config = resolve("sine", args.first_seed).config
    optimizer = torch.optim.Adam([torch.zeros(1)], lr=config.lr)
    print(f"\nsettings (resolve('sine', seed)): {asdict(config)}")
    print(f"dtype {args.dtype}; torch.optim.Adam foreach={optimizer.defaults['foreach']} "
          f"fused={optimizer.defaults['fused']} (None: single-tensor path on CPU)")
    print(f"target: first evaluation (every {args.eval_every} steps) with test MSE < {args.threshold:g}; train time "
          f"excludes evaluation, batch generation and pauses; blocks interleaved bptt/torch with a {args.pause} s "
          f"pause + 1 untimed forward/backward before each\n")
    rows = []
    started = time.perf_counter()
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        rows.append(run_seed(seed, args))
    print()
    print_table(rows, args.threshold)
    print(f"\ntotal {time.perf_counter() - started:.1f} s")
    if args.json:
        ratios = [r["ratio_time_to_target"] for r in rows if r["ratio_time_to_target"] is not None]
        summary = {"median_ratio_time_to_target": statistics.median(ratios) if ratios else None,
                   "median_ratio_ms_per_step": statistics.median(r["ratio_ms_per_step"] for r in rows),
                   "median_ratio_median_block_ms_per_step":
                       statistics.median(r["ratio_median_block_ms_per_step"] for r in rows)}
        settings = {**vars(args), "train_config": asdict(config),
                    "time_excludes": ["evaluation", "batch generation", "pauses", "warm-up forward/backward"]}
        with open(args.json, "w") as f:
            json.dump({"environment": env, "settings": settings, "summary": summary, "rows": rows}, f, indent=2)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
