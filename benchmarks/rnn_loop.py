"""The RNN's compiled whole-sequence loops against its NumPy step loop and torch.nn.RNN: one training step
(forward + BPTT) and inference, three ways, interleaved in one process (BENCHMARKING.md).

Each side runs in blocks, compiled / NumPy / torch, compiled / NumPy / torch, ..., with a pause and a warm-up
call before each block (:func:`bptt.perf.timing.timed_block`); times are medians over the blocks, ratios the
medians of the paired block ratios. Every case is first checked against torch, every bptt side (1e-10
relative in float64, 1e-4 in float32). The compiled side forces both compiled loops whatever
:func:`bptt.layers.rnn.compiled_loops` would choose, the NumPy side holds them off; where that function ships
a mix for a training step (a NumPy forward, a compiled backward), a fourth side, "shipped", times the mix. A
row waits for a quiet machine and is timed again (up to ``--tries`` times) while other processes took more than
``--max-foreign`` of the CPUs during it.

Usage::

    python benchmarks/rnn_loop.py                            # the grid below, tanh and relu, both dtypes
    python benchmarks/rnn_loop.py --configs "100,32,32,128" --nonlinearities tanh --blocks 5
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/rnn_loop.py     # see BENCHMARKING.md
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import numpy as np

from bptt.layers import kernels, rnn
from bptt.perf.bench import Case, inference_pair, parse_configs, training_pair
from bptt.perf.timing import TORCH_THREADS, ForeignLoad, environment_report, import_torch, repeats_for, timed_block

CONFIGS = "50,1,1,32;100,32,1,64;100,32,32,128;100,32,128,256;100,64,256,512"
TOLERANCE = {"float64": 1e-10, "float32": 1e-4}


def make_case(torch, config, dtype: str, nonlinearity: str, seed: int = 0):
    """A one-layer bptt RNN with standard-normal data, and its torch twin with the same weights."""
    T, N, I, H = config
    np_dtype = np.dtype(dtype)
    rng = np.random.default_rng(seed)
    layer = rnn.RNN(I, H, nonlinearity=nonlinearity, dtype=np_dtype, rng=seed)

    def draw(*shape):
        return rng.standard_normal(shape).astype(np_dtype)

    case = Case("rnn", dtype, layer, draw(T, N, I), [draw(1, N, H)], draw(T, N, H), [draw(1, N, H)])
    module = torch.nn.RNN(I, H, 1, nonlinearity=nonlinearity, dtype=getattr(torch, dtype))
    module.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in layer.params.items()})
    return case, module


def on_path(step, loops: tuple):
    """``step`` with the RNN's loops ``(forward, backward)`` (each compiled or None) for its duration (a plain
    attribute swap: ``mock.patch`` would add about 3 µs to each call)."""

    def choose(*args):
        return loops

    def run():
        shipped = rnn.compiled_loops
        rnn.compiled_loops = choose
        try:
            return step()
        finally:
            rnn.compiled_loops = shipped

    return run


def sides(pass_name: str, nonlinearity: str, config) -> dict[str, tuple]:
    """The bptt sides to time: both loops compiled, both NumPy and, where :func:`bptt.layers.rnn.compiled_loops`
    ships a mix (a NumPy forward and a compiled backward), that mix as "shipped"."""
    compiled = kernels.rnn_sequence_kernels()
    assert compiled is not None, "the compiled side needs numba (and BPTT_KERNELS unset)"
    result = {"compiled": compiled, "numpy": (None, None)}
    shipped = rnn.compiled_loops(nonlinearity, config[1], config[3])
    if pass_name == "train" and shipped not in result.values():
        result["shipped"] = shipped
    return result


def three_way(steps: dict, blocks: int, min_block_s: float, pause_s: float) -> dict:
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
    """:func:`three_way` once the machine is quiet, repeated (up to ``args.tries`` times) while other processes
    took more than ``args.max_foreign`` of the CPUs during it; the attempt with the least foreign load."""
    attempts = []
    for _ in range(args.tries):
        wait_for_quiet(args.max_foreign)
        attempts.append(three_way(steps, args.blocks, args.min_block_ms / 1e3, args.pause_ms / 1e3))
        if attempts[-1]["foreign_cpu_fraction"] <= args.max_foreign:
            break
    best = min(attempts, key=lambda timing: timing["foreign_cpu_fraction"])
    return {**best, "attempts": len(attempts)}


def fmt(timing: dict, key: str) -> str:
    """A paired ratio as "median [min-max]", or empty where it was not taken."""
    r = timing.get(key)
    return f"{r['median']:.2f} [{r['min']:.2f}-{r['max']:.2f}]" if r else ""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default=CONFIGS, help="T,N,I,H;... (default: %(default)s)")
    parser.add_argument("--dtypes", default="float64,float32")
    parser.add_argument("--nonlinearities", default="tanh,relu")
    parser.add_argument("--passes", default="train,infer")
    parser.add_argument("--blocks", type=int, default=5)
    parser.add_argument("--min-block-ms", type=float, default=150.0)
    parser.add_argument("--pause-ms", type=float, default=200.0)
    parser.add_argument("--max-foreign", type=float, default=0.05,
                        help="repeat a row while other processes took more of the CPUs (default %(default)s)")
    parser.add_argument("--tries", type=int, default=4)
    parser.add_argument("--json", help="write every row here")
    args = parser.parse_args(argv)
    torch = import_torch()
    torch.set_num_threads(TORCH_THREADS)
    environment_report(TORCH_THREADS)
    rows = []
    print(f"{'pass':5} {'nonlin':6} {'dtype':7} {'(T, N, I, H)':20} {'side':9} {'ms':>9} {'/numpy':>17} "
          f"{'/torch':>17}  (ratios: median [min-max] of paired blocks)")
    for pass_name in args.passes.split(","):
        for nonlinearity in args.nonlinearities.split(","):
            for dtype in args.dtypes.split(","):
                for config in parse_configs(args.configs):
                    case, module = make_case(torch, config, dtype, nonlinearity)
                    pair = (training_pair if pass_name == "train" else inference_pair)(torch, case, module)
                    ours, theirs, check = pair
                    loops = sides(pass_name, nonlinearity, config)
                    grad = torch.enable_grad() if pass_name == "train" else torch.no_grad()
                    with grad:
                        errors = {name: on_path(check, choice)() for name, choice in loops.items()}
                        worst = max(max(e.values()) for e in errors.values())
                        if worst > TOLERANCE[dtype]:
                            print(f"DISAGREES {pass_name} {nonlinearity} {dtype} {config}: {errors}")
                            return 1
                        steps = {name: on_path(ours, choice) for name, choice in loops.items()}
                        timing = quiet_timing({**steps, "torch": theirs}, args)
                    rows.append({"pass": pass_name, "nonlinearity": nonlinearity, "dtype": dtype, "config": config,
                                 "max_rel_err_vs_torch": worst, **timing})

                    for name in [*loops, "torch"]:
                        print(f"{pass_name:5} {nonlinearity:6} {dtype:7} {str(config):20} {name:9} "
                              f"{timing['s'][name] * 1e3:9.3f} {fmt(timing, f'{name}/numpy'):>17} "
                              f"{fmt(timing, f'{name}/torch'):>17}")
                    print(f"  other processes: {timing['foreign_cpu_fraction']:.2f} of the CPUs "
                          f"({timing['attempts']} attempt(s)), load average {os.getloadavg()[0]:.2f}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
