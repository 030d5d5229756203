"""``LanguageModel`` against its PyTorch twin (``nn.Embedding`` -> ``nn.LSTM|GRU|RNN`` -> ``nn.Linear`` as the
attributes ``embedding``, ``rnn``, ``head``), in float64: logits, the mean cross-entropy over every step of
every sequence, final states and every parameter gradient, from zero or given initial states (given ones are
not differentiated: truncated BPTT stops there); and the files ``bptt.save`` writes load into that twin.

Errors are ``max|a - b| / max(max|b|, upstream)`` with ``upstream`` the size of dL/dlogits, the gradient that
enters the model (see ``relative_error`` in tests/test_reference_torch.py for why the floor is honest).
"""

from __future__ import annotations

import numpy as np
import pytest
from errors import rel_err
from hypothesis import given, settings
from hypothesis import strategies as st

import bptt
from bptt.layers.models import LanguageModel

torch = pytest.importorskip("torch")
safetensors_torch = pytest.importorskip("safetensors.torch")
F = torch.nn.functional

TOL = 1e-10


class TorchLanguageModel(torch.nn.Module):
    """The twin, written from PyTorch's documented modules alone (no bptt code)."""

    def __init__(self, vocab_size: int, embedding_dim: int, hidden_size: int, num_layers: int, cell: str) -> None:
        super().__init__()
        self.embedding = torch.nn.Embedding(vocab_size, embedding_dim, dtype=torch.float64)
        self.rnn = getattr(torch.nn, cell.upper())(embedding_dim, hidden_size, num_layers=num_layers,
                                                   dtype=torch.float64)
        self.head = torch.nn.Linear(hidden_size, vocab_size, dtype=torch.float64)

    def forward(self, tokens, hx=None):
        out, state = self.rnn(self.embedding(tokens), hx)
        return self.head(out), state


def twin_of(model: LanguageModel) -> TorchLanguageModel:
    config = model.config()
    twin = TorchLanguageModel(config["vocab_size"], config["embedding_dim"], config["hidden_size"],
                              config["num_layers"], config["cell"])
    twin.load_state_dict({name: torch.from_numpy(value.copy()) for name, value in model.params.items()})
    return twin


def as_tuple(state) -> tuple:
    return state if isinstance(state, tuple) else (state,)


def compare(model: LanguageModel, tokens: np.ndarray, targets: np.ndarray, hx) -> dict[str, float]:
    """One forward, loss and backward on both sides; the relative error of every output and gradient."""
    V = model.vocab_size
    twin = twin_of(model)
    model.zero_grad()
    logits = model(tokens, hx)
    loss, dlogits = bptt.cross_entropy(logits, targets)
    model.backward(dlogits)

    t_hx = None if hx is None else tuple(torch.from_numpy(s) for s in as_tuple(hx))
    if t_hx is not None and model.cell != "lstm":
        t_hx = t_hx[0]
    t_logits, t_state = twin(torch.from_numpy(tokens), t_hx)
    t_loss = F.cross_entropy(t_logits.reshape(-1, V), torch.from_numpy(targets).reshape(-1))
    t_loss.backward()

    upstream = float(np.max(np.abs(dlogits)))
    errors = {"logits": rel_err(logits, t_logits.detach().numpy(), 0.0, same_dtype=True),
              "loss": abs(loss - t_loss.item()) / abs(t_loss.item())}
    for k, (ours, theirs) in enumerate(zip(as_tuple(model.final_state), as_tuple(t_state), strict=True)):
        errors[f"final state {k}"] = rel_err(ours, theirs.detach().numpy(), 0.0, same_dtype=True)
    theirs = dict(twin.named_parameters())
    assert list(theirs) == list(model.grads)
    errors.update({name: rel_err(grad, theirs[name].grad.numpy(), upstream, same_dtype=True)
                   for name, grad in model.grads.items()})
    return errors


@settings(max_examples=150, deadline=None)
@given(cell=st.sampled_from(["lstm", "gru", "rnn"]), num_layers=st.integers(1, 2), V=st.integers(2, 8),
       E=st.integers(1, 5), H=st.integers(1, 5), T=st.integers(1, 6), N=st.integers(1, 4), with_hx=st.booleans(),
       seed=st.integers(0, 2**32 - 1))
def test_matches_torch(cell, num_layers, V, E, H, T, N, with_hx, seed):
    rng = np.random.default_rng(seed)
    model = LanguageModel(V, E, H, num_layers, cell=cell, rng=rng)
    stream = rng.integers(0, V, (T + 1, N))
    hx = None
    if with_hx:
        hx = tuple(rng.standard_normal((num_layers, N, H)) for _ in range(2 if cell == "lstm" else 1))
        hx = hx if cell == "lstm" else hx[0]
    errors = compare(model, stream[:-1], stream[1:], hx)
    worst = max(errors, key=errors.get)
    assert errors[worst] <= TOL, f"{worst}: {errors[worst]:.3g}"


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_unbatched_tokens_match_torch(cell):
    model = LanguageModel(6, 3, 4, 2, cell=cell, rng=1)
    stream = np.random.default_rng(2).integers(0, 6, 8)
    hx = tuple(np.random.default_rng(3).standard_normal((2, 4)) for _ in range(2 if cell == "lstm" else 1))
    errors = compare(model, stream[:-1], stream[1:], hx if cell == "lstm" else hx[0])
    worst = max(errors, key=errors.get)
    assert errors[worst] <= TOL, f"{worst}: {errors[worst]:.3g}"


def test_chunks_with_a_detached_state_match_torch():
    """Truncated BPTT as PyTorch users write it: the second chunk starts from ``h.detach()``. bptt's
    ``hx=model.final_state`` gives the same logits and the same (truncated) gradients."""
    model = LanguageModel(7, 4, 5, 2, cell="lstm", rng=4)
    twin = twin_of(model)
    stream = np.random.default_rng(5).integers(0, 7, (11, 3))
    tokens, targets = stream[:-1], stream[1:]
    model(tokens[:6])
    _, state = twin(torch.from_numpy(tokens[:6]))
    model.zero_grad()
    logits = model(tokens[6:], hx=model.final_state)
    loss, dlogits = bptt.cross_entropy(logits, targets[6:])
    model.backward(dlogits)
    t_logits, _ = twin(torch.from_numpy(tokens[6:]), tuple(s.detach() for s in state))
    F.cross_entropy(t_logits.reshape(-1, 7), torch.from_numpy(targets[6:]).reshape(-1)).backward()
    upstream = float(np.max(np.abs(dlogits)))
    assert rel_err(logits, t_logits.detach().numpy(), 0.0, same_dtype=True) <= TOL
    for name, p in twin.named_parameters():
        assert rel_err(model.grads[name], p.grad.numpy(), upstream, same_dtype=True) <= TOL, name


def test_parity_can_fail():
    """The comparison is not vacuous: a twin whose recurrent weights differ by one part in 10^7 disagrees in
    the logits and the gradients beyond ``TOL``, and so does torch's loss summed instead of averaged."""
    model = LanguageModel(5, 3, 4, 2, cell="gru", rng=0)
    stream = np.random.default_rng(1).integers(0, 5, (6, 3))
    tokens, targets = stream[:-1], stream[1:]
    assert max(compare(model, tokens, targets, None).values()) <= TOL
    twin = twin_of(model)
    with torch.no_grad():
        twin.rnn.weight_hh_l0.mul_(1 + 1e-7)
    t_logits, _ = twin(torch.from_numpy(tokens))
    F.cross_entropy(t_logits.reshape(-1, 5), torch.from_numpy(targets).reshape(-1)).backward()
    assert rel_err(model(tokens), t_logits.detach().numpy(), 0.0, same_dtype=True) > TOL
    assert rel_err(model.grads["rnn.weight_hh_l0"], twin.rnn.weight_hh_l0.grad.numpy(), 0.0, same_dtype=True) > TOL
    summed = F.cross_entropy(t_logits.reshape(-1, 5), torch.from_numpy(targets).reshape(-1), reduction="sum")
    loss, _ = bptt.cross_entropy(model(tokens), targets)
    assert abs(loss - summed.item()) / summed.item() > TOL


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_saved_file_loads_into_the_torch_twin(tmp_path, cell):
    model = LanguageModel(9, 4, 5, num_layers=2, cell=cell, rng=1)
    path = bptt.save(model, tmp_path / "lm.safetensors", metadata={"vocab": list("abcdefghi")})
    twin = TorchLanguageModel(9, 4, 5, 2, cell)
    state = safetensors_torch.load_file(path)
    assert sorted(state) == sorted(twin.state_dict())
    twin.load_state_dict(state)
    for name, value in twin.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), model.params[name], err_msg=name)
    tokens = np.random.default_rng(2).integers(0, 9, (7, 3))
    with torch.no_grad():
        expected, _ = twin(torch.from_numpy(tokens))
    assert rel_err(bptt.load(path).eval()(tokens), expected.numpy(), 0.0, same_dtype=True) <= TOL
