"""Figures. Each helper draws on a matplotlib ``ax`` it is given and returns it; matplotlib is imported
by the caller (the CLI), never at bptt's import, and nothing here calls ``plt.show()``."""

from __future__ import annotations

import numpy as np

from bptt.train import History


def plot_loss(history: History, ax):
    """Training loss per step and held-out MSE at each evaluation, on a log scale."""
    ax.semilogy(history.step, history.loss, lw=0.8, alpha=0.7, label="train loss (batch)")
    ax.semilogy(history.eval_step, history.test_mse, "o-", ms=3, label="test MSE (held-out)")
    ax.set_xlabel("step")
    ax.set_ylabel("mean squared error")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    return ax


def plot_prediction(inputs: np.ndarray, target: np.ndarray, pred: np.ndarray, warmup: int, ax):
    """One held-out sequence: the next-step targets, the model's predictions, and the unscored warm-up."""
    steps = np.arange(1, len(target) + 1)
    ax.plot(steps, target, "k-", lw=1.5, label="truth (next value)")
    ax.plot(steps, pred, "--", color="tab:orange", lw=1.5, label="prediction")
    ax.axvspan(0.5, warmup + 0.5, color="0.9", label="warm-up (not scored)")
    ax.set_xlabel("step")
    ax.set_ylabel("value")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=3, frameon=False)
    return ax
