"""Timing two implementations fairly on a small shared machine, as ``BENCHMARKING.md`` prescribes.

- **One process, interleaved, with a pause.** :func:`compare` times bptt and its peer block by block,
  A B A B, each block preceded by a pause (~0.2 s) and one untimed warm-up call, because OpenBLAS's idle
  workers and torch's OpenMP threads busy-wait and steal cores from each other. Each block repeats the call
  until it lasts at least ``min_block_s`` (the number of repeats is calibrated once per side).
- **Medians and paired ratios.** Absolute times drift 10-30% between runs; the ratio of adjacent blocks
  shares that drift, so the headline is the median of the paired ratios ``bptt_k / torch_k``.
- **Other processes.** :class:`ForeignLoad` records the CPU time other processes took while we timed;
  a table is flagged when it exceeds :data:`FOREIGN_WARN` of the machine.
- **The roofline.** :func:`gemm_peak` measures the GEMM rate NumPy reaches on a large square product.
- **The environment.** :func:`environment_report` prints what decides the speed: library versions, BLAS
  library and threads (threadpoolctl), the OpenBLAS and glibc tuning variables.

Nothing here imports torch at import time; :func:`import_torch` does it, with an actionable message.
"""

from __future__ import annotations

import gc
import os
import platform
import statistics
import time
from collections.abc import Callable

import numpy as np

from bptt.layers.kernels import describe_path

PAUSE_S = 0.2            # seconds of sleep before every timed block (and before each calibration)
TORCH_THREADS = 2        # torch.set_num_threads, as BENCHMARKING.md says for these 2-core machines
FOREIGN_WARN = 0.05      # flag results when other processes used more than this share of the CPUs
TORCH_MISSING = "bptt bench compares with PyTorch: pip install torch==2.13.0"


def import_torch():
    """Import torch on demand (bptt itself never needs it); ImportError with the install command if absent."""
    try:
        import torch
    except ImportError as error:
        raise ImportError(TORCH_MISSING) from error
    return torch


class ForeignLoad:
    """CPU time other processes took while we timed: /proc/stat busy time minus this process's own.

    Use as a context manager around each timed stretch; :attr:`fraction` is the foreign CPU time as a share
    of the machine's capacity over all those stretches (NaN where /proc/stat does not exist). A 2-core
    machine shared with a test run gives meaningless numbers (busy-waiting thread pools fight over the
    cores), so every result records this."""

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


def timed_block(step: Callable[[], object], repeats: int, monitor: ForeignLoad, pause_s: float = PAUSE_S) -> float:
    """Pause, one warm-up call, then ``repeats`` calls with the garbage collector off; seconds per call."""
    gc.collect()
    time.sleep(pause_s)
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


def compare(ours: Callable[[], object], theirs: Callable[[], object], *, blocks: int, min_block_s: float,
            pause_s: float = PAUSE_S) -> dict:
    """Time ``ours`` (bptt) against ``theirs`` (torch) in interleaved blocks, A B A B.

    Returns seconds per call (medians over blocks), the paired block ratios ``ours_k / theirs_k`` (median,
    min, max), each block's time, the calibrated repeats and the foreign CPU share during timed blocks."""
    steps = {"bptt": ours, "torch": theirs}
    repeats = {}
    for name, step in steps.items():            # calibrated interleaved too, each after a pause
        time.sleep(pause_s)
        repeats[name] = repeats_for(step, min_block_s)
    times: dict[str, list[float]] = {name: [] for name in steps}
    monitor = ForeignLoad()
    for _ in range(blocks):                     # A B A B ...
        for name, step in steps.items():
            times[name].append(timed_block(step, repeats[name], monitor, pause_s))
    ratios = [b / t for b, t in zip(times["bptt"], times["torch"], strict=True)]
    bptt_s, torch_s = statistics.median(times["bptt"]), statistics.median(times["torch"])
    return {"bptt_s": bptt_s, "torch_s": torch_s, "ratio": statistics.median(ratios), "ratio_min": min(ratios),
            "ratio_max": max(ratios), "ratio_of_medians": bptt_s / torch_s, "bptt_block_s": times["bptt"],
            "torch_block_s": times["torch"], "repeats": repeats, "blocks": blocks,
            "foreign_cpu_fraction": monitor.fraction}


def gemm_peak(dtype: object, size: int = 2048, runs: int = 5, pause_s: float = PAUSE_S) -> dict:
    """The GEMM rate NumPy reaches here: median GFLOP/s of ``runs`` products of two ``size x size`` matrices
    (``2 size^3`` FLOPs each) after one warm-up product. The denominator of the roofline column."""
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((size, size)).astype(dtype) for _ in range(2))
    out = np.empty_like(a)
    monitor = ForeignLoad()
    time.sleep(pause_s)
    np.matmul(a, b, out=out)
    seconds = []
    with monitor:
        for _ in range(runs):
            start = time.perf_counter()
            np.matmul(a, b, out=out)
            seconds.append(time.perf_counter() - start)
    flops = 2 * size**3
    return {"dtype": np.dtype(dtype).name, "size": size, "runs": runs,
            "gflops": flops / statistics.median(seconds) / 1e9, "run_gflops": [flops / s / 1e9 for s in seconds],
            "foreign_cpu_fraction": monitor.fraction}


# ---------------------------------------------------------------------------------------------------------
# The environment
# ---------------------------------------------------------------------------------------------------------

def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _thread_pools() -> list[dict] | None:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    return threadpool_info()


def environment_report(torch_threads: int = TORCH_THREADS) -> dict:
    """Print (and return, for a JSON report) what decides the speed: libraries, thread pools, tuning
    variables. Includes torch when it is importable; ``torch_threads`` is the setting BENCHMARKING.md asks
    for, printed beside the one in effect."""
    from bptt import __version__

    try:
        torch = import_torch()
    except ImportError:
        torch = None
    pools = _thread_pools()
    names = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "GLIBC_TUNABLES", "OMP_NUM_THREADS",
             "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
    env_vars = {name: os.environ.get(name) for name in names}
    torch_version = torch.__version__ if torch else None
    print(f"python {platform.python_version()}, numpy {np.__version__}, torch {torch_version or 'not installed'}, "
          f"bptt {__version__}, {describe_path()}")
    print(f"cpu: {cpu_model()}, {os.cpu_count()} logical cores")
    if torch:
        print(f"torch threads: {torch.get_num_threads()} (torch.set_num_threads; asked for {torch_threads}), "
              f"oneDNN available: {torch.backends.mkldnn.is_available()}")
    if pools is None:
        print("thread pools: unknown (pip install threadpoolctl to list them)")
    else:
        print("thread pools (threadpoolctl):")
        for pool in pools:
            extra = f", {pool['architecture']}" if pool.get("architecture") else ""
            print(f"  {pool['user_api']:7s} {pool['internal_api']:9s} {pool.get('version') or '?':10s} "
                  f"threads={pool['num_threads']}{extra}  {os.path.basename(pool['filepath'])}")
        numpy_blas = [p for p in pools if p["user_api"] == "blas" and "numpy" in p["filepath"]]
        for pool in numpy_blas:
            print(f"NumPy BLAS: {pool['internal_api']} {pool.get('version')}, {pool['num_threads']} threads"
                  + (f", {pool['architecture']} kernel" if pool.get("architecture") else ""))
        if not numpy_blas:
            print("NumPy BLAS: not identified among the pools above")
    for name in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        if env_vars[name] is not None:
            print(f"{name}={env_vars[name]}  WARNING: may select a slower OpenBLAS kernel; compare with "
                  f"`env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE ...`")
        else:
            print(f"{name}: unset")
    print(f"GLIBC_TUNABLES={env_vars['GLIBC_TUNABLES']}" if env_vars["GLIBC_TUNABLES"] is not None
          else "GLIBC_TUNABLES: unset (glibc malloc defaults)")
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        if env_vars[name] is not None:
            print(f"{name}={env_vars[name]}")
    keys = ("user_api", "internal_api", "version", "num_threads", "architecture", "filepath")
    return {"python": platform.python_version(), "numpy": np.__version__, "torch": torch_version,
            "bptt": __version__, "cpu": cpu_model(), "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads() if torch else None,
            "threadpools": None if pools is None else [{k: p.get(k) for k in keys} for p in pools],
            "env": env_vars, "kernels": describe_path()}
