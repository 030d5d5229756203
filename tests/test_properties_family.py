"""Properties of every recurrent family over random shapes and options: valid input never crashes and gives
finite results of the documented shapes; invalid input raises ValueError or TypeError with an
"expected ..., got ..." message, never another exception.

Sizes start at 1 (T, N, I, H), layers 1-3, every layout option, LSTM projections, variable lengths, unbatched
input, float32 and float64. Warnings are errors in this suite, so an overflow warning fails a case too.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bptt import GRU, LSTM, RNN

FAMILIES = {"LSTM": LSTM, "GRU": GRU, "RNN": RNN}
MESSAGE = r"expected .+, got "


@st.composite
def cases(draw) -> dict:
    """A family, sizes, options, a dtype and what to pass besides x."""
    family = draw(st.sampled_from(list(FAMILIES)))
    H = draw(st.integers(1, 4))
    unbatched = draw(st.booleans())
    return {
        "family": family, "T": draw(st.integers(1, 5)), "N": 1 if unbatched else draw(st.integers(1, 3)),
        "I": draw(st.integers(1, 4)), "H": H, "L": draw(st.integers(1, 3)),
        "bidirectional": draw(st.booleans()), "batch_first": draw(st.booleans()), "bias": draw(st.booleans()),
        "proj": draw(st.integers(0, H - 1)) if family == "LSTM" else 0,
        "nonlinearity": draw(st.sampled_from(["tanh", "relu"])) if family == "RNN" else None,
        "dropout": draw(st.sampled_from([0.0, 0.4])), "unbatched": unbatched,
        "lengths": not unbatched and draw(st.booleans()), "with_hx": draw(st.booleans()),
        "with_dhx": draw(st.booleans()), "dtype": draw(st.sampled_from([np.float64, np.float32])),
        "scale": draw(st.sampled_from([1.0, 1e3])), "seed": draw(st.integers(0, 2**32 - 1)),
    }


def make_layer(case: dict):
    options = {"num_layers": case["L"], "bias": case["bias"], "batch_first": case["batch_first"],
               "dropout": case["dropout"], "bidirectional": case["bidirectional"], "dtype": case["dtype"],
               "rng": case["seed"]}
    if case["family"] == "LSTM":
        options["proj_size"] = case["proj"]
    if case["family"] == "RNN":
        options["nonlinearity"] = case["nonlinearity"]
    return FAMILIES[case["family"]](case["I"], case["H"], **options)


def documented_shapes(case: dict) -> dict[str, tuple[int, ...]]:
    """x, out and each state as the layer's docstring gives them."""
    T, N, I, H, L = case["T"], case["N"], case["I"], case["H"], case["L"]
    D, S = 2 if case["bidirectional"] else 1, case["proj"] or H

    def seq(features: int) -> tuple[int, ...]:
        if case["unbatched"]:
            return (T, features)
        return (N, T, features) if case["batch_first"] else (T, N, features)

    lead = () if case["unbatched"] else (N,)
    states = [(L * D, *lead, S)] + ([(L * D, *lead, H)] if case["family"] == "LSTM" else [])
    return {"x": seq(I), "out": seq(D * S), "states": states}


def pack(states: list[np.ndarray], family: str):
    return tuple(states) if family == "LSTM" else states[0]


def unpack(state, family: str) -> list[np.ndarray]:
    return list(state) if family == "LSTM" else [state]


def valid_inputs(case: dict) -> dict:
    rng = np.random.default_rng(case["seed"])
    shapes = documented_shapes(case)
    dtype = case["dtype"]
    inputs = {"x": (case["scale"] * rng.standard_normal(shapes["x"])).astype(dtype),
              "dout": rng.standard_normal(shapes["out"]).astype(dtype), "hx": None, "dhx": None, "lengths": None}
    if case["with_hx"]:
        inputs["hx"] = pack([rng.standard_normal(s).astype(dtype) for s in shapes["states"]], case["family"])
    if case["with_dhx"]:
        inputs["dhx"] = pack([rng.standard_normal(s).astype(dtype) for s in shapes["states"]], case["family"])
    if case["lengths"]:
        inputs["lengths"] = rng.integers(1, case["T"] + 1, size=case["N"])
    return inputs


# ---------------------------------------------------------------------------------------------------------
# Valid input
# ---------------------------------------------------------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(case=cases())
def test_valid_input_gives_finite_results_of_the_documented_shapes(case):
    layer, a, shapes = make_layer(case), valid_inputs(case), documented_shapes(case)
    out, state = layer(a["x"], a["hx"], a["lengths"])
    dx, dstate = layer.backward(a["dout"], a["dhx"])
    finals, initials = unpack(state, case["family"]), unpack(dstate, case["family"])
    results = {"out": out, "dx": dx, **{f"final {k}": s for k, s in enumerate(finals)},
               **{f"initial grad {k}": s for k, s in enumerate(initials)},
               **{f"grad {name}": g for name, g in layer.grads.items()}}
    for name, value in results.items():
        assert value.dtype == case["dtype"], name
        assert np.isfinite(value).all(), name
    assert out.shape == shapes["out"] and dx.shape == shapes["x"]
    assert [s.shape for s in finals] == [s.shape for s in initials] == shapes["states"]
    for name, param in layer.params.items():
        assert layer.grads[name].shape == param.shape, name
    if a["lengths"] is not None:
        time_major = out.swapaxes(0, 1) if case["batch_first"] else out
        padded = np.arange(case["T"])[:, None] >= a["lengths"]
        assert not time_major[padded].any(), "padded steps of out are not zero"


# ---------------------------------------------------------------------------------------------------------
# Invalid input
# ---------------------------------------------------------------------------------------------------------

def wrong_shape(shape: tuple[int, ...], draw) -> tuple[int, ...]:
    """``shape`` with one size changed to another size >= 1."""
    axis = draw(st.integers(0, len(shape) - 1))
    size = draw(st.integers(1, 6).filter(lambda s: s != shape[axis]))
    return shape[:axis] + (size,) + shape[axis + 1:]


BAD_FORWARD = ["x ndim", "x features", "x non-finite", "x dtype", "x ragged", "x empty", "state shape",
               "state form", "state non-finite", "lengths range", "lengths count", "lengths dtype",
               "lengths unbatched"]
BAD_BACKWARD = ["dout shape", "dout non-finite", "dout dtype", "dhx shape"]


def break_forward(kind: str, case: dict, a: dict, draw) -> dict:
    """The forward arguments of ``a`` with one of them made invalid in the way ``kind`` names."""
    x, hx, lengths = a["x"], a["hx"], a["lengths"]
    shapes = documented_shapes(case)
    if kind == "x ndim":
        x = x.reshape(-1) if draw(st.booleans()) else x[None, ..., None]
    elif kind == "x features":
        x = np.zeros(shapes["x"][:-1] + (case["I"] + draw(st.integers(1, 3)),))
    elif kind == "x non-finite":
        x = x.copy()
        x.flat[draw(st.integers(0, x.size - 1))] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    elif kind == "x dtype":
        x = draw(st.sampled_from([x.astype(np.complex128), x.astype(object), x.astype(str),
                                  np.zeros(x.shape, dtype="datetime64[s]")]))
    elif kind == "x ragged":
        x = [np.zeros(shapes["x"][1:]), np.zeros(shapes["x"][1:-1] + (case["I"] + 1,))]
    elif kind == "x empty":
        x = np.zeros((0,) + shapes["x"][1:])
    elif kind == "state shape":
        states = [np.zeros(s) for s in shapes["states"]]
        which = draw(st.integers(0, len(states) - 1))
        states[which] = np.zeros(wrong_shape(shapes["states"][which], draw))
        hx = pack(states, case["family"])
    elif kind == "state form":     # an LSTM takes a pair, the others one array
        states = [np.zeros(s) for s in shapes["states"]]
        hx = states[0] if case["family"] == "LSTM" else tuple(states * 2)
    elif kind == "state non-finite":
        states = [np.zeros(s) for s in shapes["states"]]
        states[-1].flat[0] = np.nan
        hx = pack(states, case["family"])
    elif kind == "lengths range":
        lengths = np.full(case["N"], draw(st.sampled_from([0, -1, case["T"] + 1])))
    elif kind == "lengths count":
        lengths = np.ones(case["N"] + draw(st.integers(1, 2)), dtype=int)
    elif kind == "lengths dtype":
        lengths = draw(st.sampled_from([np.ones(case["N"]), np.ones(case["N"], dtype=bool),
                                        np.array(["1"] * case["N"])]))
    elif kind == "lengths unbatched":
        x, lengths = np.zeros((case["T"], case["I"])), np.ones(1, dtype=int)
    return {"x": x, "hx": hx, "lengths": lengths}


@settings(max_examples=400, deadline=None)
@given(case=cases(), kind=st.sampled_from(BAD_FORWARD), data=st.data())
def test_invalid_forward_input_raises_value_or_type_error(case, kind, data):
    if kind.startswith("lengths") and case["unbatched"] and kind != "lengths unbatched":
        kind = "lengths unbatched"      # an unbatched x takes no lengths at all
    layer = make_layer(case)
    arguments = break_forward(kind, case, valid_inputs(case), data.draw)
    with pytest.raises((ValueError, TypeError), match=MESSAGE):
        layer(arguments["x"], arguments["hx"], arguments["lengths"])


@settings(max_examples=200, deadline=None)
@given(case=cases(), kind=st.sampled_from(BAD_BACKWARD), data=st.data())
def test_invalid_backward_input_raises_value_or_type_error(case, kind, data):
    layer, a, shapes = make_layer(case), valid_inputs(case), documented_shapes(case)
    layer(a["x"], a["hx"], a["lengths"])
    dout, dhx = a["dout"], a["dhx"]
    if kind == "dout shape":
        dout = np.zeros(wrong_shape(shapes["out"], data.draw))
    elif kind == "dout non-finite":
        dout = dout.copy()
        dout.flat[data.draw(st.integers(0, dout.size - 1))] = np.nan
    elif kind == "dout dtype":
        dout = data.draw(st.sampled_from([dout.astype(np.complex64), dout.astype(object), dout.astype(str)]))
    else:
        states = [np.zeros(s) for s in shapes["states"]]
        which = data.draw(st.integers(0, len(states) - 1))
        states[which] = np.zeros(wrong_shape(shapes["states"][which], data.draw))
        dhx = pack(states, case["family"])
    with pytest.raises((ValueError, TypeError), match=MESSAGE):
        layer.backward(dout, dhx)


def test_rnn_out_is_its_cache_read_only_and_a_copy_can_be_changed():
    rnn = RNN(3, 4, rng=0)
    x = np.random.default_rng(0).standard_normal((5, 2, 3))
    out, _ = rnn(x)
    assert np.shares_memory(out, rnn._tape.caches[0].h) and not out.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        out[0] = 1.0
    dx = rnn.backward(np.ones_like(out))[0]
    changed = out.copy()
    changed += 1.0                                  # a copy is the caller's own
    rnn.zero_grad()
    assert np.array_equal(rnn(x)[0], out) and np.array_equal(rnn.backward(np.ones_like(out))[0], dx)


def test_rnn_out_with_padding_is_a_writable_copy_with_zeros_after_each_length():
    rnn = RNN(3, 4, rng=0)
    out, _ = rnn(np.random.default_rng(0).standard_normal((5, 2, 3)), lengths=[5, 2])
    assert out.flags.writeable and not np.shares_memory(out, rnn._tape.caches[0].h)
    assert np.all(out[2:, 1] == 0.0) and np.all(out[:2, 1] != 0.0)
