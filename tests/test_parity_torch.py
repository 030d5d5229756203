"""Parity with PyTorch, the oracle: ``LSTM``, ``Linear`` and ``mse_loss`` against ``torch.nn``.

float64 on both sides, random shapes drawn by hypothesis, random weights, states and upstream gradients
(never all-ones, so that a transposed or summed gradient cannot hide). Every comparison is the error
relative to the reference's scale, ``max|a - b| / max(max|b|, tiny)``.
"""

from __future__ import annotations

import numpy as np
import pytest
from errors import rel_err
from hypothesis import given, settings
from hypothesis import strategies as st
from lstm_cases import lstm_cases, user_shapes

from bptt import LSTM, Linear, mse_loss

torch = pytest.importorskip("torch")

TOL64 = 1e-10
TOL32 = 1e-5
TORCH_DTYPE = {np.dtype(np.float64): torch.float64, np.dtype(np.float32): torch.float32}


def assert_close(name: str, actual: object, expected: object, tol: float = TOL64) -> None:
    err = rel_err(actual, expected)
    assert err <= tol, f"{name}: relative error {err:.3e} > {tol:.0e}"


def to_numpy(tensor) -> np.ndarray:
    return tensor.detach().numpy()


# ---------------------------------------------------------------------------------------------------------
# LSTM: one random case, run through bptt and torch
# ---------------------------------------------------------------------------------------------------------

def param_shapes(I: int, H: int, L: int, bias: bool) -> dict[str, tuple[int, ...]]:
    """PyTorch's parameter names and shapes, in its state-dict order."""
    shapes: dict[str, tuple[int, ...]] = {}
    for k in range(L):
        shapes[f"weight_ih_l{k}"] = (4 * H, I if k == 0 else H)
        shapes[f"weight_hh_l{k}"] = (4 * H, H)
        if bias:
            shapes[f"bias_ih_l{k}"] = (4 * H,)
            shapes[f"bias_hh_l{k}"] = (4 * H,)
    return shapes


def make_arrays(case: dict, dtype: np.dtype) -> dict:
    """Random weights, inputs, states and upstream gradients in the user-facing layout of ``case``."""
    rng = np.random.default_rng(case["seed"])
    I, H, L = case["I"], case["H"], case["L"]
    x_shape, state_shape, out_shape = user_shapes(case)

    def draw(shape):
        return rng.standard_normal(shape).astype(dtype)

    weights = {name: rng.uniform(-0.8, 0.8, shape).astype(dtype)
               for name, shape in param_shapes(I, H, L, case["bias"]).items()}
    return {"weights": weights, "x": draw(x_shape), "h0": draw(state_shape), "c0": draw(state_shape),
            "dout": draw(out_shape), "dh_n": draw(state_shape), "dc_n": draw(state_shape)}


def run_bptt(case: dict, arrays: dict, dtype: np.dtype) -> dict:
    lstm = LSTM(case["I"], case["H"], case["L"], bias=case["bias"], batch_first=case["batch_first"],
                dtype=dtype, rng=0)
    lstm.load_state_dict(arrays["weights"])
    hx = (arrays["h0"], arrays["c0"]) if case["with_hx"] else None
    dhx = (arrays["dh_n"], arrays["dc_n"]) if case["with_dhx"] else None
    out, (h_n, c_n) = lstm.forward(arrays["x"], hx)
    dx, (dh0, dc0) = lstm.backward(arrays["dout"], dhx)
    result = {"out": out, "h_n": h_n, "c_n": c_n, "dx": dx, "dh0": dh0, "dc0": dc0}
    result.update({f"grad {name}": grad for name, grad in lstm.grads.items()})
    return result


def run_torch(case: dict, arrays: dict, dtype: np.dtype) -> dict:
    """The same case through ``torch.nn.LSTM``; omitted states are zeros, which is what torch assumes."""
    lstm = torch.nn.LSTM(case["I"], case["H"], num_layers=case["L"], bias=case["bias"],
                         batch_first=case["batch_first"], dtype=TORCH_DTYPE[dtype])
    lstm.load_state_dict({k: torch.from_numpy(v) for k, v in arrays["weights"].items()})

    def leaf(a):
        return torch.from_numpy(a.copy()).requires_grad_(True)

    zeros = np.zeros_like(arrays["h0"])
    x = leaf(arrays["x"])
    h0 = leaf(arrays["h0"] if case["with_hx"] else zeros)
    c0 = leaf(arrays["c0"] if case["with_hx"] else zeros)
    out, (h_n, c_n) = lstm(x, (h0, c0))
    dh_n = arrays["dh_n"] if case["with_dhx"] else zeros
    dc_n = arrays["dc_n"] if case["with_dhx"] else zeros
    upstream = [torch.from_numpy(arrays["dout"]), torch.from_numpy(dh_n), torch.from_numpy(dc_n)]
    torch.autograd.backward([out, h_n, c_n], upstream)
    result = {"out": out, "h_n": h_n, "c_n": c_n, "dx": x.grad, "dh0": h0.grad, "dc0": c0.grad}
    result.update({f"grad {name}": p.grad for name, p in lstm.named_parameters()})
    return {name: to_numpy(value) for name, value in result.items()}


def assert_lstm_parity(case: dict, dtype: np.dtype, tol: float) -> None:
    arrays = make_arrays(case, dtype)
    ours = run_bptt(case, arrays, dtype)
    theirs = run_torch(case, arrays, dtype)
    assert set(ours) == set(theirs)
    for name, expected in theirs.items():
        assert ours[name].dtype == dtype, f"{name}: dtype {ours[name].dtype}, expected {dtype}"
        assert_close(f"{name} ({case})", ours[name], expected, tol)


@settings(max_examples=60, deadline=None)
@given(case=lstm_cases())
def test_lstm_matches_torch_float64(case):
    assert_lstm_parity(case, np.dtype(np.float64), TOL64)


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_lstm_matches_torch_float32(batch_first, num_layers):
    case = {"T": 7, "N": 3, "I": 5, "H": 6, "L": num_layers, "bias": True, "batch_first": batch_first,
            "unbatched": False, "with_hx": True, "with_dhx": True, "seed": 11 + num_layers}
    assert_lstm_parity(case, np.dtype(np.float32), TOL32)


def test_lstm_loads_torch_state_dict():
    """A torch model's own state dict (float32, as torch creates it) loads and then gives torch's numbers."""
    torch.manual_seed(0)
    reference = torch.nn.LSTM(4, 5, num_layers=2, batch_first=True)
    lstm = LSTM(4, 5, num_layers=2, batch_first=True, rng=1)
    state = {k: v.numpy() for k, v in reference.state_dict().items()}
    assert list(lstm.params) == list(state), "parameter names or their order differ from torch's"
    assert not all(np.array_equal(lstm.params[k], v) for k, v in state.items())
    lstm.load_state_dict(state)
    for name, value in state.items():
        np.testing.assert_array_equal(lstm.params[name], value.astype(np.float64))

    reference = reference.double()
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 6, 4))
    h0, c0 = rng.standard_normal((2, 2, 3, 5))
    out, (h_n, c_n) = lstm.forward(x, (h0, c0))
    with torch.no_grad():
        out_t, (h_t, c_t) = reference(torch.from_numpy(x), (torch.from_numpy(h0), torch.from_numpy(c0)))
    assert_close("out", out, to_numpy(out_t))
    assert_close("h_n", h_n, to_numpy(h_t))
    assert_close("c_n", c_n, to_numpy(c_t))

    # and back: bptt's state dict loads into a fresh torch model that then agrees too
    fresh = torch.nn.LSTM(4, 5, num_layers=2, batch_first=True, dtype=torch.float64)
    fresh.load_state_dict({k: torch.from_numpy(v) for k, v in lstm.state_dict().items()})
    with torch.no_grad():
        out_fresh, _ = fresh(torch.from_numpy(x), (torch.from_numpy(h0), torch.from_numpy(c0)))
    assert_close("out after the round trip", out, to_numpy(out_fresh))


# ---------------------------------------------------------------------------------------------------------
# Gradient accumulation: backward adds into grads, as torch adds into .grad; zero_grad resets in place
# ---------------------------------------------------------------------------------------------------------

def test_lstm_gradients_accumulate_and_zero_grad_resets():
    rng = np.random.default_rng(5)
    lstm = LSTM(3, 4, num_layers=2, rng=2)
    x = rng.standard_normal((6, 2, 3))
    out, (h_n, c_n) = lstm.forward(x)
    dout = rng.standard_normal(out.shape)
    dhx = (rng.standard_normal(h_n.shape), rng.standard_normal(c_n.shape))
    grad_arrays = dict(lstm.grads)

    lstm.backward(dout, dhx)
    once = {k: v.copy() for k, v in lstm.grads.items()}
    assert all(np.any(v != 0) for v in once.values())
    lstm.backward(dout, dhx)
    for name, value in lstm.grads.items():
        np.testing.assert_array_equal(value, 2 * once[name], err_msg=name)

    lstm.zero_grad()
    for name, value in lstm.grads.items():
        assert value is grad_arrays[name], f"zero_grad replaced {name} instead of resetting it in place"
        assert not np.any(value), name
    lstm.backward(dout, dhx)
    for name, value in lstm.grads.items():
        np.testing.assert_array_equal(value, once[name], err_msg=name)


def test_lstm_accumulates_two_passes_like_torch():
    """Two different forward/backward passes sum their gradients, exactly as torch's ``.grad`` does."""
    rng = np.random.default_rng(8)
    lstm = LSTM(3, 4, num_layers=2, rng=4)
    reference = torch.nn.LSTM(3, 4, num_layers=2, dtype=torch.float64)
    reference.load_state_dict({k: torch.from_numpy(v) for k, v in lstm.state_dict().items()})
    for T in (5, 2):
        x = rng.standard_normal((T, 3, 3))
        dout = rng.standard_normal((T, 3, 4))
        lstm.forward(x)
        lstm.backward(dout)
        out_t, _ = reference(torch.from_numpy(x))
        out_t.backward(torch.from_numpy(dout))
    for name, p in reference.named_parameters():
        assert_close(name, lstm.grads[name], to_numpy(p.grad))


def test_linear_gradients_accumulate_and_zero_grad_resets():
    rng = np.random.default_rng(6)
    layer = Linear(4, 3, rng=0)
    y = layer.forward(rng.standard_normal((5, 4)))
    dy = rng.standard_normal(y.shape)
    layer.backward(dy)
    once = {k: v.copy() for k, v in layer.grads.items()}
    assert all(np.any(v != 0) for v in once.values())
    layer.backward(dy)
    for name, value in layer.grads.items():
        np.testing.assert_array_equal(value, 2 * once[name], err_msg=name)
    layer.zero_grad()
    assert not any(np.any(v) for v in layer.grads.values())


# ---------------------------------------------------------------------------------------------------------
# Linear and mse_loss
# ---------------------------------------------------------------------------------------------------------

@settings(max_examples=40, deadline=None)
@given(lead=st.lists(st.integers(1, 4), max_size=3), in_features=st.integers(1, 6),
       out_features=st.integers(1, 6), bias=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_linear_matches_torch(lead, in_features, out_features, bias, seed):
    rng = np.random.default_rng(seed)
    layer = Linear(in_features, out_features, bias=bias, rng=rng)
    reference = torch.nn.Linear(in_features, out_features, bias=bias, dtype=torch.float64)
    reference.load_state_dict({k: torch.from_numpy(v) for k, v in layer.state_dict().items()})
    x = rng.standard_normal((*lead, in_features))
    dy = rng.standard_normal((*lead, out_features))

    y = layer.forward(x)
    dx = layer.backward(dy)
    x_t = torch.from_numpy(x.copy()).requires_grad_(True)
    y_t = reference(x_t)
    y_t.backward(torch.from_numpy(dy))

    assert_close("y", y, to_numpy(y_t))
    assert_close("dx", dx, to_numpy(x_t.grad))
    assert set(layer.grads) == {name for name, _ in reference.named_parameters()}
    for name, p in reference.named_parameters():
        assert_close(f"grad {name}", layer.grads[name], to_numpy(p.grad))


@settings(max_examples=30, deadline=None)
@given(shape=st.lists(st.integers(1, 5), max_size=3), seed=st.integers(0, 2**32 - 1))
def test_mse_loss_matches_torch(shape, seed):
    rng = np.random.default_rng(seed)
    pred = rng.standard_normal(shape)
    target = rng.standard_normal(shape)
    loss, dpred = mse_loss(pred, target)

    pred_t = torch.from_numpy(pred.copy()).requires_grad_(True)
    loss_t = torch.nn.functional.mse_loss(pred_t, torch.from_numpy(target))
    loss_t.backward()
    assert isinstance(loss, float)
    assert_close("loss", loss, loss_t.item())
    assert_close("dpred", dpred, to_numpy(pred_t.grad))
