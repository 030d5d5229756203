"""A family's compiled whole-sequence loops (LSTM, GRU or RNN) against its loop over steps in Python and torch's
twin: one training step (forward + BPTT) and inference, interleaved in one process (BENCHMARKING.md).

Each side runs in blocks, side after side, with a pause and a warm-up call before each block
(:func:`bptt.perf.timing.timed_block`); times are medians over the blocks, ratios the medians of the paired block
ratios. Every case is first checked against torch, every bptt side (1e-10 relative in float64, 1e-4 in float32).
Sides: "compiled" forces both compiled loops whatever the family's ``compiled_loops`` would choose;
"numpy" holds them off (the loop over steps in Python, each step's element-wise work in numba's step kernels
where numba is installed, as before the compiled loops); for a training step "backward" adds the compiled backward
loop alone to the Python forward loop, and "shipped", where it differs from those, is the mix that
the family's ``compiled_loops`` ships. With ``--memory`` each training row also gives the tracemalloc peak of
a training step over the cache (:func:`bptt.perf.bench.training_memory`), compiled and Python loops. A row waits
for a quiet machine and is timed again (up to ``--tries`` times) while other processes took more than
``--max-foreign`` of the CPUs during it.

Usage::

    python benchmarks/family_loop.py --family lstm           # the grid below, both dtypes
    python benchmarks/family_loop.py --family rnn --nonlinearities tanh,relu
    python benchmarks/family_loop.py --family gru --configs "100,32,32,128" --dtypes float64 --blocks 5
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/family_loop.py --family lstm  # BENCHMARKING.md
"""

from __future__ import annotations

import itertools
import json

import numpy as np
from _loop_timing import loop_benchmark_parser, on_path, print_load, print_sides, verified_timing

from bptt.layers import gru, kernels, lstm, rnn
from bptt.perf.bench import Case, build_case, inference_pair, parse_configs, torch_twin, training_memory, training_pair
from bptt.perf.timing import TORCH_THREADS, environment_report, import_torch

CONFIGS = "50,1,1,32;100,32,1,64;100,32,32,128;100,32,128,256;100,64,256,512"
TOLERANCE = {"float64": 1e-10, "float32": 1e-4}
FAMILIES = {"lstm": (lstm, kernels.lstm_sequence_kernels), "gru": (gru, kernels.gru_sequence_kernels),
            "rnn": (rnn, kernels.rnn_sequence_kernels)}


def make_case(torch, family: str, config, dtype: str, nonlinearity: str | None):
    """The family's one-layer case (:func:`bptt.perf.bench.build_case`; for the RNN, one of ``nonlinearity``) and its
    torch twin with the same weights."""
    if nonlinearity in (None, "tanh"):
        case = build_case(family, config, dtype)
        return case, torch_twin(torch, case)
    T, N, I, H = config
    rng = np.random.default_rng(0)
    layer = rnn.RNN(I, H, nonlinearity=nonlinearity, dtype=np.dtype(dtype), rng=0)

    def draw(*shape):
        return rng.standard_normal(shape).astype(dtype)

    case = Case("rnn", dtype, layer, draw(T, N, I), [draw(1, N, H)], draw(T, N, H), [draw(1, N, H)])
    module = torch.nn.RNN(I, H, 1, nonlinearity=nonlinearity, dtype=getattr(torch, dtype))
    module.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in layer.params.items()})
    return case, module


def sides(family: str, pass_name: str, config) -> dict[str, tuple]:
    """The bptt sides to time (module docstring)."""
    module, compiled_kernels = FAMILIES[family]
    compiled = compiled_kernels()
    assert compiled is not None, "the compiled side needs numba and SciPy (and BPTT_KERNELS unset)"
    result = {"compiled": compiled, "numpy": (None, None)}
    if pass_name == "train":
        result["backward"] = (None, compiled[1])
    shipped = module.compiled_loops()
    if pass_name == "infer":
        shipped = (shipped[0], None)
    if shipped not in result.values() and (pass_name == "train" or shipped[0] is None):
        result["shipped"] = shipped
    return result


def memory(family: str, config, dtype: str) -> dict[str, float]:
    """A training step's tracemalloc peak over the cache, compiled loops and Python loops."""
    module, compiled_kernels = FAMILIES[family]
    return {name: on_path(module, lambda: training_memory(family, config, dtype)["peak_over_cache"], loops)()
            for name, loops in (("compiled", compiled_kernels()), ("numpy", (None, None)))}


def main(argv=None) -> int:
    parser = loop_benchmark_parser(__doc__.splitlines()[0], CONFIGS)
    parser.add_argument("--family", choices=sorted(FAMILIES), required=True)
    parser.add_argument("--nonlinearities", default="tanh", help="the RNN's, comma-separated (default %(default)s)")
    parser.add_argument("--memory", action="store_true", help="also the peak memory of a training step")
    args = parser.parse_args(argv)
    torch = import_torch()
    torch.set_num_threads(TORCH_THREADS)
    environment_report(TORCH_THREADS)
    rows = []
    print(f"{'pass':5} {'nonlin':6} {'dtype':7} {'(T, N, I, H)':20} {'side':9} {'ms':>9} {'/numpy':>17} "
          f"{'/torch':>17}  (ratios: median [min-max] of paired blocks)")
    nonlinearities = args.nonlinearities.split(",") if args.family == "rnn" else [None]
    for pass_name, nonlinearity, dtype, config in itertools.product(
            args.passes.split(","), nonlinearities, args.dtypes.split(","), parse_configs(args.configs)):
        case, module = make_case(torch, args.family, config, dtype, nonlinearity)
        pair = (training_pair if pass_name == "train" else inference_pair)(torch, case, module)
        label = f"{pass_name:5} {nonlinearity or '':6} {dtype:7} {str(config):20}"
        result = verified_timing(FAMILIES[args.family][0], torch, pass_name, pair,
                                 sides(args.family, pass_name, config), TOLERANCE[dtype], args, label)
        if result is None:
            return 1
        worst, timing = result
        row = {"pass": pass_name, "nonlinearity": nonlinearity, "dtype": dtype, "config": config,
               "max_rel_err_vs_torch": worst, **timing}
        print_sides(label, timing)
        if args.memory and pass_name == "train" and nonlinearity in (None, "tanh"):
            row["peak_over_cache"] = memory(args.family, config, dtype)
            print("  training step peak / cache: " + ", ".join(
                f"{name} {value:.2f}" for name, value in row["peak_over_cache"].items()))
        print_load(timing)
        rows.append(row)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
