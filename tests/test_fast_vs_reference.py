"""The fast path equals the textbook reference (``bptt.reference``): every family, both paths (the NumPy loops over
steps, and the compiled whole-sequence loops at every size), both directions, layers, lengths and the LSTM's
projection, to 1e-12 relative in float64. This is the oracle that needs no torch: without torch
installed, these tests still verify every fast-path line."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
from unittest import mock

import numpy as np
import pytest
from errors import rel_err
from hypothesis import given, settings
from hypothesis import strategies as st
from kernel_choice import numpy_path
from reference_stack import reference_stack

from bptt import GRU, LSTM, RNN
from bptt.layers import gru, kernels, recurrent, rnn
from bptt.layers import lstm as lstm_module

HAS_NUMBA = importlib.util.find_spec("numba") is not None
# The paths a pass can take: BPTT_KERNELS=numpy (the NumPy loops); numba with every family's compiled loops.
PATHS = ["numpy", "sequence-kernels"] if HAS_NUMBA else ["numpy"]
FAMILIES = ["lstm", "gru", "rnn-tanh", "rnn-relu"]


@contextlib.contextmanager
def kernel_path(path: str):
    """Inside: the fast path takes ``path``; the environment and module constants are restored after."""
    loops = {}                                              # each family's loops, where not as compiled_loops chooses
    if path == "sequence-kernels":
        loops = {lstm_module: kernels.lstm_sequence_kernels(), rnn: kernels.rnn_sequence_kernels(),
                 gru: kernels.gru_sequence_kernels()}
    with numpy_path(path == "numpy"), contextlib.ExitStack() as stack:
        for module, chosen in loops.items():
            stack.enter_context(mock.patch.object(module, "compiled_loops", lambda *args, chosen=chosen: chosen))
        yield


@contextlib.contextmanager
def chunking(steps: int | None, wide: bool):
    """Inside: the whole-sequence GEMMs work on chunks of at most ``steps`` steps (None: as shipped), and with
    ``wide`` the input projection takes its wide-batch form for any batch, so that small hypothesis shapes
    reach every chunk boundary and both projection forms."""
    patches = [mock.patch.object(recurrent, "WIDE_BATCH", 1)] if wide else []
    if steps is not None:
        def few_steps(batch: int, total: int, columns: int = 512) -> int:
            return max(1, min(total, steps))
        patches += [mock.patch.object(module, "chunk_steps", few_steps) for module in (recurrent, rnn)]
    with contextlib.ExitStack() as stack:
        for patch in patches:
            stack.enter_context(patch)
        yield


def build(family: str, I: int, H: int, L: int, bidirectional: bool, bias: bool, proj: int, batch_first: bool,
          dtype, seed: int):
    options = {"num_layers": L, "bias": bias, "bidirectional": bidirectional, "batch_first": batch_first,
               "dtype": dtype, "rng": seed}
    if family == "lstm":
        return LSTM(I, H, proj_size=proj, **options)
    if family == "gru":
        return GRU(I, H, **options)
    return RNN(I, H, nonlinearity=family.removeprefix("rnn-"), **options)


def compare(layer, x, initials, lengths, dout, dfinals, path: str, chunk: int | None, wide: bool) -> dict:
    """Relative errors of the fast path (run on ``path``) against the reference stack, per tensor."""
    expected = reference_stack(layer, x, initials, lengths, dout, dfinals)
    pack = tuple if layer.family.name == "LSTM" else (lambda states: states[0])
    to_layout = (lambda seq: np.ascontiguousarray(seq.swapaxes(0, 1))) if layer.batch_first else (lambda seq: seq)
    layer.zero_grad()
    with kernel_path(path), chunking(chunk, wide):
        out, finals = layer(to_layout(x), pack(initials), lengths=lengths)
        dx, dinitials = layer.backward(to_layout(dout), pack(dfinals))
    finals = list(finals) if isinstance(finals, tuple) else [finals]
    dinitials = list(dinitials) if isinstance(dinitials, tuple) else [dinitials]
    upstream = max(float(np.max(np.abs(g))) for g in [dout, *dfinals])
    errors = {"out": rel_err(to_layout(out), expected.out, 1.0),
              "dx": rel_err(to_layout(dx), expected.dx, upstream)}
    for k, (actual, reference) in enumerate(zip(finals, expected.finals, strict=True)):
        errors[f"final[{k}]"] = rel_err(actual, reference, 1.0)
    for k, (actual, reference) in enumerate(zip(dinitials, expected.dinitials, strict=True)):
        errors[f"dinitial[{k}]"] = rel_err(actual, reference, upstream)
    for name, grad in expected.grads.items():
        errors[name] = rel_err(layer.grads[name], grad, upstream)
    return errors


@settings(max_examples=60, deadline=None)
@given(family=st.sampled_from(FAMILIES), path=st.sampled_from(PATHS), T=st.integers(1, 7), N=st.integers(1, 5),
       I=st.integers(1, 5), H=st.integers(1, 6), L=st.integers(1, 2), bidirectional=st.booleans(),
       bias=st.booleans(), proj=st.booleans(), padded=st.booleans(), states=st.booleans(),
       batch_first=st.booleans(), chunk=st.sampled_from([None, 1, 2, 3]), wide=st.booleans(),
       seed=st.integers(0, 2**32 - 1))
def test_the_fast_path_equals_the_reference_in_float64(family, path, T, N, I, H, L, bidirectional, bias, proj,
                                                      padded, states, batch_first, chunk, wide, seed):
    rng = np.random.default_rng(seed)
    proj_size = int(rng.integers(1, H)) if family == "lstm" and proj and H > 1 else 0
    layer = build(family, I, H, L, bidirectional, bias, proj_size, batch_first, np.float64, seed)
    D, LD = layer.num_directions, L * layer.num_directions
    sizes = [layer.output_size, H] if family == "lstm" else [layer.output_size]
    x = rng.standard_normal((T, N, I))
    lengths = rng.integers(1, T + 1, size=N) if padded else None
    initials = [rng.standard_normal((LD, N, size)) if states else np.zeros((LD, N, size)) for size in sizes]
    dout = rng.standard_normal((T, N, D * layer.output_size))
    dfinals = [rng.standard_normal((LD, N, size)) for size in sizes]
    errors = compare(layer, x, initials, lengths, dout, dfinals, path, chunk, wide)
    worst = max(errors, key=errors.get)
    assert errors[worst] <= 1e-12, f"{worst}: relative error {errors[worst]:.2e} on the {path} path ({errors})"


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("family", FAMILIES)
def test_the_fast_path_equals_the_reference_on_a_larger_layer(family, path):
    """Past the small-layer kernels' size, with the chunk sizes as shipped: (T, N, I, H) = (120, 9, 7, 12), two
    bidirectional layers, ragged lengths. The narrow-batch input projection then takes two chunks (114 and 6
    steps) and the weight gradients three (57, 57 and 6 steps)."""
    rng = np.random.default_rng(7)
    layer = build(family, 7, 12, 2, True, True, 5 if family == "lstm" else 0, False, np.float64, 3)
    sizes = [layer.output_size, 12] if family == "lstm" else [layer.output_size]
    T, N = 120, 9
    x = rng.standard_normal((T, N, 7))
    lengths = rng.integers(1, T + 1, size=N)
    lengths[0] = T
    initials = [rng.standard_normal((4, N, size)) for size in sizes]
    dout = rng.standard_normal((T, N, 2 * layer.output_size))
    dfinals = [rng.standard_normal((4, N, size)) for size in sizes]
    errors = compare(layer, x, initials, lengths, dout, dfinals, path, None, False)
    worst = max(errors, key=errors.get)
    assert errors[worst] <= 1e-12, f"{worst}: relative error {errors[worst]:.2e} ({errors})"


@settings(max_examples=20, deadline=None)
@given(family=st.sampled_from(FAMILIES), path=st.sampled_from(PATHS), T=st.integers(1, 6), N=st.integers(1, 4),
       I=st.integers(1, 4), H=st.integers(1, 5), bidirectional=st.booleans(), padded=st.booleans(),
       seed=st.integers(0, 2**32 - 1))
def test_the_fast_path_equals_the_reference_in_float32(family, path, T, N, I, H, bidirectional, padded, seed):
    """float32 on both sides: equal to float32 round-off (the two sum in different orders)."""
    rng = np.random.default_rng(seed)
    layer = build(family, I, H, 1, bidirectional, True, 0, False, np.float32, seed)
    D = layer.num_directions
    sizes = [H, H] if family == "lstm" else [H]
    x = rng.standard_normal((T, N, I)).astype(np.float32)
    lengths = rng.integers(1, T + 1, size=N) if padded else None
    initials = [rng.standard_normal((D, N, size)).astype(np.float32) for size in sizes]
    dout = rng.standard_normal((T, N, D * H)).astype(np.float32)
    dfinals = [rng.standard_normal((D, N, size)).astype(np.float32) for size in sizes]
    errors = compare(layer, x, initials, lengths, dout, dfinals, path, None, False)
    worst = max(errors, key=errors.get)
    assert errors[worst] <= 1e-5, f"{worst}: relative error {errors[worst]:.2e} on the {path} path ({errors})"


def test_the_oracle_sees_a_planted_error():
    """The comparison can fail: a fast path whose W_hh gradient is off by one part in 1e9 is caught."""
    rng = np.random.default_rng(0)
    layer = build("gru", 3, 4, 1, False, True, 0, False, np.float64, 0)
    x, dout = rng.standard_normal((5, 2, 3)), rng.standard_normal((5, 2, 4))
    zeros = [np.zeros((1, 2, 4))]
    original = layer.family.backward

    def planted(weights, cache, dout, dfinals):
        dx, dinitials, grads = original(weights, cache, dout, dfinals)
        grads["weight_hh"] = grads["weight_hh"] * (1 + 1e-9)
        return dx, dinitials, grads

    with mock.patch.object(layer, "family", dataclasses.replace(layer.family, backward=planted)):
        errors = compare(layer, x, zeros, None, dout, [rng.standard_normal((1, 2, 4))], "numpy", None, False)
    assert errors["weight_hh_l0"] > 1e-12
    assert max(v for k, v in errors.items() if k != "weight_hh_l0") <= 1e-12
