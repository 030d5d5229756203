"""bptt.Seq2Seq against its torch twin (to_torch): logits and every parameter's gradient, on random shapes,
lengths and padding, both cells, both scores, one and two encoder layers, in float64 (to round-off) and
float32. The twin is written with torch.nn modules alone; its state-dict keys are the model's."""

from __future__ import annotations

import numpy as np
import pytest
from errors import rel_err
from hypothesis import example, given, settings
from hypothesis import strategies as st

from bptt import to_torch
from bptt.layers.seq2seq import Seq2Seq

torch = pytest.importorskip("torch")

FLOAT64_TOLERANCE = 1e-10
FLOAT32_TOLERANCE = 1e-4


def compare(cell: str, score: str, layers: int, S: int, T: int, N: int, E: int, H: int, seed: int,
            dtype: type = np.float64) -> dict[str, float]:
    """The relative error of the logits and of every gradient, model against twin, for random upstream
    gradients (never all ones)."""
    rng = np.random.default_rng(seed)
    model = Seq2Seq(int(rng.integers(2, 9)), int(rng.integers(2, 9)), E, H, cell=cell, attention=score,
                    num_layers=layers, dtype=dtype, rng=seed)
    lengths = np.concatenate([[S], rng.integers(1, S + 1, size=N - 1)])
    rng.shuffle(lengths)
    source = rng.integers(1, model.source_embedding.num_embeddings, size=(S, N))
    source[np.arange(S)[:, None] >= lengths[None, :]] = 0
    target_in = rng.integers(0, model.target_embedding.num_embeddings, size=(T, N))
    twin = to_torch(model)
    assert list(twin.state_dict()) == list(model.params)
    logits = model(source, lengths, target_in)
    dlogits = rng.standard_normal(logits.shape).astype(dtype)
    model.backward(dlogits)
    expected = twin(torch.from_numpy(source), lengths, torch.from_numpy(target_in))
    (expected * torch.from_numpy(dlogits)).sum().backward()
    errors = {"logits": rel_err(logits, expected.detach().numpy(), same_dtype=True)}
    # The additive score's query gradient, sum_t (sum_j ds_tj)^T h_t, cancels: sum_j de_tj = 0 (A3), and with
    # nearly equal slopes 1 - u^2 over j its sum falls to the round-off of its terms (1.3e-10 on a drawn case,
    # bptt and torch 4e-19 apart). Its error is measured on the scale of those terms, which the key gradient,
    # sum_tj ds_tj^T enc_j, has without the cancellation (rel_err's floor).
    floors = {"attention.query.weight": float(np.abs(model.grads["attention.key.weight"]).max())} \
        if score == "additive" else {}
    for name, parameter in twin.named_parameters():
        errors[name] = rel_err(model.grads[name], parameter.grad.numpy(), floors.get(name, 0.0), same_dtype=True)
    return errors


configs = st.tuples(st.sampled_from(["lstm", "gru"]), st.sampled_from(["general", "additive"]), st.integers(1, 2))
sizes = st.tuples(st.integers(1, 6), st.integers(1, 5), st.integers(1, 4), st.integers(1, 4), st.integers(1, 5),
                  st.integers(0, 10**6))


@settings(max_examples=30, deadline=None)
@given(config=configs, size=sizes)
@example(config=("lstm", "additive", 2), size=(2, 1, 1, 4, 1, 0))      # a query gradient that cancels to 1e-10
def test_float64_equals_torch_to_round_off(config, size):
    errors = compare(*config, *size)
    assert max(errors.values()) <= FLOAT64_TOLERANCE, errors


@pytest.mark.parametrize(("cell", "score"), [("lstm", "general"), ("gru", "additive")])
def test_float32_equals_torch_to_float32_round_off(cell, score):
    errors = compare(cell, score, 2, 7, 6, 3, 8, 16, seed=1, dtype=np.float32)
    assert max(errors.values()) <= FLOAT32_TOLERANCE, errors


def test_the_twin_is_in_the_models_mode():
    model = Seq2Seq(5, 5, 3, 4, dropout=0.3, rng=0)
    assert to_torch(model).training and not to_torch(model.eval()).training
