"""Random LSTM configurations shared by the parity and property tests."""

from __future__ import annotations

from hypothesis import strategies as st


@st.composite
def lstm_cases(draw, max_steps: int = 8, max_batch: int = 4, max_features: int = 6) -> dict:
    """Sizes T, N, I, H, L and every layout option, plus a seed for the arrays."""
    return {
        "T": draw(st.integers(1, max_steps)),
        "N": draw(st.integers(1, max_batch)),
        "I": draw(st.integers(1, max_features)),
        "H": draw(st.integers(1, max_features)),
        "L": draw(st.integers(1, 3)),
        "bias": draw(st.booleans()),
        "batch_first": draw(st.booleans()),
        "unbatched": draw(st.booleans()),
        "with_hx": draw(st.booleans()),
        "with_dhx": draw(st.booleans()),
        "seed": draw(st.integers(0, 2**32 - 1)),
    }


def user_shapes(case: dict) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """The shapes of x, of each state and of out in the user-facing layout of ``case``."""
    T, N, I, H, L = case["T"], case["N"], case["I"], case["H"], case["L"]
    if case["unbatched"]:
        return (T, I), (L, H), (T, H)
    if case["batch_first"]:
        return (N, T, I), (L, N, H), (N, T, H)
    return (T, N, I), (L, N, H), (T, N, H)
