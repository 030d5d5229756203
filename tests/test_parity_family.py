"""Parity of every recurrent family (LSTM, GRU, RNN) with ``torch.nn``, over every option of the shared stack.

float64 on both sides. For each case the same random weights, input, initial states and upstream gradients
(random normal, never all-ones) go through bptt and through torch; variable lengths go through torch as
``pack_padded_sequence(..., enforce_sorted=False)`` / ``pad_packed_sequence(..., total_length=T)``. Compared:
the output, every final state, ``dx``, every initial-state gradient and every parameter gradient, each as
``max|a - b| / max(max|b|, tiny) <= 1e-10``. Padded positions of ``out`` and ``dx`` must be exactly zero.

Two drivers: hypothesis draws random sizes and options per family, and a deterministic sweep covers the full
cross product of the layout options with small fixed sizes, so that every combination is certainly run.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from errors import rel_err
from hypothesis import given, settings
from hypothesis import strategies as st

from bptt import GRU, LSTM, RNN

torch = pytest.importorskip("torch")

TOL = 1e-10
FAMILIES = ("LSTM", "GRU", "RNN")
BPTT_CLASS = {"LSTM": LSTM, "GRU": GRU, "RNN": RNN}
TORCH_CLASS = {"LSTM": torch.nn.LSTM, "GRU": torch.nn.GRU, "RNN": torch.nn.RNN}


# ---------------------------------------------------------------------------------------------------------
# One case through both implementations
# ---------------------------------------------------------------------------------------------------------

def options(case: dict) -> dict:
    """Constructor keywords shared by bptt and torch for ``case``."""
    kwargs = {"num_layers": case["L"], "bias": case["bias"], "batch_first": case["batch_first"],
              "bidirectional": case["bidirectional"]}
    if case["family"] == "LSTM":
        kwargs["proj_size"] = case["proj"]
    if case["family"] == "RNN":
        kwargs["nonlinearity"] = case["nonlinearity"]
    return kwargs


def shapes(case: dict) -> dict[str, tuple[int, ...]]:
    """User-facing shapes of x, out and each state for ``case``."""
    T, N, I, H, L = case["T"], case["N"], case["I"], case["H"], case["L"]
    D = 2 if case["bidirectional"] else 1
    S = case["proj"] or H
    lead = () if case["unbatched"] else (N,)

    def seq(features: int) -> tuple[int, ...]:
        if case["unbatched"]:
            return (T, features)
        return (N, T, features) if case["batch_first"] else (T, N, features)

    result = {"x": seq(I), "out": seq(D * S), "h": (L * D, *lead, S)}
    if case["family"] == "LSTM":
        result["c"] = (L * D, *lead, H)
    return result


def make_arrays(case: dict) -> dict:
    """Weights (PyTorch names, from bptt's own parameter list), x, initial states and upstream gradients."""
    rng = np.random.default_rng(case["seed"])
    template = BPTT_CLASS[case["family"]](case["I"], case["H"], **options(case), rng=0)
    weights = {name: rng.uniform(-0.8, 0.8, value.shape) for name, value in template.params.items()}
    shape = shapes(case)
    states = [k for k in ("h", "c") if k in shape]
    arrays = {"weights": weights, "x": rng.standard_normal(shape["x"]), "dout": rng.standard_normal(shape["out"])}
    for k in states:
        arrays[f"{k}0"] = rng.standard_normal(shape[k])
        arrays[f"d{k}_n"] = rng.standard_normal(shape[k])
    return arrays


def _pack(states: list):
    return tuple(states) if len(states) > 1 else states[0]


def run_bptt(case: dict, arrays: dict) -> dict:
    layer = BPTT_CLASS[case["family"]](case["I"], case["H"], **options(case), rng=1)
    layer.load_state_dict(arrays["weights"])
    names = ["h", "c"] if case["family"] == "LSTM" else ["h"]
    hx = _pack([arrays[f"{k}0"] for k in names]) if case["with_hx"] else None
    dhx = _pack([arrays[f"d{k}_n"] for k in names]) if case["with_dhx"] else None
    out, finals = layer.forward(arrays["x"], hx, lengths=case["lengths"])
    dx, dinitials = layer.backward(arrays["dout"], dhx)
    finals = list(finals) if case["family"] == "LSTM" else [finals]
    dinitials = list(dinitials) if case["family"] == "LSTM" else [dinitials]
    result = {"out": out, "dx": dx}
    for k, final, dinitial in zip(names, finals, dinitials, strict=True):
        result[f"{k}_n"] = final
        result[f"d{k}0"] = dinitial
    result.update({f"grad {name}": grad for name, grad in layer.grads.items()})
    return result


def run_torch(case: dict, arrays: dict) -> dict:
    """The same case through torch; omitted states and state gradients are zeros, which is what torch assumes."""
    kwargs = options(case)
    if case["family"] == "LSTM" and not kwargs["proj_size"]:
        del kwargs["proj_size"]
    module = TORCH_CLASS[case["family"]](case["I"], case["H"], **kwargs, dtype=torch.float64)
    module.load_state_dict({k: torch.from_numpy(v) for k, v in arrays["weights"].items()})
    names = ["h", "c"] if case["family"] == "LSTM" else ["h"]

    def leaf(a):
        return torch.from_numpy(np.array(a)).requires_grad_(True)

    x = leaf(arrays["x"])
    initials = [leaf(arrays[f"{k}0"] if case["with_hx"] else np.zeros_like(arrays[f"{k}0"])) for k in names]
    hx = _pack(initials)
    if case["lengths"] is None:
        out, finals = module(x, hx)
    else:
        packed = torch.nn.utils.rnn.pack_padded_sequence(
            x, torch.as_tensor(case["lengths"], dtype=torch.int64), batch_first=case["batch_first"],
            enforce_sorted=False)
        packed_out, finals = module(packed, hx)
        out, _ = torch.nn.utils.rnn.pad_packed_sequence(packed_out, batch_first=case["batch_first"],
                                                        total_length=case["T"])
    finals = list(finals) if case["family"] == "LSTM" else [finals]
    upstream = [torch.from_numpy(arrays["dout"])]
    upstream += [torch.from_numpy(arrays[f"d{k}_n"] if case["with_dhx"] else np.zeros_like(arrays[f"d{k}_n"]))
                 for k in names]
    torch.autograd.backward([out, *finals], upstream)
    result = {"out": out, "dx": x.grad}
    for k, final, initial in zip(names, finals, initials, strict=True):
        result[f"{k}_n"] = final
        result[f"d{k}0"] = initial.grad
    result.update({f"grad {name}": p.grad for name, p in module.named_parameters()})
    return {name: value.detach().numpy() for name, value in result.items()}


def padded_mask(case: dict) -> np.ndarray | None:
    """Boolean mask of padded positions in the user's sequence layout ``(T, N)`` or ``(N, T)``."""
    if case["lengths"] is None:
        return None
    inactive = np.arange(case["T"])[:, None] >= np.asarray(case["lengths"])[None, :]   # (T, N)
    return inactive.T if case["batch_first"] else inactive


def parity_errors(case: dict) -> dict[str, float]:
    """Run ``case`` through both sides, assert parity, and return every relative error."""
    arrays = make_arrays(case)
    ours = run_bptt(case, arrays)
    theirs = run_torch(case, arrays)
    assert set(ours) == set(theirs), f"compared quantities differ: {sorted(set(ours) ^ set(theirs))}"
    errors = {}
    for name, expected in theirs.items():
        assert ours[name].dtype == np.float64, f"{name}: dtype {ours[name].dtype}"
        errors[name] = rel_err(ours[name], expected)
        assert errors[name] <= TOL, f"{name}: relative error {errors[name]:.3e} > {TOL:.0e} in {case}"
    padded = padded_mask(case)
    if padded is not None:
        assert padded.any() or min(case["lengths"]) == case["T"]
        assert not np.any(ours["out"][padded]), f"out is not zero at padded positions in {case}"
        assert not np.any(ours["dx"][padded]), f"dx is not zero at padded positions in {case}"
    return errors


# ---------------------------------------------------------------------------------------------------------
# Hypothesis: random sizes and options, per family
# ---------------------------------------------------------------------------------------------------------

@st.composite
def family_cases(draw, family: str) -> dict:
    T = draw(st.integers(1, 6))
    N = draw(st.integers(1, 4))
    I = draw(st.integers(1, 5))
    proj, nonlinearity = 0, "tanh"
    if family == "LSTM" and draw(st.booleans()):
        H = draw(st.integers(2, 5))
        proj = draw(st.integers(1, H - 1))
    else:
        H = draw(st.integers(1, 5))
    if family == "RNN":
        nonlinearity = draw(st.sampled_from(["tanh", "relu"]))
    # lengths: none; some sequence of full length T; or (T >= 2) every sequence shorter than T
    kinds = ["none", "reaching T"] + (["all shorter"] if T >= 2 else [])
    kind = draw(st.sampled_from(kinds))
    lengths = None
    if kind == "reaching T":
        lengths = draw(st.lists(st.integers(1, T), min_size=N, max_size=N))
        lengths[draw(st.integers(0, N - 1))] = T
    elif kind == "all shorter":
        lengths = draw(st.lists(st.integers(1, T - 1), min_size=N, max_size=N))
    return {
        "family": family, "T": T, "N": N, "I": I, "H": H, "L": draw(st.integers(1, 3)), "proj": proj,
        "nonlinearity": nonlinearity, "bias": draw(st.booleans()), "batch_first": draw(st.booleans()),
        "bidirectional": draw(st.booleans()), "lengths": lengths,
        "unbatched": draw(st.booleans()) if lengths is None else False,
        "with_hx": draw(st.booleans()), "with_dhx": draw(st.booleans()),
        "seed": draw(st.integers(0, 2**32 - 1)),
    }


@settings(max_examples=150, deadline=None)
@given(case=family_cases("LSTM"))
def test_lstm_matches_torch_random(case):
    parity_errors(case)


@settings(max_examples=150, deadline=None)
@given(case=family_cases("GRU"))
def test_gru_matches_torch_random(case):
    parity_errors(case)


@settings(max_examples=150, deadline=None)
@given(case=family_cases("RNN"))
def test_rnn_matches_torch_random(case):
    parity_errors(case)


# ---------------------------------------------------------------------------------------------------------
# Deterministic sweep: the full cross product of the options, small fixed sizes
# ---------------------------------------------------------------------------------------------------------

SWEEP_T, SWEEP_N, SWEEP_I, SWEEP_H = 4, 3, 2, 3
FAMILY_OPTIONS = {"LSTM": [{"proj": 0}, {"proj": 2}],
                  "GRU": [{}],
                  "RNN": [{"nonlinearity": "tanh"}, {"nonlinearity": "relu"}]}


def sweep_cases() -> list[dict]:
    """family x num_layers x bidirectional x batch_first x bias x lengths{None, given} x (proj | nonlinearity).

    "given" lengths are ``[4, 1, 2]`` (one sequence reaches T) with a bias and ``[3, 1, 2]`` (none does)
    without, so both kinds of lengths meet every other option too. States and state gradients are given."""
    cases = []
    for family, extras in FAMILY_OPTIONS.items():
        for extra, L, bidirectional, batch_first, bias, with_lengths in itertools.product(
                extras, (1, 2, 3), (False, True), (False, True), (False, True), (False, True)):
            lengths = ([SWEEP_T, 1, 2] if bias else [SWEEP_T - 1, 1, 2]) if with_lengths else None
            case = {"family": family, "T": SWEEP_T, "N": SWEEP_N, "I": SWEEP_I, "H": SWEEP_H, "L": L, "proj": 0,
                    "nonlinearity": "tanh", "bias": bias, "batch_first": batch_first,
                    "bidirectional": bidirectional, "lengths": lengths, "unbatched": False, "with_hx": True,
                    "with_dhx": True, "seed": len(cases)}
            case.update(extra)
            cases.append(case)
    return cases


SWEEP = sweep_cases()
# 3 layer counts x 2 directions x 2 layouts x 2 bias x 2 lengths = 48 per family option:
# LSTM proj_size {0, 2} + GRU + RNN {tanh, relu} = 5 family options.
SWEEP_COMBINATIONS = 48 * 5


def sweep_id(case: dict) -> str:
    extra = {"LSTM": f"proj{case['proj']}", "GRU": "", "RNN": case["nonlinearity"]}[case["family"]]
    return "-".join(filter(None, [case["family"], extra, f"L{case['L']}", "bi" if case["bidirectional"] else "uni",
                                  "bf" if case["batch_first"] else "tf", "bias" if case["bias"] else "nobias",
                                  "len" if case["lengths"] else "full"]))


@pytest.mark.parametrize("case", SWEEP, ids=sweep_id)
def test_sweep_matches_torch(case):
    parity_errors(case)


def test_sweep_covers_the_full_cross_product():
    keys = [(c["family"], c["proj"], c["nonlinearity"], c["L"], c["bidirectional"], c["batch_first"], c["bias"],
             c["lengths"] is not None) for c in SWEEP]
    assert len(keys) == len(set(keys)) == SWEEP_COMBINATIONS == 240
    assert len({sweep_id(c) for c in SWEEP}) == SWEEP_COMBINATIONS
    assert {k[0] for k in keys} == set(FAMILIES)
    given_lengths = [c["lengths"] for c in SWEEP if c["lengths"] is not None]
    assert any(max(lengths) == SWEEP_T for lengths in given_lengths)
    assert any(max(lengths) < SWEEP_T for lengths in given_lengths)
