"""bptt: recurrent networks in NumPy with hand-derived backpropagation through time."""

from bptt.check.gradcheck import Diagnosis, Report, gradcheck
from bptt.check.layercheck import check_layer
from bptt.interop.serialization import load, save
from bptt.interop.torch_interop import from_torch, to_torch
from bptt.layers.cells import GRUCell, LSTMCell, RNNCell
from bptt.layers.embedding import Embedding
from bptt.layers.gru import GRU
from bptt.layers.inference import inference_mode
from bptt.layers.linear import Linear
from bptt.layers.lstm import LSTM
from bptt.layers.models import LanguageModel, SequenceClassifier, SequenceRegressor
from bptt.layers.rnn import RNN
from bptt.layers.seq2seq import Seq2Seq
from bptt.train.losses import cross_entropy, mse_loss

__all__ = ["GRU", "LSTM", "RNN", "Diagnosis", "Embedding", "GRUCell", "LSTMCell", "LanguageModel", "Linear", "RNNCell",
           "Report", "Seq2Seq", "SequenceClassifier", "SequenceRegressor", "check_layer", "cross_entropy",
           "from_torch", "gradcheck", "inference_mode", "load", "mse_loss", "save", "to_torch"]
__version__ = "0.1.0"
