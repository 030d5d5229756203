"""``SequenceClassifier`` against its PyTorch twin (``rnn`` and ``head`` attributes, features ``h_n[-1]`` or
``cat(h_n[-2], h_n[-1])``, lengths through ``pack_padded_sequence``), in float64: logits, cross-entropy loss,
the input gradient and every parameter gradient; and the files ``bptt.save`` writes load into that twin.

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
from bptt.layers.models import SequenceClassifier

torch = pytest.importorskip("torch")
safetensors_torch = pytest.importorskip("safetensors.torch")
pack_padded_sequence = torch.nn.utils.rnn.pack_padded_sequence

TOL = 1e-10


class TorchClassifier(torch.nn.Module):
    """The twin, written from PyTorch's documented idiom alone (no bptt code)."""

    def __init__(self, input_size: int, hidden_size: int, num_classes: int, num_layers: int, cell: str,
                 bidirectional: bool) -> None:
        super().__init__()
        self.rnn = getattr(torch.nn, cell.upper())(input_size, hidden_size, num_layers=num_layers,
                                                   bidirectional=bidirectional, dtype=torch.float64)
        self.head = torch.nn.Linear((2 if bidirectional else 1) * hidden_size, num_classes, dtype=torch.float64)

    def forward(self, x, lengths=None):
        if lengths is not None:
            x = pack_padded_sequence(x, torch.as_tensor(lengths, dtype=torch.int64), enforce_sorted=False)
        _, h_n = self.rnn(x)
        if isinstance(h_n, tuple):
            h_n = h_n[0]
        features = torch.cat((h_n[-2], h_n[-1]), dim=-1) if self.rnn.bidirectional else h_n[-1]
        return self.head(features)


@settings(max_examples=120, deadline=None)
@given(cell=st.sampled_from(["lstm", "gru", "rnn"]), num_layers=st.integers(1, 2), bidirectional=st.booleans(),
       packed=st.booleans(), T=st.integers(1, 6), N=st.integers(1, 4), I=st.integers(1, 4), H=st.integers(1, 5),
       C=st.integers(2, 5), seed=st.integers(0, 2**32 - 1))
def test_matches_torch(cell, num_layers, bidirectional, packed, T, N, I, H, C, seed):
    rng = np.random.default_rng(seed)
    model = SequenceClassifier(I, H, C, num_layers=num_layers, cell=cell, bidirectional=bidirectional, rng=rng)
    twin = TorchClassifier(I, H, C, num_layers, cell, bidirectional)
    twin.load_state_dict({name: torch.from_numpy(value.copy()) for name, value in model.params.items()})
    x = rng.standard_normal((T, N, I))
    lengths = rng.integers(1, T + 1, N) if packed else None
    labels = rng.integers(0, C, N)

    logits = model(x, lengths)
    loss, dlogits = bptt.cross_entropy(logits, labels)
    dx = model.backward(dlogits)

    x_t = torch.from_numpy(x).requires_grad_(True)
    t_logits = twin(x_t, lengths)
    t_loss = torch.nn.functional.cross_entropy(t_logits, torch.from_numpy(labels))
    t_loss.backward()

    upstream = float(np.max(np.abs(dlogits)))
    errors = {"logits": rel_err(logits, t_logits.detach().numpy(), 0.0, same_dtype=True),
              "loss": abs(loss - t_loss.item()) / abs(t_loss.item()),
              "dx": rel_err(dx, x_t.grad.numpy(), upstream, same_dtype=True)}
    theirs = dict(twin.named_parameters())
    assert sorted(theirs) == sorted(model.grads)
    errors.update({name: rel_err(grad, theirs[name].grad.numpy(), upstream, same_dtype=True)
                   for name, grad in model.grads.items()})
    if lengths is not None:
        assert (dx[np.arange(T)[:, None] >= lengths] == 0).all()
    worst = max(errors, key=errors.get)
    assert errors[worst] <= TOL, f"{worst}: {errors[worst]:.3g}"


def test_parity_can_fail():
    """The comparison is not vacuous: the twin reading ``h_n[0]`` (the first layer) instead of ``h_n[-1]``
    disagrees, and so does one that concatenates the directions the other way round."""
    model = SequenceClassifier(2, 3, 4, num_layers=2, cell="gru", bidirectional=True, rng=0)
    twin = TorchClassifier(2, 3, 4, 2, "gru", True)
    twin.load_state_dict({name: torch.from_numpy(value.copy()) for name, value in model.params.items()})
    x = np.random.default_rng(1).standard_normal((4, 3, 2))
    with torch.no_grad():
        _, h_n = twin.rnn(torch.from_numpy(x))
        first_layer = twin.head(torch.cat((h_n[0], h_n[1]), dim=-1)).numpy()
        swapped = twin.head(torch.cat((h_n[-1], h_n[-2]), dim=-1)).numpy()
        right = twin(torch.from_numpy(x)).numpy()
    logits = model(x)
    assert rel_err(logits, right, 0.0, same_dtype=True) <= TOL
    assert rel_err(logits, first_layer, same_dtype=True) > 1e-3
    assert rel_err(logits, swapped, same_dtype=True) > 1e-3


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_saved_file_loads_into_the_torch_twin(tmp_path, cell, bidirectional):
    model = SequenceClassifier(3, 5, 4, num_layers=2, cell=cell, bidirectional=bidirectional, rng=1)
    path = bptt.save(model, tmp_path / "classifier.safetensors")
    twin = TorchClassifier(3, 5, 4, 2, cell, bidirectional)
    state = safetensors_torch.load_file(path)
    assert sorted(state) == sorted(twin.state_dict())
    twin.load_state_dict(state)
    for name, value in twin.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), model.params[name], err_msg=name)
    rng = np.random.default_rng(2)
    x, lengths = rng.standard_normal((6, 3, 3)), np.array([6, 2, 4])
    with torch.no_grad():
        expected = twin(torch.from_numpy(x), lengths).numpy()
    assert rel_err(bptt.load(path)(x, lengths), expected, 0.0, same_dtype=True) <= TOL
