"""The checkpoint of ``bptt train chars`` that ``bptt sample`` and ``bptt visualize`` read."""

from __future__ import annotations

import os
from pathlib import Path

from bptt.interop.io import load_arrays
from bptt.interop.serialization import load


def character_model(checkpoint: Path):
    """The LanguageModel, vocabulary and metadata of a checkpoint of ``bptt train chars``; ValueError when it is
    something else."""
    from bptt.layers.models import LanguageModel

    model = load(checkpoint)
    metadata = load_arrays(checkpoint)[1]
    vocabulary = metadata.get("vocabulary")
    if isinstance(model, LanguageModel):
        model.eval()                                  # read, never trained here: no dropout
    if not isinstance(model, LanguageModel) or not isinstance(vocabulary, str):
        raise ValueError(f"expected a character model saved by bptt train chars (a LanguageModel with its "
                         f"vocabulary), got a {type(model).__name__} in {os.fspath(checkpoint)!r}"
                         f"{'' if isinstance(vocabulary, str) else ' without a vocabulary'}.")
    return model, vocabulary, metadata
