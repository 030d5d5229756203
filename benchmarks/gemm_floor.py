"""How much of torch's time bptt's matrix products alone take: the GEMM floor of each grid cell with N >= 16.

A thin wrapper: this is ``bptt bench --floor --passes train,infer`` over the grid's configs with N >= 16
(:mod:`bptt.perf.gemm_floor` says what the floor is). Any option of ``bptt bench`` may follow and overrides these
defaults (the last occurrence of an option wins).

Usage::

    python benchmarks/gemm_floor.py
    python benchmarks/gemm_floor.py --families lstm --dtypes float32 --configs "100,32,32,128" --blocks 5
"""

import sys

from bptt.perf.bench import main

DEFAULTS = ["--floor", "--passes", "train,infer", "--blocks", "5",
            "--configs", "100,32,1,64;100,32,32,128;100,32,128,256;100,64,256,512;50,16,512,1024"]

if __name__ == "__main__":
    raise SystemExit(main([*DEFAULTS, *sys.argv[1:]]))
