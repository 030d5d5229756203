"""The recurrent cells (bptt.layers.cells) without torch: one step of the cell is one step of the stack's
layer with the same weights, the two interfaces agree, unbatched input works, and bad input is named. Parity
with torch is in test_cells_torch.py."""

from __future__ import annotations

import numpy as np
import pytest

from bptt import GRU, LSTM, RNN
from bptt.layers.cells import GRUCell, LSTMCell, RNNCell


@pytest.mark.parametrize(("cell_class", "layer_class"), [(LSTMCell, LSTM), (GRUCell, GRU), (RNNCell, RNN)])
def test_a_step_of_the_cell_is_a_step_of_the_layer(cell_class, layer_class):
    rng = np.random.default_rng(0)
    cell, layer = cell_class(3, 4, rng=1), layer_class(3, 4, rng=2)
    layer.load_state_dict({f"{name}_l0": value for name, value in cell.params.items()})
    x = rng.standard_normal((2, 3))
    states = tuple(rng.standard_normal((2, 4)) for _ in layer.family.state_names)
    out = cell(x, states if len(states) > 1 else states[0])
    _, finals = layer(x[None], tuple(s[None] for s in states) if len(states) > 1 else states[0][None])
    for mine, theirs in zip(out if len(states) > 1 else (out,), finals if len(states) > 1 else (finals,),
                            strict=True):
        np.testing.assert_allclose(mine, theirs[0], rtol=1e-14, atol=1e-15)


def test_the_two_interfaces_agree_and_unbatched_is_one_row():
    rng = np.random.default_rng(1)
    cell = LSTMCell(3, 4, rng=0)
    x, h, c, dh, dc = (rng.standard_normal(shape) for shape in ((3,), (4,), (4,), (4,), (4,)))
    h1, c1 = cell(x, (h, c))
    dx, (dh0, dc0) = cell.backward(dh, dc)
    grads = {name: grad.copy() for name, grad in cell.grads.items()}
    cell.zero_grad()
    states, cache = cell.step(x[None], (h[None], c[None]))
    dx_step, (dh_step, dc_step) = cell.step_backward(cache, (dh[None], dc[None]))
    assert h1.shape == (4,) and dx.shape == (3,)
    np.testing.assert_array_equal(states[0][0], h1)
    np.testing.assert_array_equal(states[1][0], c1)
    for mine, theirs in ((dx, dx_step[0]), (dh0, dh_step[0]), (dc0, dc_step[0])):
        np.testing.assert_array_equal(mine, theirs)
    for name, grad in grads.items():
        np.testing.assert_array_equal(cell.grads[name], grad)


@pytest.mark.parametrize(("call", "error", "message"), [
    (lambda c: c.forward(np.zeros((2, 5))), ValueError, r"LSTMCell.forward: expected x of shape \(\*, 3\)|x"),
    (lambda c: c.forward(np.zeros((1, 2, 3))), ValueError, r"expected x of shape \(N, 3\) or unbatched \(3,\)"),
    (lambda c: c.forward(np.zeros((2, 3)), np.zeros((2, 4))), TypeError, r"expected hx as a pair \(h, c\)"),
    (lambda c: c.forward(np.zeros((2, 3)), (np.zeros((2, 4)), np.zeros((3, 4)))), ValueError, r"c"),
    (lambda c: c.backward(np.zeros((2, 4))), ValueError, r"LSTMCell.backward: expected a forward call first"),
])
def test_bad_input_to_an_lstm_cell_is_named(call, error, message):
    with pytest.raises(error, match=message):
        call(LSTMCell(3, 4, rng=0))


def test_bad_input_to_a_gru_cell_is_named():
    cell = GRUCell(3, 4, rng=0)
    with pytest.raises(TypeError, match=r"GRUCell.forward: expected hx as one array h, got a tuple"):
        cell(np.zeros((2, 3)), (np.zeros((2, 4)),))
    cell(np.zeros((2, 3)))
    with pytest.raises(TypeError, match=r"GRUCell.backward: expected dh alone"):
        cell.backward(np.zeros((2, 4)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"RNNCell: expected nonlinearity to be one of tanh, relu, got 'sigmoid'"):
        RNNCell(3, 4, nonlinearity="sigmoid")
