r"""A lookup table of vectors, one row per token: ``torch.nn.Embedding``'s forward and its hand-derived backward.

The weight :math:`W` is ``(V, E)``: row :math:`v` is the vector of token :math:`v`. For an integer array of
indices :math:`i` of any shape, with :math:`p` running over its positions:

.. math::

    \text{forward:}\quad & y_{p,:} = W_{i_p,:}
        && \text{a gather: } y \text{ has shape } i\text{'s shape} + (E,) \\
    \text{backward:}\quad & \frac{\partial L}{\partial W_{v,:}} = \sum_{p \,:\, i_p = v}
        \frac{\partial L}{\partial y_{p,:}}
        && \text{a scatter-add: a token seen } k \text{ times collects } k \text{ upstream rows}

Rows of tokens that do not occur get no gradient. With ``padding_idx`` = :math:`r` the row :math:`W_{r,:}`
is excluded from the backward pass (its gradient stays zero, as in PyTorch), and it starts at zero; a
token :math:`r` in the input still reads that row. The indices are not differentiable, so ``backward``
returns nothing.
"""

from __future__ import annotations

import numbers

import numpy as np
from numpy.typing import NDArray

from bptt._validation import (
    as_array,
    as_float_array,
    check_dtype,
    check_positive_int,
    check_shape,
    resolve_rng,
)
from bptt.layers.module import Module


class Embedding(Module):
    r"""A table of ``num_embeddings`` vectors of size ``embedding_dim``, read by integer indices.

    Parameters
    ----------
    num_embeddings : V, the number of rows (the vocabulary size); indices run over ``0..V-1``.
    embedding_dim : E, the size of each vector.
    padding_idx : a row that starts at zero and never receives a gradient, or None (default). Negative
        values count from the end, as in PyTorch: ``-1`` is row ``V-1``. Valid range ``-V..V-1``; it is
        stored non-negative.
    dtype : float64 (default) or float32.
    rng : int seed or ``numpy.random.Generator`` for the initial weights; None (default) draws a fresh
        seed from the operating system.

    Notes
    -----
    Shapes: V rows, E features. ``indices (*)`` of any integer dtype, any number of dimensions (a single
    int gives one vector) -> ``y (*, E)``; ``weight (V, E)``. Init as PyTorch: every entry
    :math:`\sim \mathcal{N}(0, 1)`, the ``padding_idx`` row zero.

    Examples
    --------
    >>> emb = Embedding(10, 3, padding_idx=0, rng=0)
    >>> y = emb(np.array([[1, 2, 0], [2, 2, 9]]))
    >>> y.shape
    (2, 3, 3)
    >>> emb.backward(np.ones_like(y))
    >>> emb.grads["weight"][[0, 1, 2, 9], 0]      # token 2 was read three times; row 0 is padding
    array([0., 1., 3., 1.])
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None, *,
                 dtype: object = np.float64, rng: object = None) -> None:
        where = "Embedding"
        self.num_embeddings = check_positive_int(where, "num_embeddings", num_embeddings)
        self.embedding_dim = check_positive_int(where, "embedding_dim", embedding_dim)
        self.padding_idx = _check_padding_idx(where, padding_idx, self.num_embeddings)
        self.dtype = check_dtype(where, dtype)
        generator = resolve_rng(where, rng)
        weight = generator.standard_normal((self.num_embeddings, self.embedding_dim)).astype(self.dtype)
        if self.padding_idx is not None:
            weight[self.padding_idx] = 0.0
        self.params = {"weight": weight}
        self.grads = {"weight": np.zeros_like(weight)}
        self._indices: NDArray | None = None

    def config(self) -> dict:
        """The constructor's arguments (without ``rng``): ``type(m)(**m.config())`` builds the same shape."""
        return {"num_embeddings": self.num_embeddings, "embedding_dim": self.embedding_dim,
                "padding_idx": self.padding_idx, "dtype": self.dtype}

    def __repr__(self) -> str:
        options = f"padding_idx={self.padding_idx}, " if self.padding_idx is not None else ""
        return f"Embedding({self.num_embeddings}, {self.embedding_dim}, {options}dtype={self.dtype})"

    def forward(self, indices: object) -> NDArray:
        """The rows ``weight[indices]``, shape ``indices.shape + (E,)``: a new array, not a view."""
        indices = check_indices("Embedding.forward", indices, self.num_embeddings)
        self._indices = indices
        return self.params["weight"][indices]       # forward: y[..., :] = W[idx[...], :]

    def backward(self, dout: object) -> None:
        """Given dL/dy of shape ``indices.shape + (E,)``, add dL/dW into ``grads["weight"]``. The indices
        have no gradient: returns None."""
        where = "Embedding.backward"
        if self._indices is None:
            raise ValueError(f"{where}: expected a forward pass first, got none.")
        dout = as_float_array(where, "dout", dout, self.dtype, copy=False)
        check_shape(where, "dout", dout, self._indices.shape + (self.embedding_dim,),
                    "dout has the shape of the forward pass's output, indices.shape + (embedding_dim,).")
        rows = self._indices.reshape(-1)
        drows = dout.reshape(-1, self.embedding_dim)
        if self.padding_idx is not None:
            keep = rows != self.padding_idx
            rows, drows = rows[keep], drows[keep]
        # backward: dW_v = sum over positions p with idx_p = v of dy_p; repeated indices add up
        np.add.at(self.grads["weight"], rows, drows)


def _check_padding_idx(where: str, padding_idx: object, num_embeddings: int) -> int | None:
    """``padding_idx`` as a row number in ``0..V-1`` (negative values count from the end), or None."""
    if padding_idx is None:
        return None
    if isinstance(padding_idx, (bool, np.bool_)) or not isinstance(padding_idx, numbers.Integral):
        raise TypeError(f"{where}: expected padding_idx to be an int or None, got {type(padding_idx).__name__}.")
    if not -num_embeddings <= padding_idx < num_embeddings:
        raise ValueError(f"{where}: expected padding_idx in {-num_embeddings}..{num_embeddings - 1} "
                         f"(num_embeddings={num_embeddings}), got {padding_idx}.")
    return int(padding_idx) % num_embeddings


def check_indices(where: str, indices: object, num_embeddings: int, name: str = "indices",
                  size_name: str = "num_embeddings") -> NDArray:
    """``indices`` as a fresh ``intp`` array, after checking its dtype (integers only) and that every entry
    is a row, ``0..V-1``; the copy keeps a later change to the caller's array out of the backward pass.
    ``name`` and ``size_name`` are the caller's words for the indices and for V (a language model's
    ``tokens`` and ``vocab_size``), so that the message speaks the caller's language."""
    array = as_array(where, name, indices)
    if array.dtype.kind not in "iu":
        hint = ""
        if array.dtype.kind == "f" and array.size == 0:
            hint = " An empty list becomes float64: pass np.array([], dtype=int)."
        elif array.dtype.kind == "f":
            hint = " Convert whole-number floats with .astype(int)."
        raise TypeError(f"{where}: expected {name} of an integer dtype, got dtype {array.dtype}.{hint}")
    bad = (array < 0) | (array >= num_embeddings)
    if bad.any():
        position = tuple(int(k) for k in np.argwhere(bad)[0])
        raise ValueError(f"{where}: expected {name} in 0..{num_embeddings - 1} ({size_name}="
                         f"{num_embeddings}), got {array[position]} at position {position} (out of range: "
                         f"{int(bad.sum())} of {array.size} {name}).")
    return np.array(array, dtype=np.intp, copy=True)
