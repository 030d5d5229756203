"""The textbook attention (bptt.reference.attention) without torch: central differences agree with every
gradient for both scores, padded source positions get no weight and no gradient, backward only reads its
cache, and float32 stays float32. Parity with torch is in test_reference_attention_torch.py."""

from __future__ import annotations

import numpy as np
import pytest

from bptt.reference.attention import ADDITIVE, GENERAL, attention_step_backward, attention_step_forward


def build(score: str, S: int, N: int, K: int, H: int, seed: int = 0,
          dtype: type = np.float64) -> tuple[dict, dict]:
    """Random params and inputs: ``enc``, ``h``, a mask of padding (row n has length S - n % S, at least 1)
    and the upstream gradient ``da`` (never all ones)."""
    rng = np.random.default_rng(seed)
    shapes = {"att_projection.weight": (H, K), "attention.key.weight": (H, K),
              "attention.query.weight": (H, H), "attention.v.weight": (1, H)}
    names = GENERAL if score == "general" else ADDITIVE
    params = {name: rng.normal(size=shapes[name]).astype(dtype) for name in names}
    lengths = S - np.arange(N) % S
    inputs = {"enc": rng.normal(size=(S, N, K)).astype(dtype), "h": rng.normal(size=(N, H)).astype(dtype),
              "mask": np.arange(S)[:, None] >= lengths[None, :], "da": rng.normal(size=(N, K)).astype(dtype)}
    return params, inputs


def loss(params: dict, a: dict) -> float:
    """The scalar whose gradients the backward step computes: sum(a da)."""
    return float(np.sum(attention_step_forward(params, a["enc"], a["h"], a["mask"])[0] * a["da"]))


def numerical_gradients(params: dict, a: dict, eps: float = 1e-6) -> dict[str, np.ndarray]:
    """Central differences of :func:`loss` for every entry of the params, ``enc`` and ``h``."""
    numeric = {}
    for name, value in {**params, "enc": a["enc"], "h": a["h"]}.items():
        numeric[name] = np.zeros_like(value)
        for index in np.ndindex(value.shape):
            old = value[index]
            value[index] = old + eps
            plus = loss(params, a)
            value[index] = old - eps
            minus = loss(params, a)
            value[index] = old
            numeric[name][index] = (plus - minus) / (2 * eps)
    return numeric


def analytic_gradients(params: dict, a: dict) -> dict[str, np.ndarray]:
    _, _, cache = attention_step_forward(params, a["enc"], a["h"], a["mask"])
    denc, dh, grads = attention_step_backward(params, cache, a["da"])
    return {**grads, "enc": denc, "h": dh}


@pytest.mark.parametrize(("S", "N"), [(5, 3), (1, 2), (4, 1), (1, 1)], ids=str)
@pytest.mark.parametrize("score", ["general", "additive"])
def test_every_gradient_agrees_with_central_differences(score, S, N):
    params, a = build(score, S, N, K=4, H=3, seed=S * 10 + N)
    analytic, numeric = analytic_gradients(params, a), numerical_gradients(params, a)
    assert set(analytic) == set(numeric)
    for name, value in numeric.items():
        assert analytic[name].shape == value.shape, name
        np.testing.assert_allclose(analytic[name], value, rtol=1e-6, atol=1e-8, err_msg=f"{score}: d{name}")


@pytest.mark.parametrize("name", ["enc", "h", "attention.query.weight"])
def test_the_numerical_check_catches_a_wrong_gradient(name):
    """The check above can fail: one entry off by 1 % is caught."""
    params, a = build("additive", 4, 3, K=4, H=3)
    analytic, numeric = analytic_gradients(params, a), numerical_gradients(params, a)
    analytic[name][(0,) * analytic[name].ndim] *= 1.01
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(analytic[name], numeric[name], rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("score", ["general", "additive"])
def test_padded_positions_get_no_weight_and_no_gradient(score):
    params, a = build(score, 6, 4, K=5, H=3, seed=1)
    context, alpha, _ = attention_step_forward(params, a["enc"], a["h"], a["mask"])
    assert a["mask"].any() and (alpha[a["mask"]] == 0).all()
    np.testing.assert_allclose(alpha.sum(axis=0), 1.0, rtol=1e-15)
    assert (analytic_gradients(params, a)["enc"][a["mask"]] == 0).all()
    changed = a["enc"].copy()
    changed[a["mask"]] = 1e6                                       # whatever padding holds
    np.testing.assert_array_equal(attention_step_forward(params, changed, a["h"], a["mask"])[0], context)


@pytest.mark.parametrize("score", ["general", "additive"])
def test_backward_only_reads_its_cache_and_twice_gives_identical_results(score):
    params, a = build(score, 5, 3, K=4, H=3)
    _, _, cache = attention_step_forward(params, a["enc"], a["h"], a["mask"])
    saved = [None if field is None else field.copy() for field in cache]
    first = attention_step_backward(params, cache, a["da"])
    second = attention_step_backward(params, cache, a["da"])
    for field, kept in zip(cache, saved, strict=True):
        assert (field is None and kept is None) or np.array_equal(field, kept)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    for name in first[2]:
        np.testing.assert_array_equal(first[2][name], second[2][name])


@pytest.mark.parametrize("score", ["general", "additive"])
def test_zero_upstream_gives_zero_gradients_and_float32_stays_float32(score):
    params, a = build(score, 4, 2, K=4, H=3, dtype=np.float32)
    context, alpha, cache = attention_step_forward(params, a["enc"], a["h"], a["mask"])
    assert context.dtype == alpha.dtype == np.float32
    denc, dh, grads = attention_step_backward(params, cache, np.zeros_like(a["da"]))
    assert denc.dtype == dh.dtype == np.float32 and all(g.dtype == np.float32 for g in grads.values())
    assert not denc.any() and not dh.any() and not any(g.any() for g in grads.values())
