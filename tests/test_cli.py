"""The command line as a user runs it, in a temporary folder."""

import json
import subprocess
import sys

import numpy as np
import pytest

from bptt.cli import main
from bptt.io import load_arrays


def run_cli(capsys, *argv):
    code = main(list(argv))
    return code, capsys.readouterr().out


def test_train_sine_writes_checkpoint_metrics_figures_and_json(tmp_path, capsys):
    out = tmp_path / "run"
    code, stdout = run_cli(capsys, "train", "sine", "--steps", "20", "--hidden-size", "8", "--seed", "3",
                           "--out", str(out), "--json")
    assert code == 0
    lines = stdout.strip().splitlines()
    assert lines[0].startswith("bptt train sine | hidden-size 8")
    summary = json.loads(lines[-1])
    assert summary["steps"] == 20 and summary["seed"] == 3
    assert np.isfinite(summary["test_mse"]) and summary["seconds"] > 0
    assert summary["checkpoint"] == str(out / "model.safetensors")
    for name in ("model.safetensors", "metrics.jsonl", "loss.png", "prediction.png"):
        assert (out / name).stat().st_size > 0, name
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 21))
    assert rows[-1]["test_mse"] == pytest.approx(summary["test_mse"])
    assert "step    20 | loss" in stdout


def test_checkpoint_has_pytorch_names_and_loads_into_torch(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    out = tmp_path / "run"
    assert run_cli(capsys, "train", "sine", "--steps", "5", "--hidden-size", "6", "--out", str(out))[0] == 0
    arrays, metadata = load_arrays(out / "model.safetensors")
    assert sorted(arrays) == sorted(["rnn.weight_ih_l0", "rnn.weight_hh_l0", "rnn.bias_ih_l0", "rnn.bias_hh_l0",
                                     "head.weight", "head.bias"])
    assert metadata["class"] == "SequenceRegressor" and metadata["hidden_size"] == 6

    class Regressor(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = torch.nn.LSTM(1, 6, dtype=torch.float64)
            self.head = torch.nn.Linear(6, 1, dtype=torch.float64)

        def forward(self, x):
            return self.head(self.rnn(x)[0])

    reference = Regressor()
    reference.load_state_dict({k: torch.from_numpy(v) for k, v in arrays.items()})
    from bptt.models import SequenceRegressor

    model = SequenceRegressor(1, 6, 1)
    model.load_state_dict(arrays)
    x = np.random.default_rng(0).normal(size=(7, 2, 1))
    np.testing.assert_allclose(model(x), reference(torch.from_numpy(x)).detach().numpy(), rtol=1e-12, atol=1e-14)


def test_same_seed_same_result(tmp_path, capsys):
    results = []
    for name in ("a", "b"):
        run_cli(capsys, "train", "sine", "--steps", "10", "--hidden-size", "4", "--out", str(tmp_path / name), "--json")
        results.append(load_arrays(tmp_path / name / "model.safetensors")[0])
    for key in results[0]:
        np.testing.assert_array_equal(results[0][key], results[1][key])


@pytest.mark.parametrize("argv, message", [
    (["train", "cosine"], "invalid choice: 'cosine'"),
    (["train", "sine", "--steps", "0"], "expected an integer >= 1, got 0"),
    (["train", "sine", "--lr", "-1"], "expected a number > 0, got -1"),
    ([], "the following arguments are required: VERB"),
])
def test_bad_usage_exits_2_with_a_message(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_python_dash_m_entry_point(tmp_path):
    result = subprocess.run([sys.executable, "-m", "bptt", "train", "sine", "--steps", "3", "--hidden-size", "4",
                             "--out", str(tmp_path), "--json"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1])["steps"] == 3
