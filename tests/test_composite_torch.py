"""``to_torch``/``from_torch`` for the composite models (``SequenceRegressor``, ``SequenceClassifier``,
``LanguageModel``): every parameter copied bit for bit both ways, the torch twin's forward equal to the bptt
model's in float64 (``max|a - b| / max|b| <= 1e-10``, ``TOL``), the mode carried over, modules of one's own
with the same children converted given ``model=``, and every refusal naming what was expected and got.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from errors import rel_err
from hypothesis import given, settings
from hypothesis import strategies as st

from bptt import from_torch, to_torch
from bptt.layers.embedding import Embedding
from bptt.layers.models import LanguageModel, SequenceClassifier, SequenceRegressor

torch = pytest.importorskip("torch")

TOL = 1e-10
CELLS = ["lstm", "gru", "rnn"]
# torch warns that dropout does nothing with one layer; the option is still carried over, which is the point.
torch_dropout_warning = pytest.mark.filterwarnings("ignore:dropout option adds dropout:UserWarning")


def as_tuple(state) -> tuple:
    return state if isinstance(state, tuple) else (state,)


def torch_state(state):
    """NumPy states (an array, or an LSTM's pair) as torch tensors of the same form."""
    if state is None:
        return None
    tensors = tuple(torch.from_numpy(s) for s in as_tuple(state))
    return tensors if isinstance(state, tuple) else tensors[0]


def random_state(model, batch: int, rng: np.random.Generator):
    """Random initial states for the model's stack, ``(L*D, N, H)``, a pair for an LSTM."""
    rnn = model.rnn
    shape = (rnn.num_layers * rnn.num_directions, batch, rnn.hidden_size)
    states = tuple(rng.standard_normal(shape) for _ in rnn.family.state_names)
    return states if len(states) > 1 else states[0]


def assert_same_parameters(model, twin) -> None:
    """The twin's state dict is the model's parameters, bit for bit, in the same order."""
    theirs = twin.state_dict()
    assert list(theirs) == list(model.params)
    for name, value in model.params.items():
        assert theirs[name].dtype == getattr(torch, value.dtype.name), name
        np.testing.assert_array_equal(theirs[name].numpy(), value, err_msg=name)


def assert_round_trip(model, twin) -> None:
    """``from_torch(twin)`` rebuilds the model: same class, options, mode and bit-equal parameters."""
    back = from_torch(twin)
    assert type(back) is type(model) and back.config() == model.config()
    assert back.rnn.training == model.rnn.training
    for name, value in model.params.items():
        np.testing.assert_array_equal(back.params[name], value, err_msg=name)


def worst(errors: dict[str, float]) -> float:
    name = max(errors, key=errors.get)
    assert errors[name] <= TOL, f"{name}: {errors[name]:.3g}"
    return errors[name]


def assert_same_outputs_and_states(model, twin, inputs, hx, name: str) -> None:
    """The model and its twin, run on ``inputs`` from the states ``hx``, agree on the output (``name``) and the
    final states; and the twin converts back to the model."""
    ours = model(inputs, hx)
    with torch.no_grad():
        theirs, t_state = twin(torch.from_numpy(inputs), torch_state(hx))
    pairs = zip(as_tuple(model.final_state), as_tuple(t_state), strict=True)
    worst({name: rel_err(ours, theirs.numpy(), same_dtype=True),
           **{f"state {k}": rel_err(a, b.numpy(), same_dtype=True) for k, (a, b) in enumerate(pairs)}})
    assert_round_trip(model, twin)


@settings(max_examples=60, deadline=None)
@given(cell=st.sampled_from(CELLS), num_layers=st.integers(1, 2), T=st.integers(1, 6), N=st.integers(1, 4),
       I=st.integers(1, 4), H=st.integers(1, 5), O=st.integers(1, 3), given_state=st.booleans(),
       seed=st.integers(0, 2**32 - 1))
def test_sequence_regressor_twin(cell, num_layers, T, N, I, H, O, given_state, seed):
    rng = np.random.default_rng(seed)
    model = SequenceRegressor(I, H, O, num_layers, cell=cell, rng=rng)
    twin = to_torch(model)
    assert type(twin).__name__ == "SequenceRegressor" and [name for name, _ in twin.named_children()] == ["rnn", "head"]
    assert_same_parameters(model, twin)
    x = rng.standard_normal((T, N, I))
    assert_same_outputs_and_states(model, twin, x, random_state(model, N, rng) if given_state else None, "y")


@settings(max_examples=60, deadline=None)
@given(cell=st.sampled_from(CELLS), num_layers=st.integers(1, 2), bidirectional=st.booleans(),
       packed=st.booleans(), T=st.integers(1, 6), N=st.integers(1, 4), I=st.integers(1, 4), H=st.integers(1, 5),
       C=st.integers(2, 4), seed=st.integers(0, 2**32 - 1))
def test_sequence_classifier_twin(cell, num_layers, bidirectional, packed, T, N, I, H, C, seed):
    rng = np.random.default_rng(seed)
    model = SequenceClassifier(I, H, C, num_layers, cell=cell, bidirectional=bidirectional, rng=rng)
    twin = to_torch(model)
    assert type(twin).__name__ == "SequenceClassifier" and twin.rnn.bidirectional == bidirectional
    assert_same_parameters(model, twin)
    x = rng.standard_normal((T, N, I))
    lengths = rng.integers(1, T + 1, N) if packed else None
    logits = model(x, lengths)
    with torch.no_grad():
        t_logits = twin(torch.from_numpy(x), lengths)
    worst({"logits": rel_err(logits, t_logits.numpy(), same_dtype=True)})
    assert_round_trip(model, twin)


@torch_dropout_warning
@settings(max_examples=60, deadline=None)
@given(cell=st.sampled_from(CELLS), num_layers=st.integers(1, 2), T=st.integers(1, 6), N=st.integers(1, 4),
       V=st.integers(2, 9), E=st.integers(1, 4), H=st.integers(1, 5), dropout=st.sampled_from([0.0, 0.5]),
       given_state=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_language_model_twin(cell, num_layers, T, N, V, E, H, dropout, given_state, seed):
    rng = np.random.default_rng(seed)
    model = LanguageModel(V, E, H, num_layers, cell=cell, dropout=dropout, rng=rng)   # training mode
    twin = to_torch(model)
    assert [name for name, _ in twin.named_children()] == ["embedding", "rnn", "head"] and twin.training
    assert twin.rnn.dropout == dropout
    assert_same_parameters(model, twin)
    assert_round_trip(model, twin)
    model.eval()
    twin = to_torch(model)                                       # evaluation mode: no dropout on either side
    assert not twin.training
    tokens = rng.integers(0, V, (T, N))
    assert_same_outputs_and_states(model, twin, tokens, random_state(model, N, rng) if given_state else None,
                                   "logits")


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("model", [SequenceRegressor(3, 4, 2, cell="rnn", dtype=np.float32, rng=0),
                                   SequenceClassifier(3, 4, 2, 2, cell="gru", bidirectional=True, dtype=np.float32,
                                                      rng=1),
                                   LanguageModel(6, 3, 4, 2, dropout=0.25, dtype=np.float32, rng=2)],
                         ids=["regressor", "classifier", "language-model"])
def test_float32_and_the_mode_survive_both_ways(model, training):
    model.rnn.train(training)
    twin = to_torch(model)
    assert all(p.dtype == torch.float32 for p in twin.parameters())
    assert twin.training == training and all(child.training == training for child in twin.children())
    assert_same_parameters(model, twin)
    assert_round_trip(model, twin)
    assert from_torch(twin).dtype == np.float32


def test_unbatched_input_and_the_weights_are_copies():
    model = LanguageModel(5, 2, 3, cell="gru", rng=3).eval()
    twin = to_torch(model)
    tokens = np.array([4, 0, 2])                                   # unbatched (T,)
    with torch.no_grad():
        t_logits, t_state = twin(torch.from_numpy(tokens))
    assert rel_err(model(tokens), t_logits.numpy()) <= TOL and rel_err(model.final_state, t_state.numpy()) <= TOL
    with torch.no_grad():
        twin.embedding.weight.add_(1.0)
    back = from_torch(twin)
    back.params["head.weight"] += 1.0
    assert not np.array_equal(model.params["embedding.weight"], twin.embedding.weight.detach().numpy())
    assert not np.array_equal(back.params["head.weight"], twin.head.weight.detach().numpy())


# ---------------------------------------------------------------------------------------------------------
# Modules of one's own, given model=
# ---------------------------------------------------------------------------------------------------------

class Regressor(torch.nn.Module):
    """Written from PyTorch's documented modules alone (no bptt code), as a user would."""

    def __init__(self, cell: str) -> None:
        super().__init__()
        self.rnn = getattr(torch.nn, cell.upper())(3, 5, num_layers=2, dtype=torch.float64)
        self.head = torch.nn.Linear(5, 2, dtype=torch.float64)

    def forward(self, x):
        return self.head(self.rnn(x)[0])


class Classifier(torch.nn.Module):
    def __init__(self, cell: str) -> None:
        super().__init__()
        self.rnn = getattr(torch.nn, cell.upper())(3, 5, bidirectional=True, dtype=torch.float64)
        self.head = torch.nn.Linear(10, 4, dtype=torch.float64)

    def forward(self, x, lengths):
        packed = torch.nn.utils.rnn.pack_padded_sequence(x, torch.as_tensor(lengths), enforce_sorted=False)
        h_n = as_tuple(self.rnn(packed)[1])[0]
        return self.head(torch.cat((h_n[-2], h_n[-1]), dim=-1))


class Generator(torch.nn.Module):
    def __init__(self, cell: str) -> None:
        super().__init__()
        self.embedding = torch.nn.Embedding(7, 3, dtype=torch.float64)
        self.rnn = getattr(torch.nn, cell.upper())(3, 5, num_layers=2, dtype=torch.float64)
        self.head = torch.nn.Linear(5, 7, dtype=torch.float64)

    def forward(self, tokens):
        return self.head(self.rnn(self.embedding(tokens))[0])


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("kind", ["SequenceRegressor", "SequenceClassifier", "LanguageModel"])
def test_a_module_of_ones_own_converts_given_model(kind, cell):
    torch.manual_seed(4)
    module = {"SequenceRegressor": Regressor, "SequenceClassifier": Classifier, "LanguageModel": Generator}[kind](cell)
    model = from_torch(module, model=kind)
    assert type(model).__name__ == kind and model.cell == cell
    assert_same_parameters(model, module)
    rng = np.random.default_rng(5)
    if kind == "LanguageModel":
        args = (rng.integers(0, 7, (6, 3)),)
    elif kind == "SequenceClassifier":
        args = (rng.standard_normal((6, 3, 3)), np.array([6, 1, 4]))
    else:
        args = (rng.standard_normal((6, 3, 3)),)
    with torch.no_grad():
        expected = module(torch.from_numpy(args[0]), *args[1:]).numpy()
    assert rel_err(model.eval()(*args) if kind == "LanguageModel" else model(*args), expected) <= TOL


# ---------------------------------------------------------------------------------------------------------
# Refusals
# ---------------------------------------------------------------------------------------------------------

def without_head():
    twin = to_torch(SequenceRegressor(2, 3, 1, rng=0))
    del twin.head
    return twin


def with_child(name: str, child):
    def build():
        twin = to_torch(SequenceClassifier(2, 3, 2, rng=0) if name != "embedding" else LanguageModel(5, 2, 3, rng=0))
        setattr(twin, name, child)
        return twin
    return build


def own(rnn, head, embedding=None):
    def build():
        module = torch.nn.Module()
        if embedding is not None:
            module.embedding = embedding
        module.rnn, module.head = rnn, head
        return module
    return build


def literal(text: str) -> str:
    """A pattern matching ``text`` exactly at the end of a message."""
    return re.escape(text) + "$"


F64 = {"dtype": torch.float64}
MODEL_NAMES = "SequenceRegressor, SequenceClassifier, LanguageModel"


@pytest.mark.parametrize(("build", "model", "error", "message"), [
    (without_head, None, ValueError,
     r"expected a torch module for a SequenceRegressor with the children rnn \(torch\.nn\.LSTM, GRU or RNN\), "
     r"head \(torch\.nn\.Linear\); got rnn \(torch\.nn\.modules\.rnn\.LSTM\)\.$"),
    (own(torch.nn.GRU(2, 3, **F64), None), "SequenceRegressor", ValueError,
     r"children rnn \(torch\.nn\.LSTM, GRU or RNN\), head \(torch\.nn\.Linear\); got rnn \(torch\.nn\.modules"
     r"\.rnn\.GRU\)\.$"),
    (lambda: torch.nn.LSTM(2, 3), "LanguageModel", ValueError,
     r"for a LanguageModel with the children embedding \(torch\.nn\.Embedding\), rnn .*; got no children\.$"),
    (with_child("head", torch.nn.Sequential(torch.nn.Linear(3, 2))), None, ValueError,
     r"got rnn \(torch\.nn\.modules\.rnn\.LSTM\), head \(torch\.nn\.modules\.container\.Sequential\)\.$"),
    (with_child("rnn", type("MyLSTM", (torch.nn.LSTM,), {})(2, 3)), None, ValueError, r"got rnn \(.*MyLSTM\)"),
    (own(torch.nn.LSTM(2, 3, bias=False, batch_first=True, **F64), torch.nn.Linear(3, 1, **F64)),
     "SequenceRegressor", ValueError,
     literal("expected the rnn of a SequenceRegressor with batch_first=False, bias=True, got batch_first=True, "
             "bias=False.")),
    (own(torch.nn.LSTM(2, 4, proj_size=2, **F64), torch.nn.Linear(2, 1, **F64)), "SequenceRegressor",
     ValueError, r"expected the rnn of a SequenceRegressor with proj_size=None, got proj_size=2\.$"),
    (own(torch.nn.RNN(2, 3, nonlinearity="relu", **F64), torch.nn.Linear(3, 1, **F64)), "SequenceClassifier",
     ValueError, literal("expected the rnn of a SequenceClassifier with nonlinearity='tanh', got "
                         "nonlinearity='relu'.")),
    (own(torch.nn.GRU(2, 3, num_layers=2, dropout=0.5, **F64), torch.nn.Linear(3, 1, **F64)),
     "SequenceClassifier", ValueError, literal("with dropout=0.0, got dropout=0.5.")),
    (own(torch.nn.GRU(2, 3, bidirectional=True, **F64), torch.nn.Linear(3, 1, **F64)), "SequenceClassifier",
     ValueError, r"expected the head of a SequenceClassifier with in_features=6, got in_features=3\.$"),
    (own(torch.nn.GRU(2, 3, bidirectional=True, **F64), torch.nn.Linear(6, 1, **F64)), "SequenceRegressor",
     ValueError, literal("expected the rnn of a SequenceRegressor with bidirectional=False, got bidirectional=True.")),
    (own(torch.nn.GRU(2, 3, **F64), torch.nn.Linear(3, 1, bias=False, **F64)), "SequenceRegressor", ValueError,
     literal("expected the head of a SequenceRegressor with bias=True, got bias=False.")),
    (own(torch.nn.GRU(4, 3, **F64), torch.nn.Linear(3, 5, **F64), torch.nn.Embedding(5, 2, **F64)),
     "LanguageModel", ValueError, literal("expected the rnn of a LanguageModel with input_size=2, got input_size=4.")),
    (own(torch.nn.GRU(2, 3, **F64), torch.nn.Linear(3, 5, **F64), torch.nn.Embedding(5, 2, max_norm=1.0, **F64)),
     "LanguageModel", ValueError,
     literal("expected the embedding of a LanguageModel with max_norm=None, got max_norm=1.0.")),
    (with_child("embedding", torch.nn.Embedding(5, 2, padding_idx=0, **F64)), None, ValueError,
     literal("with padding_idx=None, got padding_idx=0.")),
    (own(torch.nn.GRU(2, 3, dtype=torch.float16), torch.nn.Linear(3, 1, dtype=torch.float16)), "SequenceRegressor",
     TypeError, literal("expected parameters all float32 or all float64, got float16.")),
    (own(torch.nn.GRU(2, 3), torch.nn.Linear(3, 1, **F64)), "SequenceRegressor", TypeError,
     literal("expected parameters all float32 or all float64, got float32, float64.")),
    (own(torch.nn.GRU(2, 3, **F64), torch.nn.Linear(3, 1, **F64)), "Regressor", ValueError,
     literal(f"expected model to be one of {MODEL_NAMES} or None, got 'Regressor'.")),
    (lambda: to_torch(SequenceClassifier(2, 3, 2, rng=0)), "SequenceRegressor", ValueError,
     r"expected model='SequenceClassifier' \(or None\) for the SequenceClassifier twin to_torch makes, got "
     r"'SequenceRegressor'\.$"),
    (own(torch.nn.GRU(2, 3, **F64), torch.nn.Linear(3, 1, **F64)), None, ValueError,
     literal(f"got torch.nn.modules.module.Module; a module with an rnn and a head converts to a bptt model given "
             f"model= one of {MODEL_NAMES}.")),
], ids=["twin-without-head", "own-without-head", "layer-as-composite", "head-type", "rnn-subclass",
        "rnn-options", "proj-size", "relu", "dropout", "head-in-features", "bidirectional-regressor", "head-bias",
        "embedding-size", "max-norm", "padding-idx", "float16", "mixed-dtypes", "unknown-model", "other-model",
        "model-missing"])
def test_from_torch_refuses_what_is_not_a_composite_twin(build, model, error, message):
    module = build()
    with pytest.raises(error, match=f"^from_torch: .*{message}"):
        from_torch(module, model=model)


def test_from_torch_refuses_extra_parameters():
    module = own(torch.nn.GRU(2, 3, **F64), torch.nn.Linear(3, 1, **F64))()
    module.scale = torch.nn.Parameter(torch.ones(1, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"SequenceRegressor\.load_state_dict: expected keys \['rnn\.weight_ih_l0', "
                                         r".*\], got missing keys \[\] and unexpected keys \['scale'\]\."):
        from_torch(module, model="SequenceRegressor")


def test_to_torch_refuses_a_module_without_twin():
    with pytest.raises(ValueError, match=r"^to_torch: expected a layer of type LSTM, GRU, RNN, Linear, LSTMCell, "
                                         rf"GRUCell, RNNCell or a model of type {MODEL_NAMES}, Seq2Seq, got "
                                         r"Embedding\.$"):
        to_torch(Embedding(5, 2))
