"""The textbook attention (bptt.reference.attention) against the same step written with torch.nn.Linear
modules and autograd: the context, the weights and every gradient, on random shapes and masks, both scores,
in float64 (to round-off) and float32. The torch modules carry the parameter names Seq2Seq's state dict uses."""

from __future__ import annotations

import numpy as np
import pytest
from errors import rel_err
from hypothesis import given, settings
from hypothesis import strategies as st

from bptt.reference.attention import attention_step_backward, attention_step_forward

torch = pytest.importorskip("torch")

FLOAT64_TOLERANCE = 1e-10
FLOAT32_TOLERANCE = 1e-5


class TorchAttention(torch.nn.Module):
    """One decoder step's attention in torch: general (att_projection) or additive (attention.key, .query, .v)."""

    def __init__(self, score: str, K: int, H: int):
        super().__init__()
        self.score = score
        if score == "general":
            self.att_projection = torch.nn.Linear(K, H, bias=False)
        else:
            self.attention = torch.nn.ModuleDict({"key": torch.nn.Linear(K, H, bias=False),
                                                  "query": torch.nn.Linear(H, H, bias=False),
                                                  "v": torch.nn.Linear(H, 1, bias=False)})

    def forward(self, enc, h, mask):
        if self.score == "general":
            scores = (self.att_projection(enc) * h).sum(-1)                              # (S, N)
        else:
            keys = self.attention["key"](enc)
            scores = self.attention["v"](torch.tanh(keys + self.attention["query"](h))).squeeze(-1)
        alpha = torch.softmax(scores.masked_fill(mask, float("-inf")), dim=0)
        return (alpha.unsqueeze(-1) * enc).sum(0), alpha


def compare(score: str, S: int, N: int, K: int, H: int, seed: int, dtype: type = np.float64) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    module = TorchAttention(score, K, H).double() if dtype == np.float64 else TorchAttention(score, K, H).float()
    scale = rng.uniform(0.2, 1.5)                               # from flat weights to peaked ones
    params = {name: (scale * rng.standard_normal(tuple(p.shape))).astype(dtype)
              for name, p in module.named_parameters()}
    module.load_state_dict({name: torch.from_numpy(value) for name, value in params.items()})
    lengths = rng.integers(1, S + 1, size=N)
    mask = np.arange(S)[:, None] >= lengths[None, :]
    enc, h, da = (rng.standard_normal(shape).astype(dtype) for shape in ((S, N, K), (N, H), (N, K)))

    a, alpha, cache = attention_step_forward(params, enc, h, mask)
    denc, dh, grads = attention_step_backward(params, cache, da)
    assert set(grads) == set(params)

    tenc, th = torch.from_numpy(enc).requires_grad_(), torch.from_numpy(h).requires_grad_()
    ta, talpha = module(tenc, th, torch.from_numpy(mask))
    (ta * torch.from_numpy(da)).sum().backward()
    # The additive score's query side, dh and dW_q, goes through sum_j ds_j, which cancels: sum_j de_j = 0 (A3).
    # Where the slopes 1 - u_j^2 are nearly equal it falls to the round-off of its terms, so both are measured
    # on the scale of those terms, which the key gradient, sum_j ds_j^T enc_j, has without the cancellation.
    floor = float(np.abs(grads["attention.key.weight"]).max()) if score == "additive" else 0.0
    errors = {"a": rel_err(a, ta.detach().numpy(), same_dtype=True),
              "alpha": rel_err(alpha, talpha.detach().numpy(), same_dtype=True),
              "denc": rel_err(denc, tenc.grad.numpy(), same_dtype=True),
              "dh": rel_err(dh, th.grad.numpy(), floor, same_dtype=True)}
    for name, p in module.named_parameters():
        errors[f"d{name}"] = rel_err(grads[name], p.grad.numpy(), floor if "query" in name else 0.0,
                                     same_dtype=True)
    return errors


shapes = st.tuples(st.integers(1, 7), st.integers(1, 4), st.integers(1, 6), st.integers(1, 5), st.integers(0, 10**6))


@settings(max_examples=25, deadline=None)
@given(score=st.sampled_from(["general", "additive"]), shape=shapes)
def test_float64_equals_torch_to_round_off(score, shape):
    errors = compare(score, *shape)
    assert max(errors.values()) <= FLOAT64_TOLERANCE, errors


@pytest.mark.parametrize("score", ["general", "additive"])
def test_float32_equals_torch_to_float32_round_off(score):
    errors = compare(score, 6, 3, 8, 5, seed=1, dtype=np.float32)
    assert max(errors.values()) <= FLOAT32_TOLERANCE, errors
