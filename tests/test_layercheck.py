"""check_layer over bptt's LSTM, the `bptt gradcheck` command, and the assertion helper for users' tests."""

import json

import numpy as np
import pytest

import bptt
from bptt.check.layercheck import check_layer
from bptt.check.testing import assert_gradients_close
from bptt.cli import main
from bptt.cli.gradcheck import LAYERS


class BrokenLSTM(bptt.LSTM):
    """A test double whose backward adds a spurious term to one gradient (weight_hh of the top layer)."""

    def backward(self, dout, dhx=None):
        result = super().backward(dout, dhx)
        top = f"weight_hh_l{self.num_layers - 1}"
        self.grads[top] += 1e-3 * np.sign(self.params[top])
        return result


class BrokenInputLSTM(bptt.LSTM):
    """A test double whose input gradient is wrong at one time step only."""

    def backward(self, dout, dhx=None):
        dx, states = super().backward(dout, dhx)
        dx = dx.copy()
        dx[2] *= 1.1
        return dx, states


def test_no_false_failure_over_100_random_lstms():
    """A correct LSTM passes with default tolerances for 100 seeds of random sizes and options."""
    worst = 0.0
    for seed in range(100):
        rng = np.random.default_rng(seed)
        T, N, I, H, L = (int(v) for v in rng.integers(1, [7, 4, 5, 6, 4]))
        batch_first = bool(rng.integers(2))
        layer = bptt.LSTM(I, H, L, bias=bool(rng.integers(2)), batch_first=batch_first, rng=rng)
        x = rng.normal(size=(N, T, I) if batch_first else (T, N, I))
        report = check_layer(layer, x, seed=seed)
        assert report.ok, f"seed {seed}\n{report}"
        worst = max(worst, max(row.max_rel_error for row in report.rows))
    assert worst < 1e-5


def test_checks_given_initial_states_and_unbatched_input():
    rng = np.random.default_rng(1)
    layer = bptt.LSTM(2, 3, 2, rng=rng)
    hx = (rng.normal(size=(2, 3)), rng.normal(size=(2, 3)))
    report = check_layer(layer, rng.normal(size=(4, 2)), hx, seed=1)
    assert report.ok, str(report)
    assert [row.name for row in report.rows][-3:] == ["x", "h0", "c0"]


def test_the_layers_own_gradients_are_left_alone():
    layer = bptt.LSTM(2, 3, rng=0)
    check_layer(layer, np.ones((3, 1, 2)), seed=0)
    assert all(not grad.any() for grad in layer.grads.values())


def test_float32_layer_is_checked_through_a_float64_copy_with_a_note():
    layer = bptt.LSTM(2, 3, rng=0, dtype=np.float32)
    report = check_layer(layer, np.ones((3, 1, 2), dtype=np.float32), seed=0)
    assert report.ok, str(report)
    assert report.codes == ["float64-copy"] and report.diagnoses[0].severity == "note"
    assert report.eps == pytest.approx(1e-6)


def test_a_broken_input_gradient_names_its_worst_time_step():
    report = check_layer(BrokenInputLSTM(2, 3, rng=0), np.random.default_rng(0).normal(size=(5, 2, 2)), seed=0)
    assert report.failed == ["x"]
    row = next(r for r in report.rows if r.name == "x")
    assert row.worst_index[0] == 2 and row.location == "time step 2 of 5"
    assert "worst at time step 2 of 5" in str(report)


@pytest.mark.parametrize("mode", ["full", "sample", "fast"])
def test_every_mode_finds_the_broken_tensor(mode):
    report = check_layer(BrokenLSTM(2, 3, 2, rng=0), np.random.default_rng(0).normal(size=(4, 2, 2)),
                         mode=mode, seed=0)
    assert report.failed == ["weight_hh_l1"]


def test_cli_gradcheck_passes_and_prints_the_table(capsys):
    assert main(["gradcheck", "lstm", "--num-layers", "2", "--json"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("bptt gradcheck lstm | input-size 3")
    assert lines[1].startswith("gradcheck: PASSED")
    assert any(line.strip().startswith("weight_hh_l1") for line in lines)
    summary = json.loads(lines[-1])
    assert summary["ok"] is True and summary["failed"] == []


def test_cli_gradcheck_fails_with_exit_1_and_names_the_tensor(capsys, monkeypatch):
    monkeypatch.setitem(LAYERS, "lstm", BrokenLSTM)
    assert main(["gradcheck", "lstm", "--num-layers", "2", "--mode", "fast"]) == 1
    out = capsys.readouterr().out
    assert "gradcheck: FAILED" in out
    failing = [line.split()[0] for line in out.splitlines() if line.rstrip().endswith("NO")]
    assert failing == ["weight_hh_l1"]


def test_assert_gradients_close_raises_with_the_report():
    params = {"w": np.array([1.0, 2.0])}
    assert assert_gradients_close(lambda p: float(np.sum(p["w"] ** 2)), params, {"w": 2 * params["w"]}).ok
    with pytest.raises(AssertionError, match=r"gradcheck: FAILED(.|\n)*w .*NO"):
        assert_gradients_close(lambda p: float(np.sum(p["w"] ** 2)), params, {"w": params["w"]})


@pytest.mark.parametrize("argv", [
    ["gradcheck", "gru", "--bidirectional", "--num-layers", "2"],
    ["gradcheck", "rnn", "--nonlinearity", "relu", "--num-layers", "2", "--mode", "sample"],
    ["gradcheck", "lstm", "--proj-size", "2", "--bidirectional"],
])
def test_cli_gradcheck_every_family(argv, capsys):
    assert main(argv) == 0
    assert "gradcheck: PASSED" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["gradcheck", "gru", "--proj-size", "2"], "--proj-size is an LSTM option, not a GRU one"),
    (["gradcheck", "lstm", "--proj-size", "4"], "expected proj_size < hidden_size (4), got 4"),
])
def test_cli_gradcheck_bad_options_exit_2(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_check_layer_with_lengths_and_dropout_in_training_mode():
    rng = np.random.default_rng(3)
    layer = bptt.GRU(2, 3, 2, dropout=0.4, bidirectional=True, rng=rng)
    report = check_layer(layer, rng.normal(size=(5, 3, 2)), lengths=[5, 2, 4], seed=3)
    assert report.ok, str(report)
    x_row = next(r for r in report.rows if r.name == "x")
    assert x_row.checked == 30
