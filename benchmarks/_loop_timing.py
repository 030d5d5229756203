"""What the compiled-loop benchmark (``family_loop.py``) is made of: a pass run with the family's loops
of choice, interleaved blocks of several sides of one pass, timed once the machine is quiet, and their paired
ratios."""

from __future__ import annotations

import argparse
import os
import statistics
import time

from bptt.perf.timing import ForeignLoad, repeats_for, timed_block


def on_path(family, step, loops: tuple):
    """``step`` with the family module's (``bptt.layers.lstm``, ``gru`` or ``rnn``) loops ``(forward, backward)``,
    each compiled or None, for its duration (a plain attribute swap: ``mock.patch`` would add about 3 µs to each
    call)."""

    def choose(*args):
        return loops

    def run():
        shipped = family.compiled_loops
        family.compiled_loops = choose
        try:
            return step()
        finally:
            family.compiled_loops = shipped

    return run


def timed_sides(steps: dict, blocks: int, min_block_s: float, pause_s: float) -> dict:
    """Interleaved blocks of every side; seconds per call (medians), paired ratios, foreign CPU share."""
    repeats = {}
    for name, step in steps.items():
        time.sleep(pause_s)
        repeats[name] = repeats_for(step, min_block_s)
    times = {name: [] for name in steps}
    monitor = ForeignLoad()
    for _ in range(blocks):
        for name, step in steps.items():
            times[name].append(timed_block(step, repeats[name], monitor, pause_s))

    def ratio(a, b):
        values = [x / y for x, y in zip(times[a], times[b], strict=True)]
        return {"median": statistics.median(values), "min": min(values), "max": max(values)}

    pairs = [(a, b) for a in steps for b in ("numpy", "torch") if a not in (b, "torch")]
    return {"s": {name: statistics.median(values) for name, values in times.items()}, "blocks_s": times,
            **{f"{a}/{b}": ratio(a, b) for a, b in pairs}, "foreign_cpu_fraction": monitor.fraction}


def wait_for_quiet(max_foreign: float, timeout_s: float = 300.0) -> float:
    """Sleep until other processes use at most ``max_foreign`` of the CPUs over one second (or ``timeout_s``
    passed); returns the last share seen."""
    deadline = time.monotonic() + timeout_s
    while True:
        monitor = ForeignLoad()
        with monitor:
            time.sleep(1.0)
        if monitor.fraction <= max_foreign or time.monotonic() > deadline:
            return monitor.fraction
        time.sleep(4.0)


def quiet_timing(steps: dict, args) -> dict:
    """:func:`timed_sides` once the machine is quiet, repeated (up to ``args.tries`` times) while other
    processes took more than ``args.max_foreign`` of the CPUs during it; the attempt with the least foreign load."""
    attempts = []
    for _ in range(args.tries):
        wait_for_quiet(args.max_foreign)
        attempts.append(timed_sides(steps, args.blocks, args.min_block_ms / 1e3, args.pause_ms / 1e3))
        if attempts[-1]["foreign_cpu_fraction"] <= args.max_foreign:
            break
    best = min(attempts, key=lambda timing: timing["foreign_cpu_fraction"])
    return {**best, "attempts": len(attempts)}


def fmt(timing: dict, key: str) -> str:
    """A paired ratio as "median [min-max]", or empty where it was not taken."""
    r = timing.get(key)
    return f"{r['median']:.2f} [{r['min']:.2f}-{r['max']:.2f}]" if r else ""


def verified_timing(family, torch, pass_name: str, pair: tuple, loops: dict, tolerance: float, args, label: str):
    """Each side of ``loops`` (name: the family's loops) checked against torch on ``pair`` (bptt.perf.bench's
    ``training_pair`` or ``inference_pair``), then timed beside torch by :func:`quiet_timing`: ``(worst error,
    timing)``, or None, printing the errors, when a side disagrees by more than ``tolerance``."""
    ours, theirs, check = pair
    with torch.enable_grad() if pass_name == "train" else torch.no_grad():
        errors = {name: on_path(family, check, choice)() for name, choice in loops.items()}
        worst = max(max(e.values()) for e in errors.values())
        if worst > tolerance:
            print(f"DISAGREES {label}: {errors}")
            return None
        steps = {name: on_path(family, ours, choice) for name, choice in loops.items()}
        return worst, quiet_timing({**steps, "torch": theirs}, args)


def print_sides(label: str, timing: dict) -> None:
    """One line per side of ``timing``: milliseconds and the ratios to the NumPy loops and to torch."""
    for name in timing["s"]:
        print(f"{label} {name:9} {timing['s'][name] * 1e3:9.3f} {fmt(timing, f'{name}/numpy'):>17} "
              f"{fmt(timing, f'{name}/torch'):>17}")


def print_load(timing: dict) -> None:
    print(f"  other processes: {timing['foreign_cpu_fraction']:.2f} of the CPUs ({timing['attempts']} attempt(s)), "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)


def loop_benchmark_parser(description: str, configs: str) -> argparse.ArgumentParser:
    """The options every loop benchmark takes: the cells, dtypes and passes, and how :func:`quiet_timing`
    times them."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--configs", default=configs, help="T,N,I,H;... (default: %(default)s)")
    parser.add_argument("--dtypes", default="float64,float32")
    parser.add_argument("--passes", default="train,infer")
    parser.add_argument("--blocks", type=int, default=5)
    parser.add_argument("--min-block-ms", type=float, default=150.0)
    parser.add_argument("--pause-ms", type=float, default=200.0)
    parser.add_argument("--max-foreign", type=float, default=0.05,
                        help="repeat a row while other processes took more of the CPUs (default %(default)s)")
    parser.add_argument("--tries", type=int, default=4)
    parser.add_argument("--json", help="write every row here")
    return parser
