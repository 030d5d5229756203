r"""An encoder-decoder with attention and input feeding (Luong, Pham and Manning 2015; CS224n's NMT design).

.. math::

    \text{(S1)}\quad & \mathrm{enc}, (h^{enc}_n, c^{enc}_n) = \mathrm{BiRNN}(E_s[x]) && \mathrm{enc}\ (S, N, 2H) \\
    \text{(S2)}\quad & h_0 = [\overrightarrow{h}^{enc}_n; \overleftarrow{h}^{enc}_n]\, W_h^\top, \quad
        c_0 = [\overrightarrow{c}^{enc}_n; \overleftarrow{c}^{enc}_n]\, W_c^\top && \text{the last layer's} \\
    \text{(S3)}\quad & h_t, c_t = \mathrm{cell}([E_t[y_t]; o_{t-1}], (h_{t-1}, c_{t-1})), \quad o_0 = 0
        && \text{input feeding} \\
    \text{(S4)}\quad & a_t = \mathrm{attention}(\mathrm{enc}, h_t) && \text{(A1)-(A4)} \\
    \text{(S5)}\quad & o_t = \mathrm{dropout}(\tanh([a_t; h_t]\, W_u^\top)) \\
    \text{(S6)}\quad & z_t = o_t W_V^\top && \text{logits, } (T, N, V)

Teacher forcing: ``target_in`` is the target shifted right (``<s> y_1 ... y_{T-1}``), so step :math:`t` reads
the true previous token, and every step is scored at once. The loss reaches the encoder along two paths: into
:math:`\mathrm{enc}` through every step's attention (the context and the keys) and into its final states
through the decoder's initial state (S2). ``docs/seq2seq.md`` derives every line.
"""

from __future__ import annotations

from typing import NamedTuple

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
from bptt.layers._blas import matmul
from bptt.layers.attention import SCORES, Attention, AttentionStep
from bptt.layers.cells import GRUCell, LSTMCell
from bptt.layers.decoding import Decoded, beam_search, greedy
from bptt.layers.embedding import Embedding, check_indices
from bptt.layers.gru import GRU
from bptt.layers.inference import inference_mode
from bptt.layers.linear import Linear
from bptt.layers.lstm import LSTM
from bptt.layers.module import Module

ENCODERS = {"lstm": (LSTM, LSTMCell), "gru": (GRU, GRUCell)}
PAD = 0
"""The padding id of both vocabularies: its embedding rows stay zero, masked source positions and target
positions carry it."""


class _Step(NamedTuple):
    """What one decoder step keeps for the backward pass."""

    cell: object            # the cell's cache
    attention: object       # the attention step's
    combined: NDArray       # (N, 3H) [a_t; h_t]
    tanh_o: NDArray         # (N, H)  tanh([a_t; h_t] W_u^T), before dropout
    keep: NDArray | None    # (N, H)  the dropout mask m / (1 - p), or None


class _Pass(NamedTuple):
    """What a forward pass keeps: the encoder's outputs, the keys, the mask and every decoder step."""

    enc: NDArray
    keys: NDArray
    mask: NDArray
    steps: list[_Step]
    logits_shape: tuple[int, ...]


class Seq2Seq(Module):
    r"""An encoder-decoder with attention (module docstring): ``logits = model(source, source_lengths, target_in)``.

    Shapes (S source steps, T target steps, N batch, E embedding, H hidden, L layers, V target vocabulary):
    ``source (S, N)`` ids with ``source_lengths (N,)`` in ``1..S`` (positions past a length are padding, never
    read), ``target_in (T, N)`` ids; ``logits (T, N, V)``. Id 0 pads both vocabularies.

    Parameters are the children's under PyTorch-twin keys: ``source_embedding.weight``,
    ``target_embedding.weight`` (``padding_idx=0``), ``encoder.*`` (a bidirectional ``nn.LSTM``/``nn.GRU`` of
    ``num_layers``), ``h_projection.weight`` (and ``c_projection.weight`` for the LSTM), ``decoder.*``
    (``nn.LSTMCell``/``nn.GRUCell(E + H, H)``), ``att_projection.weight`` (general) or
    ``attention.{key,query,v}.weight`` (additive), ``combined_output_projection.weight`` and
    ``target_vocab_projection.weight``; init each child's own, as PyTorch's, drawn in that order. ``dropout``
    acts on :math:`o_t` in training mode (:meth:`train`, the default; :meth:`eval` turns it off), the masks drawn
    from the model's generator.

    :meth:`backward` takes :math:`\partial L / \partial z` and adds every parameter's gradient into ``grads``.

    Examples
    --------
    >>> model = Seq2Seq(7, 9, 4, 5, rng=0)
    >>> source = np.array([[3, 4], [5, 6], [2, 0]])          # S = 3 steps of N = 2 sources, the second padded
    >>> logits = model(source, [3, 2], np.array([[1, 1], [4, 8]]))
    >>> logits.shape
    (2, 2, 9)
    >>> model.backward(np.ones_like(logits) / logits.size)
    >>> sorted(model.grads)[:3]
    ['att_projection.weight', 'c_projection.weight', 'combined_output_projection.weight']
    """

    def __init__(self, source_vocab: int, target_vocab: int, embedding_dim: int, hidden_size: int, *,
                 cell: str = "lstm", attention: str = "general", num_layers: int = 1, dropout: float = 0.0,
                 dtype: object = np.float64, rng: object = None) -> None:
        where = "Seq2Seq"
        if cell not in ENCODERS:
            raise ValueError(f"{where}: expected cell to be one of {', '.join(ENCODERS)}, got {cell!r}.")
        if attention not in SCORES:
            raise ValueError(f"{where}: expected attention to be one of {', '.join(SCORES)}, got {attention!r}.")
        for name, size in (("source_vocab", source_vocab), ("target_vocab", target_vocab),
                           ("embedding_dim", embedding_dim), ("hidden_size", hidden_size),
                           ("num_layers", num_layers)):
            check_positive_int(where, name, size)
        self.cell, self.attention_score = cell, attention
        self.dropout = check_dropout(where, dropout)
        self.dtype = check_dtype(where, dtype)
        self.rng = resolve_rng(where, rng)
        self.training = True
        E, H = embedding_dim, hidden_size
        kind = {"dtype": self.dtype, "rng": self.rng}
        encoder, decoder = ENCODERS[cell]
        self.source_embedding = Embedding(source_vocab, E, padding_idx=PAD, **kind)
        self.target_embedding = Embedding(target_vocab, E, padding_idx=PAD, **kind)
        self.encoder = encoder(E, H, num_layers=num_layers, bidirectional=True, **kind)
        self.h_projection = Linear(2 * H, H, bias=False, **kind)
        self.c_projection = Linear(2 * H, H, bias=False, **kind) if cell == "lstm" else None
        self.decoder = decoder(E + H, H, **kind)
        self.attention = Attention(2 * H, H, attention, **kind)
        self.combined_output_projection = Linear(3 * H, H, bias=False, **kind)
        self.target_vocab_projection = Linear(H, target_vocab, bias=False, **kind)
        attention_prefix = "att_projection" if attention == "general" else "attention"
        children = {"source_embedding": self.source_embedding, "target_embedding": self.target_embedding,
                    "encoder": self.encoder, "h_projection": self.h_projection, "c_projection": self.c_projection,
                    "decoder": self.decoder, attention_prefix: self.attention,
                    "combined_output_projection": self.combined_output_projection,
                    "target_vocab_projection": self.target_vocab_projection}
        children = {prefix: child for prefix, child in children.items() if child is not None}
        self.params = {f"{prefix}.{k}": v for prefix, child in children.items() for k, v in child.params.items()}
        self.grads = {f"{prefix}.{k}": v for prefix, child in children.items() for k, v in child.grads.items()}
        self._pass: _Pass | None = None

    @property
    def hidden_size(self) -> int:
        return self.decoder.hidden_size

    def config(self) -> dict:
        """The constructor's arguments (without ``rng``)."""
        return {"source_vocab": self.source_embedding.num_embeddings,
                "target_vocab": self.target_embedding.num_embeddings,
                "embedding_dim": self.source_embedding.embedding_dim, "hidden_size": self.hidden_size,
                "cell": self.cell, "attention": self.attention_score, "num_layers": self.encoder.num_layers,
                "dropout": self.dropout, "dtype": self.dtype}

    def train(self, mode: bool = True) -> Seq2Seq:
        """Training mode (dropout on :math:`o_t`, the default) or, with ``mode=False``, evaluation mode."""
        self.training = check_bool("Seq2Seq.train", "mode", mode)
        return self

    def eval(self) -> Seq2Seq:
        """Evaluation mode: no dropout."""
        return self.train(False)

    # -- the passes ------------------------------------------------------------------------------------------

    def forward(self, source: object, source_lengths: object, target_in: object) -> NDArray:
        """Logits ``(T, N, V)`` of the next target token at every step, with teacher forcing."""
        where = "Seq2Seq.forward"
        self._pass = None
        source, lengths = self.check_source(where, source, source_lengths)
        target_in = check_indices(where, target_in, self.target_embedding.num_embeddings, "target_in", "target_vocab")
        if target_in.ndim != 2 or target_in.shape[1] != source.shape[1] or target_in.shape[0] == 0:
            raise ValueError(f"{where}: expected target_in of shape (T, {source.shape[1]}) with T >= 1 (one column "
                             f"per source), got {target_in.shape}.")
        enc, mask, states = self.encode(source, lengths)
        keys = self.attention.keys(enc)                                        # (A1) once per sequence
        embedded = self.target_embedding(target_in)                            # (T, N, E)
        N, H = source.shape[1], self.hidden_size
        o = np.zeros((N, H), dtype=self.dtype)                                 # (S3) o_0 = 0
        outputs, steps = np.empty((len(target_in), N, H), dtype=self.dtype), []
        for t in range(len(target_in)):
            states, o, step = self._decode_step(embedded[t], o, states, enc, keys, mask)
            outputs[t] = o
            steps.append(step)
        logits = self.target_vocab_projection(outputs)                         # (S6) z_t = o_t W_V^T, all steps
        self._pass = _Pass(enc, keys, mask, steps, logits.shape)
        return logits

    def check_source(self, where: str, source: object, source_lengths: object) -> tuple[NDArray, NDArray]:
        """``source (S, N)`` ids and ``source_lengths (N,)`` in ``1..S``, checked."""
        source = check_indices(where, source, self.source_embedding.num_embeddings, "source", "source_vocab")
        if source.ndim != 2 or 0 in source.shape:
            raise ValueError(f"{where}: expected source of shape (S, N) with S, N >= 1, got {source.shape}.")
        lengths = as_array(where, "source_lengths", source_lengths)
        if lengths.dtype == np.bool_ or not np.issubdtype(lengths.dtype, np.integer):
            raise TypeError(f"{where}: expected source_lengths to be integers, got dtype {lengths.dtype}.")
        check_shape(where, "source_lengths", lengths, (source.shape[1],), "One length per source column.")
        if lengths.min() < 1 or lengths.max() > source.shape[0]:
            raise ValueError(f"{where}: expected source_lengths between 1 and S = {source.shape[0]}, got values "
                             f"from {lengths.min()} to {lengths.max()}.")
        return source, lengths.astype(np.int64)

    def encode(self, source: NDArray, lengths: NDArray) -> tuple[NDArray, NDArray, tuple[NDArray, ...]]:
        """(S1), (S2): the encoder outputs ``(S, N, 2H)``, the padding mask ``(S, N)`` and the decoder's initial
        states, for checked ``source`` and ``lengths``."""
        enc, finals = self.encoder(self.source_embedding(source), lengths=lengths)        # (S1)
        finals = finals if isinstance(finals, tuple) else (finals,)
        projections = (self.h_projection, self.c_projection)
        states = tuple(projection(np.concatenate([final[-2], final[-1]], axis=1))        # (S2) the last layer's
                       for projection, final in zip(projections, finals, strict=False))
        mask = np.arange(len(source))[:, None] >= lengths[None, :]
        return enc, mask, states

    def decode_step(self, previous: NDArray, o: NDArray, states: tuple[NDArray, ...], enc: NDArray, keys: NDArray,
                    mask: NDArray) -> tuple[tuple[NDArray, ...], NDArray, AttentionStep]:
        """(S3)-(S5) for one step of decoding, without dropout: the tokens read ``previous (N,)``, the last
        :math:`o` and states, and the encoder's outputs, keys and mask to the new states, :math:`o_t` and the
        attention step (its ``alpha (S, N)``). :mod:`bptt.layers.decoding` loops over it."""
        embedded = self.target_embedding.params["weight"][previous]
        states, o, step = self._decode_step(embedded, o, states, enc, keys, mask, dropout=False)
        return states, o, step.attention

    def decode(self, source: object, source_lengths: object, *, bos: int, eos: int, max_length: int | None = None,
               beam: int = 1) -> list[Decoded]:
        """The output of every source column, :class:`bptt.layers.decoding.Decoded` (tokens, attention weights,
        mean log-probability per token): greedy with ``beam = 1``, else beam search, each output stopping at
        ``eos`` or after ``max_length`` tokens (``2 S + 10`` when None); the decoder starts from ``bos``."""
        where = "Seq2Seq.decode"
        source, lengths = self.check_source(where, source, source_lengths)
        vocab = self.target_embedding.num_embeddings
        for name, token in (("bos", bos), ("eos", eos)):
            if isinstance(token, bool) or not isinstance(token, (int, np.integer)) or not 0 <= token < vocab:
                raise ValueError(f"{where}: expected {name} to be a target id in 0..{vocab - 1}, got {token!r}.")
        max_length = 2 * source.shape[0] + 10 if max_length is None else check_positive_int(where, "max_length",
                                                                                          max_length)
        beam = check_positive_int(where, "beam", beam)
        with inference_mode():                          # the encoder's pass keeps no cache: nothing goes back
            if beam == 1:
                return greedy(self, source, lengths, int(bos), int(eos), max_length)
            return beam_search(self, source, lengths, int(bos), int(eos), max_length, beam)

    def _decode_step(self, embedded: NDArray, o: NDArray, states: tuple[NDArray, ...], enc: NDArray,
                     keys: NDArray, mask: NDArray, dropout: bool = True) -> tuple[tuple[NDArray, ...], NDArray, _Step]:
        """(S3)-(S5) for one step: the new states, :math:`o_t` and what the backward pass needs; ``dropout``
        applies the training mode's dropout."""
        states, cell_cache = self.decoder.step(np.concatenate([embedded, o], axis=1), states)   # (S3)
        h = states[0]
        a, _, attention_step = self.attention.step(keys, enc, mask, h)                          # (S4)
        combined = np.concatenate([a, h], axis=1)
        tanh_o = np.tanh(matmul(combined, self.combined_output_projection.params["weight"].T))  # (S5)
        keep = None
        if dropout and self.training and self.dropout > 0:
            keep = (self.rng.random(tanh_o.shape) >= self.dropout).astype(self.dtype) / (1.0 - self.dropout)
        return states, (tanh_o if keep is None else tanh_o * keep), _Step(cell_cache, attention_step, combined,
                                                                          tanh_o, keep)

    def backward(self, dlogits: object) -> None:
        """Given dL/dlogits (the logits' shape), add every parameter gradient into ``grads``: back through the
        decoder's steps (each step's :math:`o_t` also fed the next step), the attention's two paths into the
        encoder outputs, the initial state into the encoder's final states, and the encoder. Returns None."""
        where = "Seq2Seq.backward"
        if self._pass is None:
            raise ValueError(f"{where}: expected a forward pass first, got none.")
        enc, keys, mask, steps, logits_shape = self._pass
        dlogits = as_float_array(where, "dlogits", dlogits, self.dtype, copy=False)
        check_shape(where, "dlogits", dlogits, logits_shape, "dlogits must have the shape of the logits.")
        E, H = self.target_embedding.embedding_dim, self.hidden_size
        doutputs = self.target_vocab_projection.backward(dlogits)              # (S6) dL/do_t = dz_t W_V
        dkeys, denc = np.zeros_like(keys), np.zeros_like(enc)
        dembedded = np.empty((len(steps), *doutputs.shape[1:-1], E), dtype=self.dtype)
        dprojected = np.empty_like(doutputs)                                  # dL/dv_t, (T, N, H)
        dstates = tuple(np.zeros_like(doutputs[0]) for _ in self.decoder.family.state_names)
        do_next = np.zeros_like(doutputs[0])                                   # what o_t fed step t + 1
        weight_u = self.combined_output_projection.params["weight"]
        for t in range(len(steps) - 1, -1, -1):
            step = steps[t]
            # (S5) o_t = m * tanh(v_t), v_t = [a_t; h_t] W_u^T
            do = doutputs[t] + do_next
            if step.keep is not None:
                do = do * step.keep                                            # do/dtanh = m
            dprojected[t] = do * (1 - step.tanh_o**2)                          # dtanh/dv = 1 - tanh^2
            dconcat = matmul(dprojected[t], weight_u)                          # dv/d[a; h] = W_u
            # (S4) back through (A4)-(A2); the keys' share waits for (A1) after the loop
            dh = dconcat[:, 2 * H:] + self.attention.step_backward(step.attention, keys, enc, dconcat[:, :2 * H],
                                                                   dkeys, denc)
            # (S3) h_t, c_t = cell([E y_t; o_{t-1}], (h_{t-1}, c_{t-1})), the state's gradient from step t + 1 added
            dinput, dstates = self.decoder.step_backward(step.cell, (dstates[0] + dh, *dstates[1:]))
            dembedded[t], do_next = dinput[:, :E], dinput[:, E:]
        # (S5) dW_u = sum_t dv_t^T [a_t; h_t], one product over every step
        combined = np.stack([step.combined for step in steps])
        self.combined_output_projection.grads["weight"] += matmul(dprojected.reshape(-1, H).T,
                                                                  combined.reshape(-1, 3 * H))
        self.target_embedding.backward(dembedded)
        denc += self.attention.keys_backward(enc, dkeys)                      # (A1) the keys' path into enc
        # (S2) h_0 = [h_fwd; h_bwd] W_h^T (and c_0): into the last layer's two final states
        projections = (self.h_projection, self.c_projection)
        dfinals = []
        for projection, dstate in zip(projections, dstates, strict=False):
            dfinal = np.zeros((2 * self.encoder.num_layers, *dstate.shape), dtype=self.dtype)
            dfinal[-2], dfinal[-1] = np.split(projection.backward(dstate), 2, axis=1)
            dfinals.append(dfinal)
        dsource, _ = self.encoder.backward(denc, tuple(dfinals) if len(dfinals) > 1 else dfinals[0])   # (S1)
        self.source_embedding.backward(dsource)
