"""The RNN's compiled whole-sequence loops against its NumPy step loop and torch.nn.RNN: one training step
(forward + BPTT) and inference, three ways, interleaved in one process (BENCHMARKING.md).

The compiled loops run with SciPy's BLAS (which numba's ``np.dot`` calls) on one thread, as shipped
(:func:`bptt.layers.kernels.rnn_sequence_kernels`). Each side runs in blocks, compiled / NumPy / torch,
compiled / NumPy / torch, ..., with a pause and a warm-up call before each block
(:func:`bptt.perf.timing.timed_block`); times are medians over the blocks, ratios the medians of the paired block
ratios. Every case is first checked against torch, every bptt side (1e-10
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

import json

import numpy as np
from _loop_timing import loop_benchmark_parser, print_load, print_sides, verified_timing

from bptt.layers import kernels, rnn
from bptt.perf.bench import Case, inference_pair, parse_configs, training_pair
from bptt.perf.timing import TORCH_THREADS, environment_report, import_torch

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


def main(argv=None) -> int:
    parser = loop_benchmark_parser(__doc__.splitlines()[0], CONFIGS)
    parser.add_argument("--nonlinearities", default="tanh,relu")
    args = parser.parse_args(argv)
    torch = import_torch()
    torch.set_num_threads(TORCH_THREADS)
    kernels.rnn_sequence_kernels()            # loads SciPy's BLAS, so that the report lists its pool too
    environment_report(TORCH_THREADS)
    print("SciPy's BLAS during the compiled loops: "
          + ("1 thread" if kernels._scipy_blas_threads() else "its own count (no separate pool, or no threadpoolctl)"))
    rows = []
    print(f"{'pass':5} {'nonlin':6} {'dtype':7} {'(T, N, I, H)':20} {'side':9} {'ms':>9} {'/numpy':>17} "
          f"{'/torch':>17}  (ratios: median [min-max] of paired blocks)")
    for pass_name in args.passes.split(","):
        for nonlinearity in args.nonlinearities.split(","):
            for dtype in args.dtypes.split(","):
                for config in parse_configs(args.configs):
                    case, module = make_case(torch, config, dtype, nonlinearity)
                    pair = (training_pair if pass_name == "train" else inference_pair)(torch, case, module)
                    label = f"{pass_name:5} {nonlinearity:6} {dtype:7} {str(config):20}"
                    result = verified_timing(rnn, torch, pass_name, pair, sides(pass_name, nonlinearity, config),
                                             TOLERANCE[dtype], args, label)
                    if result is None:
                        return 1
                    worst, timing = result
                    rows.append({"pass": pass_name, "nonlinearity": nonlinearity, "dtype": dtype, "config": config,
                                 "max_rel_err_vs_torch": worst, **timing})
                    print_sides(label, timing)
                    print_load(timing)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
