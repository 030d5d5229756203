r"""What every recurrent family shares, written once: layer stacking, the reverse direction, variable
lengths with PyTorch's packed-sequence semantics, dropout between layers, and the checks and layouts of
inputs, states and upstream gradients.

A family (LSTM, GRU, RNN) contributes only its *core*: one layer, one direction, time-major, as a pure
forward function and its backward. The stack calls it once per layer and direction:

- **Directions.** The reverse direction of a layer is the forward core run on the input with every
  sequence reversed *within its own length* (padding stays at the end), its output reversed back the
  same way. Layer :math:`k > 0` reads the concatenation ``[forward, reverse]`` of layer :math:`k-1`'s
  outputs, and in the backward pass the two directions' input gradients add up.
- **Lengths.** With ``lengths`` a sequence :math:`n` is processed for its first :math:`\ell_n` steps only:
  after them the core keeps its state frozen (so :math:`h_n` is the state at step :math:`\ell_n`), the
  stack writes zeros to the output there and ignores the upstream gradient there, so padded positions
  receive zero gradient. This is what ``torch.nn.utils.rnn.pack_padded_sequence`` computes.
- **Dropout.** In training mode with ``dropout = p > 0``, the output of every layer but the last is
  multiplied by a mask :math:`m / (1 - p)`, :math:`m \sim \mathrm{Bernoulli}(1 - p)`, drawn from the
  layer's ``rng``; the backward pass multiplies by the same mask.

Core contract (``Family``): ``forward(weights, x, states, inactive) -> (out, finals, cache)`` with ``x``
``(T, N, in)``, each state ``(N, S)``, ``inactive`` a ``(T, N)`` boolean mask of padded steps or None;
``backward(weights, cache, dout, dfinals) -> (dx, dinitials, grads)``. ``weights`` and ``grads`` are dicts
keyed by PyTorch's base names (``weight_ih``, ``weight_hh``, ``bias_ih``, ``bias_hh``, ``weight_hr``).
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from bptt._validation import (
    as_array,
    as_float_array,
    check_bool,
    check_dtype,
    check_positive_int,
    check_shape,
    resolve_rng,
)
from bptt.layers._blas import matmul  # np.matmul without OpenBLAS's spurious invalid flag
from bptt.layers.inference import is_inference_mode
from bptt.layers.module import Module

State = tuple[NDArray, ...]


@dataclass(frozen=True)
class Family:
    """One recurrent family: its name, number of gates G, state names and its one-direction core."""

    name: str
    gates: int
    state_names: tuple[str, ...]
    forward: Callable[[dict[str, NDArray], NDArray, State, NDArray | None], tuple[NDArray, State, object]]
    backward: Callable[[dict[str, NDArray], object, NDArray, State], tuple[NDArray, State, dict[str, NDArray]]]


class _Tape(NamedTuple):
    """What a forward pass of the stack keeps for its backward pass."""

    caches: list[object]            # one core cache per (layer, direction), layer-major
    dropout_masks: list[NDArray]    # one (T, N, D*out) mask per layer but the last, when dropout was applied
    lengths: NDArray | None         # (N,) ints, or None when every sequence is full
    inactive: NDArray | None        # (T, N) True at padded steps
    batched: bool
    steps: int
    batch: int


def reverse_within_lengths(seq: NDArray, lengths: NDArray | None) -> NDArray:
    """Reverse every sequence of a time-major ``(T, N, F)`` batch within its own length; padded steps stay
    where they are. Returns a new array; applying it twice gives the input back."""
    if lengths is None:
        return seq[::-1].copy()
    T, N = seq.shape[:2]
    t = np.arange(T)[:, None]
    source = np.where(t < lengths, lengths - 1 - t, t)          # (T, N) step read for each step written
    return seq[source, np.arange(N)]


def freeze_inactive(new: NDArray, old: NDArray, inactive_now: NDArray | None) -> None:
    """Forward of a padded step: the state of an inactive column stays what it was (``(S, N)`` arrays,
    ``inactive_now`` ``(N,)`` or None)."""
    if inactive_now is not None:
        np.copyto(new, old, where=inactive_now)


def inactive_at(inactive: NDArray | None, t: int) -> NDArray | None:
    """The ``(N,)`` mask of step ``t``, or None when every column is active there (the common case)."""
    if inactive is None or not inactive[t].any():
        return None
    return inactive[t]


class RecurrentLayer(Module):
    r"""A stack of ``num_layers`` recurrent layers of one family, uni- or bidirectional, with PyTorch's
    semantics, parameter names and initialisation (every entry :math:`\sim U(-k, k)`, :math:`k = 1/\sqrt{H}`).

    Shapes (T steps, N batch, I input, H hidden, P projection, L layers, D directions, S = P or H):
    ``x (T, N, I)``, ``(N, T, I)`` with ``batch_first``, or unbatched ``(T, I)``; ``out (T, N, D*S)``;
    states ``(L*D, N, S)`` (the LSTM's cell ``(L*D, N, H)``), unbatched ``(L*D, S)``; ``lengths (N,)``.
    """

    family: Family

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 proj_size: int = 0, *, dtype: object = np.float64, rng: object = None) -> None:
        where = self.family.name
        self.input_size = check_positive_int(where, "input_size", input_size)
        self.hidden_size = check_positive_int(where, "hidden_size", hidden_size)
        self.num_layers = check_positive_int(where, "num_layers", num_layers)
        self.bias = check_bool(where, "bias", bias)
        self.batch_first = check_bool(where, "batch_first", batch_first)
        self.bidirectional = check_bool(where, "bidirectional", bidirectional)
        if isinstance(dropout, bool) or not isinstance(dropout, numbers.Real) or not 0.0 <= dropout < 1.0:
            raise ValueError(f"{where}: expected dropout in [0, 1), got {dropout!r}.")
        self.dropout = float(dropout)
        if isinstance(proj_size, bool) or not isinstance(proj_size, numbers.Integral) or proj_size < 0:
            raise ValueError(f"{where}: expected proj_size to be an int >= 0, got {proj_size!r}.")
        if proj_size >= self.hidden_size:
            raise ValueError(f"{where}: expected proj_size < hidden_size ({self.hidden_size}), got {proj_size}.")
        self.proj_size = int(proj_size)
        self.dtype = check_dtype(where, dtype)
        self.rng = resolve_rng(where, rng)
        self.training = True
        self.num_directions = 2 if self.bidirectional else 1
        self.output_size = self.proj_size or self.hidden_size
        bound = 1.0 / np.sqrt(self.hidden_size)
        self.params = {}
        for k in range(self.num_layers):
            for d in range(self.num_directions):
                for base, shape in self._param_shapes(k).items():
                    self.params[self._name(base, k, d)] = self.rng.uniform(-bound, bound, size=shape).astype(self.dtype)
        self.grads = {name: np.zeros_like(value) for name, value in self.params.items()}
        self._tape: _Tape | None = None

    def _param_shapes(self, k: int) -> dict[str, tuple[int, ...]]:
        """PyTorch's parameters of layer k (one direction), in its state-dict order."""
        G, H, S = self.family.gates, self.hidden_size, self.output_size
        layer_input = self.input_size if k == 0 else S * self.num_directions
        shapes = {"weight_ih": (G * H, layer_input), "weight_hh": (G * H, S)}
        if self.bias:
            shapes.update({"bias_ih": (G * H,), "bias_hh": (G * H,)})
        if self.proj_size:
            shapes["weight_hr"] = (self.proj_size, H)
        return shapes

    @staticmethod
    def _name(base: str, k: int, d: int) -> str:
        return f"{base}_l{k}{'_reverse' if d else ''}"

    def _weights(self, k: int, d: int) -> dict[str, NDArray]:
        return {base: self.params[self._name(base, k, d)] for base in self._param_shapes(k)}

    def config(self) -> dict:
        """The constructor's arguments (without ``rng``): ``type(m)(**m.config())`` builds the same shape."""
        config = {"input_size": self.input_size, "hidden_size": self.hidden_size, "num_layers": self.num_layers,
                  "bias": self.bias, "batch_first": self.batch_first, "dropout": self.dropout,
                  "bidirectional": self.bidirectional, "dtype": self.dtype}
        if self.proj_size:
            config["proj_size"] = self.proj_size
        return config

    def __repr__(self) -> str:
        options = ", ".join(f"{k}={v}" for k, v in self.config().items() if k not in ("input_size", "hidden_size"))
        return f"{self.family.name}({self.input_size}, {self.hidden_size}, {options})"

    def train(self, mode: bool = True) -> RecurrentLayer:
        """Training mode (dropout active, the default) or, with ``mode=False``, evaluation mode."""
        self.training = check_bool(f"{self.family.name}.train", "mode", mode)
        return self

    def eval(self) -> RecurrentLayer:
        """Evaluation mode: no dropout."""
        return self.train(False)

    # -- layouts and checks ----------------------------------------------------------------------------------

    def _to_time_major(self, where: str, name: str, value: object, features: int,
                       copy: bool = True) -> tuple[NDArray, bool]:
        """Validate a sequence (x or dout); return it as a (T, N, features) time-major array, and whether it
        was batched. ``copy=False``: the caller's array itself where possible (for input that is only read)."""
        array = as_float_array(where, name, value, self.dtype, copy=copy)
        layout = "(N, T, {})" if self.batch_first else "(T, N, {})"
        if array.ndim not in (2, 3):
            hint = "" if self.batch_first else "For batch-first data pass batch_first=True."
            raise ValueError(f"{where}: expected {name} of shape {layout.format(features)} or unbatched "
                             f"(T, {features}), got {array.shape}. {hint}".rstrip())
        expected = (None,) * (array.ndim - 1) + (features,)
        hint = "" if array.ndim == 2 or self.batch_first else "For batch-first data pass batch_first=True."
        check_shape(where, name, array, expected, hint)
        if array.shape[0] == 0 or (array.ndim == 3 and array.shape[1] == 0):
            raise ValueError(f"{where}: expected {name} with at least one step and one sequence, got shape "
                             f"{array.shape}.")
        if array.ndim == 2:
            return array[:, None, :], False
        return (np.ascontiguousarray(array.swapaxes(0, 1)) if self.batch_first else array), True

    def _from_time_major(self, seq: NDArray, batched: bool) -> NDArray:
        if not batched:
            return seq[:, 0, :]
        return np.ascontiguousarray(seq.swapaxes(0, 1)) if self.batch_first else seq

    def _state_sizes(self) -> tuple[int, ...]:
        """The feature size of each state: h has the output size, an LSTM's c the hidden size."""
        return (self.output_size, self.hidden_size)[:len(self.family.state_names)]

    def _states(self, where: str, value: object, batch: int, batched: bool, prefix: str, suffix: str) -> list[NDArray]:
        """Validate user states (hx or dhx) and return each as an (L*D, N, S) array."""
        names = [f"{prefix}{s}{suffix}" for s in self.family.state_names]
        if len(names) > 1:
            if not isinstance(value, (tuple, list)) or len(value) != len(names):
                raise TypeError(f"{where}: expected a pair ({', '.join(names)}), got {type(value).__name__}.")
            values = list(value)
        elif isinstance(value, tuple):
            raise TypeError(f"{where}: expected an array {names[0]}, got a tuple (only an LSTM takes a pair).")
        else:
            values = [value]
        LD = self.num_layers * self.num_directions
        states = []
        for name, state, size in zip(names, values, self._state_sizes(), strict=True):
            array = as_float_array(where, name, state, self.dtype)
            check_shape(where, name, array, (LD, batch, size) if batched else (LD, size))
            states.append(array.reshape(LD, batch, size))
        return states

    def _pack(self, states: list[NDArray], batched: bool):
        """States in the family's user form: a pair for an LSTM, one array otherwise."""
        shaped = [s if batched else s[:, 0, :] for s in states]
        return tuple(shaped) if len(shaped) > 1 else shaped[0]

    def _lengths(self, where: str, lengths: object, steps: int, batch: int, batched: bool) -> NDArray | None:
        if lengths is None:
            return None
        if not batched:
            raise ValueError(f"{where}: expected batched x with lengths (one length per sequence), got unbatched x.")
        array = as_array(where, "lengths", lengths)
        if array.dtype == np.bool_ or not np.issubdtype(array.dtype, np.integer):
            raise TypeError(f"{where}: expected lengths to be integers, got dtype {array.dtype}.")
        check_shape(where, "lengths", array, (batch,))
        if array.min() < 1 or array.max() > steps:
            raise ValueError(f"{where}: expected lengths between 1 and T = {steps}, got values from {array.min()} "
                             f"to {array.max()}.")
        return None if (array == steps).all() else array.astype(np.int64)

    # -- passes ----------------------------------------------------------------------------------------------

    def forward(self, x: object, hx: object = None, lengths: object = None):
        """Run all layers and directions over ``x``; returns ``out, h_n`` (``out, (h_n, c_n)`` for an LSTM)."""
        where = f"{self.family.name}.forward"
        taped = not is_inference_mode()                     # a backward pass may follow: keep every cache
        seq, batched = self._to_time_major(where, "x", x, self.input_size, copy=taped)   # only read without one
        T, N, _ = seq.shape
        lengths = self._lengths(where, lengths, T, N, batched)
        inactive = None if lengths is None else np.arange(T)[:, None] >= lengths
        LD, S = self.num_layers * self.num_directions, self._state_sizes()
        if hx is None:
            initial = [np.zeros((LD, N, size), dtype=self.dtype) for size in S]
        else:
            initial = self._states(where, hx, N, batched, "", "0")
        finals = [np.empty_like(s) for s in initial]
        caches, masks = [], []
        forward = self.family.forward if taped else self._forward_in_chunks
        layer_input = seq
        for k in range(self.num_layers):
            outputs = []
            for d in range(self.num_directions):
                j = k * self.num_directions + d
                x_d = reverse_within_lengths(layer_input, lengths) if d else layer_input
                out, state, cache = forward(self._weights(k, d), x_d, tuple(s[j] for s in initial), inactive)
                if inactive is not None:
                    out[inactive] = 0.0
                outputs.append(reverse_within_lengths(out, lengths) if d else out)
                for final, value in zip(finals, state, strict=True):
                    final[j] = value
                caches.append(cache)
            layer_input = outputs[0] if self.num_directions == 1 else np.concatenate(outputs, axis=2)
            if self.training and self.dropout > 0 and k < self.num_layers - 1:
                keep = self.rng.random(layer_input.shape) >= self.dropout
                masks.append(keep.astype(self.dtype) / (1.0 - self.dropout))
                layer_input = layer_input * masks[-1]
        self._tape = _Tape(caches, masks, lengths, inactive, batched, T, N) if taped else None
        return self._from_time_major(layer_input, batched), self._pack(finals, batched)

    def _forward_in_chunks(self, weights: dict[str, NDArray], x: NDArray, states: State,
                           inactive: NDArray | None) -> tuple[NDArray, State, None]:
        """The core's forward pass over ``x`` in chunks of steps (:func:`inference_chunk`), the states carried
        from one to the next and every chunk's cache dropped: the output and final states, no cache."""
        T, N, _ = x.shape
        chunk = inference_chunk(weights["weight_hh"].shape[0], N, x.dtype.itemsize, T)
        out = None
        for start in range(0, T, chunk):
            stop = min(start + chunk, T)
            part, states, _ = self.family.forward(weights, x[start:stop], states,
                                                  None if inactive is None else inactive[start:stop])
            if out is None:
                out = np.empty((T, N, part.shape[2]), dtype=part.dtype)
            out[start:stop] = part
        return out, states, None

    def backward(self, dout: object, dhx: object = None):
        """BPTT through the most recent forward pass. ``dout`` has the shape of ``out``; ``dhx`` the form and
        shapes of the final states (zeros when omitted). Parameter gradients are added into ``grads``;
        returns ``dx, dh0`` (``dx, (dh0, dc0)`` for an LSTM)."""
        where = f"{self.family.name}.backward"
        tape = self._tape
        if tape is None:
            raise ValueError(f"{where}: expected a forward pass first, got none (a forward pass under "
                             f"bptt.inference_mode() keeps nothing to go back through).")
        T, N, batched = tape.steps, tape.batch, tape.batched
        F = self.num_directions * self.output_size
        expected = ((N, T, F) if self.batch_first else (T, N, F)) if batched else (T, F)
        check_shape(where, "dout", as_array(where, "dout", dout), expected,
                    "dout must have the shape of the forward output.")
        upstream, _ = self._to_time_major(where, "dout", dout, F, copy=False)  # only read
        LD = self.num_layers * self.num_directions
        if dhx is None:
            dfinals = [np.zeros((LD, N, size), dtype=self.dtype) for size in self._state_sizes()]
        else:
            dfinals = self._states(where, dhx, N, batched, "d", "_n")
        dinitials = [np.empty_like(s) for s in dfinals]
        for k in range(self.num_layers - 1, -1, -1):
            if k < len(tape.dropout_masks):
                upstream = upstream * tape.dropout_masks[k]
            dx_sum = None
            for d in range(self.num_directions):
                j = k * self.num_directions + d
                dout_d = upstream[:, :, d * self.output_size:(d + 1) * self.output_size]  # a view: only read
                if tape.inactive is not None:
                    dout_d = np.where(tape.inactive[:, :, None], 0.0, dout_d)  # padded outputs are constant zeros
                if d:
                    dout_d = reverse_within_lengths(dout_d, tape.lengths)
                dx, dinitial, grads = self.family.backward(self._weights(k, d), tape.caches[j], dout_d,
                                                           tuple(s[j] for s in dfinals))
                if d:
                    dx = reverse_within_lengths(dx, tape.lengths)
                for base, grad in grads.items():
                    self.grads[self._name(base, k, d)] += grad
                for target, value in zip(dinitials, dinitial, strict=True):
                    target[j] = value
                dx_sum = dx if dx_sum is None else dx_sum + dx
            upstream = dx_sum
        return self._from_time_major(upstream, batched), self._pack(dinitials, batched)


# -- whole-sequence pieces of the cores (the RNN, row-major, takes only combined_bias and chunk_steps) ---------

def combined_bias(weights: dict[str, NDArray]) -> NDArray | None:
    """b_ih + b_hh, for the families where the two biases only ever enter as their sum (LSTM, RNN)."""
    return weights["bias_ih"] + weights["bias_hh"] if "bias_ih" in weights else None


def project_inputs(weight: NDArray, x: NDArray, bias: NDArray | None) -> NDArray:
    """``W x_t + b`` for all steps, as ``(T, R, N)``: each step's block is contiguous, so the loop adds it to
    the recurrent term without a strided read (a ``(R, T*N)`` matrix, one plain GEMM, made that add 10x
    slower than the GEMM saved, its column blocks being spread over the whole matrix). The result is the
    step's gate buffer.

    How the product is taken depends on the batch (measured on OpenBLAS, docs/performance.md):

    - ``N >= 32`` or one input feature: one matmul call over the stack of steps, a GEMM per step. With a
      bias, the bias is one more column of ``W`` and a row of ones one more row of the steps,
      ``[W b] [x_t; 1]``, so the GEMM adds it and the result is written once: at (T, N, I, H) =
      (100, 32, 32, 128) in 0.4-0.6 of the time of a GEMM and a separate add, with one input feature in
      0.15-0.2 (a GEMM of inner size 1 is slow, one of inner size 2 is not).
    - fewer sequences and several input features: such per-step GEMMs are skinny and run far below the GEMM
      peak (2x slower than the alternative at (50, 16, 512, 1024)), so chunks of steps are projected as one
      row-major ``(k N, I)(I, R)`` GEMM each and transposed into place (:func:`_project_in_chunks`).
    """
    T, N, I = x.shape
    if I > 1 and N < WIDE_BATCH:
        return _project_in_chunks(weight, x, bias)
    if bias is None:
        x_steps = x.transpose(0, 2, 1)                      # (T, I, N), a view
        return np.multiply(weight, x_steps) if I == 1 else np.matmul(weight, x_steps)
    x_steps = np.empty((T, I + 1, N), dtype=x.dtype)        # [x_t; 1] for every step
    x_steps[:, :I] = x.transpose(0, 2, 1)
    x_steps[:, I] = 1.0
    return np.matmul(np.concatenate([weight, bias[:, None]], axis=1), x_steps)


WIDE_BATCH = 32    # sequences from which a per-step projection GEMM runs near the GEMM peak


def _project_in_chunks(weight: NDArray, x: NDArray, bias: NDArray | None, rows: int = 1024) -> NDArray:
    """:func:`project_inputs` for a narrow batch: ``X W^T`` over about ``rows`` rows (steps times sequences) at
    a time, into one reused row-major buffer, then transposed into the ``(T, R, N)`` result with the bias."""
    T, N, I = x.shape
    R = weight.shape[0]
    projection = np.empty((T, R, N), dtype=x.dtype)
    k = chunk_steps(N, T, rows)
    row_major = np.empty((k * N, R), dtype=x.dtype)
    for start in range(0, T, k):
        stop = min(T, start + k)
        m = (stop - start) * N
        matmul(x[start:stop].reshape(m, I), weight.T, out=row_major[:m])
        steps = row_major[:m].reshape(stop - start, N, R).transpose(0, 2, 1)
        if bias is None:
            projection[start:stop] = steps
        else:
            np.add(steps, bias[:, None], out=projection[start:stop])
    return projection


def step_columns(per_step: NDArray) -> NDArray:
    """``(T, R, N)`` feature-major per-step blocks as one ``(R, T*N)`` matrix (a copy), column block t = step t."""
    T, R, N = per_step.shape
    return per_step.transpose(1, 0, 2).reshape(R, T * N)


INFERENCE_CHUNK_BYTES = 4 << 20
"""About how large the gate buffer of one chunk of an inference forward pass is (4 MiB: within a core's share of
the last-level cache on common CPUs, and far below a long sequence's whole cache)."""


def inference_chunk(gate_rows: int, batch: int, itemsize: int, steps: int) -> int:
    """Steps per chunk of a forward pass under :func:`bptt.layers.inference.inference_mode`: a gate buffer of
    ``gate_rows`` rows (G H) of ``batch`` values near :data:`INFERENCE_CHUNK_BYTES`, at least 16 steps (the
    per-call work stays small beside the chunk's), at most ``steps``."""
    return max(1, min(steps, max(16, INFERENCE_CHUNK_BYTES // (gate_rows * batch * itemsize))))


def chunk_steps(batch: int, steps: int, columns: int = 512) -> int:
    """Steps per chunk of the backward pass's whole-sequence work: about ``columns`` columns of ``batch``
    sequences each, at least 1, at most ``steps``."""
    return max(1, min(steps, -(-columns // batch)))


class FeatureMajorSteps:
    """A ``(T, N, F)`` sequence read step by step, from the last step to the first, as contiguous ``(F, N)``
    blocks: one chunk of steps is transposed at a time, so no transposed copy of the whole sequence exists."""

    def __init__(self, seq: NDArray, chunk: int) -> None:
        T, N, F = seq.shape
        self.seq, self.chunk = seq, chunk
        self.buffer = np.empty((chunk, F, N), dtype=seq.dtype)
        self.start = self.stop = 0                      # the steps the buffer holds

    def __getitem__(self, t: int) -> NDArray:
        if not self.start <= t < self.stop:
            self.start = t - t % self.chunk
            self.stop = min(self.start + self.chunk, len(self.seq))
            np.copyto(self.buffer[:self.stop - self.start], self.seq[self.start:self.stop].transpose(0, 2, 1))
        return self.buffer[t - self.start]


class ChunkedGradients:
    r"""The gradients of a projection :math:`z_t = W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh}`, gathered
    chunk by chunk of steps from a backward loop that runs from the last step to the first.

    Each step hands over its :math:`\delta z_t` ``(R, N)``; the blocks fill a ``(R, k N)`` column buffer, and
    when a chunk of ``k`` steps is complete (at its first step) GEMMs over all its columns update
    :math:`\delta W_{ih} \mathrel{+}= D X`, :math:`\delta W_{hh} \mathrel{+}= D H_{prev}^\top`, the biases
    :math:`\mathrel{+}= D \mathbf 1`, and write :math:`\delta x = D^\top W_{ih}` for those steps. Chunks of
    about 512 columns keep the GEMMs large, and the loop never holds a ``(T, R, N)`` array of all
    :math:`\delta z_t` nor its transposed copy, so memory stays near the cache's size.

    With ``input_tail = m > 0`` the input side differs from the hidden side in its last ``m`` rows (the GRU's
    candidate, whose recurrent term is scaled by the reset gate): :meth:`add` then takes those rows of the
    input side separately into an ``(m, k N)`` buffer of their own, the input side's GEMMs take its first
    rows from the hidden side's buffer and its last rows from that one, and the two biases get their own
    gradients.
    """

    def __init__(self, x: NDArray, h_prev: NDArray, weight_ih: NDArray, *, bias: bool, input_tail: int = 0,
                 columns: int = 512):
        T, N, I = x.shape
        R, S = weight_ih.shape[0], h_prev.shape[1]
        self.x, self.h_prev, self.weight_ih = x, h_prev, weight_ih  # h_prev (T, S, N): h_0 .. h_{T-1}
        self.input_tail = input_tail
        self.chunk = chunk_steps(N, T, columns)
        self.hidden_columns = np.empty((R, self.chunk * N), dtype=x.dtype)
        self.tail_columns = np.empty((input_tail, self.chunk * N), dtype=x.dtype) if input_tail else None
        self.weight_ih_grad = np.zeros((R, I), dtype=x.dtype)
        self.weight_hh_grad = np.zeros((R, S), dtype=x.dtype)
        self.bias_ih_grad = np.zeros(R, dtype=x.dtype) if bias else None
        self.bias_hh_grad = np.zeros(R, dtype=x.dtype) if bias and input_tail else self.bias_ih_grad
        self.dx = np.empty_like(x)

    def add(self, t: int, block: NDArray, input_tail_block: NDArray | None = None) -> None:
        """Take step ``t``'s block (and the input side's last rows, with ``input_tail``); steps must come in
        decreasing order, each once."""
        N = self.x.shape[1]
        start = t - t % self.chunk
        where = slice((t - start) * N, (t - start + 1) * N)
        self.hidden_columns[:, where] = block
        if self.input_tail:
            self.tail_columns[:, where] = input_tail_block
        if t == start:
            self._flush(start, min(start + self.chunk, len(self.x)))

    def _flush(self, start: int, stop: int) -> None:
        T, N, I = self.x.shape
        k = stop - start
        hidden = self.hidden_columns[:, :k * N]                        # column block j = step start + j
        x_rows = self.x[start:stop].reshape(k * N, I)
        self.weight_hh_grad += matmul(hidden, step_columns(self.h_prev[start:stop]).T)
        if self.bias_ih_grad is not None and self.input_tail:
            self.bias_hh_grad += hidden.sum(axis=1)
        m = self.input_tail
        shared = slice(0, len(hidden) - m)                             # rows where input and hidden sides agree
        dx = self._input_side(shared, hidden[shared], x_rows)
        if m:
            dx += self._input_side(slice(len(hidden) - m, None), self.tail_columns[:, :k * N], x_rows)
        self.dx[start:stop] = dx.reshape(k, N, I)

    def _input_side(self, rows: slice, columns: NDArray, x_rows: NDArray) -> NDArray:
        """The input side's share of a chunk for the weight rows ``rows``: dW_ih and db_ih there, and its part of
        dx, returned as ``(k N, I)``."""
        self.weight_ih_grad[rows] += matmul(columns, x_rows)
        if self.bias_ih_grad is not None:
            self.bias_ih_grad[rows] += columns.sum(axis=1)
        return columns.T @ self.weight_ih[rows]


def halved_rows(array: NDArray, rows: NDArray | None, halved: int) -> NDArray:
    """A copy of ``array`` (weights or a bias) with its rows in the order ``rows`` (None: as they are) and the
    first ``halved`` of them halved, which is exact: the internal gate order of the passes."""
    result = array[rows] if rows is not None else array.copy()
    result[:halved] *= 0.5
    return result


class GateProduct:
    r"""The product ``W v`` with the gate rows in the internal order and the first ``halved`` of them halved,
    for a call whose operands have ``columns`` columns in all.

    Reordering and halving the rows of ``W`` costs one pass over ``W``; doing it to the product instead costs
    one pass over the product, so the cheaper side is chosen: the weights for a long or wide call, the
    products for a short, narrow one (streaming one step of one sequence). Both give the same numbers, since
    halving is exact and reordering rows changes no sum.
    """

    def __init__(self, weight: NDArray, rows: NDArray | None, halved: int, columns: int):
        self.rows, self.halved = rows, halved
        self.on_weights = columns >= weight.shape[1]
        if self.on_weights:
            self.weight = halved_rows(weight, rows, halved)
        else:
            self.weight = weight

    def __call__(self, v: NDArray, out: NDArray) -> NDArray:
        if self.on_weights:
            return matmul(self.weight, v, out=out)
        product = matmul(self.weight, v)
        if self.rows is not None:
            np.take(product, self.rows, axis=0, out=out)
        else:
            out[...] = product
        out[:self.halved] *= 0.5
        return out

    def project(self, x: NDArray, bias: NDArray | None) -> NDArray:
        """``W x_t + b`` for every step of ``x (T, N, I)`` as ``(T, R, N)``, rows reordered and halved likewise."""
        if self.on_weights:
            halved_bias = None if bias is None else halved_rows(bias, self.rows, self.halved)
            return project_inputs(self.weight, x, halved_bias)
        projection = project_inputs(self.weight, x, bias)
        if self.rows is not None:
            projection = np.ascontiguousarray(projection[:, self.rows])   # fancy indexing may not give C order
        projection[:, :self.halved] *= 0.5
        return projection
