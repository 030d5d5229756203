r"""The GEMM floor of a bptt pass: its matrix products alone, with nothing else between them.

:class:`GemmFloor` makes the GEMM calls of one layer's training step (or forward pass) with the shapes,
layouts and operand order the pass uses, and nothing else: the input projection (L1, G1, R1), the
recurrent product of every step, forward and, for training, backward (L2, G2, R2), and the chunk GEMMs of
the weight and input gradients (L7, L8; G7, G8; R5, R6). Their FLOPs add up to the :math:`6 G T N H (I + H)`
of a training step (:math:`2 G T N H (I + H)` forward), which a test holds them to.

``bptt bench --floor`` times it against torch's step. When the floor alone takes as long as torch's whole
step, no change to the rest of bptt's pass (the elementwise work, the copies, the loop) can bring that cell
to torch's time with this BLAS; only faster GEMMs can.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from bptt.layers.recurrent import chunk_steps, project_inputs
from bptt.layers.rnn import project_rows


class GemmFloor:
    """The GEMMs of one pass of ``layer`` (one layer, one direction, no projection) on ``x (T, N, I)``;
    calling it runs them: the input projection as the pass takes it (:func:`bptt.layers.recurrent.project_inputs`,
    :func:`bptt.layers.rnn.project_rows`, the bias inside the GEMM where the layer has one), then ``products``, a
    list of ``(a, b, out, repeats)``: ``np.matmul(a, b, out=out)``, ``repeats`` times (``out`` None where
    the pass allocates the result)."""

    def __init__(self, family: str, layer, x: NDArray, train: bool) -> None:
        T, N, I = x.shape
        H = layer.hidden_size
        w_ih, w_hh = layer.params["weight_ih_l0"], layer.params["weight_hh_l0"]
        R = w_ih.shape[0]
        self.x, self.w_ih, self.bias = x, w_ih, layer.params.get("bias_ih_l0")
        rng = np.random.default_rng(0)

        def draw(*shape: int) -> NDArray:
            return rng.standard_normal(shape).astype(x.dtype)

        k = chunk_steps(N, T)
        chunks = [(start, min(k, T - start) * N) for start in range(0, T, k)]   # (first step, rows k N)
        self.feature_major = family != "rnn"
        if not self.feature_major:                 # row-major: states (N, H), chunk rows (k N, H)
            self.states = states = np.empty((T * N, H), dtype=x.dtype)
            self.products = [(draw(N, H), np.ascontiguousarray(w_hh.T), np.empty((N, H), x.dtype), T)]  # (R2)
            if train:
                rows = draw(k * N, H)
                self.products.append((draw(N, H), w_hh, np.empty((N, H), x.dtype), T))  # dz W_hh
                for start, m in chunks:                                                 # (R5), (R6)
                    self.products += [(rows[:m].T, x[start:].reshape(-1, I)[:m], None, 1),
                                      (rows[:m].T, states[start * N:start * N + m], None, 1),
                                      (rows[:m], w_ih, None, 1)]
            return
        self.products = [(w_hh, draw(H, N), np.empty((R, N), x.dtype), T)]                # (L2), (G2)
        if train:
            columns, h_columns = draw(R, k * N), draw(H, k * N)
            self.products.append((np.ascontiguousarray(w_hh.T), draw(R, N), np.empty((H, N), x.dtype), T))
            # The GRU's input side takes its candidate rows apart (bptt.layers.recurrent.ChunkedGradients)
            input_rows = [slice(0, 2 * H), slice(2 * H, R)] if family == "gru" else [slice(0, R)]
            for start, m in chunks:                                                     # (L7), (L8)
                self.products.append((columns[:, :m], h_columns[:, :m].T, None, 1))
                for rows in input_rows:
                    self.products += [(columns[rows, :m], x[start:].reshape(-1, I)[:m], None, 1),
                                      (columns[rows, :m].T, w_ih[rows], None, 1)]

    def flops(self) -> int:
        """2 m k n for every product, and 2 R I T N for the projection (its bias column not counted)."""
        T, N, I = self.x.shape
        total = 2 * self.w_ih.shape[0] * I * T * N
        for a, b, _, repeats in self.products:
            total += 2 * a.shape[0] * a.shape[1] * b.shape[1] * repeats
        return total

    def __call__(self) -> None:
        T, N, I = self.x.shape
        if self.feature_major:
            project_inputs(self.w_ih, self.x, self.bias)                                # (L1), (G1)
        else:
            project_rows(self.x.reshape(T * N, I), self.w_ih, self.bias, out=self.states)  # (R1)
        for a, b, out, repeats in self.products:
            for _ in range(repeats):
                np.matmul(a, b, out=out)
