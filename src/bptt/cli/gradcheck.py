"""``bptt gradcheck lstm|gru|rnn``: check a random layer's hand-derived gradients against central differences
in float64 (:mod:`bptt.check.layercheck`)."""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from bptt.check.layercheck import check_layer
from bptt.cli._arguments import positive_int
from bptt.layers.gru import GRU
from bptt.layers.lstm import LSTM
from bptt.layers.rnn import RNN

LAYERS = {"lstm": LSTM, "gru": GRU, "rnn": RNN}

def add_parser(verbs: argparse._SubParsersAction) -> None:
    """The ``gradcheck`` verb and its options."""
    check = verbs.add_parser("gradcheck", help="check a layer's hand-derived gradients against central differences")
    check.add_argument("layer", choices=sorted(LAYERS), help="the layer family to check")
    shape = check.add_argument_group("model")
    shape.add_argument("--input-size", type=positive_int, default=3, help="I (default 3)")
    shape.add_argument("--hidden-size", type=positive_int, default=4, help="H (default 4)")
    shape.add_argument("--num-layers", type=positive_int, default=1, help="stacked layers (default 1)")
    shape.add_argument("--seq-len", type=positive_int, default=5, help="T, time steps (default 5)")
    shape.add_argument("--batch", type=positive_int, default=2, help="N, sequences (default 2)")
    shape.add_argument("--bidirectional", action="store_true", help="add the reverse direction")
    shape.add_argument("--proj-size", type=int, default=0, help="LSTM only: projection size P (default 0, none)")
    shape.add_argument("--nonlinearity", choices=["tanh", "relu"], default="tanh", help="RNN only (default tanh)")
    how = check.add_argument_group("check")
    how.add_argument("--mode", choices=["full", "sample", "fast"], default="full",
                     help="every entry, random samples per tensor, or one directional derivative (default full)")
    how.add_argument("--samples", type=positive_int, default=None, help="entries per tensor in sample mode")
    how.add_argument("--seed", type=int, default=0, help="seed of weights, inputs and upstream gradients (default 0)")
    check.add_argument("--json", action="store_true", help="print the report as JSON on the last line of stdout")
    check.set_defaults(command=command)


def command(args: argparse.Namespace) -> int:
    """Check a random layer of the family in float64; exit 1 when the check fails."""
    rng = np.random.default_rng(args.seed)
    options = {"num_layers": args.num_layers, "bidirectional": args.bidirectional}
    if args.layer == "lstm":
        options["proj_size"] = args.proj_size
    elif args.proj_size:
        print(f"bptt gradcheck: --proj-size is an LSTM option, not a {args.layer.upper()} one.", file=sys.stderr)
        return 2
    if args.layer == "rnn":
        options["nonlinearity"] = args.nonlinearity
    try:
        layer = LAYERS[args.layer](args.input_size, args.hidden_size, **options, rng=rng)
    except ValueError as error:
        print(f"bptt gradcheck: {error}", file=sys.stderr)
        return 2
    x = rng.standard_normal((args.seq_len, args.batch, args.input_size))
    print(f"bptt gradcheck {args.layer} | input-size {args.input_size} | hidden-size {args.hidden_size} | "
          f"num-layers {args.num_layers} | bidirectional {args.bidirectional} | seq-len {args.seq_len} | "
          f"batch {args.batch} | mode {args.mode} | seed {args.seed}")
    report = check_layer(layer, x, mode=args.mode, samples=args.samples, seed=args.seed)
    print(report)
    if args.json:
        print(json.dumps(report.to_dict()))
    return 0 if report.ok else 1
