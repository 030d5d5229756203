"""``bptt gradflow``: the families at initialisation (decay printed, figure written, JSON as documented), the
exploding regime and what clipping does to it, a trained checkpoint per layer, and the refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bptt.check import gradient_flow
from bptt.cli import main
from bptt.layers.models import CELLS


def _summary(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_the_families_side_by_side(tmp_path, capsys):
    out = tmp_path / "flow.png"
    assert main(["gradflow", "lstm", "gru", "rnn", "--steps", "30", "--hidden-size", "8", "--out", str(out),
                 "--json"]) == 0
    summary = _summary(capsys)
    assert out.read_bytes().startswith(b"\x89PNG") and summary["figure"] == str(out)
    x = np.random.default_rng(0).standard_normal((30, 8, 1))
    for name in ("lstm", "gru", "rnn"):
        flow = gradient_flow(CELLS[name](1, 8, rng=0), x, seed=0)
        entry = summary["families"][name]
        assert entry["decay_per_step"] == pytest.approx(flow.decay_per_step[0], rel=1e-12)
        assert entry["norms"] == pytest.approx(flow.state_norms[0][::-1].tolist(), rel=1e-12)   # by distance
        assert 0 < entry["decay_per_step"] < 1                                                 # vanishing


def test_scaled_recurrent_weights_explode_an_rnn_and_clipping_scales_it_down(tmp_path, capsys):
    assert main(["gradflow", "rnn", "lstm", "--weight-scale", "3", "--clip-norm", "1", "--steps", "40",
                 "--out", str(tmp_path / "x.png"), "--json"]) == 0
    families = _summary(capsys)["families"]
    assert families["rnn"]["decay_per_step"] > 1 and families["rnn"]["norms"][-1] > 10
    assert 0 < families["rnn"]["clip_scale"] < 0.1 and families["lstm"]["decay_per_step"] < 1


def test_a_trained_checkpoint_per_layer_before_and_after(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "sine", "--steps", "3", "--eval-every", "3", "--hidden-size", "4", "--num-layers", "2",
                 "--out", str(run)]) == 0
    capsys.readouterr()
    assert main(["gradflow", str(run / "model.safetensors"), "--steps", "20", "--json"]) == 0
    summary = _summary(capsys)
    assert sorted(summary["layers"]) == ["layer 0", "layer 1"] and (run / "gradflow.png").is_file()
    for layer in summary["layers"].values():
        assert len(layer["initialisation"]["norms"]) == len(layer["checkpoint"]["norms"]) == 20
        assert layer["initialisation"]["norms"] != layer["checkpoint"]["norms"]   # training moved the flow


@pytest.mark.parametrize(("argv", "message"), [
    (["lstm", "model.safetensors"], "expected family names (gru, lstm, rnn) or one checkpoint, got lstm "
                                    "model.safetensors."),
    (["missing.safetensors"], "missing.safetensors"),
])
def test_what_it_cannot_read_is_refused(tmp_path, capsys, argv, message):
    assert main(["gradflow", *argv, "--out", str(tmp_path / "x.png")]) == 2
    error = capsys.readouterr().err
    assert error.startswith("bptt gradflow: ") and message in error


def test_a_checkpoint_reads_another_tasks_data_or_a_file(tmp_path, capsys):
    import pandas as pd

    from bptt.interop.serialization import save
    from bptt.layers.models import LanguageModel
    from bptt.train.experiment import resolve

    run = tmp_path / "sine"
    assert main(["train", "sine", "--steps", "2", "--eval-every", "2", "--hidden-size", "4", "--out", str(run)]) == 0
    capsys.readouterr()
    assert main(["gradflow", str(run / "model.safetensors"), "--data", "sine", "--steps", "10", "--json"]) == 0
    assert "10 steps of 8 sequences of the sine validation data" in capsys.readouterr().out
    assert main(["gradflow", str(run / "model.safetensors"), "--data", "adding"]) == 2      # 2 inputs, not 1
    assert "expected x of shape (T, N, 1), time-major" in capsys.readouterr().err
    assert main(["gradflow", str(run / "model.safetensors"), "--data", str(tmp_path / "some.csv")]) == 2
    assert "expected a task name (" in capsys.readouterr().err

    text = tmp_path / "text.txt"
    text.write_text("abcab cabba\n" * 300)
    vocabulary = "\n abc"
    model = LanguageModel(len(vocabulary), 3, 4, rng=0)
    experiment = resolve("chars", 0, task_options={"text": str(text)}, hidden_size=4)
    checkpoint = save(model, tmp_path / "chars.safetensors", {**experiment.metadata(), "vocabulary": vocabulary})
    assert main(["gradflow", str(checkpoint), "--data", str(text), "--steps", "30", "--batch", "4", "--json"]) == 0
    out = capsys.readouterr().out
    assert f"30 steps of 4 sequences of {text}" in out and len(_line_json(out)["layers"]["layer 0"]["checkpoint"]
                                                                ["norms"]) == 30
    (tmp_path / "other.txt").write_text("xyz")
    assert main(["gradflow", str(checkpoint), "--data", str(tmp_path / "other.txt")]) == 2
    assert "expected a text of the characters the model knows, got" in capsys.readouterr().err

    frame = pd.DataFrame({"x": np.sin(np.arange(80) / 3), "y": np.cos(np.arange(80) / 3)})
    frame.to_csv(tmp_path / "series.csv", index=False)
    forecaster = tmp_path / "csv"
    assert main(["train", "csv", "--file", str(tmp_path / "series.csv"), "--target", "y", "--window", "6",
                 "--steps", "2", "--out", str(forecaster)]) == 0
    capsys.readouterr()
    assert main(["gradflow", str(forecaster / "model.safetensors"), "--data", str(tmp_path / "series.csv"),
                 "--json"]) == 0
    out = capsys.readouterr().out
    assert f"6 steps of 8 sequences of the windows of {tmp_path / 'series.csv'}" in out


def _line_json(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])
