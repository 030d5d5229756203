"""Export a model of ``bptt train addition`` or ``bptt train dates`` to ONNX, decode its whole test set greedily in
onnxruntime, and compare with bptt's own greedy output, problem by problem.

:func:`bptt.interop.onnx_seq2seq.export_seq2seq_onnx` writes two graphs, the encoder and one decoder step;
:func:`bptt.interop.onnx_seq2seq.greedy_onnxruntime` loops over them. The shell writes the same files with
``bptt export CHECKPOINT OUT.onnx``.

    bptt train dates --out runs/dates
    python examples/translate_onnx.py runs/dates/model.safetensors --out /tmp/onnx

Without a checkpoint it first trains a small model of the dates task for ``--steps`` steps (a few hundred make
a model that is mostly right; its wrong answers must agree too). Prints how many test outputs agree token for
token, the exact-match accuracy of each, and the first disagreements; exits 1 when one output differs. Needs
``onnx`` and ``onnxruntime``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import bptt
from bptt.interop.io import load_arrays
from bptt.interop.onnx_seq2seq import export_seq2seq_onnx, greedy_onnxruntime
from bptt.train.experiment import make_task, resolve, run
from bptt.train.tasks._seq2seq import BOS, EOS


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", type=Path, nargs="?", default=None,
                        help="the model.safetensors of an addition or dates run (default: train a small one)")
    parser.add_argument("--steps", type=int, default=300, help="training steps without a checkpoint (300)")
    parser.add_argument("--out", type=Path, default=None, help="folder for the .onnx files (default: a temporary one)")
    args = parser.parse_args()
    if args.checkpoint is None:
        result = run(resolve("dates", 0, hidden_size=32, steps=args.steps, eval_every=args.steps))
        model, task = result.model.eval(), result.task
    else:
        model = bptt.load(args.checkpoint).eval()
        metadata = load_arrays(args.checkpoint)[1]
        task = make_task(metadata["task"], metadata["seed"], **metadata.get("task_options", {}))
    pairs = task.problems["test"]
    source, lengths = task.encode_sources([s for s, _ in pairs])
    out = args.out or Path(tempfile.mkdtemp())
    encoder, step = export_seq2seq_onnx(model, out / f"{task.name}.onnx")
    start = time.perf_counter()
    ours = [d.tokens for d in model.decode(source, lengths, bos=BOS, eos=EOS, max_length=task.max_target_length)]
    seconds_bptt = time.perf_counter() - start
    start = time.perf_counter()
    theirs = greedy_onnxruntime(encoder, step, source, lengths, bos=BOS, eos=EOS, max_length=task.max_target_length)
    seconds_onnx = time.perf_counter() - start
    agree = sum(a == b for a, b in zip(ours, theirs, strict=True))
    right = {name: sum(task.decode_target(tokens) == target for tokens, (_, target) in zip(outputs, pairs, strict=True))
             for name, outputs in (("bptt", ours), ("onnxruntime", theirs))}
    print(f"{task.name} ({model.cell}, {model.attention_score}, H {model.hidden_size}, {model.dtype}): "
          f"{agree} of {len(pairs)} test outputs agree token for token; exact match bptt {right['bptt']}, "
          f"onnxruntime {right['onnxruntime']}; greedy over the test set {seconds_bptt:.2f} s in bptt, "
          f"{seconds_onnx:.2f} s in onnxruntime; graphs {encoder}, {step}")
    for (source_text, _), a, b in [(p, a, b) for p, a, b in zip(pairs, ours, theirs, strict=True) if a != b][:5]:
        print(f"  {source_text}: bptt {task.decode_target(a)!r}, onnxruntime {task.decode_target(b)!r}")
    return 0 if agree == len(pairs) else 1


if __name__ == "__main__":
    sys.exit(main())
