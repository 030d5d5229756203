"""Figures. Each helper draws on a matplotlib ``ax`` it is given and returns it; matplotlib is imported by
the caller (the command line), never at bptt's import, and nothing here calls ``plt.show()``."""

from __future__ import annotations

import numpy as np

from bptt.train.fit import History


def plot_losses(history: History, ax):
    """Training loss per step, validation loss at each evaluation, and the step whose weights were kept."""
    ax.semilogy(history.step, history.loss, lw=0.8, alpha=0.6, label="train loss (batch)")
    ax.semilogy(history.eval_step, history.val_loss, "o-", ms=3, label="validation loss")
    if history.best_step is not None:
        ax.axvline(history.best_step, color="0.5", ls=":", label=f"kept: step {history.best_step}")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    return ax


def plot_bpc(history: History, test_bpc: float, baselines: dict[str, float], ax):
    """A character model's losses in bits per character (nats / ln 2): per step on training batches, at each
    evaluation on the validation text; the test BPC of the kept weights, and each baseline's as a line."""
    bits = 1 / np.log(2)
    ax.plot(history.step, np.asarray(history.loss) * bits, lw=0.8, alpha=0.6, label="train (batch)")
    ax.plot(history.eval_step, np.asarray(history.val_loss) * bits, "o-", ms=3, label="validation")
    if history.best_step is not None:
        ax.plot([history.best_step], [test_bpc], "k*", ms=10, label=f"test, kept weights: {test_bpc:.3f}")
    for (name, value), style in zip(baselines.items(), ["--", ":", "-."], strict=False):
        ax.axhline(value, color="0.3", ls=style, lw=1.2, label=f"{name}: {value:.3f}")
    ax.set_xlabel("step")
    ax.set_ylabel("bits per character")
    top = max([*baselines.values(), test_bpc]) * 1.15
    ax.set_ylim(0, top)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return ax


def plot_series(truth: np.ndarray, pred: np.ndarray, ax, *, unscored: int = 0, first_step: int = 1,
                xlabel: str = "step"):
    """One held-out sequence: targets and predictions; the first ``unscored`` steps shaded."""
    steps = np.arange(first_step, first_step + len(truth))
    ax.plot(steps, truth, "k-", lw=1.5, label="truth (next value)")
    ax.plot(steps, pred, "--", color="tab:orange", lw=1.5, label="prediction")
    if unscored:
        ax.axvspan(first_step - 0.5, first_step + unscored - 0.5, color="0.9", label="warm-up (not scored)")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("value")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=3, frameon=False)
    return ax


def plot_forecast(time: np.ndarray, forecasts: dict[str, np.ndarray], ax, *, target: str, xlabel: str):
    """Held-out forecasts against the actual series: ``forecasts`` maps ``"actual"``, ``"model"`` and any
    baselines and peers (``"persistence"``, ``"seasonal"``, ``"ets"``) to values at the points ``time``."""
    ax.plot(time, forecasts["actual"], "k-", lw=1.5, label="actual")
    ax.plot(time, forecasts["model"], "-", color="tab:orange", lw=1.5, label="model")
    styles = {"persistence": ("0.45", "--", "persistence (baseline)"), "seasonal": ("tab:blue", ":", "seasonal-naive"),
              "ets": ("tab:green", "-.", "ETS (statsmodels)")}
    for name, (color, style, label) in styles.items():
        if name in forecasts:
            ax.plot(time, forecasts[name], style, color=color, lw=1.0, label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(target)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=4, frameon=False)
    return ax


def plot_generation(observed: np.ndarray, generated: np.ndarray, truth: np.ndarray, ax):
    """Observed inputs, then the model's free-running continuation against the true one."""
    T, G = len(observed), len(generated)
    ax.plot(np.arange(T), observed, "k-", lw=1.5, label="observed")
    ax.plot(np.arange(T, T + G), truth, "k:", lw=1.5, label="true continuation")
    ax.plot(np.arange(T, T + G), generated, "-", color="tab:orange", lw=1.5, label="generated (fed back)")
    ax.axvline(T - 0.5, color="0.5", lw=0.8)
    ax.set_xlabel("step")
    ax.set_ylabel("value")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=3, frameon=False)
    return ax


def plot_scatter(truth: np.ndarray, pred: np.ndarray, ax, *, label: str = "target"):
    """Predictions against targets, with the identity line."""
    ax.scatter(truth, pred, s=6, alpha=0.5)
    low, high = float(min(truth.min(), pred.min())), float(max(truth.max(), pred.max()))
    ax.plot([low, high], [low, high], "k--", lw=1)
    ax.set_xlabel(f"true {label}")
    ax.set_ylabel(f"predicted {label}")
    ax.grid(True, alpha=0.3)
    return ax


def plot_symbols(target: np.ndarray, predicted: np.ndarray, ax):
    """Target and predicted symbols of a few sequences, row by row (a wrong symbol is marked)."""
    rows = np.concatenate([np.stack([t, p]) for t, p in zip(target, predicted, strict=True)])
    ax.imshow(rows, cmap="tab10", aspect="auto", interpolation="nearest")
    wrong = np.argwhere(target != predicted)
    ax.scatter(wrong[:, 1], 2 * wrong[:, 0] + 1, marker="x", color="k", s=30, label="wrong")
    ax.set_yticks(np.arange(len(rows)), [f"{'target' if k % 2 == 0 else 'output'} {k // 2}" for k in range(len(rows))])
    ax.set_xlabel("recalled position")
    return ax


def plot_confusion(matrix: np.ndarray, ax, *, labels: list[str] | None = None):
    """A confusion matrix of counts ``(C, C)``, row = true class, column = predicted class: shaded by count,
    every non-zero cell labelled, the mistakes (off the diagonal) in bold red."""
    matrix = np.asarray(matrix)
    C = len(matrix)
    labels = [str(c) for c in range(C)] if labels is None else labels
    ax.imshow(matrix, cmap="Blues", vmin=0, interpolation="nearest")
    for (true, predicted), count in np.ndenumerate(matrix):
        if true == predicted:
            ax.text(predicted, true, str(count), ha="center", va="center", fontsize=9,
                    color="white" if count > 0.6 * matrix.max() else "black")
        elif count:
            ax.text(predicted, true, str(count), ha="center", va="center", fontsize=9, color="tab:red",
                    fontweight="bold")
    ax.set_xticks(np.arange(C), labels)
    ax.set_yticks(np.arange(C), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    return ax


def plot_attention(weights: np.ndarray, source: str, output: list[str], ax, *, title: str = ""):
    """Attention weights ``(len(output), len(source))`` as a heatmap: the source along the bottom, the output
    down the side, each row the weights of the step that emitted that output token (they sum to one)."""
    ax.imshow(weights, cmap="Greys", vmin=0, vmax=1, interpolation="nearest", aspect="auto")
    ax.set_xticks(np.arange(len(source)), list(source))
    ax.set_yticks(np.arange(len(output)), output)
    ax.set_xlabel("source")
    ax.set_ylabel("output")
    if title:
        ax.set_title(title, fontsize=10)
    return ax


def plot_sweep(summaries: list[dict], metric: str, ax_curves, ax_final, *, goal: float | None = None):
    """Every seed's training loss curve, and the spread of a final metric over the seeds (green: the seed
    met the task's goals), with the metric's goal as a dashed line; on a log scale where they span more than a
    decade."""
    for summary in summaries:
        ax_curves.semilogy(np.arange(1, len(summary["loss"]) + 1), summary["loss"], lw=0.6, alpha=0.6)
    ax_curves.set_xlabel("step")
    ax_curves.set_ylabel("train loss (batch)")
    ax_curves.grid(True, which="both", alpha=0.3)
    values = np.array([s["metrics"][metric] for s in summaries])
    colors = ["tab:green" if s["success"] else "tab:red" for s in summaries]
    ax_final.scatter(np.arange(len(values)), values, c=colors)
    shown = np.append(values, [] if goal is None else [goal])
    ax_final.set_yscale("log" if (shown > 0).all() and shown.max() > 10 * shown.min() else "linear")  # > a decade
    if goal is not None:
        ax_final.axhline(goal, color="k", ls="--", lw=1, label=f"goal {goal:g}")
        ax_final.legend()
    ax_final.set_xticks(np.arange(len(values)))
    ax_final.set_xlabel("seed")
    ax_final.set_ylabel(metric)
    ax_final.grid(True, which="both", alpha=0.3)
    return ax_curves, ax_final


def plot_gradient_flow(curves: list[tuple[str, np.ndarray, np.ndarray, str]], ax):
    """Gradient norms against the steps back from the loss, log scale: each curve ``(label, distance, norms,
    line style)``, the steps after the loss (negative distance) left out, exact zeros too."""
    for label, distance, norms, style in curves:
        shown = (distance >= 0) & (norms > 0)
        ax.semilogy(distance[shown], norms[shown], style, lw=1.4, label=label)
    ax.set_xlabel("steps back from the loss")
    ax.set_ylabel("||dL/dh_t||")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return ax
