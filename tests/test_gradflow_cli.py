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
