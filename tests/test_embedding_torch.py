"""Parity of ``Embedding`` with ``torch.nn.Embedding``, the oracle: the same weights (padding row included,
loaded non-zero so that a forward pass that skipped it would show), random index arrays of 0 to 3
dimensions with repeats, random upstream gradients (never all-ones). The forward pass is a gather and must
be bit for bit equal; the weight gradient is a sum of the same numbers, perhaps in another order, and must
agree to ``1e-12`` relative to the reference's scale."""

from __future__ import annotations

import numpy as np
import pytest
from errors import rel_err
from hypothesis import given, settings
from hypothesis import strategies as st

from bptt.layers.embedding import Embedding

torch = pytest.importorskip("torch")

TOL64 = 1e-12
TOL32 = 1e-5
TORCH_DTYPE = {np.dtype(np.float64): torch.float64, np.dtype(np.float32): torch.float32}


@st.composite
def cases(draw):
    """A random table, an index array of 0 to 3 dimensions, a padding row or None (negative included),
    the index dtype and a seed."""
    V = draw(st.integers(1, 12))
    E = draw(st.integers(1, 6))
    shape = tuple(draw(st.lists(st.integers(0, 4), max_size=3)))
    padding_idx = draw(st.none() | st.integers(-V, V - 1))
    index_dtype = draw(st.sampled_from([np.int64, np.int32]))
    seed = draw(st.integers(0, 2**32 - 1))
    return V, E, shape, padding_idx, index_dtype, seed


def twins(V: int, E: int, padding_idx: int | None, weight: np.ndarray):
    """A bptt and a torch embedding holding ``weight``, in its dtype."""
    emb = Embedding(V, E, padding_idx, dtype=weight.dtype, rng=0)
    emb.load_state_dict({"weight": weight})
    module = torch.nn.Embedding(V, E, padding_idx=padding_idx, dtype=TORCH_DTYPE[weight.dtype])
    module.load_state_dict({"weight": torch.from_numpy(weight.copy())})
    return emb, module


def torch_pass(module, indices: np.ndarray, dout: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Forward, then the weight gradient of sum(y * dout), added onto whatever ``.grad`` holds."""
    y = module(torch.from_numpy(indices))
    (y * torch.from_numpy(dout)).sum().backward()
    grad = module.weight.grad
    return y.detach().numpy(), (np.zeros(tuple(module.weight.shape)) if grad is None else grad.numpy().copy())


def draw_arrays(case, dtype=np.float64):
    V, E, shape, padding_idx, index_dtype, seed = case
    rng = np.random.default_rng(seed)
    weight = rng.standard_normal((V, E)).astype(dtype)
    indices = rng.integers(0, V, size=shape).astype(index_dtype)
    if padding_idx is not None and indices.size:
        indices.flat[0] = padding_idx % V                     # the padding row is read in every such case
    dout = rng.standard_normal(shape + (E,)).astype(dtype)
    return weight, indices, dout


@settings(max_examples=150, deadline=None)
@given(cases())
def test_forward_and_weight_gradient_match_torch(case):
    V, E, shape, padding_idx = case[:4]
    weight, indices, dout = draw_arrays(case)
    emb, module = twins(V, E, padding_idx, weight)
    assert emb.padding_idx == module.padding_idx
    y_torch, grad_torch = torch_pass(module, indices, dout)
    y = emb(indices)
    emb.backward(dout)
    assert y.dtype == y_torch.dtype and y.shape == y_torch.shape
    np.testing.assert_array_equal(y, y_torch)                 # a gather: bit for bit
    err = rel_err(emb.grads["weight"], grad_torch)
    assert err <= TOL64, f"weight gradient: relative error {err:.3e} > {TOL64:.0e}"
    if emb.padding_idx is not None:
        assert not emb.grads["weight"][emb.padding_idx].any() and not grad_torch[emb.padding_idx].any()


@settings(max_examples=40, deadline=None)
@given(cases())
def test_float32_matches_torch(case):
    V, E, shape, padding_idx = case[:4]
    weight, indices, dout = draw_arrays(case, np.float32)
    emb, module = twins(V, E, padding_idx, weight)
    y_torch, grad_torch = torch_pass(module, indices, dout)
    y = emb(indices)
    emb.backward(dout)
    assert y.dtype == np.float32 and emb.grads["weight"].dtype == np.float32
    np.testing.assert_array_equal(y, y_torch)
    err = rel_err(emb.grads["weight"], grad_torch)
    assert err <= TOL32, f"weight gradient: relative error {err:.3e} > {TOL32:.0e}"


def test_two_passes_accumulate_like_torch():
    rng = np.random.default_rng(0)
    weight = rng.standard_normal((7, 3))
    emb, module = twins(7, 3, 2, weight)
    for shape in [(4, 5), (6,)]:
        indices = rng.integers(0, 7, size=shape)
        dout = rng.standard_normal(shape + (3,))
        _, grad_torch = torch_pass(module, indices, dout)
        emb(indices)
        emb.backward(dout)
        assert rel_err(emb.grads["weight"], grad_torch) <= TOL64
    assert np.abs(grad_torch).max() > 0
    emb.zero_grad()
    module.zero_grad()
    indices = np.array([[2, 0, 0]])
    dout = rng.standard_normal((1, 3, 3))
    _, grad_torch = torch_pass(module, indices, dout)
    emb(indices)
    emb.backward(dout)
    assert rel_err(emb.grads["weight"], grad_torch) <= TOL64


@pytest.mark.parametrize("V", [1, 2, 5])
def test_padding_idx_is_accepted_normalised_and_zeroed_like_torch(V):
    for padding_idx in range(-V - 2, V + 2):
        try:
            module = torch.nn.Embedding(V, 3, padding_idx=padding_idx, dtype=torch.float64)
        except AssertionError:
            with pytest.raises(ValueError, match=r"Embedding: expected padding_idx in"):
                Embedding(V, 3, padding_idx=padding_idx)
            continue
        emb = Embedding(V, 3, padding_idx=padding_idx, rng=0)
        assert emb.padding_idx == module.padding_idx
        assert not module.weight.detach().numpy()[module.padding_idx].any()
        assert not emb.params["weight"][emb.padding_idx].any()
        others = np.delete(emb.params["weight"], emb.padding_idx, axis=0)
        assert others.size == 0 or np.all(others != 0)


@pytest.mark.parametrize("index", [-2, -1, 0, 3, 4, 5])
def test_the_valid_indices_are_torchs(index):
    emb, module = twins(4, 2, None, np.random.default_rng(1).standard_normal((4, 2)))
    indices = np.array([[0, index]])
    try:
        expected = module(torch.from_numpy(indices)).detach().numpy()
    except IndexError:
        with pytest.raises(ValueError, match=rf"Embedding.forward: expected indices in 0\.\.3 .*got {index} "
                                             r"at position \(0, 1\)"):
            emb(indices)
        return
    np.testing.assert_array_equal(emb(indices), expected)


def test_config_builds_the_same_torch_module():
    emb = Embedding(9, 4, padding_idx=-3, dtype=np.float32, rng=0)
    options = {k: v for k, v in emb.config().items() if k != "dtype"}
    module = torch.nn.Embedding(**options, dtype=torch.float32)
    assert (module.num_embeddings, module.embedding_dim, module.padding_idx) == (9, 4, 6)
    module.load_state_dict({"weight": torch.from_numpy(emb.params["weight"].copy())})
    indices = np.array([[6, 1], [8, 6]])
    np.testing.assert_array_equal(emb(indices), module(torch.from_numpy(indices)).detach().numpy())
