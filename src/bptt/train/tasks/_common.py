"""What the task modules share: the names of the held-out splits and their check."""

from __future__ import annotations

SPLITS = ("validation", "test")


def check_split(where: str, split: object) -> str:
    """Return ``split`` if it names a held-out split, else raise listing the valid names."""
    if split not in SPLITS:
        raise ValueError(f"{where}: expected split to be one of {', '.join(map(repr, SPLITS))}, got {split!r}.")
    return split
