"""bptt.inference_mode: a forward pass that keeps no cache gives the training forward pass's numbers (every
family, both paths, directions, layers, padding, projection), uses a fraction of its memory, refuses a backward
pass after it, nests and stays in its thread; evaluation, decoding and forecasting run under it."""

from __future__ import annotations

import threading
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kernel_choice import numpy_path

from bptt import GRU, LSTM, RNN, Seq2Seq, inference_mode
from bptt.layers import recurrent
from bptt.layers.inference import is_inference_mode

FAMILIES = {"lstm": LSTM, "gru": GRU, "rnn": RNN}


@pytest.mark.parametrize("path", ["compiled", "numpy"])
@settings(max_examples=30, deadline=None)
@given(family=st.sampled_from(sorted(FAMILIES)), dtype=st.sampled_from(["float64", "float32"]),
       T=st.integers(1, 45), N=st.integers(1, 4), layers=st.integers(1, 2), bidirectional=st.booleans(),
       padded=st.booleans(), projected=st.booleans(), seed=st.integers(0, 2**16))
def test_the_numbers_are_the_training_forward_passes(path, family, dtype, T, N, layers, bidirectional, padded,
                                                     projected, seed):
    if path == "compiled":
        pytest.importorskip("numba")
    rng = np.random.default_rng(seed)
    options = {"proj_size": 2} if projected and family == "lstm" else {}
    layer = FAMILIES[family](3, 5, num_layers=layers, bidirectional=bidirectional, dtype=dtype, rng=rng, **options)
    x = rng.standard_normal((T, N, 3)).astype(dtype)
    lengths = rng.integers(1, T + 1, N) if padded else None
    with numpy_path(path == "numpy"), pytest.MonkeyPatch.context() as patch:
        expected_out, expected_finals = layer(x, lengths=lengths)
        patch.setattr(recurrent, "INFERENCE_CHUNK_BYTES", 1)          # chunks of 16 steps: T > 16 crosses them
        with inference_mode():
            out, finals = layer(x, lengths=lengths)
    tolerance = 1e-12 if dtype == "float64" else 1e-5
    np.testing.assert_allclose(out, expected_out, rtol=tolerance, atol=tolerance)
    for ours, theirs in zip(finals if isinstance(finals, tuple) else (finals,),
                            expected_finals if isinstance(expected_finals, tuple) else (expected_finals,), strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=tolerance, atol=tolerance)


def test_a_backward_pass_after_it_is_refused_and_a_training_pass_still_works():
    layer = LSTM(2, 3, rng=0)
    x = np.ones((4, 1, 2))
    with inference_mode():
        out, _ = layer(x)
    with pytest.raises(ValueError, match=r"LSTM.backward: expected a forward pass first, got none \(a forward pass "
                                         r"under bptt.inference_mode\(\) keeps nothing to go back through\)."):
        layer.backward(np.ones_like(out))
    out, _ = layer(x)
    dx, _ = layer.backward(np.ones_like(out))
    assert dx.shape == x.shape and np.abs(layer.grads["weight_hh_l0"]).sum() > 0


def test_a_linear_layer_keeps_no_input_and_reads_the_callers_array_in_place():
    from bptt import Linear

    head = Linear(3, 2, rng=0)
    x = np.ones((4, 3))
    with inference_mode():
        y = head(x)
    np.testing.assert_array_equal(y, head(x))
    with inference_mode():
        head(x)
    with pytest.raises(ValueError, match=r"Linear.backward: expected a forward pass first, got none \(a forward "
                                         r"pass under bptt.inference_mode\(\) keeps nothing to go back through\)."):
        head.backward(np.ones((4, 2)))


def test_its_peak_memory_is_a_fraction_of_the_training_passes():
    layer = LSTM(16, 64, rng=0)
    x = np.random.default_rng(0).standard_normal((6000, 8, 16))
    peaks = []
    for mode in (False, True):
        tracemalloc.start()
        with inference_mode(mode):
            out, _ = layer(x)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    training, inference = peaks
    assert training > 5 * out.nbytes                   # h, c, tanh c and the gates of every step
    assert inference < training / 3                    # the output and one chunk's buffers
    assert inference - out.nbytes < 24 * 2**20         # a chunk's work: its size does not grow with T


def test_it_nests_turns_off_within_and_stays_in_its_thread():
    seen = []
    with inference_mode():
        with inference_mode():
            seen.append(is_inference_mode())
        seen.append(is_inference_mode())
        with inference_mode(False):
            seen.append(is_inference_mode())
        seen.append(is_inference_mode())
        other = threading.Thread(target=lambda: seen.append(is_inference_mode()))
        other.start()
        other.join()
    seen.append(is_inference_mode())
    assert seen == [True, True, False, True, False, False]


def test_decoding_and_evaluation_keep_no_cache():
    model = Seq2Seq(6, 7, 3, 4, rng=0).eval()
    model.decode(np.array([[3, 4], [5, 0]]), [2, 1], bos=1, eos=2, max_length=3)
    assert model.encoder._tape is None
    from bptt.train.experiment import resolve, run

    result = run(resolve("sine", 0, steps=2, hidden_size=4, eval_every=1))
    assert result.model.rnn._tape is None and np.isfinite(result.metrics["test_mse"])
