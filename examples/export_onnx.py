"""Export a bptt model to ONNX, run it with onnxruntime, and compare with bptt's own forward pass.

:func:`bptt.interop.onnx_export.export_onnx` writes each recurrent layer as one of ONNX's own ``LSTM``, ``GRU`` or
``RNN`` operators, so any ONNX runtime runs it with its fused kernels. The graph is float32 and time-major:
input ``"input" (T, N, I)``; outputs ``"output"``, and for a bare layer the final states ``"h_n"``
(and ``"c_n"``). The shell does the same with ``bptt export CHECKPOINT OUT.onnx``.

    python examples/export_onnx.py --out /tmp/onnx

Prints the largest difference per output (float32: about 1e-7) and the refusal for what ONNX cannot
express (an LSTM with ``proj_size``); exits 1 when a difference exceeds 1e-5. Needs ``onnx`` and
``onnxruntime`` (``pip install 'bptt[onnx]'``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime

import bptt
from bptt.interop.onnx_export import export_onnx
from bptt.layers.models import SequenceRegressor


def run_onnx(path: Path, x: np.ndarray) -> dict[str, np.ndarray]:
    """Every output of the ONNX model at ``path`` on the input ``x``, by name."""
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]
    return dict(zip(names, session.run(names, {"input": x.astype(np.float32)}), strict=True))


def export_and_compare(module, out: Path, x: np.ndarray) -> float:
    """Export ``module`` into ``out``, run it with onnxruntime on ``x`` and return the largest difference."""
    path = export_onnx(module, out / f"{type(module).__name__.lower()}.onnx")
    got = run_onnx(path, x)
    if isinstance(module, SequenceRegressor):
        expected = {"output": module(x)}
    else:
        output, states = module(x)
        states = states if isinstance(states, tuple) else (states,)
        expected = {"output": output, **dict(zip(("h_n", "c_n")[:len(states)], states, strict=True))}
    worst = 0.0
    print(f"{type(module).__name__}: wrote {path.name}; onnxruntime outputs {list(got)}")
    for name, value in expected.items():
        difference = float(np.max(np.abs(got[name] - value)))
        worst = max(worst, difference)
        print(f"  {name:<7} {str(got[name].shape):<12} max |onnxruntime - bptt| = {difference:.1e}")
    return worst


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=None, help="folder for the .onnx files (default: a temporary one)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        out = args.out or Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        x = np.random.default_rng(0).normal(size=(12, 3, 4))        # (T, N, I); T and N are free in the graph
        worst = max(
            export_and_compare(bptt.LSTM(4, 8, num_layers=2, bidirectional=True, rng=0), out, x),
            export_and_compare(bptt.GRU(4, 8, rng=1), out, x),
            export_and_compare(SequenceRegressor(4, 8, 2, cell="lstm", rng=2), out, x),
        )
        try:
            export_onnx(bptt.LSTM(4, 8, proj_size=3, rng=0), out / "projected.onnx")
        except ValueError as error:
            print(f"refused: {error}")
    print(f"largest difference {worst:.1e} (the graph computes in float32)")
    return 0 if worst < 1e-5 else 1


if __name__ == "__main__":
    sys.exit(main())
