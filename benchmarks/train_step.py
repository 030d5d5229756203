"""Time one training step of a recurrent layer (forward + full BPTT backward, weight gradients included):
bptt's LSTM, GRU and RNN against torch.nn's, with identical weights.

Follows ``BENCHMARKING.md``: both implementations run in this one process, interleaved block by block
(bptt, torch, bptt, torch, ...), each timed block preceded by a ~0.2 s pause and one untimed warm-up call;
we report medians over blocks. Before anything is timed, every config is checked once against torch
(outputs, final states, dx, initial-state gradients and the weight gradients), so a wrong kernel is never
timed.

One step, bptt (an LSTM's states are pairs)::

    layer.zero_grad(); out, h = layer(x, h0); layer.backward(dout, dh)

One step, torch (same weights, inputs and upstream gradients; x and h0 require grad, since bptt always
returns dx and dh0)::

    module.zero_grad(set_to_none=True); out, h = module(x, h0); torch.autograd.backward([out, h], [dout, dh])

Usage::

    python benchmarks/train_step.py                       # LSTM, GRU, RNN; default configs; float64, float32
    python benchmarks/train_step.py --families gru,rnn --configs "100,32,32,128"
    python benchmarks/train_step.py --quick               # fewer blocks
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/train_step.py   # see BENCHMARKING.md

``--configs`` is a ';'-separated list of ``T,N,I,H`` (steps, batch, input size, hidden size); one layer.
FLOPs of a step are taken as ``6*G*T*N*H*(I+H)`` with G = 4, 3, 1 gates (forward + backward, weight
gradients included).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import time
from collections.abc import Callable

import numpy as np
import torch
from _environment import TORCH_THREADS, environment_report

import bptt

PAUSE_S = 0.2
DEFAULT_CONFIGS = "50,1,1,32;100,32,32,128"
DEFAULT_BLOCKS = 7
QUICK_BLOCKS = 3
TOLERANCE = {"float64": 1e-10, "float32": 1e-4}
NP_DTYPE = {"float64": np.float64, "float32": np.float32}
TORCH_DTYPE = {"float64": torch.float64, "float32": torch.float32}


# ---------------------------------------------------------------------------------------------------------
# Command line and environment report
# ---------------------------------------------------------------------------------------------------------

# family: (bptt layer, torch.nn module, gates G)
FAMILIES = {"lstm": (bptt.LSTM, torch.nn.LSTM, 4), "gru": (bptt.GRU, torch.nn.GRU, 3),
            "rnn": (bptt.RNN, torch.nn.RNN, 1)}


def parse_configs(text: str) -> list[tuple[int, int, int, int]]:
    configs = []
    for part in text.split(";"):
        part = part.strip()
        if not part:
            continue
        fields = [f.strip() for f in part.split(",")]
        try:
            values = tuple(int(f) for f in fields)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected integers T,N,I,H, got {part!r}") from None
        if len(values) != 4 or min(values) < 1:
            raise argparse.ArgumentTypeError(f"expected four positive integers T,N,I,H, got {part!r}")
        configs.append(values)
    if not configs:
        raise argparse.ArgumentTypeError(f"expected at least one T,N,I,H config, got {text!r}")
    return configs


def parse_dtypes(text: str) -> list[str]:
    dtypes = [d.strip() for d in text.split(",") if d.strip()]
    bad = [d for d in dtypes if d not in TOLERANCE]
    if bad or not dtypes:
        raise argparse.ArgumentTypeError(f"expected a list from {sorted(TOLERANCE)}, got {text!r}")
    return dtypes


def parse_families(text: str) -> list[str]:
    families = [f.strip() for f in text.split(",") if f.strip()]
    if not families or any(f not in FAMILIES for f in families):
        raise argparse.ArgumentTypeError(f"expected a list from {sorted(FAMILIES)}, got {text!r}")
    return families


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", type=parse_configs, default=parse_configs(DEFAULT_CONFIGS),
                        help=f"';'-separated T,N,I,H configs (default {DEFAULT_CONFIGS!r})")
    parser.add_argument("--families", type=parse_families, default=list(FAMILIES),
                        help="comma-separated families (default 'lstm,gru,rnn')")
    parser.add_argument("--dtypes", type=parse_dtypes, default=["float64", "float32"],
                        help="comma-separated dtypes (default 'float64,float32')")
    parser.add_argument("--blocks", type=int, default=None,
                        help=f"timed blocks per implementation (default {DEFAULT_BLOCKS}, "
                             f"{QUICK_BLOCKS} with --quick)")
    parser.add_argument("--quick", action="store_true",
                        help=f"fewer blocks ({QUICK_BLOCKS}) unless --blocks is given")
    parser.add_argument("--min-block-ms", type=float, default=60.0,
                        help="each timed block repeats the step until it lasts at least this long "
                             "(default 60)")
    parser.add_argument("--seed", type=int, default=0, help="seed of weights, inputs and upstream gradients")
    parser.add_argument("--json", metavar="PATH", default=None, help="also write the result rows as JSON")
    args = parser.parse_args(argv)
    if args.blocks is None:
        args.blocks = QUICK_BLOCKS if args.quick else DEFAULT_BLOCKS
    if args.blocks < 1:
        parser.error(f"--blocks must be >= 1, got {args.blocks}")
    if args.min_block_ms <= 0:
        parser.error(f"--min-block-ms must be > 0, got {args.min_block_ms}")
    return args


# ---------------------------------------------------------------------------------------------------------
# The two steps, and the check that they compute the same thing
# ---------------------------------------------------------------------------------------------------------

def rel_err(actual: object, expected: object) -> float:
    """``max|a - b| / max(max|b|, tiny)``, as in the parity tests."""
    a = np.asarray(actual, dtype=np.float64)
    b = np.asarray(expected, dtype=np.float64)
    if a.shape != b.shape:
        return float("inf")
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), np.finfo(np.float64).tiny))


def build_case(family: str, config: tuple[int, int, int, int], dtype: str, seed: int) -> dict:
    """A bptt layer and its torch.nn twin with the same weights, shared inputs, and one step function each."""
    T, N, I, H = config
    np_dtype, t_dtype = NP_DTYPE[dtype], TORCH_DTYPE[dtype]
    rng = np.random.default_rng(seed)
    ours, theirs, _ = FAMILIES[family]
    layer = ours(I, H, dtype=np_dtype, rng=seed)
    module = theirs(I, H, 1, dtype=t_dtype)
    module.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in layer.params.items()})
    paired = family == "lstm"

    def draw(*shape):
        return rng.standard_normal(shape).astype(np_dtype)

    x, states = draw(T, N, I), [draw(1, N, H) for _ in range(2 if paired else 1)]
    dout, dstates = draw(T, N, H), [draw(1, N, H) for _ in states]

    def pack(values):
        return tuple(values) if paired else values[0]

    def bptt_step():
        layer.zero_grad()
        out, finals = layer(x, pack(states))
        dx, dinitials = layer.backward(dout, pack(dstates))
        return out, finals, dx, dinitials

    inputs = [torch.from_numpy(a.copy()).requires_grad_(True) for a in (x, *states)]
    upstream = [torch.from_numpy(a.copy()) for a in (dout, *dstates)]

    def torch_step():
        module.zero_grad(set_to_none=True)
        for tensor in inputs:
            tensor.grad = None
        out, finals = module(inputs[0], pack(inputs[1:]))
        torch.autograd.backward([out, *(finals if paired else [finals])], upstream)
        return out, finals

    return {"layer": layer, "module": module, "bptt_step": bptt_step, "torch_step": torch_step,
            "torch_inputs": inputs, "paired": paired}


def verify(case: dict, dtype: str) -> dict[str, float]:
    """Run each step once and compare everything bptt returns with torch; exit if anything disagrees."""
    out, finals, dx, dinitials = case["bptt_step"]()
    t_out, t_finals = case["torch_step"]()
    as_list = (lambda v: list(v)) if case["paired"] else (lambda v: [v])
    pairs = {"out": (out, t_out), "dx": (dx, case["torch_inputs"][0].grad)}
    for k, (ours, theirs) in enumerate(zip(as_list(finals), as_list(t_finals), strict=True)):
        pairs[f"final state {k}"] = (ours, theirs)
    for k, (ours, tensor) in enumerate(zip(as_list(dinitials), case["torch_inputs"][1:], strict=True)):
        pairs[f"d initial state {k}"] = (ours, tensor.grad)
    named = dict(case["module"].named_parameters())
    for name, grad in case["layer"].grads.items():
        pairs[f"grad {name}"] = (grad, named[name].grad)
    errors = {name: rel_err(a, b.detach().numpy()) for name, (a, b) in pairs.items()}
    tol = TOLERANCE[dtype]
    bad = {name: err for name, err in errors.items() if not err <= tol}
    if bad:
        details = ", ".join(f"{name} {err:.3e}" for name, err in bad.items())
        sys.exit(f"train_step: bptt and torch disagree ({dtype}, tolerance {tol:.0e} relative): {details}. "
                 f"Refusing to time a wrong kernel.")
    return errors


# ---------------------------------------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------------------------------------

def repeats_for(step: Callable[[], object], min_block_s: float) -> int:
    """How many calls make a block last at least ``min_block_s`` (after one warm-up call)."""
    step()
    n, elapsed = 1, 0.0
    while True:
        start = time.perf_counter()
        for _ in range(n):
            step()
        elapsed = time.perf_counter() - start
        if elapsed >= min_block_s / 4 or n >= 1 << 20:
            break
        n *= 2
    per_call = elapsed / n
    return max(1, int(np.ceil(1.2 * min_block_s / per_call)))


class ForeignLoad:
    """CPU time other processes took while we timed: /proc/stat busy time minus this process's own.

    A 2-core machine shared with a test run gives meaningless numbers (busy-waiting thread pools fight
    over the cores), so every row records this and the table is flagged when it is above a few percent."""

    def __init__(self) -> None:
        self.foreign_s = 0.0
        self.wall_s = 0.0
        self.available = os.path.exists("/proc/stat")
        self._tick = os.sysconf("SC_CLK_TCK") if self.available else 100

    def _busy_s(self) -> float:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)   # idle + iowait
        return (sum(fields[:8]) - idle) / self._tick                # without guest, counted in user

    def __enter__(self) -> ForeignLoad:
        if self.available:
            times = os.times()
            self._start = (self._busy_s(), times.user + times.system, time.perf_counter())
        return self

    def __exit__(self, *exc) -> None:
        if self.available:
            times = os.times()
            busy0, own0, wall0 = self._start
            own = times.user + times.system - own0
            self.foreign_s += max(0.0, self._busy_s() - busy0 - own)
            self.wall_s += time.perf_counter() - wall0

    @property
    def fraction(self) -> float:
        """Foreign CPU time as a fraction of the machine's capacity over the timed wall time."""
        if not self.available or self.wall_s <= 0:
            return float("nan")
        return self.foreign_s / (self.wall_s * (os.cpu_count() or 1))


FOREIGN_WARN = 0.05


def timed_block(step: Callable[[], object], repeats: int, monitor: ForeignLoad) -> float:
    """Pause, one warm-up call, then ``repeats`` calls; seconds per call."""
    gc.collect()
    time.sleep(PAUSE_S)
    step()
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        with monitor:
            start = time.perf_counter()
            for _ in range(repeats):
                step()
            elapsed = time.perf_counter() - start
    finally:
        if gc_was_enabled:
            gc.enable()
    return elapsed / repeats


def benchmark(family: str, config: tuple[int, int, int, int], dtype: str, args: argparse.Namespace) -> dict:
    T, N, I, H = config
    case = build_case(family, config, dtype, args.seed)
    errors = verify(case, dtype)
    steps = {"bptt": case["bptt_step"], "torch": case["torch_step"]}
    repeats = {}
    for name, step in steps.items():          # calibrated interleaved too, each after a pause
        time.sleep(PAUSE_S)
        repeats[name] = repeats_for(step, args.min_block_ms / 1e3)
    times: dict[str, list[float]] = {"bptt": [], "torch": []}
    monitor = ForeignLoad()
    for _ in range(args.blocks):              # A B A B ...
        for name, step in steps.items():
            times[name].append(timed_block(step, repeats[name], monitor))
    flops = 6 * FAMILIES[family][2] * T * N * H * (I + H)   # forward 2GH(I+H) per step and sequence, backward 2x
    bptt_s = statistics.median(times["bptt"])
    torch_s = statistics.median(times["torch"])
    # Ratio: median over blocks of the paired ratio bptt_k / torch_k (adjacent blocks share the drift).
    ratios = [b / t for b, t in zip(times["bptt"], times["torch"], strict=True)]
    ratio = statistics.median(ratios)
    return {"family": family, "T": T, "N": N, "I": I, "H": H, "layers": 1, "dtype": dtype,
            "bptt_ms": bptt_s * 1e3, "torch_ms": torch_s * 1e3, "ratio_bptt_over_torch": ratio,
            "ratio_min": min(ratios), "ratio_max": max(ratios), "ratio_of_medians": bptt_s / torch_s,
            "bptt_gflops": flops / bptt_s / 1e9, "torch_gflops": flops / torch_s / 1e9, "flops": flops,
            "blocks": args.blocks, "repeats": repeats,
            "bptt_block_ms": [t * 1e3 for t in times["bptt"]],
            "torch_block_ms": [t * 1e3 for t in times["torch"]],
            "foreign_cpu_fraction": monitor.fraction,
            "max_rel_err": max(errors.values()), "rel_errors": errors, "tolerance": TOLERANCE[dtype]}


def print_table(rows: list[dict]) -> None:
    header = (f"{'family':<6} {'config (T,N,I,H)':<20} {'dtype':<8} {'bptt ms':>10} {'torch ms':>10} "
              f"{'bptt/torch':>10} {'(min-max)':>11} {'bptt GFLOP/s':>13} {'max rel err':>12} "
              f"{'other CPU':>9}")
    print(header)
    print("-" * len(header))
    for r in rows:
        config = f"{r['T']},{r['N']},{r['I']},{r['H']}"
        spread = f"{r['ratio_min']:.2f}-{r['ratio_max']:.2f}"
        print(f"{r['family']:<6} {config:<20} {r['dtype']:<8} {r['bptt_ms']:>10.3f} {r['torch_ms']:>10.3f} "
              f"{r['ratio_bptt_over_torch']:>10.2f} {spread:>11} {r['bptt_gflops']:>13.2f} "
              f"{r['max_rel_err']:>12.1e} {100 * r['foreign_cpu_fraction']:>8.0f}%")
    loaded = [r for r in rows if r["foreign_cpu_fraction"] > FOREIGN_WARN]
    if loaded:
        print(f"WARNING: other processes used more than {100 * FOREIGN_WARN:.0f}% of the CPUs while "
              f"{len(loaded)} of {len(rows)} rows were timed ('other CPU'); on a 2-core machine that "
              f"distorts both sides (busy-waiting thread pools). Rerun on a quiet machine.")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(TORCH_THREADS)
    env = environment_report()
    print(f"\nblocks={args.blocks} per implementation, interleaved bptt/torch, pause {PAUSE_S} s + 1 warm-up "
          f"call before each block, each block >= {args.min_block_ms:g} ms; times are medians over blocks, "
          f"ratio is the median (min-max) of the paired block ratios bptt_k/torch_k; 'other CPU' is the "
          f"share of the machine that other processes used during timed blocks; "
          f"FLOPs = 6*G*T*N*H*(I+H) (G = 4, 3, 1 gates); 1 layer\n")
    rows = []
    started = time.perf_counter()
    for family in args.families:
        for config in args.configs:
            for dtype in args.dtypes:
                row = benchmark(family, config, dtype, args)
                rows.append(row)
                print(f"  done {family} {config} {dtype}: bptt {row['bptt_ms']:.3f} ms, torch {row['torch_ms']:.3f} ms "
                      f"(repeats {row['repeats']['bptt']}/{row['repeats']['torch']}, verified, "
                      f"max rel err {row['max_rel_err']:.1e}, "
                      f"other CPU {100 * row['foreign_cpu_fraction']:.0f}%)", flush=True)
    print()
    print_table(rows)
    print(f"\ntotal {time.perf_counter() - started:.1f} s")
    if args.json:
        with open(args.json, "w") as f:
            settings = {"blocks": args.blocks, "min_block_ms": args.min_block_ms, "pause_s": PAUSE_S,
                        "seed": args.seed, "torch_threads": TORCH_THREADS}
            json.dump({"environment": env, "settings": settings, "rows": rows}, f, indent=2)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
