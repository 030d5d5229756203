"""Each update against its closed form and against torch.optim on the same gradient sequence."""

import math

import numpy as np
import pytest

from bptt.train.optim import Adam, clip_grad_norm, cosine_lr


def test_adam_first_step_is_lr_times_sign():
    # After one step m_hat = g and v_hat = g^2, so the update is lr * g / (|g| + eps') ~ lr * sign(g).
    params = {"w": np.array([1.0, -2.0, 3.0])}
    grads = {"w": np.array([0.5, -4.0, 1e-3])}
    Adam(params, grads, lr=0.1, eps=0.0).step()
    np.testing.assert_allclose(params["w"], [0.9, -1.9, 2.9], rtol=0, atol=1e-15)


def test_adam_matches_its_closed_form_over_several_steps():
    rng = np.random.default_rng(0)
    params = {"w": rng.normal(size=5)}
    expected = params["w"].copy()
    grads = {"w": np.zeros(5)}
    optimizer = Adam(params, grads, lr=0.01, betas=(0.8, 0.99), eps=1e-8)
    m = v = np.zeros(5)
    for t in range(1, 6):
        g = rng.normal(size=5)
        grads["w"][:] = g
        optimizer.step()
        m = 0.8 * m + 0.2 * g
        v = 0.99 * v + 0.01 * g * g
        expected = expected - 0.01 * (m / (1 - 0.8**t)) / (np.sqrt(v / (1 - 0.99**t)) + 1e-8)
    np.testing.assert_allclose(params["w"], expected, rtol=1e-13)


def test_adam_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    start = rng.normal(size=(3, 4))
    params, grads = {"w": start.copy()}, {"w": np.zeros((3, 4))}
    ours = Adam(params, grads, lr=0.05)
    weight = torch.tensor(start, requires_grad=True)
    theirs = torch.optim.Adam([weight], lr=0.05)
    for _ in range(20):
        g = rng.normal(size=(3, 4))
        grads["w"][:] = g
        ours.step()
        weight.grad = torch.tensor(g)
        theirs.step()
    np.testing.assert_allclose(params["w"], weight.detach().numpy(), rtol=1e-12, atol=1e-14)


def test_clip_grad_norm_matches_closed_form_and_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    arrays = {"a": rng.normal(size=(3, 2)), "b": rng.normal(size=4)}
    total = math.sqrt(sum(float(np.sum(v**2)) for v in arrays.values()))
    grads = {k: v.copy() for k, v in arrays.items()}
    returned = clip_grad_norm(grads, 0.5)
    assert returned == pytest.approx(total, rel=1e-15)
    tensors = [torch.tensor(v, requires_grad=True) for v in arrays.values()]
    for tensor, value in zip(tensors, arrays.values(), strict=True):
        tensor.grad = torch.tensor(value)
    torch.nn.utils.clip_grad_norm_(tensors, 0.5)
    for tensor, name in zip(tensors, arrays, strict=True):
        np.testing.assert_allclose(grads[name], tensor.grad.numpy(), rtol=1e-14)
    new_total = math.sqrt(sum(float(np.sum(v**2)) for v in grads.values()))
    assert new_total == pytest.approx(0.5, rel=1e-5)


def test_clip_grad_norm_leaves_small_gradients_alone():
    grads = {"a": np.array([0.3, 0.4])}
    assert clip_grad_norm(grads, 1.0) == pytest.approx(0.5)
    np.testing.assert_array_equal(grads["a"], [0.3, 0.4])


def test_bad_optimizer_settings_raise():
    params, grads = {"w": np.zeros(2)}, {"w": np.zeros(2)}
    with pytest.raises(ValueError, match="expected lr > 0, got -1"):
        Adam(params, grads, lr=-1)
    with pytest.raises(ValueError, match=r"expected betas in \[0, 1\), got \(0.9, 1.0\)"):
        Adam(params, grads, betas=(0.9, 1.0))
    with pytest.raises(ValueError, match=r"expected a gradient for every param, got none for \['w'\]"):
        Adam(params, {})
    with pytest.raises(ValueError, match="expected max_norm > 0, got 0"):
        clip_grad_norm(grads, 0)


def test_cosine_lr_endpoints_and_midpoint():
    assert cosine_lr(0, 100, 1.0, 0.1) == pytest.approx(1.0)
    assert cosine_lr(50, 100, 1.0, 0.1) == pytest.approx(0.55)
    assert cosine_lr(100, 100, 1.0, 0.1) == pytest.approx(0.1)
    assert cosine_lr(150, 100, 1.0, 0.1) == pytest.approx(0.1)


# ---------------------------------------------------------------------------------------------------------
# SGD, Adam (L2), AdamW, RMSprop: closed forms on hand-checkable cases.

from bptt.train.optim import (  # noqa: E402
    OPTIMIZERS,
    SGD,
    AdamW,
    CosineLR,
    LinearWarmup,
    RMSprop,
    StepLR,
)


def test_sgd_plain_step_is_minus_lr_times_gradient():
    params, grads = {"w": np.array([1.0, -2.0])}, {"w": np.array([0.5, -0.25])}
    SGD(params, grads, lr=0.5).step()
    np.testing.assert_array_equal(params["w"], [0.75, -1.875])


def test_sgd_weight_decay_adds_lambda_theta_to_the_gradient():
    params, grads = {"w": np.array([2.0, -4.0])}, {"w": np.array([1.0, 1.0])}
    SGD(params, grads, lr=0.5, weight_decay=0.25).step()  # g + 0.25 w = (1.5, 0)
    np.testing.assert_array_equal(params["w"], [1.25, -4.0])
    np.testing.assert_array_equal(grads["w"], [1.0, 1.0])  # the decayed gradient is a copy


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_momentum_matches_its_closed_form(nesterov):
    rng = np.random.default_rng(3)
    mu, tau, lr = 0.9, (0.0 if nesterov else 0.3), 0.05
    params, grads = {"w": rng.normal(size=4)}, {"w": np.zeros(4)}
    expected = params["w"].copy()
    optimizer = SGD(params, grads, lr=lr, momentum=mu, dampening=tau, nesterov=nesterov)
    buf = None
    for _ in range(6):
        g = rng.normal(size=4)
        grads["w"][:] = g
        optimizer.step()
        buf = g.copy() if buf is None else mu * buf + (1 - tau) * g  # b_1 = g: no dampening on step 1
        expected = expected - lr * (g + mu * buf if nesterov else buf)
    np.testing.assert_allclose(params["w"], expected, rtol=1e-13)
    np.testing.assert_allclose(optimizer.momentum_buffer["w"], buf, rtol=1e-13)


def test_adam_weight_decay_is_l2_on_the_gradient():
    # First step with eps = 0 moves by lr * sign(g + lambda w): the decay can flip the direction.
    params, grads = {"w": np.array([1.0, -2.0, 3.0])}, {"w": np.array([0.5, 0.5, -1.0])}
    Adam(params, grads, lr=0.1, eps=0.0, weight_decay=1.0).step()  # g + w = (1.5, -1.5, 2)
    np.testing.assert_allclose(params["w"], [0.9, -1.9, 2.9], rtol=0, atol=1e-15)


def test_adamw_decays_the_weights_not_the_gradient():
    # w (1 - lr lambda) = 0.95 w, then the first Adam step lr * sign(g), untouched by the decay.
    params, grads = {"w": np.array([2.0, -4.0])}, {"w": np.array([1.0, 3.0])}
    AdamW(params, grads, lr=0.1, eps=0.0, weight_decay=0.5).step()
    np.testing.assert_allclose(params["w"], [1.8, -3.9], rtol=0, atol=1e-15)
    # A zero gradient leaves m = v = 0 and an update of 0 / eps: only the decay acts.
    params, grads = {"w": np.array([2.0, -4.0])}, {"w": np.zeros(2)}
    AdamW(params, grads, lr=0.1, weight_decay=0.5).step()
    np.testing.assert_array_equal(params["w"], [1.9, -3.8])


def test_adamw_matches_its_closed_form_over_several_steps():
    rng = np.random.default_rng(4)
    lr, (b1, b2), eps, lam = 0.02, (0.7, 0.9), 1e-6, 0.3
    params, grads = {"w": rng.normal(size=5)}, {"w": np.zeros(5)}
    expected = params["w"].copy()
    optimizer = AdamW(params, grads, lr=lr, betas=(b1, b2), eps=eps, weight_decay=lam)
    m = v = np.zeros(5)
    for t in range(1, 7):
        g = rng.normal(size=5)
        grads["w"][:] = g
        optimizer.step()
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        expected = expected * (1 - lr * lam) - lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
    np.testing.assert_allclose(params["w"], expected, rtol=1e-13)


def test_rmsprop_first_steps_by_hand():
    # v = (1 - alpha) g^2 = g^2 / 4, so the step is lr * g / (|g| / 2) = 2 lr sign(g).
    params, grads = {"w": np.array([1.0, -1.0])}, {"w": np.array([3.0, -0.5])}
    RMSprop(params, grads, lr=0.1, alpha=0.75, eps=0.0).step()
    np.testing.assert_allclose(params["w"], [0.8, -0.8], rtol=0, atol=1e-15)
    # Centered, alpha = 1/2: v - gbar^2 = g^2/2 - g^2/4 = g^2/4, the same step.
    params = {"w": np.array([1.0, -1.0])}
    RMSprop(params, grads, lr=0.1, alpha=0.5, eps=0.0, centered=True).step()
    np.testing.assert_allclose(params["w"], [0.8, -0.8], rtol=0, atol=1e-15)


@pytest.mark.parametrize("centered", [False, True])
def test_rmsprop_matches_its_closed_form_with_momentum_and_decay(centered):
    rng = np.random.default_rng(5)
    lr, alpha, eps, lam, mu = 0.01, 0.9, 1e-6, 0.05, 0.7
    params, grads = {"w": rng.normal(size=(2, 3))}, {"w": np.zeros((2, 3))}
    expected = params["w"].copy()
    optimizer = RMSprop(params, grads, lr=lr, alpha=alpha, eps=eps, weight_decay=lam, momentum=mu,
                        centered=centered)
    v = gbar = buf = np.zeros((2, 3))
    for _ in range(6):
        raw = rng.normal(size=(2, 3))
        grads["w"][:] = raw
        optimizer.step()
        g = raw + lam * expected
        v = alpha * v + (1 - alpha) * g * g
        gbar = alpha * gbar + (1 - alpha) * g
        buf = mu * buf + g / (np.sqrt(v - gbar**2 if centered else v) + eps)
        expected = expected - lr * buf
    np.testing.assert_allclose(params["w"], expected, rtol=1e-12)


# ---------------------------------------------------------------------------------------------------------
# Parity with torch.optim on one random gradient sequence.

SETTINGS = [
    ("sgd", {"lr": 0.1}),
    ("sgd", {"lr": 0.1, "momentum": 0.9}),
    ("sgd", {"lr": 0.05, "momentum": 0.9, "dampening": 0.3, "weight_decay": 0.01}),
    ("sgd", {"lr": 0.05, "momentum": 0.8, "nesterov": True, "weight_decay": 0.1}),
    ("adam", {"lr": 0.01}),
    ("adam", {"lr": 0.02, "betas": (0.6, 0.95), "eps": 1e-6, "weight_decay": 0.05}),
    ("adam", {"lr": 0.02, "betas": (0.3, 0.5)}),  # 1 - beta1 >= 0.5: lerp's other branch
    ("adam", {"lr": 0.02, "betas": (0.0, 0.0)}),
    ("adamw", {"lr": 0.01}),
    ("adamw", {"lr": 0.03, "betas": (0.3, 0.9), "weight_decay": 0.2}),
    ("rmsprop", {"lr": 0.01}),
    ("rmsprop", {"lr": 0.01, "centered": True}),
    ("rmsprop", {"lr": 0.01, "momentum": 0.9}),
    ("rmsprop", {"lr": 0.005, "alpha": 0.9, "centered": True, "momentum": 0.5, "weight_decay": 0.02}),
    ("rmsprop", {"lr": 0.005, "alpha": 0.3, "centered": True, "eps": 1e-6}),
]
TORCH_NAMES = {"sgd": "SGD", "adam": "Adam", "adamw": "AdamW", "rmsprop": "RMSprop"}
SHAPES = {"weight": (5, 3), "bias": (5,), "big": (40, 33)}


def _setting_id(setting):
    name, kwargs = setting
    return name + "-" + ",".join(f"{k}={v}" for k, v in kwargs.items())


@pytest.mark.parametrize("setting", SETTINGS, ids=[_setting_id(s) for s in SETTINGS])
def test_optimizer_matches_torch_over_25_steps(setting):
    torch = pytest.importorskip("torch")
    name, kwargs = setting
    rng = np.random.default_rng(7)
    params = {k: rng.normal(size=s) for k, s in SHAPES.items()}
    grads = {k: np.zeros(s) for k, s in SHAPES.items()}
    tensors = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    ours = OPTIMIZERS[name](params, grads, **kwargs)
    theirs = getattr(torch.optim, TORCH_NAMES[name])(list(tensors.values()), **kwargs)
    for step in range(25):
        if step == 12:  # lr is mutable between steps, as a schedule would set it
            ours.lr = theirs.param_groups[0]["lr"] = kwargs["lr"] / 3
        for k, shape in SHAPES.items():
            g = rng.normal(size=shape)
            grads[k][:] = g
            tensors[k].grad = torch.tensor(g)
        ours.step()
        theirs.step()
        for k in SHAPES:
            np.testing.assert_array_equal(grads[k], tensors[k].grad.numpy())  # gradients are read, not written
    for k in SHAPES:
        # Relative to the array's scale: torch fuses multiply-adds (FMA), so single entries that have cancelled
        # to near zero carry a larger elementwise relative error (at most ~5e-13 here) than the array does.
        expected = tensors[k].detach().numpy()
        np.testing.assert_allclose(params[k], expected, rtol=1e-12, atol=1e-12 * np.max(np.abs(expected)))
    state = ours.state_dict()
    for buffer, value in theirs.state[tensors["weight"]].items():
        if buffer != "step":
            np.testing.assert_allclose(state[buffer]["weight"], value.numpy(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_float32_params_stay_float32(name):
    params = {"w": np.array([1.0, -2.0], dtype=np.float32)}
    grads = {"w": np.array([0.5, 0.25], dtype=np.float32)}
    optimizer = OPTIMIZERS[name](params, grads, lr=0.1)
    optimizer.step()
    assert params["w"].dtype == np.float32
    assert all(a.dtype == np.float32 for key, d in optimizer.state_dict().items() if isinstance(d, dict)
               for a in d.values())


# ---------------------------------------------------------------------------------------------------------
# State dicts: a resumed run continues bitwise.

ROUND_TRIP = [
    ("sgd", {"lr": 0.1, "momentum": 0.9, "nesterov": True}),
    ("sgd", {"lr": 0.1}),
    ("adam", {"lr": 0.01, "weight_decay": 0.01}),
    ("adamw", {"lr": 0.01}),
    ("rmsprop", {"lr": 0.01, "centered": True, "momentum": 0.5}),
]


@pytest.mark.parametrize("setting", ROUND_TRIP, ids=[_setting_id(s) for s in ROUND_TRIP])
def test_state_dict_round_trip_continues_bitwise(setting):
    name, kwargs = setting
    rng = np.random.default_rng(8)
    start = {"weight": rng.normal(size=(4, 3)), "bias": rng.normal(size=4)}
    sequence = [{k: rng.normal(size=v.shape) for k, v in start.items()} for _ in range(20)]

    def run(optimizer, grads, gradients):
        for step_grads in gradients:
            for k, g in step_grads.items():
                grads[k][:] = g
            optimizer.step()

    straight = {k: v.copy() for k, v in start.items()}
    straight_grads = {k: np.zeros_like(v) for k, v in start.items()}
    uninterrupted = OPTIMIZERS[name](straight, straight_grads, **kwargs)
    run(uninterrupted, straight_grads, sequence)

    first = {k: v.copy() for k, v in start.items()}
    first_grads = {k: np.zeros_like(v) for k, v in start.items()}
    before = OPTIMIZERS[name](first, first_grads, **kwargs)
    run(before, first_grads, sequence[:10])
    checkpoint = before.state_dict()
    assert checkpoint["step"] == 10 and checkpoint["lr"] == kwargs["lr"]
    resumed_params = {k: v.copy() for k, v in first.items()}
    resumed_grads = {k: np.zeros_like(v) for k, v in start.items()}
    after = OPTIMIZERS[name](resumed_params, resumed_grads, **{**kwargs, "lr": 0.5})
    after.load_state_dict(checkpoint)
    assert after.lr == kwargs["lr"]
    run(after, resumed_grads, sequence[10:])
    run(before, first_grads, [{k: np.full_like(v, np.nan) for k, v in start.items()}])  # checkpoint is a copy

    for k in start:
        np.testing.assert_array_equal(resumed_params[k], straight[k])
    final, expected = after.state_dict(), uninterrupted.state_dict()
    assert final.keys() == expected.keys()
    for key, value in expected.items():
        if isinstance(value, dict):
            for k in value:
                np.testing.assert_array_equal(final[key][k], value[k])
        else:
            assert final[key] == value


def test_state_dict_uses_torch_buffer_names():
    params, grads = {"w": np.zeros(2)}, {"w": np.zeros(2)}
    assert set(Adam(params, grads).state_dict()) == {"step", "lr", "exp_avg", "exp_avg_sq"}
    assert set(SGD(params, grads, lr=0.1).state_dict()) == {"step", "lr"}
    assert set(SGD(params, grads, lr=0.1, momentum=0.9).state_dict()) == {"step", "lr", "momentum_buffer"}
    assert set(RMSprop(params, grads).state_dict()) == {"step", "lr", "square_avg"}
    assert set(RMSprop(params, grads, momentum=0.1, centered=True).state_dict()) == {
        "step", "lr", "square_avg", "momentum_buffer", "grad_avg"}


def test_a_state_whose_lr_a_schedule_took_to_zero_loads_back():
    params, grads = {"w": np.ones(2)}, {"w": np.full(2, 0.5)}
    optimizer = Adam(params, grads, lr=1e-2)
    optimizer.step()
    optimizer.lr = 0.0  # CosineLR with final_lr=0 ends here; step() accepts it
    optimizer.step()
    twin = Adam({"w": params["w"].copy()}, {"w": grads["w"].copy()}, lr=1.0)
    twin.load_state_dict(optimizer.state_dict())
    assert twin.lr == 0.0 and twin.step_count == 2
    np.testing.assert_array_equal(twin.exp_avg["w"], optimizer.exp_avg["w"])


def test_load_state_dict_refuses_and_changes_nothing():
    params, grads = {"w": np.zeros(2), "b": np.zeros(3)}, {"w": np.ones(2), "b": np.ones(3)}
    optimizer = Adam(params, grads, lr=0.1)
    optimizer.step()
    good = optimizer.state_dict()
    with pytest.raises(ValueError, match=r"expected keys \['step', 'lr', 'exp_avg', 'exp_avg_sq'\], got"):
        optimizer.load_state_dict({"step": 3, "lr": 0.1, "exp_avg": good["exp_avg"]})
    bad_shape = {**good, "step": 7, "exp_avg_sq": {"w": np.ones(2), "b": np.ones(4)}}
    with pytest.raises(ValueError, match=r"expected exp_avg_sq\['b'\] of shape \(3,\), got \(4,\)"):
        optimizer.load_state_dict(bad_shape)
    with pytest.raises(ValueError, match=r"expected exp_avg keyed by \['w', 'b'\], got \['w'\]"):
        optimizer.load_state_dict({**good, "exp_avg": {"w": np.ones(2)}})
    with pytest.raises(ValueError, match="expected step to be an int >= 0, got -1"):
        optimizer.load_state_dict({**good, "step": -1})
    with pytest.raises(ValueError, match=r"expected finite values in exp_avg\['w'\]"):
        optimizer.load_state_dict({**good, "exp_avg": {"w": np.array([np.nan, 0.0]), "b": np.ones(3)}})
    after = optimizer.state_dict()
    assert after["step"] == 1
    for key in ("exp_avg", "exp_avg_sq"):
        for k in params:
            np.testing.assert_array_equal(after[key][k], good[key][k])


def test_optimizers_registry():
    assert OPTIMIZERS == {"sgd": SGD, "adam": Adam, "adamw": AdamW, "rmsprop": RMSprop}
    assert AdamW(*({"w": np.zeros(1)},) * 2).weight_decay == 1e-2


# ---------------------------------------------------------------------------------------------------------
# Bad hyperparameters.

P, G = {"w": np.zeros(2)}, {"w": np.zeros(2)}
BAD = [
    (SGD, {"lr": 0.0}, ValueError, "SGD: expected lr > 0, got 0.0"),
    (SGD, {"lr": float("nan")}, ValueError, "SGD: expected lr > 0, got nan"),
    (SGD, {"lr": "0.1"}, TypeError, "SGD: expected lr to be a real number, got str"),
    (SGD, {"lr": 0.1, "momentum": -0.5}, ValueError, "SGD: expected momentum >= 0, got -0.5"),
    (SGD, {"lr": 0.1, "momentum": 0.9, "dampening": 1.5}, ValueError, r"expected dampening in \[0, 1\], got 1.5"),
    (SGD, {"lr": 0.1, "nesterov": True}, ValueError,
     "SGD: expected momentum > 0 and dampening = 0 with nesterov=True, got momentum=0.0 and dampening=0.0"),
    (SGD, {"lr": 0.1, "momentum": 0.9, "dampening": 0.1, "nesterov": True}, ValueError,
     "got momentum=0.9 and dampening=0.1"),
    (SGD, {"lr": 0.1, "nesterov": "yes"}, TypeError, "SGD: expected nesterov to be a bool, got str"),
    (SGD, {"lr": 0.1, "weight_decay": -1e-4}, ValueError, "SGD: expected weight_decay >= 0, got -0.0001"),
    (Adam, {"betas": (-0.1, 0.9)}, ValueError, r"Adam: expected betas in \[0, 1\), got \(-0.1, 0.9\)"),
    (Adam, {"betas": 0.9}, TypeError, "Adam: expected betas to be a pair of floats, got 0.9"),
    (Adam, {"eps": -1e-8}, ValueError, "Adam: expected eps >= 0, got -1e-08"),
    (Adam, {"weight_decay": -0.1}, ValueError, "Adam: expected weight_decay >= 0, got -0.1"),
    (AdamW, {"lr": -1e-3}, ValueError, "AdamW: expected lr > 0, got -0.001"),
    (AdamW, {"betas": (0.9, 1.0)}, ValueError, r"AdamW: expected betas in \[0, 1\), got \(0.9, 1.0\)"),
    (RMSprop, {"alpha": 1.0}, ValueError, r"RMSprop: expected alpha in \[0, 1\), got 1.0"),
    (RMSprop, {"momentum": -0.9}, ValueError, "RMSprop: expected momentum >= 0, got -0.9"),
    (RMSprop, {"eps": -1.0}, ValueError, "RMSprop: expected eps >= 0, got -1.0"),
    (RMSprop, {"centered": 1}, TypeError, "RMSprop: expected centered to be a bool, got int"),
]


@pytest.mark.parametrize(("cls", "kwargs", "error", "message"), BAD, ids=[b[3][:60] for b in BAD])
def test_bad_hyperparameters_raise(cls, kwargs, error, message):
    with pytest.raises(error, match=message):
        cls(P, G, **kwargs)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_missing_or_misshapen_gradients_raise(name):
    cls = OPTIMIZERS[name]
    with pytest.raises(ValueError, match=rf"{cls.__name__}: expected a gradient for every param, got none for \['w'\]"):
        cls(P, {}, lr=0.1)
    with pytest.raises(ValueError, match=rf"{cls.__name__}: expected the gradient of w of shape \(2,\), got \(3,\)"):
        cls(P, {"w": np.zeros(3)}, lr=0.1)


# ---------------------------------------------------------------------------------------------------------
# Schedules against torch.optim.lr_scheduler.

def _torch_lrs(make_scheduler, steps, base_lr):
    """The lr that torch uses for each of ``steps`` updates, in the usual step-then-schedule loop."""
    torch = pytest.importorskip("torch")
    weight = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.SGD([weight], lr=base_lr)
    scheduler = make_scheduler(torch.optim.lr_scheduler, optimizer)
    lrs = []
    for _ in range(steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return np.array(lrs)


SCHEDULES = [
    (StepLR(7, gamma=0.5), lambda S, o: S.StepLR(o, 7, gamma=0.5)),
    (StepLR(3, gamma=0.9), lambda S, o: S.StepLR(o, 3, gamma=0.9)),
    (CosineLR(50, final_lr=1e-4), lambda S, o: S.CosineAnnealingLR(o, T_max=50, eta_min=1e-4)),
    (CosineLR(49, final_lr=0.0), lambda S, o: S.CosineAnnealingLR(o, T_max=49)),  # to its end, lr = 0
    (LinearWarmup(10, start_factor=0.1), lambda S, o: S.LinearLR(o, start_factor=0.1, total_iters=10)),
    (LinearWarmup(10), lambda S, o: S.LinearLR(o, start_factor=1e-3, total_iters=10)),
    (LinearWarmup(10, then=CosineLR(40, 1e-4), start_factor=0.01),
     lambda S, o: S.SequentialLR(o, [S.LinearLR(o, start_factor=0.01, total_iters=10),
                                     S.CosineAnnealingLR(o, T_max=40, eta_min=1e-4)], milestones=[10])),
    (LinearWarmup(5, then=StepLR(4, 0.7), start_factor=0.2),
     lambda S, o: S.SequentialLR(o, [S.LinearLR(o, start_factor=0.2, total_iters=5), S.StepLR(o, 4, 0.7)],
                                 milestones=[5])),
]


@pytest.mark.parametrize(("schedule", "make"), SCHEDULES, ids=[repr(s[0]) for s in SCHEDULES])
def test_schedule_matches_torch_over_50_steps(schedule, make):
    base_lr = 0.1
    expected = _torch_lrs(make, 50, base_lr)
    ours = np.array([schedule.lr(t, base_lr) for t in range(50)])
    # torch steps recursively (lr_t from lr_{t-1}), ours is the closed form: they agree to rounding (~6e-16).
    # (Past T_max torch's cosine rises again and ours stays at final_lr, so the cosines end within 50 steps.)
    np.testing.assert_allclose(ours, expected, rtol=1e-12, atol=1e-12 * base_lr)


def test_schedules_by_hand():
    assert [StepLR(2, gamma=0.5).lr(t, 0.8) for t in range(5)] == [0.8, 0.8, 0.4, 0.4, 0.2]
    cosine = CosineLR(100, final_lr=0.1)
    assert [cosine.lr(t, 1.0) for t in (0, 50, 100, 1000)] == pytest.approx([1.0, 0.55, 0.1, 0.1], abs=1e-15)
    warmup = LinearWarmup(4, start_factor=0.25)
    assert [warmup.lr(t, 2.0) for t in range(6)] == [0.5, 0.875, 1.25, 1.625, 2.0, 2.0]
    chained = LinearWarmup(4, then=cosine)
    assert chained.lr(4, 1.0) == 1.0 and chained.lr(54, 1.0) == pytest.approx(0.55, abs=1e-15)


def test_cosine_lr_function_is_cosine_schedule():
    schedule = CosineLR(30, final_lr=1e-3)
    for step in range(35):
        assert cosine_lr(step, 30, 0.2, 1e-3) == schedule.lr(step, 0.2)
    assert cosine_lr(-3, 30, 0.2, 1e-3) == 0.2


@pytest.mark.parametrize(("make", "error", "message"), [
    (lambda: StepLR(0), ValueError, "StepLR: expected step_size to be an int >= 1, got 0"),
    (lambda: StepLR(2.5), ValueError, "StepLR: expected step_size to be an int >= 1, got 2.5"),
    (lambda: StepLR(3, gamma=0.0), ValueError, "StepLR: expected gamma > 0, got 0.0"),
    (lambda: CosineLR(0), ValueError, "CosineLR: expected total_steps to be an int >= 1, got 0"),
    (lambda: CosineLR(10, final_lr=-1e-3), ValueError, "CosineLR: expected final_lr >= 0, got -0.001"),
    (lambda: LinearWarmup(5, start_factor=0.0), ValueError, r"expected start_factor in \(0, 1\], got 0.0"),
    (lambda: LinearWarmup(-1), ValueError, "LinearWarmup: expected warmup_steps to be an int >= 1, got -1"),
    (lambda: LinearWarmup(5, then=0.1), TypeError, "LinearWarmup: expected then to be a Schedule or None, got float"),
    (lambda: StepLR(3).lr(-1, 0.1), ValueError, r"StepLR.lr: expected step to be an int >= 0, got -1"),
])
def test_bad_schedules_raise(make, error, message):
    with pytest.raises(error, match=message):
        make()
