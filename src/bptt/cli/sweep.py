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
    flow_figure = _seed_flows(base, summaries, out / "gradflow.png")
    print(f"{passed}/{len(summaries)} seeds reached {goals}; {metric}: median {statistics.median(values):.3g}, "
          f"min {min(values):.3g}, max {max(values):.3g}; median {statistics.median(seconds):.1f} s per seed; "
          f"{time.perf_counter() - start:.1f} s in all; figure {figure}")
    if args.json:
        print(json.dumps({"task": args.task, "task_options": dict(base.task_options), "seeds": args.seeds,
                          "passed": passed, "goals": task.goals,
                          "median_seconds": statistics.median(seconds), "config": asdict(base.config),
                          "runs": [{k: s[k] for k in ("seed", "metrics", "success", "seconds", "best_step",
                                                      "decay_per_step") if k in s} for s in summaries],
                          "figure": str(figure), "gradflow_figure": None if flow_figure is None else str(flow_figure)}))
    return 0 if passed == len(summaries) else 1


FLOW_STEPS, FLOW_BATCH = 100, 8
"""The gradient flow of each seed is measured on the first this many steps of this many validation sequences."""


def _seed_flows(base: Experiment, summaries: list[dict], path: Path) -> Path | None:
    """Each seed's gradient flow at initialisation (:func:`bptt.check.gradient_flow`, the top layer, a loss at the
    last step), printed and drawn in ``path`` (green: the seed met the goals), its ``decay_per_step`` added to the
    seed's summary; and whether the seeds that failed decayed otherwise. None where the model reads more than
    one sequence (an encoder-decoder)."""
    from bptt.check import gradient_flow
    from bptt.cli.gradflow import flow_input
    from bptt.train.experiment import build_model
    from bptt.train.figures import save_gradient_flow_figure

    curves = []
    for summary in summaries:
        experiment = replace(base, seed=summary["seed"])
        task = make_task(experiment.task, experiment.seed, **experiment.task_options)
        model = build_model(task, experiment)
        try:
            flow = gradient_flow(model, flow_input(experiment, task, model, FLOW_STEPS, FLOW_BATCH),
                                 seed=experiment.seed)
        except (TypeError, ValueError) as error:
            print(f"gradient flow at initialisation: not measured ({error})")
            return None
        summary["decay_per_step"] = dict(zip(flow.labels, map(float, flow.decay_per_step), strict=True))
        row = _shown_row(flow.labels)
        curves.append((f"seed {experiment.seed} ({flow.decay_per_step[row]:.3f} a step)", flow.distance,
                       flow.state_norms[row], "g-" if summary["success"] else "r-"))
    shown = flow.labels[_shown_row(flow.labels)]
    print(f"gradient flow at initialisation ({shown}, loss at the last step): " + _contrast(summaries, shown))
    return save_gradient_flow_figure(path, curves, title=f"{base.task}: gradient flow of each seed at "
                                                          "initialisation (green: met the goals)")


def _shown_row(labels: tuple[str, ...]) -> int:
    """The row of a flow that a sweep compares: the top layer, or a bidirectional layer's forward direction."""
    return 0 if labels[0] == "forward" else len(labels) - 1


def _contrast(summaries: list[dict], row: str) -> str:
    """The decay per step (of flow row ``row``) of the seeds that met the goals beside those that did not."""
    groups = {ok: [s["decay_per_step"][row] for s in summaries if s["success"] == ok] for ok in (True, False)}

    def spread(values: list[float]) -> str:
        return f"median {statistics.median(values):.3f} ({min(values):.3f}-{max(values):.3f})"

    if not groups[False]:
        return f"every seed met the goals, nothing to contrast; decay a step {spread(groups[True])}"
    if not groups[True]:
        return f"no seed met the goals; decay a step {spread(groups[False])}"
    inside = min(groups[True]) <= statistics.median(groups[False]) <= max(groups[True])
    return (f"seeds that met the goals {spread(groups[True])}, seeds that failed {spread(groups[False])}: "
            + ("the failures lie within the passing seeds' range, so the flow at initialisation does not tell them"
               " apart" if inside else "the failures lie outside the passing seeds' range"))

