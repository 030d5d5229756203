r"""What a character model learned: a text coloured, character by character, by the activation of one unit.

The figure of Karpathy, Johnson and Fei-Fei (2015), *Visualizing and Understanding Recurrent Networks*: read
a text through a trained :class:`~bptt.layers.models.LanguageModel` as one stream (the state carried from the
first character to the last), record every unit's activation after each character, and paint the character
blue where the unit is negative, white where it is zero and red where it is positive. A unit that tracks
something the text does over long spans (inside a string, inside brackets, the indentation, the position in
the line) shows as long runs of one colour that switch where the thing starts and ends.

Units are named ``LAYER:KIND:INDEX``: ``0:h:5`` is hidden unit 5 of layer 0, ``0:c:17`` is cell unit 17 of
layer 0 (an LSTM's cell state :math:`c_t`, before its :math:`\tanh`). Hidden states of an LSTM and a GRU
lie in :math:`(-1, 1)` and are shown as they are; a cell state is unbounded, so each cell unit is shown
divided by its largest :math:`|c|` on the text (:func:`display_values`).

:func:`activations` records the states, :func:`structure_scores` and :func:`choose_units` pick the units
worth looking at, :func:`html` writes a standalone page and :func:`plot_unit` / :func:`save_png` draw a
PNG (matplotlib, imported inside). ``bptt visualize CHECKPOINT`` does all of it for a model saved by
``bptt train chars``.

Examples
--------
>>> from bptt.layers.models import LanguageModel
>>> text, vocabulary = "abcd\ne" * 8, "\nabcde"                    # 48 characters
>>> model = LanguageModel(len(vocabulary), 4, 8, rng=0)
>>> states = activations(model, [vocabulary.index(c) for c in text])
>>> sorted(states), states[0, "c"].shape
([(0, 'c'), (0, 'h')], (48, 8))
>>> chosen = choose_units(states, k=3)                              # [(Unit, score), ...], best first
>>> labels = [f"{unit.describe()}, structure {score:.2f}" for unit, score in chosen]
>>> page = html(text, display_values(states, [unit for unit, _ in chosen]), labels)
>>> page.count('<section class="unit">')
3
"""

from __future__ import annotations

import html as html_text
from pathlib import Path
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

KINDS = {"h": "hidden state", "c": "cell state"}
"""The kinds of units: every family has hidden states ``h``; an LSTM also has cell states ``c``."""

DEFAULT_UNITS = 6
"""How many units :func:`choose_units` picks by default."""

SMOOTHING = 16
r"""The window, in characters, of the moving average in :func:`structure_scores`: structure slower than
about this many characters counts, faster wiggles do not."""

MAX_CORRELATION = 0.7
""":func:`choose_units` skips a unit whose activation correlates (in absolute value) above this with a unit
already chosen: the hidden and cell state of one unit, or two units that track the same thing, count once."""

NEGATIVE = (33, 102, 172)
"""The colour of -1: RdBu's blue."""

POSITIVE = (178, 24, 43)
"""The colour of +1: RdBu's red."""

NEWLINE_MARK = "\u21b5"
"""Drawn in the place of a newline (then the line breaks), so that the unit's value there has a cell."""


class Unit(NamedTuple):
    """One unit of a model's states: ``layer`` (0-based), ``kind`` (``"h"`` or ``"c"``), ``index``;
    ``str(unit)`` is ``"LAYER:KIND:INDEX"``."""

    layer: int
    kind: str
    index: int

    def __str__(self) -> str:
        return f"{self.layer}:{self.kind}:{self.index}"

    def describe(self) -> str:
        """``"layer 0, cell state, unit 17"``."""
        return f"layer {self.layer}, {KINDS[self.kind]}, unit {self.index}"


# -- the states ------------------------------------------------------------------------------------------------


def activations(model, tokens: object) -> dict[tuple[int, str], NDArray]:
    r"""Every unit's state after each character of ``tokens``, read as one stream from zero states.

    Parameters
    ----------
    model : LanguageModel
        A character model (embedding, recurrent stack of one direction, head). It is stepped through a
        :class:`~bptt.layers.stream.Stream` of its stack, so in evaluation mode (no dropout); the model is
        not changed.
    tokens : (T,) integers
        Character ids, ``T >= 1``.

    Returns
    -------
    dict
        ``(layer, "h") -> (T, S)``: the hidden state :math:`h_t` of each layer (``S`` is ``H``, or an LSTM's
        projection size ``P``); for an LSTM also ``(layer, "c") -> (T, H)``: its raw cell state
        :math:`c_t` (not :math:`\tanh c_t`; :func:`display_values` scales it). Row ``t`` is the state after
        reading character ``t``, the one the model predicts character ``t + 1`` from. float64.
    """
    from bptt.layers.embedding import check_indices
    from bptt.layers.stream import Stream

    where = "activations"
    if not all(hasattr(model, name) for name in ("embedding", "rnn")):
        raise TypeError(f"{where}: expected a LanguageModel (with an embedding and a recurrent stack), got "
                        f"{type(model).__name__}.")
    tokens = check_indices(where, tokens, model.embedding.num_embeddings, "tokens", "vocab_size")
    if tokens.ndim != 1 or tokens.size == 0:
        raise ValueError(f"{where}: expected tokens of shape (T,) with T >= 1, one stream of character ids, got "
                         f"shape {tokens.shape}.")
    embedded = model.embedding.params["weight"][tokens]      # (T, E): e_t = W_E[x_t], the embedding's forward
    stream = Stream(model.rnn)
    state = stream.state
    kinds = ("h", "c") if isinstance(state, tuple) else ("h",)
    steps = {kind: [] for kind in kinds}
    for e_t in embedded:
        stream.step(e_t)
        state = stream.state                                 # fresh arrays, (L, 1, .) each
        for kind, value in zip(kinds, state if isinstance(state, tuple) else (state,), strict=True):
            steps[kind].append(value[:, 0])
    return {(layer, kind): np.stack(steps[kind])[:, layer].astype(np.float64)
            for layer in range(model.rnn.num_layers) for kind in kinds}


def display_values(states: dict[tuple[int, str], NDArray], units: list[Unit]) -> NDArray:
    r"""The activations of ``units`` on the colour scale :math:`[-1, 1]`, ``(K, T)``: a hidden unit as it is
    (divided by its largest :math:`|h|` only where that exceeds 1, as a ReLU RNN's can), a cell unit divided
    by its largest :math:`|c|` on the text."""
    rows = []
    for unit in units:
        values = states[unit.layer, unit.kind][:, unit.index]
        peak = float(np.abs(values).max())
        rows.append(values / (peak if unit.kind == "c" and peak > 0 else max(peak, 1.0)))
    return np.array(rows, dtype=np.float64).reshape(len(units), -1)


# -- which units to show ---------------------------------------------------------------------------------------


def structure_scores(values: NDArray, window: int = SMOOTHING) -> NDArray:
    r"""How much slow structure each column of ``values (T, K)`` has: the standard deviation of its moving
    average over ``window`` characters,

    .. math:: s_j = \operatorname{std}_t \Big( \frac{1}{w} \sum_{k=0}^{w-1} a_{t+k,\,j} \Big),

    on the colour scale (:func:`display_values`). The moving average keeps what changes over more than about
    ``w`` characters and averages away faster wiggles, so a unit scores high when it swings over a wide range
    *and* slowly: a tracker of a state of the text that lasts (inside a string, the indentation). A unit that
    flips at every other character, or one that barely moves, scores near 0; at most 1 (a square wave between
    -1 and 1 with long runs). A text shorter than ``window`` is averaged as a whole: every score is 0.
    """
    values = np.asarray(values, dtype=np.float64)
    T = len(values)
    if T < window:
        return np.zeros(values.shape[1:])
    sums = np.cumsum(np.concatenate([np.zeros((1, *values.shape[1:])), values]), axis=0)
    smooth = (sums[window:] - sums[:-window]) / window            # (T - w + 1, K)
    return smooth.std(axis=0)


def all_units(states: dict[tuple[int, str], NDArray]) -> list[Unit]:
    """Every unit of ``states``, layer by layer, hidden before cell."""
    order = sorted(states, key=lambda key: (key[0], list(KINDS).index(key[1])))
    return [Unit(layer, kind, j) for layer, kind in order for j in range(states[layer, kind].shape[1])]


def choose_units(states: dict[tuple[int, str], NDArray], k: int = DEFAULT_UNITS, *, window: int = SMOOTHING,
                 max_correlation: float = MAX_CORRELATION) -> list[tuple[Unit, float]]:
    """The ``k`` units with the most structure (:func:`structure_scores`) over every layer's hidden and cell
    units, best first, each with its score; a unit whose activation correlates above ``max_correlation`` (in
    absolute value) with one already chosen is skipped, so that ``k`` units show ``k`` different things."""
    units = all_units(states)
    values = display_values(states, units)                         # (U, T)
    scores = structure_scores(values.T, window)
    chosen: list[tuple[Unit, float]] = []
    picked_rows: list[NDArray] = []
    for j in np.argsort(-scores, kind="stable"):
        if len(chosen) == k:
            break
        row = values[j] - values[j].mean()
        norm = np.linalg.norm(row)
        if norm == 0:
            continue
        row = row / norm
        if any(abs(float(row @ other)) > max_correlation for other in picked_rows):
            continue
        chosen.append((units[j], float(scores[j])))
        picked_rows.append(row)
    return chosen


def parse_unit(spec: str, states: dict[tuple[int, str], NDArray]) -> Unit:
    """The unit ``spec`` names: ``LAYER:KIND:INDEX`` (``0:c:17``), or a plain ``INDEX``, which means layer 0's
    cell unit for an LSTM and its hidden unit otherwise. ValueError naming the valid range."""
    where = "parse_unit"
    layers = sorted({layer for layer, _ in states})
    kinds = sorted({kind for _, kind in states}, key=list(KINDS).index)
    form = f"LAYER:KIND:INDEX with LAYER in 0..{layers[-1]}, KIND one of {', '.join(kinds)}, or a plain INDEX"
    parts = spec.strip().split(":")
    if len(parts) == 1:
        parts = ["0", "c" if "c" in kinds else "h", parts[0]]
    if len(parts) != 3 or not parts[0].isdigit() or not parts[2].isdigit():
        raise ValueError(f"{where}: expected a unit as {form}, got {spec!r}.")
    layer, kind, index = int(parts[0]), parts[1], int(parts[2])
    if layer not in layers:
        raise ValueError(f"{where}: expected a layer in 0..{layers[-1]}, got {layer} in {spec!r}.")
    if kind not in kinds:
        raise ValueError(f"{where}: expected a kind from {', '.join(kinds)} (h: hidden state, c: an LSTM's cell "
                         f"state), got {kind!r} in {spec!r}.")
    size = states[layer, kind].shape[1]
    if index >= size:
        raise ValueError(f"{where}: expected a unit index in 0..{size - 1} for layer {layer}'s {KINDS[kind]}, got "
                         f"{index} in {spec!r}.")
    return Unit(layer, kind, index)


# -- colours ---------------------------------------------------------------------------------------------------


def colours(values: object) -> NDArray:
    """Diverging colours of ``values`` (any shape) clipped to [-1, 1]: :data:`NEGATIVE` at -1, white at 0,
    :data:`POSITIVE` at +1, linear in between; RGB in 0..255, the shape of ``values`` plus 3. NaN: white."""
    v = np.clip(np.nan_to_num(np.asarray(values, dtype=np.float64), nan=0.0), -1.0, 1.0)[..., None]
    white = np.full(3, 255.0)
    end = np.where(v >= 0, np.array(POSITIVE, dtype=np.float64), np.array(NEGATIVE, dtype=np.float64))
    return np.rint(white + np.abs(v) * (end - white)).astype(np.uint8)


# -- the HTML page ---------------------------------------------------------------------------------------------

LEVELS = 20
"""The HTML page rounds each value to a multiple of ``1 / LEVELS`` and gives each of the ``2 LEVELS + 1``
colours a CSS class (the page is smaller; the eye cannot tell the difference). The exact value is in each
character's tooltip."""

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 70em; padding: 0 1em; color: #222; }
h1 { font-size: 1.3em; }
.note { color: #555; }
.unit { margin: 1.5em 0; }
.legend { font-weight: 600; margin: 0 0 0.3em; }
.text { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 13px;
        line-height: 1.45; white-space: pre-wrap; border: 1px solid #ddd; padding: 0.5em; margin: 0; }
.text span { display: inline-block; white-space: pre; }
.nl { color: #999; }
"""


def _level(value: float) -> int:
    """The colour class of ``value``: a multiple of ``1 / LEVELS`` in [-1, 1] times ``LEVELS``; NaN is 0."""
    return int(np.rint(np.clip(np.nan_to_num(value), -1.0, 1.0) * LEVELS))


def _class(level: int) -> str:
    return f"n{-level}" if level < 0 else f"p{level}"


def _css_colours() -> str:
    levels = np.arange(-LEVELS, LEVELS + 1)
    rgb = colours(levels / LEVELS)
    return "\n".join(f".{_class(int(level))} {{ background: #{r:02x}{g:02x}{b:02x}; }}"
                     for level, (r, g, b) in zip(levels, rgb, strict=True))


def _scale() -> str:
    cells = "".join(f'<span class="{_class(level)}">&nbsp;</span>' for level in range(-LEVELS, LEVELS + 1))
    return f'<p class="note">-1 <span class="text" style="padding: 0; border: 0">{cells}</span> +1</p>'


def html(text: str, values: object, labels: list[str], *, title: str = "What the network learned",
         note: str = "") -> str:
    r"""A standalone HTML page (inline CSS, nothing fetched): ``text`` once per unit, each character a
    ``<span>`` coloured by that unit's value at it.

    Parameters
    ----------
    text : str
        ``T`` characters; HTML-escaped, whitespace kept (``white-space: pre-wrap``, each character an inline
        block so that its background covers the whole line height). A newline is drawn as
        :data:`NEWLINE_MARK` coloured by its value, then breaks the line.
    values : (K, T)
        Each unit's value at each character on the colour scale, blue -1, white 0, red +1 (clipped; see
        :func:`display_values`).
    labels : K strings
        Each block's one-line legend (escaped).
    title, note : str
        The page's title and a line of text under it (escaped).
    """
    where = "html"
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2 or values.shape[1] != len(text):
        raise ValueError(f"{where}: expected values of shape (K, {len(text)}), one row per unit and one value per "
                         f"character of text, got {values.shape}.")
    if len(labels) != len(values):
        raise ValueError(f"{where}: expected one label per unit, {len(values)}, got {len(labels)}.")
    escaped = [html_text.escape(c, quote=True) for c in text]
    blocks = []
    for row, label in zip(values, labels, strict=True):
        spans = []
        for char, plain, value in zip(escaped, text, row, strict=True):
            shown = f'<span class="nl">{NEWLINE_MARK}</span>' if plain == "\n" else char
            spans.append(f'<span class="{_class(_level(value))}" title="{value:+.2f}">{shown}</span>'
                         + ("\n" if plain == "\n" else ""))
        blocks.append(f'<section class="unit">\n<p class="legend">{html_text.escape(label)}</p>\n'
                      f'<div class="text">{"".join(spans)}</div>\n</section>')
    heading = html_text.escape(title)
    subtitle = f'<p class="note">{html_text.escape(note)}</p>\n' if note else ""
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{heading}</title>\n'
            f"<style>{_STYLE}{_css_colours()}\n</style>\n</head>\n<body>\n<h1>{heading}</h1>\n{subtitle}"
            f"{_scale()}\n" + "\n".join(blocks) + "\n</body>\n</html>\n")


# -- the PNG ---------------------------------------------------------------------------------------------------


def grid(text: str, width: int = 80, rows: int = 24) -> tuple[NDArray, NDArray]:
    """Where each character goes in a monospace grid of ``rows`` lines of ``width`` cells: the text's own
    lines, a newline taking one cell (:data:`NEWLINE_MARK`) and a line longer than ``width`` wrapped. Returns
    the ``row`` and ``column`` of each character, ``(T,)`` each; characters past the last row get row -1."""
    row, column = np.full(len(text), -1), np.full(len(text), -1)
    r = c = 0
    for t, char in enumerate(text):
        if c == width:
            r, c = r + 1, 0
        if r == rows:
            break
        row[t], column[t] = r, c
        if char == "\n":
            r, c = r + 1, 0
        else:
            c += 1
    return row, column


def plot_unit(text: str, values: object, ax, *, label: str = "", width: int = 80, rows: int = 24,
              fontsize: float = 8.0):
    """Draw ``text`` on ``ax`` as a monospace grid (:func:`grid`), each cell coloured by ``values (T,)`` (the
    colour scale of :func:`colours`), ``label`` as the title; returns ``ax``."""
    values = np.asarray(values, dtype=np.float64)
    row, column = grid(text, width, rows)
    image = np.full((rows, width, 3), 255, dtype=np.uint8)
    shown = row >= 0
    image[row[shown], column[shown]] = colours(values[shown])
    ax.imshow(image, interpolation="nearest", aspect="auto", extent=(-0.5, width - 0.5, rows - 0.5, -0.5))
    for t in np.flatnonzero(shown):
        char = text[t]
        if char == "\n":
            ax.text(column[t], row[t], NEWLINE_MARK, ha="center", va="center", fontsize=fontsize, color="0.55",
                    family="DejaVu Sans Mono")
        elif not char.isspace():
            ax.text(column[t], row[t], char, ha="center", va="center", fontsize=fontsize,
                    family="DejaVu Sans Mono")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_color("0.8")
    ax.set_title(label, loc="left", fontsize=fontsize + 1, pad=3)
    return ax


def save_png(path: str | Path, text: str, values: object, labels: list[str], *, width: int = 80, rows: int = 24,
             columns: int = 2, fontsize: float = 8.0, title: str = "", dpi: int = 90) -> Path:
    """One :func:`plot_unit` panel per row of ``values (K, T)``, ``columns`` panels side by side, saved at
    ``path``; returns it. A cell is sized to the monospace font (0.68 em wide, 1.45 em high)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    values = np.asarray(values, dtype=np.float64)
    K = len(values)
    columns = max(1, min(columns, K))
    lines = -(-K // columns)
    cell_width, cell_height, label_height = 0.68 * fontsize / 72, 1.45 * fontsize / 72, 2.6 * fontsize / 72
    size = (columns * (width * cell_width + 0.25), lines * (rows * cell_height + label_height) + 0.1)
    fig, axes = plt.subplots(lines, columns, figsize=(size[0], size[1] + (0.3 if title else 0)), squeeze=False)
    for ax, row, label in zip(axes.flat, values, labels, strict=False):
        plot_unit(text, row, ax, label=label, width=width, rows=rows, fontsize=fontsize)
    for ax in axes.flat[K:]:
        ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=fontsize + 2)
    fig.tight_layout(h_pad=0.4, w_pad=0.8, pad=0.3)
    path = Path(path)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path
