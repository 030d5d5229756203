"""bptt.layers.kernels: the compiled LSTM and GRU steps give bitwise the numbers of the NumPy path they replace; the
LSTM's whole-sequence kernels for small layers, and the RNN's and the GRU's compiled loops, give them to rounding."""

from __future__ import annotations

import contextlib
import os
import sys
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bptt import GRU, LSTM, RNN
from bptt.layers import gru, kernels, lstm, recurrent, rnn

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
    with (numpy_path(False), mock.patch.object(lstm, "WHOLE_SEQUENCE_UNITS", 0),   # the step kernels only
          mock.patch.object(gru, "compiled_loops", lambda *args: (None, None))):
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


# -- the RNN's compiled whole-sequence loops ------------------------------------------------------------------

@contextlib.contextmanager
def rnn_loops(compiled: str, chunk: int | None = None):
    """Inside: the RNN's compiled loops, for every size, in the passes ``compiled`` names ("forward",
    "backward", "both"; "none": the NumPy step loops, numba installed); with ``chunk``, the NumPy backward loop's
    weight-gradient chunks hold at most that many steps, so that small shapes reach every chunk boundary."""
    forward, backward = kernels.rnn_sequence_kernels()
    loops = (forward if compiled in ("forward", "both") else None,
             backward if compiled in ("backward", "both") else None)
    with contextlib.ExitStack() as stack:
        stack.enter_context(mock.patch.object(rnn, "compiled_loops", lambda *args: loops))
        if chunk is not None:
            stack.enter_context(mock.patch.object(rnn, "chunk_steps", lambda batch, total: max(1, min(total, chunk))))
        yield


def assert_loops_give_the_same_numbers(layer, loops, compiled: str, T: int, N: int, padded: bool, states: bool,
                                       seed: int) -> None:
    """Outputs, final states, dx, initial-state gradients and every weight gradient of ``layer`` on random data
    (ragged lengths with ``padded``, random initial states with ``states``), with the loops ``compiled`` and with
    none (``loops(path)`` is the context that chooses them), to rounding: the compiled loops call SciPy's BLAS
    (numba's) and the C library's tanh, the other path NumPy's."""
    rng = np.random.default_rng(seed)
    I, H, L, D = layer.input_size, layer.hidden_size, layer.num_layers, 2 if layer.bidirectional else 1
    x = rng.standard_normal((T, N, I))
    h0 = rng.standard_normal((L * D, N, H)) if states else None
    dout = rng.standard_normal((T, N, D * H))
    dh_n = rng.standard_normal((L * D, N, H))
    lengths = rng.integers(1, T + 1, size=N) if padded else None
    results = {}
    for path in (compiled, "none"):
        layer.zero_grad()
        with loops(path):
            out, h_n = layer(x, h0, lengths=lengths)
            dx, dh0 = layer.backward(dout, dh_n)
        results[path] = [out, h_n, dx, dh0, *(g.copy() for g in layer.grads.values())]
    tolerance = 1e-12 if layer.dtype == np.float64 else 2e-5
    for ours, theirs in zip(results[compiled], results["none"], strict=True):
        assert ours.dtype == theirs.dtype == layer.dtype
        scale = max(1.0, float(np.abs(theirs).max()))
        np.testing.assert_allclose(ours, theirs, rtol=tolerance, atol=tolerance * scale)


@settings(max_examples=60, deadline=None)
@given(nonlinearity=st.sampled_from(["tanh", "relu"]), compiled=st.sampled_from(["both", "forward", "backward"]),
       T=st.integers(1, 8), N=st.integers(1, 5), I=st.integers(1, 6), H=st.integers(1, 9), L=st.integers(1, 2),
       bidirectional=st.booleans(), bias=st.booleans(), padded=st.booleans(), states=st.booleans(),
       chunk=st.sampled_from([None, 1, 2, 3]), dtype=st.sampled_from([np.float32, np.float64]),
       seed=st.integers(0, 2**16))
def test_rnn_compiled_loops_give_the_numpy_path_numbers(nonlinearity, compiled, T, N, I, H, L, bidirectional, bias,
                                                        padded, states, chunk, dtype, seed):
    """Outputs, final states, dx, initial-state gradients and every weight gradient, ragged lengths included, to
    rounding: the compiled loops call scipy's BLAS (numba's) and the C library's tanh, the NumPy path NumPy's."""
    layer = RNN(I, H, L, nonlinearity=nonlinearity, bias=bias, bidirectional=bidirectional, dtype=dtype, rng=seed)
    assert_loops_give_the_same_numbers(layer, lambda path: rnn_loops(path, chunk), compiled, T, N, padded, states,
                                       seed)


def assert_padded_sequence_is_its_own_shorter_run(layer, loops) -> None:
    """A sequence of length 2 in a batch of 5 steps: its state after step 2 is its final state, its output is
    zero after step 2 and so is its input gradient; its initial-state gradient does not see the upstream
    gradient of the padded steps."""
    rng = np.random.default_rng(1)
    x, dout = rng.standard_normal((5, 2, 3)), rng.standard_normal((5, 2, 4))
    with loops:
        out, h_n = layer(x, lengths=np.array([5, 2]))
        dx, dh0 = layer.backward(dout)
        layer.zero_grad()
        short_out, short_h_n = layer(x[:2, 1:])
        short_dx, short_dh0 = layer.backward(dout[:2, 1:])
    np.testing.assert_allclose(h_n[0, 1], short_h_n[0, 0], rtol=1e-14)
    np.testing.assert_allclose(out[:2, 1], short_out[:, 0], rtol=1e-14)
    assert not out[2:, 1].any() and not dx[2:, 1].any()
    np.testing.assert_allclose(dx[:2, 1], short_dx[:, 0], rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(dh0[0, 1], short_dh0[0, 0], rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_rnn_compiled_loops_hold_padded_states_and_pass_their_gradients_through(nonlinearity):
    assert_padded_sequence_is_its_own_shorter_run(RNN(3, 4, nonlinearity=nonlinearity, rng=1), rnn_loops("both"))


def test_rnn_loop_choice_follows_the_nonlinearity_and_the_size():
    forward, backward = kernels.rnn_sequence_kernels()
    units, product = rnn.COMPILED_TANH_FORWARD_UNITS, rnn.COMPILED_LOOP_PRODUCT
    assert rnn.compiled_loops("tanh", units, 1) == (forward, backward)
    assert rnn.compiled_loops("tanh", units + 1, 1) == (None, backward)
    assert rnn.compiled_loops("relu", 16, 256) == rnn.compiled_loops("tanh", 16, 256) == (None, None)
    for nonlinearity in ("tanh", "relu"):     # N H^2 at the bound, and one sequence more
        assert rnn.compiled_loops(nonlinearity, product // 64**2, 64)[1] is backward
        assert rnn.compiled_loops(nonlinearity, product // 64**2 + 1, 64) == (None, None)
    assert rnn.compiled_loops("relu", product // 64**2, 64) == (forward, backward)


def test_rnn_bptt_kernels_numpy_runs_the_numpy_step_loops(monkeypatch):
    """With BPTT_KERNELS=numpy the RNN takes the NumPy loops, whose per-step helpers are then called; without
    it a small layer calls neither (its loops are compiled)."""
    calls = []
    activate, slope = rnn._activate, rnn._slope_from_output

    def counted_activate(z, nonlinearity):
        calls.append("forward")
        activate(z, nonlinearity)

    def counted_slope(h, nonlinearity, out):
        calls.append("backward")
        return slope(h, nonlinearity, out)

    monkeypatch.setattr(rnn, "_activate", counted_activate)
    monkeypatch.setattr(rnn, "_slope_from_output", counted_slope)
    layer = RNN(2, 3, nonlinearity="tanh", rng=0)
    rng = np.random.default_rng(0)
    x, dout = rng.standard_normal((4, 2, 2)), rng.standard_normal((4, 2, 3))
    with numpy_path(True):
        assert kernels.rnn_sequence_kernels() is None and rnn.compiled_loops("relu", 1, 1) == (None, None)
        layer(x)
        layer.backward(dout)
    assert calls == ["forward"] * 4 + ["backward"] * 4
    calls.clear()
    with numpy_path(False):
        layer(x)
        layer.backward(dout)
    assert calls == []


def test_without_numba_the_rnn_keeps_the_numpy_loops(monkeypatch):
    monkeypatch.setitem(sys.modules, "numba", None)  # import numba now raises ImportError
    kernels._compiled.cache_clear()
    with numpy_path(False):
        assert kernels.rnn_sequence_kernels() is None
        assert rnn.compiled_loops("tanh", 1, 1) == (None, None)
    kernels._compiled.cache_clear()


def test_without_scipy_the_rnn_keeps_the_numpy_loops(monkeypatch):
    """numba's ``np.dot`` calls SciPy's BLAS, so the RNN's compiled loops need SciPy."""
    monkeypatch.setattr(kernels, "_has_scipy", lambda: False)
    with numpy_path(False):
        assert kernels.rnn_sequence_kernels() is None
        assert rnn.compiled_loops("relu", 1, 1) == (None, None)


def test_rnn_compiled_loops_run_scipy_blas_on_one_thread_and_restore_its_count():
    """SciPy's own OpenBLAS (the pip wheels') runs the compiled loops on one thread, NumPy's keeps its count, and
    SciPy's gets its count back after the call, an exception included."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    threads = kernels._scipy_blas_threads()
    if threads is None:
        pytest.skip("SciPy has no BLAS of its own here")
    get, _ = threads

    def numpy_threads():
        return [lib["num_threads"] for lib in threadpoolctl.threadpool_info()
                if lib["internal_api"] == "openblas" and "numpy" in lib["filepath"]]

    def failing():
        raise RuntimeError("inside")

    before, numpy_before = get(), numpy_threads()
    seen = kernels._single_threaded_blas(lambda: (get(), numpy_threads()))()
    assert seen == (1, numpy_before) and get() == before
    with pytest.raises(RuntimeError, match="inside"):
        kernels._single_threaded_blas(failing)()
    assert get() == before
    forward, backward = kernels.rnn_sequence_kernels()
    assert forward.__wrapped__.py_func is kernels._rnn_sequence_forward
    assert backward.__wrapped__.py_func is kernels._rnn_sequence_backward


# -- the GRU's compiled whole-sequence loops ------------------------------------------------------------------

@contextlib.contextmanager
def gru_loops(compiled: str, chunk: int | None = None):
    """Inside: the GRU's compiled loops, for every size, in the passes ``compiled`` names ("forward",
    "backward", "both"; "none": the loops over steps in Python, numba installed); with ``chunk``, the backward
    pass's weight-gradient chunks hold at most that many steps, so that small shapes reach every chunk boundary
    (the compiled backward loop runs once per chunk)."""
    forward, backward = kernels.gru_sequence_kernels()
    loops = (forward if compiled in ("forward", "both") else None,
             backward if compiled in ("backward", "both") else None)
    with contextlib.ExitStack() as stack:
        stack.enter_context(mock.patch.object(gru, "compiled_loops", lambda *args: loops))
        if chunk is not None:
            stack.enter_context(mock.patch.object(recurrent, "chunk_steps",
                                                  lambda batch, total, columns=512: max(1, min(total, chunk))))
        yield


@settings(max_examples=60, deadline=None)
@given(compiled=st.sampled_from(["both", "forward", "backward"]), T=st.integers(1, 8), N=st.integers(1, 5),
       I=st.integers(1, 6), H=st.integers(1, 9), L=st.integers(1, 2), bidirectional=st.booleans(), bias=st.booleans(),
       padded=st.booleans(), states=st.booleans(), chunk=st.sampled_from([None, 1, 2, 3]),
       dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2**16))
def test_gru_compiled_loops_give_the_step_loop_numbers(compiled, T, N, I, H, L, bidirectional, bias, padded, states,
                                                       chunk, dtype, seed):
    """Outputs, final states, dx, initial-state gradients and every weight gradient, ragged lengths included, to
    rounding: the compiled loops call SciPy's BLAS (numba's) and the C library's tanh, the step loop NumPy's."""
    layer = GRU(I, H, L, bias=bias, bidirectional=bidirectional, dtype=dtype, rng=seed)
    assert_loops_give_the_same_numbers(layer, lambda path: gru_loops(path, chunk), compiled, T, N, padded, states,
                                       seed)


def test_gru_compiled_loops_hold_padded_states_and_pass_their_gradients_through():
    assert_padded_sequence_is_its_own_shorter_run(GRU(3, 4, rng=1), gru_loops("both", chunk=2))


def test_gru_loop_choice_follows_the_size():
    forward, backward = kernels.gru_sequence_kernels()
    units, product = gru.COMPILED_FORWARD_UNITS, gru.COMPILED_BACKWARD_PRODUCT
    assert gru.compiled_loops(1, units) == gru.compiled_loops(units, 1) == (forward, backward)
    assert gru.compiled_loops(units + 1, 1) == (None, backward)
    assert units * max(units, 1) <= product            # every compiled forward has a compiled backward
    assert gru.compiled_loops(product // 64**2, 64)[1] is backward   # N H^2 at the bound, and one sequence more
    assert gru.compiled_loops(product // 64**2 + 1, 64) == (None, None)


def test_gru_bptt_kernels_numpy_runs_the_numpy_step_loops():
    """With BPTT_KERNELS=numpy the GRU takes the loops over steps, without numba's step kernels; without it a
    small layer runs neither those loops nor their step kernels (its loops are compiled)."""
    calls = []
    cells, cell = kernels.gru_forward_cells, kernels.gru_backward_cell

    def counted(name, function):
        def wrapped():
            calls.append(name)
            return function()
        return wrapped

    layer = GRU(2, 3, rng=0)
    rng = np.random.default_rng(0)
    x, dout = rng.standard_normal((4, 2, 2)), rng.standard_normal((4, 2, 3))
    with (mock.patch.object(gru, "gru_forward_cells", counted("forward", cells)),
          mock.patch.object(gru, "gru_backward_cell", counted("backward", cell))):
        with numpy_path(True):
            assert kernels.gru_sequence_kernels() is None and gru.compiled_loops(1, 1) == (None, None)
            layer(x)
            layer.backward(dout)
        assert calls == ["forward", "backward"]
        calls.clear()
        with numpy_path(False):
            layer(x)
            layer.backward(dout)
        assert calls == []


def test_without_numba_or_scipy_the_gru_keeps_the_step_loops(monkeypatch):
    """numba's ``np.dot`` calls SciPy's BLAS, so the GRU's compiled loops need both."""
    with numpy_path(False):
        monkeypatch.setattr(kernels, "_has_scipy", lambda: False)
        assert kernels.gru_sequence_kernels() is None and gru.compiled_loops(1, 1) == (None, None)
        monkeypatch.undo()
        monkeypatch.setitem(sys.modules, "numba", None)  # import numba now raises ImportError
        kernels._compiled.cache_clear()
        assert kernels.gru_sequence_kernels() is None and gru.compiled_loops(1, 1) == (None, None)
    kernels._compiled.cache_clear()
