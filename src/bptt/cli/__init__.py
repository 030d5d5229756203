"""The ``bptt`` command line, one module a verb: ``bptt train TASK``, ``bptt sweep TASK``, ``bptt gradcheck
lstm|gru|rnn``, ``bptt gradflow`` (how far back a gradient reaches), ``bptt bench`` (speed and memory against
PyTorch), ``bptt sample`` and ``bptt visualize`` (a character model's text and units), ``bptt predict`` (a
forecaster on a CSV file), ``bptt translate`` (a sequence-to-sequence model on one input) and ``bptt export``
(ONNX). Each module has ``add_parser(verbs)``, which adds its verb and sets the function that runs it."""

from __future__ import annotations

import argparse

from bptt import __version__
from bptt.cli import bench, export, gradcheck, gradflow, predict, sample, sweep, train, translate, visualize
from bptt.layers.kernels import describe_path

VERBS = (train, sweep, gradcheck, gradflow, bench, sample, visualize, predict, translate, export)
"""The modules of the verbs, in the order ``bptt --help`` lists them."""


def build_parser() -> argparse.ArgumentParser:
    """The parser of every verb."""
    parser = argparse.ArgumentParser(prog="bptt", description="Recurrent networks in NumPy with hand-derived BPTT.")
    parser.add_argument("--version", action="version", version=f"bptt {__version__} | {describe_path()}")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    for verb in VERBS:
        verb.add_parser(verbs)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``bptt`` and ``python -m bptt``; returns the exit code."""
    args = build_parser().parse_args(argv)
    return args.command(args)
