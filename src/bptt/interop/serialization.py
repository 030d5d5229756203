"""``save`` and ``load``: a layer or model as a safetensors file that PyTorch reads as a state dict.

The file holds the parameters under PyTorch's names (``weight_ih_l0``, ...; a composite model prefixes its
children's: ``rnn.`` and ``head.`` for ``SequenceRegressor`` and ``SequenceClassifier``, ``embedding.``,
``rnn.`` and ``head.`` for ``LanguageModel``) and, in its string metadata, the class name and the constructor's
configuration, so that :func:`load` rebuilds the same class with the same options. Nothing is pickled: the
arrays are raw bytes, the metadata JSON. A bare LSTM/GRU/RNN file loads into the matching ``torch.nn`` module
with ``module.load_state_dict(safetensors.torch.load_file(path))``, a composite model's into a
``torch.nn.Module`` with the same attributes (``embedding`` an ``nn.Embedding``, ``rnn`` the recurrent module,
``head`` an ``nn.Linear``). Extra JSON metadata given to :func:`save` (a training run's settings, a character
model's vocabulary) is kept beside the class and configuration; ``bptt.interop.io.load_arrays(path)[1]``
reads it back.

Examples
--------
>>> import tempfile, pathlib
>>> from bptt import LSTM, load, save
>>> layer = LSTM(3, 4, rng=0)
>>> path = save(layer, pathlib.Path(tempfile.mkdtemp()) / "lstm.safetensors")
>>> twin = load(path)
>>> type(twin).__name__, twin.config() == layer.config()
('LSTM', True)
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from bptt._validation import check_path
from bptt.interop.io import load_arrays, save_arrays
from bptt.layers.cells import GRUCell, LSTMCell, RNNCell
from bptt.layers.embedding import Embedding
from bptt.layers.gru import GRU
from bptt.layers.linear import Linear
from bptt.layers.lstm import LSTM
from bptt.layers.models import LanguageModel, SequenceClassifier, SequenceRegressor
from bptt.layers.module import Module
from bptt.layers.rnn import RNN
from bptt.layers.seq2seq import Seq2Seq

FORMAT = "bptt"
CLASSES: dict[str, type[Module]] = {cls.__name__: cls for cls in (LSTM, GRU, RNN, Linear, Embedding, SequenceRegressor,
                                                                   SequenceClassifier, LanguageModel, LSTMCell,
                                                                   GRUCell, RNNCell, Seq2Seq)}


def _json_config(module: Module) -> dict:
    """The module's constructor arguments with the dtype as its name (``"float64"``), ready for JSON."""
    return {key: (value.name if isinstance(value, np.dtype) else value) for key, value in module.config().items()}


def _checked_metadata(metadata: object) -> dict:
    """``save``'s extra metadata as a dict of JSON-ready entries under string keys, none of them reserved."""
    if metadata is not None and not isinstance(metadata, Mapping):
        raise TypeError(f"save: expected metadata to be a mapping or None, got {type(metadata).__name__}.")
    extra = dict(metadata or {})
    not_text = [key for key in extra if not isinstance(key, str)]
    if not_text:
        raise TypeError(f"save: expected metadata keys to be strings, got {not_text}.")
    reserved = sorted({"format", "class", "config"} & set(extra))
    if reserved:
        raise ValueError(f"save: expected metadata without the reserved keys format, class, config, got {reserved}.")
    try:
        json.dumps(extra)
    except (TypeError, ValueError) as error:
        raise TypeError(f"save: expected JSON-ready metadata values, got {error}.") from error
    return extra


def save(module: Module, path: str | os.PathLike, metadata: Mapping[str, object] | None = None) -> Path:
    """Write ``module``'s parameters, class and configuration to ``path`` (safetensors, written atomically).

    ``metadata``: extra JSON-ready entries to keep in the file (e.g. the training run's settings); the keys
    ``format``, ``class`` and ``config`` are reserved. Returns the path written. Parameters with NaN or
    infinite entries are refused: :func:`load` could not restore them.
    """
    if not isinstance(module, Module) or type(module).__name__ not in CLASSES:
        raise TypeError(f"save: expected one of {', '.join(CLASSES)}, got {type(module).__name__}.")
    check_path("save", path)
    extra = _checked_metadata(metadata)
    non_finite = [name for name, value in module.params.items() if not np.isfinite(value).all()]
    if non_finite:
        raise ValueError(f"save: expected finite parameters, got NaN or infinite entries in {non_finite}.")
    header = {"format": FORMAT, "class": type(module).__name__, "config": _json_config(module), **extra}
    return save_arrays(path, module.params, header)


def load(path: str | os.PathLike) -> Module:
    """Rebuild the layer or model saved at ``path`` by :func:`save`: same class, options and weights.

    A missing, truncated or corrupt file, a file without bptt's metadata, or one whose arrays do not fit the
    configuration (keys, shapes, or a dtype other than the configuration's) raises ValueError naming the
    file. Nothing is unpickled: the file is read as raw arrays and JSON.
    """
    name = check_path("load", path)
    arrays, metadata = load_arrays(path)
    kind = metadata.get("class")
    if metadata.get("format") != FORMAT or not isinstance(kind, str) or kind not in CLASSES:
        raise ValueError(f"load: expected {name!r} to be written by bptt.save (metadata format 'bptt' and a class "
                         f"from {', '.join(CLASSES)}), got format {metadata.get('format')!r} and class "
                         f"{kind!r}.")
    config = metadata.get("config")
    if not isinstance(config, dict):
        raise ValueError(f"load: expected a configuration dict in the metadata of {name!r}, got {config!r}.")
    try:
        module = CLASSES[kind](**config, rng=0)
        other_dtypes = {key: str(value.dtype) for key, value in arrays.items() if value.dtype != module.dtype}
        if other_dtypes:
            raise ValueError(f"expected arrays of the configured dtype {module.dtype}, got {other_dtypes}")
        module.load_state_dict(arrays)
    except (TypeError, ValueError) as error:
        raise ValueError(f"load: the arrays or configuration in {name!r} do not fit a {kind}: "
                         f"{error}") from error
    return module

