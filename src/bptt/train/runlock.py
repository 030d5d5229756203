"""One run per folder: a lock file in a run's output folder, naming the process that holds it.

``bptt train`` and ``bptt sweep`` hold :class:`RunLock` on their ``--out`` folder while they run. The lock is
the file ``.bptt-lock`` created with ``O_EXCL`` (so two runs starting together cannot both get it) holding the
process id. A second run into the same folder is refused with the holder's PID while that process is alive; a
lock left by a process that no longer runs (killed, crashed) is taken over, and the caller is told.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

LOCK_NAME = ".bptt-lock"
FRESH_S = 5.0
"""A lock without a readable PID younger than this is taken to be one another run is writing right now."""


class FolderInUse(RuntimeError):
    """Another live process holds the folder's lock."""


def _age(path: Path) -> float:
    """Seconds since ``path`` was last written (infinite when it is gone)."""
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return float("inf")


def _alive(pid: int) -> bool:
    """Whether a process with this id runs (signal 0 checks without sending anything)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:          # it exists, under another user
        return True
    return True


class RunLock:
    """The lock of ``folder`` (which must exist) for this process, as a context manager.

    ``took_over`` is the PID of the dead process whose lock was taken, or None.

    Examples
    --------
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> with RunLock(folder) as lock:
    ...     (Path(folder) / LOCK_NAME).read_text().strip() == str(os.getpid())
    True
    >>> (Path(folder) / LOCK_NAME).exists()
    False
    """

    def __init__(self, folder: str | os.PathLike) -> None:
        self.path = Path(folder) / LOCK_NAME
        self.took_over: int | None = None

    def __enter__(self) -> RunLock:
        for _ in range(2):               # a second try after removing a dead process's lock
            try:
                descriptor = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._holder()
                if holder is None and _age(self.path) < FRESH_S:
                    raise FolderInUse(f"{self.path.parent} is being taken by another run that is starting; wait "
                                      "for it, or choose another --out.") from None
                if holder is not None and holder != os.getpid() and _alive(holder):
                    raise FolderInUse(f"{self.path.parent} is in use by another run (PID {holder}); wait for it to "
                                      f"finish, or choose another --out.") from None
                self.took_over = holder
                self.path.unlink(missing_ok=True)
                continue
            with os.fdopen(descriptor, "w") as handle:
                handle.write(f"{os.getpid()}\n")
            return self
        raise FolderInUse(f"{self.path.parent}: could not take the lock {self.path.name}; another run is starting "
                          "there.")

    def _holder(self) -> int | None:
        """The PID written in the lock, or None when it cannot be read (a lock being written, or garbage)."""
        try:
            return int(self.path.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def __exit__(self, *exc_info) -> None:
        if self._holder() == os.getpid():
            self.path.unlink(missing_ok=True)
