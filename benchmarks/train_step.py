"""Time one training step of a recurrent layer (forward + full BPTT backward, weight gradients included):
bptt's LSTM, GRU and RNN against torch.nn's, with identical weights.

A thin wrapper: the suite and its timing rules live in the package (:mod:`bptt.perf.bench`, :mod:`bptt.perf.timing`);
this is ``bptt bench --passes train`` with this script's historical default configs. Any option of
``bptt bench`` may follow and overrides these defaults (the last occurrence of an option wins).

Usage::

    python benchmarks/train_step.py                       # LSTM, GRU, RNN; 50,1,1,32 and 100,32,32,128
    python benchmarks/train_step.py --families gru,rnn --configs "100,32,32,128"
    python benchmarks/train_step.py --quick               # fewer blocks
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/train_step.py   # see BENCHMARKING.md
"""

import sys

from bptt.perf.bench import main

DEFAULTS = ["--passes", "train", "--configs", "50,1,1,32;100,32,32,128"]

if __name__ == "__main__":
    raise SystemExit(main([*DEFAULTS, *sys.argv[1:]]))
