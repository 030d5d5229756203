r"""Matrix products that ignore OpenBLAS's spurious "invalid value" flag.

NumPy reads the CPU's floating-point flags after every product and warns "invalid value encountered in matmul"
(or "in dot") when the invalid flag is set. OpenBLAS, as NumPy's wheels bundle it (0.3.31 in NumPy 2.4), sets
that flag at random in one case on CPUs with AVX-512, where it runs its SkylakeX kernels: a float32
matrix-vector product whose matrix rows are 5 contiguous numbers and whose output length is 2 or 3 modulo 4
(``sgemv_kernel_t_5`` in ``kernel/x86_64/sgemv_t_microk_skylakex_template.c``). For the last two or three
outputs that kernel stores 5 lanes into an uninitialised stack array ``float ret8[8]``, and the compiled sum of
``ret8[0..4]`` adds whole 4-lane registers, so lanes 5 to 7 add whatever the stack held before. Where that is
the bit pattern of a signalling NaN (about 1 word in 500 of random bits), the add raises the flag. Those lanes
never reach the result, which is exact, so whether NumPy warns depends only on what ran before: a test that
fails now and then, or a warning that a user cannot explain. numpy/numpy#24067 and #28967 report earlier
spurious flags of this kind from other kernels.

:func:`matmul` and :func:`dot` ignore that flag in the products that can run the kernel (float32, inner size
5) and are plain NumPy calls otherwise: a product of any other dtype or shape pays a test of both (a few
tenths of a microsecond) instead of an ``np.errstate`` block (about 1 us, as much as a small product). For finite
operands ignoring the flag hides nothing: they give a NaN only through an overflow (inf - inf), which NumPy
still reports as "overflow encountered". Operands that are not finite give results that are not finite, which
shows in the numbers themselves.

Every product in ``bptt.layers`` that can meet the kernel (a float32 matrix-vector product over a row-major
matrix whose rows hold 5 numbers) goes through these functions. A product that cannot, such as one over ``3H``
or ``4H`` gate rows or one that reads its matrix column by column, stays a plain ``@``.
``tests/test_blas_flags.py`` poisons the stack to raise the flag on demand and checks that no layer passes it on.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

FLAGGED = ((5,), np.dtype(np.float32))    # the inner size and dtype of the one kernel that raises the flag


def matmul(a: NDArray, b: NDArray, out: NDArray | None = None) -> NDArray:
    """``np.matmul(a, b, out=out)``; where it can run the kernel above, with the invalid flag ignored."""
    if a.shape[-1:] == FLAGGED[0] and a.dtype == FLAGGED[1]:
        with np.errstate(invalid="ignore"):
            return np.matmul(a, b, out=out)
    return np.matmul(a, b, out=out)


def dot(a: NDArray, b: NDArray, out: NDArray | None = None) -> NDArray:
    """``np.dot(a, b, out=out)``; where it can run the kernel above, with the invalid flag ignored."""
    if a.shape[-1:] == FLAGGED[0] and a.dtype == FLAGGED[1]:
        with np.errstate(invalid="ignore"):
            return np.dot(a, b, out=out)
    return np.dot(a, b, out=out)
