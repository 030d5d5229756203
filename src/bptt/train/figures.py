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


def _sine_figures(result, out: Path) -> list[Path]:
    """prediction.png (next-step prediction on a held-out sequence) and generation.png (free-running)."""
    from bptt.train.tasks.sine import generate

    task, x, y = result.task, *result.test_data
    pred = result.model(x)
    paths = [_figure(out / "prediction.png",
                     lambda ax: plots.plot_series(y[:, 0, 0], pred[:, 0, 0], ax, unscored=task.warmup),
                     title="sine: next-step prediction on a held-out sequence")]
    steps = task.generation_steps
    generated = generate(result.model, x[:, :1], steps)
    truth = task.continuation(x[:, :1], steps)
    paths.append(_figure(out / "generation.png",
                         lambda ax: plots.plot_generation(x[:, 0, 0], generated[:, 0, 0], truth[:, 0, 0], ax),
                         title=f"sine: {steps} steps generated from the model's own predictions"))
    return paths


def _adding_figures(result, out: Path) -> list[Path]:
    """prediction.png: predicted against true sums."""
    x, y = result.test_data
    pred = result.model(x)
    return [_figure(out / "prediction.png", lambda ax: plots.plot_scatter(y[-1, :, 0], pred[-1, :, 0], ax, label="sum"),
                    title="adding: predicted vs true sums on held-out sequences", size=(5, 5))]


def _copy_figures(result, out: Path) -> list[Path]:
    """prediction.png: the recalled symbols of 8 held-out sequences."""
    x, y = result.test_data
    pred = result.model(x)
    recall, shown = slice(len(y) - result.task.length, None), slice(0, 8)
    return [_figure(out / "prediction.png",
                    lambda ax: plots.plot_symbols(y[recall, shown].T, pred[recall, shown].argmax(-1).T, ax),
                    title="copy: recalled symbols of 8 held-out sequences", size=(6, 6))]


def _sunspots_figures(result, out: Path) -> list[Path]:
    """prediction.png: one-step forecasts on the held-out years."""
    task = result.task
    truth, forecast = task.forecast(result.model, result.test_data)
    return [_figure(out / "prediction.png",
                    lambda ax: plots.plot_series(truth, forecast, ax, first_step=task.first_test_year, xlabel="year"),
                    title="sunspots: one-step forecasts on the held-out years")]


def _digits_figures(result, out: Path) -> list[Path]:
    """confusion.png: true against predicted classes on the test split, counts."""
    matrix = result.task.confusion(result.model, result.test_data)
    accuracy = matrix.trace() / matrix.sum()
    mode = "pixel by pixel" if result.task.pixels else "row by row"
    return [_figure(out / "confusion.png", lambda ax: plots.plot_confusion(matrix, ax),
                    title=f"digits ({mode}): {matrix.trace()} of {matrix.sum()} test images right, "
                          f"accuracy {100 * accuracy:.1f}%", size=(6, 5.6))]


def _chars_figures(result, out: Path) -> list[Path]:
    """bpc.png: training and validation bits per character over the steps, beside the test BPC and the
    baselines'."""
    metrics = result.metrics
    lines = {f"Kneser-Ney {metrics['baseline_order']}-gram (test)": metrics["baseline_bpc"],
             "unigram (test)": metrics["unigram_bpc"]}
    return [_figure(out / "bpc.png", lambda ax: plots.plot_bpc(result.history, metrics["test_bpc"], lines, ax),
                    title=f"chars: {metrics['test_bpc']:.3f} bits per character on the test text")]


def _csv_figures(result, out: Path) -> list[Path]:
    """forecast.png: the test split's forecasts of the model and the baselines against the actual target."""
    task, metrics = result.task, result.metrics
    forecasts = task.forecast(result.model, result.test_data)
    time = task.time_of(forecasts.pop("row"))
    ahead = f"{task.horizon} row{'s' if task.horizon > 1 else ''} ahead"
    seasonal = f", seasonal-naive {metrics['seasonal_rmse']:.4g}" if "seasonal_rmse" in metrics else ""
    title = (f"{task.target}, {ahead}: test RMSE {metrics['test_rmse']:.4g} (persistence "
             f"{metrics['baseline_rmse']:.4g}{seasonal}, ETS {metrics['ets_rmse']:.4g})")
    return [_figure(out / "forecast.png",
                    lambda ax: plots.plot_forecast(time, forecasts, ax, target=task.target,
                                                   xlabel=task.time_column or "row"),
                    title=title, size=(9, 4.5))]


ATTENTION_EXAMPLES = 4
"""How many test problems ``attention.png`` shows."""


def _attention_figures(result, out: Path) -> list[Path]:
    """attention.png: the attention weights of the first test problems, each over its source and output."""
    task = result.task
    pairs = task.problems["test"][:ATTENTION_EXAMPLES]
    decoded = task.translate(result.model, [source for source, _ in pairs])
    return [save_attention_figure(out / "attention.png", task, [source for source, _ in pairs], decoded,
                                  [target for _, target in pairs], title=f"{task.name}: where the decoder looked")]


def save_attention_figure(path: Path, task, sources: list[str], decoded: list, targets: list[str] | None = None, *,
                          title: str) -> Path:
    """One heatmap for each source of a sequence-to-sequence ``task``: the attention weights of its output
    (:class:`bptt.layers.decoding.Decoded`), output tokens down and source characters across; with
    ``targets``, each panel says whether the output is right."""

    def draw(*axes):
        for k, (ax, source, output) in enumerate(zip(axes, sources, decoded, strict=True)):
            text = task.decode_target(output.tokens)
            tokens = list(text) + (["</s>"] if len(output.attention) > len(output.tokens) else [])
            verdict = "" if targets is None else (" (right)" if text == targets[k] else f" (wrong, {targets[k]})")
            plots.plot_attention(output.attention, source, tokens, ax, title=f"{source} -> {text}{verdict}")

    width = max(3.2 * len(sources), 1.2 + 0.25 * max(len(source) for source in sources))
    return _figure(path, draw, title=title, size=(width, 3.4), panels=len(sources))


def save_gradient_flow_figure(path: Path, curves: list[tuple[str, object, object, str]], *, title: str) -> Path:
    """gradflow.png: gradient norms against the steps back from the loss (:func:`bptt.train.plots.plot_gradient_flow`),
    a curve ``(label, distance, norms, line style)`` each."""
    return _figure(path, lambda ax: plots.plot_gradient_flow(curves, ax), title=title, size=(7.5, 4.5))


TASK_FIGURES = {"sine": _sine_figures, "adding": _adding_figures, "copy": _copy_figures,
                "sunspots": _sunspots_figures, "digits": _digits_figures, "chars": _chars_figures,
                "csv": _csv_figures, "addition": _attention_figures,
                "dates": _attention_figures}
"""Each task's own figures, saved beside loss.png: a function of the run's result and the output folder that
writes them and returns their paths. A task without an entry gets loss.png alone."""


def save_run_figures(result, out: Path) -> list[Path]:
    """loss.png for every task, then the task's own figures (:data:`TASK_FIGURES`)."""
    loss = _figure(out / "loss.png", lambda ax: plots.plot_losses(result.history, ax),
                   title=f"{result.task.name}: training and validation loss")
    own = TASK_FIGURES.get(result.task.name)
    return [loss, *(own(result, out) if own is not None else [])]


def save_sweep_figure(summaries: list[dict], metric: str, path: Path, *, title: str,
                      goal: float | None = None) -> Path:
    """All seeds' loss curves beside the spread of their final ``metric`` and its goal."""
    return _figure(path, lambda left, right: plots.plot_sweep(summaries, metric, left, right, goal=goal),
                   title=title, size=(11, 4), panels=2)
