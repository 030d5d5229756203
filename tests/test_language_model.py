"""``LanguageModel`` without torch: its parameters are its children's under PyTorch's keys, its gradients pass
``gradcheck`` (every cell, from given initial states, with dropout's masks), truncated BPTT continues a
sequence exactly, unbatched tokens, float32, train and eval modes, ``save``/``load`` with a vocabulary in the
metadata, and every bad input.

PyTorch parity is in ``tests/test_language_model_torch.py``.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import bptt
from bptt.interop.io import load_arrays
from bptt.layers.models import CELLS, LanguageModel

V, E, H, T, N = 5, 3, 4, 6, 3


def tokens_and_targets(seed: int, steps: int = T, sequences: int = N, vocab: int = V):
    """Random tokens (with repeats: V is small) and their next-token targets, the same stream shifted by one."""
    stream = np.random.default_rng(seed).integers(0, vocab, (steps + 1, sequences))
    return stream[:-1], stream[1:]


def random_state(model: LanguageModel, seed: int, sequences: int = N):
    """Random initial states of the model's form: a pair for an LSTM, one array otherwise."""
    rng = np.random.default_rng(seed)
    shape = (model.rnn.num_layers, sequences, model.rnn.hidden_size)
    if model.cell == "lstm":
        return rng.standard_normal(shape), rng.standard_normal(shape)
    return rng.standard_normal(shape)


def states(state) -> tuple[np.ndarray, ...]:
    return state if isinstance(state, tuple) else (state,)


def loss_and_grads(model: LanguageModel, tokens, targets, hx=None):
    """Zero the grads, run forward, cross-entropy and backward; return logits, loss and copied grads."""
    model.zero_grad()
    logits = model(tokens, hx)
    loss, dlogits = bptt.cross_entropy(logits, targets)
    assert model.backward(dlogits) is None
    return logits, loss, {name: grad.copy() for name, grad in model.grads.items()}


# ---------------------------------------------------------------------------------------------------------
# Structure
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("cell", list(CELLS))
def test_params_are_the_childrens_arrays_under_torch_keys(cell):
    model = LanguageModel(V, E, H, num_layers=2, cell=cell, dropout=0.25, rng=0)
    assert type(model.rnn) is CELLS[cell] and model.rnn.dropout == 0.25
    assert model.embedding.params["weight"].shape == (V, E) and model.head.params["weight"].shape == (V, H)
    assert model.rnn.input_size == E and model.rnn.num_layers == 2
    expected = ["embedding.weight"] + [f"rnn.{k}" for k in model.rnn.params] + ["head.weight", "head.bias"]
    assert list(model.params) == expected and list(model.grads) == expected
    for prefix, child in (("embedding", model.embedding), ("rnn", model.rnn), ("head", model.head)):
        for key in child.params:
            assert model.params[f"{prefix}.{key}"] is child.params[key]
            assert model.grads[f"{prefix}.{key}"] is child.grads[key]
    assert model.config() == {"vocab_size": V, "embedding_dim": E, "hidden_size": H, "num_layers": 2, "cell": cell,
                              "dropout": 0.25, "dtype": np.dtype(np.float64)}
    twin = LanguageModel(**model.config(), rng=0)
    assert all(np.array_equal(twin.params[k], v) for k, v in model.params.items())


def test_the_same_seed_gives_the_same_weights_and_another_seed_others():
    a, b, c = (LanguageModel(V, E, H, rng=seed) for seed in (7, 7, 8))
    assert all(np.array_equal(a.params[k], b.params[k]) for k in a.params)
    assert all(not np.array_equal(a.params[k], c.params[k]) for k in a.params)


# ---------------------------------------------------------------------------------------------------------
# Gradients
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("cell", list(CELLS))
def test_gradcheck_every_weight_from_given_initial_states(cell):
    """Two layers, initial states from a previous chunk (held fixed: truncated BPTT stops there)."""
    model = LanguageModel(V, E, H, num_layers=2, cell=cell, rng=1)
    tokens, targets = tokens_and_targets(2)
    hx = random_state(model, 3)
    _, loss, grads = loss_and_grads(model, tokens, targets, hx)

    def f(p):
        return bptt.cross_entropy(model(tokens, hx), targets)[0]

    report = bptt.gradcheck(f, model.params, grads, loss=loss)
    assert report.ok, str(report)
    assert len(report.rows) == len(model.params)
    assert all(np.any(g) for g in grads.values())


def test_gradcheck_catches_an_embedding_gradient_that_overwrites_instead_of_adding():
    """The check above can fail: writing each step's embedding gradient into its token's row (``W[i] = d``,
    the last write wins) instead of adding them up (``np.add.at``) is wrong for every repeated token, and
    gradcheck names that tensor and no other."""
    model = LanguageModel(V, E, H, cell="gru", rng=1)
    tokens, targets = tokens_and_targets(2)
    assert len(np.unique(tokens)) < tokens.size                    # some token repeats
    model.zero_grad()
    loss, dlogits = bptt.cross_entropy(model(tokens), targets)
    dembedded, _ = model.rnn.backward(model.head.backward(dlogits))
    model.grads["embedding.weight"][tokens.reshape(-1)] = dembedded.reshape(-1, E)   # the planted bug
    report = bptt.gradcheck(lambda p: bptt.cross_entropy(model(tokens), targets)[0], model.params, model.grads,
                            loss=loss)
    assert report.failed == ["embedding.weight"]


@pytest.mark.parametrize("cell", list(CELLS))
def test_gradcheck_in_training_mode_with_dropout(cell):
    """Dropout between the layers: backward uses the forward's masks. Every pass here replays the same masks
    by giving the stack a freshly seeded generator first."""
    model = LanguageModel(V, E, H, num_layers=2, cell=cell, dropout=0.4, rng=1)
    tokens, targets = tokens_and_targets(4)

    def logits():
        model.rnn.rng = np.random.default_rng(5)
        return model(tokens)

    def f(p):
        return bptt.cross_entropy(logits(), targets)[0]

    assert np.max(np.abs(logits() - model.eval()(tokens))) > 1e-3        # the masks do change the logits
    model.train().zero_grad()
    loss, dlogits = bptt.cross_entropy(logits(), targets)
    model.backward(dlogits)
    report = bptt.gradcheck(f, model.params, model.grads, loss=loss)
    assert report.ok, str(report)


@settings(max_examples=25, deadline=None)
@given(cell=st.sampled_from(list(CELLS)), num_layers=st.integers(1, 2), steps=st.integers(1, 4),
       sequences=st.integers(1, 3), seed=st.integers(0, 2**32 - 1))
def test_zero_upstream_gives_zero_grads_and_backward_accumulates(cell, num_layers, steps, sequences, seed):
    model = LanguageModel(V, E, H, num_layers, cell=cell, rng=seed)
    tokens, _ = tokens_and_targets(seed, steps, sequences)
    logits = model(tokens)
    assert model.backward(np.zeros_like(logits)) is None
    assert not any(g.any() for g in model.grads.values())
    dlogits = np.random.default_rng(seed).standard_normal(logits.shape)
    model.backward(dlogits)
    once = {k: g.copy() for k, g in model.grads.items()}
    model.backward(dlogits)                        # backward never mutates the caches: the same again
    for name, grad in model.grads.items():
        # x + x is exact, except where the embedding's scatter-add adds a repeated token's rows one by one into
        # the running sum: ((g + a) + b) rounds differently from 2 (a + b), by an ulp or so
        atol = 1e-15 * np.max(np.abs(once[name])) if name == "embedding.weight" else 0.0
        np.testing.assert_allclose(grad, 2 * once[name], rtol=0, atol=atol, err_msg=name)


def test_only_the_rows_of_tokens_read_get_a_gradient():
    model = LanguageModel(V, E, H, rng=0)
    tokens = np.array([[1, 3], [3, 3], [1, 1]])
    model.backward(np.random.default_rng(1).standard_normal(model(tokens).shape))
    rows = model.grads["embedding.weight"].any(axis=1)
    assert rows.tolist() == [False, True, False, True, False]


# ---------------------------------------------------------------------------------------------------------
# Truncated BPTT and sampling: the state carries the sequence on
# ---------------------------------------------------------------------------------------------------------

def assert_close(actual, expected, what: str) -> None:
    error = float(np.max(np.abs(actual - expected)) / max(float(np.max(np.abs(expected))), 1e-300))
    assert error <= 1e-12, f"{what}: {error:.3g}"


@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("split", [1, 4])
def test_two_chunks_continue_the_sequence_exactly(cell, split):
    model = LanguageModel(V, E, H, num_layers=2, cell=cell, rng=3).eval()
    tokens, _ = tokens_and_targets(4, steps=T)
    hx = random_state(model, 5)
    whole = model(tokens, hx)
    whole_state = model.final_state
    first = model(tokens[:split], hx)
    second = model(tokens[split:], hx=model.final_state)
    assert_close(np.concatenate([first, second]), whole, "logits")
    for k, (a, b) in enumerate(zip(states(model.final_state), states(whole_state), strict=True)):
        assert_close(a, b, f"final state {k}")


@pytest.mark.parametrize("cell", list(CELLS))
def test_one_token_at_a_time_continues_the_sequence_exactly(cell):
    """Generation feeds one step at a time: the same logits as the whole sequence at once."""
    model = LanguageModel(V, E, H, num_layers=2, cell=cell, rng=6)
    tokens, _ = tokens_and_targets(7)
    whole = model(tokens)
    whole_state = model.final_state
    state, steps = None, []
    for t in range(T):
        steps.append(model(tokens[t:t + 1], state))
        state = model.final_state
    assert_close(np.concatenate(steps), whole, "logits")
    for a, b in zip(states(state), states(whole_state), strict=True):
        assert_close(a, b, "final state")


def test_continuing_is_not_restarting():
    """The continuity tests can fail: restarting the second chunk from zeros gives other logits."""
    model = LanguageModel(V, E, H, cell="lstm", rng=3)
    tokens, _ = tokens_and_targets(4)
    whole = model(tokens)
    model(tokens[:3])
    restarted = model(tokens[3:])
    assert np.max(np.abs(restarted - whole[3:])) > 1e-3


def test_final_state_is_an_lstm_pair_or_one_array():
    for cell in CELLS:
        model = LanguageModel(V, E, H, num_layers=2, cell=cell, rng=0)
        model(np.zeros((T, N), dtype=int))
        assert [s.shape for s in states(model.final_state)] == [(2, N, H)] * (2 if cell == "lstm" else 1)


# ---------------------------------------------------------------------------------------------------------
# Unbatched tokens, float32, modes
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("cell", list(CELLS))
def test_unbatched_tokens_are_a_batch_of_one(cell):
    """To rounding: the head's matmul over (T, H) and over (T, 1, H) may sum in another order."""
    model = LanguageModel(V, E, H, num_layers=2, cell=cell, rng=2)
    tokens = np.random.default_rng(0).integers(0, V, T)
    dlogits = np.random.default_rng(1).standard_normal((T, V))
    logits = model(tokens)
    state = model.final_state
    assert logits.shape == (T, V) and all(s.shape == (2, H) for s in states(state))
    model.backward(dlogits)
    unbatched = {k: g.copy() for k, g in model.grads.items()}
    model.zero_grad()
    assert_close(model(tokens[:, None])[:, 0], logits, "logits")
    for a, b in zip(states(model.final_state), states(state), strict=True):
        assert_close(a[:, 0], b, "final state")
    model.backward(dlogits[:, None])
    for name, grad in model.grads.items():
        assert_close(grad, unbatched[name], name)
    model(tokens[:2])
    assert_close(model(tokens[2:], hx=model.final_state), logits[2:], "unbatched continued logits")


def test_float32_follows_float64():
    tokens, targets = tokens_and_targets(3)
    wide = LanguageModel(V, E, H, num_layers=2, cell="lstm", rng=4)
    narrow = LanguageModel(V, E, H, num_layers=2, cell="lstm", dtype=np.float32, rng=4)
    logits64, loss64, grads64 = loss_and_grads(wide, tokens, targets)
    logits32, loss32, grads32 = loss_and_grads(narrow, tokens, targets)
    assert logits32.dtype == np.float32 and all(g.dtype == np.float32 for g in grads32.values())
    assert all(s.dtype == np.float32 for s in narrow.final_state)
    np.testing.assert_allclose(logits32, logits64, atol=1e-5)
    assert abs(loss32 - loss64) < 1e-5
    for name in grads64:
        np.testing.assert_allclose(grads32[name], grads64[name], atol=1e-5, err_msg=name)


def test_one_layer_dropout_acts_on_the_stack_input_and_output_and_backward_uses_the_masks():
    """Zaremba et al.'s dropout on the non-recurrent connections: a one-layer model has no layer between which to
    drop, yet its logits change from pass to pass in training; the gradient is checked with the masks replayed."""
    model = LanguageModel(V, E, H, dropout=0.5, rng=4)
    tokens, targets = tokens_and_targets(6)
    assert np.max(np.abs(model(tokens) - model(tokens))) > 1e-3
    plain = LanguageModel(V, E, H, rng=4)
    np.testing.assert_array_equal(model.eval()(tokens), plain(tokens))

    def logits():
        model.rnn.rng = np.random.default_rng(6)
        return model(tokens)

    model.train().zero_grad()
    loss, dlogits = bptt.cross_entropy(logits(), targets)
    model.backward(dlogits)
    report = bptt.gradcheck(lambda p: bptt.cross_entropy(logits(), targets)[0], model.params, model.grads, loss=loss)
    assert report.ok, str(report)


def test_dropout_acts_in_training_mode_only():
    tokens, _ = tokens_and_targets(8)
    model = LanguageModel(V, E, H, num_layers=2, cell="gru", dropout=0.5, rng=9)
    plain = LanguageModel(V, E, H, num_layers=2, cell="gru", rng=9)       # the same weights, no dropout
    assert model.training and model.train() is model
    a, b = model(tokens), model(tokens)
    assert np.max(np.abs(a - b)) > 1e-3                                   # fresh masks each pass
    assert model.eval() is model and not model.training and not model.rnn.training
    c, d = model(tokens), model(tokens)
    np.testing.assert_array_equal(c, d)
    np.testing.assert_array_equal(c, plain(tokens))
    assert model.train(True).training


# ---------------------------------------------------------------------------------------------------------
# save / load
# ---------------------------------------------------------------------------------------------------------

@settings(max_examples=15, deadline=None)
@given(cell=st.sampled_from(list(CELLS)), num_layers=st.integers(1, 2), dropout=st.sampled_from([0.0, 0.3]),
       dtype=st.sampled_from([np.float64, np.float32]), seed=st.integers(0, 2**32 - 1))
def test_save_load_round_trip(tmp_path_factory, cell, num_layers, dropout, dtype, seed):
    model = LanguageModel(V, E, H, num_layers, cell=cell, dropout=dropout, dtype=dtype, rng=seed).eval()
    path = bptt.save(model, tmp_path_factory.mktemp("lm") / "model.safetensors")
    twin = bptt.load(path).eval()
    assert type(twin) is LanguageModel and twin.config() == model.config()
    assert list(twin.params) == list(model.params)
    for name, value in model.params.items():
        assert twin.params[name].dtype == value.dtype
        np.testing.assert_array_equal(twin.params[name], value, err_msg=name)
    tokens, _ = tokens_and_targets(seed % 1000)
    np.testing.assert_array_equal(twin(tokens), model(tokens))


def test_a_vocabulary_travels_in_the_metadata(tmp_path):
    """A character model's file carries its vocabulary: ``load`` rebuilds the model, ``load_arrays`` the
    vocabulary beside bptt's own entries."""
    vocab = ["a", "b", " ", "é", "\n"]
    model = LanguageModel(len(vocab), E, H, cell="gru", rng=0)
    path = bptt.save(model, tmp_path / "chars.safetensors", metadata={"vocab": vocab, "run": {"steps": 7}})
    arrays, metadata = load_arrays(path)
    assert metadata["vocab"] == vocab and metadata["run"] == {"steps": 7}
    assert metadata["class"] == "LanguageModel" and sorted(arrays) == sorted(model.params)
    assert metadata["config"] == {"vocab_size": 5, "embedding_dim": E, "hidden_size": H, "num_layers": 1,
                                  "cell": "gru", "dropout": 0.0, "dtype": "float64"}
    tokens = np.array([[vocab.index(c)] for c in "ab é"])
    np.testing.assert_array_equal(bptt.load(path)(tokens), model(tokens))


# ---------------------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------------------

def after_forward(**options) -> LanguageModel:
    model = LanguageModel(V, E, H, rng=0, **options)
    model(np.zeros((T, N), dtype=int))
    return model


def lm(**options) -> LanguageModel:
    return LanguageModel(V, E, H, rng=0, **options)


BAD_CALLS = {
    "unknown cell": (lambda: LanguageModel(V, E, H, cell="transformer"), ValueError,
                     "LanguageModel: expected cell to be one of lstm, gru, rnn, got 'transformer'"),
    "cell unhashable": (lambda: LanguageModel(V, E, H, cell=["lstm"]), ValueError,
                        "LanguageModel: expected cell to be one of lstm, gru, rnn, got ['lstm']"),
    "vocab_size 0": (lambda: LanguageModel(0, E, H), ValueError, "LanguageModel: expected vocab_size >= 1, got 0"),
    "embedding_dim 0": (lambda: LanguageModel(V, 0, H), ValueError,
                        "LanguageModel: expected embedding_dim >= 1, got 0"),
    "hidden_size -1": (lambda: LanguageModel(V, E, -1), ValueError, "LanguageModel: expected hidden_size >= 1, got -1"),
    "num_layers 0": (lambda: LanguageModel(V, E, H, num_layers=0), ValueError,
                     "LanguageModel: expected num_layers >= 1, got 0"),
    "vocab_size a float": (lambda: LanguageModel(5.0, E, H), TypeError,
                           "LanguageModel: expected vocab_size to be an int, got float"),
    "dropout 1": (lambda: LanguageModel(V, E, H, dropout=1.0), ValueError,
                  "LanguageModel: expected dropout in [0, 1), got 1.0"),
    "dropout negative": (lambda: LanguageModel(V, E, H, dropout=-0.1), ValueError,
                         "LanguageModel: expected dropout in [0, 1), got -0.1"),
    "dropout a str": (lambda: LanguageModel(V, E, H, dropout="0.5"), TypeError,
                      "LanguageModel: expected dropout to be a real number, got str"),
    "dropout a bool": (lambda: LanguageModel(V, E, H, dropout=True), TypeError,
                       "LanguageModel: expected dropout to be a real number, got bool"),
    "dtype float16": (lambda: LanguageModel(V, E, H, dtype=np.float16), TypeError,
                      "LanguageModel: expected dtype float32 or float64, got float16"),
    "rng a str": (lambda: LanguageModel(V, E, H, rng="0"), TypeError,
                  "LanguageModel: expected rng to be an int seed or a numpy.random.Generator, got str"),
    "train mode a str": (lambda: lm().train("eval"), TypeError,
                         "LanguageModel.train: expected mode to be a bool, got str"),
    "token too large": (lambda: lm()(np.array([[0, 1], [V, 2]])), ValueError,
                        f"LanguageModel.forward: expected tokens in 0..{V - 1} (vocab_size={V}), got {V} at position "
                        "(1, 0) (out of range: 1 of 4 tokens)."),
    "token negative": (lambda: lm()(np.array([2, -1, -3])), ValueError,
                       f"LanguageModel.forward: expected tokens in 0..{V - 1} (vocab_size={V}), got -1 at position "
                       "(1,) (out of range: 2 of 3 tokens)."),
    "tokens floats": (lambda: lm()(np.array([[1.0, 2.0]])), TypeError,
                      "LanguageModel.forward: expected tokens of an integer dtype, got dtype float64. Convert "
                      "whole-number floats with .astype(int)."),
    "tokens bools": (lambda: lm()(np.array([[True, False]])), TypeError,
                     "LanguageModel.forward: expected tokens of an integer dtype, got dtype bool"),
    "tokens an empty list": (lambda: lm()([]), TypeError,
                             "LanguageModel.forward: expected tokens of an integer dtype, got dtype float64. An empty "
                             "list becomes float64: pass np.array([], dtype=int)."),
    "tokens ragged": (lambda: lm()([[1, 2], [3]]), ValueError,
                      "LanguageModel.forward: expected tokens to be a rectangular array, got a ragged list"),
    "tokens 3-d": (lambda: lm()(np.zeros((T, N, 1), dtype=int)), ValueError,
                   f"LanguageModel.forward: expected tokens of shape (T, N) or unbatched (T,), got ({T}, {N}, 1)."),
    "tokens a scalar": (lambda: lm()(3), ValueError,
                        "LanguageModel.forward: expected tokens of shape (T, N) or unbatched (T,), got ()."),
    "tokens without steps": (lambda: lm()(np.zeros((0, N), dtype=int)), ValueError,
                             f"LanguageModel.forward: expected tokens with at least one step and one sequence, got "
                             f"shape (0, {N})."),
    "tokens without sequences": (lambda: lm()(np.zeros((T, 0), dtype=int)), ValueError,
                                 "expected tokens with at least one step and one sequence, got shape (6, 0)."),
    "hx of the wrong batch": (lambda: lm(cell="gru")(np.zeros((T, N), dtype=int), np.zeros((1, N + 1, H))),
                              ValueError, f"GRU.forward: expected h0 of shape (1, {N}, {H}), got (1, {N + 1}, {H})"),
    "hx not a pair for an LSTM": (lambda: lm()(np.zeros((T, N), dtype=int), np.zeros((1, N, H))), TypeError,
                                  "LSTM.forward: expected a pair (h0, c0), got ndarray"),
    "hx a pair for an RNN": (lambda: lm(cell="rnn")(np.zeros((T, N), dtype=int), (np.zeros((1, N, H)),) * 2),
                             TypeError, "RNN.forward: expected an array h0, got a tuple (only an LSTM takes a pair)"),
    "backward before forward": (lambda: lm().backward(np.zeros((T, N, V))), ValueError,
                                "LanguageModel.backward: expected a forward pass first, got none"),
    "dlogits wrong vocabulary": (lambda: after_forward().backward(np.zeros((T, N, V + 1))), ValueError,
                                 f"LanguageModel.backward: expected dlogits of shape ({T}, {N}, {V}), got "
                                 f"({T}, {N}, {V + 1}). dlogits must have the shape of the logits, tokens.shape + "
                                 "(vocab_size,)."),
    "dlogits without the time axis": (lambda: after_forward().backward(np.zeros((N, V))), ValueError,
                                      f"LanguageModel.backward: expected dlogits of shape ({T}, {N}, {V}), got "
                                      f"({N}, {V})"),
    "dlogits non-finite": (lambda: after_forward().backward(np.full((T, N, V), np.inf)), ValueError,
                           f"LanguageModel.backward: expected finite values in dlogits, got {T * N * V} NaN or "
                           "infinite entries"),
    "dlogits complex": (lambda: after_forward().backward(np.zeros((T, N, V), dtype=complex)), TypeError,
                        "LanguageModel.backward: expected dlogits to be a real numeric array, got dtype complex128"),
}


@pytest.mark.parametrize("case", list(BAD_CALLS))
def test_bad_input_raises_with_a_clear_message(case):
    call, error, message = BAD_CALLS[case]
    with pytest.raises(error, match=re.escape(message)):
        call()


def test_a_refused_backward_changes_no_gradient():
    model = after_forward(cell="gru", num_layers=2)
    with pytest.raises(ValueError, match="expected dlogits of shape"):
        model.backward(np.ones((T, N, V + 1)))
    assert not any(g.any() for g in model.grads.values())


def test_backward_after_a_failed_forward_is_refused():
    """A forward pass that fails part-way (here at the stack, after the embedding has read new tokens) leaves
    no pass to differentiate: backward refuses rather than mix the old pass with the new tokens."""
    model = after_forward()
    with pytest.raises(TypeError, match="expected a pair"):
        model(np.ones((T, N), dtype=int), np.zeros((1, N, H)))
    with pytest.raises(ValueError, match="LanguageModel.backward: expected a forward pass first, got none"):
        model.backward(np.zeros((T, N, V)))
