"""Each update against its closed form and against torch.optim on the same gradient sequence."""

import math

import numpy as np
import pytest

from bptt.optim import Adam, clip_grad_norm, cosine_lr


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
