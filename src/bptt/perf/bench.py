r"""``bptt bench``: bptt's recurrent layers against ``torch.nn``'s, with identical weights, in one process.

What is measured, for each family (LSTM, GRU, RNN tanh), dtype (float64, float32) and layer config
``(T, N, I, H)`` of :data:`GRID` (one layer, one direction):

- **train**: one training step, forward + full BPTT backward with weight gradients::

      bptt:  layer.zero_grad(); out, h = layer(x, h0); layer.backward(dout, dh)
      torch: module.zero_grad(set_to_none=True); out, h = module(x, h0); torch.autograd.backward([out, h], [dout, dh])

  (x and h0 require grad on the torch side, since bptt always returns dx and dh0). FLOPs
  :math:`6 G T N H (I + H)`, with G = 4, 3, 1 gates.
- **infer**: the forward pass alone, bptt's under :func:`bptt.inference_mode` and torch's under
  ``torch.no_grad()``; FLOPs :math:`2 G T N H (I + H)`.
- **stream**: single-step streaming inference, N = 1, one time step per call with the state carried:
  ``stream.step(x_t)`` (:class:`bptt.layers.stream.Stream`) with ``x_t`` of shape ``(1, I)``, against
  ``torch.nn.LSTMCell`` / ``GRUCell`` / ``RNNCell`` (same weights, under ``torch.no_grad()``), for H in
  :data:`STREAM_SIZES`, I = H.
- **floor** (``--floor``): for each train and infer row, the *GEMM floor* of bptt's pass
  (:class:`bptt.perf.gemm_floor.GemmFloor`: its GEMM calls alone, same shapes and layouts) timed against the same
  torch step; ``floor/torch`` at or above 1.0 says that with this BLAS only faster GEMMs can win that cell.
- **memory** (``--memory``, no torch needed): the peak memory one bptt training step allocates, traced
  with :mod:`tracemalloc`, over the size of the layer's cache (:func:`training_memory`).

Every measured pair is first checked once against torch (outputs, final states and, for a training step,
dx, the initial-state gradients and every weight gradient; relative error
``max|a - b| / max|b|`` at most 1e-10 in float64, 1e-4 in float32). A pair that disagrees is reported
and never timed, and the command exits with status 1.

The roofline column divides the achieved GFLOP/s by the GEMM peak NumPy reaches on this machine
(:func:`bptt.perf.timing.gemm_peak`, measured once per dtype). The timing rules of ``BENCHMARKING.md`` (one
process, interleaved blocks with a pause and a warm-up call, medians, paired ratios, the foreign-load
monitor) are in :mod:`bptt.perf.timing`. Ratios are bptt / torch: above 1.0 bptt is slower, marked ``*``.

torch is imported inside the functions that need it, never when bptt is imported.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
import tracemalloc
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from bptt.layers.gru import GRU
from bptt.layers.inference import inference_mode
from bptt.layers.kernels import describe_path
from bptt.layers.lstm import LSTM
from bptt.layers.rnn import RNN
from bptt.layers.stream import Stream
from bptt.perf.gemm_floor import GemmFloor
from bptt.perf.tables import print_layer_table, print_load_warning, print_memory_table, print_stream_table
from bptt.perf.timing import PAUSE_S, TORCH_THREADS, compare, environment_report, gemm_peak, import_torch

Config = tuple[int, int, int, int]

GRID: tuple[Config, ...] = ((100, 1, 1, 5), (50, 1, 1, 32), (100, 32, 1, 64), (100, 32, 32, 128),
                            (100, 32, 128, 256), (100, 64, 256, 512), (50, 16, 512, 1024))
QUICK_GRID = GRID[:-2]            # --quick skips the two biggest configs
STREAM_SIZES = (32, 128, 512)
STREAM_STEPS = 64                 # distinct inputs the streaming calls cycle through
DEFAULT_BLOCKS = 7
QUICK_BLOCKS = 3
PASSES = ("train", "infer", "stream")
TOLERANCE = {"float64": 1e-10, "float32": 1e-4}
# family: (bptt layer, torch.nn name, gates G)
FAMILIES = {"lstm": (LSTM, "LSTM", 4), "gru": (GRU, "GRU", 3), "rnn": (RNN, "RNN", 1)}
FLOPS_PER_GATE_UNIT = {"train": 6, "infer": 2}   # times G*T*N*H*(I+H)

Pair = tuple[Callable[[], object], Callable[[], object], Callable[[], dict[str, float]]]


# ---------------------------------------------------------------------------------------------------------
# The cases: one bptt layer, its data, and the torch twin of each measurement
# ---------------------------------------------------------------------------------------------------------

class Case(NamedTuple):
    """A bptt layer with inputs, initial states and upstream gradients (states as lists, ``(1, N, H)``)."""

    family: str
    dtype: str
    layer: object
    x: NDArray                 # (T, N, I)
    states: list[NDArray]      # h0 (and c0 for an LSTM)
    dout: NDArray              # (T, N, H)
    dstates: list[NDArray]     # dh_n (and dc_n)

    @property
    def paired(self) -> bool:
        return len(self.states) == 2

    def pack(self, values: list) -> object:
        """States in the family's form: a pair for an LSTM, one array (or tensor) otherwise."""
        return tuple(values) if self.paired else values[0]

    def unpack(self, value: object) -> list:
        return list(value) if self.paired else [value]


def build_case(family: str, config: Config, dtype: str = "float64", seed: int = 0) -> Case:
    """The layer of ``family`` for ``config = (T, N, I, H)``, seeded weights and standard-normal data."""
    if family not in FAMILIES:
        raise ValueError(f"bench: expected family in {sorted(FAMILIES)}, got {family!r}.")
    if dtype not in TOLERANCE:
        raise ValueError(f"bench: expected dtype in {sorted(TOLERANCE)}, got {dtype!r}.")
    T, N, I, H = config
    np_dtype = np.dtype(dtype)
    rng = np.random.default_rng(seed)
    layer = FAMILIES[family][0](I, H, dtype=np_dtype, rng=seed)

    def draw(*shape: int) -> NDArray:
        return rng.standard_normal(shape).astype(np_dtype)

    x, states = draw(T, N, I), [draw(1, N, H) for _ in range(2 if family == "lstm" else 1)]
    dout, dstates = draw(T, N, H), [draw(1, N, H) for _ in states]
    return Case(family, dtype, layer, x, states, dout, dstates)


def bptt_training_step(case: Case) -> Callable[[], tuple]:
    """One bptt training step on ``case``: returns ``out, finals, dx, dinitials``."""
    layer, states, dstates = case.layer, case.pack(case.states), case.pack(case.dstates)

    def step() -> tuple:
        layer.zero_grad()
        out, finals = layer(case.x, states)
        dx, dinitials = layer.backward(case.dout, dstates)
        return out, finals, dx, dinitials

    return step


def rel_err(actual: object, expected: object) -> float:
    """``max|a - b| / max(max|b|, tiny)``, as in the parity tests; inf when the shapes differ."""
    a = np.asarray(actual, dtype=np.float64)
    b = np.asarray(expected, dtype=np.float64)
    if a.shape != b.shape:
        return float("inf")
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), np.finfo(np.float64).tiny))


def torch_twin(torch, case: Case):
    """``torch.nn.LSTM`` / ``GRU`` / ``RNN`` with the case's weights and dtype."""
    _, name, _ = FAMILIES[case.family]
    layer = case.layer
    module = getattr(torch.nn, name)(layer.input_size, layer.hidden_size, 1, dtype=getattr(torch, case.dtype))
    module.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in layer.params.items()})
    return module


def training_pair(torch, case: Case, module) -> Pair:
    """The bptt and torch training steps, and the check that they compute the same numbers."""
    bptt_step = bptt_training_step(case)
    inputs = [torch.from_numpy(a.copy()).requires_grad_(True) for a in (case.x, *case.states)]
    upstream = [torch.from_numpy(a.copy()) for a in (case.dout, *case.dstates)]

    def torch_step() -> tuple:
        module.zero_grad(set_to_none=True)
        for tensor in inputs:
            tensor.grad = None
        out, finals = module(inputs[0], case.pack(inputs[1:]))
        torch.autograd.backward([out, *case.unpack(finals)], upstream)
        return out, finals

    def check() -> dict[str, float]:
        out, finals, dx, dinitials = bptt_step()
        t_out, t_finals = torch_step()
        pairs = {"out": (out, t_out), "dx": (dx, inputs[0].grad)}
        for k, (ours, theirs) in enumerate(zip(case.unpack(finals), case.unpack(t_finals), strict=True)):
            pairs[f"final state {k}"] = (ours, theirs)
        for k, (ours, tensor) in enumerate(zip(case.unpack(dinitials), inputs[1:], strict=True)):
            pairs[f"d initial state {k}"] = (ours, tensor.grad)
        named = dict(module.named_parameters())
        for name, grad in case.layer.grads.items():
            pairs[f"grad {name}"] = (grad, named[name].grad)
        return {name: rel_err(a, b.detach().numpy()) for name, (a, b) in pairs.items()}

    return bptt_step, torch_step, check


def inference_pair(torch, case: Case, module) -> Pair:
    """The forward passes alone, and their check (outputs and final states). Call torch's under
    ``torch.no_grad()``."""
    layer, states = case.layer, case.pack(case.states)
    t_x, t_states = torch.from_numpy(case.x), case.pack([torch.from_numpy(s) for s in case.states])

    def bptt_step() -> tuple:
        with inference_mode():                           # as torch.no_grad(): no cache for a backward pass
            return layer(case.x, states)

    def torch_step() -> tuple:
        return module(t_x, t_states)

    def check() -> dict[str, float]:
        (out, finals), (t_out, t_finals) = bptt_step(), torch_step()
        errors = {"out": rel_err(out, t_out.numpy())}
        for k, (ours, theirs) in enumerate(zip(case.unpack(finals), case.unpack(t_finals), strict=True)):
            errors[f"final state {k}"] = rel_err(ours, theirs.numpy())
        return errors

    return bptt_step, torch_step, check


def streaming_pair(torch, family: str, size: int, dtype: str = "float64", seed: int = 0) -> Pair:
    """One time step per call, N = 1, I = H = ``size``, the state carried from call to call: a
    :class:`~bptt.layers.stream.Stream` of the bptt layer against torch's cell, both on ``x_t (1, I)`` with the same
    weights. The check runs both from the same state for :data:`STREAM_STEPS` steps and compares every
    step's states. Call torch's under ``torch.no_grad()``."""
    case = build_case(family, (1, 1, size, size), dtype, seed)
    layer = case.layer.eval()
    cell = getattr(torch.nn, FAMILIES[family][1] + "Cell")(size, size, dtype=getattr(torch, dtype))
    cell.load_state_dict({k.removesuffix("_l0"): torch.from_numpy(v.copy()) for k, v in layer.params.items()})
    stream = Stream(layer)
    xs = np.random.default_rng(seed + 1).standard_normal((STREAM_STEPS, 1, size)).astype(dtype)
    t_xs = torch.from_numpy(xs)
    theirs = None                         # torch's carried state, (1, H); bptt's is in the stream
    t_ours = t_theirs = 0                 # the step each side reads next

    def reset() -> None:
        nonlocal theirs, t_ours, t_theirs
        stream.reset(case.pack(case.states))
        theirs = case.pack([torch.from_numpy(s.reshape(1, size).copy()) for s in case.states])
        t_ours = t_theirs = 0

    def bptt_step() -> None:
        nonlocal t_ours
        stream.step(xs[t_ours])
        t_ours = (t_ours + 1) % STREAM_STEPS

    def torch_step() -> None:
        nonlocal theirs, t_theirs
        theirs = cell(t_xs[t_theirs], theirs)
        t_theirs = (t_theirs + 1) % STREAM_STEPS

    def check() -> dict[str, float]:
        trajectories: tuple[list, list] = ([], [])
        for side, step in enumerate((bptt_step, torch_step)):
            reset()
            for _ in range(STREAM_STEPS):
                step()
                states = case.unpack(stream.state) if side == 0 else [s.numpy() for s in case.unpack(theirs)]
                trajectories[side].append([np.reshape(s, -1) for s in states])
        reset()
        ours_states, theirs_states = (np.array(trajectory) for trajectory in trajectories)
        return {f"state {k} over {STREAM_STEPS} steps": rel_err(ours_states[:, k], theirs_states[:, k])
                for k in range(ours_states.shape[1])}

    reset()
    return bptt_step, torch_step, check


# ---------------------------------------------------------------------------------------------------------
# Memory
# ---------------------------------------------------------------------------------------------------------

def cache_nbytes(layer) -> dict[str, int]:
    """Bytes of every array the caches of the layer's last forward pass hold, by field name (``x``, ``h``,
    ``c``, ``gates``, ``tanh_c`` for an LSTM; summed over layers and directions)."""
    sizes: dict[str, int] = {}
    for cache in layer._tape.caches:          # the stack's record of its last forward pass
        for name, value in cache._asdict().items():
            if isinstance(value, np.ndarray):
                sizes[name] = sizes.get(name, 0) + value.nbytes
    return sizes


def training_memory(family: str, config: Config, dtype: str = "float64", seed: int = 0) -> dict:
    """Peak memory that one bptt training step allocates, against the size of the layer's cache.

    One untraced step first (as in a training loop, the previous step's cache and gradients exist); then
    :mod:`tracemalloc` (NumPy reports its array allocations to it) records the peak of the memory allocated
    during a second step: zero_grad, forward, backward. ``cache_bytes`` sums the arrays the cache holds,
    the input ``x`` included as the cache refers to it (the step does not allocate it, so the ratio slightly
    understates). Returns the sizes in bytes and ``peak_over_cache``."""
    case = build_case(family, config, dtype, seed)
    step = bptt_training_step(case)
    step()
    fields = cache_nbytes(case.layer)
    tracing = tracemalloc.is_tracing()
    if not tracing:
        tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        start, _ = tracemalloc.get_traced_memory()
        step()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        if not tracing:
            tracemalloc.stop()
    T, N, I, H = config
    cache_bytes = sum(fields.values())
    peak_bytes = peak - start
    return {"family": family, "dtype": dtype, "T": T, "N": N, "I": I, "H": H, "cache_bytes": cache_bytes,
            "cache_fields": fields, "peak_bytes": peak_bytes, "peak_over_cache": peak_bytes / cache_bytes}


# ---------------------------------------------------------------------------------------------------------
# Running the suite
# ---------------------------------------------------------------------------------------------------------

def verify_and_time(torch, pair: Pair, dtype: str, args: argparse.Namespace, *, no_grad: bool) -> dict:
    """Check the pair once; time it (``bptt.perf.timing.compare``) only when every error is within tolerance."""
    ours, theirs, check = pair
    with torch.no_grad() if no_grad else contextlib.nullcontext():
        errors = check()
        tolerance = TOLERANCE[dtype]
        row = {"verified": all(err <= tolerance for err in errors.values()), "max_rel_err": max(errors.values()),
               "rel_errors": errors, "tolerance": tolerance}
        if row["verified"]:
            row.update(compare(ours, theirs, blocks=args.blocks, min_block_s=args.min_block_ms / 1e3,
                               pause_s=args.pause_ms / 1e3))
    return row


def time_floor(torch, floor: GemmFloor, torch_step: Callable[[], object], args: argparse.Namespace, *,
               no_grad: bool) -> dict:
    """The GEMM floor against torch's step, interleaved as every pair: ``floor_s`` and ``floor_ratio``."""
    with torch.no_grad() if no_grad else contextlib.nullcontext():
        timing = compare(floor, torch_step, blocks=args.blocks, min_block_s=args.min_block_ms / 1e3,
                         pause_s=args.pause_ms / 1e3)
    return {"floor_s": timing["bptt_s"], "floor_ratio": timing["ratio"]}


def _progress(label: str, row: dict, unit: str, scale: float) -> None:
    if not row["verified"]:
        worst = max(row["rel_errors"], key=row["rel_errors"].get)
        print(f"  DISAGREES {label}: {worst} rel err {row['max_rel_err']:.1e} > {row['tolerance']:.0e}; "
              f"not timed", flush=True)
        return
    print(f"  done {label}: bptt {row['bptt_s'] * scale:.3f} {unit}, torch {row['torch_s'] * scale:.3f} {unit}, "
          f"ratio {row['ratio']:.2f} (repeats {row['repeats']['bptt']}/{row['repeats']['torch']}, verified, "
          f"max rel err {row['max_rel_err']:.1e}, other CPU {100 * row['foreign_cpu_fraction']:.0f}%)"
          + (f", GEMM floor/torch {row['floor_ratio']:.2f}" if "floor_ratio" in row else ""), flush=True)


def run_layer_passes(torch, args: argparse.Namespace, configs: list[Config], peaks: dict) -> dict[str, list[dict]]:
    """The train and infer rows for every family, config and dtype."""
    rows: dict[str, list[dict]] = {p: [] for p in ("train", "infer") if p in args.passes}
    for family in args.families:
        gates = FAMILIES[family][2]
        for config in configs:
            for dtype in args.dtypes:
                case = build_case(family, config, dtype, args.seed)
                module = torch_twin(torch, case)
                T, N, I, H = config
                for name, builder in (("train", training_pair), ("infer", inference_pair)):
                    if name not in rows:
                        continue
                    row = {"pass": name, "family": family, "dtype": dtype, "T": T, "N": N, "I": I, "H": H}
                    pair = builder(torch, case, module)
                    row.update(verify_and_time(torch, pair, dtype, args, no_grad=name == "infer"))
                    if args.floor and row["verified"]:
                        row.update(time_floor(torch, GemmFloor(family, case.layer, case.x, name == "train"),
                                              pair[1], args, no_grad=name == "infer"))
                    row["flops"] = FLOPS_PER_GATE_UNIT[name] * gates * T * N * H * (I + H)
                    if row["verified"]:
                        for side in ("bptt", "torch"):
                            row[f"{side}_gflops"] = row["flops"] / row[f"{side}_s"] / 1e9
                            row[f"{side}_peak_fraction"] = row[f"{side}_gflops"] / peaks[dtype]["gflops"]
                    rows[name].append(row)
                    _progress(f"{name} {family} {dtype} {T},{N},{I},{H}", row, "ms", 1e3)
    return rows


def run_streaming(torch, args: argparse.Namespace) -> list[dict]:
    rows = []
    for family in args.families:
        for dtype in args.dtypes:
            for size in args.stream_sizes:
                row = {"pass": "stream", "family": family, "dtype": dtype, "N": 1, "I": size, "H": size}
                row.update(verify_and_time(torch, streaming_pair(torch, family, size, dtype, args.seed), dtype, args,
                                           no_grad=True))
                rows.append(row)
                _progress(f"stream {family} {dtype} H={size}", row, "us/step", 1e6)
    return rows


# ---------------------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------------------

def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text}")
    return value


def _number(minimum: float, inclusive: bool) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not (value >= minimum if inclusive else value > minimum):
            raise argparse.ArgumentTypeError(f"expected a number {'>=' if inclusive else '>'} {minimum:g}, got {text}")
        return value
    return parse


def _choices(valid: tuple[str, ...] | dict, allow_none: bool = False) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        if allow_none and text.strip() == "none":
            return []
        items = [item.strip() for item in text.split(",") if item.strip()]
        if not items or any(item not in valid for item in items):
            extra = " or 'none'" if allow_none else ""
            raise argparse.ArgumentTypeError(f"expected a comma-separated list from {list(valid)}{extra}, got {text!r}")
        return items
    return parse


def parse_configs(text: str) -> list[Config]:
    """``"T,N,I,H;T,N,I,H"`` as a list of four-int tuples."""
    configs = []
    for part in text.split(";"):
        part = part.strip()
        if not part:
            continue
        try:
            values = tuple(int(f.strip()) for f in part.split(","))
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected integers T,N,I,H, got {part!r}") from None
        if len(values) != 4 or min(values) < 1:
            raise argparse.ArgumentTypeError(f"expected four positive integers T,N,I,H, got {part!r}")
        configs.append(values)
    if not configs:
        raise argparse.ArgumentTypeError(f"expected at least one T,N,I,H config, got {text!r}")
    return configs


def parse_sizes(text: str) -> list[int]:
    return [_positive_int(item.strip()) for item in text.split(",") if item.strip()]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``bptt bench`` (also used by ``benchmarks/train_step.py`` through :func:`main`)."""
    what = parser.add_argument_group("what to measure")
    what.add_argument("--families", type=_choices(FAMILIES), default=list(FAMILIES),
                      help="comma-separated families (default lstm,gru,rnn)")
    what.add_argument("--dtypes", type=_choices(tuple(TOLERANCE)), default=list(TOLERANCE),
                      help="comma-separated dtypes (default float64,float32)")
    what.add_argument("--configs", type=parse_configs, default=None,
                      help="';'-separated T,N,I,H layer configs (default: the grid "
                           + ";".join(",".join(map(str, c)) for c in GRID) + "; --quick skips the last two)")
    what.add_argument("--passes", type=_choices(PASSES, allow_none=True), default=list(PASSES),
                      help="comma-separated from train,infer,stream, or 'none' (default all three)")
    what.add_argument("--stream-sizes", type=parse_sizes, default=list(STREAM_SIZES),
                      help="hidden sizes H = I of the streaming pass (default 32,128,512)")
    what.add_argument("--floor", action="store_true",
                      help="also time bptt's GEMMs alone (the GEMM floor, bptt.perf.gemm_floor) against torch's step, "
                           "for train and infer")
    what.add_argument("--memory", action="store_true",
                      help="also measure the peak memory of a bptt training step against its cache size")
    how = parser.add_argument_group("timing")
    how.add_argument("--quick", action="store_true",
                     help=f"{QUICK_BLOCKS} blocks instead of {DEFAULT_BLOCKS}, and the default grid without "
                          f"its two biggest configs")
    how.add_argument("--blocks", type=_positive_int, default=None,
                     help=f"timed blocks per implementation (default {DEFAULT_BLOCKS}, {QUICK_BLOCKS} with --quick)")
    how.add_argument("--min-block-ms", type=_number(0, False), default=60.0,
                     help="each timed block repeats the call until it lasts at least this long (default 60)")
    how.add_argument("--pause-ms", type=_number(0, True), default=1e3 * PAUSE_S,
                     help=f"sleep before each timed block (default {1e3 * PAUSE_S:g}, as BENCHMARKING.md says; "
                          f"lower only for smoke tests)")
    how.add_argument("--peak-size", type=_positive_int, default=2048,
                     help="n of the n x n x n NumPy GEMM that measures the roofline peak (default 2048)")
    how.add_argument("--torch-threads", type=_positive_int, default=TORCH_THREADS,
                     help=f"torch.set_num_threads during the run (default {TORCH_THREADS})")
    how.add_argument("--seed", type=int, default=0, help="seed of weights, inputs and upstream gradients (default 0)")
    output = parser.add_argument_group("output")
    output.add_argument("--json", metavar="PATH", default=None, help="also write every row as JSON to PATH")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bptt bench", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """``bptt bench`` as a function: parse ``argv`` and :func:`run`."""
    return run(build_parser().parse_args(argv))


def run(args: argparse.Namespace) -> int:
    """Run the suite the parsed options ask for; 0 when every pair agreed with torch, 1 otherwise, 2 when
    torch is needed and missing."""
    configs = args.configs or list(QUICK_GRID if args.quick else GRID)
    args.blocks = args.blocks or (QUICK_BLOCKS if args.quick else DEFAULT_BLOCKS)
    settings = {"families": args.families, "dtypes": args.dtypes, "configs": configs, "passes": args.passes,
                "stream_sizes": args.stream_sizes, "floor": args.floor, "memory": args.memory, "blocks": args.blocks,
                "min_block_ms": args.min_block_ms, "pause_ms": args.pause_ms, "peak_size": args.peak_size,
                "torch_threads": args.torch_threads, "seed": args.seed}
    shown = {**settings, "configs": ";".join(",".join(map(str, c)) for c in configs)}
    print("bptt bench | " + " | ".join(f"{k.replace('_', '-')} {','.join(map(str, v)) if isinstance(v, list) else v}"
                                       for k, v in shown.items()) + f" | {describe_path()}", flush=True)
    torch = None
    if args.passes:
        try:
            torch = import_torch()
        except ImportError as error:
            print(error, file=sys.stderr)
            return 2
        threads = torch.get_num_threads()
        torch.set_num_threads(args.torch_threads)
    try:
        report = _run(torch, args, configs, settings)
    finally:
        if torch is not None:
            torch.set_num_threads(threads)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
        print(f"wrote {args.json}")
    failed = [r for p in PASSES for r in report.get(p, []) if not r["verified"]]
    if failed:
        print(f"bptt bench: {len(failed)} measurement(s) disagree with torch and were not timed; see 'DISAGREES' "
              f"above.", file=sys.stderr)
        return 1
    return 0


def _run(torch, args: argparse.Namespace, configs: list[Config], settings: dict) -> dict:
    report: dict = {"environment": environment_report(args.torch_threads), "settings": settings}
    started = time.perf_counter()
    if args.passes:
        print(f"\n{args.blocks} blocks per implementation, interleaved bptt/torch, {args.pause_ms:g} ms pause + 1 "
              f"warm-up call before each block, each block >= {args.min_block_ms:g} ms; times are medians over "
              f"blocks; bptt/torch is the median (min-max) of the paired block ratios, '*' where bptt is slower "
              f"(> 1.0); 'other CPU' is the share of the machine other processes used while timing; "
              f"FLOPs = 6 (train) or 2 (infer) x G*T*N*H*(I+H), G = 4, 3, 1 gates; 1 layer; torch under no_grad "
              f"for infer and stream\n", flush=True)
    layer_passes = [p for p in ("train", "infer") if p in args.passes]
    if layer_passes:
        report["peaks"] = {dtype: gemm_peak(dtype, args.peak_size, pause_s=args.pause_ms / 1e3)
                           for dtype in args.dtypes}
        for dtype, peak in report["peaks"].items():
            print(f"GEMM peak {dtype}: {peak['gflops']:.1f} GFLOP/s (NumPy, {peak['size']}^3, median of "
                  f"{peak['runs']}, runs {min(peak['run_gflops']):.1f}-{max(peak['run_gflops']):.1f}, other CPU "
                  f"{100 * peak['foreign_cpu_fraction']:.0f}%); '% peak' = achieved GFLOP/s / this", flush=True)
        report.update(run_layer_passes(torch, args, configs, report["peaks"]))
    if "stream" in args.passes:
        report["stream"] = run_streaming(torch, args)
    if args.memory:
        report["memory"] = [training_memory(family, config, dtype, args.seed)
                            for family in args.families for config in configs for dtype in args.dtypes]
    print()
    layer_rows = [r for p in layer_passes for r in report[p]]
    if layer_rows:
        print_layer_table(layer_rows)
        print()
    if "stream" in report:
        print("streaming inference, N = 1, one step per call, state carried (bptt Stream vs torch cell)")
        print_stream_table(report["stream"])
        print()
    timed = layer_rows + report.get("stream", [])
    print_load_warning(timed)
    if "memory" in report:
        print("memory of one bptt training step: tracemalloc peak during zero_grad + forward + backward, over "
              "the bytes of the arrays the cache holds")
        print_memory_table(report["memory"])
        print()
    print(f"total {time.perf_counter() - started:.1f} s")
    return report
