"""A whole Seq2Seq forward and backward computed from ``bptt.reference`` alone: the oracle that holds the fast
path equal without torch.

The encoder is :func:`reference_stack.reference_stack` (every source cut to its length, no padding ever read);
the decoder is the reference cell step and the reference attention step, keys recomputed at every step as a
student writes them; the projections are plain NumPy. It reads the model's parameters and shares none of its
code with ``bptt.layers.seq2seq``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from reference_stack import reference_stack

from bptt.reference.attention import attention_step_backward, attention_step_forward
from bptt.reference.gru import gru_step_backward, gru_step_forward
from bptt.reference.lstm import lstm_step_backward, lstm_step_forward


class Seq2SeqResult(NamedTuple):
    logits: np.ndarray                 # (T, N, V)
    grads: dict[str, np.ndarray]       # keyed by the model's parameter names


def _prefixed(params: dict, prefix: str) -> dict:
    return {name.removeprefix(prefix): value for name, value in params.items() if name.startswith(prefix)}


def reference_seq2seq(model, source: np.ndarray, lengths: np.ndarray, target_in: np.ndarray,
                      dlogits: np.ndarray) -> Seq2SeqResult:
    """Logits and every gradient of ``model`` (no dropout) for upstream ``dlogits``."""
    p = model.params
    lstm = model.cell == "lstm"
    E, H = model.source_embedding.embedding_dim, model.hidden_size
    S, N = source.shape
    T = len(target_in)
    attention = {name: value for name, value in p.items() if name.startswith(("att_projection.", "attention."))}
    decoder = _prefixed(p, "decoder.")
    grads = {name: np.zeros_like(value) for name, value in p.items()}

    # encoder, forward only first: its upstream gradients come from the decoder
    x = p["source_embedding.weight"][source]
    L = model.encoder.num_layers
    initials = [np.zeros((2 * L, N, H))] * (2 if lstm else 1)
    zeros = [np.zeros((2 * L, N, H))] * (2 if lstm else 1)
    encoded = reference_stack(model.encoder, x, initials, lengths, np.zeros((S, N, 2 * H)), zeros)
    enc = encoded.out
    mask = np.arange(S)[:, None] >= lengths[None, :]
    last = [np.concatenate([final[-2], final[-1]], axis=1) for final in encoded.finals]
    states = [last[0] @ p["h_projection.weight"].T] + ([last[1] @ p["c_projection.weight"].T] if lstm else [])

    # decoder forward, one step at a time, input feeding
    y = p["target_embedding.weight"][target_in]
    o = np.zeros((N, H))
    tape, outputs = [], []
    for t in range(T):
        x_t = np.concatenate([y[t], o], axis=1)
        if lstm:
            h, c, gates, tanh_c = lstm_step_forward(decoder, x_t, *states)
            saved, states = (x_t, *states, gates, tanh_c), [h, c]
        else:
            h, gates, hidden_n = gru_step_forward(decoder, x_t, states[0])
            saved, states = (x_t, states[0], gates, hidden_n), [h]
        a, _, attention_cache = attention_step_forward(attention, enc, h, mask)
        combined = np.concatenate([a, h], axis=1)
        o = np.tanh(combined @ p["combined_output_projection.weight"].T)
        tape.append((saved, attention_cache, combined, o))
        outputs.append(o)
    outputs = np.stack(outputs)
    logits = outputs @ p["target_vocab_projection.weight"].T

    # decoder backward
    grads["target_vocab_projection.weight"] += np.einsum("tnv,tnh->vh", dlogits, outputs)
    doutputs = dlogits @ p["target_vocab_projection.weight"]
    dstates = [np.zeros((N, H)) for _ in states]
    do_next, denc = np.zeros((N, H)), np.zeros_like(enc)
    for t in reversed(range(T)):
        saved, attention_cache, combined, o = tape[t]
        dv = (doutputs[t] + do_next) * (1 - o**2)
        grads["combined_output_projection.weight"] += dv.T @ combined
        dcombined = dv @ p["combined_output_projection.weight"]
        denc_t, dh_attention, attention_grads = attention_step_backward(attention, attention_cache,
                                                                        dcombined[:, :2 * H])
        denc += denc_t
        for name, grad in attention_grads.items():
            grads[name] += grad
        dh = dstates[0] + dcombined[:, 2 * H:] + dh_attention
        if lstm:
            dx_t, dh_prev, dc_prev, step = lstm_step_backward(decoder, dh, dstates[1], *saved)
            dstates = [dh_prev, dc_prev]
        else:
            dx_t, dh_prev, step = gru_step_backward(decoder, dh, *saved)
            dstates = [dh_prev]
        for name, grad in step.items():
            grads[f"decoder.{name}"] += grad
        np.add.at(grads["target_embedding.weight"], target_in[t], dx_t[:, :E])
        do_next = dx_t[:, E:]
    grads["target_embedding.weight"][0] = 0.0                  # the padding row gets no gradient

    # into the encoder's final states, then the encoder with the attention's gradient at its outputs
    dfinals = []
    for name, dstate, final in zip(("h_projection.weight", "c_projection.weight"), dstates, last, strict=False):
        grads[name] += dstate.T @ final
        dlast = dstate @ p[name]
        dfinal = np.zeros((2 * L, N, H))
        dfinal[-2], dfinal[-1] = dlast[:, :H], dlast[:, H:]
        dfinals.append(dfinal)
    encoded = reference_stack(model.encoder, x, initials, lengths, denc, dfinals)
    for name, grad in encoded.grads.items():
        grads[f"encoder.{name}"] += grad
    np.add.at(grads["source_embedding.weight"], source, encoded.dx)
    grads["source_embedding.weight"][0] = 0.0
    return Seq2SeqResult(logits, grads)
