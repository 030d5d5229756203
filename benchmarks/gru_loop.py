"""The GRU's compiled whole-sequence loops against its loop over steps in Python and torch.nn.GRU: one training
step (forward + BPTT) and inference, interleaved in one process (BENCHMARKING.md).

Each side runs in blocks, side after side, with a pause and a warm-up call before each block
(:func:`bptt.perf.timing.timed_block`); times are medians over the blocks, ratios the medians of the paired block
ratios. Every case is first checked against torch, every bptt side (1e-10 relative in float64, 1e-4 in float32).
Sides: "compiled" forces both compiled loops whatever :func:`bptt.layers.gru.compiled_loops` would choose;
"numpy" holds them off (the loop over steps in Python, each step's element-wise work in numba's step kernels
where numba is installed, as before the compiled loops); for a training step "backward" adds the compiled backward
loop alone to the Python forward loop, and "shipped", where it differs from those, is the mix that
:func:`bptt.layers.gru.compiled_loops` ships. With ``--memory`` each training row also gives the tracemalloc peak of
a training step over the cache (:func:`bptt.perf.bench.training_memory`), compiled and Python loops. A row waits
for a quiet machine and is timed again (up to ``--tries`` times) while other processes took more than
``--max-foreign`` of the CPUs during it.

Usage::

    python benchmarks/gru_loop.py                            # the grid below, both dtypes
    python benchmarks/gru_loop.py --configs "100,32,32,128" --dtypes float64 --blocks 5
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/gru_loop.py     # see BENCHMARKING.md
"""

from __future__ import annotations

import json

from _loop_timing import loop_benchmark_parser, on_path, print_load, print_sides, verified_timing

from bptt.layers import gru, kernels
from bptt.perf.bench import build_case, inference_pair, parse_configs, torch_twin, training_memory, training_pair
from bptt.perf.timing import TORCH_THREADS, environment_report, import_torch

CONFIGS = "50,1,1,32;100,32,1,64;100,32,32,128;100,32,128,256;100,64,256,512"
TOLERANCE = {"float64": 1e-10, "float32": 1e-4}


def sides(pass_name: str, config) -> dict[str, tuple]:
    """The bptt sides to time (module docstring)."""
    compiled = kernels.gru_sequence_kernels()
    assert compiled is not None, "the compiled side needs numba and SciPy (and BPTT_KERNELS unset)"
    result = {"compiled": compiled, "numpy": (None, None)}
    if pass_name == "train":
        result["backward"] = (None, compiled[1])
    shipped = gru.compiled_loops(config[1], config[3])
    if pass_name == "infer":
        shipped = (shipped[0], None)
    if shipped not in result.values() and (pass_name == "train" or shipped[0] is None):
        result["shipped"] = shipped
    return result


def memory(config, dtype: str) -> dict[str, float]:
    """A training step's tracemalloc peak over the cache, compiled loops and Python loops."""
    return {name: on_path(gru, lambda: training_memory("gru", config, dtype)["peak_over_cache"], loops)()
            for name, loops in (("compiled", kernels.gru_sequence_kernels()), ("numpy", (None, None)))}


def main(argv=None) -> int:
    parser = loop_benchmark_parser(__doc__.splitlines()[0], CONFIGS)
    parser.add_argument("--memory", action="store_true", help="also the peak memory of a training step")
    args = parser.parse_args(argv)
    torch = import_torch()
    torch.set_num_threads(TORCH_THREADS)
    environment_report(TORCH_THREADS)
    rows = []
    print(f"{'pass':5} {'dtype':7} {'(T, N, I, H)':20} {'side':9} {'ms':>9} {'/numpy':>17} {'/torch':>17}  "
          f"(ratios: median [min-max] of paired blocks)")
    for pass_name in args.passes.split(","):
        for dtype in args.dtypes.split(","):
            for config in parse_configs(args.configs):
                case = build_case("gru", config, dtype)
                module = torch_twin(torch, case)
                pair = (training_pair if pass_name == "train" else inference_pair)(torch, case, module)
                label = f"{pass_name:5} {dtype:7} {str(config):20}"
                result = verified_timing(gru, torch, pass_name, pair, sides(pass_name, config), TOLERANCE[dtype],
                                         args, label)
                if result is None:
                    return 1
                worst, timing = result
                row = {"pass": pass_name, "dtype": dtype, "config": config, "max_rel_err_vs_torch": worst, **timing}
                print_sides(label, timing)
                if args.memory and pass_name == "train":
                    row["peak_over_cache"] = memory(config, dtype)
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
