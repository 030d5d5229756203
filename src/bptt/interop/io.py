"""Checkpoints as safetensors files: plain named arrays plus string metadata, never pickle.

Writes are atomic: the bytes go to a temporary file in the target's folder, are flushed to disk, and the
file is then renamed over the target (and the rename flushed too), so a crash leaves either the old checkpoint
or the new one.
"""

from __future__ import annotations

import glob
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from numpy.typing import NDArray


def _fsync_folder(folder: Path) -> None:
    """Flush ``folder``'s entries (a rename into it) to disk, where a folder can be opened (POSIX)."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _temporary_affixes(target: Path) -> tuple[str, str]:
    """The prefix and suffix of the temporary files that writes of ``target`` use."""
    return f".{target.name}.", ".tmp"


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temporary file, fsync, ``os.replace``, fsync of the folder); on
    any failure the old file is left as it was and the temporary file removed."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    prefix, suffix = _temporary_affixes(target)
    fd, temporary = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    _fsync_folder(target.parent)
    return target


def remove_interrupted_writes(path: str | os.PathLike) -> list[Path]:
    """Delete the temporary files that writes of ``path`` killed midway (SIGKILL, power loss) left beside it,
    and return them. Only while no other process is writing ``path``."""
    target = Path(path)
    prefix, suffix = _temporary_affixes(target)
    leftovers = sorted(target.parent.glob(f"{glob.escape(prefix)}*{suffix}"))
    for leftover in leftovers:
        leftover.unlink(missing_ok=True)
    return leftovers


def _numpy_to_json(value: object) -> object:
    """JSON's form of the NumPy values a metadata entry may hold; anything else is refused as json.dumps does."""
    if isinstance(value, (np.ndarray, np.generic)):
        return value.tolist()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def save_arrays(path: str | os.PathLike, arrays: Mapping[str, NDArray],
                metadata: Mapping[str, object] | None = None) -> Path:
    """Save named arrays to a safetensors file; ``metadata`` values are stored as JSON strings, NumPy arrays and
    scalars in them as lists and numbers (e.g. the ``bit_generator.state`` of an MT19937 generator)."""
    from safetensors.numpy import save

    tensors = {name: np.ascontiguousarray(value) for name, value in arrays.items()}
    text = {key: json.dumps(value, default=_numpy_to_json) for key, value in (metadata or {}).items()}
    return atomic_write_bytes(path, save(tensors, metadata=text))


def load_arrays(path: str | os.PathLike) -> tuple[dict[str, NDArray], dict[str, object]]:
    """Load a safetensors file as ``(arrays, metadata)``; a missing or unreadable file raises ValueError
    naming it."""
    from safetensors import safe_open

    try:
        with safe_open(os.fspath(path), framework="np") as handle:
            arrays = {name: handle.get_tensor(name) for name in handle.keys()}
            raw = handle.metadata() or {}
    except Exception as error:  # OSError, or safetensors' own error for a corrupt file
        raise ValueError(f"load_arrays: expected a readable safetensors file at {os.fspath(path)!r}, "
                         f"got an error: {error}") from error
    try:
        metadata = {key: json.loads(value) for key, value in raw.items()}
    except json.JSONDecodeError as error:
        raise ValueError(f"load_arrays: expected JSON metadata in {os.fspath(path)!r}, got {error}.") from error
    return arrays, metadata
