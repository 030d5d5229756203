r"""Conversion between bptt layers and models and their ``torch.nn`` twins: same options, same dtype, identical
weights.

``from_torch(module)`` turns a ``torch.nn.LSTM``, ``GRU``, ``RNN``, ``Linear``, ``LSTMCell``, ``GRUCell`` or
``RNNCell`` into the bptt layer of the same name, and ``to_torch(layer)`` does the reverse. The two libraries
share constructor argument names and parameter names, so a conversion is the constructor call with the other
library's options followed by a state-dict copy: the weights are copied bit for bit, never shared. The
training/evaluation mode of a recurrent layer is carried over too (it decides whether dropout is applied).

The composite models of :mod:`bptt.layers.models` convert as well. PyTorch has no module of their shape, so
``to_torch(model)`` returns a ``torch.nn.Module`` of this module's making, named after the model, whose
children carry bptt's state-dict names (:mod:`bptt.interop.serialization`) and whose ``forward`` computes what
the model's does:

==================  ===================================  ===================================================
bptt model          children of the torch twin           ``forward``
==================  ===================================  ===================================================
SequenceRegressor   ``rnn``, ``head`` (``nn.Linear``)    ``y, state = twin(x, hx=None)``: the head at every step
SequenceClassifier  ``rnn``, ``head``                    ``logits = twin(x, lengths=None)``: the head on
                                                         ``h_n[-1]`` (``cat(h_n[-2], h_n[-1])`` bidirectional),
                                                         lengths through ``pack_padded_sequence``
LanguageModel       ``embedding`` (``nn.Embedding``),    ``logits, state = twin(tokens, hx=None)``
                    ``rnn``, ``head``
==================  ===================================  ===================================================

``rnn`` is a ``torch.nn.LSTM``, ``GRU`` or ``RNN``. Where a bptt model keeps its final states in
``final_state``, the twin returns them beside its output, PyTorch's idiom. The mode is the stack's (it
decides the language model's dropout). ``from_torch`` takes such a twin back, and also a ``torch.nn.Module``
of your own with those children, given ``model=`` (the name of the bptt model whose ``forward`` it computes:
its children say what it holds, not what it does). The children must have the options the bptt model builds
(e.g. ``bias=True``, time-major, no projection, a tanh RNN; dropout only in a language model); any other
option is refused, naming the option, rather than silently computed differently.

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

A composite model and back:

>>> from bptt.layers.models import SequenceClassifier
>>> model = SequenceClassifier(3, 4, 2, cell="gru", rng=0)
>>> twin = to_torch(model)
>>> twin
SequenceClassifier(
  (rnn): GRU(3, 4)
  (head): Linear(in_features=4, out_features=2, bias=True)
)
>>> bool(np.allclose(twin(torch.from_numpy(x), [5, 3]).detach().numpy(), model(x, [5, 3]), rtol=0, atol=1e-12))
True
>>> from_torch(twin).config() == model.config()
True
"""

from __future__ import annotations

import functools
import inspect

import numpy as np

from bptt.interop.torch_seq2seq import seq2seq_to_torch
from bptt.layers.cells import GRUCell, LSTMCell, RNNCell
from bptt.layers.embedding import Embedding
from bptt.layers.gru import GRU
from bptt.layers.linear import Linear
from bptt.layers.lstm import LSTM
from bptt.layers.models import LanguageModel, SequenceClassifier, SequenceRegressor
from bptt.layers.module import Module
from bptt.layers.recurrent import RecurrentLayer
from bptt.layers.rnn import RNN
from bptt.layers.seq2seq import Seq2Seq

CONVERTIBLE: dict[str, type[Module]] = {cls.__name__: cls for cls in (LSTM, GRU, RNN, Linear, LSTMCell, GRUCell,
                                                                       RNNCell)}
"""The bptt classes with a ``torch.nn`` twin of the same name."""

COMPOSITES: dict[str, type[Module]] = {cls.__name__: cls for cls in (SequenceRegressor, SequenceClassifier,
                                                                     LanguageModel)}
"""The bptt models whose torch twin this module defines."""
CHILDREN = {"SequenceRegressor": ("rnn", "head"), "SequenceClassifier": ("rnn", "head"),
            "LanguageModel": ("embedding", "rnn", "head")}
"""The children of each model's twin, in state-dict order."""
CHILD_TYPES = {"embedding": ("Embedding",), "rnn": ("LSTM", "GRU", "RNN"), "head": ("Linear",)}
"""The ``torch.nn`` types each child may have (exactly: a subclass's ``forward`` may differ)."""
CHILD_WORDS = {"embedding": "torch.nn.Embedding", "rnn": "torch.nn.LSTM, GRU or RNN", "head": "torch.nn.Linear"}
"""The same, in the words of the error messages."""


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


@functools.cache
def _twin_classes(torch) -> dict[str, type]:
    """The torch twins of the composite models, by bptt name: defined on first use, once torch is imported."""
    pack = torch.nn.utils.rnn.pack_padded_sequence

    class SequenceRegressor(torch.nn.Module):
        """bptt's ``SequenceRegressor``: ``y, state = twin(x, hx=None)``, ``y_t = head(h_t)`` at every step."""

        def __init__(self, rnn, head) -> None:
            super().__init__()
            self.rnn, self.head = rnn, head

        def forward(self, x, hx=None):
            out, state = self.rnn(x, hx)
            return self.head(out), state

    class SequenceClassifier(torch.nn.Module):
        """bptt's ``SequenceClassifier``: ``logits = twin(x, lengths=None)``, the head on the last layer's final
        hidden state (forward then reverse direction), each sequence's own with ``lengths``."""

        def __init__(self, rnn, head) -> None:
            super().__init__()
            self.rnn, self.head = rnn, head

        def forward(self, x, lengths=None):
            if lengths is not None:
                x = pack(x, torch.as_tensor(lengths, dtype=torch.int64, device="cpu"), enforce_sorted=False)
            _, state = self.rnn(x)
            h_n = state[0] if isinstance(state, tuple) else state      # (L*D, N, H), or (L*D, H) unbatched
            D = 2 if self.rnn.bidirectional else 1
            return self.head(torch.cat(list(h_n[-D:]), dim=-1))        # h_n[-1], or [h_n[-2], h_n[-1]]

    class LanguageModel(torch.nn.Module):
        """bptt's ``LanguageModel``: ``logits, state = twin(tokens, hx=None)``, the next token's logits at every
        step."""

        def __init__(self, embedding, rnn, head) -> None:
            super().__init__()
            self.embedding, self.rnn, self.head = embedding, rnn, head

        def forward(self, tokens, hx=None):
            out, state = self.rnn(self.embedding(tokens), hx)
            return self.head(out), state

    twins = (SequenceRegressor, SequenceClassifier, LanguageModel)
    for cls in twins:
        cls.__module__, cls.__qualname__ = __name__, cls.__name__
    return {cls.__name__: cls for cls in twins}


def _qualified(obj: object) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def _parameter_dtype(where: str, module) -> str:
    """The one dtype of ``module``'s parameters, float32 or float64."""
    dtypes = sorted({str(p.dtype).removeprefix("torch.") for p in module.parameters()})
    if len(dtypes) != 1 or dtypes[0] not in ("float32", "float64"):
        raise TypeError(f"{where}: expected parameters all float32 or all float64, got {', '.join(dtypes)}.")
    return dtypes[0]


def _composite_kind(module, model: object, twins: dict[str, type]) -> str | None:
    """The name of the bptt model ``module`` stands for: its twin class's, or ``model``; None for neither."""
    twin = next((name for name, cls in twins.items() if type(module) is cls), None)
    if model is None:
        return twin
    if not isinstance(model, str) or model not in COMPOSITES:
        raise ValueError(f"from_torch: expected model to be one of {', '.join(COMPOSITES)} or None, got {model!r}.")
    if twin is not None and model != twin:
        raise ValueError(f"from_torch: expected model={twin!r} (or None) for the {twin} twin to_torch makes, got "
                         f"{model!r}.")
    return model


def _check_options(kind: str, name: str, expected: dict, got: dict) -> None:
    """Refuse a child whose options differ from those the bptt model builds, naming each one that differs."""
    differ = sorted(key for key in expected.keys() | got.keys() if expected.get(key) != got.get(key))
    if differ:
        raise ValueError(f"from_torch: expected the {name} of a {kind} with "
                         f"{', '.join(f'{key}={expected.get(key)!r}' for key in differ)}, got "
                         f"{', '.join(f'{key}={got.get(key)!r}' for key in differ)}.")


def _composite_from_torch(torch, module, kind: str, rng: object) -> Module:
    """The bptt ``kind`` model with the weights of ``module``, whose children are checked first."""
    where = "from_torch"
    children = dict(module.named_children())
    names = CHILDREN[kind]
    if any(type(children.get(name)) not in [getattr(torch.nn, t) for t in CHILD_TYPES[name]] for name in names):
        wanted = [f"{name} ({CHILD_WORDS[name]})" for name in names]
        got = ", ".join(f"{name} ({_qualified(child)})" for name, child in children.items()) or "no children"
        raise ValueError(f"{where}: expected a torch module for a {kind} with the children {', '.join(wanted)}; "
                         f"got {got}.")
    dtype = _parameter_dtype(where, module)
    rnn, head = module.rnn, module.head
    sizes = {"hidden_size": rnn.hidden_size, "num_layers": rnn.num_layers, "cell": type(rnn).__name__.lower()}
    if kind == "SequenceRegressor":
        config = {"input_size": rnn.input_size, "output_size": head.out_features, **sizes}
    elif kind == "SequenceClassifier":
        config = {"input_size": rnn.input_size, "num_classes": head.out_features, **sizes,
                  "bidirectional": rnn.bidirectional}
    else:
        embedding = module.embedding
        config = {"vocab_size": embedding.num_embeddings, "embedding_dim": embedding.embedding_dim, **sizes,
                  "dropout": rnn.dropout}
        _check_options(kind, "embedding", {"padding_idx": None, "max_norm": None, "scale_grad_by_freq": False},
                       {key: getattr(embedding, key) for key in ("padding_idx", "max_norm", "scale_grad_by_freq")})
    model = COMPOSITES[kind](**config, dtype=dtype, rng=rng)
    for name in ("rnn", "head"):                   # each child's options, as bptt reads them off the torch child
        ours = getattr(model, name)
        theirs = type(ours)(**_torch_options(getattr(module, name), type(ours)), dtype=dtype, rng=0)
        _check_options(kind, name, *({key: value for key, value in child.config().items() if key != "dtype"}
                                     for child in (ours, theirs)))
    model.rnn.train(rnn.training)
    model.load_state_dict({name: value.detach().cpu().numpy() for name, value in module.state_dict().items()})
    return model


def from_torch(module: object, *, rng: object = None, model: str | None = None) -> Module:
    """The bptt twin of a ``torch.nn.LSTM``, ``GRU``, ``RNN`` or ``Linear``, or the bptt composite model of a
    twin :func:`to_torch` made: same options and mode, the dtype of the module's parameters (float32 or
    float64), the same weights.

    ``rng`` (an int seed or ``numpy.random.Generator``) draws the twin's dropout masks; PyTorch's are not
    reproduced. ``model`` (``"SequenceRegressor"``, ``"SequenceClassifier"`` or ``"LanguageModel"``) converts a
    ``torch.nn.Module`` of your own whose ``forward`` computes that model's, from its children (``rnn`` and
    ``head``, and ``embedding`` for a language model; see the module docstring). A module of another type, a
    subclass of a ``torch.nn`` layer included (its ``forward`` may differ), a composite whose children are
    missing, of other types or with options the bptt model does not have, raises ValueError; parameters of
    another dtype (float16, bfloat16, complex) raise TypeError.
    """
    where = "from_torch"
    torch = _import_torch(where)
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"{where}: expected a torch.nn.Module, got {type(module).__name__}.")
    kind = _composite_kind(module, model, _twin_classes(torch))
    if kind is not None:
        return _composite_from_torch(torch, module, kind, rng)
    cls = CONVERTIBLE.get(type(module).__name__)
    if cls is None or type(module) is not getattr(torch.nn, cls.__name__):
        hint = (f"; a module with an rnn and a head converts to a bptt model given model= one of "
                f"{', '.join(COMPOSITES)}" if hasattr(module, "rnn") else "")
        raise ValueError(f"{where}: expected a torch.nn module of type {', '.join(CONVERTIBLE)}, got "
                         f"{_qualified(module)}{hint}.")
    dtype = _parameter_dtype(where, module)
    layer = cls(**_torch_options(module, cls), dtype=dtype, rng=rng)
    if isinstance(layer, RecurrentLayer):
        layer.train(module.training)
    layer.load_state_dict({name: value.detach().cpu().numpy() for name, value in module.state_dict().items()})
    return layer


def _composite_to_torch(torch, model: Module):
    """The torch twin of a composite model: its children converted one by one, the twin in the stack's mode."""
    children = {"rnn": to_torch(model.rnn), "head": to_torch(model.head)}
    if isinstance(model, LanguageModel):
        table: Embedding = model.embedding
        embedding = torch.nn.Embedding(table.num_embeddings, table.embedding_dim, padding_idx=table.padding_idx,
                                       dtype=getattr(torch, np.dtype(table.dtype).name))
        embedding.load_state_dict({"weight": torch.from_numpy(table.params["weight"])})
        children = {"embedding": embedding, **children}
    return _twin_classes(torch)[type(model).__name__](**children).train(model.rnn.training)


def to_torch(layer: object):
    """The ``torch.nn`` twin of a bptt ``LSTM``, ``GRU``, ``RNN`` or ``Linear``, or the torch twin of a
    ``SequenceRegressor``, ``SequenceClassifier``, ``LanguageModel`` (see the module docstring) or ``Seq2Seq``
    (:mod:`bptt.interop.torch_seq2seq`): same options and mode, the layer's dtype, the same weights, on the CPU.

    Another bptt module (an ``Embedding``) raises ValueError, anything else TypeError.
    PyTorch's own warnings pass through (e.g. for ``dropout > 0`` with one layer, where it has no effect).
    """
    torch = _import_torch("to_torch")
    if not isinstance(layer, Module):
        raise TypeError(f"to_torch: expected a bptt layer, got {type(layer).__name__}.")
    if type(layer) in COMPOSITES.values():
        return _composite_to_torch(torch, layer)
    if isinstance(layer, Seq2Seq):
        return seq2seq_to_torch(torch, layer)
    if type(layer) not in CONVERTIBLE.values():
        raise ValueError(f"to_torch: expected a layer of type {', '.join(CONVERTIBLE)} or a model of type "
                         f"{', '.join([*COMPOSITES, 'Seq2Seq'])}, got {type(layer).__name__}.")
    options = {key: value for key, value in layer.config().items() if key != "dtype"}
    module = getattr(torch.nn, type(layer).__name__)(**options, dtype=getattr(torch, np.dtype(layer.dtype).name))
    if isinstance(layer, RecurrentLayer):
        module.train(layer.training)
    module.load_state_dict({name: torch.from_numpy(value) for name, value in layer.params.items()})
    return module
