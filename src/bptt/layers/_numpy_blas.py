"""The compiled loops' matrix product: NumPy's own BLAS, called from numba (needs numba).

A compiled loop needs a matrix product per step. numba's ``np.dot`` calls SciPy's BLAS, which the pip wheels ship
as a second OpenBLAS beside NumPy's, with a thread pool of its own: its threads and NumPy's, which busy-wait for
a while after each NumPy product, fought for the cores, so those loops had to hold SciPy's to one thread, and
lost to the NumPy loop wherever the products were large enough for two (a (1024, 256) (256, 32) float64 product:
406 µs on one thread, 232 µs on two). :func:`bptt.layers.kernels._matmul`, which every compiled loop calls, is
compiled from :func:`_gemm` instead: the ``cblas_?gemm`` of the BLAS NumPy itself calls for ``np.matmul``, found
through NumPy's extension module, so the loops share NumPy's library and threads, and a product in a loop gives
bitwise what ``np.matmul`` gives for the same operands.

It is found where NumPy exports it under the names of the 64-bit-integer OpenBLAS its wheels ship
(``scipy_cblas_dgemm64_``, NumPy 1's ``cblas_dgemm64_``); elsewhere (another BLAS, a NumPy built from source)
:data:`FOUND` is False and the loops keep numba's ``np.dot`` on SciPy's BLAS
(:func:`bptt.layers.kernels._blas_loops`).
"""

from __future__ import annotations

import ctypes

import llvmlite.binding as llvm
import numba
import numpy as np
from numba import types
from numba.extending import overload

ROW_MAJOR, NO_TRANSPOSE, TRANSPOSE = 101, 111, 112          # CBLAS's enumerations


def _numpy_symbol(*names: str) -> int | None:
    """The address of the first of ``names`` found in NumPy's extension module or the libraries it loads, or
    None."""
    core = getattr(np, "_core", None) or np.core                # NumPy 2, NumPy 1
    library = ctypes.CDLL(core._multiarray_umath.__file__)
    for name in names:
        try:
            return ctypes.cast(getattr(library, name), ctypes.c_void_p).value
        except AttributeError:
            continue
    return None


def _gemm_function(kind: str, real) -> types.ExternalFunction | None:
    """NumPy's ``cblas_{kind}gemm`` (64-bit integers: the names of NumPy 2's and NumPy 1's wheels) as a function
    numba code can call, or None: its address is given to LLVM under a name of ours, which numba's on-disk cache
    keeps and the next process binds again."""
    address = _numpy_symbol(f"scipy_cblas_{kind}gemm64_", f"cblas_{kind}gemm64_")
    if address is None:
        return None
    name = f"bptt_numpy_cblas_{kind}gemm"
    llvm.add_symbol(name, address)
    integer, pointer, enumeration = types.int64, types.intp, types.int32
    return types.ExternalFunction(name, types.void(enumeration, enumeration, enumeration, integer, integer, integer,
                                                   real, pointer, integer, pointer, integer, real, pointer, integer))


_GEMM = {types.float64: _gemm_function("d", types.float64), types.float32: _gemm_function("s", types.float32)}
FOUND = all(function is not None for function in _GEMM.values())
"""Whether NumPy's BLAS was found (module text); without it :func:`register` leaves the loops on ``np.dot``."""


@numba.njit
def _operand(a):
    """How CBLAS reads the 2-D array ``a``: (NO_TRANSPOSE, leading dimension) where its rows are contiguous,
    (TRANSPOSE, leading dimension) where its columns are (a transposed C array)."""
    rows, cols = a.shape
    along_rows, along_cols = a.strides[0] // a.itemsize, a.strides[1] // a.itemsize
    if along_cols == 1 or cols <= 1:
        return NO_TRANSPOSE, max(along_rows if rows > 1 else cols, cols, 1)
    if along_rows == 1 or rows <= 1:
        return TRANSPOSE, max(along_cols if cols > 1 else rows, rows, 1)
    raise ValueError("matmul in a compiled loop: an operand has neither contiguous rows nor contiguous columns")


def register(python_matmul) -> None:
    """Make numba compile calls to ``python_matmul(a, b, out)`` (:func:`bptt.layers.kernels._matmul`), ``out = a b``
    for 2-D arrays with ``out`` row-major, to NumPy's ``cblas_?gemm``; where :data:`FOUND` is False, to numba's
    ``np.dot``. Once per process."""

    @overload(python_matmul)
    def _typed(a, b, out):
        gemm = _GEMM.get(a.dtype)
        if not FOUND or gemm is None:
            return lambda a, b, out: np.dot(a, b, out)

        def _gemm(a, b, out):
            M, K = a.shape
            N = b.shape[1]
            transpose_a, lda = _operand(a)
            transpose_b, ldb = _operand(b)
            ldc = max(out.strides[0] // out.itemsize if M > 1 else N, N, 1)
            gemm(ROW_MAJOR, transpose_a, transpose_b, M, N, K, 1.0, a.ctypes.data, lda, b.ctypes.data, ldb, 0.0,
                 out.ctypes.data, ldc)

        return _gemm
