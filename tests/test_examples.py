"""Every script in examples/ runs as a user runs it: a fresh interpreter, small settings, outputs in a temp dir.

Each example exits 0 only when what it demonstrates holds (a check passes, outputs agree), so the exit status
is the claim and the printed line the evidence.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"

# Each example: the modules it needs beyond NumPy, its arguments ({tmp} is a temporary folder), lines its
# output must contain, and files it must write into {tmp}.
CASES = {
    "gradcheck_your_lstm.py": ((), [], ["correct backward:", "gradcheck: PASSED",
                                        "planted bug 'h-one-step-late': gradcheck names ['W_hh']",
                                        "every planted bug was caught and named"], []),
    "train_sine.py": (("matplotlib",), ["--steps", "20", "--out", "{tmp}"], ["step    20 | loss", "test MSE",
                                                                             "saved "], ["sine.png"]),
    "load_into_pytorch.py": (("torch", "safetensors"), [], ["loaded into LSTM(3, 8, num_layers=2)",
                                                            "max |bptt - torch| over the outputs: "], []),
    "export_onnx.py": (("onnx", "onnxruntime"), ["--out", "{tmp}"], ["LSTM: wrote lstm.onnx",
                                                                     "refused: export_onnx: expected an LSTM without "
                                                                     "projection", "largest difference"],
                       ["lstm.onnx", "gru.onnx", "sequenceregressor.onnx"]),
    "translate_onnx.py": (("onnx", "onnxruntime"), ["--steps", "30", "--out", "{tmp}"],
                          ["2000 of 2000 test outputs agree token for token"],
                          ["dates.encoder.onnx", "dates.decoder_step.onnx"]),
}


def run_example(name: str, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    # One BLAS thread: the examples are small, and the suite shares the machine.
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "MPLBACKEND": "Agg"}
    return subprocess.run([sys.executable, str(EXAMPLES / name), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


def test_every_example_is_run_by_this_file():
    assert sorted(path.name for path in EXAMPLES.glob("*.py")) == sorted(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_example_runs_and_shows_what_it_claims(name, tmp_path):
    needs, args, expected, files = CASES[name]
    for module in needs:
        pytest.importorskip(module)
    result = run_example(name, [arg.format(tmp=tmp_path) for arg in args], cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    missing = [line for line in expected if line not in result.stdout]
    assert not missing, f"{name} did not print {missing}:\n{output}"
    for file in files:
        assert (tmp_path / file).stat().st_size > 0, f"{name} did not write {file}"
    if "sine.png" in files:
        assert (tmp_path / "sine.png").read_bytes().startswith(b"\x89PNG")


def test_load_into_pytorch_reads_a_checkpoint_written_by_bptt_save(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("safetensors")
    import bptt
    from bptt.layers.models import SequenceRegressor

    path = bptt.save(SequenceRegressor(2, 5, 3, num_layers=2, cell="gru", rng=0), tmp_path / "model.safetensors")
    result = run_example("load_into_pytorch.py", ["--checkpoint", str(path)], cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "(rnn): GRU(2, 5, num_layers=2)" in result.stdout
