"""Load a bptt checkpoint into PyTorch, and check that both give the same outputs.

``bptt.save`` writes a safetensors file whose array names are PyTorch's (``weight_ih_l0``, ...; a
``SequenceRegressor`` prefixes them with ``rnn.`` and ``head.``). ``safetensors.torch.load_file`` reads it as
a state dict, and ``load_state_dict`` puts it into the matching ``torch.nn`` module: no conversion, no
reordering of gate rows.

    python examples/load_into_pytorch.py                               # a fresh 2-layer LSTM
    python examples/load_into_pytorch.py --checkpoint runs/sine/model.safetensors   # from `bptt train sine`

Prints the largest difference between bptt's and PyTorch's outputs (float64: round-off, below 1e-12);
exits 1 when it exceeds 1e-10. Needs ``torch`` and ``safetensors``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

import bptt
from bptt.layers.models import SequenceRegressor


class TorchSequenceRegressor(torch.nn.Module):
    """PyTorch's twin of bptt.layers.models.SequenceRegressor: a recurrent stack ``rnn``, a dense ``head`` at each
    step."""

    def __init__(self, input_size, hidden_size, output_size, num_layers=1, cell="lstm"):
        super().__init__()
        recurrent = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[cell]
        self.rnn = recurrent(input_size, hidden_size, num_layers=num_layers, dtype=torch.float64)
        self.head = torch.nn.Linear(hidden_size, output_size, dtype=torch.float64)

    def forward(self, x):
        return self.head(self.rnn(x)[0])


def torch_twin(model):
    """An empty torch module of the same configuration as the bptt ``model``."""
    config = model.config()
    if isinstance(model, SequenceRegressor):
        return TorchSequenceRegressor(config["input_size"], config["hidden_size"], config["output_size"],
                                      config["num_layers"], config["cell"])
    options = {key: value for key, value in config.items() if key != "dtype"}
    return getattr(torch.nn, type(model).__name__)(**options, dtype=torch.float64)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="a file written by bptt.save (e.g. by bptt train); default: save a fresh LSTM first")
    args = parser.parse_args(argv)

    if args.checkpoint is not None:
        return compare(args.checkpoint)
    with tempfile.TemporaryDirectory() as folder:
        layer = bptt.LSTM(input_size=3, hidden_size=8, num_layers=2, rng=0)
        path = bptt.save(layer, Path(folder) / "lstm.safetensors")
        print(f"saved {layer} to {path.name}")
        return compare(path)


def compare(path: Path) -> int:
    """Load ``path`` on both sides and compare the outputs on random inputs; 0 when they agree to 1e-10."""
    model = bptt.load(path)                          # the bptt side: same class, options and weights
    if model.dtype != np.float64:
        print(f"expected a float64 checkpoint, got {model.dtype}", file=sys.stderr)
        return 2

    state = load_file(path)                          # {name: torch.Tensor}, PyTorch's names
    print(f"the file holds {len(state)} tensors: {', '.join(f'{k} {tuple(v.shape)}' for k, v in state.items())}")
    module = torch_twin(model)
    module.load_state_dict(state)                    # strict: every key must match, and it does
    module.eval()
    print(f"loaded into {module}")

    input_size = model.config()["input_size"]
    x = np.random.default_rng(1).normal(size=(20, 4, input_size))     # (T, N, I), time-major on both sides
    ours = model(x) if isinstance(model, SequenceRegressor) else model(x)[0]
    with torch.no_grad():
        theirs = module(torch.from_numpy(x))
    theirs = theirs if isinstance(model, SequenceRegressor) else theirs[0]
    difference = float(np.max(np.abs(ours - theirs.numpy())))
    print(f"max |bptt - torch| over the outputs: {difference:.2e}")
    return 0 if difference < 1e-10 else 1

if __name__ == "__main__":
    sys.exit(main())
