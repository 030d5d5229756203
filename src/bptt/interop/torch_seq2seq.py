"""The torch twin of :class:`bptt.layers.seq2seq.Seq2Seq`: the same children under the same state-dict keys
and a ``forward`` that computes what the model's does, written with ``torch.nn`` modules alone (CS224n's NMT
model with both attention scores). ``to_torch(model)`` (:mod:`bptt.interop.torch_interop`) builds it.

The twin's ``forward(source, source_lengths, target_in)`` returns the logits ``(T, N, V)``; the encoder reads a
``pack_padded_sequence`` of the sources, so padding is never read, and the attention's softmax gives padded
positions weight zero (``masked_fill`` with minus infinity). Its mode is the model's (dropout on :math:`o_t`).
"""

from __future__ import annotations

import functools

import numpy as np

from bptt.layers.seq2seq import PAD, Seq2Seq


@functools.cache
def _twin_class(torch) -> type:
    """The twin's class, defined on first use, once torch is imported."""
    nn = torch.nn
    pack, unpack = nn.utils.rnn.pack_padded_sequence, nn.utils.rnn.pad_packed_sequence

    class Seq2SeqTwin(nn.Module):
        """bptt's ``Seq2Seq`` in torch: ``logits = twin(source, source_lengths, target_in)``."""

        def __init__(self, source_vocab: int, target_vocab: int, embedding_dim: int, hidden_size: int, *,
                     cell: str, attention: str, num_layers: int, dropout: float, dtype) -> None:
            super().__init__()
            E, H = embedding_dim, hidden_size
            kind = {"dtype": dtype}
            self.cell, self.score = cell, attention
            self.source_embedding = nn.Embedding(source_vocab, E, padding_idx=PAD, **kind)
            self.target_embedding = nn.Embedding(target_vocab, E, padding_idx=PAD, **kind)
            encoder, decoder = (nn.LSTM, nn.LSTMCell) if cell == "lstm" else (nn.GRU, nn.GRUCell)
            self.encoder = encoder(E, H, num_layers=num_layers, bidirectional=True, **kind)
            self.h_projection = nn.Linear(2 * H, H, bias=False, **kind)
            if cell == "lstm":
                self.c_projection = nn.Linear(2 * H, H, bias=False, **kind)
            self.decoder = decoder(E + H, H, **kind)
            if attention == "general":
                self.att_projection = nn.Linear(2 * H, H, bias=False, **kind)
            else:
                self.attention = nn.ModuleDict({"key": nn.Linear(2 * H, H, bias=False, **kind),
                                                "query": nn.Linear(H, H, bias=False, **kind),
                                                "v": nn.Linear(H, 1, bias=False, **kind)})
            self.combined_output_projection = nn.Linear(3 * H, H, bias=False, **kind)
            self.target_vocab_projection = nn.Linear(H, target_vocab, bias=False, **kind)
            self.dropout = nn.Dropout(dropout)

        def forward(self, source, source_lengths, target_in):
            lengths = torch.as_tensor(source_lengths, dtype=torch.int64, device="cpu")
            packed, finals = self.encoder(pack(self.source_embedding(source), lengths, enforce_sorted=False))
            enc, _ = unpack(packed, total_length=source.shape[0])                 # (S, N, 2H), zero padding
            finals = finals if isinstance(finals, tuple) else (finals,)
            projections = (self.h_projection, getattr(self, "c_projection", None))
            state = tuple(projection(torch.cat([final[-2], final[-1]], dim=1))
                          for projection, final in zip(projections, finals, strict=False))
            keys = self.att_projection(enc) if self.score == "general" else self.attention["key"](enc)
            mask = torch.arange(source.shape[0])[:, None] >= lengths[None, :]
            o = enc.new_zeros(source.shape[1], self.decoder.hidden_size)
            outputs = []
            for embedded in self.target_embedding(target_in):
                state = self.decoder(torch.cat([embedded, o], dim=1), state if len(state) > 1 else state[0])
                state = state if isinstance(state, tuple) else (state,)
                h = state[0]
                if self.score == "general":
                    scores = (keys * h).sum(-1)
                else:
                    scores = self.attention["v"](torch.tanh(keys + self.attention["query"](h))).squeeze(-1)
                alpha = torch.softmax(scores.masked_fill(mask, float("-inf")), dim=0)
                a = (alpha.unsqueeze(-1) * enc).sum(0)
                o = self.dropout(torch.tanh(self.combined_output_projection(torch.cat([a, h], dim=1))))
                outputs.append(o)
            return self.target_vocab_projection(torch.stack(outputs))

    Seq2SeqTwin.__module__, Seq2SeqTwin.__qualname__ = __name__, "Seq2Seq"
    Seq2SeqTwin.__name__ = "Seq2Seq"
    return Seq2SeqTwin


def seq2seq_to_torch(torch, model: Seq2Seq):
    """The torch twin of ``model``: its options, dtype, mode and weights (copied)."""
    options = model.config()
    dtype = getattr(torch, np.dtype(options.pop("dtype")).name)
    twin = _twin_class(torch)(**options, dtype=dtype).train(model.training)
    twin.load_state_dict({name: torch.from_numpy(value) for name, value in model.params.items()})
    return twin
