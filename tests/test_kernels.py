"""bptt.layers.kernels: every family's compiled whole-sequence loops give the numbers of the NumPy loops over steps
to rounding, padding, projection and both directions included; their tanh and their BLAS; when they run."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kernel_choice import numpy_path

from bptt import GRU, LSTM, RNN
from bptt.layers import gru, kernels, lstm, recurrent, rnn

pytest.importorskip("numba")


def backward_results(layer, x: np.ndarray, dout: np.ndarray, lengths) -> list[np.ndarray]:
    layer.zero_grad()
    out, final = layer(x, lengths=lengths)
    dx, dh0 = layer.backward(dout)
    states = [*(final if isinstance(final, tuple) else (final,)), *(dh0 if isinstance(dh0, tuple) else (dh0,))]
    return [out, dx, *states, *(g.copy() for g in layer.grads.values())]


@contextlib.contextmanager
def family_loops(family: str, compiled: str, chunk: int | None = None):
    """Inside: the family's ("lstm", "gru" or "rnn") compiled loops, for every size, in the passes ``compiled``
    names ("forward", "backward", "both"; "none": the NumPy loops over steps, numba installed); with ``chunk``,
    the backward passes' weight-gradient chunks hold at most that many steps, so that small shapes reach every
    chunk boundary."""
    module = {"lstm": lstm, "gru": gru, "rnn": rnn}[family]
    forward, backward = getattr(kernels, f"{family}_sequence_kernels")()
    loops = (forward if compiled in ("forward", "both") else None,
             backward if compiled in ("backward", "both") else None)
    with contextlib.ExitStack() as stack:
        stack.enter_context(mock.patch.object(module, "compiled_loops", lambda *args: loops))
        if chunk is not None:
            for chunked in (module, recurrent):
                stack.enter_context(mock.patch.object(chunked, "chunk_steps",
                                                      lambda batch, total, columns=512: max(1, min(total, chunk))))
        yield


LOOP_CASES = {"compiled": st.sampled_from(["both", "forward", "backward"]), "T": st.integers(1, 8),
              "N": st.integers(1, 5), "I": st.integers(1, 6), "H": st.integers(1, 9), "L": st.integers(1, 2),
              "bidirectional": st.booleans(), "bias": st.booleans(), "padded": st.booleans(), "states": st.booleans(),
              "chunk": st.sampled_from([None, 1, 2, 3]), "dtype": st.sampled_from([np.float32, np.float64]),
              "seed": st.integers(0, 2**16)}
"""What the three families' compiled-loop tests draw: which loops run compiled, the layer, padding, initial
states, the backward chunk (1-3 steps, or as shipped) and the dtype."""


@settings(max_examples=60, deadline=None)
@given(**LOOP_CASES, proj=st.booleans())
def test_lstm_compiled_loops_give_the_numpy_path_numbers(compiled, T, N, I, H, L, bidirectional, bias, padded, states,
                                                         chunk, dtype, seed, proj):
    options = {"proj_size": H - 1} if proj and H > 1 else {}
    layer = LSTM(I, H, L, bias=bias, bidirectional=bidirectional, dtype=dtype, rng=seed, **options)
    assert_loops_give_the_same_numbers(layer, "lstm", compiled, chunk, T, N, padded, states, seed)


def test_lstm_compiled_loops_hold_padded_states_and_pass_their_gradients_through():
    assert_padded_sequence_is_its_own_shorter_run(LSTM(3, 4, rng=1), family_loops("lstm", "both", chunk=2))


def test_every_family_runs_its_compiled_loops_at_every_size():
    """With numba, the compiled loops are the passes' choice, whatever the layer's size (no size is an argument)."""
    assert lstm.compiled_loops() == kernels.lstm_sequence_kernels() != (None, None)
    assert gru.compiled_loops() == kernels.gru_sequence_kernels() != (None, None)
    assert rnn.compiled_loops() == kernels.rnn_sequence_kernels() != (None, None)


def test_without_numba_there_is_no_kernel(monkeypatch):
    monkeypatch.setitem(sys.modules, "numba", None)  # import numba now raises ImportError
    kernels._compiled.cache_clear()
    with numpy_path(False):
        assert kernels.lstm_sequence_kernels() is None and kernels.gru_sequence_kernels() is None
        assert kernels.rnn_sequence_kernels() is None
    kernels._compiled.cache_clear()


def test_bptt_kernels_numpy_keeps_the_numpy_path():
    with numpy_path(True):
        assert lstm.compiled_loops() == gru.compiled_loops() == rnn.compiled_loops() == (None, None)


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


def test_the_first_run_says_it_compiles_and_the_next_finds_the_loops_on_disk(tmp_path):
    """Two runs of ``bptt train`` on an empty numba cache: the first says it compiles the LSTM float64 loops, the
    second finds them (kernels_on_disk True), and the float32 ones are still missing."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba"), "OPENBLAS_NUM_THREADS": "1"}
    env.pop("BPTT_KERNELS", None)
    train = [sys.executable, "-m", "bptt", "train", "sine", "--steps", "2", "--hidden-size", "4"]
    notes = []
    for run in ("first", "second"):
        result = subprocess.run([*train, "--out", str(tmp_path / run)], env=env, capture_output=True, text=True,
                                timeout=240)
        assert result.returncode == 0, result.stderr
        notes.append("compiling the LSTM float64 loops: the first run on this installation" in result.stdout)
    assert notes == [True, False]
    probe = ("from bptt.layers.kernels import kernels_on_disk as k; "
             "print(k('lstm', 'float64'), k('lstm', 'float32'), k('gru', 'float64'))")
    found = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120)
    assert found.stdout.split() == ["True", "False", "False"], found.stderr


def test_kernels_on_disk_cannot_tell_without_compiled_loops(monkeypatch):
    monkeypatch.setenv("BPTT_KERNELS", "numpy")
    assert kernels.kernels_on_disk("lstm", "float64") is None
    monkeypatch.delenv("BPTT_KERNELS")
    monkeypatch.setattr(kernels.importlib.util, "find_spec", lambda name: None)
    assert kernels.kernels_on_disk("gru", np.float32) is None


# -- the RNN's compiled whole-sequence loops ------------------------------------------------------------------

def assert_loops_give_the_same_numbers(layer, family: str, compiled: str, chunk: int | None, T: int, N: int,
                                       padded: bool, states: bool, seed: int) -> None:
    """Outputs, final states, dx, initial-state gradients and every weight gradient of ``layer`` on random data
    (ragged lengths with ``padded``, random initial states with ``states``), with the family's loops ``compiled``
    and with none (:func:`family_loops`, backward chunks of ``chunk`` steps), to rounding: the compiled loops'
    tanh is not NumPy's (their products are NumPy's BLAS)."""
    rng = np.random.default_rng(seed)
    I, H, S, D = layer.input_size, layer.hidden_size, layer.output_size, 2 if layer.bidirectional else 1
    shapes = [(layer.num_layers * D, N, S)] + ([(layer.num_layers * D, N, H)] if family == "lstm" else [])
    x = rng.standard_normal((T, N, I))
    initial = tuple(rng.standard_normal(shape) for shape in shapes) if states else None
    dout = rng.standard_normal((T, N, D * S))
    dfinal = tuple(rng.standard_normal(shape) for shape in shapes)
    lengths = rng.integers(1, T + 1, size=N) if padded else None
    results = {}
    for path in (compiled, "none"):
        layer.zero_grad()
        with family_loops(family, path, chunk):
            out, final = layer(x, initial if family == "lstm" or initial is None else initial[0], lengths=lengths)
            dx, dinitial = layer.backward(dout, dfinal if family == "lstm" else dfinal[0])
        results[path] = [out, *as_tuple(final), dx, *as_tuple(dinitial), *(g.copy() for g in layer.grads.values())]
    tolerance = 1e-12 if layer.dtype == np.float64 else 2e-5
    for ours, theirs in zip(results[compiled], results["none"], strict=True):
        assert ours.dtype == theirs.dtype == layer.dtype
        scale = max(1.0, float(np.abs(theirs).max()))
        np.testing.assert_allclose(ours, theirs, rtol=tolerance, atol=tolerance * scale)


@settings(max_examples=60, deadline=None)
@given(**LOOP_CASES, nonlinearity=st.sampled_from(["tanh", "relu"]))
def test_rnn_compiled_loops_give_the_numpy_path_numbers(compiled, T, N, I, H, L, bidirectional, bias, padded, states,
                                                        chunk, dtype, seed, nonlinearity):
    layer = RNN(I, H, L, nonlinearity=nonlinearity, bias=bias, bidirectional=bidirectional, dtype=dtype, rng=seed)
    assert_loops_give_the_same_numbers(layer, "rnn", compiled, chunk, T, N, padded, states, seed)


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
    for state, short_state in zip(as_tuple(h_n), as_tuple(short_h_n), strict=True):   # h (and the LSTM's c)
        np.testing.assert_allclose(state[0, 1], short_state[0, 0], rtol=1e-14)
    np.testing.assert_allclose(out[:2, 1], short_out[:, 0], rtol=1e-14)
    assert not out[2:, 1].any() and not dx[2:, 1].any()
    np.testing.assert_allclose(dx[:2, 1], short_dx[:, 0], rtol=1e-13, atol=1e-15)
    for gradient, short_gradient in zip(as_tuple(dh0), as_tuple(short_dh0), strict=True):
        np.testing.assert_allclose(gradient[0, 1], short_gradient[0, 0], rtol=1e-13, atol=1e-15)


def as_tuple(states) -> tuple:
    return states if isinstance(states, tuple) else (states,)


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_rnn_compiled_loops_hold_padded_states_and_pass_their_gradients_through(nonlinearity):
    layer = RNN(3, 4, nonlinearity=nonlinearity, rng=1)
    assert_padded_sequence_is_its_own_shorter_run(layer, family_loops("rnn", "both"))


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
        assert kernels.rnn_sequence_kernels() is None and rnn.compiled_loops() == (None, None)
        layer(x)
        layer.backward(dout)
    assert calls == ["forward"] * 4 + ["backward"] * 4
    calls.clear()
    with numpy_path(False):
        layer(x)
        layer.backward(dout)
    assert calls == []


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


def test_the_loops_run_numpys_blas_where_found_and_else_scipys_on_one_thread(monkeypatch):
    """With NumPy's BLAS found (the pip wheels) the loops are the compiled functions themselves; without it each is
    wrapped to hold SciPy's BLAS, which numba's ``np.dot`` then calls, on one thread."""
    from bptt.layers import _numpy_blas

    assert _numpy_blas.FOUND
    for family in ("lstm", "gru", "rnn"):
        forward, backward = getattr(kernels, f"{family}_sequence_kernels")()
        assert forward.py_func is getattr(kernels, f"_{family}_sequence_forward")
        assert backward.py_func is getattr(kernels, f"_{family}_sequence_backward")
    monkeypatch.setattr(_numpy_blas, "FOUND", False)
    if kernels._scipy_blas_threads() is None:
        pytest.skip("SciPy has no BLAS of its own here")
    forward, backward = kernels.rnn_sequence_kernels()
    assert forward.__wrapped__.py_func is kernels._rnn_sequence_forward
    assert backward.__wrapped__.py_func is kernels._rnn_sequence_backward


WITHOUT_NUMPYS_BLAS = """
import ctypes, os
import numba, numpy as np
import bptt.layers.kernels  # noqa: F401


class NoSymbols:                       # NumPy's extension module, as seen by _numpy_blas, exports no cblas
    def __init__(self, *args, **kwargs):
        pass

    def __getattr__(self, name):
        raise AttributeError(name)


found_cdll, ctypes.CDLL = ctypes.CDLL, NoSymbols
from bptt.layers import _numpy_blas
ctypes.CDLL = found_cdll
assert not _numpy_blas.FOUND
from bptt import LSTM, GRU, RNN
rng = np.random.default_rng(0)
x, dout = rng.standard_normal((6, 3, 2)), rng.standard_normal((6, 3, 4))
for layer in (LSTM(2, 4, rng=0), GRU(2, 4, rng=0), RNN(2, 4, rng=0)):
    results = []
    for path in ("", "numpy"):
        os.environ["BPTT_KERNELS"] = path
        layer.zero_grad()
        out, _ = layer(x, lengths=np.array([6, 2, 4]))
        dx, _ = layer.backward(dout)
        results.append([out, dx, *(g.copy() for g in layer.grads.values())])
    for ours, theirs in zip(*results):
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-13)
os.environ.pop("BPTT_KERNELS")
print("compiled against SciPy's BLAS:", bptt.layers.kernels.lstm_sequence_kernels() is not None)
"""


def test_without_numpys_blas_the_loops_call_scipys_and_give_the_same_numbers():
    """A process where NumPy's BLAS is not found compiles the loops against SciPy's (numba's ``np.dot``), writes
    nothing to numba's cache, and its three families give the NumPy path's numbers, padded steps included."""
    pytest.importorskip("scipy")
    run = subprocess.run([sys.executable, "-c", WITHOUT_NUMPYS_BLAS], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "compiled against SciPy's BLAS: True" in run.stdout


# -- the GRU's compiled whole-sequence loops ------------------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(**LOOP_CASES)
def test_gru_compiled_loops_give_the_numpy_path_numbers(compiled, T, N, I, H, L, bidirectional, bias, padded, states,
                                                        chunk, dtype, seed):
    layer = GRU(I, H, L, bias=bias, bidirectional=bidirectional, dtype=dtype, rng=seed)
    assert_loops_give_the_same_numbers(layer, "gru", compiled, chunk, T, N, padded, states, seed)


def test_gru_compiled_loops_hold_padded_states_and_pass_their_gradients_through():
    assert_padded_sequence_is_its_own_shorter_run(GRU(3, 4, rng=1), family_loops("gru", "both", chunk=2))


@pytest.mark.parametrize("family", ["lstm", "gru", "rnn"])
def test_the_compiled_loops_need_numba_and_a_blas_numpys_or_scipys(family, monkeypatch):
    from bptt.layers import _numpy_blas

    module, sequence_kernels = {"lstm": lstm, "gru": gru, "rnn": rnn}[family], f"{family}_sequence_kernels"
    with numpy_path(False):
        monkeypatch.setattr(kernels, "_has_scipy", lambda: False)
        assert getattr(kernels, sequence_kernels)() is not None          # NumPy's BLAS suffices
        monkeypatch.setattr(_numpy_blas, "FOUND", False)
        assert getattr(kernels, sequence_kernels)() is None and module.compiled_loops() == (None, None)
        monkeypatch.undo()
        monkeypatch.setitem(sys.modules, "numba", None)  # import numba now raises ImportError
        kernels._compiled.cache_clear()
        assert getattr(kernels, sequence_kernels)() is None and module.compiled_loops() == (None, None)
    kernels._compiled.cache_clear()



def _apply_tanh(values, out):
    for k in range(values.size):
        out[k] = kernels._tanh(values[k])


def _compiled_tanh(x: np.ndarray) -> np.ndarray:
    out = np.empty_like(x)
    kernels._compiled(_apply_tanh)(x, out)
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_loops_tanh_is_within_four_units_in_the_last_place_of_numpys(dtype):
    rng = np.random.default_rng(0)
    magnitudes = 10.0 ** rng.uniform(-12, 2, size=200_000)
    x = (magnitudes * rng.choice([-1.0, 1.0], size=magnitudes.size)).astype(dtype)
    exact = np.tanh(x.astype(np.float64))
    error = np.abs(_compiled_tanh(x).astype(np.float64) - exact) / np.spacing(np.abs(exact).astype(dtype))
    assert 0 < error.max() <= 4                             # not the C library's, and close to it
    special = np.array([0.0, -0.0, 30.0, -30.0, np.inf, -np.inf, np.nan], dtype=dtype)
    got = _compiled_tanh(special)
    np.testing.assert_array_equal(got, [0.0, -0.0, 1.0, -1.0, 1.0, -1.0, np.nan])
    assert np.signbit(got[1]) and not np.signbit(got[0])
    assert kernels._tanh(0.5) == np.tanh(0.5)                # called from Python, the C library's


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_loop_over_the_tanh_is_vectorised(dtype):
    """Its point is that LLVM runs it on several values at once: the compiled loop divides whole vectors (with
    the C library's tanh, called one value at a time, it would divide nothing)."""
    import numba

    kernels._register_helpers()
    compiled = numba.njit(_apply_tanh, error_model="numpy")   # as kernels._compiled, but not from numba's cache
    x = np.linspace(-3, 3, 64, dtype=dtype)
    compiled(x, np.empty_like(x))
    ir = compiled.inspect_llvm(compiled.signatures[0])
    assert re.search(r"fdiv (fast )?<\d+ x (float|double)>", ir)

