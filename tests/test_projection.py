"""bptt.layers.recurrent.project_inputs: the same W x_t + b whichever way the batch size makes it take the product
(an outer product for one input feature, one GEMM per step for wide batches, row-major chunks otherwise)."""

from __future__ import annotations

import numpy as np
import pytest

from bptt.layers.recurrent import WIDE_BATCH, project_inputs


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("I", [1, 3])
@pytest.mark.parametrize("N", [1, 5, WIDE_BATCH - 1, WIDE_BATCH, WIDE_BATCH + 7])
def test_project_inputs_gives_w_x_plus_b_for_every_step(N, I, bias, dtype):
    rng = np.random.default_rng(100 * N + I)
    T, R = 450, 12                        # N = 5: chunks of 205 steps, the last one partial
    x = rng.standard_normal((T, N, I)).astype(dtype)
    weight = rng.standard_normal((R, I)).astype(dtype)
    b = rng.standard_normal(R).astype(dtype) if bias else None
    expected = np.einsum("ri,tni->trn", weight.astype(np.float64), x.astype(np.float64))
    if bias:
        expected += b.astype(np.float64)[:, None]
    got = project_inputs(weight, x, b)
    assert got.shape == (T, R, N) and got.dtype == dtype and got.flags.c_contiguous
    tolerance = 1e-5 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(got, expected, rtol=tolerance, atol=tolerance)
