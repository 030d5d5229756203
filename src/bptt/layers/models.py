"""Composite models built from bptt layers: a recurrent stack with a dense head at every step
(:class:`SequenceRegressor`, many-to-many), on the final state (:class:`SequenceClassifier`, many-to-one), or
read from token embeddings and predicting the next token at every step (:class:`LanguageModel`)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from bptt._validation import (
    as_array,
    as_float_array,
    check_bool,
    check_dropout,
    check_dtype,
    check_positive_int,
    check_shape,
    resolve_rng,
)
from bptt.layers.embedding import Embedding, check_indices
from bptt.layers.gru import GRU
from bptt.layers.linear import Linear
from bptt.layers.lstm import LSTM
from bptt.layers.module import Module
from bptt.layers.rnn import RNN

CELLS = {"lstm": LSTM, "gru": GRU, "rnn": RNN}


def _check_cell(where: str, cell: object) -> str:
    if not isinstance(cell, str) or cell not in CELLS:
        raise ValueError(f"{where}: expected cell to be one of {', '.join(CELLS)}, got {cell!r}.")
    return cell


class SequenceRegressor(Module):
    r"""A recurrent stack followed by a dense head applied at every step: ``y_t = head(h_t)``.

    Shapes: ``x (T, N, input_size)`` -> ``y (T, N, output_size)`` (values, or logits for a classifier).
    ``cell`` picks the recurrent family: ``"lstm"`` (default), ``"gru"`` or ``"rnn"``. Parameters are the
    stack's and the head's under the prefixes ``rnn.`` and ``head.``, the same arrays
    (``params["rnn.weight_ih_l0"] is model.rnn.params["weight_ih_l0"]``), so the keys are those of the
    equivalent PyTorch module with attributes ``rnn`` and ``head``.

    ``forward(x, hx)`` starts from the states ``hx`` (zeros when omitted) and keeps the final states in
    ``final_state``, so a long sequence can be fed chunk by chunk (truncated BPTT) or one step at a time
    (generation).

    Examples
    --------
    >>> model = SequenceRegressor(1, 8, 1, rng=0)
    >>> y = model(np.zeros((10, 4, 1)))
    >>> y.shape
    (10, 4, 1)
    >>> model.backward(np.ones_like(y)).shape
    (10, 4, 1)
    """

    def __init__(self, input_size: int, hidden_size: int, output_size: int, num_layers: int = 1, *,
                 cell: str = "lstm", dtype: object = np.float64, rng: object = None) -> None:
        where = "SequenceRegressor"
        _check_cell(where, cell)
        for name, size in (("input_size", input_size), ("hidden_size", hidden_size), ("output_size", output_size),
                           ("num_layers", num_layers)):
            check_positive_int(where, name, size)
        self.cell = cell
        self.dtype = check_dtype(where, dtype)
        generator = resolve_rng(where, rng)
        self.rnn = CELLS[cell](input_size, hidden_size, num_layers=num_layers, dtype=self.dtype, rng=generator)
        self.head = Linear(hidden_size, output_size, dtype=self.dtype, rng=generator)
        children = {"rnn": self.rnn, "head": self.head}
        self.params = {f"{prefix}.{k}": v for prefix, child in children.items() for k, v in child.params.items()}
        self.grads = {f"{prefix}.{k}": v for prefix, child in children.items() for k, v in child.grads.items()}
        self.final_state = None

    def config(self) -> dict:
        return {"input_size": self.rnn.input_size, "hidden_size": self.rnn.hidden_size,
                "output_size": self.head.out_features, "num_layers": self.rnn.num_layers, "cell": self.cell,
                "dtype": self.dtype}

    def forward(self, x: object, hx: object = None) -> NDArray:
        out, self.final_state = self.rnn(x, hx)
        return self.head(out)

    def backward(self, dy: object) -> NDArray:
        """Given dL/dy, add every parameter gradient into ``grads`` and return dL/dx. No gradient flows into
        the initial states (truncated BPTT stops there)."""
        dx, _ = self.rnn.backward(self.head.backward(dy))
        return dx


class SequenceClassifier(Module):
    r"""A recurrent stack read once, at the end: a dense head on the last layer's final hidden state gives one
    vector of logits per sequence (many-to-one classification).

    Shapes (T steps, N batch, I input, H hidden, C classes, L layers, D directions): ``x (T, N, I)`` or
    unbatched ``(T, I)`` -> ``logits (N, C)`` or ``(C,)``; ``lengths (N,)``, each in ``1..T``. Time-major only.
    ``cell`` picks the recurrent family: ``"lstm"`` (default), ``"gru"`` or ``"rnn"``. Parameters are the
    stack's and the head's under the prefixes ``rnn.`` and ``head.``, the same arrays
    (``params["head.weight"] is model.head.params["weight"]``), so the keys are those of the equivalent
    PyTorch module with attributes ``rnn`` and ``head`` (``head = Linear(D*H, C)``). Init: each child's own,
    as PyTorch's.

    The features are PyTorch's idiom ``h_n[-1]``, or ``cat(h_n[-2], h_n[-1])`` when bidirectional (an LSTM's
    ``h_n`` being the first of its pair): with :math:`\overrightarrow{h}_t, \overleftarrow{h}_t` the last
    layer's forward and reverse hidden states at step :math:`t = 1..T` and :math:`\ell_n` the length of
    sequence :math:`n` (:math:`T` without ``lengths``),

    .. math:: f_n = \overrightarrow{h}_{\ell_n, n} \quad \text{or} \quad
              f_n = \big[\overrightarrow{h}_{\ell_n, n};\ \overleftarrow{h}_{1, n}\big], \qquad
              z_n = W f_n + b,

    the reverse direction's final state being the one at step 1, where its pass over the sequence ends.
    With ``lengths`` the stack has packed-sequence semantics (:mod:`bptt.layers.recurrent`), so steps after
    :math:`\ell_n` are never read. In the backward pass the loss reaches the stack only through those final
    states,

    .. math:: \frac{\partial L}{\partial f_n} = \frac{\partial L}{\partial z_n} W, \qquad
              \frac{\partial L}{\partial \overrightarrow{h}_{t, n}} = 0 \ (t \ne \ell_n), \qquad
              \frac{\partial L}{\partial \overleftarrow{h}_{t, n}} = 0 \ (t \ne 1),

    so :meth:`backward` hands :math:`\partial L / \partial f` to the stack as the gradient of its final
    states (zero for the other layers' states and for an LSTM's cell) with a zero gradient for its output
    sequence, and BPTT carries it back from there; padded steps get zero gradient.

    Examples
    --------
    >>> model = SequenceClassifier(3, 8, 4, bidirectional=True, rng=0)
    >>> logits = model(np.ones((6, 2, 3)), lengths=[6, 2])
    >>> logits.shape
    (2, 4)
    >>> dx = model.backward(np.ones_like(logits))
    >>> dx.shape, bool((dx[2:, 1] == 0).all())
    ((6, 2, 3), True)
    """

    def __init__(self, input_size: int, hidden_size: int, num_classes: int, num_layers: int = 1, *,
                 cell: str = "lstm", bidirectional: bool = False, dtype: object = np.float64,
                 rng: object = None) -> None:
        where = "SequenceClassifier"
        self.cell = _check_cell(where, cell)
        for name, size in (("input_size", input_size), ("hidden_size", hidden_size), ("num_classes", num_classes),
                           ("num_layers", num_layers)):
            check_positive_int(where, name, size)
        bidirectional = check_bool(where, "bidirectional", bidirectional)
        self.dtype = check_dtype(where, dtype)
        generator = resolve_rng(where, rng)
        self.rnn = CELLS[cell](input_size, hidden_size, num_layers=num_layers, bidirectional=bidirectional,
                               dtype=self.dtype, rng=generator)
        self.head = Linear(self.rnn.num_directions * self.rnn.output_size, num_classes, dtype=self.dtype,
                           rng=generator)
        children = {"rnn": self.rnn, "head": self.head}
        self.params = {f"{prefix}.{k}": v for prefix, child in children.items() for k, v in child.params.items()}
        self.grads = {f"{prefix}.{k}": v for prefix, child in children.items() for k, v in child.grads.items()}
        self._out_shape: tuple[int, ...] | None = None      # the last forward pass's stack output shape
        self._logits_shape: tuple[int, ...] | None = None   # ... and logits shape

    def config(self) -> dict:
        return {"input_size": self.rnn.input_size, "hidden_size": self.rnn.hidden_size,
                "num_classes": self.head.out_features, "num_layers": self.rnn.num_layers, "cell": self.cell,
                "bidirectional": self.rnn.bidirectional, "dtype": self.dtype}

    def forward(self, x: object, lengths: object = None) -> NDArray:
        """Logits ``(N, C)`` (``(C,)`` for unbatched ``x (T, I)``) from the last layer's final hidden state;
        with ``lengths`` each sequence's own last step."""
        where = "SequenceClassifier.forward"
        if lengths is not None:
            x_shape, counts = as_array(where, "x", x).shape, as_array(where, "lengths", lengths).shape
            if len(x_shape) == 3 and counts != (x_shape[1],):
                raise ValueError(f"{where}: expected one length per sequence, lengths of shape ({x_shape[1]},) "
                                 f"for x of shape {x_shape}, got lengths of shape {counts}.")
        out, states = self.rnn(x, lengths=lengths)
        h_n = states[0] if isinstance(states, tuple) else states     # (L*D, N, S), or (L*D, S) unbatched
        self._out_shape = out.shape
        D = self.rnn.num_directions
        logits = self.head(np.concatenate(list(h_n[-D:]), axis=-1))  # h_n[-1], or [h_n[-2], h_n[-1]]
        self._logits_shape = logits.shape
        return logits

    def backward(self, dlogits: object) -> NDArray:
        """Given dL/dlogits, add every parameter gradient into ``grads`` and return dL/dx (zero at padded
        steps). The gradient enters the stack only at the final states that fed the head."""
        where = "SequenceClassifier.backward"
        if self._out_shape is None:
            raise ValueError(f"{where}: expected a forward pass first, got none.")
        dlogits = as_float_array(where, "dlogits", dlogits, self.dtype, copy=False)
        check_shape(where, "dlogits", dlogits, self._logits_shape,
                    "dlogits must have the shape of the logits.")
        # z = W f + b:  dL/df = dL/dz W
        dfeatures = self.head.backward(dlogits)                       # (N, D*S) or (D*S,)
        D, S = self.rnn.num_directions, self.rnn.output_size
        batch = self._out_shape[1:-1]                                 # (N,), or () unbatched
        LD = self.rnn.num_layers * D
        # f = [h_n[-D], ..., h_n[-1]]: each final state gets its slice of dL/df, every other state zero
        dh_n = np.zeros((LD, *batch, S), dtype=self.dtype)
        for d in range(D):
            dh_n[LD - D + d] = dfeatures[..., d * S:(d + 1) * S]
        if self.cell == "lstm":
            dhx = (dh_n, np.zeros((LD, *batch, self.rnn.hidden_size), dtype=self.dtype))   # the cell: dc_n = 0
        else:
            dhx = dh_n
        # the outputs out_t are not read: dL/dout_t = 0 at every step
        dx, _ = self.rnn.backward(np.zeros(self._out_shape, dtype=self.dtype), dhx)
        return dx


class LanguageModel(Module):
    r"""A recurrent language model: token embeddings, a recurrent stack and a dense head that gives the logits
    of the next token at every step.

    Shapes (T steps, N batch, V vocabulary, E embedding, H hidden, L layers): ``tokens (T, N)`` integers in
    ``0..V-1``, or unbatched ``(T,)`` -> ``logits (T, N, V)`` or ``(T, V)``; states ``(L, N, H)`` or ``(L, H)``,
    a pair ``(h, c)`` for an LSTM. Time-major only. ``cell`` picks the recurrent family: ``"lstm"`` (default),
    ``"gru"`` or ``"rnn"``. ``dropout`` :math:`p` acts on every non-recurrent connection in training mode
    (:meth:`train`, the default; :meth:`eval` turns it off), as Zaremba, Sutskever and Vinyals (2014) regularise a
    language model and as PyTorch's ``word_language_model`` example does: on the embeddings the stack reads,
    between the stack's layers (the stack's own ``dropout``) and on the top layer's outputs before the head;
    each a mask :math:`m / (1 - p)`, :math:`m \sim \mathrm{Bernoulli}(1 - p)`, drawn from the stack's ``rng``
    in that order. The state carried from step to step is never dropped. Parameters are the children's arrays
    under the prefixes ``embedding.``, ``rnn.`` and ``head.`` (``params["embedding.weight"] is
    model.embedding.params["weight"]``), so the keys are the state-dict keys of the equivalent PyTorch module
    with attributes ``embedding`` (``nn.Embedding(V, E)``), ``rnn`` (``nn.LSTM|GRU|RNN(E, H, L)``) and ``head``
    (``nn.Linear(H, V)``), and dropout modules beside them that have no parameters. Init: each child's own, as
    PyTorch's (the embedding :math:`\mathcal{N}(0, 1)`, the others uniform), drawn in that order from one
    generator.

    With :math:`x_{t,n}` the token at step :math:`t` of sequence :math:`n` and :math:`W_E` the embedding table,

    .. math:: e_{t,n} = W_E[x_{t,n}], \qquad h_{t,n} = \mathrm{cell}(e_{t,n}, h_{t-1,n}), \qquad
              z_{t,n} = W h_{t,n} + b,

    and training minimises the softmax cross-entropy of the next token :math:`y_{t,n}` (usually
    :math:`x_{t+1,n}`) averaged over every step of every sequence, as ``bptt.cross_entropy(logits, targets)``
    and ``F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1))`` compute it:

    .. math:: L = -\frac{1}{TN} \sum_{t=1}^{T} \sum_{n=1}^{N} \log \mathrm{softmax}(z_{t,n})_{y_{t,n}},
              \qquad \frac{\partial L}{\partial z_{t,n}} = \frac{1}{TN}
              \big(\mathrm{softmax}(z_{t,n}) - \mathbf{1}_{y_{t,n}}\big).

    :meth:`backward` takes :math:`\partial L / \partial z` for every step: the head turns it into
    :math:`\partial L / \partial h_t`, BPTT through the stack into :math:`\partial L / \partial e_t`, and the
    embedding scatter-adds that into the rows of the tokens read. The tokens have no gradient, and none flows
    into the initial states: the truncation point of truncated BPTT.

    ``forward(tokens, hx)`` starts from the states ``hx`` (zeros when omitted), keeps the top layer's outputs
    :math:`h_t` that the head read in ``hidden`` (``(T, N, H)``; a neural cache looks them up) and the final
    states in ``final_state``: feeding the next chunk of a long sequence with ``hx=model.final_state`` continues it
    exactly (truncated BPTT), and so does feeding one token at a time (sampling).

    Examples
    --------
    >>> model = LanguageModel(10, 4, 8, rng=0)
    >>> tokens = np.array([[1, 2], [3, 4], [5, 6]])           # T = 3 steps of N = 2 sequences
    >>> logits = model(tokens)
    >>> logits.shape
    (3, 2, 10)
    >>> model.backward(np.ones_like(logits) / logits.size)    # fills model.grads, returns None
    >>> model.grads["embedding.weight"][[0, 1]].any(axis=1)   # token 0 was not read: its row has no gradient
    array([False,  True])
    >>> h, c = model.final_state                              # an LSTM's pair, (L, N, H) each
    >>> model(np.array([[7, 8]]), hx=model.final_state).shape  # the sequences go on
    (1, 2, 10)
    """

    def __init__(self, vocab_size: int, embedding_dim: int, hidden_size: int, num_layers: int = 1, *,
                 cell: str = "lstm", dropout: float = 0.0, dtype: object = np.float64, rng: object = None) -> None:
        where = "LanguageModel"
        self.cell = _check_cell(where, cell)
        for name, size in (("vocab_size", vocab_size), ("embedding_dim", embedding_dim),
                           ("hidden_size", hidden_size), ("num_layers", num_layers)):
            check_positive_int(where, name, size)
        dropout = check_dropout(where, dropout)
        self.dtype = check_dtype(where, dtype)
        generator = resolve_rng(where, rng)
        self.embedding = Embedding(vocab_size, embedding_dim, dtype=self.dtype, rng=generator)
        self.rnn = CELLS[cell](embedding_dim, hidden_size, num_layers=num_layers, dropout=dropout,
                               dtype=self.dtype, rng=generator)
        self.head = Linear(hidden_size, vocab_size, dtype=self.dtype, rng=generator)
        children = {"embedding": self.embedding, "rnn": self.rnn, "head": self.head}
        self.params = {f"{prefix}.{k}": v for prefix, child in children.items() for k, v in child.params.items()}
        self.grads = {f"{prefix}.{k}": v for prefix, child in children.items() for k, v in child.grads.items()}
        self.final_state = None
        self.hidden: NDArray | None = None                    # the top layer's outputs in the last forward pass
        self._masks: tuple[NDArray | None, NDArray | None] = (None, None)    # dropout on the stack's input, output
        self._logits_shape: tuple[int, ...] | None = None    # the last forward pass's logits shape

    @property
    def vocab_size(self) -> int:
        return self.embedding.num_embeddings

    @property
    def training(self) -> bool:
        """Whether dropout is active (the stack's mode)."""
        return self.rnn.training

    def config(self) -> dict:
        """The constructor's arguments (without ``rng``): ``type(m)(**m.config())`` builds the same shape."""
        return {"vocab_size": self.vocab_size, "embedding_dim": self.embedding.embedding_dim,
                "hidden_size": self.rnn.hidden_size, "num_layers": self.rnn.num_layers, "cell": self.cell,
                "dropout": self.rnn.dropout, "dtype": self.dtype}

    def train(self, mode: bool = True) -> LanguageModel:
        """Training mode (dropout between the stack's layers, the default) or, with ``mode=False``, evaluation
        mode."""
        self.rnn.train(check_bool("LanguageModel.train", "mode", mode))
        return self

    def eval(self) -> LanguageModel:
        """Evaluation mode: no dropout, the same logits for the same tokens and states."""
        return self.train(False)

    def forward(self, tokens: object, hx: object = None) -> NDArray:
        """Logits ``(T, N, V)`` of the next token at every step (``(T, V)`` for unbatched ``tokens (T,)``),
        starting from the states ``hx`` (zeros when omitted); the final states are kept in ``final_state``."""
        where = "LanguageModel.forward"
        self._logits_shape = None     # until this pass succeeds: a failed one may have changed a child's cache
        tokens = check_indices(where, tokens, self.vocab_size, "tokens", "vocab_size")
        if tokens.ndim not in (1, 2):
            raise ValueError(f"{where}: expected tokens of shape (T, N) or unbatched (T,), got "
                             f"{tokens.shape}.")
        if tokens.size == 0:
            raise ValueError(f"{where}: expected tokens with at least one step and one sequence, got shape "
                             f"{tokens.shape}.")
        embedded = self.embedding(tokens)
        self._masks = self._dropout_mask(embedded.shape), None
        out, final_state = self.rnn(embedded if self._masks[0] is None else embedded * self._masks[0], hx)
        self._masks = self._masks[0], self._dropout_mask(out.shape)
        logits = self.head(out if self._masks[1] is None else out * self._masks[1])
        self.final_state, self.hidden = final_state, out
        self._logits_shape = logits.shape
        return logits

    def backward(self, dlogits: object) -> None:
        """Given dL/dlogits (the logits' shape), add every parameter gradient into ``grads``: head, stack and
        embedding. Tokens are not differentiable and the initial states get no gradient: returns None."""
        where = "LanguageModel.backward"
        if self._logits_shape is None:
            raise ValueError(f"{where}: expected a forward pass first, got none.")
        dlogits = as_float_array(where, "dlogits", dlogits, self.dtype, copy=False)
        check_shape(where, "dlogits", dlogits, self._logits_shape,
                    "dlogits must have the shape of the logits, tokens.shape + (vocab_size,).")
        # z_t = W (m_out * h_t) + b:  dL/dh_t = m_out * (dL/dz_t W)  (every step at once)
        dout = self.head.backward(dlogits)
        if self._masks[1] is not None:
            dout = dout * self._masks[1]
        # BPTT through the stack; the gradient of the initial states is dropped (truncation point)
        dembedded, _ = self.rnn.backward(dout)
        # the stack read m_in * e_t:  dL/de_t = m_in * dL/d(stack input)
        if self._masks[0] is not None:
            dembedded = dembedded * self._masks[0]
        # e_t = W_E[x_t]:  dL/dW_E[v] = sum of dL/de_t over the steps that read token v
        self.embedding.backward(dembedded)

    def _dropout_mask(self, shape: tuple[int, ...]) -> NDArray | None:
        """A fresh mask ``m / (1 - p)`` of ``shape`` in training mode with ``dropout > 0``, else None."""
        p = self.rnn.dropout
        if not (self.training and p > 0):
            return None
        return (self.rnn.rng.random(shape) >= p).astype(self.dtype) / (1.0 - p)
