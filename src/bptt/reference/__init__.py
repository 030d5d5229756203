r"""The textbook reference: each family's forward and backward pass as a reader would first write them.

Each module holds one family (:mod:`bptt.reference.lstm`, :mod:`bptt.reference.gru`,
:mod:`bptt.reference.rnn`) as a ``*_step_forward`` / ``*_step_backward`` pair, one time step at a time in
the manner of CS231n's ``rnn_layers.py``, and the two loops over a sequence, ``*_forward`` and
``*_backward``, that call them. They follow PyTorch's semantics and layout: its parameter names (those of a
single layer, without the ``_l0`` suffix), its gate order (LSTM i, f, g, o; GRU r, z, n) and a row-major
batch, states ``(N, H)`` and a step's gates ``x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh`` of shape
``(N, G H)``. There are no tricks: no fused kernels, no reordered or halved gate rows, no feature-major
buffers, no preallocated scratch, no masks for padded steps; every backward line carries the tag of the equation it
undoes, as derived in ``docs/lstm.md``, ``docs/gru.md`` and ``docs/rnn.md``.

The caches (:class:`LSTMCache`, :class:`GRUCache`, :class:`RNNCache`) hold inputs and outputs, never
pre-activations, and every derivative is taken from an output: :math:`\sigma' = s (1 - s)`,
:math:`\tanh' = 1 - t^2`, :math:`\mathrm{relu}' = [h > 0]`. A backward pass only reads its cache, so running
it twice gives identical results.

The fast path in ``bptt.layers`` is held equal to this reference by tests, and the reference is held
equal to PyTorch. It needs NumPy alone and imports nothing from ``bptt`` outside this subpackage, so it
can be read, copied and checked on its own.

:mod:`bptt.reference.attention` is the same for one decoder step's attention over encoder outputs
(``attention_step_forward`` / ``attention_step_backward``, equations (A1)-(A4), general and additive scores,
a mask of padded source positions), the unit :class:`bptt.Seq2Seq` is built from.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> params = {"weight_ih": rng.normal(size=(8, 3)), "weight_hh": rng.normal(size=(8, 2))}
>>> out, (h_n, c_n), cache = lstm_forward(params, rng.normal(size=(5, 1, 3)), np.zeros((1, 2)), np.zeros((1, 2)))
>>> dx, (dh0, dc0), grads = lstm_backward(params, cache, np.zeros_like(out), np.zeros_like(h_n), np.ones_like(c_n))
>>> out.shape, dx.shape, grads["weight_hh"].shape
((5, 1, 2), (5, 1, 3), (8, 2))
"""

from bptt.reference.attention import AttentionCache, attention_step_backward, attention_step_forward
from bptt.reference.gru import GRUCache, gru_backward, gru_forward
from bptt.reference.lstm import LSTMCache, lstm_backward, lstm_forward
from bptt.reference.rnn import RNNCache, rnn_backward, rnn_forward

__all__ = [
    "AttentionCache",
    "GRUCache",
    "LSTMCache",
    "RNNCache",
    "attention_step_backward",
    "attention_step_forward",
    "gru_backward",
    "gru_forward",
    "lstm_backward",
    "lstm_forward",
    "rnn_backward",
    "rnn_forward",
]
