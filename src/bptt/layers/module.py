"""What every bptt layer and model shares: parameters, accumulated gradients and state dicts.

A module owns ``params`` and ``grads``: dicts of arrays with the same keys and shapes, keyed by PyTorch's
names. Everything that changes them does so in place (``zero_grad``, ``load_state_dict``, the optimizers),
so a composite model can expose its children's arrays under prefixed keys and stay in sync with them.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from numpy.typing import NDArray

from bptt._validation import as_real_array, cast_within_range


class Module:
    """Base class: ``params``/``grads`` dicts, PyTorch's gradient accumulation, state dicts."""

    params: dict[str, NDArray]
    grads: dict[str, NDArray]
    dtype: np.dtype

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def forward(self, *args, **kwargs):  # pragma: no cover - every subclass defines it
        raise NotImplementedError

    def config(self) -> dict:  # pragma: no cover - every subclass defines it
        """The constructor's arguments (without ``rng``), so that ``type(m)(**m.config())`` builds a twin."""
        raise NotImplementedError

    def zero_grad(self) -> None:
        """Reset every accumulated gradient to zero."""
        for grad in self.grads.values():
            grad.fill(0.0)

    def state_dict(self) -> dict[str, NDArray]:
        """Copies of the parameters, keyed by PyTorch's names."""
        return {name: value.copy() for name, value in self.params.items()}

    def load_state_dict(self, state: Mapping[str, object]) -> None:
        """Copy ``state`` into the parameters, after checking every key and shape; refuse and change nothing
        when anything is off. Any array-like is accepted, e.g. ``{k: v.numpy() for k, v in
        torch_module.state_dict().items()}``."""
        where = f"{type(self).__name__}.load_state_dict"
        if not isinstance(state, Mapping):
            raise TypeError(f"{where}: expected a mapping of names to arrays, got {type(state).__name__}.")
        missing = [k for k in self.params if k not in state]
        unexpected = [k for k in state if k not in self.params]
        if missing or unexpected:
            raise ValueError(f"{where}: expected keys {list(self.params)}, got missing keys {missing} "
                             f"and unexpected keys {unexpected}.")
        converted = {}
        for name, target in self.params.items():
            value = as_real_array(where, name, state[name])
            if value.shape != target.shape:
                raise ValueError(f"{where}: expected {name} of shape {target.shape}, got {value.shape}.")
            if not np.isfinite(value).all():
                raise ValueError(f"{where}: expected finite values in {name}, got NaN or infinite entries.")
            converted[name] = cast_within_range(where, name, value, target.dtype, copy=False)
        for name, value in converted.items():
            np.copyto(self.params[name], value)
