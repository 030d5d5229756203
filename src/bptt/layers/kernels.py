"""Optional compiled kernels: a step's elementwise work fused in one loop (numba, ``pip install "bptt[fast]"``).

The NumPy path of :mod:`bptt.layers.lstm` and :mod:`bptt.layers.gru` stays the one used without numba. A
kernel here does the same operations in the same order, element by element, so it gives the same numbers
(numba does not contract or reorder floating-point operations unless asked to); it only saves the dozen
NumPy calls, each with its own pass over memory, that the NumPy path spends on one step. Both are held equal
to the textbook :mod:`bptt.reference` by ``tests/test_fast_vs_reference.py``. The arrays are C-contiguous
and every gate is one run of ``H N`` numbers, so a kernel reads them flat, in one loop that LLVM vectorises
behind a single aliasing check (a loop over rows and one over columns checked again for every row, and ran
2x slower at (H, N) = (128, 32)); only the GRU's gate kernel, which adds a bias per row, keeps the two
loops. The RNN's whole-sequence loops call BLAS for their per-step products (numba's ``np.dot``, which needs
SciPy and calls its BLAS, in the usual wheels a second OpenBLAS beside NumPy's), so they match the NumPy path to
rounding; they run with that BLAS on one thread (:func:`_single_threaded_blas`). numba is imported, and a kernel
compiled, at the first backward pass that uses it; ``BPTT_KERNELS=numpy`` in the environment keeps the NumPy path
even where numba is installed.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import math
import os
from collections.abc import Callable

import numpy as np


def _lstm_forward_cell(z, c_prev, c, half):
    """One LSTM forward step's (L3) and (L4) after the tanh: ``z`` ``(4H, N)`` holds tanh(z/2) for i, f, o and
    tanh(z) for g (internal order) and receives the gates; ``c`` receives f c_prev + i g. ``half`` is 0.5 in
    the working dtype."""
    M = c.size                                             # H N: each gate is M consecutive numbers of z
    z, c_prev, c = z.reshape(4 * M), c_prev.reshape(M), c.reshape(M)
    for k in range(M):
        i = z[k] * half + half                             # (L3) i, f, o = (1 + tanh(z/2)) / 2
        f = z[M + k] * half + half
        z[k], z[M + k] = i, f
        z[2 * M + k] = z[2 * M + k] * half + half
        c[k] = f * c_prev[k] + i * z[3 * M + k]            # (L4) c = f c_prev + i g


def _lstm_backward_cell(up, dh_recurrent, s, tanh_c, c_prev, dc, d, one):
    """One LSTM backward step, (L6) to (L3), for every hidden unit and sequence; the arrays are those of
    :func:`bptt.layers.lstm.lstm_backward` at step t: ``up`` dL/dout_t ``(H, N)``, ``s`` the activated gates
    ``(4H, N)`` in the internal order i, f, o, g, ``c_prev`` c_{t-1}; ``dc`` carries dL/dc backwards and ``d``
    receives dL/dz_t in PyTorch's order i, f, g, o, that of the weights. ``one`` is 1 in the working dtype."""
    M = dc.size                                            # H N: each gate is M consecutive numbers of s, d
    up, dh_recurrent, tanh_c, c_prev = up.reshape(M), dh_recurrent.reshape(M), tanh_c.reshape(M), c_prev.reshape(M)
    dc, s, d = dc.reshape(M), s.reshape(4 * M), d.reshape(4 * M)
    for k in range(M):
        dh = up[k] + dh_recurrent[k]                       # (L6) dh_t = dL/dout_t + W_hh^T dz_{t+1}
        tc = tanh_c[k]
        i, f, o, g = s[k], s[M + k], s[2 * M + k], s[3 * M + k]
        do = dh * tc                                       # (L5) m = o tanh(c): dm/do = tanh c
        through_tanh = dh * o                              # (L5) dm/dtanh(c) = o, then 1 - tanh^2 c:
        carried = dc[k] + through_tanh
        through_tanh = through_tanh * tc
        through_tanh = through_tanh * tc
        carried = carried - through_tanh
        di = carried * g                                   # (L4) c = f c_prev + i g
        df = carried * c_prev[k]
        dg = carried * i
        dc[k] = carried * f                                # (L4) dL/dc_{t-1} through c
        d[k] = di * ((one - i) * i)                        # (L3) sigmoid' = s (1 - s)
        d[M + k] = df * ((one - f) * f)
        d[2 * M + k] = dg * (one - g * g)                  # (L3) tanh' = 1 - g^2
        d[3 * M + k] = do * ((one - o) * o)


def _lstm_sequence_forward(gates, weight_hh_t, h, c, tanh_c, half):
    """(L2) to (L5) for every step in one compiled loop, for the small layers of :func:`bptt.layers.lstm.lstm_forward`
    whose per-step NumPy calls would cost more than their arithmetic. ``gates`` ``(T, 4H, N)`` holds the input
    projection in the internal order i, f, o, g with the sigmoid rows halved and receives the activated
    gates; ``weight_hh_t`` ``(H, 4H)`` is W_hh transposed, ordered and halved likewise (a row of it meets
    one state value, so the product runs along contiguous rows and vectorises); ``h``, ``c`` ``(T+1, H, N)``
    hold the initial states in step 0 and receive every step, ``tanh_c`` ``(T, H, N)`` too. ``tanh`` is the
    C library's, so the numbers match the NumPy path's to rounding, not bitwise."""
    T, G, N = gates.shape
    H = G // 4
    recurrent = np.empty(G, dtype=gates.dtype)
    for t in range(T):
        z, h_prev = gates[t], h[t]
        for n in range(N):
            recurrent[:] = 0
            for k in range(H):                             # (L2) W_hh h_{t-1}, a sum over k for every row
                state = h_prev[k, n]
                for r in range(G):
                    recurrent[r] += weight_hh_t[k, r] * state
            for r in range(G):
                z[r, n] = math.tanh(z[r, n] + recurrent[r])  # (L3) tanh(z/2) for i, f, o; g = tanh(z)
        for j in range(H):
            for n in range(N):
                i = z[j, n] * half + half                  # (L3) i, f, o = (1 + tanh(z/2)) / 2
                f = z[H + j, n] * half + half
                o = z[2 * H + j, n] * half + half
                z[j, n], z[H + j, n], z[2 * H + j, n] = i, f, o
                cell = f * c[t, j, n] + i * z[3 * H + j, n]  # (L4) c = f c_prev + i g
                c[t + 1, j, n] = cell
                tc = math.tanh(cell)
                tanh_c[t, j, n] = tc
                h[t + 1, j, n] = o * tc                    # (L5) h = o tanh(c)


def _lstm_sequence_backward(dout, dh, dc, gates, tanh_c, c, weight_hh, d_all, one):
    """(L6) to (L3), and the product W_hh^T dz of (L2), for every step from the last to the first in one
    compiled loop: the backward twin of :func:`_lstm_sequence_forward`. ``dout`` ``(T, N, H)`` is
    dL/dout as given; ``dh``, ``dc`` ``(H, N)`` hold dL/dh_T, dL/dc_T and receive dL/dh_0, dL/dc_0;
    ``gates``, ``tanh_c``, ``c`` are the forward's; ``weight_hh`` ``(4H, H)`` is PyTorch's, rows i, f, g, o,
    unscaled; ``d_all`` ``(T, 4H, N)`` receives every dL/dz_t in that order, for the weight gradients."""
    T, G, N = gates.shape
    H = G // 4
    for t in range(T - 1, -1, -1):
        s, d = gates[t], d_all[t]
        for j in range(H):
            for n in range(N):
                dh_t = dout[t, n, j] + dh[j, n]            # (L6) dh_t = dL/dout_t + W_hh^T dz_{t+1}
                tc = tanh_c[t, j, n]
                i, f, o, g = s[j, n], s[H + j, n], s[2 * H + j, n], s[3 * H + j, n]
                do = dh_t * tc                             # (L5) h = o tanh(c)
                carried = dc[j, n] + dh_t * o * (one - tc * tc)
                dc[j, n] = carried * f                     # (L4) c = f c_prev + i g: dL/dc_{t-1}
                d[j, n] = carried * g * ((one - i) * i)    # (L3) sigmoid' = s (1 - s); rows i, f, g, o
                d[H + j, n] = carried * c[t, j, n] * ((one - f) * f)
                d[2 * H + j, n] = carried * i * (one - g * g)  # (L3) tanh' = 1 - g^2
                d[3 * H + j, n] = do * ((one - o) * o)
        for n in range(N):                                 # (L2) dL/dh_{t-1} gets W_hh^T dz_t
            dh[:, n] = 0
            for r in range(G):
                gradient = d[r, n]
                for k in range(H):
                    dh[k, n] += weight_hh[r, k] * gradient


def _gru_forward_gates(s, recurrent, hidden_n_bias, hidden_n, half):
    """One GRU forward step's (G3) and the inside of (G4), after the tanh of the r, z rows: ``s`` ``(3H, N)``
    receives r, z and X_n + r a_n; ``hidden_n`` receives a_n = (W_hh h_prev)_n + b_hn (``hidden_n_bias`` is
    empty without biases). ``half`` is 0.5 in the working dtype."""
    H, N = hidden_n.shape
    for j in range(H):
        for n in range(N):
            r = s[j, n] * half + half                      # (G3) r, z = (1 + tanh(./2)) / 2
            s[j, n] = r
            s[H + j, n] = s[H + j, n] * half + half
            a_n = recurrent[2 * H + j, n] + hidden_n_bias[j] if hidden_n_bias.size else recurrent[2 * H + j, n]
            hidden_n[j, n] = a_n
            s[2 * H + j, n] = s[2 * H + j, n] + r * a_n    # (G4) X_n + r a_n, before its tanh


def _gru_forward_state(s, h_prev, h):
    """(G5) h = n + z (h_prev - n), after the tanh of the candidate rows of ``s``."""
    M = h.size                                             # H N: each gate is M consecutive numbers of s
    s, h_prev, h = s.reshape(3 * M), h_prev.reshape(M), h.reshape(M)
    for k in range(M):
        cand = s[2 * M + k]
        h[k] = cand + (h_prev[k] - cand) * s[M + k]


def _gru_backward_cell(up, dh_recurrent, s, h_prev, hidden_n, d, dn, direct, one):
    """One GRU backward step, (G6) to (G3), for every hidden unit and sequence; the arrays are those of
    :func:`bptt.layers.gru.gru_backward` at step t: ``s`` the activated gates ``(3H, N)`` r, z, n, ``hidden_n`` the
    recurrent term a_n; ``d`` receives dL/da_t (r, z rows; r dX_n in the n rows), ``dn`` dL/dX^x_n and
    ``direct`` z dh, the direct path of (G5) that joins W_hh^T da_t after the product."""
    M = dn.size                                            # H N: each gate is M consecutive numbers of s, d
    up, dh_recurrent, h_prev, hidden_n = up.reshape(M), dh_recurrent.reshape(M), h_prev.reshape(M), hidden_n.reshape(M)
    s, d, dn, direct = s.reshape(3 * M), d.reshape(3 * M), dn.reshape(M), direct.reshape(M)
    for k in range(M):
        dh = up[k] + dh_recurrent[k]                       # (G6) dh_t = dL/dout_t + paths from t+1
        r, z, cand = s[k], s[M + k], s[2 * M + k]
        dcand = dh * (one - z)                             # (G5) h = (1 - z) n + z h_prev: dh/dn = 1 - z
        dz = dh * (h_prev[k] - cand)                       # (G5) dh/dz = h_prev - n
        dcand = dcand * (one - cand * cand)                # (G4) n = tanh(X_n + r a_n): 1 - n^2
        dr = dcand * hidden_n[k]                           # (G4) d(r a_n)/dr = a_n
        d[2 * M + k] = dcand * r                           # (G4) d(r a_n)/da_n = r
        dn[k] = dcand
        d[k] = dr * ((one - r) * r)                        # (G3) sigmoid' = s (1 - s)
        d[M + k] = dz * ((one - z) * z)
        direct[k] = dh * z                                 # (G5) the direct path to h_prev


def _rnn_sequence_forward(h, weight_hh_t, inactive, relu):
    """(R2) and (R3) of :func:`bptt.layers.rnn.rnn_forward` for every step in one compiled call, row-major as
    there: ``h`` ``(T+1, N, H)`` holds h_0 in step 0 and the input projection Z^x of (R1) in steps 1..T, and
    receives every h_t; ``weight_hh_t`` ``(H, H)`` is W_hh transposed, C-contiguous; ``inactive`` ``(T, N)`` is
    True at padded steps, or ``(0, 0)`` without padding; ``relu`` chooses phi. The recurrent product is one
    BLAS call per step (numba's ``np.dot`` into a preallocated output); the add and phi are one loop over
    each row. ``tanh`` is the C library's, so the numbers match the NumPy path's to rounding, not bitwise."""
    T, N, H = h.shape[0] - 1, h.shape[1], h.shape[2]
    padded = inactive.shape[0] > 0
    recurrent = np.empty((N, H), dtype=h.dtype)
    for t in range(T):
        h_prev, z = h[t], h[t + 1]
        np.dot(h_prev, weight_hh_t, recurrent)             # (R2) W_hh h_{t-1}, as h_{t-1} W_hh^T
        for n in range(N):
            if padded and inactive[t, n]:                  # padded step: the state is kept
                for j in range(H):
                    z[n, j] = h_prev[n, j]
            elif relu:
                for j in range(H):
                    v = z[n, j] + recurrent[n, j]          # (R2) z = Z^x_t + W_hh h_{t-1}
                    z[n, j] = v if v > 0 else 0.0          # (R3) h = max(z, 0)
            else:
                for j in range(H):
                    z[n, j] = math.tanh(z[n, j] + recurrent[n, j])  # (R2), (R3) h = tanh(z)


def _rnn_sequence_backward(dout, x, h, weight_ih, weight_hh, inactive, relu, one, dh, rows, dx, grad_ih, grad_hh,
                           grad_bias, product_ih, product_hh):
    """:func:`bptt.layers.rnn.rnn_backward` in one compiled call: (R4) and the product of (R2) for every step, from
    the last to the first, the backward twin of :func:`_rnn_sequence_forward`; and, as the NumPy loop does, (R5)
    and (R6) over a chunk of steps each time one is complete, BLAS products over its rows (numba's ``np.dot``),
    the same operations in the same order. ``dout`` ``(T, N, H)`` is dL/dout as given (any layout); ``x``
    ``(T, N, I)`` and ``h`` ``(T+1, N, H)`` are the cache's, C-contiguous, ``inactive`` the forward's;
    ``weight_ih`` ``(H, I)`` and ``weight_hh`` ``(H, H)`` are PyTorch's, C-contiguous; ``dh`` ``(N, H)`` holds
    dL/dh_T and receives dL/dh_0; ``rows`` ``(k, N, H)`` takes the dL/dz_t of a chunk of k steps; ``dx``
    ``(T, N, I)`` receives dL/dx; ``grad_ih`` ``(H, I)``, ``grad_hh`` ``(H, H)`` and ``grad_bias`` ``(H,)``
    (``(0,)`` without biases), zero on entry, receive the weight gradients; ``product_ih`` and ``product_hh``, shaped
    as the first two, hold a chunk's share of them. ``one`` is 1 in the working dtype. The caller allocates every
    buffer, so that memory tracing sees them."""
    T, N, H = dout.shape
    I = x.shape[2]
    chunk = rows.shape[0]
    padded = inactive.shape[0] > 0
    zero = one - one
    through = np.empty((N, H), dtype=dh.dtype)             # dh_t of the padded sequences, passed on as it is
    for t in range(T - 1, -1, -1):
        start = t - t % chunk
        d, up, h_t = rows[t - start], dout[t], h[t + 1]
        frozen = False
        for n in range(N):
            if padded and inactive[t, n]:                  # padded step: h passes through unchanged
                frozen = True
                for j in range(H):
                    through[n, j] = up[n, j] + dh[n, j]    # (R4) dh_t = dL/dout_t + W_hh^T dz_{t+1}
                    d[n, j] = zero
            elif relu:
                for j in range(H):
                    slope = one if h_t[n, j] > zero else zero  # (R4) phi'(z) = [h > 0]
                    d[n, j] = (up[n, j] + dh[n, j]) * slope    # (R4) dz_t = (dL/dout_t + W_hh^T dz_{t+1}) phi'
            else:
                for j in range(H):
                    out = h_t[n, j]
                    slope = one - out * out                # (R4) phi'(z) = 1 - h^2
                    d[n, j] = (up[n, j] + dh[n, j]) * slope    # (R4) dz_t = (dL/dout_t + W_hh^T dz_{t+1}) phi'
        # (R2) z = Z^x + W_hh h_{t-1}  =>  dL/dh_{t-1} gets W_hh^T dz_t, as dz_t W_hh (used by R4 at t-1)
        np.dot(d, weight_hh, dh)
        if frozen:
            for n in range(N):
                if inactive[t, n]:
                    for j in range(H):
                        dh[n, j] = through[n, j]           # (R4) a padded step's dh_t passes to h_{t-1}
        if t == start:
            stop = min(start + chunk, T)
            m = (stop - start) * N
            chunk_dz = rows[:stop - start].reshape(m, H)   # row (j, n): dz of step start + j, sequence n
            chunk_dz_t = chunk_dz.T
            # (R5) dW_ih += sum_t dz_t x_t^T,  dW_hh += sum_t dz_t h_{t-1}^T,  db += sum_t dz_t
            np.dot(chunk_dz_t, x[start:stop].reshape(m, I), product_ih)
            np.dot(chunk_dz_t, h[start:stop].reshape(m, H), product_hh)
            for i in range(H):
                for j in range(I):
                    grad_ih[i, j] += product_ih[i, j]      # (R5) dW_ih += the chunk's sum
                for j in range(H):
                    grad_hh[i, j] += product_hh[i, j]      # (R5) dW_hh += the chunk's sum
            if grad_bias.shape[0] > 0:
                for r in range(m):
                    for j in range(H):
                        grad_bias[j] += chunk_dz[r, j]     # (R5) db += dz_t, row by row
            # (R6) dx_t = W_ih^T dz_t, as dz_t W_ih
            np.dot(chunk_dz, weight_ih, dx[start:stop].reshape(m, I))


@functools.cache
def _compiled(kernel: Callable) -> Callable:
    """``kernel`` compiled by numba at its first call for each dtype, and kept in numba's on-disk cache (next to
    this module, or in the user's cache folder where that is read-only), so that later processes load it in
    milliseconds instead of compiling it again for about a second; ImportError without numba."""
    import numba

    return numba.njit(kernel, cache=True)


def _numpy_path_asked() -> bool:
    """Whether ``BPTT_KERNELS=numpy`` asks for the NumPy path (read at each call, so tests can switch it)."""
    return os.environ.get("BPTT_KERNELS", "").lower() == "numpy"


def describe_path() -> str:
    """Which path the passes take, in words: the compiled kernels with numba's version, or the NumPy path and
    why (``BPTT_KERNELS=numpy``, or numba not installed). Finds numba without importing it.

    Examples
    --------
    >>> describe_path().startswith(("compiled kernels (numba ", "NumPy path ("))
    True
    """
    if _numpy_path_asked():
        return "NumPy path (BPTT_KERNELS=numpy)"
    if importlib.util.find_spec("numba") is None:
        return "NumPy path (numba is not installed; pip install 'bptt[fast]' adds the compiled kernels)"
    return f"compiled kernels (numba {importlib.metadata.version('numba')})"


NO_PADDING = np.zeros((0, 0), dtype=bool)
"""The ``inactive`` argument of the whole-sequence loops for a batch without padding (numba needs an array)."""


def padding_mask(inactive: np.ndarray | None) -> np.ndarray:
    """The whole-sequence loops' ``inactive``: the ``(T, N)`` mask of padded steps, or :data:`NO_PADDING`."""
    return NO_PADDING if inactive is None else inactive


@functools.cache
def _has_scipy() -> bool:
    return importlib.util.find_spec("scipy") is not None


def _available(kernel: Callable) -> Callable | None:
    """``kernel`` compiled, or None without numba or with ``BPTT_KERNELS=numpy``."""
    if _numpy_path_asked():
        return None
    try:
        return _compiled(kernel)
    except ImportError:
        return None


def lstm_forward_cell() -> Callable | None:
    """The compiled :func:`_lstm_forward_cell`, or None (see :func:`_available`)."""
    return _available(_lstm_forward_cell)


def lstm_backward_cell() -> Callable | None:
    """The compiled :func:`_lstm_backward_cell`, or None (see :func:`_available`)."""
    return _available(_lstm_backward_cell)


def lstm_sequence_kernels() -> tuple[Callable, Callable] | None:
    """The compiled :func:`_lstm_sequence_forward` and :func:`_lstm_sequence_backward`, or None (see
    :func:`_available`)."""
    forward, backward = _available(_lstm_sequence_forward), _available(_lstm_sequence_backward)
    return None if forward is None or backward is None else (forward, backward)


def gru_forward_cells() -> tuple[Callable, Callable] | None:
    """The compiled :func:`_gru_forward_gates` and :func:`_gru_forward_state`, or None (see :func:`_available`)."""
    gates, state = _available(_gru_forward_gates), _available(_gru_forward_state)
    return None if gates is None or state is None else (gates, state)


def gru_backward_cell() -> Callable | None:
    """The compiled :func:`_gru_backward_cell`, or None (see :func:`_available`)."""
    return _available(_gru_backward_cell)


@functools.cache
def _scipy_blas_threads() -> tuple[Callable[[], int], Callable[[int], None]] | None:
    """``(get, set)`` for the thread count of SciPy's own BLAS, the one numba's ``np.dot`` calls, where it is a
    library of its own beside NumPy's (the pip wheels ship an OpenBLAS each, each with its own thread pool); None
    where SciPy uses no BLAS of its own (it shares NumPy's, as in conda) or threadpoolctl is not installed. The
    two are OpenBLAS's own ``openblas_get_num_threads`` and ``openblas_set_num_threads`` through ctypes, about
    0.3 µs a call (threadpoolctl, which finds the library, takes about 2 µs to set a count)."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    import scipy
    import scipy.linalg.cython_blas  # noqa: F401 -- loads SciPy's BLAS, so that threadpoolctl sees it

    package = os.path.dirname(os.path.realpath(scipy.__file__))
    own = (package + os.sep, package + ".libs" + os.sep)            # inside scipy/ or the wheel's scipy.libs/
    for library in ThreadpoolController().select(internal_api="openblas").lib_controllers:
        if not os.path.realpath(library.filepath).startswith(own):
            continue
        for prefix in ("", "scipy_"):
            for suffix in ("", "64_"):
                get = getattr(library.dynlib, f"{prefix}openblas_get_num_threads{suffix}", None)
                set_ = getattr(library.dynlib, f"{prefix}openblas_set_num_threads{suffix}", None)
                if get is not None and set_ is not None:
                    return get, set_
    return None


@functools.cache
def _single_threaded_blas(kernel: Callable) -> Callable:
    """``kernel`` with SciPy's BLAS limited to one thread for the call (its count restored after), where SciPy
    has a BLAS of its own (:func:`_scipy_blas_threads`). NumPy's OpenBLAS workers busy-wait for a while after
    each NumPy GEMM, so SciPy's two threads beside them fought for the two cores: 100 products (32, 256)
    (256, 256) took 11 ms alone, 25 ms right after one NumPy GEMM. With one thread the call runs on the
    caller's core, whatever NumPy's workers do. Calls from several Python threads at once may leave the count
    at 1 (each restores the count it found)."""
    threads = _scipy_blas_threads()
    if threads is None:
        return kernel
    get, set_ = threads

    def single_threaded(*args):
        saved = get()
        set_(1)
        try:
            return kernel(*args)
        finally:
            set_(saved)

    return functools.update_wrapper(single_threaded, kernel, updated=())


def _blas_loops(forward: Callable, backward: Callable) -> tuple[Callable, Callable] | None:
    """Whole-sequence loops that call BLAS through numba's ``np.dot``: both compiled, each running with SciPy's
    BLAS on one thread (:func:`_single_threaded_blas`), or None (see :func:`_available`); None without SciPy
    too, whose BLAS numba's ``np.dot`` calls."""
    if not _has_scipy():
        return None
    forward, backward = _available(forward), _available(backward)
    if forward is None or backward is None:
        return None
    return _single_threaded_blas(forward), _single_threaded_blas(backward)


def rnn_sequence_kernels() -> tuple[Callable, Callable] | None:
    """The compiled :func:`_rnn_sequence_forward` and :func:`_rnn_sequence_backward`, or None (see
    :func:`_blas_loops`)."""
    return _blas_loops(_rnn_sequence_forward, _rnn_sequence_backward)


def _gru_sequence_forward(gates, weight_hh, h, hidden_n, hidden_n_bias, inactive, half):
    """(G2) to (G5) of :func:`bptt.layers.gru.gru_forward` for every step in one compiled call, feature-major as
    there: ``gates`` ``(T, 3H, N)`` holds the input projection X^x of (G1), its r and z rows halved and carrying
    b_hr, b_hz, and receives the activated r, z, n; ``weight_hh`` ``(3H, H)`` is W_hh with its r and z rows
    halved, C-contiguous; ``h`` ``(T+1, H, N)`` holds h_0 in step 0 and receives every h_t; ``hidden_n``
    ``(T, H, N)`` receives a_n = (W_hh h_{t-1})_n + b_hn (``hidden_n_bias`` is empty without biases);
    ``inactive`` ``(T, N)`` is True at padded steps, or ``(0, 0)`` without padding. The recurrent product is one
    BLAS call per step (numba's ``np.dot`` into a preallocated output); the element-wise work follows
    :func:`_gru_forward_gates` and :func:`_gru_forward_state` operation by operation, with the C library's
    ``tanh``, so the numbers match the NumPy path's to rounding, not bitwise."""
    T, G, N = gates.shape
    H = G // 3
    padded = inactive.shape[0] > 0
    biased = hidden_n_bias.size > 0
    recurrent = np.empty((G, N), dtype=gates.dtype)
    for t in range(T):
        s, h_prev, h_new, a = gates[t], h[t], h[t + 1], hidden_n[t]
        np.dot(weight_hh, h_prev, recurrent)               # (G2) a = W_hh h_{t-1}, r and z rows halved
        for j in range(H):
            for n in range(N):
                r = math.tanh(s[j, n] + recurrent[j, n]) * half + half  # (G3) r, z = (1 + tanh(./2)) / 2
                z = math.tanh(s[H + j, n] + recurrent[H + j, n]) * half + half
                a_n = recurrent[2 * H + j, n] + hidden_n_bias[j] if biased else recurrent[2 * H + j, n]
                a[j, n] = a_n
                cand = math.tanh(s[2 * H + j, n] + r * a_n)    # (G4) n = tanh(X_n + r a_n)
                s[j, n], s[H + j, n], s[2 * H + j, n] = r, z, cand
                if padded and inactive[t, n]:              # padded step: the state is kept
                    h_new[j, n] = h_prev[j, n]
                else:
                    h_new[j, n] = cand + (h_prev[j, n] - cand) * z  # (G5) h = n + z (h_prev - n)


def _gru_sequence_backward(dout, gates, h, hidden_n, weight_hh_t, inactive, start, stop, one, dh_recurrent, d, dn,
                           hidden_columns, tail_columns):
    """(G6) to (G3) and the product of (G2) for the steps ``stop - 1`` down to ``start`` in one compiled call: the
    backward twin of :func:`_gru_sequence_forward`, each step's element-wise work that of
    :func:`_gru_backward_cell`, operation by operation. ``dout`` ``(T, N, H)`` is dL/dout as given (any layout);
    ``gates``, ``h``, ``hidden_n`` and ``inactive`` are the forward's; ``weight_hh_t`` ``(H, 3H)`` is PyTorch's
    W_hh transposed, C-contiguous; ``dh_recurrent`` ``(H, N)`` holds W_hh^T da_{stop} + z dh_{stop} (dL/dh_T at
    the last step) and receives that of ``start``. ``d`` ``(3H, N)`` and ``dn`` ``(H, N)`` receive dL/da_t and
    dL/dX^x_n of each step, the last being ``start``'s; the columns ``(t - start) N ..`` of ``hidden_columns``
    ``(3H, k N)`` and ``tail_columns`` ``(H, k N)`` receive those of the other steps, for the weight-gradient
    GEMMs of :class:`bptt.layers.recurrent.ChunkedGradients` (whose ``add`` then takes step ``start``)."""
    G, N = d.shape
    H = G // 3
    M = H * N                                              # each gate is M consecutive numbers of s, d
    padded = inactive.shape[0] > 0
    zero = one - one
    direct = np.empty((H, N), dtype=d.dtype)               # z dh, the direct path of (G5)
    through = np.empty((H, N), dtype=d.dtype)              # dh_t of the padded sequences, passed on as it is
    flat_d, flat_dn, flat_direct, carried = d.reshape(G * N), dn.reshape(M), direct.reshape(M), dh_recurrent.reshape(M)
    for t in range(stop - 1, start - 1, -1):
        s, h_prev, a = gates[t].reshape(G * N), h[t].reshape(M), hidden_n[t].reshape(M)
        frozen = False
        if padded:
            for n in range(N):
                if inactive[t, n]:
                    frozen = True
                    for j in range(H):
                        through[j, n] = dout[t, n, j] + dh_recurrent[j, n]  # (G6) dh_t
        for j in range(H):
            for n in range(N):
                k = j * N + n
                dh = dout[t, n, j] + carried[k]            # (G6) dh_t = dL/dout_t + paths from t+1
                r, z, cand = s[k], s[M + k], s[2 * M + k]
                dcand = dh * (one - z)                     # (G5) h = (1 - z) n + z h_prev: dh/dn = 1 - z
                dz = dh * (h_prev[k] - cand)               # (G5) dh/dz = h_prev - n
                dcand = dcand * (one - cand * cand)        # (G4) n = tanh(X_n + r a_n): 1 - n^2
                dr = dcand * a[k]                          # (G4) d(r a_n)/dr = a_n
                flat_d[2 * M + k] = dcand * r              # (G4) d(r a_n)/da_n = r
                flat_dn[k] = dcand
                flat_d[k] = dr * ((one - r) * r)           # (G3) sigmoid' = s (1 - s)
                flat_d[M + k] = dz * ((one - z) * z)
                flat_direct[k] = dh * z                    # (G5) the direct path to h_prev
        if frozen:                                         # padded step: no gradient reaches the gates
            for n in range(N):
                if inactive[t, n]:
                    for j in range(H):
                        d[j, n] = d[H + j, n] = d[2 * H + j, n] = zero
                        dn[j, n] = zero
        # (G2) a = W_hh h_prev + b_hh, and the direct path of (G5): dh_prev = W_hh^T da + z dh
        np.dot(weight_hh_t, d, dh_recurrent)
        for k in range(M):
            carried[k] += flat_direct[k]
        if frozen:
            for n in range(N):
                if inactive[t, n]:
                    for j in range(H):
                        dh_recurrent[j, n] = through[j, n]
        if t > start:                                      # the chunk's columns; ChunkedGradients.add takes start's
            column = (t - start) * N
            for g in range(G):
                for n in range(N):
                    hidden_columns[g, column + n] = d[g, n]
            for j in range(H):
                for n in range(N):
                    tail_columns[j, column + n] = dn[j, n]


def gru_sequence_kernels() -> tuple[Callable, Callable] | None:
    """The compiled :func:`_gru_sequence_forward` and :func:`_gru_sequence_backward`, or None (see
    :func:`_blas_loops`)."""
    return _blas_loops(_gru_sequence_forward, _gru_sequence_backward)
