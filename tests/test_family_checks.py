"""``bptt.check_layer`` over every family and option, and the bad-input paths the families and the shared
stack add (dropout, proj_size, nonlinearity, lengths, single-state hx, bidirectional dout).

Patterns match the content of each message (what was expected, what came), not its exact wording around it.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from bptt import GRU, LSTM, RNN, check_layer

FAMILIES = {"LSTM": LSTM, "GRU": GRU, "RNN": RNN}
I, H, L, T, N = 3, 4, 2, 5, 2


def esc(text: str) -> str:
    return re.escape(text)


def randn(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed + sum(shape)).standard_normal(shape)


# ---------------------------------------------------------------------------------------------------------
# check_layer: every family, every option, float64
# ---------------------------------------------------------------------------------------------------------

VARIANTS = {
    "default": {},
    "bidirectional": {"bidirectional": True},
    "two-layers": {"num_layers": 2},
    "two-layers-bidirectional": {"num_layers": 2, "bidirectional": True},
    "no-bias": {"bias": False, "num_layers": 2},
    "batch-first": {"batch_first": True, "bidirectional": True},
    "dropout-train": {"num_layers": 3, "dropout": 0.4},
}
FAMILY_VARIANTS = {"LSTM": {"proj": {"proj_size": 2, "num_layers": 2, "bidirectional": True}},
                   "GRU": {},
                   "RNN": {"relu": {"nonlinearity": "relu", "num_layers": 2, "bidirectional": True},
                           "relu-single": {"nonlinearity": "relu"}}}
CASES = [(family, name, options) for family in FAMILIES
         for name, options in {**VARIANTS, **FAMILY_VARIANTS[family]}.items()]


def sequence(layer, steps: int = 4, batch: int = 3, seed: int = 0) -> np.ndarray:
    shape = (batch, steps, layer.input_size) if layer.batch_first else (steps, batch, layer.input_size)
    return np.random.default_rng(seed).standard_normal(shape)


def states(layer, batch: int | None = 3, seed: int = 1):
    """Random initial states for ``layer``: a pair for an LSTM; ``batch=None`` for unbatched."""
    rng = np.random.default_rng(seed)
    lead = (layer.num_layers * layer.num_directions,) + (() if batch is None else (batch,))
    h = rng.standard_normal((*lead, layer.output_size))
    return (h, rng.standard_normal((*lead, layer.hidden_size))) if isinstance(layer, LSTM) else h


@pytest.mark.parametrize(("family", "options"), [(f, o) for f, _, o in CASES], ids=[f"{f}-{n}" for f, n, _ in CASES])
def test_check_layer_passes(family, options):
    layer = FAMILIES[family](2, 3, rng=5, **options)
    report = check_layer(layer, sequence(layer), states(layer), seed=3)
    assert report.ok, str(report)
    assert set(report.codes) <= {"kink"}, str(report)
    names = [row.name for row in report.rows]
    assert set(layer.params) < set(names) and "x" in names and "h0" in names
    assert all(not grad.any() for grad in layer.grads.values()), "check_layer touched the layer's own grads"


@pytest.mark.parametrize("family", FAMILIES)
def test_check_layer_passes_with_lengths(family):
    layer = FAMILIES[family](2, 3, num_layers=2, bidirectional=True, rng=6)
    report = check_layer(layer, sequence(layer, steps=5), states(layer), lengths=[5, 2, 3], seed=4)
    assert report.ok, str(report)


@pytest.mark.parametrize("family", FAMILIES)
def test_check_layer_passes_unbatched(family):
    layer = FAMILIES[family](2, 3, num_layers=2, rng=7)
    report = check_layer(layer, np.random.default_rng(2).standard_normal((4, 2)), states(layer, None), seed=5)
    assert report.ok, str(report)


@pytest.mark.parametrize("family", FAMILIES)
def test_float32_layer_is_checked_through_its_float64_copy(family):
    layer = FAMILIES[family](2, 3, num_layers=2, bidirectional=True, dtype=np.float32, rng=8)
    x = sequence(layer).astype(np.float32)
    report = check_layer(layer, x, seed=6)
    assert report.ok, str(report)
    assert "float64-copy" in report.codes and "low-precision" not in report.codes
    assert all(grad.dtype == np.float32 and not grad.any() for grad in layer.grads.values())


@pytest.mark.parametrize("family", FAMILIES)
def test_check_layer_catches_a_wrong_gradient(family):
    """Negative control: a spurious term in one reverse-direction gradient is found and named."""

    class Broken(FAMILIES[family]):
        def backward(self, dout, dhx=None):
            result = super().backward(dout, dhx)
            self.grads["weight_ih_l0_reverse"] += 1e-3 * np.sign(self.params["weight_ih_l0_reverse"])
            return result

    layer = Broken(2, 3, bidirectional=True, rng=9)
    report = check_layer(layer, sequence(layer), mode="fast", seed=7)
    assert report.failed == ["weight_ih_l0_reverse"]


# ---------------------------------------------------------------------------------------------------------
# Constructor arguments
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dropout", [-0.1, 1.0, 1.5, float("nan"), True, "0.5"])
@pytest.mark.parametrize("family", FAMILIES)
def test_dropout_outside_unit_interval(family, dropout):
    with pytest.raises(ValueError, match=rf"^{family}: expected dropout in \[0, 1\), got " + esc(repr(dropout))):
        FAMILIES[family](I, H, num_layers=L, dropout=dropout)


@pytest.mark.parametrize("family", FAMILIES)
def test_dropout_edges_accepted(family):
    assert FAMILIES[family](I, H, dropout=0).dropout == 0.0
    assert FAMILIES[family](I, H, dropout=0.999).dropout == 0.999


@pytest.mark.parametrize("proj_size", [H, H + 1])
def test_proj_size_not_below_hidden_size(proj_size):
    with pytest.raises(ValueError, match=esc(f"LSTM: expected proj_size < hidden_size ({H}), got {proj_size}.")):
        LSTM(I, H, proj_size=proj_size)


@pytest.mark.parametrize(("proj_size", "shown"), [(-1, "-1"), (1.5, "1.5"), (True, "True")])
def test_proj_size_not_a_non_negative_int(proj_size, shown):
    with pytest.raises(ValueError, match=esc(f"LSTM: expected proj_size to be an int >= 0, got {shown}.")):
        LSTM(I, H, proj_size=proj_size)


@pytest.mark.parametrize("nonlinearity", ["sigmoid", "Tanh", "", None])
def test_rnn_nonlinearity_not_tanh_or_relu(nonlinearity):
    with pytest.raises(ValueError, match=r"^RNN: expected nonlinearity 'tanh' or 'relu', got "
                                         + esc(repr(nonlinearity))):
        RNN(I, H, nonlinearity=nonlinearity)


# ---------------------------------------------------------------------------------------------------------
# lengths
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize(("lengths", "got"), [([T] * (N + 1), "(3,)"), ([[T] * N], "(1, 2)"), (T, "()")])
def test_lengths_wrong_shape(family, lengths, got):
    with pytest.raises(ValueError, match=esc(f"{family}.forward: expected lengths of shape ({N},), got {got}.")):
        FAMILIES[family](I, H).forward(randn(T, N, I), lengths=np.array(lengths))


@pytest.mark.parametrize("family", FAMILIES)
def test_lengths_wrong_shape_batch_first(family):
    with pytest.raises(ValueError, match=esc(f"expected lengths of shape ({N},), got ({T},).")):
        FAMILIES[family](I, H, batch_first=True).forward(randn(N, T, I), lengths=[1] * T)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize(("lengths", "dtype"), [
    (np.array([T, 2.0]), "float64"), (np.array([True, True]), "bool"), (["5", "2"], "<U1"),
])
def test_lengths_not_integers(family, lengths, dtype):
    with pytest.raises(TypeError, match=esc(f"{family}.forward: expected lengths to be integers, got dtype {dtype}.")):
        FAMILIES[family](I, H).forward(randn(T, N, I), lengths=lengths)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize(("lengths", "low", "high"), [([0, T], 0, T), ([T + 1, 1], 1, T + 1), ([-2, 3], -2, 3)])
def test_lengths_out_of_range(family, lengths, low, high):
    with pytest.raises(ValueError, match=esc(f"expected lengths between 1 and T = {T}, got values from {low} "
                                             f"to {high}.")):
        FAMILIES[family](I, H, num_layers=L, bidirectional=True).forward(randn(T, N, I), lengths=lengths)


@pytest.mark.parametrize("family", FAMILIES)
def test_lengths_with_unbatched_x(family):
    with pytest.raises(ValueError, match=esc(f"{family}.forward: expected batched x with lengths (one length per "
                                             "sequence), got unbatched x.")):
        FAMILIES[family](I, H).forward(randn(T, I), lengths=[T])


# ---------------------------------------------------------------------------------------------------------
# States
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("family", ["GRU", "RNN"])
@pytest.mark.parametrize("hx", [
    (randn(L, N, H),),                                   # a 1-tuple
    (randn(L, N, H), randn(L, N, H)),                    # an LSTM-style pair
    (randn(L, N, H), randn(L, N, H - 1)),                # a ragged pair
])
def test_single_state_family_hx_as_a_tuple(family, hx):
    with pytest.raises(TypeError, match=esc(f"{family}.forward: expected an array h0, got a tuple (only an LSTM "
                                            "takes a pair).")):
        FAMILIES[family](I, H, num_layers=L).forward(randn(T, N, I), hx)


@pytest.mark.parametrize("family", ["GRU", "RNN"])
def test_single_state_family_hx_as_a_list_is_an_array(family):
    with pytest.raises(ValueError, match=esc(f"{family}.forward: expected h0 of shape ({L}, {N}, {H}), "
                                             f"got (1, {L}, {N}, {H}).")):
        FAMILIES[family](I, H, num_layers=L).forward(randn(T, N, I), [randn(L, N, H)])


@pytest.mark.parametrize("family", ["GRU", "RNN"])
@pytest.mark.parametrize(("bidirectional", "shape", "expected"), [
    (False, (1, N, H), (L, N, H)),               # too few layers
    (True, (L, N, H), (2 * L, N, H)),            # the reverse directions are missing
    (False, (L, N + 1, H), (L, N, H)),           # wrong batch
    (False, (L, N, H + 1), (L, N, H)),           # wrong hidden size
    (False, (N, H), (L, N, H)),                  # unbatched state for batched x
])
def test_single_state_family_hx_wrong_shape(family, bidirectional, shape, expected):
    layer = FAMILIES[family](I, H, num_layers=L, bidirectional=bidirectional)
    with pytest.raises(ValueError, match=esc(f"{family}.forward: expected h0 of shape {expected}, got {shape}.")):
        layer.forward(randn(T, N, I), np.zeros(shape))


@pytest.mark.parametrize("family", ["GRU", "RNN"])
def test_single_state_family_unbatched_hx_shape(family):
    with pytest.raises(ValueError, match=esc(f"expected h0 of shape ({L}, {H}), got ({L}, 1, {H}).")):
        FAMILIES[family](I, H, num_layers=L).forward(randn(T, I), np.zeros((L, 1, H)))


P = 2


@pytest.mark.parametrize(("which", "h_shape", "c_shape", "expected"), [
    ("c0", (L, N, P), (L, N, P), (L, N, H)),      # c has the hidden size, not the projection size
    ("h0", (L, N, H), (L, N, H), (L, N, P)),      # h has the projection size
    ("c0", (L, N, P), (L, N + 1, H), (L, N, H)),
])
def test_lstm_state_shapes_under_proj_size(which, h_shape, c_shape, expected):
    layer = LSTM(I, H, num_layers=L, proj_size=P)
    with pytest.raises(ValueError, match=esc(f"LSTM.forward: expected {which} of shape {expected}, got ")):
        layer.forward(randn(T, N, I), (np.zeros(h_shape), np.zeros(c_shape)))


def test_lstm_state_gradient_shapes_under_proj_size():
    layer = LSTM(I, H, num_layers=L, proj_size=P)
    out, (h_n, c_n) = layer.forward(randn(T, N, I))
    assert h_n.shape == (L, N, P) and c_n.shape == (L, N, H)
    with pytest.raises(ValueError, match=esc(f"LSTM.backward: expected dc_n of shape {(L, N, H)}, got {(L, N, P)}.")):
        layer.backward(randn(*out.shape), (randn(L, N, P), randn(L, N, P)))


# ---------------------------------------------------------------------------------------------------------
# dout of a bidirectional output
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize(("batch_first", "unbatched"), [(False, False), (True, False), (False, True)])
def test_dout_of_one_direction_for_bidirectional_output(family, batch_first, unbatched):
    layer = FAMILIES[family](I, H, num_layers=L, batch_first=batch_first, bidirectional=True)
    x_shape = (T, I) if unbatched else ((N, T, I) if batch_first else (T, N, I))
    out, _ = layer.forward(randn(*x_shape))
    assert out.shape[-1] == 2 * H
    wrong = (*out.shape[:-1], H)
    with pytest.raises(ValueError, match=esc(f"{family}.backward: expected dout of shape {out.shape}, got {wrong}.")):
        layer.backward(np.zeros(wrong))


def test_dout_of_bidirectional_lstm_with_projection():
    layer = LSTM(I, H, num_layers=L, bidirectional=True, proj_size=P)
    out, _ = layer.forward(randn(T, N, I))
    assert out.shape == (T, N, 2 * P)
    for wrong in [(T, N, 2 * H), (T, N, P)]:
        with pytest.raises(ValueError, match=esc(f"expected dout of shape {(T, N, 2 * P)}, got {wrong}.")):
            layer.backward(np.zeros(wrong))
