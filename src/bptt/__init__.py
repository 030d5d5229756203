"""bptt: recurrent networks in NumPy with hand-derived backpropagation through time."""

from bptt.gradcheck import Diagnosis, Report, gradcheck
from bptt.gru import GRU
from bptt.layercheck import check_layer
from bptt.linear import Linear
from bptt.losses import cross_entropy, mse_loss
from bptt.lstm import LSTM
from bptt.rnn import RNN
from bptt.serialization import load, save
from bptt.torch_interop import from_torch, to_torch

__all__ = ["GRU", "LSTM", "RNN", "Diagnosis", "Linear", "Report", "check_layer", "cross_entropy", "from_torch",
           "gradcheck", "load", "mse_loss", "save", "to_torch"]
__version__ = "0.1.0"
