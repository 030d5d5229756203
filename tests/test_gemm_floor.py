"""bptt.perf.gemm_floor: the floor makes the GEMMs of a pass, no more and no fewer (their FLOPs are the pass's, over
every family, chunking and batch width), in the layout of its family, and runs them."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from bptt import GRU, LSTM, RNN
from bptt.perf.gemm_floor import GemmFloor

FAMILIES = {"lstm": (LSTM, 4), "gru": (GRU, 3), "rnn": (RNN, 1)}


@settings(max_examples=60, deadline=None)
@given(family=st.sampled_from(sorted(FAMILIES)), T=st.integers(1, 40), N=st.integers(1, 40), I=st.integers(1, 6),
       H=st.integers(1, 6), bias=st.booleans(), train=st.booleans(), dtype=st.sampled_from([np.float32, np.float64]))
def test_the_floor_makes_the_gemm_flops_of_the_pass(family, T, N, I, H, bias, train, dtype):
    layer_class, gates = FAMILIES[family]
    x = np.random.default_rng(0).standard_normal((T, N, I)).astype(dtype)
    floor = GemmFloor(family, layer_class(I, H, bias=bias, dtype=dtype, rng=0), x, train)
    floor()
    assert floor.flops() == (6 if train else 2) * gates * T * N * H * (I + H)


def test_the_recurrent_product_has_the_layout_of_its_family():
    T, N, I, H = 3, 5, 2, 4
    x = np.ones((T, N, I))
    a, b, out, repeats = GemmFloor("lstm", LSTM(I, H, rng=0), x, train=False).products[0]
    assert (a.shape, b.shape, out.shape, repeats) == ((4 * H, H), (H, N), (4 * H, N), T)    # feature-major
    a, b, out, repeats = GemmFloor("rnn", RNN(I, H, rng=0), x, train=False).products[0]
    assert (a.shape, b.shape, out.shape, repeats) == ((N, H), (H, H), (N, H), T)            # row-major
