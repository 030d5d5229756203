"""bptt.train.visualize and ``bptt visualize``: the states are the model's own, the score prefers slow units, the
HTML page is escaped and standalone, and the command line writes both files or refuses with exit 2."""

from __future__ import annotations

import json
import re
import textwrap
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

import bptt
from bptt.cli import main
from bptt.layers.models import LanguageModel
from bptt.train.tasks.chars import CharsTask
from bptt.train.visualize import (
    NEGATIVE,
    NEWLINE_MARK,
    POSITIVE,
    Unit,
    activations,
    choose_units,
    colours,
    display_values,
    grid,
    html,
    parse_unit,
    structure_scores,
)

# --- The states -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_activations_are_the_states_of_the_models_own_forward_pass(cell):
    """Every layer's state after character t is the final state of the model's forward over characters 0..t,
    and the last layer's hidden states are the stack's output sequence."""
    rng = np.random.default_rng(1)
    model = LanguageModel(7, 4, 5, num_layers=2, cell=cell, rng=0)
    tokens = rng.integers(0, 7, size=30)
    states = activations(model, tokens)
    kinds = ("h", "c") if cell == "lstm" else ("h",)
    assert sorted(states) == sorted((layer, kind) for layer in range(2) for kind in kinds)
    assert all(value.shape == (30, 5) and value.dtype == np.float64 for value in states.values())

    out, _ = model.rnn(model.embedding(tokens[:, None]))                 # (T, 1, H)
    np.testing.assert_allclose(states[1, "h"], out[:, 0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(model.head(states[1, "h"]), model(tokens), rtol=0, atol=1e-12)
    for t in (0, 6, 17, 29):
        model(tokens[:t + 1])
        final = model.final_state if cell == "lstm" else (model.final_state,)
        for kind, state in zip(kinds, final, strict=True):
            for layer in range(2):
                np.testing.assert_allclose(states[layer, kind][t], state[layer], rtol=0, atol=1e-12)


def test_activations_carry_the_state_across_chunks_as_one_stream():
    """Reading the text in two forward calls, the second from the first's final state, gives the same states."""
    model = LanguageModel(6, 3, 4, rng=2)
    tokens = np.random.default_rng(3).integers(0, 6, size=40)
    states = activations(model, tokens)
    model(tokens[:25])
    model(tokens[25:], hx=model.final_state)
    h_n, c_n = model.final_state
    np.testing.assert_allclose(states[0, "h"][-1], h_n[0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(states[0, "c"][-1], c_n[0], rtol=0, atol=1e-12)


def test_activations_refuse_tokens_that_are_not_one_stream_of_ids():
    model = LanguageModel(6, 3, 4, rng=0)
    with pytest.raises(ValueError, match=r"expected tokens of shape \(T,\)"):
        activations(model, np.zeros((3, 2), dtype=int))
    with pytest.raises(ValueError, match="vocab_size"):
        activations(model, [0, 6])
    with pytest.raises(TypeError, match="expected a LanguageModel"):
        activations(bptt.LSTM(3, 4, rng=0), [0, 1])


def test_display_values_show_hidden_units_as_they_are_and_cells_divided_by_their_largest_magnitude():
    states = {(0, "h"): np.array([[0.5, 0.1], [-0.25, 0.2]]), (0, "c"): np.array([[2.0, 0.0], [-4.0, 0.0]])}
    shown = display_values(states, [Unit(0, "h", 0), Unit(0, "c", 0), Unit(0, "c", 1)])
    np.testing.assert_array_equal(shown, [[0.5, -0.25], [0.5, -1.0], [0.0, 0.0]])


# --- Which units ----------------------------------------------------------------------------------------------


def _planted(T: int = 600):
    """Unit 0 slow (runs of 40 characters at +-0.8), unit 1 fast (+-0.9 at every other character), unit 2 a
    small wiggle, with a little noise."""
    rng = np.random.default_rng(0)
    t = np.arange(T)
    slow = 0.8 * np.where((t // 40) % 2 == 0, 1.0, -1.0)
    fast = 0.9 * np.where(t % 2 == 0, 1.0, -1.0)
    small = 0.05 * np.sin(t / 30)
    return np.stack([slow, fast, small], axis=1) + 0.02 * rng.standard_normal((T, 3))


def test_the_score_prefers_a_slow_wide_unit_to_a_fast_one_and_to_a_quiet_one():
    scores = structure_scores(_planted())
    assert scores[0] > 0.6 and scores[1] < 0.05 and scores[2] < 0.06
    assert np.std(_planted()[:, 1]) > np.std(_planted()[:, 0])        # the fast one has more variance in all
    assert [unit for unit, _ in choose_units({(0, "h"): _planted()}, k=1)] == [Unit(0, "h", 0)]


def test_choose_units_counts_a_unit_and_its_scaled_twin_once():
    planted = _planted()
    states = {(0, "h"): planted, (0, "c"): 3.0 * planted[:, :1] / np.abs(planted[:, 0]).max()}
    chosen = choose_units(states, k=2)               # the twin, shown at full scale, first; the slow h skipped
    assert [unit for unit, _ in chosen] == [Unit(0, "c", 0), Unit(0, "h", 2)]
    assert chosen[0][1] > chosen[1][1]
    assert [unit for unit, _ in choose_units(states, k=2, max_correlation=1.01)] == [Unit(0, "c", 0),
                                                                                      Unit(0, "h", 0)]


def test_structure_scores_of_a_text_shorter_than_the_window_are_zero():
    np.testing.assert_array_equal(structure_scores(np.ones((5, 2)), window=16), [0.0, 0.0])


@pytest.mark.parametrize(("spec", "unit"), [("0:c:3", Unit(0, "c", 3)), ("1:h:4", Unit(1, "h", 4)),
                                            ("3", Unit(0, "c", 3))])
def test_parse_unit(spec, unit):
    states = {(layer, kind): np.zeros((2, 5)) for layer in range(2) for kind in "hc"}
    assert parse_unit(spec, states) == unit


def test_a_plain_index_is_a_hidden_unit_without_cells():
    assert parse_unit("2", {(0, "h"): np.zeros((2, 5))}) == Unit(0, "h", 2)


@pytest.mark.parametrize(("spec", "message"), [("0:c:5", r"index in 0\.\.4"), ("2:h:0", r"layer in 0\.\.1"),
                                               ("0:x:1", "kind from h, c"), ("a:b", "LAYER:KIND:INDEX"),
                                               ("-1", "LAYER:KIND:INDEX"), ("9", r"0\.\.4")])
def test_parse_unit_names_the_valid_range(spec, message):
    states = {(layer, kind): np.zeros((2, 5)) for layer in range(2) for kind in "hc"}
    with pytest.raises(ValueError, match=message):
        parse_unit(spec, states)


# --- Colours, the page and the grid ---------------------------------------------------------------------------


def test_colours_are_blue_white_red_and_clipped():
    rgb = colours([-1.0, 0.0, 1.0, 3.0, -0.5, np.nan])
    assert [tuple(c) for c in rgb[:4]] == [NEGATIVE, (255, 255, 255), POSITIVE, POSITIVE]
    assert tuple(rgb[4]) == tuple(round(255 + 0.5 * (n - 255)) for n in NEGATIVE)
    assert tuple(rgb[5]) == (255, 255, 255)


class _Blocks(HTMLParser):
    """The text of each ``<div class="text">`` of a page, entities decoded, and every tag's attributes."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.blocks, self.attributes, self._depth = [], [], 0

    def handle_starttag(self, tag, attrs):
        self.attributes.extend(attrs)
        if tag == "div" and ("class", "text") in attrs:
            self.blocks.append("")
            self._depth = 1
        elif self._depth:
            self._depth += 1

    def handle_endtag(self, tag):
        if self._depth:
            self._depth -= 1

    def handle_data(self, data):
        if self._depth:
            self.blocks[-1] += data


TRICKY = "if a < b && c > 'd':\n\treturn \"<script>alert(1)</script>\"  # ok\n\n  x = 1"


def test_the_page_escapes_the_text_keeps_its_whitespace_and_has_one_block_per_unit():
    values = np.random.default_rng(0).uniform(-1, 1, (3, len(TRICKY)))
    page = html(TRICKY, values, ["unit <1>", "unit & 2", 'unit "3"'], title="a <title>")
    parser = _Blocks()
    parser.feed(page)
    assert len(parser.blocks) == 3 and page.count('<section class="unit">') == 3
    assert all(block.replace(NEWLINE_MARK, "") == TRICKY for block in parser.blocks)
    tags = r"<(?:!DOCTYPE|/?(?:html|head|meta|title|style|body|h1|p|section|div|span)\b)"
    assert not re.findall(rf"<(?!{tags[1:]})", page)                   # every < opens one of the page's tags
    assert all(f">{entity}</span>" in page for entity in ("&lt;", "&gt;", "&amp;", "&quot;", "&#x27;"))
    assert "unit &lt;1&gt;" in page and "unit &amp; 2" in page and "a &lt;title&gt;" in page
    assert "white-space: pre-wrap" in page
    assert page.count('title="') == 3 * len(TRICKY)                     # one tooltip per character and unit


def test_the_page_is_standalone():
    page = html("abc\n", np.zeros((1, 4)), ["u"])
    parser = _Blocks()
    parser.feed(page)
    assert not re.search(r"https?:|//|@import|url\(", page)
    assert not {name for name, _ in parser.attributes} & {"src", "href"}


def test_the_page_refuses_values_of_another_shape():
    with pytest.raises(ValueError, match=r"shape \(K, 3\)"):
        html("abc", np.zeros((1, 4)), ["u"])
    with pytest.raises(ValueError, match="one label per unit"):
        html("abc", np.zeros((2, 3)), ["u"])


def test_grid_keeps_lines_wraps_long_ones_and_stops_after_the_last_row():
    row, column = grid("ab\ncdefg\nh", width=3, rows=3)
    assert row.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, -1]
    assert column.tolist() == [0, 1, 2, 0, 1, 2, 0, 1, 2, -1]


# --- The command line -----------------------------------------------------------------------------------------

TEXT = Path(textwrap.__file__).read_text(encoding="utf-8")[:6000]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """An untrained character model saved as bptt train chars saves one, over a text file of its own."""
    folder = tmp_path_factory.mktemp("run")
    text = folder / "text.txt"
    text.write_text(TEXT, encoding="utf-8")
    task = CharsTask(text=str(text))
    model = LanguageModel(len(task.vocabulary), 8, 16, rng=0)
    checkpoint = folder / "model.safetensors"
    bptt.save(model, checkpoint, {"task": "chars", "task_options": {"text": str(text)}, "seed": 0,
                                  **task.checkpoint_metadata()})
    return checkpoint, task


def test_visualize_writes_the_page_and_the_png_beside_the_checkpoint_from_the_test_text(run, capsys):
    checkpoint, task = run
    assert main(["visualize", str(checkpoint), "--length", "200", "--json"]) == 0
    out = capsys.readouterr().out
    summary = json.loads(out.strip().splitlines()[-1])
    page, png = checkpoint.parent / "cells.html", checkpoint.parent / "cells.png"
    assert summary["html"] == str(page) and summary["png"] == str(png) and summary["characters"] == 200
    assert len(summary["units"]) == 6 and out.count("| structure ") == 6
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    test_text = task.decode(task.splits["test"])
    shown = test_text[test_text.index("\n") + 1:][:200]                     # from the first line start
    blocks = _Blocks()
    blocks.feed(page.read_text(encoding="utf-8"))
    assert len(blocks.blocks) == 6 and blocks.blocks[0].replace(NEWLINE_MARK, "") == shown


def test_visualize_shows_the_units_asked_for_in_a_text_given(run, tmp_path, capsys):
    checkpoint, _ = run
    text = tmp_path / "mine.txt"
    text.write_text("def f(x):\n    return 'x' + x\n", encoding="utf-8")
    out = tmp_path / "pics" / "mine.html"
    assert main(["visualize", str(checkpoint), "--text", str(text), "--units", "0:h:2", "5", "--out", str(out),
                 "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [u["unit"] for u in summary["units"]] == ["0:h:2", "0:c:5"]
    assert out.is_file() and out.with_suffix(".png").is_file()
    blocks = _Blocks()
    blocks.feed(out.read_text(encoding="utf-8"))
    assert blocks.blocks == [f"def f(x):{NEWLINE_MARK}\n    return 'x' + x{NEWLINE_MARK}\n"] * 2


def test_visualize_refuses_a_checkpoint_that_is_not_a_character_model(tmp_path, capsys):
    path = tmp_path / "lstm.safetensors"
    bptt.save(bptt.LSTM(3, 4, rng=0), path)
    assert main(["visualize", str(path)]) == 2
    assert "expected a character model saved by bptt train chars" in capsys.readouterr().err
    assert not (tmp_path / "cells.html").exists()


@pytest.mark.parametrize(("content", "message"), [
    ("def f():\n    return '\u2603'\n", r"whose '\u2603' it never saw"),
    (b"ab\xff", "is not UTF-8"),
    (None, "does not exist"),
])
def test_visualize_refuses_a_text_it_cannot_read_with_exit_2(run, tmp_path, capsys, content, message):
    checkpoint, _ = run
    path = tmp_path / "text.txt"
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    elif content is not None:
        path.write_bytes(content)
    assert main(["visualize", str(checkpoint), "--text", str(path), "--out", str(tmp_path / "v.html")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("bptt visualize: ") and re.search(message, err)
    assert not (tmp_path / "v.html").exists()


@pytest.mark.parametrize(("units", "message"), [(["0:c:16"], r"0\.\.15"), (["1:h:0"], r"layer in 0\.\.0"),
                                                (["0:q:1"], "kind from h, c"), (["x"], "LAYER:KIND:INDEX")])
def test_visualize_refuses_bad_units_naming_the_valid_range(run, tmp_path, capsys, units, message):
    checkpoint, _ = run
    assert main(["visualize", str(checkpoint), "--units", *units, "--length", "50",
                 "--out", str(tmp_path / "v.html")]) == 2
    assert re.search(message, capsys.readouterr().err)
    assert not (tmp_path / "v.html").exists()


def test_visualize_asks_for_a_text_when_the_runs_text_is_gone(run, tmp_path, capsys):
    checkpoint, task = run
    model = LanguageModel(len(task.vocabulary), 8, 16, rng=0)
    moved = tmp_path / "model.safetensors"
    bptt.save(model, moved, {"task": "chars", "task_options": {"text": str(tmp_path / "gone.txt")}, "seed": 0,
                             "vocabulary": task.vocabulary})
    assert main(["visualize", str(moved)]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "--text FILE" in err
