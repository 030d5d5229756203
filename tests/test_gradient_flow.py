"""bptt.check.gradient_flow (bptt.check.flow): the norms read from the backward pass against central differences
of the loss (every family, two layers, a loss at the last step and at an inner one), the decay it fits, and bad
input."""

from __future__ import annotations

import numpy as np
import pytest

from bptt import GRU, LSTM, RNN
from bptt.check import gradient_flow
from bptt.check.flow import fitted_decay
from bptt.layers.models import LanguageModel, SequenceClassifier

FAMILIES = {"lstm": LSTM, "gru": GRU, "rnn": RNN}
T, N, I, H = 6, 2, 3, 4


def single_layers(stack):
    """The layers of ``stack`` as one-layer modules with its weights (the numerical side's own forward passes)."""
    layers = []
    for k in range(stack.num_layers):
        layer = type(stack)(I if k == 0 else H, H, rng=0)
        layer.load_state_dict({name: stack.params[name.replace("_l0", f"_l{k}")] for name in layer.params})
        layers.append(layer)
    return layers


def loss_with_state(layers, x, u, t_star, k, t, h_new):
    """L = u . top[t*] with layer k's hidden state after step t replaced by ``h_new`` (None: as computed), in the
    recurrence and in the layer above alike; forward passes only."""
    seq = x
    for j, layer in enumerate(layers):
        if j != k:
            seq, _ = layer(seq)
            continue
        head, finals = layer(seq[:t + 1])
        head = head.copy()                               # writable, whatever the layer returns
        finals = finals if isinstance(finals, tuple) else (finals,)
        h = finals[0][0] if h_new is None else h_new
        carried = (h[None], *(s for s in finals[1:]))
        head[t] = h
        tail, _ = layer(seq[t + 1:], carried if len(carried) > 1 else carried[0]) if t + 1 < len(seq) else (
            head[:0], None)
        seq = np.concatenate([head, tail])
    return float(np.sum(u * seq[t_star]))


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("loss_step", [-1, 3])
def test_the_norms_are_those_of_central_differences(family, loss_step):
    rng = np.random.default_rng(1)
    stack = FAMILIES[family](I, H, num_layers=2, rng=rng)
    x = rng.standard_normal((T, N, I))
    flow = gradient_flow(stack, x, loss_step=loss_step, seed=5)
    t_star = loss_step % T
    direction = np.random.default_rng(5).standard_normal((N, H))
    u = direction / np.linalg.norm(direction)
    layers, eps = single_layers(stack), 1e-6
    assert np.isclose(loss_with_state(layers, x, u, t_star, 0, 0, None), np.sum(u * stack(x)[0][t_star]),
                      rtol=1e-12)
    for t in range(T):                                   # dL/dx_t at the model's input
        grad = np.zeros((N, I))
        for index in np.ndindex(N, I):
            shifted = [x.copy(), x.copy()]
            shifted[0][(t, *index)] += eps
            shifted[1][(t, *index)] -= eps
            grad[index] = (np.sum(u * stack(shifted[0])[0][t_star]) - np.sum(u * stack(shifted[1])[0][t_star])) / (
                2 * eps)
        assert flow.input_norms[0, t] == pytest.approx(np.linalg.norm(grad), rel=1e-6, abs=1e-9)
    for k in range(2):                                   # dL/dh_t of each layer, every path
        for t in range(T):
            h = state_after(layers, x, k, t)
            grad = np.zeros((N, H))
            for index in np.ndindex(N, H):
                up, down = h.copy(), h.copy()
                up[index] += eps
                down[index] -= eps
                grad[index] = (loss_with_state(layers, x, u, t_star, k, t, up)
                               - loss_with_state(layers, x, u, t_star, k, t, down)) / (2 * eps)
            assert flow.state_norms[k, t] == pytest.approx(np.linalg.norm(grad), rel=1e-6, abs=1e-9)
    assert (flow.state_norms[:, t_star + 1:] == 0).all() and (flow.distance == t_star - np.arange(T)).all()


def state_after(layers, x, k, t):
    """Layer k's hidden state after step t, ``(N, H)``."""
    seq = x
    for layer in layers[:k]:
        seq, _ = layer(seq)
    _, finals = layers[k](seq[:t + 1])
    return (finals if not isinstance(finals, tuple) else finals[0])[0].copy()


def test_a_bidirectional_layer_is_its_two_directions_each_read_its_own_way():
    rng = np.random.default_rng(3)
    both = GRU(I, H, bidirectional=True, rng=rng)
    x = rng.standard_normal((T, N, I))
    flow = gradient_flow(both, x, seed=2)
    assert flow.labels == ("forward", "reverse")
    for row, (suffix, seq) in enumerate((("", x), ("_reverse", x[::-1]))):
        one = GRU(I, H, rng=0)
        one.load_state_dict({name: both.params[name + suffix] for name in one.params})
        alone = gradient_flow(one, seq, seed=2)
        np.testing.assert_allclose(flow.state_norms[row], alone.state_norms[0], rtol=1e-12)
        np.testing.assert_allclose(flow.input_norms[row], alone.input_norms[0], rtol=1e-12)


def test_the_decay_is_the_geometric_rate_per_step_back():
    distance = np.arange(10, -3, -1)
    norms = np.where(distance >= 0, 3.0 * 0.5 ** distance.clip(0), 0.0)
    assert fitted_decay(norms, distance) == pytest.approx(0.5, rel=1e-12)
    assert np.isnan(fitted_decay(np.array([1.0, 0.0]), np.array([1, 0])))


def test_a_plain_rnn_forgets_faster_than_an_lstm_at_initialisation():
    x = np.random.default_rng(0).standard_normal((60, 8, 1))
    rates = {name: gradient_flow(cls(1, 32, rng=0), x).decay_per_step[0] for name, cls in FAMILIES.items()}
    assert rates["rnn"] < rates["lstm"] < 1 and rates["rnn"] < rates["gru"] < 1


def test_composite_models_and_bad_input():
    model = LanguageModel(7, 3, 5, num_layers=2, rng=0)
    flow = gradient_flow(model, np.random.default_rng(0).integers(0, 7, (8, 2)))
    assert flow.input_norms.shape == flow.state_norms.shape == (2, 8)
    with pytest.raises(ValueError, match="expected a one-direction stack or a bidirectional one of one layer, got a "
                                         "bidirectional LSTM of 2 layers"):
        gradient_flow(SequenceClassifier(2, 3, 2, num_layers=2, bidirectional=True, rng=0), np.zeros((4, 1, 2)))
    with pytest.raises(TypeError, match="expected an LSTM, GRU or RNN, or a model with one as its rnn, got str."):
        gradient_flow("lstm", np.zeros((4, 1, 2)))
    with pytest.raises(ValueError, match=r"expected x of shape \(T, N, 2\), time-major, T and N >= 1, got \(4, 3\)."):
        gradient_flow(LSTM(2, 3, rng=0), np.zeros((4, 3)))
    with pytest.raises(ValueError, match="expected loss_step to be a step of the sequence, in -4..3, got 4."):
        gradient_flow(LSTM(2, 3, rng=0), np.zeros((4, 1, 2)), loss_step=4)
