"""``bptt bench`` as a user runs it, on tiny configs: the JSON report's structure, that every timed pair was
first verified against torch, that a disagreeing pair is reported and never timed, the memory measurement,
and that bptt never imports torch by itself. No timing assertions: benchmarks report numbers, tests check
correctness."""

import json
import math
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest

from bptt.cli import main
from bptt.perf import bench

# Tiny and fast: one block, short blocks and pauses, a small GEMM for the peak.
FAST = ["--blocks", "1", "--min-block-ms", "2", "--pause-ms", "1", "--peak-size", "128"]


def test_quick_run_writes_verified_rows_for_every_pass(tmp_path, capsys):
    pytest.importorskip("torch")
    path = tmp_path / "bench.json"
    code = main(["bench", "--quick", "--configs", "5,2,3,4", "--stream-sizes", "4", "--memory", *FAST,
                 "--json", str(path)])
    stdout = capsys.readouterr().out
    assert code == 0
    report = json.loads(path.read_text())
    assert set(report) == {"environment", "settings", "peaks", "train", "infer", "stream", "memory"}
    assert report["settings"]["configs"] == [[5, 2, 3, 4]] and report["settings"]["blocks"] == 1
    assert report["environment"]["torch"].startswith("2.")
    for dtype in ("float64", "float32"):
        assert report["peaks"][dtype]["size"] == 128 and report["peaks"][dtype]["gflops"] > 0
    expected = {(family, dtype) for family in ("lstm", "gru", "rnn") for dtype in ("float64", "float32")}
    for name in ("train", "infer", "stream", "memory"):
        assert {(r["family"], r["dtype"]) for r in report[name]} == expected, name
    gates = {"lstm": 4, "gru": 3, "rnn": 1}
    for name, factor in (("train", 6), ("infer", 2)):
        for row in report[name]:
            assert row["pass"] == name and (row["T"], row["N"], row["I"], row["H"]) == (5, 2, 3, 4)
            assert row["flops"] == factor * gates[row["family"]] * 5 * 2 * 4 * (3 + 4)
            assert 0 < row["bptt_peak_fraction"] == row["bptt_gflops"] / report["peaks"][row["dtype"]]["gflops"]
    for row in report["train"]:
        assert {"out", "dx", "final state 0", "d initial state 0"} <= set(row["rel_errors"])
        assert sum(key.startswith("grad ") for key in row["rel_errors"]) == 4   # both weights, both biases
    for row in report["train"] + report["infer"] + report["stream"]:
        assert row["verified"] is True and row["max_rel_err"] <= row["tolerance"]
        assert row["tolerance"] == {"float64": 1e-10, "float32": 1e-4}[row["dtype"]]
        assert len(row["bptt_block_s"]) == len(row["torch_block_s"]) == 1
        assert row["bptt_s"] > 0 and row["torch_s"] > 0 and math.isfinite(row["ratio"]) and row["ratio"] > 0
    assert {(r["N"], r["I"], r["H"]) for r in report["stream"]} == {(1, 4, 4)}
    lstm_stream = next(r for r in report["stream"] if r["family"] == "lstm")
    assert len(lstm_stream["rel_errors"]) == 2                                  # h and c along the trajectory
    for row in report["memory"]:
        assert math.isfinite(row["peak_over_cache"]) and row["peak_over_cache"] > 0
    assert "bptt/torch" in stdout and "us/step" in stdout and "peak/cache" in stdout
    assert f"wrote {path}" in stdout


def test_quick_without_configs_skips_the_two_biggest(tmp_path, capsys):
    path = tmp_path / "bench.json"
    assert main(["bench", "--quick", "--passes", "none", "--json", str(path)]) == 0
    settings = json.loads(path.read_text())["settings"]
    assert [tuple(c) for c in settings["configs"]] == list(bench.GRID[:-2]) and settings["blocks"] == 3
    assert "configs 100,1,1,5;50,1,1,32;" in capsys.readouterr().out


def test_a_pair_that_disagrees_is_reported_and_not_timed(tmp_path, capsys, monkeypatch):
    torch = pytest.importorskip("torch")
    honest = bench.torch_twin

    def planted(torch_module, case):
        module = honest(torch_module, case)
        with torch.no_grad():
            module.weight_hh_l0[0, 0] += 1e-3       # one wrong weight on the torch side
        return module

    monkeypatch.setattr(bench, "torch_twin", planted)
    path = tmp_path / "bench.json"
    code = main(["bench", "--families", "rnn", "--dtypes", "float64", "--configs", "4,2,3,5", "--passes",
                 "train,infer", *FAST, "--json", str(path)])
    captured = capsys.readouterr()
    assert code == 1 and "disagree with torch" in captured.err
    report = json.loads(path.read_text())
    for row in report["train"] + report["infer"]:
        assert row["verified"] is False and row["max_rel_err"] > 1e-10 and "bptt_s" not in row
    assert "DISAGREES" in captured.out


@pytest.mark.parametrize("family", ["lstm", "gru", "rnn"])
def test_training_memory_of_a_small_layer(family):
    row = bench.training_memory(family, (6, 3, 4, 5), "float64", seed=1)
    assert not tracemalloc.is_tracing()
    assert row["cache_bytes"] == sum(row["cache_fields"].values()) > 0
    assert row["cache_fields"]["x"] == 6 * 3 * 4 * 8 and "h" in row["cache_fields"]
    assert row["peak_bytes"] > 0
    assert math.isfinite(row["peak_over_cache"]) and row["peak_over_cache"] > 0
    assert row["peak_over_cache"] == pytest.approx(row["peak_bytes"] / row["cache_bytes"])


def test_rel_err_is_relative_to_the_reference_and_infinite_on_shape_mismatch():
    assert bench.rel_err(np.array([1.0, 2.5]), np.array([1.0, 2.0])) == pytest.approx(0.25)
    assert bench.rel_err(np.zeros(3), np.zeros(2)) == math.inf


def test_bptt_never_imports_torch():
    code = "import sys, bptt, bptt.cli, bptt.perf.bench, bptt.perf.timing; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_missing_torch_says_how_to_install_it(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch", None)         # `import torch` now raises ImportError
    assert main(["bench", "--configs", "2,1,1,2", "--passes", "train"]) == 2
    assert "bptt bench compares with PyTorch: pip install torch==2.13.0" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["--configs", "5,2,3"], ["--families", "lstm,transformer"],
                                  ["--passes", "train,backprop"], ["--blocks", "0"], ["--pause-ms", "-1"]])
def test_bad_options_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", *argv])
    assert exit_info.value.code == 2
    assert "expected" in capsys.readouterr().err


def test_floor_rows_time_the_gemms_against_torch(tmp_path, capsys):
    pytest.importorskip("torch")
    path = tmp_path / "bench.json"
    code = main(["bench", "--configs", "5,2,3,4", "--passes", "train,infer", "--floor", "--families", "lstm,rnn",
                 "--dtypes", "float64", *FAST, "--json", str(path)])
    stdout = capsys.readouterr().out
    assert code == 0
    report = json.loads(path.read_text())
    assert report["settings"]["floor"] is True
    rows = report["train"] + report["infer"]
    assert {(r["pass"], r["family"]) for r in rows} == {(p, f) for p in ("train", "infer") for f in ("lstm", "rnn")}
    for row in rows:
        assert row["floor_s"] > 0 and math.isfinite(row["floor_ratio"]) and row["floor_ratio"] > 0
    assert "floor/torch" in stdout and "GEMM floor/torch" in stdout
