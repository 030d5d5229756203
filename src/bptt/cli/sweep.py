"""``bptt sweep TASK``: train seeds 0 .. N-1 in parallel processes; the success rate against the task's goals, the
spread of its first metric, and a figure."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, replace
from multiprocessing import get_context
from pathlib import Path

from bptt.cli._arguments import holding_lock, positive_int, shown
from bptt.cli._experiment_options import add_training_options, describe, model_options, task_options
from bptt.train.experiment import Experiment, make_task, resolve, run_summary


def add_parser(verbs: argparse._SubParsersAction) -> None:
    """The ``sweep`` verb and its options."""
    sweep = verbs.add_parser("sweep", help="train many seeds in parallel; success rate, spread and a figure")
    add_training_options(sweep)
    sweep.add_argument("--seeds", type=positive_int, default=10, help="seeds 0 .. N-1 (default 10)")
    sweep.add_argument("--workers", type=positive_int, default=None, help="processes (default: CPU cores)")
    sweep.add_argument("--out", type=Path, default=None, help="output folder (default runs/TASK-sweep)")
    sweep.add_argument("--json", action="store_true", help="print a JSON summary as the last line of stdout")
    sweep.set_defaults(command=command)


def command(args: argparse.Namespace) -> int:
    """Resolve the sweep's settings, take the lock of its folder, and train every seed."""
    try:
        base = resolve(args.task, 0, task_options=task_options(args), **model_options(args))
    except ValueError as error:
        print(f"bptt sweep: {error}", file=sys.stderr)
        return 2
    workers = min(args.seeds, args.workers or os.cpu_count() or 1)
    out = args.out or Path("runs") / f"{args.task}-sweep"
    return holding_lock("sweep", out, lambda: _sweep_in(out, args, base, workers))


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


def _sweep_in(out: Path, args: argparse.Namespace, base: Experiment, workers: int) -> int:
    """The seeds of :func:`command`, once it holds the lock of ``out``."""
    from bptt.train.figures import save_sweep_figure

    print(f"bptt sweep | {describe(base).rsplit(' | seed', 1)[0]} | seeds 0..{args.seeds - 1} | "
          f"{workers} worker processes | out {out}", flush=True)
    start = time.perf_counter()
    summaries = []
    with _pool(workers) as pool:
        for summary in pool.map(run_summary, [replace(base, seed=seed) for seed in range(args.seeds)]):
            summaries.append(summary)
            metrics = " | ".join(f"{k} {shown(v, 3)}" for k, v in summary["metrics"].items())
            print(f"seed {summary['seed']:>3} | {'ok  ' if summary['success'] else 'FAIL'} | {metrics} | "
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
