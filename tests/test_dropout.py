"""Dropout between layers, for every family: off in eval mode, the mask's rate and scale in training mode,
gradients with the mask held fixed, never after the last layer, and reproducible from the layer's ``rng``.

The mask is observed through behaviour only: a two-layer stack whose second layer is set up to pass each
input entry through a known elementwise function (its candidate rows are the identity, its recurrent
weights zero, and saturated gates make the update exact), so zeros in the output are dropped entries and the
kept entries show the 1/(1-p) scale.
"""

from __future__ import annotations

import numpy as np
import pytest

from bptt import GRU, LSTM, RNN, gradcheck

FAMILIES = {"LSTM": LSTM, "GRU": GRU, "RNN": RNN}


def randn(rng: np.random.Generator, shape) -> np.ndarray:
    return rng.standard_normal(shape)


def as_tuple(state) -> tuple:
    return tuple(state) if isinstance(state, tuple) else (state,)


def pack(states: tuple):
    return states if len(states) > 1 else states[0]


def upstream(rng: np.random.Generator, out: np.ndarray, finals) -> tuple[np.ndarray, object]:
    """Random (never all-ones) upstream gradients for out and every final state."""
    return randn(rng, out.shape), pack(tuple(randn(rng, s.shape) for s in as_tuple(finals)))


def forward_backward(layer, x, hx, dout_seed: int = 0):
    """One forward and backward pass from zeroed gradients; returns every result, copied."""
    out, finals = layer.forward(x, hx)
    dout, dhx = upstream(np.random.default_rng(dout_seed), out, finals)
    layer.zero_grad()
    dx, dinitials = layer.backward(dout, dhx)
    return {"out": out.copy(), "dx": dx.copy(),
            **{f"final{i}": s.copy() for i, s in enumerate(as_tuple(finals))},
            **{f"dinitial{i}": s.copy() for i, s in enumerate(as_tuple(dinitials))},
            **{f"grad {k}": v.copy() for k, v in layer.grads.items()}}


def initial_states(layer, rng: np.random.Generator, N: int):
    LD = layer.num_layers * layer.num_directions
    sizes = (layer.output_size, layer.hidden_size) if isinstance(layer, LSTM) else (layer.hidden_size,)
    return pack(tuple(randn(rng, (LD, N, s)) for s in sizes))


# ---------------------------------------------------------------------------------------------------------
# (a) Eval mode (and dropout = 0): deterministic, and equal to torch in eval mode
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("family", FAMILIES)
def test_eval_mode_is_deterministic_and_ignores_the_rng(family, bidirectional):
    rng = np.random.default_rng(1)
    layer = FAMILIES[family](3, 4, num_layers=3, dropout=0.5, bidirectional=bidirectional, rng=2).eval()
    assert layer.training is False
    x, hx = randn(rng, (5, 2, 3)), initial_states(layer, rng, 2)
    first = forward_backward(layer, x, hx)
    layer.rng = np.random.default_rng(12345)
    second = forward_backward(layer, x, hx)
    for name, value in first.items():
        np.testing.assert_array_equal(second[name], value, err_msg=name)
    # and training mode with the same weights really is different, so the comparison above can fail
    train_out, _ = layer.train().forward(x, hx)
    assert not np.allclose(train_out, first["out"])


@pytest.mark.parametrize("family", FAMILIES)
def test_dropout_zero_in_training_mode_is_deterministic(family):
    rng = np.random.default_rng(3)
    layer = FAMILIES[family](3, 4, num_layers=3, dropout=0.0, rng=4)
    assert layer.training is True
    x = randn(rng, (5, 2, 3))
    first = forward_backward(layer, x, None)
    layer.rng = np.random.default_rng(999)
    second = forward_backward(layer, x, None)
    for name, value in first.items():
        np.testing.assert_array_equal(second[name], value, err_msg=name)


def _torch_twin(torch, layer, dropout: float):
    cls = {"LSTM": torch.nn.LSTM, "GRU": torch.nn.GRU, "RNN": torch.nn.RNN}[type(layer).__name__]
    module = cls(layer.input_size, layer.hidden_size, num_layers=layer.num_layers, dropout=dropout,
                 bidirectional=layer.bidirectional, dtype=torch.float64)
    module.load_state_dict({k: torch.from_numpy(v) for k, v in layer.state_dict().items()})
    return module


@pytest.mark.parametrize(("dropout", "mode"), [(0.4, "eval"), (0.0, "train")])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("family", FAMILIES)
def test_without_active_dropout_matches_torch(family, bidirectional, dropout, mode):
    """Eval mode with dropout = 0.4, and training mode with dropout = 0, against torch in the same mode."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    layer = FAMILIES[family](3, 4, num_layers=2, dropout=dropout, bidirectional=bidirectional, rng=6)
    layer.train(mode == "train")
    module = _torch_twin(torch, layer, dropout).train(mode == "train")
    x, hx = randn(rng, (5, 2, 3)), initial_states(layer, rng, 2)
    ours = forward_backward(layer, x, hx, dout_seed=7)

    x_t = torch.from_numpy(x.copy()).requires_grad_(True)
    hx_t = tuple(torch.from_numpy(s.copy()).requires_grad_(True) for s in as_tuple(hx))
    out_t, finals_t = module(x_t, pack(hx_t))
    finals_t = as_tuple(finals_t)
    dout, dhx = upstream(np.random.default_rng(7), ours["out"], tuple(ours[f"final{i}"] for i in range(len(hx_t))))
    torch.autograd.backward([out_t, *finals_t], [torch.from_numpy(dout), *map(torch.from_numpy, as_tuple(dhx))])
    theirs = {"out": out_t, "dx": x_t.grad, **{f"final{i}": s for i, s in enumerate(finals_t)},
              **{f"dinitial{i}": s.grad for i, s in enumerate(hx_t)},
              **{f"grad {k}": p.grad for k, p in module.named_parameters()}}
    assert set(theirs) == set(ours)
    for name, value in theirs.items():
        expected = value.detach().numpy()
        err = np.max(np.abs(ours[name] - expected)) / max(np.max(np.abs(expected)), np.finfo(float).tiny)
        assert err <= 1e-10, f"{name}: relative error {err:.3e}"


# ---------------------------------------------------------------------------------------------------------
# (b) The mask: rate p, kept entries scaled by 1/(1-p), observed through an exact pass-through second layer
# ---------------------------------------------------------------------------------------------------------

SATURATE = 40.0   # sigma(+-40) evaluated as (1 + tanh(+-20)) / 2 is exactly 1 or 0 in float64


def make_pass_through(family: str, p: float, bidirectional: bool, seed: int, T: int = 20, N: int = 16,
                      I: int = 3, H: int = 32):
    """A 2-layer layer whose second layer outputs phi(u) elementwise for its input u (the dropped-out output
    of the first layer), and phi: RNN tanh(u), GRU tanh(u) (z = 0), LSTM tanh(tanh(u)) (i = o = 1, f = 0)."""
    layer = FAMILIES[family](I, H, num_layers=2, dropout=p, bidirectional=bidirectional, rng=seed)
    G = {"LSTM": 4, "GRU": 3, "RNN": 1}[family]
    candidate = {"LSTM": 2, "GRU": 2, "RNN": 0}[family]         # the gate block that reads the input as is
    for d, suffix in enumerate(["", "_reverse"][:layer.num_directions]):
        w_ih = np.zeros((G * H, layer.num_directions * H))
        w_ih[candidate * H:(candidate + 1) * H, d * H:(d + 1) * H] = np.eye(H)
        bias_ih = np.zeros(G * H)
        if family == "GRU":
            bias_ih[H:2 * H] = -SATURATE                          # z = 0: h = n
        if family == "LSTM":
            bias_ih[:H], bias_ih[H:2 * H], bias_ih[3 * H:] = SATURATE, -SATURATE, SATURATE  # i = o = 1, f = 0
        layer.load_state_dict({**layer.state_dict(), f"weight_ih_l1{suffix}": w_ih,
                               f"weight_hh_l1{suffix}": np.zeros((G * H, H)),
                               f"bias_ih_l1{suffix}": bias_ih, f"bias_hh_l1{suffix}": np.zeros(G * H)})
    first = FAMILIES[family](I, H, num_layers=1, bidirectional=bidirectional, rng=0)
    first.load_state_dict({k: v for k, v in layer.state_dict().items() if "_l0" in k})
    x = np.random.default_rng(seed + 1).standard_normal((T, N, I))
    phi = (lambda u: np.tanh(np.tanh(u))) if family == "LSTM" else np.tanh
    return layer, first, x, phi


@pytest.mark.parametrize("p", [0.2, 0.5, 0.8])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("family", FAMILIES)
def test_mask_rate_and_scale(family, bidirectional, p):
    layer, first, x, phi = make_pass_through(family, p, bidirectional, seed=10)
    a, _ = first.eval().forward(x)                              # the first layer's output, undropped
    assert np.all(a != 0)
    eval_out, _ = layer.eval().forward(x)
    np.testing.assert_allclose(eval_out, phi(a), rtol=1e-14, atol=0, err_msg="the pass-through is not exact")

    train_out, _ = layer.train().forward(x)
    dropped = train_out == 0
    n = dropped.size
    rate = dropped.mean()
    assert abs(rate - p) <= 5 * np.sqrt(p * (1 - p) / n), f"dropped fraction {rate:.4f}, expected {p} (n = {n})"
    kept = ~dropped
    np.testing.assert_allclose(train_out[kept], phi(a / (1 - p))[kept], rtol=1e-13, atol=0,
                               err_msg="kept entries are not scaled by 1/(1-p)")
    assert not np.allclose(phi(a / (1 - p))[kept], phi(a)[kept])      # the scale is visible at all
    # an independent draw per entry: not the same mask at every step, batch column or feature
    assert (dropped != dropped[:1]).any() and (dropped != dropped[:, :1]).any() and (dropped != dropped[..., :1]).any()


@pytest.mark.parametrize("family", FAMILIES)
def test_mask_gates_the_gradient_too(family):
    """In training mode, dx of the pass-through stack is what the same mask implies: zero through dropped
    entries. Checked by comparing with the gradient of the eval pass with the dropped entries zeroed."""
    layer, first, x, phi = make_pass_through(family, 0.5, False, seed=20, T=6, N=4, H=5)
    train_out, _ = layer.train().forward(x)
    dropped = train_out == 0
    dout = np.random.default_rng(0).standard_normal(train_out.shape)
    layer.zero_grad()
    dx_train, _ = layer.backward(dout)
    # the same gradient by hand: d out / d a = phi'(a / (1-p)) / (1-p) on kept entries, 0 on dropped ones
    a, _ = first.eval().forward(x)
    u = a / 0.5
    slope = (1 - np.tanh(np.tanh(u)) ** 2) * (1 - np.tanh(u) ** 2) if family == "LSTM" else 1 - np.tanh(u) ** 2
    da = np.where(dropped, 0.0, dout * slope / 0.5)
    first.zero_grad()
    dx_expected, _ = first.backward(da)
    np.testing.assert_allclose(dx_train, dx_expected, rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------------------------------------------------
# (c) Gradient check with the mask fixed: every call of f redraws the same mask from a reseeded rng
# ---------------------------------------------------------------------------------------------------------

MASK_SEED = 2024


def dropout_check(layer, x, hx, *, analytic_seed: int = MASK_SEED, mode: str = "full"):
    """gradcheck of a training-mode layer whose f reseeds ``layer.rng`` on every call; the analytic
    gradients come from one forward/backward drawn with ``analytic_seed``."""
    rng = np.random.default_rng(0)
    n_states = len(as_tuple(hx))
    names = ("h0", "c0")[:n_states]
    layer.rng = np.random.default_rng(analytic_seed)
    out, finals = layer.forward(x, hx)
    w_out = randn(rng, out.shape)
    w_states = tuple(randn(rng, s.shape) for s in as_tuple(finals))
    loss_value = float(np.sum(out * w_out) + sum(np.sum(s * w) for s, w in zip(as_tuple(finals), w_states,
                                                                                  strict=True)))
    layer.zero_grad()
    dx, dinitials = layer.backward(w_out, pack(w_states))
    params = dict(layer.params, x=x.copy(), **{n: s.copy() for n, s in zip(names, as_tuple(hx), strict=True)})
    grads = dict(layer.grads, x=dx, **dict(zip(names, as_tuple(dinitials), strict=True)))

    def f(p):
        layer.rng = np.random.default_rng(MASK_SEED)
        out, finals = layer.forward(p["x"], pack(tuple(p[n] for n in names)))
        return float(np.sum(out * w_out) + sum(np.sum(s * w) for s, w in zip(as_tuple(finals), w_states,
                                                                               strict=True)))

    return gradcheck(f, params, grads, loss=loss_value if analytic_seed == MASK_SEED else None, mode=mode, seed=0)


DROPOUT_LAYERS = [
    ("LSTM", {}), ("LSTM", {"bidirectional": True}), ("LSTM", {"proj_size": 1, "bidirectional": True}),
    ("GRU", {}), ("GRU", {"bidirectional": True}),
    ("RNN", {}), ("RNN", {"bidirectional": True}), ("RNN", {"nonlinearity": "relu", "bidirectional": True}),
]


@pytest.mark.parametrize(("family", "extra"), DROPOUT_LAYERS,
                         ids=[f + "".join(f"-{k}={v}" for k, v in e.items()) for f, e in DROPOUT_LAYERS])
def test_gradcheck_with_fixed_mask(family, extra):
    rng = np.random.default_rng(30)
    layer = FAMILIES[family](2, 3, num_layers=3, dropout=0.5, rng=31, **extra)
    x, hx = randn(rng, (3, 2, 2)), initial_states(layer, rng, 2)
    # the mask is really there: training differs from eval at this point
    layer.rng = np.random.default_rng(MASK_SEED)
    train_out, _ = layer.forward(x, hx)
    eval_out, _ = layer.eval().forward(x, hx)
    layer.train()
    assert not np.allclose(train_out, eval_out)

    report = dropout_check(layer, x, hx)
    assert report.ok, str(report)
    assert layer.training


@pytest.mark.parametrize("family", FAMILIES)
def test_gradcheck_sees_gradients_of_another_mask(family):
    """Negative control: analytic gradients from a different mask than the one f draws must fail."""
    rng = np.random.default_rng(40)
    layer = FAMILIES[family](2, 3, num_layers=2, dropout=0.5, rng=41)
    x, hx = randn(rng, (3, 2, 2)), initial_states(layer, rng, 2)
    report = dropout_check(layer, x, hx, analytic_seed=MASK_SEED + 1, mode="fast")
    assert not report.ok
    assert any(name.endswith("_l0") or name in ("x", "h0") for name in report.failed), report.failed


# ---------------------------------------------------------------------------------------------------------
# (d) No dropout after the last layer
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("family", FAMILIES)
def test_single_layer_ignores_dropout(family, bidirectional):
    rng = np.random.default_rng(50)
    layer = FAMILIES[family](3, 4, num_layers=1, dropout=0.5, bidirectional=bidirectional, rng=51)
    x, hx = randn(rng, (6, 3, 3)), initial_states(layer, rng, 3)
    train = forward_backward(layer.train(), x, hx)
    evaluated = forward_backward(layer.eval(), x, hx)
    for name, value in evaluated.items():
        np.testing.assert_array_equal(train[name], value, err_msg=name)
    assert np.all(train["out"] != 0)


# ---------------------------------------------------------------------------------------------------------
# (e) Reproducible from the rng: same seed, same masks; another seed, other masks
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("family", FAMILIES)
def test_same_seed_same_masks_other_seed_other_masks(family, bidirectional):
    rng = np.random.default_rng(60)
    layer = FAMILIES[family](3, 4, num_layers=3, dropout=0.3, bidirectional=bidirectional, rng=61)
    x, hx = randn(rng, (6, 3, 3)), initial_states(layer, rng, 3)
    runs = {}
    for label, seed in [("a", 7), ("a again", 7), ("b", 8)]:
        layer.rng = np.random.default_rng(seed)
        runs[label] = forward_backward(layer, x, hx)
    for name, value in runs["a"].items():
        np.testing.assert_array_equal(runs["a again"][name], value, err_msg=name)
    assert not np.allclose(runs["a"]["out"], runs["b"]["out"])
    assert not np.allclose(runs["a"]["dx"], runs["b"]["dx"])
    # consecutive passes from one generator draw fresh masks
    layer.rng = np.random.default_rng(7)
    layer.forward(x, hx)
    second, _ = layer.forward(x, hx)
    assert not np.allclose(second, runs["a"]["out"])


def test_constructor_seed_fixes_the_masks():
    """Two layers built from the same int seed have the same weights and draw the same masks."""
    x = np.random.default_rng(70).standard_normal((5, 2, 3))
    outs = [GRU(3, 4, num_layers=2, dropout=0.5, rng=71).forward(x)[0] for _ in range(2)]
    np.testing.assert_array_equal(outs[0], outs[1])
