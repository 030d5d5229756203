"""``bptt translate CHECKPOINT TEXT``: the output of a sequence-to-sequence model saved by ``bptt train addition``
or ``bptt train dates`` for one input, greedy or by beam search, and with ``--attention`` its attention map."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from bptt.cli._arguments import positive_int
from bptt.interop.io import load_arrays
from bptt.interop.serialization import load
from bptt.train.experiment import make_task


def add_parser(verbs: argparse._SubParsersAction) -> None:
    """The ``translate`` verb and its options."""
    translate = verbs.add_parser("translate", help="the output of a model saved by bptt train addition or dates for "
                                                   "one input, with its attention map",
                                 description="Read TEXT with the Seq2Seq model of a checkpoint of bptt train "
                                             "addition or dates (its alphabets rebuilt from the checkpoint's task) "
                                             "and print the output: greedy, or the best of a beam search.")
    translate.add_argument("checkpoint", type=Path, help="the model.safetensors of an addition or dates run")
    translate.add_argument("text", help='the input, e.g. "535+61" or "March 3, 1987"')
    translate.add_argument("--beam", type=positive_int, default=1, metavar="K",
                           help="beam width; 1 is greedy decoding (default 1)")
    translate.add_argument("--attention", type=Path, default=None, metavar="FILE.png",
                           help="also draw the attention weights, output down and input across, into this PNG")
    translate.add_argument("--json", action="store_true", help="print a JSON summary as the last line of stdout")
    translate.set_defaults(command=command)


def command(args: argparse.Namespace) -> int:
    """Print the output for ``args.text``; exit 2 when the checkpoint is not a sequence-to-sequence run or the
    text has characters its task never reads."""
    from bptt.layers.seq2seq import Seq2Seq

    try:
        model = load(args.checkpoint)
        metadata = load_arrays(args.checkpoint)[1]
        if not isinstance(model, Seq2Seq) or metadata.get("task") not in ("addition", "dates"):
            raise ValueError(f"expected a Seq2Seq saved by bptt train addition or dates, got a "
                             f"{type(model).__name__} of task {metadata.get('task')!r} in "
                             f"{os.fspath(args.checkpoint)!r}.")
        model.eval()
        task = make_task(metadata["task"], metadata.get("seed", 0), **(metadata.get("task_options") or {}))
        source = task.normalized_source(args.text)
        if not source:
            raise ValueError(f"expected a text of the characters {task.source_alphabet!r}, got an empty one.")
        output = task.translate(model, [source], beam=args.beam)[0]
    except ValueError as error:
        print(f"bptt translate: {error}", file=sys.stderr)
        return 2
    text = task.decode_target(output.tokens)
    print(f"{source} -> {text}")
    summary = {"source": source, "output": text, "beam": args.beam, "score": output.score}
    if args.attention is not None:
        from bptt.train.figures import save_attention_figure

        args.attention.parent.mkdir(parents=True, exist_ok=True)
        summary["attention"] = str(save_attention_figure(args.attention, task, [source], [output],
                                                         title=f"{task.name}: where the decoder looked"))
        print(f"wrote {args.attention}")
    if args.json:
        print(json.dumps(summary))
    return 0
