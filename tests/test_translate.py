"""``bptt translate``: the output the checkpoint's model decodes for one input (greedy or beam), its attention
map, and the errors for what it cannot read."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from bptt.cli import main
from bptt.interop.serialization import save
from bptt.layers.lstm import LSTM
from bptt.train.tasks.addition import AdditionTask
from bptt.train.tasks.dates import DatesTask


@pytest.fixture
def dates_run(tmp_path):
    """A small untrained model of the dates task, saved as ``bptt train dates`` saves one (seed 3)."""
    task = DatesTask(seed=3)
    model = task.build_model(16, rng=np.random.default_rng(0))
    path = save(model, tmp_path / "model.safetensors", {"task": "dates", "seed": 3, "task_options": {}})
    return task, model, path


def _summary(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.mark.parametrize("beam", [1, 3])
def test_the_output_is_the_models_decoding_of_the_normalized_text(dates_run, capsys, beam):
    task, model, path = dates_run
    model.eval()
    assert main(["translate", str(path), "  March 3, 1987", "--beam", str(beam), "--json"]) == 0
    summary = _summary(capsys)
    expected = task.translate(model, ["march 3, 1987"], beam=beam)[0]
    assert summary["source"] == "march 3, 1987" and summary["beam"] == beam
    assert summary["output"] == task.decode_target(expected.tokens)
    assert summary["score"] == pytest.approx(expected.score)


def test_attention_writes_a_map_as_wide_as_the_input(dates_run, tmp_path, capsys):
    _, _, path = dates_run
    out = tmp_path / "maps" / "one.png"
    assert main(["translate", str(path), "tuesday 3 march 1987", "--attention", str(out), "--json"]) == 0
    assert _summary(capsys)["attention"] == str(out)
    with Image.open(out) as image:
        assert image.width >= 0.25 * len("tuesday 3 march 1987") * 120 and image.height > 300


def test_an_addition_run_reads_its_task_options(tmp_path, capsys):
    task = AdditionTask(digits=2, reverse=True)
    model = task.build_model(8, rng=np.random.default_rng(1))
    path = save(model, tmp_path / "model.safetensors",
                {"task": "addition", "seed": 0, "task_options": {"digits": 2, "reverse": True}})
    assert main(["translate", str(path), "12+7", "--json"]) == 0
    model.eval()
    assert _summary(capsys)["output"] == task.decode_target(task.translate(model, ["12+7"])[0].tokens)


def test_a_checkpoint_of_another_model_is_refused(tmp_path, capsys):
    path = save(LSTM(2, 3, rng=np.random.default_rng(0)), tmp_path / "lstm.safetensors", {"task": "sine"})
    assert main(["translate", str(path), "1+1"]) == 2
    assert "expected a Seq2Seq saved by bptt train addition or dates, got a LSTM of task 'sine'" in \
        capsys.readouterr().err


@pytest.mark.parametrize(("text", "message"), [
    ("3 märz 1987", "expected a source of the characters ' ,-./0123456789abcdefghijklmnopqrstuvwxyz', got "
                    "'3 märz 1987' with 'ä'."),
    ("   ", "expected a text of the characters ' ,-./0123456789abcdefghijklmnopqrstuvwxyz', got an empty one."),
])
def test_text_the_task_cannot_read_is_refused(dates_run, capsys, text, message):
    assert main(["translate", str(dates_run[2]), text]) == 2
    assert capsys.readouterr().err == f"bptt translate: {message}\n"
