"""What decides the speed of a benchmark here, printed and returned for its JSON: library versions, the
processor, thread pools and the tuning variables of BENCHMARKING.md."""

from __future__ import annotations

import os
import platform

import numpy as np
import torch
from threadpoolctl import threadpool_info

import bptt

TORCH_THREADS = 2


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def environment_report() -> dict:
    """Print (and return) what decides the speed: libraries, thread pools, tuning variables."""
    pools = threadpool_info()
    names = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "GLIBC_TUNABLES", "OMP_NUM_THREADS",
             "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
    env_vars = {name: os.environ.get(name) for name in names}
    print(f"python {platform.python_version()}, numpy {np.__version__}, torch {torch.__version__}, "
          f"bptt {getattr(bptt, '__version__', '?')}")
    print(f"cpu: {cpu_model()}, {os.cpu_count()} logical cores")
    print(f"torch threads: {torch.get_num_threads()} (torch.set_num_threads; BENCHMARKING.md: {TORCH_THREADS}), "
          f"oneDNN available: {torch.backends.mkldnn.is_available()}")
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
    return {"python": platform.python_version(), "numpy": np.__version__, "torch": torch.__version__,
            "bptt": getattr(bptt, "__version__", None), "cpu": cpu_model(), "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "threadpools": [{k: p.get(k) for k in ("user_api", "internal_api", "version", "num_threads",
                                                    "architecture", "filepath")} for p in pools],
            "env": env_vars}
