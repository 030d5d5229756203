r"""Optimizers that update a module's ``params`` in place from its ``grads``, and gradient-norm clipping.

The update formulas follow ``torch.optim`` exactly, so that the same gradient sequence gives the same
weights in both libraries.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from numpy.typing import NDArray


def clip_grad_norm(grads: Mapping[str, NDArray], max_norm: float) -> float:
    r"""Scale all gradients together so that their global L2 norm is at most ``max_norm``.

    As ``torch.nn.utils.clip_grad_norm_``: with :math:`\|g\| = \sqrt{\sum_k \|g_k\|^2}`, every gradient is
    multiplied by :math:`\min(1, \mathrm{max\_norm} / (\|g\| + 10^{-6}))`. Returns :math:`\|g\|` before
    clipping.
    """
    if not max_norm > 0:
        raise ValueError(f"clip_grad_norm: expected max_norm > 0, got {max_norm}.")
    total = math.sqrt(sum(float(np.vdot(g, g)) for g in grads.values()))
    coefficient = max_norm / (total + 1e-6)
    if coefficient < 1.0:
        for grad in grads.values():
            grad *= coefficient
    return total


class Adam:
    r"""Adam (Kingma & Ba, 2015) with ``torch.optim.Adam``'s arithmetic.

    .. math::
        m \leftarrow \beta_1 m + (1 - \beta_1) g,\quad v \leftarrow \beta_2 v + (1 - \beta_2) g^2,\quad
        p \leftarrow p - \frac{\mathrm{lr}}{1 - \beta_1^t}\,
            \frac{m}{\sqrt{v} / \sqrt{1 - \beta_2^t} + \epsilon}

    ``lr`` may be changed between steps (a schedule sets ``optimizer.lr``).
    """

    def __init__(self, params: Mapping[str, NDArray], grads: Mapping[str, NDArray], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        if not lr > 0:
            raise ValueError(f"Adam: expected lr > 0, got {lr}.")
        if not (0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
            raise ValueError(f"Adam: expected betas in [0, 1), got {betas}.")
        missing = [k for k in params if k not in grads]
        if missing:
            raise ValueError(f"Adam: expected a gradient for every param, got none for {missing}.")
        self.params, self.grads = params, grads
        self.lr, self.betas, self.eps = float(lr), betas, float(eps)
        self.step_count = 0
        self.exp_avg = {k: np.zeros_like(p) for k, p in params.items()}
        self.exp_avg_sq = {k: np.zeros_like(p) for k, p in params.items()}

    def step(self) -> None:
        """Apply one update to every param, in place."""
        self.step_count += 1
        beta1, beta2 = self.betas
        bias_correction1 = 1.0 - beta1 ** self.step_count
        bias_correction2_sqrt = math.sqrt(1.0 - beta2 ** self.step_count)
        step_size = self.lr / bias_correction1
        for name, param in self.params.items():
            grad, m, v = self.grads[name], self.exp_avg[name], self.exp_avg_sq[name]
            m *= beta1
            m += (1.0 - beta1) * grad
            v *= beta2
            v += (1.0 - beta2) * grad * grad
            denominator = np.sqrt(v) / bias_correction2_sqrt + self.eps
            param -= step_size * m / denominator


def cosine_lr(step: int, total_steps: int, base_lr: float, final_lr: float = 0.0) -> float:
    r"""Cosine decay from ``base_lr`` at step 0 to ``final_lr`` at ``total_steps``:
    :math:`\mathrm{lr}_t = \mathrm{final} + \tfrac12 (\mathrm{base} - \mathrm{final})(1 + \cos(\pi t / T))`."""
    progress = min(max(step / max(total_steps, 1), 0.0), 1.0)
    return final_lr + 0.5 * (base_lr - final_lr) * (1.0 + math.cos(math.pi * progress))
