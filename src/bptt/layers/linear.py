r"""A dense layer over any leading dimensions: :math:`y = x W^\top + b`."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from bptt._validation import (
    as_float_array,
    check_bool,
    check_dtype,
    check_positive_int,
    check_shape,
    resolve_rng,
)
from bptt.layers._blas import matmul  # np.matmul without OpenBLAS's spurious invalid flag
from bptt.layers.inference import is_inference_mode
from bptt.layers.module import Module


class Linear(Module):
    r"""Affine map :math:`y = x W^\top + b` applied to the last axis of ``x``.

    Shapes: ``x (*, in_features)`` -> ``y (*, out_features)``; ``weight (out_features, in_features)``,
    ``bias (out_features,)``. Init as PyTorch: every entry :math:`\sim U(-k, k)`, :math:`k = 1/\sqrt{in}`.

    Examples
    --------
    >>> layer = Linear(3, 2, rng=0)
    >>> y = layer(np.ones((4, 5, 3)))
    >>> y.shape
    (4, 5, 2)
    >>> dx = layer.backward(np.ones_like(y))
    >>> dx.shape, layer.grads["weight"].shape
    ((4, 5, 3), (2, 3))
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *,
                 dtype: object = np.float64, rng: object = None) -> None:
        where = "Linear"
        self.in_features = check_positive_int(where, "in_features", in_features)
        self.out_features = check_positive_int(where, "out_features", out_features)
        self.bias = check_bool(where, "bias", bias)
        self.dtype = check_dtype(where, dtype)
        generator = resolve_rng(where, rng)
        bound = 1.0 / np.sqrt(self.in_features)
        shapes = {"weight": (self.out_features, self.in_features)}
        if self.bias:
            shapes["bias"] = (self.out_features,)
        self.params = {name: generator.uniform(-bound, bound, size=shape).astype(self.dtype)
                       for name, shape in shapes.items()}
        self.grads = {name: np.zeros_like(value) for name, value in self.params.items()}
        self._x: NDArray | None = None

    def config(self) -> dict:
        """The constructor's arguments (without ``rng``)."""
        return {"in_features": self.in_features, "out_features": self.out_features, "bias": self.bias,
                "dtype": self.dtype}

    def forward(self, x: object) -> NDArray:
        taped = not is_inference_mode()                 # a kept x must not change with the caller's array
        x = as_float_array("Linear.forward", "x", x, self.dtype, copy=taped)
        if x.ndim == 0:
            raise ValueError(f"Linear.forward: expected x of shape (*, {self.in_features}), got a scalar.")
        check_shape("Linear.forward", "x", x, (None,) * (x.ndim - 1) + (self.in_features,))
        self._x = x if taped else None
        y = matmul(x, self.params["weight"].T)
        if self.bias:
            y += self.params["bias"]
        return y

    def backward(self, dy: object) -> NDArray:
        """Given dL/dy, add dL/dW and dL/db into ``grads`` and return dL/dx."""
        if self._x is None:
            raise ValueError("Linear.backward: expected a forward pass first, got none (a forward pass under "
                             "bptt.inference_mode() keeps nothing to go back through).")
        dy = as_float_array("Linear.backward", "dy", dy, self.dtype)
        check_shape("Linear.backward", "dy", dy, self._x.shape[:-1] + (self.out_features,))
        dy2 = dy.reshape(-1, self.out_features)
        x2 = self._x.reshape(-1, self.in_features)
        self.grads["weight"] += dy2.T @ x2          # dL/dW = sum over rows of dy^T x
        if self.bias:
            self.grads["bias"] += dy2.sum(axis=0)   # dL/db = sum over rows of dy
        return matmul(dy, self.params["weight"])    # dL/dx = dy W
