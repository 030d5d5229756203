"""``bptt bench``: time training, inference and streaming steps against PyTorch, and with ``--memory`` the peak
memory of a training step; the measuring lives in :mod:`bptt.perf.bench`."""

from __future__ import annotations

import argparse

from bptt.perf import bench


def add_parser(verbs: argparse._SubParsersAction) -> None:
    """The ``bench`` verb and its options."""
    timing = verbs.add_parser("bench", help="time training, inference and streaming steps against PyTorch "
                                            "(needs torch); --memory adds the peak memory of a training step",
                              description=bench.__doc__.split("\n\n")[0])
    bench.add_arguments(timing)
    timing.set_defaults(command=bench.run)
