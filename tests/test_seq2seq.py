"""bptt.Seq2Seq without torch: the fast path against the oracle built from the references (logits and every
gradient, both cells, both scores, one and two encoder layers, padded sources and targets), central differences
on every parameter, the masks, dropout, and bad input. Parity with torch is in test_seq2seq_torch.py."""

from __future__ import annotations

import numpy as np
import pytest
from errors import rel_err
from reference_seq2seq import reference_seq2seq

from bptt import gradcheck
from bptt.layers.seq2seq import Seq2Seq
from bptt.train.losses import cross_entropy

CONFIGS = [(cell, score, layers) for cell in ("lstm", "gru") for score in ("general", "additive") for layers in (1, 2)]


def batch(model: Seq2Seq, S: int, T: int, N: int, seed: int,
          padded_targets: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random source ids with lengths 1..S (padded with 0 past each length) and random target ids, the last
    column padded after its first step when ``padded_targets``. Without it no padding id is read, so the
    padding rows' true gradient is zero, as their analytic one is (PyTorch's ``padding_idx``)."""
    rng = np.random.default_rng(seed)
    lengths = np.concatenate([[S], rng.integers(1, S + 1, size=N - 1)])
    source = rng.integers(1, model.source_embedding.num_embeddings, size=(S, N))
    source[np.arange(S)[:, None] >= lengths[None, :]] = 0
    target_in = rng.integers(1, model.target_embedding.num_embeddings, size=(T, N))
    if padded_targets:
        target_in[1:, -1] = 0
    return source, lengths, target_in


@pytest.mark.parametrize(("cell", "score", "layers"), CONFIGS)
def test_the_fast_path_equals_the_reference_oracle(cell, score, layers):
    model = Seq2Seq(11, 13, 5, 6, cell=cell, attention=score, num_layers=layers, rng=3)
    source, lengths, target_in = batch(model, S=7, T=5, N=4, seed=layers)
    dlogits = np.random.default_rng(9).standard_normal((5, 4, 13))
    logits = model(source, lengths, target_in)
    model.backward(dlogits)
    oracle = reference_seq2seq(model, source, lengths, target_in, dlogits)
    assert rel_err(logits, oracle.logits) <= 1e-12
    assert set(model.grads) == set(oracle.grads)
    worst = {name: rel_err(model.grads[name], oracle.grads[name]) for name in model.grads}
    assert max(worst.values()) <= 1e-12, worst
    assert all(np.abs(grad).max() > 0 for grad in model.grads.values())   # every parameter is reached


@pytest.mark.parametrize(("cell", "score"), [(cell, score) for cell, score, layers in CONFIGS if layers == 1])
def test_every_gradient_agrees_with_central_differences(cell, score):
    model = Seq2Seq(6, 7, 3, 4, cell=cell, attention=score, num_layers=2, rng=1)
    source, lengths, target_in = batch(model, S=4, T=3, N=2, seed=2, padded_targets=False)
    target_out = np.random.default_rng(5).integers(0, 7, size=target_in.shape)

    def loss(params):
        return cross_entropy(model(source, lengths, target_in), target_out)[0]

    value, dlogits = cross_entropy(model(source, lengths, target_in), target_out)
    model.zero_grad()
    model.backward(dlogits)
    report = gradcheck(loss, model.params, model.grads, loss=value)
    assert report.ok, report


def test_padding_is_never_read():
    """Whatever the source holds past a length changes nothing: the encoder stops there and attention gives it
    no weight."""
    model = Seq2Seq(9, 9, 4, 5, attention="additive", rng=0)
    source, lengths, target_in = batch(model, S=6, T=3, N=3, seed=4)
    logits = model(source, lengths, target_in)
    changed = source.copy()
    changed[np.arange(6)[:, None] >= lengths[None, :]] = 8
    np.testing.assert_array_equal(model(changed, lengths, target_in), logits)


def test_dropout_acts_in_training_mode_only_and_its_masks_pass_gradcheck():
    model = Seq2Seq(8, 8, 4, 5, dropout=0.5, rng=0)
    source, lengths, target_in = batch(model, S=5, T=4, N=3, seed=0, padded_targets=False)
    evaluated = model.eval()(source, lengths, target_in)
    np.testing.assert_array_equal(model(source, lengths, target_in), evaluated)
    assert not np.allclose(model.train()(source, lengths, target_in), evaluated)
    state, target_out = model.rng.bit_generator.state, np.roll(target_in, -1, axis=0)

    def with_the_same_masks():
        model.rng.bit_generator.state = state
        return cross_entropy(model(source, lengths, target_in), target_out)

    value, dlogits = with_the_same_masks()
    model.zero_grad()
    model.backward(dlogits)
    report = gradcheck(lambda params: with_the_same_masks()[0], model.params, model.grads, loss=value,
                       mode="sample", seed=0)
    assert report.ok, report


def test_save_and_load_keep_the_keys_and_the_logits(tmp_path):
    from bptt import load, save

    model = Seq2Seq(9, 8, 4, 5, cell="gru", attention="additive", num_layers=2, rng=2).eval()
    source, lengths, target_in = batch(model, S=5, T=3, N=2, seed=1)
    loaded = load(save(model, tmp_path / "seq2seq.safetensors"))
    assert type(loaded) is Seq2Seq and loaded.config() == model.config() and list(loaded.params) == list(model.params)
    loaded.eval()
    np.testing.assert_array_equal(loaded(source, lengths, target_in), model(source, lengths, target_in))


@pytest.mark.parametrize(("change", "error", "message"), [
    ({"source": np.array([[1, 2], [3, 9]])}, ValueError, r"source"),
    ({"source": np.zeros((0, 2), dtype=int)}, ValueError, r"expected source of shape \(S, N\) with S, N >= 1"),
    ({"source_lengths": [2, 3]}, ValueError, r"expected source_lengths between 1 and S = 2, got values from 2 to 3"),
    ({"source_lengths": [2, 0]}, ValueError, r"expected source_lengths between 1 and S = 2, got values from 0 to 2"),
    ({"source_lengths": [2.0, 1.0]}, TypeError, r"expected source_lengths to be integers, got dtype float64"),
    ({"source_lengths": [2]}, ValueError, r"source_lengths"),
    ({"target_in": np.array([[1, 2, 3]])}, ValueError, r"expected target_in of shape \(T, 2\) with T >= 1"),
    ({"target_in": np.array([[1, 8]])}, ValueError, r"target_in"),
])
def test_bad_input_is_named(change, error, message):
    model = Seq2Seq(9, 8, 4, 5, rng=0)
    arguments = {"source": np.array([[1, 2], [3, 4]]), "source_lengths": [2, 1], "target_in": np.array([[1, 2]]),
                 **change}
    with pytest.raises(error, match=message):
        model(**arguments)


def test_backward_needs_a_forward_pass_and_the_logits_shape():
    model = Seq2Seq(9, 8, 4, 5, rng=0)
    with pytest.raises(ValueError, match=r"Seq2Seq.backward: expected a forward pass first"):
        model.backward(np.zeros((1, 2, 8)))
    model(np.array([[1, 2]]), [1, 1], np.array([[1, 2]]))
    with pytest.raises(ValueError, match=r"dlogits"):
        model.backward(np.zeros((2, 2, 8)))


@pytest.mark.parametrize(("options", "message"), [
    ({"cell": "rnn"}, r"Seq2Seq: expected cell to be one of lstm, gru, got 'rnn'"),
    ({"attention": "dot"}, r"Seq2Seq: expected attention to be one of general, additive, got 'dot'"),
    ({"num_layers": 0}, r"num_layers"),
    ({"dropout": 1.0}, r"dropout"),
])
def test_bad_options_are_named(options, message):
    with pytest.raises(ValueError, match=message):
        Seq2Seq(9, 8, 4, 5, **options)
