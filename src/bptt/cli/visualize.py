"""``bptt visualize CHECKPOINT``: a text coloured by the activations of a character model's units, as an HTML
page and a PNG (:mod:`bptt.train.visualize`)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

from bptt.cli._arguments import positive_int
from bptt.cli._character_model import character_model
from bptt.interop.io import atomic_write_bytes
from bptt.train import visualize as vis
from bptt.train.experiment import make_task


def add_parser(verbs: argparse._SubParsersAction) -> None:
    """The ``visualize`` verb and its options."""
    visualize = verbs.add_parser("visualize", help="colour a text by the activations of a character model's units "
                                                   "(HTML page and PNG)",
                                 description="Read a text through a character model saved by bptt train chars and "
                                             "colour each character by a unit's activation after it (blue -1, "
                                             "white 0, red +1; a cell unit divided by its largest |c|), by default "
                                             "for the units with the most slow structure.")
    visualize.add_argument("checkpoint", type=Path, help="the model.safetensors of a chars run")
    text = visualize.add_argument_group("text")
    text.add_argument("--text", type=Path, default=None, metavar="FILE",
                      help="a UTF-8 text file to read (default: the run's own test text from its first line start, "
                           "rebuilt from the checkpoint's task options)")
    text.add_argument("--length", type=positive_int, default=2000, help="characters read, from the start (2000)")
    units = visualize.add_argument_group("units")
    units.add_argument("--units", nargs="+", default=None, metavar="UNIT",
                       help="units to show, each LAYER:KIND:INDEX (KIND h: hidden state, c: an LSTM's cell "
                            "state), e.g. 0:c:17, or a plain INDEX: layer 0's cell unit (LSTM) or hidden unit "
                            "(default: the units with the most structure)")
    units.add_argument("--top", type=positive_int, default=vis.DEFAULT_UNITS,
                       help=f"how many units to choose without --units ({vis.DEFAULT_UNITS})")
    output = visualize.add_argument_group("output")
    output.add_argument("--out", type=Path, default=None,
                        help="the HTML page to write (default: cells.html beside the checkpoint); the PNG goes "
                             "beside it, with the suffix .png")
    output.add_argument("--json", action="store_true", help="print a JSON summary as the last line of stdout")
    visualize.set_defaults(command=command)


LINE_START_SEARCH = 200
"""``bptt visualize`` without ``--text`` starts the test text just after its first newline, when that is within
this many characters of the start: a picture that begins mid-line reads worse."""


def _visualized_text(args: argparse.Namespace, metadata: dict) -> tuple[str, str]:
    """The first ``--length`` characters of ``--text``, or of the run's test text from its first line start (see
    :data:`LINE_START_SEARCH`); and where they come from."""
    from bptt.train.tasks.chars import read_text

    if args.text is not None:
        try:
            return read_text(args.text)[:args.length], repr(os.fspath(args.text))
        except ValueError as error:
            raise ValueError(f"--text: {str(error).removeprefix('chars: ')}") from error
    if metadata.get("task") != "chars":
        raise ValueError(f"expected a checkpoint of bptt train chars to rebuild its test text, got one of task "
                         f"{metadata.get('task')!r}. Pass the text to read with --text FILE.")
    options = dict(metadata.get("task_options") or {})
    try:
        task = make_task("chars", metadata.get("seed", 0), **options)
    except ValueError as error:
        raise ValueError(f"could not rebuild the run's test text ({error}) Pass the text to read with --text "
                         f"FILE.") from error
    source = f"the test text of {options['text']!r}" if options.get("text") else "the test text of the corpus"
    test = task.splits["test"]
    newlines = np.flatnonzero(test[:LINE_START_SEARCH] == task.vocabulary.find("\n"))
    start = int(newlines[0]) + 1 if len(newlines) and newlines[0] + 1 < len(test) else 0
    return task.decode(test[start:start + args.length]), source


def command(args: argparse.Namespace) -> int:
    """Write the HTML page and the PNG of :mod:`bptt.train.visualize` for a character model; exit 2 when the
    checkpoint is not one, the text cannot be read or has characters outside its vocabulary, or a unit is out
    of range."""
    try:
        model, vocabulary, metadata = character_model(args.checkpoint)
        text, source = _visualized_text(args, metadata)
        unknown = sorted(set(text) - set(vocabulary))
        if unknown or not text:
            raise ValueError(f"expected a text of characters in the model's vocabulary, got {source}"
                             + (f", whose {''.join(unknown)!r} it never saw." if unknown else ", which is empty."))
        table = {c: k for k, c in enumerate(vocabulary)}
        config = model.config()
        out = args.out or args.checkpoint.parent / "cells.html"
        choice = " ".join(args.units) if args.units else f"the {args.top} with the most structure"
        print(f"bptt visualize | {args.checkpoint} | model {config['cell']} | hidden-size {config['hidden_size']} | "
              f"num-layers {config['num_layers']} | text {source}, {len(text)} characters | units {choice} | "
              f"out {out}", flush=True)
        states = vis.activations(model, np.array([table[c] for c in text]))
        if args.units:
            try:
                units = [vis.parse_unit(spec, states) for spec in args.units]
            except ValueError as error:
                raise ValueError(f"--units: {str(error).removeprefix('parse_unit: ')}") from error
            values = vis.display_values(states, units)
            chosen = list(zip(units, map(float, vis.structure_scores(values.T)), strict=True))
        else:
            chosen = vis.choose_units(states, args.top)
    except ValueError as error:
        print(f"bptt visualize: {error}", file=sys.stderr)
        return 2
    units = [unit for unit, _ in chosen]
    values = vis.display_values(states, units)
    labels = [f"{unit} | {unit.describe()} | structure {score:.3f}" for unit, score in chosen]
    note = (f"{len(text)} characters of {source} read by {args.checkpoint} ({config['cell']}, "
            f"{config['num_layers']} x {config['hidden_size']}), the state carried from the first; each "
            f"character coloured by the unit's value after reading it; a cell unit divided by its largest |c|.")
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out, vis.html(text, values, labels, note=note).encode("utf-8"))
    png = vis.save_png(out.with_suffix(".png"), text, values, labels)
    for unit, score in chosen:
        print(f"unit {str(unit):>9} | structure {score:.3f} | {unit.describe()}")
    print(f"wrote {out} and {png}")
    if args.json:
        print(json.dumps({"html": str(out), "png": str(png), "characters": len(text), "text": source,
                          "units": [{"unit": str(unit), "score": score} for unit, score in chosen]}))
    return 0
