"""Conversion between bptt layers and their ``torch.nn`` twins: same options, same dtype, identical weights.

``from_torch(module)`` turns a ``torch.nn.LSTM``, ``GRU``, ``RNN`` or ``Linear`` into the bptt layer of the
same name, and ``to_torch(layer)`` does the reverse. The two libraries share constructor argument names and
parameter names, so a conversion is the constructor call with the other library's options followed by a
state-dict copy: the weights are copied bit for bit, never shared. The training/evaluation mode of a
recurrent layer is carried over too (it decides whether dropout is applied).

The composite models of :mod:`bptt.layers.models` are left out, as PyTorch has no module of their shape:
convert their ``rnn`` and ``head`` one by one, or load the file :func:`bptt.save` writes into any
``torch.nn.Module`` with the same attributes (``rnn`` and ``head``, and ``embedding`` for a
``LanguageModel``; see :mod:`bptt.interop.serialization`).

PyTorch is imported only when a function is called; without it both raise ImportError.

Examples
--------
>>> import torch
>>> module = torch.nn.GRU(3, 4, num_layers=2, bidirectional=True, dtype=torch.float64)
>>> layer = from_torch(module)
>>> layer
GRU(3, 4, num_layers=2, bias=True, batch_first=False, dropout=0.0, bidirectional=True, dtype=float64)
>>> x = np.random.default_rng(0).standard_normal((5, 2, 3))
>>> bool(np.allclose(layer(x)[0], module(torch.from_numpy(x))[0].detach().numpy(), rtol=0, atol=1e-12))
True
>>> to_torch(layer)
GRU(3, 4, num_layers=2, bidirectional=True)
"""

from __future__ import annotations

import inspect

import numpy as np

from bptt.layers.gru import GRU
from bptt.layers.linear import Linear
from bptt.layers.lstm import LSTM
from bptt.layers.module import Module
from bptt.layers.recurrent import RecurrentLayer
from bptt.layers.rnn import RNN

CONVERTIBLE: dict[str, type[Module]] = {cls.__name__: cls for cls in (LSTM, GRU, RNN, Linear)}
"""The bptt classes with a ``torch.nn`` twin of the same name."""


def _import_torch(where: str):
    try:
        import torch
    except ImportError as error:
        raise ImportError(f"{where}: expected PyTorch to be installed (pip install torch), got: {error}") from error
    return torch


def _torch_options(module, cls: type[Module]) -> dict:
    """The bptt constructor's arguments read off a torch module: torch keeps each of its constructor's
    arguments as an attribute of the same name, except Linear's ``bias``, which is the bias tensor or None."""
    if cls is Linear:
        return {"in_features": module.in_features, "out_features": module.out_features,
                "bias": module.bias is not None}
    names = [name for name in inspect.signature(cls).parameters if name not in ("dtype", "rng")]
    return {name: getattr(module, name) for name in names}


def from_torch(module: object, *, rng: object = None) -> Module:
    """The bptt twin of a ``torch.nn.LSTM``, ``GRU``, ``RNN`` or ``Linear``: same options and mode, the dtype of
    the module's parameters (float32 or float64), the same weights.

    ``rng`` (an int seed or ``numpy.random.Generator``) draws the twin's dropout masks; PyTorch's are not
    reproduced. A module of another type, a subclass included (its ``forward`` may differ), raises
    ValueError; parameters of another dtype (float16, bfloat16, complex) raise TypeError.
    """
    torch = _import_torch("from_torch")
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"from_torch: expected a torch.nn.Module, got {type(module).__name__}.")
    cls = CONVERTIBLE.get(type(module).__name__)
    if cls is None or type(module) is not getattr(torch.nn, cls.__name__):
        raise ValueError(f"from_torch: expected a torch.nn module of type {', '.join(CONVERTIBLE)}, got "
                         f"{type(module).__module__}.{type(module).__qualname__}.")
    dtypes = sorted({str(p.dtype).removeprefix("torch.") for p in module.parameters()})
    if len(dtypes) != 1 or dtypes[0] not in ("float32", "float64"):
        raise TypeError(f"from_torch: expected parameters all float32 or all float64, got {', '.join(dtypes)}.")
    layer = cls(**_torch_options(module, cls), dtype=dtypes[0], rng=rng)
    if isinstance(layer, RecurrentLayer):
        layer.train(module.training)
    layer.load_state_dict({name: value.detach().cpu().numpy() for name, value in module.state_dict().items()})
    return layer


def to_torch(layer: object):
    """The ``torch.nn`` twin of a bptt ``LSTM``, ``GRU``, ``RNN`` or ``Linear``: same options and mode, the
    layer's dtype, the same weights, on the CPU.

    A bptt module without a twin (a composite model, an ``Embedding``) raises ValueError, anything else
    TypeError.
    PyTorch's own warnings pass through (e.g. for ``dropout > 0`` with one layer, where it has no effect).
    """
    torch = _import_torch("to_torch")
    if not isinstance(layer, Module):
        raise TypeError(f"to_torch: expected a bptt layer, got {type(layer).__name__}.")
    if type(layer) not in CONVERTIBLE.values():
        hint = ("; a composite model has no single torch twin: load its bptt.save file into a torch.nn.Module "
                "with the same attributes (rnn and head, a LanguageModel's embedding too), or convert its rnn and "
                "head one by one"
                if hasattr(layer, "rnn") else "")
        raise ValueError(f"to_torch: expected a layer of type {', '.join(CONVERTIBLE)}, got {type(layer).__name__}"
                         f"{hint}.")
    options = {key: value for key, value in layer.config().items() if key != "dtype"}
    module = getattr(torch.nn, type(layer).__name__)(**options, dtype=getattr(torch, np.dtype(layer.dtype).name))
    if isinstance(layer, RecurrentLayer):
        module.train(layer.training)
    module.load_state_dict({name: torch.from_numpy(value) for name, value in layer.params.items()})
    return module
