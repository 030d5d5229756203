"""``SequenceClassifier`` without torch: its parameters are its children's, its gradients pass ``gradcheck``
(weights and input, every cell, uni- and bidirectional, with lengths), the gradient enters only at each
sequence's last valid step, unbatched input, float32, accumulation, ``save``/``load`` and every bad input.

PyTorch parity is in ``tests/test_classifier_torch.py``.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import bptt
from bptt.layers.models import CELLS, SequenceClassifier

T, N, I, H, C = 5, 3, 2, 3, 4


def batch(seed: int, steps: int = T, sequences: int = N, features: int = I, classes: int = C):
    """Random input, lengths 1..T with at least one short sequence, and labels."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((steps, sequences, features))
    lengths = rng.integers(1, steps + 1, sequences)
    lengths[0] = max(1, steps - 2)
    return x, lengths, rng.integers(0, classes, sequences)


def loss_and_grads(model: SequenceClassifier, x, lengths, labels):
    """Zero the grads, run forward, cross-entropy and backward; return logits, loss, dx and copied grads."""
    model.zero_grad()
    logits = model(x, lengths)
    loss, dlogits = bptt.cross_entropy(logits, labels)
    dx = model.backward(dlogits)
    return logits, loss, dx, {name: grad.copy() for name, grad in model.grads.items()}


# ---------------------------------------------------------------------------------------------------------
# Structure
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("bidirectional", [False, True])
def test_params_are_the_childrens_arrays_under_torch_keys(cell, bidirectional):
    model = SequenceClassifier(I, H, C, num_layers=2, cell=cell, bidirectional=bidirectional, rng=0)
    D = 2 if bidirectional else 1
    assert type(model.rnn) is CELLS[cell] and model.rnn.bidirectional is bidirectional
    assert model.head.params["weight"].shape == (C, D * H)
    expected = [f"rnn.{k}" for k in model.rnn.params] + ["head.weight", "head.bias"]
    assert list(model.params) == expected and list(model.grads) == expected
    for prefix, child in (("rnn", model.rnn), ("head", model.head)):
        for key in child.params:
            assert model.params[f"{prefix}.{key}"] is child.params[key]
            assert model.grads[f"{prefix}.{key}"] is child.grads[key]
    assert model.config() == {"input_size": I, "hidden_size": H, "num_classes": C, "num_layers": 2, "cell": cell,
                              "bidirectional": bidirectional, "dtype": np.dtype(np.float64)}


def test_the_same_seed_gives_the_same_weights_and_another_seed_others():
    a, b, c = (SequenceClassifier(I, H, C, rng=seed) for seed in (7, 7, 8))
    assert all(np.array_equal(a.params[k], b.params[k]) for k in a.params)
    assert not np.array_equal(a.params["head.weight"], c.params["head.weight"])


# ---------------------------------------------------------------------------------------------------------
# Gradients
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize(("bidirectional", "num_layers"), [(False, 1), (True, 2)])
def test_gradcheck_weights_and_input_with_lengths(cell, bidirectional, num_layers):
    model = SequenceClassifier(I, H, C, num_layers=num_layers, cell=cell, bidirectional=bidirectional, rng=1)
    x, lengths, labels = batch(2)
    _, loss, dx, grads = loss_and_grads(model, x, lengths, labels)

    def f(p):
        return bptt.cross_entropy(model(p["x"], lengths), labels)[0]

    report = bptt.gradcheck(f, {**model.params, "x": x}, {**grads, "x": dx}, loss=loss)
    assert report.ok, str(report)
    assert len(report.rows) == len(model.params) + 1


def test_gradcheck_catches_a_gradient_entering_at_the_wrong_step():
    """The check above can fail: feeding dL/df into the last layer's *output* at the final padded step (T)
    instead of into the final state is wrong for every sequence shorter than T, and gradcheck says so."""
    model = SequenceClassifier(I, H, C, cell="gru", rng=1)
    x, lengths, labels = batch(2)
    model.zero_grad()
    loss, dlogits = bptt.cross_entropy(model(x, lengths), labels)
    dout = np.zeros((T, N, H))
    dout[-1] = model.head.backward(dlogits)
    dx, _ = model.rnn.backward(dout)
    report = bptt.gradcheck(lambda p: bptt.cross_entropy(model(p["x"], lengths), labels)[0],
                            {**model.params, "x": x}, {**model.grads, "x": dx}, loss=loss)
    assert not report.ok and "x" in report.failed and "rnn.weight_hh_l0" in report.failed


@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("bidirectional", [False, True])
def test_padded_steps_get_zero_gradient_and_change_nothing(cell, bidirectional):
    model = SequenceClassifier(I, H, C, num_layers=2, cell=cell, bidirectional=bidirectional, rng=3)
    x, lengths, labels = batch(4)
    lengths[1] = 1
    padded = np.arange(T)[:, None] >= lengths                    # (T, N)
    logits, loss, dx, grads = loss_and_grads(model, x, lengths, labels)
    assert padded.any() and (dx[padded] == 0).all() and (dx[~padded] != 0).all()
    changed = x.copy()
    changed[padded] = np.random.default_rng(5).standard_normal((padded.sum(), I)) * 100
    logits2, loss2, dx2, grads2 = loss_and_grads(model, changed, lengths, labels)
    np.testing.assert_array_equal(logits2, logits)
    np.testing.assert_array_equal(dx2, dx)
    assert loss2 == loss and all(np.array_equal(grads2[k], grads[k]) for k in grads)


@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("bidirectional", [False, True])
def test_each_sequence_is_classified_as_if_alone_and_cut_to_its_length(cell, bidirectional):
    """Packed semantics without torch: a batch with lengths gives, for every sequence, the logits and input
    gradient of that sequence alone, cut to its length and run without lengths (the reverse direction then
    starts at the sequence's own last step)."""
    model = SequenceClassifier(I, H, C, num_layers=2, cell=cell, bidirectional=bidirectional, rng=6)
    x, lengths, _ = batch(7)
    dlogits = np.random.default_rng(8).standard_normal((N, C))
    logits = model(x, lengths)
    dx = model.backward(dlogits)
    for n, length in enumerate(lengths):
        alone = model(x[:length, n:n + 1])
        np.testing.assert_allclose(logits[n:n + 1], alone, rtol=0, atol=1e-14)
        np.testing.assert_allclose(dx[:length, n:n + 1], model.backward(dlogits[n:n + 1]), rtol=0, atol=1e-14)


def test_full_lengths_equal_no_lengths():
    model = SequenceClassifier(I, H, C, cell="lstm", bidirectional=True, rng=0)
    x, _, labels = batch(1)
    with_lengths = loss_and_grads(model, x, np.full(N, T), labels)
    without = loss_and_grads(model, x, None, labels)
    for a, b in zip(with_lengths[:3], without[:3], strict=True):
        np.testing.assert_array_equal(a, b)


@settings(max_examples=25, deadline=None)
@given(cell=st.sampled_from(list(CELLS)), bidirectional=st.booleans(), steps=st.integers(1, 4),
       sequences=st.integers(1, 3), seed=st.integers(0, 2**32 - 1))
def test_zero_upstream_gives_zero_grads_and_backward_accumulates(cell, bidirectional, steps, sequences, seed):
    model = SequenceClassifier(I, H, C, cell=cell, bidirectional=bidirectional, rng=seed)
    x, lengths, _ = batch(seed, steps, sequences)
    logits = model(x, lengths)
    assert not model.backward(np.zeros_like(logits)).any()
    assert not any(g.any() for g in model.grads.values())
    dlogits = np.random.default_rng(seed).standard_normal(logits.shape)
    dx1 = model.backward(dlogits)
    once = {k: g.copy() for k, g in model.grads.items()}
    dx2 = model.backward(dlogits)                    # backward never mutates the cache: the same again
    np.testing.assert_array_equal(dx2, dx1)
    for name, grad in model.grads.items():
        np.testing.assert_array_equal(grad, 2 * once[name], err_msg=name)   # x + x is exact


@pytest.mark.parametrize("cell", list(CELLS))
def test_unbatched_input_is_a_batch_of_one(cell):
    model = SequenceClassifier(I, H, C, num_layers=2, cell=cell, bidirectional=True, rng=2)
    x = np.random.default_rng(0).standard_normal((T, I))
    dlogits = np.random.default_rng(1).standard_normal(C)
    logits = model(x)
    assert logits.shape == (C,)
    dx = model.backward(dlogits)
    assert dx.shape == (T, I)
    np.testing.assert_array_equal(model(x[:, None])[0], logits)
    np.testing.assert_array_equal(model.backward(dlogits[None])[:, 0], dx)


def test_float32_follows_float64():
    x, lengths, labels = batch(3)
    wide = SequenceClassifier(I, H, C, cell="lstm", bidirectional=True, rng=4)
    narrow = SequenceClassifier(I, H, C, cell="lstm", bidirectional=True, dtype=np.float32, rng=4)
    logits64, _, dx64, grads64 = loss_and_grads(wide, x, lengths, labels)
    logits32, _, dx32, grads32 = loss_and_grads(narrow, x, lengths, labels)
    assert logits32.dtype == dx32.dtype == np.float32 and all(g.dtype == np.float32 for g in grads32.values())
    np.testing.assert_allclose(logits32, logits64, atol=1e-5)
    np.testing.assert_allclose(dx32, dx64, atol=1e-5)
    for name in grads64:
        np.testing.assert_allclose(grads32[name], grads64[name], atol=1e-5, err_msg=name)


# ---------------------------------------------------------------------------------------------------------
# save / load
# ---------------------------------------------------------------------------------------------------------

@settings(max_examples=20, deadline=None)
@given(cell=st.sampled_from(list(CELLS)), bidirectional=st.booleans(), num_layers=st.integers(1, 2),
       dtype=st.sampled_from([np.float64, np.float32]), seed=st.integers(0, 2**32 - 1))
def test_save_load_round_trip(tmp_path_factory, cell, bidirectional, num_layers, dtype, seed):
    model = SequenceClassifier(I, H, C, num_layers=num_layers, cell=cell, bidirectional=bidirectional,
                               dtype=dtype, rng=seed)
    path = bptt.save(model, tmp_path_factory.mktemp("classifier") / "model.safetensors")
    twin = bptt.load(path)
    assert type(twin) is SequenceClassifier and twin.config() == model.config()
    assert list(twin.params) == list(model.params)
    for name, value in model.params.items():
        assert twin.params[name].dtype == value.dtype
        np.testing.assert_array_equal(twin.params[name], value, err_msg=name)
    x, lengths, _ = batch(seed % 1000)
    np.testing.assert_array_equal(twin(x, lengths), model(x, lengths))


def test_saved_config_is_json_with_the_dtype_by_name(tmp_path):
    from bptt.interop.io import load_arrays

    path = bptt.save(SequenceClassifier(I, H, C, cell="gru", bidirectional=True, rng=0), tmp_path / "m.safetensors")
    _, metadata = load_arrays(path)
    assert metadata["class"] == "SequenceClassifier"
    assert metadata["config"] == {"input_size": I, "hidden_size": H, "num_classes": C, "num_layers": 1,
                                  "cell": "gru", "bidirectional": True, "dtype": "float64"}


# ---------------------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------------------

def after_forward(**options) -> SequenceClassifier:
    model = SequenceClassifier(I, H, C, rng=0, **options)
    model(np.zeros((T, N, I)))
    return model


BAD_CALLS = {
    "unknown cell": (lambda: SequenceClassifier(I, H, C, cell="transformer"), ValueError,
                     "SequenceClassifier: expected cell to be one of lstm, gru, rnn, got 'transformer'"),
    "cell unhashable": (lambda: SequenceClassifier(I, H, C, cell=["lstm"]), ValueError,
                        "SequenceClassifier: expected cell to be one of lstm, gru, rnn, got ['lstm']"),
    "input_size 0": (lambda: SequenceClassifier(0, H, C), ValueError,
                     "SequenceClassifier: expected input_size >= 1, got 0"),
    "hidden_size -1": (lambda: SequenceClassifier(I, -1, C), ValueError,
                       "SequenceClassifier: expected hidden_size >= 1, got -1"),
    "num_classes 0": (lambda: SequenceClassifier(I, H, 0), ValueError,
                      "SequenceClassifier: expected num_classes >= 1, got 0"),
    "num_layers 0": (lambda: SequenceClassifier(I, H, C, num_layers=0), ValueError,
                     "SequenceClassifier: expected num_layers >= 1, got 0"),
    "num_classes a float": (lambda: SequenceClassifier(I, H, 2.0), TypeError,
                            "SequenceClassifier: expected num_classes to be an int, got float"),
    "bidirectional a str": (lambda: SequenceClassifier(I, H, C, bidirectional="yes"), TypeError,
                            "SequenceClassifier: expected bidirectional to be a bool, got str"),
    "dtype float16": (lambda: SequenceClassifier(I, H, C, dtype=np.float16), TypeError,
                      "SequenceClassifier: expected dtype float32 or float64, got float16"),
    "rng a str": (lambda: SequenceClassifier(I, H, C, rng="0"), TypeError,
                  "SequenceClassifier: expected rng to be an int seed or a numpy.random.Generator, got str"),
    "x wrong features": (lambda: SequenceClassifier(I, H, C, rng=0)(np.zeros((T, N, I + 1))), ValueError,
                         f"LSTM.forward: expected x of shape (*, *, {I}), got ({T}, {N}, {I + 1})"),
    "lengths too many": (lambda: SequenceClassifier(I, H, C, rng=0)(np.zeros((T, N, I)), lengths=[1] * (N + 1)),
                         ValueError, f"SequenceClassifier.forward: expected one length per sequence, lengths of "
                                     f"shape ({N},) for x of shape ({T}, {N}, {I}), got lengths of shape ({N + 1},)"),
    "lengths a matrix": (lambda: SequenceClassifier(I, H, C, rng=0)(np.zeros((T, N, I)), lengths=np.ones((N, 1))),
                         ValueError, f"expected one length per sequence, lengths of shape ({N},) for x of shape "
                                     f"({T}, {N}, {I}), got lengths of shape ({N}, 1)"),
    "lengths beyond T": (lambda: SequenceClassifier(I, H, C, rng=0)(np.zeros((T, N, I)), lengths=[T + 1] * N),
                         ValueError, f"LSTM.forward: expected lengths between 1 and T = {T}, got values from "
                                     f"{T + 1} to {T + 1}"),
    "lengths 0": (lambda: SequenceClassifier(I, H, C, cell="gru", rng=0)(np.zeros((T, N, I)), lengths=[0] * N),
                  ValueError, f"GRU.forward: expected lengths between 1 and T = {T}, got values from 0 to 0"),
    "lengths floats": (lambda: SequenceClassifier(I, H, C, rng=0)(np.zeros((T, N, I)), lengths=[2.0] * N),
                       TypeError, "LSTM.forward: expected lengths to be integers, got dtype float64"),
    "lengths with unbatched x": (lambda: SequenceClassifier(I, H, C, rng=0)(np.zeros((T, I)), lengths=[T]),
                                 ValueError, "LSTM.forward: expected batched x with lengths (one length per "
                                             "sequence), got unbatched x"),
    "backward before forward": (lambda: SequenceClassifier(I, H, C, rng=0).backward(np.zeros((N, C))), ValueError,
                                "SequenceClassifier.backward: expected a forward pass first, got none"),
    "dlogits wrong classes": (lambda: after_forward().backward(np.zeros((N, C + 1))), ValueError,
                              f"SequenceClassifier.backward: expected dlogits of shape ({N}, {C}), got "
                              f"({N}, {C + 1}). dlogits must have the shape of the logits."),
    "dlogits a sequence": (lambda: after_forward().backward(np.zeros((T, N, C))), ValueError,
                           f"SequenceClassifier.backward: expected dlogits of shape ({N}, {C}), got ({T}, {N}, {C})"),
    "dlogits non-finite": (lambda: after_forward().backward(np.full((N, C), np.nan)), ValueError,
                           f"SequenceClassifier.backward: expected finite values in dlogits, got {N * C} NaN"),
    "dlogits complex": (lambda: after_forward().backward(np.zeros((N, C), dtype=complex)), TypeError,
                        "SequenceClassifier.backward: expected dlogits to be a real numeric array, got dtype "
                        "complex128"),
}


@pytest.mark.parametrize("case", list(BAD_CALLS))
def test_bad_input_raises_with_a_clear_message(case):
    call, error, message = BAD_CALLS[case]
    with pytest.raises(error, match=re.escape(message)):
        call()


def test_a_refused_backward_changes_no_gradient():
    model = after_forward(cell="gru", bidirectional=True)
    with pytest.raises(ValueError, match="expected dlogits of shape"):
        model.backward(np.ones((N, C + 1)))
    assert not any(g.any() for g in model.grads.values())
