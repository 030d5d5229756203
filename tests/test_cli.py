"""The command line as a user runs it, in a temporary folder."""

import json
import subprocess
import sys

import numpy as np
import pytest

from bptt import load
from bptt.cli import main
from bptt.interop.io import load_arrays
from bptt.train.fit import load_train_state


def run_cli(capsys, *argv):
    code = main(list(argv))
    return code, capsys.readouterr().out


def test_train_with_dtype_float32_trains_and_saves_float32_weights(tmp_path, capsys):
    code, stdout = run_cli(capsys, "train", "sine", "--steps", "10", "--hidden-size", "8", "--dtype", "float32",
                           "--out", str(tmp_path), "--json")
    assert code == 0
    assert "| float32 |" in stdout.splitlines()[0]
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary["dtype"] == "float32" and np.isfinite(summary["test_mse"])
    model = load(tmp_path / "model.safetensors")
    assert {value.dtype for value in model.params.values()} == {np.dtype(np.float32)}
    assert load_arrays(tmp_path / "model.safetensors")[1]["dtype"] == "float32"


def test_train_refuses_an_unknown_dtype(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "sine", "--dtype", "float16"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'float16'" in capsys.readouterr().err


def test_train_sine_writes_checkpoint_metrics_figures_and_json(tmp_path, capsys):
    out = tmp_path / "run"
    code, stdout = run_cli(capsys, "train", "sine", "--steps", "20", "--hidden-size", "8", "--seed", "3",
                           "--out", str(out), "--json")
    assert code == 0
    lines = stdout.strip().splitlines()
    assert lines[0].startswith("bptt train | task sine | model lstm | hidden-size 8")
    summary = json.loads(lines[-1])
    assert summary["steps"] == 20 and summary["seed"] == 3
    assert np.isfinite(summary["test_mse"]) and summary["seconds"] > 0
    assert summary["checkpoint"] == str(out / "model.safetensors")
    for name in ("model.safetensors", "train_state.safetensors", "metrics.jsonl", "loss.png", "prediction.png",
                 "generation.png"):
        assert (out / name).stat().st_size > 0, name
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 21))
    assert np.isfinite(rows[-1]["val_loss"]) and "val_loss" not in rows[0]
    assert "generation_mse" in summary and summary["best_step"] in (10, 20)
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
    from bptt.layers.models import SequenceRegressor

    model = SequenceRegressor(1, 6, 1)
    model.load_state_dict(arrays)
    x = np.random.default_rng(0).normal(size=(7, 2, 1))
    np.testing.assert_allclose(model(x), reference(torch.from_numpy(x)).detach().numpy(), rtol=1e-12, atol=1e-14)


def test_checkpoint_loads_with_bptt_load_and_keeps_the_run_settings(tmp_path, capsys):
    out = tmp_path / "run"
    assert run_cli(capsys, "train", "sine", "--steps", "6", "--hidden-size", "5", "--eval-every", "3", "--seed", "2",
                   "--model", "gru", "--out", str(out))[0] == 0
    model = load(out / "model.safetensors")
    arrays, metadata = load_arrays(out / "model.safetensors")
    assert type(model).__name__ == "SequenceRegressor" and model.config()["cell"] == "gru"
    assert model.config()["hidden_size"] == 5 and sorted(model.params) == sorted(arrays)
    for name, value in arrays.items():
        np.testing.assert_array_equal(model.params[name], value, err_msg=name)
    assert metadata["task"] == "sine" and metadata["seed"] == 2 and metadata["train_config"]["steps"] == 6
    state = load_train_state(out / "train_state.safetensors")[0]
    assert state.step == 6 and metadata["step"] == state.history.best_step


def test_same_seed_same_result(tmp_path, capsys):
    results = []
    for name in ("a", "b"):
        run_cli(capsys, "train", "sine", "--steps", "10", "--hidden-size", "4", "--out", str(tmp_path / name), "--json")
        results.append(load_arrays(tmp_path / name / "model.safetensors")[0])
    for key in results[0]:
        np.testing.assert_array_equal(results[0][key], results[1][key])


@pytest.mark.parametrize("argv, message", [
    (["train", "cosine"], "invalid choice: 'cosine'"),
    (["train", "sine", "--model", "transformer"], "invalid choice: 'transformer'"),
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


@pytest.mark.parametrize("task, metrics", [
    ("adding", {"test_mse", "baseline_mse"}),
    ("copy", {"accuracy", "test_loss", "chance_accuracy"}),
    ("sunspots", {"test_mse", "persistence_mse", "skill"}),
])
def test_every_task_trains_from_the_cli(task, metrics, tmp_path, capsys):
    code, stdout = run_cli(capsys, "train", task, "--steps", "3", "--hidden-size", "4", "--eval-every", "2",
                           "--model", "gru", "--out", str(tmp_path), "--json")
    assert code == 0
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert metrics <= set(summary) and summary["model"] == "gru" and summary["steps"] == 3
    for name in ("model.safetensors", "loss.png", "prediction.png"):
        assert (tmp_path / name).stat().st_size > 0, name


def test_sweep_reports_every_seed_the_success_rate_and_a_figure(tmp_path, capsys):
    code, stdout = run_cli(capsys, "sweep", "sine", "--seeds", "2", "--workers", "2", "--steps", "10",
                           "--hidden-size", "4", "--out", str(tmp_path), "--json")
    assert code == 1  # 10 steps cannot reach the sine task's goals
    lines = stdout.strip().splitlines()
    assert lines[0].startswith("bptt sweep | task sine")
    assert any(line.startswith("seed   0 | FAIL | test_mse") for line in lines)
    assert "0/2 seeds reached test_mse < 0.0001, generation_mse < 0.01" in stdout
    summary = json.loads(lines[-1])
    assert [run["seed"] for run in summary["runs"]] == [0, 1] and summary["passed"] == 0
    assert (tmp_path / "sweep.png").stat().st_size > 0
    assert "gradient flow at initialisation (layer 0, loss at the last step): no seed met the goals" in stdout
    assert summary["gradflow_figure"] == str(tmp_path / "gradflow.png") and (tmp_path / "gradflow.png").is_file()
    assert all(0 < run["decay_per_step"]["layer 0"] < 1 for run in summary["runs"])   # a vanishing flow


def test_sweep_contrasts_the_flow_of_failed_and_passing_seeds():
    from bptt.cli.sweep import _contrast

    def runs(*pairs):
        return [{"success": ok, "decay_per_step": {"layer 0": 0.1, "layer 1": rate}} for ok, rate in pairs]

    assert _contrast(runs((True, 0.6), (True, 0.7), (False, 0.65)), "layer 1").endswith(
        "the failures lie within the passing seeds' range, so the flow at initialisation does not tell them apart")
    assert _contrast(runs((True, 0.6), (True, 0.7), (False, 0.9)), "layer 1").startswith(
        "seeds that met the goals median 0.650 (0.600-0.700), seeds that failed median 0.900 (0.900-0.900)")
    assert _contrast(runs((True, 0.6), (True, 0.7)), "layer 1").startswith(
        "every seed met the goals, nothing to contrast")


def test_a_sweep_of_an_encoder_decoder_says_why_it_has_no_flow(tmp_path, capsys):
    from bptt.cli.sweep import _seed_flows
    from bptt.train.experiment import resolve

    assert _seed_flows(resolve("dates", 0, hidden_size=4), [{"seed": 0, "success": True}], tmp_path / "g.png") is None
    assert "not measured (expected a model that reads one sequence, got the dates task's Batch" in \
        capsys.readouterr().out


def test_sweep_runs_equal_single_runs(tmp_path, capsys):
    """A seed trained in a sweep worker gives the same metrics as `bptt train` with that seed."""
    code, stdout = run_cli(capsys, "sweep", "sine", "--seeds", "1", "--steps", "5", "--hidden-size", "4",
                           "--out", str(tmp_path / "s"), "--json")
    swept = json.loads(stdout.strip().splitlines()[-1])["runs"][0]["metrics"]
    code, stdout = run_cli(capsys, "train", "sine", "--steps", "5", "--hidden-size", "4",
                           "--out", str(tmp_path / "t"), "--json")
    single = json.loads(stdout.strip().splitlines()[-1])
    assert swept["test_mse"] == pytest.approx(single["test_mse"], rel=1e-9)
