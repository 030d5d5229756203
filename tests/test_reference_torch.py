"""The textbook reference (bptt.reference) against torch.nn.LSTM, GRU and RNN, one layer: outputs, final states
and every gradient, on random shapes, with and without biases, in float64 (to round-off) and float32."""

from __future__ import annotations

import numpy as np
import pytest
from errors import rel_err
from hypothesis import given, settings
from hypothesis import strategies as st

from bptt.reference import gru_backward, gru_forward, lstm_backward, lstm_forward, rnn_backward, rnn_forward

torch = pytest.importorskip("torch")

GATES = {"lstm": 4, "gru": 3, "tanh": 1, "relu": 1}
FLOAT64_TOLERANCE = 1e-10
FLOAT32_TOLERANCE = 1e-5


def compare(kind: str, T: int, N: int, I: int, H: int, P: int, bias: bool, seed: int,
            dtype: type = np.float64) -> dict[str, float]:
    """Run the reference and torch on the same random weights, inputs and upstream gradients (scaled
    normals, never all ones); the relative error of every output and gradient, keyed by name."""
    rng = np.random.default_rng(seed)
    G, S = GATES[kind], P or H
    scale = rng.uniform(0.2, 1.5)                        # from nearly linear gates to saturated ones

    def normal(*shape: int) -> np.ndarray:
        return (scale * rng.standard_normal(shape)).astype(dtype)

    params = {"weight_ih": normal(G * H, I), "weight_hh": normal(G * H, S)}
    if bias:
        params.update(bias_ih=normal(G * H), bias_hh=normal(G * H))
    if P:
        params["weight_hr"] = normal(P, H)
    x, h0, c0 = normal(T, N, I), normal(N, S), normal(N, H)
    dout, dh_n, dc_n = normal(T, N, S), normal(N, S), normal(N, H)

    if kind == "lstm":
        module = torch.nn.LSTM(I, H, bias=bias, proj_size=P)
        out, (h_n, c_n), cache = lstm_forward(params, x, h0, c0)
        dx, (dh0, dc0), grads = lstm_backward(params, cache, dout, dh_n, dc_n)
        ours = {"out": out, "h_n": h_n, "c_n": c_n, "dx": dx, "dh0": dh0, "dc0": dc0}
    else:
        module = torch.nn.GRU(I, H, bias=bias) if kind == "gru" else torch.nn.RNN(I, H, nonlinearity=kind, bias=bias)
        if kind == "gru":
            out, h_n, cache = gru_forward(params, x, h0)
            dx, dh0, grads = gru_backward(params, cache, dout, dh_n)
        else:
            out, h_n, cache = rnn_forward(params, x, h0, nonlinearity=kind)
            dx, dh0, grads = rnn_backward(params, cache, dout, dh_n)
        ours = {"out": out, "h_n": h_n, "dx": dx, "dh0": dh0}
    ours.update({f"d{name}": grad for name, grad in grads.items()})
    assert set(grads) == set(params)

    module = module.double() if dtype == np.float64 else module.float()
    # strict: our parameter names are exactly torch's single-layer names, less the _l0 suffix
    module.load_state_dict({f"{name}_l0": torch.from_numpy(value) for name, value in params.items()})
    tx, th0, tc0 = (torch.from_numpy(a).requires_grad_() for a in (x, h0[None], c0[None]))
    if kind == "lstm":
        t_out, (t_h_n, t_c_n) = module(tx, (th0, tc0))
        t_loss = (t_c_n[0] * torch.from_numpy(dc_n)).sum()
    else:
        t_out, t_h_n = module(tx, th0)
        t_loss = 0
    t_loss = t_loss + (t_out * torch.from_numpy(dout)).sum() + (t_h_n[0] * torch.from_numpy(dh_n)).sum()
    t_loss.backward()
    theirs = {"out": t_out, "h_n": t_h_n[0], "dx": tx.grad, "dh0": th0.grad[0]}
    if kind == "lstm":
        theirs.update(c_n=t_c_n[0], dc0=tc0.grad[0])
    theirs.update({f"d{name}": getattr(module, f"{name}_l0").grad for name in params})
    assert set(ours) == set(theirs)
    upstream = max(np.max(np.abs(a)) for a in (dout, dh_n, dc_n))
    return {name: rel_err(ours[name], theirs[name].detach().numpy(), upstream, same_dtype=True) for name in theirs}


def assert_within(errors: dict[str, float], tolerance: float) -> None:
    failed = {name: error for name, error in errors.items() if not error <= tolerance}
    assert not failed, f"relative error above {tolerance:g}: {failed}"


shapes = {"T": st.integers(1, 6), "N": st.integers(1, 4), "I": st.integers(1, 5), "H": st.integers(1, 6),
          "bias": st.booleans(), "seed": st.integers(0, 2**32 - 1)}


@pytest.mark.parametrize("kind", GATES)
@settings(max_examples=30, deadline=None)
@given(**shapes)
def test_float64_matches_torch_to_round_off(kind, T, N, I, H, bias, seed):
    assert_within(compare(kind, T, N, I, H, 0, bias, seed), FLOAT64_TOLERANCE)


@settings(max_examples=30, deadline=None)
@given(data=st.data(), **{**shapes, "H": st.integers(2, 6)})
def test_float64_lstm_with_projection_matches_torch_to_round_off(data, T, N, I, H, bias, seed):
    P = data.draw(st.integers(1, H - 1), label="P")
    assert_within(compare("lstm", T, N, I, H, P, bias, seed), FLOAT64_TOLERANCE)


# torch's float32 LSTM says it leaves oneDNN for its own implementation when there is a projection
@pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN:UserWarning")
@pytest.mark.parametrize(("kind", "P"), [("lstm", 0), ("lstm", 2), ("gru", 0), ("tanh", 0), ("relu", 0)],
                         ids=["lstm", "lstm-proj", "gru", "tanh", "relu"])
@pytest.mark.parametrize("seed", range(3))
def test_float32_matches_torch_float32(kind, P, seed):
    assert_within(compare(kind, 6, 3, 4, 5, P, True, seed, dtype=np.float32), FLOAT32_TOLERANCE)


def test_the_comparison_catches_a_wrong_gradient(monkeypatch):
    """The parity check can fail: the GRU with the update gate's role swapped in (G5)'s backward differs."""
    import bptt.reference.gru as reference_gru

    step_backward = reference_gru.gru_step_backward

    def swapped(params, dh, x_t, h_prev, gates, hidden_n):
        r, z, n = np.split(gates, 3, axis=1)
        return step_backward(params, dh, x_t, h_prev, np.concatenate([r, 1 - z, n], axis=1), hidden_n)

    monkeypatch.setattr(reference_gru, "gru_step_backward", swapped)
    errors = compare("gru", 3, 2, 3, 4, 0, True, seed=0)
    assert errors["out"] <= FLOAT64_TOLERANCE
    assert errors["dweight_hh"] > 1e-3 and errors["dx"] > 1e-3
