"""The recurrent cells (bptt.layers.cells) against torch.nn.LSTMCell, GRUCell and RNNCell, converted both
ways: the next states, the input's and the states' gradients and every parameter's, batched and unbatched, in
float64 (to round-off) and float32."""

from __future__ import annotations

import numpy as np
import pytest
from errors import rel_err
from hypothesis import given, settings
from hypothesis import strategies as st

from bptt import from_torch, load, save, to_torch
from bptt.layers.cells import GRUCell, LSTMCell, RNNCell

torch = pytest.importorskip("torch")

CELLS = {"LSTMCell": lambda I, H, bias, dtype, rng: LSTMCell(I, H, bias, dtype=dtype, rng=rng),
         "GRUCell": lambda I, H, bias, dtype, rng: GRUCell(I, H, bias, dtype=dtype, rng=rng),
         "RNNCell-tanh": lambda I, H, bias, dtype, rng: RNNCell(I, H, bias, "tanh", dtype=dtype, rng=rng),
         "RNNCell-relu": lambda I, H, bias, dtype, rng: RNNCell(I, H, bias, "relu", dtype=dtype, rng=rng)}


def compare(kind: str, N: int | None, I: int, H: int, bias: bool, seed: int,
            dtype: type = np.float64) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    cell = CELLS[kind](I, H, bias, dtype, seed)
    twin = to_torch(cell)
    batch = () if N is None else (N,)
    x = rng.standard_normal((*batch, I)).astype(dtype)
    states = [rng.standard_normal((*batch, H)).astype(dtype) for _ in (0, 1)[:2 if kind == "LSTMCell" else 1]]
    upstream = [rng.standard_normal((*batch, H)).astype(dtype) for _ in states]
    hx = tuple(states) if kind == "LSTMCell" else states[0]
    ours = cell(x, hx)
    ours = ours if isinstance(ours, tuple) else (ours,)
    dx, dhx = cell.backward(*upstream)
    dhx = dhx if isinstance(dhx, tuple) else (dhx,)
    tx = torch.from_numpy(x).requires_grad_()
    tstates = [torch.from_numpy(s).requires_grad_() for s in states]
    theirs = twin(tx, tuple(tstates) if kind == "LSTMCell" else tstates[0])
    theirs = theirs if isinstance(theirs, tuple) else (theirs,)
    sum((t * torch.from_numpy(u)).sum() for t, u in zip(theirs, upstream, strict=True)).backward()
    errors = {"dx": rel_err(dx, tx.grad.numpy(), same_dtype=True)}
    for k, (mine, other) in enumerate(zip(ours, theirs, strict=True)):
        errors[f"state{k}"] = rel_err(mine, other.detach().numpy(), same_dtype=True)
    for k, (mine, other) in enumerate(zip(dhx, tstates, strict=True)):
        errors[f"dstate{k}"] = rel_err(mine, other.grad.numpy(), same_dtype=True)
    for name, parameter in twin.named_parameters():
        errors[name] = rel_err(cell.grads[name], parameter.grad.numpy(), same_dtype=True)
    assert set(cell.grads) == {name for name, _ in twin.named_parameters()}
    return errors


@settings(max_examples=40, deadline=None)
@given(kind=st.sampled_from(list(CELLS)), N=st.one_of(st.none(), st.integers(1, 5)), I=st.integers(1, 6),
       H=st.integers(1, 6), bias=st.booleans(), seed=st.integers(0, 10**6))
def test_float64_equals_torch_to_round_off(kind, N, I, H, bias, seed):
    errors = compare(kind, N, I, H, bias, seed)
    assert max(errors.values()) <= 1e-10, errors


@pytest.mark.parametrize("kind", CELLS)
def test_float32_equals_torch_to_float32_round_off(kind):
    errors = compare(kind, 4, 5, 7, True, seed=3, dtype=np.float32)
    assert max(errors.values()) <= 1e-5, errors


@pytest.mark.parametrize("kind", CELLS)
def test_a_cell_converts_both_ways_and_saves(kind, tmp_path):
    cell = CELLS[kind](3, 4, True, np.float64, 0)
    back = from_torch(to_torch(cell))
    assert type(back) is type(cell) and back.config() == cell.config()
    loaded = load(save(cell, tmp_path / "cell.safetensors"))
    assert loaded.config() == cell.config()
    for name, value in cell.params.items():
        np.testing.assert_array_equal(back.params[name], value)
        np.testing.assert_array_equal(loaded.params[name], value)
