"""Optional compiled loops: each family's whole time loop in one compiled call (numba, ``pip install "bptt[fast]"``).

The NumPy loops over steps of :mod:`bptt.layers.lstm`, :mod:`bptt.layers.gru` and :mod:`bptt.layers.rnn` stay the
path without numba. Where numba is installed, each layer and direction runs its forward pass, and its backward
pass, in one compiled call of a loop here: per step, the products are one BLAS call each (:func:`_matmul`, the
``cblas_?gemm`` of NumPy's own BLAS, :mod:`bptt.layers._numpy_blas`), and the element-wise work is one loop over
the step's values, the NumPy loop's operations in their order, with the vectorisable :func:`_tanh`
(:mod:`bptt.layers._vector_tanh`). The arrays are C-contiguous and every gate is one run of ``H N`` numbers, so
a loop reads them flat and LLVM vectorises it. The numbers match the NumPy path's to rounding (another tanh, an
other order of some sums); both are held equal to the textbook :mod:`bptt.reference` by
``tests/test_fast_vs_reference.py``. Where NumPy's BLAS is not found, the loops call SciPy's (numba's
``np.dot``), on one thread (:func:`_single_threaded_blas`). numba is imported, and a loop compiled, at the first
pass that uses it; ``BPTT_KERNELS=numpy`` in the environment keeps the NumPy path even where numba is installed.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import math
import os
from collections.abc import Callable

import numpy as np


def _lstm_sequence_forward(gates, weight_hh, h, c, tanh_c, inactive, weight_hr, output, half):
    """(L2) to (L5), and (L9) with a projection, of :func:`bptt.layers.lstm.lstm_forward` for every step in one
    compiled call, feature-major as there: ``gates`` ``(T, 4H, N)`` holds the input projection in the internal
    order i, f, o, g with the sigmoid rows halved and receives the activated gates; ``weight_hh`` ``(4H, S)`` is
    W_hh ordered and halved likewise, C-contiguous; ``h`` ``(T+1, S, N)`` and ``c`` ``(T+1, H, N)`` hold the
    initial states in step 0 and receive every step, ``tanh_c`` ``(T, H, N)`` too; ``inactive`` ``(T, N)`` is
    True at padded steps, or ``(0, 0)`` without padding; ``weight_hr`` ``(P, H)`` is W_hr (``(0, 0)`` without a
    projection), and ``output`` ``(H, N)`` receives m_t before it. The products are one BLAS call each per step
    (numba's ``np.dot`` into a preallocated output); the element-wise work is one loop over the H N values of a
    step, the operations of the NumPy path in their order, with the vectorised
    :func:`_tanh`, so the numbers match the NumPy path's to rounding, not bitwise."""
    T, G, N = gates.shape
    H = G // 4
    M = H * N                                              # each gate is M consecutive numbers of a step
    padded = inactive.shape[0] > 0
    projected = weight_hr.shape[0] > 0
    recurrent = np.empty((G, N), dtype=gates.dtype)
    flat_recurrent, flat_output = recurrent.reshape(G * N), output.reshape(M)
    for t in range(T):
        _matmul(weight_hh, h[t], recurrent)                 # (L2) W_hh h_{t-1}, rows ordered and halved
        z, c_prev, c_new, tc = gates[t].reshape(G * N), c[t].reshape(M), c[t + 1].reshape(M), tanh_c[t].reshape(M)
        m = flat_output if projected else h[t + 1].reshape(M)
        for k in range(M):
            i = _tanh(z[k] + flat_recurrent[k]) * half + half  # (L2) z_t = Z^x_t + W_hh h_{t-1}; (L3) i, f, o
            f = _tanh(z[M + k] + flat_recurrent[M + k]) * half + half  # = (1 + tanh(z/2)) / 2
            o = _tanh(z[2 * M + k] + flat_recurrent[2 * M + k]) * half + half
            g = _tanh(z[3 * M + k] + flat_recurrent[3 * M + k])  # (L3) g = tanh(z)
            z[k], z[M + k], z[2 * M + k], z[3 * M + k] = i, f, o, g
            cell = f * c_prev[k] + i * g                   # (L4) c = f c_prev + i g
            c_new[k] = cell
            tanh_cell = _tanh(cell)
            tc[k] = tanh_cell
            m[k] = o * tanh_cell                           # (L5) m = o tanh(c)
        if projected:
            _matmul(weight_hr, output, h[t + 1])            # (L9) h = W_hr m
        if padded:
            for n in range(N):
                if inactive[t, n]:                         # padded step: the states are kept
                    for j in range(H):
                        c[t + 1, j, n] = c[t, j, n]
                    for j in range(h.shape[1]):
                        h[t + 1, j, n] = h[t, j, n]


def _lstm_sequence_backward(dout, x, h, c, gates, tanh_c, inactive, weight_ih, weight_hh_t, weight_hr_t, one, dh, dc,
                            dh_all, rows, state_rows, dx, grad_ih, grad_hh, grad_bias, product_ih,
                            product_hh):
    """:func:`bptt.layers.lstm.lstm_backward` in one compiled call: (L6) to (L3) and the product of (L2) for every
    step, from the last to the first, the backward twin of :func:`_lstm_sequence_forward`; and (L7), (L8) over
    each chunk of steps once it is complete, as :class:`bptt.layers.recurrent.ChunkedGradients` takes them, in
    BLAS products (numba's ``np.dot``). ``dout`` ``(T, N, S)`` is dL/dout as given (any layout); ``x``
    ``(T, N, I)``, ``h``, ``c``, ``gates``, ``tanh_c`` and ``inactive`` are the forward's, C-contiguous;
    ``weight_ih`` ``(4H, I)`` is PyTorch's, ``weight_hh_t`` ``(S, 4H)`` its W_hh transposed and ``weight_hr_t``
    ``(H, P)`` its W_hr transposed (``(0, 0)`` without a projection), C-contiguous; ``dh`` ``(S, N)`` and ``dc``
    ``(H, N)`` hold dL/dh_T, dL/dc_T and receive dL/dh_0, dL/dc_0; ``dh_all`` ``(T, S, N)`` receives every
    dh_t with a projection, for dW_hr (``(0, S, N)`` without); ``rows`` ``(k N, 4H)`` and ``state_rows``
    ``(k N, S)`` take a chunk of k steps' dL/dz_t and h_{t-1}, row j N + n = step start + j, sequence n; ``dx``
    ``(T, N, I)`` receives dL/dx; ``grad_ih`` ``(4H, I)``, ``grad_hh`` ``(4H, S)`` and ``grad_bias`` ``(4H,)``
    (``(0,)`` without biases), zero on entry, receive the weight gradients, in PyTorch's gate order i, f, g, o;
    ``product_ih`` and ``product_hh``, shaped as the first two, hold a chunk's share of them. ``one`` is 1 in
    the working dtype. Each step's element-wise work is the NumPy loop's, operation by operation."""
    T, N, S = dout.shape
    I = x.shape[2]
    G = gates.shape[1]
    H = G // 4
    M = H * N                                              # each gate is M consecutive numbers of s, d
    chunk = rows.shape[0] // N
    padded = inactive.shape[0] > 0
    projected = weight_hr_t.shape[0] > 0
    zero = one - one
    d = np.empty((G, N), dtype=dc.dtype)                   # dL/dz_t, PyTorch's order i, f, g, o
    total = np.empty((S, N), dtype=dc.dtype)               # dh_t, (L6)
    dm = np.empty((H, N), dtype=dc.dtype) if projected else total
    carried = np.empty((H, N), dtype=dc.dtype)             # dL/dc_t of the padded sequences, passed on as it is
    flat_d, flat_dc, flat_dm = d.reshape(G * N), dc.reshape(M), dm.reshape(M)
    for t in range(T - 1, -1, -1):
        for j in range(S):
            for n in range(N):
                total[j, n] = dout[t, n, j] + dh[j, n]     # (L6) dh_t = dL/dout_t + W_hh^T dz_{t+1}
        if projected:
            for j in range(S):                             # kept for dW_hr; an element loop, as numba compiles
                for n in range(N):                         # an array assigned to a slice with a message that
                    dh_all[t, j, n] = total[j, n]          # took 3.5 of the 6 s the first compile took
            _matmul(weight_hr_t, total, dm)                 # (L9) h = W_hr m  =>  dm = W_hr^T dh
        if padded:
            for n in range(N):
                if inactive[t, n]:
                    for j in range(H):
                        carried[j, n] = dc[j, n]
        s, tc, c_prev = gates[t].reshape(G * N), tanh_c[t].reshape(M), c[t].reshape(M)
        for k in range(M):
            i, f, o, g = s[k], s[M + k], s[2 * M + k], s[3 * M + k]
            tanh_cell = tc[k]
            do = flat_dm[k] * tanh_cell                    # (L5) m = o tanh(c): dm/do = tanh c
            through_tanh = flat_dm[k] * o                  # (L5) dm/dtanh(c) = o, then 1 - tanh^2 c:
            dcell = flat_dc[k] + through_tanh
            through_tanh = through_tanh * tanh_cell
            through_tanh = through_tanh * tanh_cell
            dcell = dcell - through_tanh
            di = dcell * g                                 # (L4) c = f c_prev + i g
            df = dcell * c_prev[k]
            dg = dcell * i
            flat_dc[k] = dcell * f                         # (L4) dL/dc_{t-1} through c
            flat_d[k] = di * ((one - i) * i)               # (L3) sigmoid' = s (1 - s)
            flat_d[M + k] = df * ((one - f) * f)
            flat_d[2 * M + k] = dg * (one - g * g)         # (L3) tanh' = 1 - g^2
            flat_d[3 * M + k] = do * ((one - o) * o)
        if padded:
            for n in range(N):
                if inactive[t, n]:                         # padded step: no gradient reaches the gates
                    for r in range(G):
                        d[r, n] = zero
        # (L2) z_t = Z^x_t + W_hh h_{t-1}  =>  dL/dh_{t-1} gets W_hh^T dz_t (used by L6 at t-1)
        _matmul(weight_hh_t, d, dh)
        if padded:
            for n in range(N):
                if inactive[t, n]:                         # padded step: h, c pass through unchanged
                    for j in range(S):
                        dh[j, n] = total[j, n]
                        if projected:
                            dh_all[t, j, n] = zero         # W_hr was not used at a padded step
                    for j in range(H):
                        dc[j, n] = carried[j, n]
        start = t - t % chunk
        row = (t - start) * N
        _into_rows(d, rows, row)                           # dL/dz_t and h_{t-1}, a row a sequence
        _into_rows(h[t], state_rows, row)
        if t == start:
            stop = min(start + chunk, T)
            width = (stop - start) * N
            chunk_dz, chunk_dz_t = rows[:width], rows[:width].T
            # (L7) dW_ih += sum_t dz_t x_t^T, dW_hh += sum_t dz_t h_{t-1}^T, db += sum_t dz_t
            _matmul(chunk_dz_t, x[start:stop].reshape(width, I), product_ih)
            _matmul(chunk_dz_t, state_rows[:width], product_hh)
            for r in range(G):
                for j in range(I):
                    grad_ih[r, j] += product_ih[r, j]
                for j in range(S):
                    grad_hh[r, j] += product_hh[r, j]
            if grad_bias.shape[0] > 0:
                for q in range(width):
                    for r in range(G):
                        grad_bias[r] += chunk_dz[q, r]
            # (L8) dx_t = W_ih^T dz_t, as dz_t^T W_ih
            _matmul(chunk_dz, weight_ih, dx[start:stop].reshape(width, I))


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
        _matmul(h_prev, weight_hh_t, recurrent)             # (R2) W_hh h_{t-1}, as h_{t-1} W_hh^T
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
                    z[n, j] = _tanh(z[n, j] + recurrent[n, j])  # (R2), (R3) h = tanh(z)


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
        _matmul(d, weight_hh, dh)
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
            _matmul(chunk_dz_t, x[start:stop].reshape(m, I), product_ih)
            _matmul(chunk_dz_t, h[start:stop].reshape(m, H), product_hh)
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
            _matmul(chunk_dz, weight_ih, dx[start:stop].reshape(m, I))


def _into_rows(block, rows, row):
    """A step's feature-major ``block`` ``(F, N)`` into the rows ``row .. row + N - 1`` of a chunk buffer ``rows``
    ``(k N, F)``, one row a sequence: how the backward loops hand a step to their chunk's weight-gradient
    products. Compiled where a loop calls it (:func:`_register_helpers`)."""
    F, N = block.shape
    for n in range(N):
        for f in range(F):
            rows[row + n, f] = block[f, n]


def _tanh(x):
    """tanh of one value in the compiled loops. numba compiles it to the vectorisable tanh of
    :mod:`bptt.layers._vector_tanh` (within 3 units in the last place of NumPy's), not to the C library's,
    which it would call one value at a time at 7-10x the cost; called from Python it is ``math.tanh``."""
    return math.tanh(x)


def _matmul(a, b, out):
    """``out = a b`` for 2-D arrays in the compiled loops, ``out`` row-major. numba compiles it to a call of the
    ``cblas_?gemm`` NumPy's own ``np.matmul`` uses (:mod:`bptt.layers._numpy_blas`), or, where that is not found,
    to numba's ``np.dot``, which calls SciPy's BLAS; called from Python it is ``np.matmul``."""
    return np.matmul(a, b, out=out)


@functools.cache
def _compiled(kernel: Callable) -> Callable:
    """``kernel`` compiled by numba at its first call for each dtype, and kept in numba's on-disk cache (next to
    this module, or in the user's cache folder where that is read-only), so that later processes load it in
    milliseconds instead of compiling it again for about a second; ImportError without numba. Division by zero
    gives IEEE's inf or NaN, as in NumPy, rather than raising (``error_model="numpy"``): the check numba adds
    otherwise is a branch in every loop that divides, which keeps LLVM from vectorising it. Where NumPy's BLAS is
    not found (:mod:`bptt.layers._numpy_blas`) nothing is cached: the cache does not record which BLAS a loop
    was compiled against, so only that one kind of compiled loop is ever written to it or read from it."""
    import numba

    from bptt.layers import _numpy_blas

    _register_helpers()
    return numba.njit(kernel, cache=_numpy_blas.FOUND, error_model="numpy")


@functools.cache
def _register_helpers() -> None:
    """Tell numba what :func:`_tanh` and :func:`_matmul` compile to, and that :func:`_into_rows` compiles as it is
    (once per process)."""
    from numba.extending import register_jitable

    from bptt.layers import _numpy_blas, _vector_tanh

    _vector_tanh.register(_tanh)
    _numpy_blas.register(_matmul)
    register_jitable(_into_rows)


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
    """Whole-sequence loops that call BLAS through :func:`_matmul`: both compiled, or None (see
    :func:`_available`). Where NumPy's own BLAS is found they call it, on NumPy's threads; otherwise they call
    SciPy's through numba's ``np.dot``, each loop with that BLAS on one thread (:func:`_single_threaded_blas`),
    and are None without SciPy."""
    forward, backward = _available(forward), _available(backward)
    if forward is None or backward is None:
        return None
    from bptt.layers import _numpy_blas

    if _numpy_blas.FOUND:
        return forward, backward
    if not _has_scipy():
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
    ``(T, H, N)`` receives a_n = (W_hh h_{t-1})_n + b_hn, ``hidden_n_bias`` ``(H, N)`` holding b_hn in every
    column (zeros without biases); ``inactive`` ``(T, N)`` is True at padded steps, or ``(0, 0)`` without
    padding. The recurrent product is one BLAS call per step (:func:`_matmul`); the element-wise work is one loop
    over the H N values of a step, the operations of the loop in Python in their order, with the vectorised
    :func:`_tanh`, so the numbers match the NumPy path's to rounding."""
    T, G, N = gates.shape
    H = G // 3
    M = H * N                                              # each gate is M consecutive numbers of a step
    padded = inactive.shape[0] > 0
    recurrent = np.empty((G, N), dtype=gates.dtype)
    flat_recurrent, flat_bias = recurrent.reshape(G * N), hidden_n_bias.reshape(M)
    for t in range(T):
        _matmul(weight_hh, h[t], recurrent)                # (G2) a = W_hh h_{t-1}, r and z rows halved
        s, h_prev, h_new, a = gates[t].reshape(G * N), h[t].reshape(M), h[t + 1].reshape(M), hidden_n[t].reshape(M)
        for k in range(M):
            r = _tanh(s[k] + flat_recurrent[k]) * half + half  # (G3) r, z = (1 + tanh(./2)) / 2
            z = _tanh(s[M + k] + flat_recurrent[M + k]) * half + half
            a_n = flat_recurrent[2 * M + k] + flat_bias[k]
            a[k] = a_n
            cand = _tanh(s[2 * M + k] + r * a_n)           # (G4) n = tanh(X_n + r a_n)
            s[k], s[M + k], s[2 * M + k] = r, z, cand
            h_new[k] = cand + (h_prev[k] - cand) * z       # (G5) h = n + z (h_prev - n)
        if padded:
            for n in range(N):
                if inactive[t, n]:                         # padded step: the state is kept
                    for j in range(H):
                        h[t + 1, j, n] = h[t, j, n]


def _gru_sequence_backward(dout, x, h, gates, hidden_n, inactive, weight_ih, weight_hh_t, one, dh_recurrent, rows,
                           tail_rows, state_rows, dx, dx_part, grad_ih, grad_hh, grad_bias_ih, grad_bias_hh, product_ih,
                           product_hh):
    """:func:`bptt.layers.gru.gru_backward` in one compiled call: (G6) to (G3) and the product of (G2) for every
    step, from the last to the first, the backward twin of :func:`_gru_sequence_forward`, each step's
    element-wise work that of the loop in Python, operation by operation; and (G7), (G8) over each chunk
    of steps once it is complete, as :class:`bptt.layers.recurrent.ChunkedGradients` takes them (the candidate's
    input rows apart), in BLAS products (:func:`_matmul`). ``dout`` ``(T, N, H)`` is dL/dout as given (any
    layout); ``x`` ``(T, N, I)``, ``h``, ``gates``, ``hidden_n`` and ``inactive`` are the forward's,
    C-contiguous; ``weight_ih`` ``(3H, I)`` is PyTorch's and ``weight_hh_t`` ``(H, 3H)`` its W_hh transposed,
    C-contiguous; ``dh_recurrent`` ``(H, N)`` holds dL/dh_T and receives dL/dh_0; ``rows`` ``(k N, 3H)``,
    ``tail_rows`` ``(k N, H)`` and ``state_rows`` ``(k N, H)`` take a chunk of k steps' dL/da_t, dL/dX^x_n and
    h_{t-1}, row j N + n = step start + j, sequence n; ``dx`` ``(T, N, I)`` receives dL/dx, ``dx_part``
    ``(k N, I)`` holds a chunk's share from the candidate rows; ``grad_ih`` ``(3H, I)``, ``grad_hh`` ``(3H, H)``,
    ``grad_bias_ih`` and ``grad_bias_hh`` ``(3H,)`` (``(0,)`` without biases), zero on entry, receive the weight
    gradients; ``product_ih`` and ``product_hh``, shaped as the first two, hold a chunk's share of them."""
    T, N, H = dout.shape
    I = x.shape[2]
    G = 3 * H
    M = H * N                                              # each gate is M consecutive numbers of s, d
    chunk = rows.shape[0] // N
    padded = inactive.shape[0] > 0
    biased = grad_bias_ih.shape[0] > 0
    zero = one - one
    d = np.empty((G, N), dtype=dh_recurrent.dtype)         # dL/da_t: r, z rows as dX, n rows r dX_n
    dn = np.empty((H, N), dtype=dh_recurrent.dtype)        # dL/dX^x_n, the n rows of dX
    direct = np.empty((H, N), dtype=dh_recurrent.dtype)    # z dh, the direct path of (G5)
    through = np.empty((H, N), dtype=dh_recurrent.dtype)   # dh_t of the padded sequences, passed on as it is
    total = np.empty((H, N), dtype=dh_recurrent.dtype)     # dL/dout_t + the paths from t+1, (G6)
    flat_d, flat_dn, flat_direct = d.reshape(G * N), dn.reshape(M), direct.reshape(M)
    carried, flat_total = dh_recurrent.reshape(M), total.reshape(M)
    for t in range(T - 1, -1, -1):
        for j in range(H):
            for n in range(N):
                total[j, n] = dout[t, n, j] + dh_recurrent[j, n]  # (G6) dh_t = dL/dout_t + paths from t+1
        s, h_prev, a = gates[t].reshape(G * N), h[t].reshape(M), hidden_n[t].reshape(M)
        for k in range(M):
            dh = flat_total[k]
            r, z, cand = s[k], s[M + k], s[2 * M + k]
            dcand = dh * (one - z)                         # (G5) h = (1 - z) n + z h_prev: dh/dn = 1 - z
            dz = dh * (h_prev[k] - cand)                   # (G5) dh/dz = h_prev - n
            dcand = dcand * (one - cand * cand)            # (G4) n = tanh(X_n + r a_n): 1 - n^2
            dr = dcand * a[k]                              # (G4) d(r a_n)/dr = a_n
            flat_d[2 * M + k] = dcand * r                  # (G4) d(r a_n)/da_n = r
            flat_dn[k] = dcand
            flat_d[k] = dr * ((one - r) * r)               # (G3) sigmoid' = s (1 - s)
            flat_d[M + k] = dz * ((one - z) * z)
            flat_direct[k] = dh * z                        # (G5) the direct path to h_prev
        if padded:
            for n in range(N):
                if inactive[t, n]:                         # padded step: no gradient reaches the gates
                    for j in range(H):
                        d[j, n] = d[H + j, n] = d[2 * H + j, n] = zero
                        dn[j, n] = zero
                        through[j, n] = total[j, n]
        # (G2) a = W_hh h_prev + b_hh, and the direct path of (G5): dh_prev = W_hh^T da + z dh
        _matmul(weight_hh_t, d, dh_recurrent)
        for k in range(M):
            carried[k] += flat_direct[k]
        if padded:
            for n in range(N):
                if inactive[t, n]:                         # padded step: h passes through unchanged
                    for j in range(H):
                        dh_recurrent[j, n] = through[j, n]
        start = t - t % chunk
        row = (t - start) * N
        _into_rows(d, rows, row)                           # dL/da_t, dL/dX^x_n and h_{t-1}, a row a sequence
        _into_rows(dn, tail_rows, row)
        _into_rows(h[t], state_rows, row)
        if t == start:
            stop = min(start + chunk, T)
            width = (stop - start) * N
            hidden, tail, x_rows = rows[:width], tail_rows[:width], x[start:stop].reshape(width, I)
            shared = hidden[:, :2 * H]                     # the r, z rows, where the input side's dX is da
            # (G7) dW_hh += sum_t da_t h_{t-1}^T, db_hh += sum_t da_t
            _matmul(hidden.T, state_rows[:width], product_hh)
            for g in range(G):
                for j in range(H):
                    grad_hh[g, j] += product_hh[g, j]
            # (G7) dW_ih += sum_t dX_t x_t^T, db_ih += sum_t dX_t: the r, z rows from da, the n rows from dX_n
            _matmul(shared.T, x_rows, product_ih[:2 * H])
            _matmul(tail.T, x_rows, product_ih[2 * H:])
            for g in range(G):
                for j in range(I):
                    grad_ih[g, j] += product_ih[g, j]
            if biased:
                for q in range(width):
                    for g in range(G):
                        grad_bias_hh[g] += hidden[q, g]
                    for g in range(2 * H):
                        grad_bias_ih[g] += hidden[q, g]
                    for j in range(H):
                        grad_bias_ih[2 * H + j] += tail[q, j]
            # (G8) dx_t = W_ih^T dX_t, the r, z rows and the n rows
            chunk_dx = dx[start:stop].reshape(width, I)
            _matmul(shared, weight_ih[:2 * H], chunk_dx)
            _matmul(tail, weight_ih[2 * H:], dx_part[:width])
            for q in range(width):
                for j in range(I):
                    chunk_dx[q, j] += dx_part[q, j]


def lstm_sequence_kernels() -> tuple[Callable, Callable] | None:
    """The compiled :func:`_lstm_sequence_forward` and :func:`_lstm_sequence_backward`, or None (see
    :func:`_blas_loops`)."""
    return _blas_loops(_lstm_sequence_forward, _lstm_sequence_backward)


def gru_sequence_kernels() -> tuple[Callable, Callable] | None:
    """The compiled :func:`_gru_sequence_forward` and :func:`_gru_sequence_backward`, or None (see
    :func:`_blas_loops`)."""
    return _blas_loops(_gru_sequence_forward, _gru_sequence_backward)


SEQUENCE_KERNELS = {"lstm": lstm_sequence_kernels, "gru": gru_sequence_kernels, "rnn": rnn_sequence_kernels}
"""Each family's compiled loops, by the name ``bptt train --model`` takes."""


def kernels_on_disk(family: str, dtype: object) -> bool | None:
    """Whether numba's on-disk cache already holds ``family``'s two compiled loops for ``dtype`` (``"lstm"``,
    ``"gru"`` or ``"rnn"``; ``"float32"`` or ``"float64"``), so that a run loads them in milliseconds; False when
    its first pass will compile them (a few seconds each); None where no compiled loop is used or the cache
    cannot be read (``BPTT_KERNELS=numpy``, no numba, nothing cached by design, a numba whose cache reads
    otherwise). Reads the cache's index files; compiles nothing."""
    if _numpy_path_asked() or importlib.util.find_spec("numba") is None:
        return None
    loops = SEQUENCE_KERNELS[family]()
    if loops is None:
        return None
    name = np.dtype(dtype).name
    try:
        for loop in loops:
            dispatcher = loop if hasattr(loop, "_cache") else loop.__wrapped__  # _single_threaded_blas wraps it
            cache = dispatcher._cache
            if not hasattr(cache, "_cache_file"):                          # numba's NullCache: nothing is cached
                return None
            if not any(name in str(key[0]) for key in cache._cache_file._load_index()):
                return False
    except (AttributeError, TypeError, IndexError, OSError):              # numba's internals read otherwise
        return None
    return True

