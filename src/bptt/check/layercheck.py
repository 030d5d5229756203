"""Gradient checks of whole recurrent layers: every parameter, the input and the initial states."""

from __future__ import annotations

import dataclasses

import numpy as np
from numpy.typing import NDArray

from bptt._validation import as_float_array, resolve_rng
from bptt.check.gradcheck import Diagnosis, Report, TensorResult, gradcheck
from bptt.layers.module import Module
from bptt.layers.recurrent import RecurrentLayer


def _as_tuple(state: object) -> tuple:
    return tuple(state) if isinstance(state, (tuple, list)) else (state,)


def _pack(states: tuple):
    """The layer's own state form: a pair (h, c) for an LSTM, a single array otherwise."""
    return states if len(states) > 1 else states[0]


def float64_twin(layer: Module) -> Module:
    """A float64 layer of the same class, options, mode and weights, with its own gradients."""
    twin = type(layer)(**{**layer.config(), "dtype": np.float64})
    twin.load_state_dict(layer.state_dict())
    twin.train(layer.training)
    return twin


def _locate(row: TensorResult, layer: Module, batched: bool) -> TensorResult:
    """Name the worst entry of an input or state gradient in words: its time step, or its layer."""
    if row.ok or not row.worst_index:
        return row
    if row.name == "x":
        t = row.worst_index[1] if batched and getattr(layer, "batch_first", False) else row.worst_index[0]
        steps = row.shape[1] if batched and getattr(layer, "batch_first", False) else row.shape[0]
        return dataclasses.replace(row, location=f"time step {t} of {steps}")
    return dataclasses.replace(row, location=f"layer {row.worst_index[0]}")


def check_layer(layer: Module, x: object, hx: object = None, *, lengths: object = None, mode: str = "full",
                samples: int | None = None, seed: int | None = None) -> Report:
    """Check every parameter gradient of ``layer``, and the gradients of ``x`` and of the initial states,
    against central differences.

    The loss is :math:`\\sum \\mathrm{out} \\odot W_o + \\sum_s s_n \\odot W_s` with random upstream weights
    (seeded by ``seed``) for the output and every final state, so every gradient path is exercised. The
    check runs on a float64 twin of the layer: the layer's own ``grads`` are left alone, and a float32 layer
    is checked in float64 (with a note in the report). In training mode with dropout, every evaluation
    draws the same mask (the twin's ``rng`` is reseeded), so the check sees one fixed function. Failing
    input or state gradients name their worst time step or layer.

    Examples
    --------
    >>> from bptt import LSTM
    >>> check_layer(LSTM(2, 3, rng=0), np.ones((4, 1, 2)), seed=0).ok
    True
    """
    if not isinstance(layer, RecurrentLayer):
        raise TypeError(f"check_layer: expected an LSTM, GRU or RNN layer, got {type(layer).__name__}.")
    rng = resolve_rng("check_layer", seed, "seed")
    checked = float64_twin(layer)
    mask_seed = int(rng.integers(2**32))
    x = as_float_array("check_layer", "x", x, np.float64)

    def run(x: NDArray, hx: object):
        checked.rng = np.random.default_rng(mask_seed)  # the same dropout mask on every call
        return checked.forward(x, hx, lengths)

    out, final = run(x, hx)
    finals = _as_tuple(final)
    state_names = ("h0", "c0")[:len(finals)]
    initial = [np.zeros_like(s) for s in finals] if hx is None else [np.array(s, dtype=np.float64)
                                                                        for s in _as_tuple(hx)]
    out_weights = rng.standard_normal(out.shape)
    state_weights = [rng.standard_normal(s.shape) for s in finals]

    def loss(p: dict[str, NDArray]) -> float:
        out, final = run(p["x"], _pack(tuple(p[name] for name in state_names)))
        return float(np.sum(out * out_weights)
                     + sum(np.sum(s * w) for s, w in zip(_as_tuple(final), state_weights, strict=True)))

    params = dict(checked.params, x=x, **dict(zip(state_names, initial, strict=True)))
    value = loss(params)
    checked.zero_grad()
    dx, dstates = checked.backward(out_weights, _pack(tuple(state_weights)))
    grads = dict(checked.grads, x=dx, **dict(zip(state_names, _as_tuple(dstates), strict=True)))
    report = gradcheck(loss, params, grads, loss=value, mode=mode, samples=samples, seed=seed)
    batched = x.ndim == 3
    report.rows = [_locate(row, checked, batched) if row.name in ("x", *state_names) else row for row in report.rows]
    if np.dtype(layer.dtype) != np.float64:
        report.diagnoses.append(Diagnosis(
            "float64-copy", f"the layer is {np.dtype(layer.dtype)}; it was checked through a float64 copy with "
            "the same weights, which checks the derivation, not float32 round-off.", "note"))
    return report
