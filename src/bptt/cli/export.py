"""``bptt export CHECKPOINT OUT``: a module saved by :func:`bptt.save` as an ONNX model
(:mod:`bptt.interop.onnx_export`); a :class:`bptt.Seq2Seq` as two, its encoder and one decoder step
(:mod:`bptt.interop.onnx_seq2seq`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bptt.cli._arguments import positive_int
from bptt.interop.onnx_export import DEFAULT_OPSET, describe_inputs, export_onnx
from bptt.interop.onnx_seq2seq import describe_seq2seq_graphs, export_seq2seq_onnx
from bptt.interop.serialization import load
from bptt.layers.seq2seq import Seq2Seq


def add_parser(verbs: argparse._SubParsersAction) -> None:
    """The ``export`` verb and its options."""
    export = verbs.add_parser("export", help="write a checkpoint saved by bptt.save as an ONNX model (needs onnx)")
    export.add_argument("checkpoint", type=Path, help="the .safetensors file written by bptt.save")
    export.add_argument("out", type=Path, help="the .onnx file to write; for a Seq2Seq, NAME.onnx stands for "
                                               "NAME.encoder.onnx and NAME.decoder_step.onnx")
    export.add_argument("--opset", type=positive_int, default=DEFAULT_OPSET,
                        help=f"ONNX opset to target (default {DEFAULT_OPSET})")
    export.set_defaults(command=command)


def command(args: argparse.Namespace) -> int:
    """Rebuild the module saved at ``args.checkpoint`` and write it as ONNX; exit 2 when the file cannot be read
    or the module has no ONNX form (an LSTM with a projection), or onnx is missing."""
    try:
        module = load(args.checkpoint)
        if isinstance(module, Seq2Seq):
            paths = export_seq2seq_onnx(module, args.out, opset=args.opset)
            inputs = describe_seq2seq_graphs(module).replace("\n", "; ")
        else:
            paths = (export_onnx(module, args.out, opset=args.opset),)
            inputs = describe_inputs(module, opset=args.opset)
    except (ImportError, TypeError, ValueError) as error:
        print(f"bptt export: {error}", file=sys.stderr)
        return 2
    print(f"bptt export | wrote {' and '.join(map(str, paths))}: the {type(module).__name__} of {args.checkpoint} "
          f"as ONNX opset {args.opset}; {inputs}")
    return 0
