"""Stopping a run cleanly: Ctrl-C (SIGINT) and SIGTERM ask the training loop to stop at the next step
boundary instead of killing it mid-step.

While a :class:`StopRequest` is active, the first SIGINT or SIGTERM is remembered and nothing else happens:
the loop (:func:`bptt.train.fit.fit`, through its ``should_stop``) finishes the step it is in, writes the
train state and stops. Further signals are ignored, so a second Ctrl-C while the state is written cannot
break the write (the files are written atomically in any case). The previous handlers come back on exit.
The exit code of an interrupted command is the shell's convention, 128 + the signal number: 130 for
SIGINT, 143 for SIGTERM.

Examples
--------
>>> import os, signal
>>> with StopRequest() as stop:
...     os.kill(os.getpid(), signal.SIGTERM)
...     stop.requested(), stop.exit_code, stop.name
(True, 143, 'SIGTERM')
"""

from __future__ import annotations

import signal

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """Turns SIGINT and SIGTERM into a request that the training loop reads at step boundaries."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, frame) -> None:
        if self.signal is None:
            self.signal = signum

    def requested(self) -> bool:
        """Whether a stop was asked for (a ``should_stop`` for :func:`bptt.train.fit.fit`)."""
        return self.signal is not None

    @property
    def exit_code(self) -> int:
        """128 + the signal's number."""
        return 128 + int(self.signal)

    @property
    def name(self) -> str:
        return signal.Signals(self.signal).name

    def __enter__(self) -> StopRequest:
        self._previous = {signum: signal.signal(signum, self._handle) for signum in SIGNALS}
        return self

    def __exit__(self, *exc_info) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
