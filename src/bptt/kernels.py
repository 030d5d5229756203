"""Optional compiled kernels: a step's elementwise work fused in one loop (numba, ``pip install "bptt[fast]"``).

The NumPy code in :mod:`bptt.lstm` is the reference and stays the path used without numba. A kernel here does
the same operations in the same order, element by element, so it gives the same numbers (numba does not
contract or reorder floating-point operations unless asked to); it only saves the dozen NumPy calls, each
with its own pass over memory, that the reference spends on one step. numba is imported, and the kernel
compiled, at the first backward pass that uses it; ``BPTT_KERNELS=numpy`` in the environment keeps
the NumPy path even where numba is installed.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable


def _lstm_backward_cell(up, dh_recurrent, s, tanh_c, c_prev, dc, d, one):
    """One LSTM backward step, (L6) to (L3), for every hidden unit j and sequence n; the arrays are those of
    :func:`bptt.lstm.lstm_backward` at step t: ``up`` dL/dout_t ``(H, N)``, ``s`` the activated gates
    ``(4H, N)`` in the internal order i, f, o, g, ``c_prev`` c_{t-1}; ``dc`` carries dL/dc backwards and ``d``
    receives dL/dz_t. ``one`` is 1 in the working dtype."""
    H, N = dc.shape
    for j in range(H):
        for n in range(N):
            dh = up[j, n] + dh_recurrent[j, n]            # (L6) dh_t = dL/dout_t + W_hh^T dz_{t+1}
            tc = tanh_c[j, n]
            i, f, o, g = s[j, n], s[H + j, n], s[2 * H + j, n], s[3 * H + j, n]
            do = dh * tc                                   # (L5) m = o tanh(c): dm/do = tanh c
            through_tanh = dh * o                          # (L5) dm/dtanh(c) = o, then 1 - tanh^2 c:
            carried = dc[j, n] + through_tanh
            through_tanh = through_tanh * tc
            through_tanh = through_tanh * tc
            carried = carried - through_tanh
            di = carried * g                               # (L4) c = f c_prev + i g
            df = carried * c_prev[j, n]
            dg = carried * i
            dc[j, n] = carried * f                         # (L4) dL/dc_{t-1} through c
            d[j, n] = di * ((one - i) * i)                 # (L3) sigmoid' = s (1 - s)
            d[H + j, n] = df * ((one - f) * f)
            d[2 * H + j, n] = do * ((one - o) * o)
            d[3 * H + j, n] = dg * (one - g * g)           # (L3) tanh' = 1 - g^2


@functools.cache
def _compiled(kernel: Callable) -> Callable:
    """``kernel`` compiled by numba (at its first call for each dtype); ImportError without numba."""
    import numba

    return numba.njit(kernel)


def lstm_backward_cell() -> Callable | None:
    """The compiled :func:`_lstm_backward_cell`, or None without numba or with ``BPTT_KERNELS=numpy``."""
    if os.environ.get("BPTT_KERNELS", "").lower() == "numpy":
        return None
    try:
        return _compiled(_lstm_backward_cell)
    except ImportError:
        return None
