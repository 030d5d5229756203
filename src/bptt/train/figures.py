"""The PNG figures the command line saves for a run and for a sweep (matplotlib, imported lazily)."""

from __future__ import annotations

from pathlib import Path

from bptt.train import plots


def _figure(path: Path, draw, *, title: str, size: tuple[float, float] = (7, 4), panels: int = 1) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, panels, figsize=size, constrained_layout=True)
    draw(*(axes if panels > 1 else [axes]))
    fig.suptitle(title)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _prediction_figure(result, path: Path) -> Path:
    """What the model predicts on held-out data, in the form that suits the task."""
    task, model = result.task, result.model
    x, y = result.test_data
    pred = model(x)
    if task.name == "adding":
        return _figure(path, lambda ax: plots.plot_scatter(y[-1, :, 0], pred[-1, :, 0], ax, label="sum"),
                       title="adding: predicted vs true sums on held-out sequences", size=(5, 5))
    if task.name == "copy":
        recall = slice(len(y) - task.length, None)
        shown = slice(0, 8)
        return _figure(path, lambda ax: plots.plot_symbols(y[recall, shown].T, pred[recall, shown].argmax(-1).T, ax),
                       title="copy: recalled symbols of 8 held-out sequences", size=(6, 6))
    if task.name == "sunspots":
        truth, forecast = task.forecast(model, result.test_data)
        return _figure(path, lambda ax: plots.plot_series(truth, forecast, ax, first_step=task.first_test_year,
                                                         xlabel="year"),
                       title="sunspots: one-step forecasts on the held-out years")
    return _figure(path, lambda ax: plots.plot_series(y[:, 0, 0], pred[:, 0, 0], ax, unscored=task.warmup),
                   title=f"{task.name}: next-step prediction on a held-out sequence")


def save_run_figures(result, out: Path) -> list[Path]:
    """loss.png and prediction.png for every task; generation.png for the sine task."""
    paths = [_figure(out / "loss.png", lambda ax: plots.plot_losses(result.history, ax),
                     title=f"{result.task.name}: training and validation loss"),
             _prediction_figure(result, out / "prediction.png")]
    if result.task.name == "sine":
        from bptt.train.tasks.sine import generate

        x, _ = result.test_data
        steps = result.task.generation_steps
        generated = generate(result.model, x[:, :1], steps)
        truth = result.task.continuation(x[:, :1], steps)
        paths.append(_figure(out / "generation.png",
                             lambda ax: plots.plot_generation(x[:, 0, 0], generated[:, 0, 0], truth[:, 0, 0], ax),
                             title=f"sine: {steps} steps generated from the model's own predictions"))
    return paths


def save_sweep_figure(summaries: list[dict], metric: str, path: Path, *, title: str,
                      goal: float | None = None) -> Path:
    """All seeds' loss curves beside the spread of their final ``metric`` and its goal."""
    return _figure(path, lambda left, right: plots.plot_sweep(summaries, metric, left, right, goal=goal),
                   title=title, size=(11, 4), panels=2)
