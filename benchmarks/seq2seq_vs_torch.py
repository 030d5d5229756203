"""A Seq2Seq training step against its torch twin on the same batches: forward, masked cross-entropy and
backward, bptt's hand-derived pass against torch's autograd, float32 and float64.

The model is the addition task's default (LSTM 128, embedding 32, general attention) unless told otherwise,
the batch one of the task's (64 problems). Both take the same weights (``to_torch``) and the same batch; the
step is timed without the optimizer (the same Adam on both sides is not what differs). The timing follows
../shared/BENCHMARKING.md: one process, bptt and torch interleaved block by block (A B A B), a pause and a
warm-up call before each block, torch on 2 threads, medians of the blocks and their ratio.

    python benchmarks/seq2seq_vs_torch.py [--hidden-size 128] [--batch 64] [--cell lstm] [--attention general]
        [--blocks 7] [--reps 10]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch
from threadpoolctl import threadpool_info

from bptt import Seq2Seq, to_torch
from bptt.train.losses import cross_entropy
from bptt.train.tasks.addition import AdditionTask


def block(step, reps: int) -> float:
    """Seconds per call of ``step``: a pause, one warm-up call, then ``reps`` timed calls."""
    time.sleep(0.2)
    step()
    start = time.perf_counter()
    for _ in range(reps):
        step()
    return (time.perf_counter() - start) / reps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hidden-size", type=int, default=128)
    parser.add_argument("--embedding-dim", type=int, default=32)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--cell", default="lstm")
    parser.add_argument("--attention", default="general")
    parser.add_argument("--blocks", type=int, default=7)
    parser.add_argument("--reps", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(2)
    blas = [(info["internal_api"], info["num_threads"]) for info in threadpool_info()]
    print(f"torch {torch.__version__} on {torch.get_num_threads()} threads; NumPy BLAS {blas}; "
          f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')}")
    task = AdditionTask()
    batch, target_out = task.batch(np.random.default_rng(0), args.batch)
    print(f"batch: source {batch.source.shape}, target {batch.target_in.shape}; H {args.hidden_size}, "
          f"E {args.embedding_dim}, {args.cell}, {args.attention}")
    for dtype in (np.float32, np.float64):
        median = compare(dtype, task, batch, target_out, args)
        print(f"{np.dtype(dtype).name}: bptt {1e3 * median['bptt']:.2f} ms, torch {1e3 * median['torch']:.2f} ms "
              f"a step; bptt / torch {median['bptt'] / median['torch']:.2f}")


def compare(dtype: type, task: AdditionTask, batch, target_out: np.ndarray, args) -> dict[str, float]:
    """Median seconds of a training step (forward, loss, backward), bptt and its torch twin, interleaved."""
    model = Seq2Seq(task.input_size, task.output_size, args.embedding_dim, args.hidden_size, cell=args.cell,
                    attention=args.attention, dtype=dtype, rng=0).eval()
    twin = to_torch(model)
    source, target_in = torch.from_numpy(batch.source), torch.from_numpy(batch.target_in)
    target = torch.from_numpy(target_out).reshape(-1)

    def ours():
        _, dlogits = cross_entropy(model(*batch), target_out, ignore_index=0)
        model.zero_grad()
        model.backward(dlogits)

    def theirs():
        twin.zero_grad()
        logits = twin(source, batch.lengths, target_in)
        torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), target, ignore_index=0).backward()

    times = {"bptt": [], "torch": []}
    for _ in range(args.blocks):
        times["bptt"].append(block(ours, args.reps))
        times["torch"].append(block(theirs, args.reps))
    return {name: statistics.median(values) for name, values in times.items()}


if __name__ == "__main__":
    main()
