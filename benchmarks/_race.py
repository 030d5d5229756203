"""Time to a target, bptt against torch: the harness the end-to-end benchmarks share (``sine_vs_torch.py``,
``chars_vs_torch.py``).

A script describes one seed as a :class:`Contest`: the resolved experiment and its task, the training batches
drawn once (the sequence ``bptt train`` draws), the held-out set the target is read on, the torch loss with the
task's reduction and the :class:`Metric` compared with the target. This module then does the same for every
script:

* :class:`BpttSide`: the model ``bptt train`` builds (``bptt.train.experiment.build_model``, initialised from the
  seed), ``bptt.train.fit.make_optimizer``, ``clip_grad_norm`` and ``task.loss``; each step is the body of
  ``bptt.train.fit.fit`` without truncation: forward, loss, zero_grad, backward, clip, finite check, optimizer step,
  with ``optimizer.lr = config.lr_at(step - 1)``.
* :class:`TorchSide`: the torch twin ``bptt.interop.torch_interop.to_torch(model)`` of that model (bit-identical
  initial weights), ``torch.optim.Adam`` (defaults: the single-tensor CPU path) with
  ``param_group["lr"] = config.lr_at(step - 1)``, ``torch.nn.utils.clip_grad_norm_`` with the same max norm, the
  script's loss, zero initial states; the same work per step (forward, loss, zero_grad, backward, clip, finite
  check with ``.item()``, step).
* :func:`consistency_check`: fresh copies of both train ``--check-steps`` steps on the same batches; the script
  exits unless their weights and losses agree (:data:`CHECK_TOLERANCE`), so nothing is timed that computes
  something else.
* :func:`race`: both train from the same start, interleaved block by block (bptt block, torch block, ...; a block
  is the steps between two evaluations), each block preceded by a pause and one untimed warm-up forward +
  backward on its first batch (no optimizer step, so the trajectory is unchanged), as ``BENCHMARKING.md`` asks.
  A side's clock stops at its first evaluation that meets the target; evaluation time is counted apart. Garbage
  collection stays enabled, as in real training; :class:`~bptt.perf.timing.ForeignLoad` records the CPU time
  other processes took while each side was timed.
* :func:`print_table` and :func:`main`: the per-seed lines, the table, the ratios and the JSON report.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch

from bptt.interop.torch_interop import to_torch
from bptt.layers.inference import inference_mode
from bptt.perf.timing import FOREIGN_WARN, PAUSE_S, TORCH_THREADS, ForeignLoad, environment_report
from bptt.train.experiment import Experiment, build_model
from bptt.train.fit import TrainConfig, data_streams, make_optimizer
from bptt.train.optim import clip_grad_norm

CHECK_TOLERANCE = {"float64": 1e-10, "float32": 1e-3}
"""Largest relative difference the consistency check accepts: per parameter, ``max|a - b| / max|b|``, and of
each step's loss."""


@dataclass(frozen=True)
class Metric:
    """What the target is read on: ``scale`` times the task's loss on the held-out set (``key`` in the JSON
    report, ``label`` in the printed lines, each value printed with the format ``spec``)."""

    key: str
    label: str
    spec: str
    scale: float = 1.0


@dataclass
class Contest:
    """One seed of a benchmark: everything both sides train and are judged on (:meth:`draw` makes one).

    ``steps``: the most steps a side trains in the race; ``batches``: the training batches in order, one per
    step (at least ``steps``, and enough for the consistency check), as NumPy arrays; ``torch_batches`` the
    same arrays as tensors (shared memory); ``held_out`` and ``torch_held_out`` the evaluation set likewise;
    ``torch_loss(output, target)``: the task's loss, same reduction, on the twin's first output."""

    script: str
    experiment: Experiment
    task: object
    steps: int
    batches: list
    torch_batches: list
    held_out: tuple
    torch_held_out: tuple
    torch_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    metric: Metric

    @classmethod
    def draw(cls, script: str, experiment: Experiment, task, split: str,
             torch_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], metric: Metric,
             steps_limit: int | None, check_steps: int) -> Contest:
        """The batches ``bptt train`` draws for ``experiment`` (``task.batch`` on ``data_streams(seed)["train"]``),
        drawn now: those of its steps, or of the first ``steps_limit`` when given (at least ``check_steps``);
        and the held-out ``split`` from its own stream."""
        config, dtype = experiment.config, np.dtype(experiment.dtype)
        streams = data_streams(experiment.seed)
        steps = min(config.steps, steps_limit or config.steps)
        batches = [task.batch(streams["train"], config.batch_size, dtype) for _ in range(max(steps, check_steps))]
        held_out = task.held_out(split, streams[split], dtype)
        return cls(script, experiment, task, steps, batches, [tuple(map(torch.from_numpy, b)) for b in batches],
                   held_out, tuple(map(torch.from_numpy, held_out)), torch_loss, metric)

    @property
    def config(self) -> TrainConfig:
        return self.experiment.config

    def sides(self) -> tuple[BpttSide, TorchSide]:
        """Fresh copies of both sides, with identical initial weights."""
        ours = BpttSide(self)
        return ours, TorchSide(self, ours.model)


# ---------------------------------------------------------------------------------------------------------
# The two sides
# ---------------------------------------------------------------------------------------------------------

class BpttSide:
    """bptt's model, optimizer, clipping and loss; one step = the body of ``bptt.train.fit.fit`` (no tbptt)."""

    name = "bptt"

    def __init__(self, contest: Contest) -> None:
        self.task, self.config, self.scale = contest.task, contest.config, contest.metric.scale
        self.model = build_model(contest.task, contest.experiment)
        self.optimizer = make_optimizer(self.model, self.config)

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
        with inference_mode():                      # as fit evaluates, and as torch.no_grad() on the other side
            return self.scale * float(self.task.loss(self.model(x), y)[0])

    def weights(self) -> dict[str, np.ndarray]:
        return {k: v.astype(np.float64) for k, v in self.model.params.items()}


class TorchSide:
    """The torch twin of the bptt model, with the same initial weights, optimizer, schedule, clipping and loss."""

    name = "torch"

    def __init__(self, contest: Contest, model) -> None:
        config = contest.config
        if config.optimizer != "adam" or config.tbptt:
            raise SystemExit(f"{contest.script}: expected a model trained with Adam and no tbptt, got "
                             f"optimizer={config.optimizer!r}, tbptt={config.tbptt!r}")
        self.config, self.loss, self.scale = config, contest.torch_loss, contest.metric.scale
        self.module = to_torch(model)               # a copy of the weights, bit for bit
        self.params = list(self.module.parameters())
        self.optimizer = torch.optim.Adam(self.params, lr=config.lr, weight_decay=config.weight_decay)

    def _loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.loss(self.module(x)[0], y)      # the twin returns (output, final state)

    def step(self, step: int, x: torch.Tensor, y: torch.Tensor) -> float:
        for group in self.optimizer.param_groups:
            group["lr"] = self.config.lr_at(step - 1)
        self.optimizer.zero_grad(set_to_none=True)
        loss = self._loss(x, y)
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
        self._loss(x, y).backward()
        self.optimizer.zero_grad(set_to_none=True)

    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> float:
        with torch.no_grad():
            return self.scale * float(self._loss(x, y).item())

    def weights(self) -> dict[str, np.ndarray]:
        return {k: v.detach().to(torch.float64).numpy().copy() for k, v in self.module.state_dict().items()}


def weight_divergence(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> dict[str, float]:
    """Per parameter, ``max|a - b| / max|b|``."""
    return {k: float(np.max(np.abs(a[k] - b[k])) / max(float(np.max(np.abs(b[k]))), 1e-300)) for k in b}


# ---------------------------------------------------------------------------------------------------------
# One seed
# ---------------------------------------------------------------------------------------------------------

def consistency_check(contest: Contest, dtype: str, steps: int) -> dict:
    """Train fresh copies of both sides for ``steps`` steps on the same batches; exit unless they agree."""
    ours, theirs = contest.sides()
    seed = contest.experiment.seed
    divergence_at_start = weight_divergence(ours.weights(), theirs.weights())
    losses = []
    for step in range(1, steps + 1):
        losses.append((ours.step(step, *contest.batches[step - 1]),
                       theirs.step(step, *contest.torch_batches[step - 1])))
    divergence = weight_divergence(ours.weights(), theirs.weights())
    worst = max(divergence.values())
    loss_rel = max(abs(a - b) / max(abs(b), 1e-300) for a, b in losses)
    tolerance = CHECK_TOLERANCE[dtype]
    print(f"  seed {seed}: consistency after {steps} steps: max relative weight difference "
          f"{worst:.2e} (worst {max(divergence, key=divergence.get)}), max relative loss difference "
          f"{loss_rel:.2e}; tolerance {tolerance:.0e} ({dtype}); at step 0: {max(divergence_at_start.values()):.1e}",
          flush=True)
    # the losses too: Adam and clipping make the weights nearly blind to a loss of another scale (a sum where
    # the task takes the mean moves them by less than 1e-3 in 10 float32 steps of the chars task)
    if not (worst <= tolerance and loss_rel <= tolerance and max(divergence_at_start.values()) == 0.0):
        details = ", ".join(f"{k} {v:.3e}" for k, v in divergence.items())
        sys.exit(f"{contest.script}: FAILED consistency check for seed {seed} ({dtype}): bptt and torch "
                 f"weights or losses differ after {steps} steps by more than {tolerance:.0e} relative: losses "
                 f"{loss_rel:.3e}, {details}. They do not compute the same thing; refusing to time them.")
    return {"steps": steps, "max_rel_weight_diff": worst, "rel_weight_diff": divergence,
            "max_rel_loss_diff": loss_rel, "tolerance": tolerance}


def race(contest: Contest, *, target: float, eval_every: int, pause: float) -> dict:
    """Train both sides from the same start, interleaved block by block, until each reaches the target
    (``metric < target``) or has trained ``contest.steps`` steps."""
    sides, max_steps = contest.sides(), contest.steps
    key = contest.metric.key
    data = {"bptt": (contest.batches, contest.held_out), "torch": (contest.torch_batches, contest.torch_held_out)}
    record = {side.name: {"step": 0, "train_s": 0.0, "eval_s": 0.0, "done": False, "reached_step": None,
                          "eval_step": [], key: [], "train_s_at_eval": [], "block_ms_per_step": [],
                          "monitor": ForeignLoad()} for side in sides}
    while not all(r["done"] for r in record.values()):
        for side in sides:                                          # A B A B ...
            r = record[side.name]
            if r["done"]:
                continue
            side_batches, held_out = data[side.name]
            first = r["step"] + 1
            last = min(max_steps, (r["step"] // eval_every + 1) * eval_every)
            gc.collect()
            time.sleep(pause)
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
            value = side.evaluate(*held_out)
            r["eval_s"] += time.perf_counter() - started
            r["eval_step"].append(last)
            r[key].append(value)
            r["train_s_at_eval"].append(r["train_s"])
            if value < target:
                r["done"], r["reached_step"] = True, last
            elif last >= max_steps:
                r["done"] = True
    final = weight_divergence(sides[0].weights(), sides[1].weights())
    for r in record.values():
        r["foreign_cpu_fraction"] = r.pop("monitor").fraction
        r["ms_per_step"] = 1e3 * r["train_s"] / r["step"]
        r["median_block_ms_per_step"] = statistics.median(r["block_ms_per_step"])
        r[f"final_{key}"] = r[key][-1]
        del r["done"]
    same_stop = record["bptt"]["step"] == record["torch"]["step"]
    return {"sides": record, "final_max_rel_weight_diff": max(final.values()) if same_stop else None}


def run_seed(contest: Contest, args: argparse.Namespace, target: float) -> dict:
    """The consistency check, then the race; prints one line per side and returns the seed's row."""
    seed, metric = contest.experiment.seed, contest.metric
    check = consistency_check(contest, args.dtype, args.check_steps)
    result = race(contest, target=target, eval_every=args.eval_every, pause=args.pause)
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
              f"eval {r['eval_s']:.2f} s, {metric.label} {r[f'final_{metric.key}']:{metric.spec}}, "
              f"other CPU {100 * r['foreign_cpu_fraction']:.0f}%", flush=True)
    return row


# ---------------------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------------------

def print_table(rows: list[dict], metric: Metric, target: float, *, column: str | None = None) -> None:
    """One line per seed and side, then the median ratios and the warnings. ``column``: the metric's header
    (default its label), at most 9 characters."""
    column = column or metric.label
    header = (f"{'seed':>4} {'side':<6} {'steps to target':>16} {'train s':>9} {'ms/step':>8} {'eval s':>7} "
              f"{'med blk ms/step':>15} {column:>9} {'other CPU':>9} {'bptt/torch time':>16} {'(med blk)':>10}")
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
                  f"{r['eval_s']:>7.2f} {r['median_block_ms_per_step']:>15.2f} "
                  f"{r[f'final_{metric.key}']:>9{metric.spec}} "
                  f"{100 * r['foreign_cpu_fraction']:>8.0f}% {ratio:>16} {ratio_step:>10}")
    ratios = [row["ratio_time_to_target"] for row in rows if row["ratio_time_to_target"] is not None]
    step_ratios = [row["ratio_median_block_ms_per_step"] for row in rows]
    print("-" * len(header))
    if ratios:
        print(f"median ratio bptt/torch of the time to {metric.label} < {target:g}: {statistics.median(ratios):.2f} "
              f"over {len(ratios)} seed(s) (min {min(ratios):.2f}, max {max(ratios):.2f})")
    else:
        print(f"no seed reached {metric.label} < {target:g} on both sides: no time-to-target ratio")
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


def make_parser(doc: str, *, seeds: int, dtype: str, dtype_help: str, eval_every: int) -> argparse.ArgumentParser:
    """The options every benchmark here takes (the script adds its target), with its defaults."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=seeds, help=f"number of seeds (default {seeds})")
    parser.add_argument("--first-seed", type=int, default=0, help="first seed (default 0)")
    parser.add_argument("--dtype", choices=sorted(CHECK_TOLERANCE), default=dtype, help=dtype_help)
    parser.add_argument("--eval-every", type=int, default=eval_every,
                        help=f"steps between evaluations (default {eval_every})")
    parser.add_argument("--steps-limit", type=int, default=None,
                        help="stop each side after this many steps, reached or not (default: the run's steps; "
                             "the learning-rate schedule stays the run's)")
    parser.add_argument("--check-steps", type=int, default=10,
                        help="steps of the weight-consistency check before timing (default 10)")
    parser.add_argument("--pause", type=float, default=PAUSE_S, help=f"seconds before each block (default {PAUSE_S})")
    parser.add_argument("--torch-threads", type=int, default=TORCH_THREADS,
                        help=f"torch.set_num_threads (default {TORCH_THREADS}, as BENCHMARKING.md says)")
    parser.add_argument("--json", metavar="PATH", default=None, help="also write the results as JSON")
    return parser


def check_args(parser: argparse.ArgumentParser, args: argparse.Namespace, target: str) -> argparse.Namespace:
    """Refuse (exit 2) counts below 1, a target (the option ``target``) <= 0 and a negative pause."""
    for name in ("seeds", "eval_every", "check_steps", "torch_threads", "steps_limit"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if not getattr(args, target) > 0 or args.pause < 0:
        parser.error(f"expected --{target.replace('_', '-')} > 0 and --pause >= 0")
    return args


def main(args: argparse.Namespace, *, source: str, config: TrainConfig, metric: Metric, target: float,
         contest: Callable[[int], Contest], column: str | None = None,
         describe: Callable[[], None] | None = None) -> int:
    """Print the environment and the settings, race every seed (``contest(seed)`` prepares one), print the
    table and write the JSON report. ``source`` names where ``config`` comes from; ``describe`` prints more."""
    torch.set_num_threads(args.torch_threads)
    env = environment_report(args.torch_threads)
    optimizer = torch.optim.Adam([torch.zeros(1)], lr=config.lr)
    print(f"\nsettings ({source}): {asdict(config)}")
    if describe is not None:
        describe()
    print(f"dtype {args.dtype}; torch.optim.Adam foreach={optimizer.defaults['foreach']} "
          f"fused={optimizer.defaults['fused']} (None: single-tensor path on CPU)")
    print(f"target: first evaluation (every {args.eval_every} steps) with {metric.label} < {target:g}; train time "
          f"excludes evaluation, batch generation and pauses; blocks interleaved bptt/torch with a {args.pause} s "
          f"pause + 1 untimed forward/backward before each\n")
    rows = []
    started = time.perf_counter()
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        rows.append(run_seed(contest(seed), args, target))
    print()
    print_table(rows, metric, target, column=column)
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
