"""bptt.layers.kernels: the compiled LSTM and GRU steps give bitwise the numbers of the NumPy path they replace; the
LSTM's whole-sequence kernels for small layers give them to rounding."""

from __future__ import annotations

import contextlib
import os
import sys
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bptt import GRU, LSTM
from bptt.layers import kernels, lstm

pytest.importorskip("numba")


@contextlib.contextmanager
def numpy_path(enabled: bool):
    """Inside: the kernel choice as with BPTT_KERNELS=numpy (``enabled``) or without it; restored after."""
    saved = os.environ.pop("BPTT_KERNELS", None)
    if enabled:
        os.environ["BPTT_KERNELS"] = "numpy"
    try:
        yield
    finally:
        os.environ.pop("BPTT_KERNELS", None)
        if saved is not None:
            os.environ["BPTT_KERNELS"] = saved


def backward_results(layer, x: np.ndarray, dout: np.ndarray, lengths) -> list[np.ndarray]:
    layer.zero_grad()
    out, final = layer(x, lengths=lengths)
    dx, dh0 = layer.backward(dout)
    states = [*(final if isinstance(final, tuple) else (final,)), *(dh0 if isinstance(dh0, tuple) else (dh0,))]
    return [out, dx, *states, *(g.copy() for g in layer.grads.values())]


@settings(max_examples=40, deadline=None)
@given(family=st.sampled_from(["lstm", "gru"]), T=st.integers(1, 6), N=st.integers(1, 4), I=st.integers(1, 5),
       H=st.integers(1, 6), L=st.integers(1, 2), bidirectional=st.booleans(), bias=st.booleans(),
       proj=st.booleans(), padded=st.booleans(), dtype=st.sampled_from([np.float32, np.float64]),
       seed=st.integers(0, 2**16))
def test_kernels_give_bitwise_the_outputs_and_gradients_of_the_numpy_path(family, T, N, I, H, L, bidirectional,
                                                                          bias, proj, padded, dtype, seed):
    rng = np.random.default_rng(seed)
    options = {"proj_size": H - 1} if family == "lstm" and proj and H > 1 else {}
    layer = {"lstm": LSTM, "gru": GRU}[family](I, H, L, bias=bias, bidirectional=bidirectional, dtype=dtype,
                                              rng=seed, **options)
    x = rng.standard_normal((T, N, I))
    dout = rng.standard_normal((T, N, (2 if bidirectional else 1) * layer.output_size))
    lengths = rng.integers(1, T + 1, size=N) if padded else None
    with numpy_path(False), mock.patch.object(lstm, "WHOLE_SEQUENCE_UNITS", 0):   # the step kernels only
        assert getattr(kernels, f"{family}_backward_cell")() is not None
        assert kernels.lstm_forward_cell() is not None and kernels.gru_forward_cells() is not None
        fused = backward_results(layer, x, dout, lengths)
    with numpy_path(True):
        reference = backward_results(layer, x, dout, lengths)
    for ours, theirs in zip(fused, reference, strict=True):
        np.testing.assert_array_equal(ours, theirs)


@settings(max_examples=40, deadline=None)
@given(T=st.integers(1, 8), N=st.integers(1, 4), I=st.integers(1, 5), H=st.integers(1, 16), L=st.integers(1, 2),
       bidirectional=st.booleans(), bias=st.booleans(), dtype=st.sampled_from([np.float32, np.float64]),
       seed=st.integers(0, 2**16))
def test_whole_sequence_kernels_give_the_numpy_path_numbers_to_rounding(T, N, I, H, L, bidirectional, bias, dtype,
                                                                       seed):
    rng = np.random.default_rng(seed)
    layer = LSTM(I, H, L, bias=bias, bidirectional=bidirectional, dtype=dtype, rng=seed)
    x = rng.standard_normal((T, N, I))
    dout = rng.standard_normal((T, N, (2 if bidirectional else 1) * H))
    with numpy_path(False):
        assert H * N <= lstm.WHOLE_SEQUENCE_UNITS and lstm.whole_sequence_kernels(H * N, None, False) is not None
        whole = backward_results(layer, x, dout, None)
    with numpy_path(True):
        assert lstm.whole_sequence_kernels(H * N, None, False) is None
        reference = backward_results(layer, x, dout, None)
    tolerance = 1e-12 if dtype == np.float64 else 2e-5
    for ours, theirs in zip(whole, reference, strict=True):
        scale = max(1.0, float(np.abs(theirs).max()))
        np.testing.assert_allclose(ours, theirs, rtol=tolerance, atol=tolerance * scale)


def test_larger_layers_padding_and_projection_keep_the_step_loop():
    assert lstm.whole_sequence_kernels(lstm.WHOLE_SEQUENCE_UNITS, None, False) is not None
    assert lstm.whole_sequence_kernels(lstm.WHOLE_SEQUENCE_UNITS + 1, None, False) is None
    assert lstm.whole_sequence_kernels(4, np.zeros((3, 2), dtype=bool), False) is None
    assert lstm.whole_sequence_kernels(4, None, True) is None


def test_without_numba_there_is_no_kernel(monkeypatch):
    monkeypatch.setitem(sys.modules, "numba", None)  # import numba now raises ImportError
    kernels._compiled.cache_clear()
    with numpy_path(False):
        assert kernels.lstm_backward_cell() is None and kernels.gru_backward_cell() is None
        assert kernels.lstm_forward_cell() is None and kernels.gru_forward_cells() is None
        assert kernels.lstm_sequence_kernels() is None
    kernels._compiled.cache_clear()


def test_bptt_kernels_numpy_keeps_the_numpy_path():
    with numpy_path(True):
        assert kernels.lstm_backward_cell() is None and kernels.gru_backward_cell() is None
        assert kernels.lstm_forward_cell() is None and kernels.gru_forward_cells() is None
        assert kernels.lstm_sequence_kernels() is None


def test_the_path_in_words_follows_the_environment_and_the_installation(monkeypatch):
    import numba

    monkeypatch.delenv("BPTT_KERNELS", raising=False)
    assert kernels.describe_path() == f"compiled kernels (numba {numba.__version__})"
    monkeypatch.setenv("BPTT_KERNELS", "numpy")
    assert kernels.describe_path() == "NumPy path (BPTT_KERNELS=numpy)"
    monkeypatch.delenv("BPTT_KERNELS")
    monkeypatch.setattr(kernels.importlib.util, "find_spec", lambda name: None)
    assert kernels.describe_path().startswith("NumPy path (numba is not installed; pip install 'bptt[fast]'")


def test_version_and_train_say_which_path_runs(tmp_path, capsys, monkeypatch):
    from bptt.cli import main

    monkeypatch.setenv("BPTT_KERNELS", "numpy")
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.strip().endswith("| NumPy path (BPTT_KERNELS=numpy)")
    monkeypatch.delenv("BPTT_KERNELS")
    assert main(["train", "sine", "--steps", "2", "--hidden-size", "4", "--out", str(tmp_path)]) == 0
    assert "| compiled kernels (numba " in capsys.readouterr().out.splitlines()[0]
