"""What several commands share: argument types, how a metric is printed, and the lock of an output folder."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from bptt.train.runlock import FolderInUse, RunLock


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text}")
    return value


def shown(value: object, digits: int) -> str:
    """A metric as the command line prints it: a float to ``digits`` significant digits, anything else as is
    (an integer count, a name such as ``ets_spec``, None)."""
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def holding_lock(verb: str, out: Path, work: Callable[[], int]) -> int:
    """``work()`` while this process holds the lock of the folder ``out`` (made if missing): one run per folder.
    A folder a live run holds is refused (exit 2, its PID named); a dead run's lock is taken over, saying so."""
    out.mkdir(parents=True, exist_ok=True)
    try:
        with RunLock(out) as lock:
            if lock.took_over is not None:
                print(f"bptt {verb}: took over the lock of {out} from PID {lock.took_over}, which no longer runs.",
                      file=sys.stderr)
            return work()
    except FolderInUse as error:
        print(f"bptt {verb}: {error}", file=sys.stderr)
        return 2
