"""Files and PyTorch: ``save``/``load`` round trips for every class and option, files that PyTorch reads as
state dicts, every kind of broken file refused with a ValueError that names it, no unpickling anywhere, and
``from_torch``/``to_torch`` conversions that keep outputs and gradients.

Torch comparisons run in float64 and require ``max|a - b| / max|b| <= 1e-10`` (``TOL``).
"""

from __future__ import annotations

import ast
import pickle
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from errors import rel_err
from hypothesis import given, settings
from hypothesis import strategies as st

import bptt
from bptt import GRU, LSTM, RNN, Linear, from_torch, load, save, to_torch
from bptt.interop.io import load_arrays, save_arrays
from bptt.layers.embedding import Embedding
from bptt.layers.models import LanguageModel, SequenceClassifier, SequenceRegressor

torch = pytest.importorskip("torch")
safetensors_torch = pytest.importorskip("safetensors.torch")

TOL = 1e-10
FAMILIES = {"LSTM": LSTM, "GRU": GRU, "RNN": RNN}
# torch warns that dropout does nothing with one layer; the option is still carried over, which is the point.
torch_dropout_warning = pytest.mark.filterwarnings("ignore:dropout option adds dropout:UserWarning")


# ---------------------------------------------------------------------------------------------------------
# Random modules and inputs
# ---------------------------------------------------------------------------------------------------------

@st.composite
def recurrent_configs(draw, dtypes: tuple = (np.float64, np.float32)) -> tuple[str, dict]:
    """A family and a full constructor config: sizes from 1, every option of the family."""
    family = draw(st.sampled_from(list(FAMILIES)))
    H = draw(st.integers(1, 4))
    config = {"input_size": draw(st.integers(1, 4)), "hidden_size": H, "num_layers": draw(st.integers(1, 3)),
              "bias": draw(st.booleans()), "batch_first": draw(st.booleans()),
              "dropout": draw(st.sampled_from([0.0, 0.3])), "bidirectional": draw(st.booleans()),
              "dtype": np.dtype(draw(st.sampled_from(dtypes)))}
    if family == "LSTM":
        config["proj_size"] = draw(st.integers(0, H - 1))
    if family == "RNN":
        config["nonlinearity"] = draw(st.sampled_from(["tanh", "relu"]))
    return family, config


@st.composite
def any_modules(draw) -> bptt.LSTM | Linear | Embedding | SequenceRegressor | SequenceClassifier | LanguageModel:
    """A module of any class ``save`` knows, with random options and seeded random weights."""
    kind = draw(st.sampled_from(["recurrent", "Linear", "Embedding", "SequenceRegressor", "SequenceClassifier",
                                 "LanguageModel"]))
    seed = draw(st.integers(0, 2**32 - 1))
    dtype = draw(st.sampled_from([np.float64, np.float32]))
    if kind == "Linear":
        return Linear(draw(st.integers(1, 4)), draw(st.integers(1, 4)), bias=draw(st.booleans()), dtype=dtype,
                      rng=seed)
    if kind == "Embedding":
        V = draw(st.integers(1, 5))
        return Embedding(V, draw(st.integers(1, 4)), padding_idx=draw(st.sampled_from([None, 0, -1])), dtype=dtype,
                         rng=seed)
    if kind == "SequenceClassifier":
        return SequenceClassifier(draw(st.integers(1, 4)), draw(st.integers(1, 4)), draw(st.integers(1, 3)),
                                  draw(st.integers(1, 2)), cell=draw(st.sampled_from(["lstm", "gru", "rnn"])),
                                  bidirectional=draw(st.booleans()), dtype=dtype, rng=seed)
    if kind == "LanguageModel":
        return LanguageModel(draw(st.integers(1, 6)), draw(st.integers(1, 4)), draw(st.integers(1, 4)),
                             draw(st.integers(1, 2)), cell=draw(st.sampled_from(["lstm", "gru", "rnn"])),
                             dropout=draw(st.sampled_from([0.0, 0.3])), dtype=dtype, rng=seed)
    if kind == "SequenceRegressor":
        return SequenceRegressor(draw(st.integers(1, 4)), draw(st.integers(1, 4)), draw(st.integers(1, 3)),
                                 draw(st.integers(1, 3)), cell=draw(st.sampled_from(["lstm", "gru", "rnn"])),
                                 dtype=dtype, rng=seed)
    family, config = draw(recurrent_configs())
    return FAMILIES[family](**config, rng=seed)


def input_for(module, steps: int, batch: int, rng: np.random.Generator) -> np.ndarray:
    """A random input in the module's own layout and dtype."""
    if isinstance(module, Linear):
        return rng.standard_normal((steps, batch, module.in_features)).astype(module.dtype)
    if isinstance(module, Embedding):
        return rng.integers(0, module.num_embeddings, size=(steps, batch))
    if isinstance(module, LanguageModel):
        return rng.integers(0, module.vocab_size, size=(steps, batch))
    layer = module.rnn if isinstance(module, (SequenceRegressor, SequenceClassifier)) else module
    shape = (batch, steps, layer.input_size) if layer.batch_first else (steps, batch, layer.input_size)
    return rng.standard_normal(shape).astype(module.dtype)


def outputs(module, x: np.ndarray) -> list[np.ndarray]:
    """Every array a forward pass returns (output and final states; a language model's ``final_state``), with
    dropout switched off."""
    layer = module.rnn if isinstance(module, (SequenceRegressor, SequenceClassifier)) else module
    if hasattr(layer, "eval"):
        layer.eval()
    result = module(x)
    if isinstance(module, LanguageModel):
        state = module.final_state
        return [result, *(state if isinstance(state, tuple) else (state,))]
    if isinstance(result, np.ndarray):
        return [result]
    out, state = result
    return [out, *(state if isinstance(state, tuple) else (state,))]


# ---------------------------------------------------------------------------------------------------------
# save -> load
# ---------------------------------------------------------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(module=any_modules(), steps=st.integers(1, 4), batch=st.integers(1, 3))
def test_round_trip_keeps_class_config_weights_and_outputs(tmp_path_factory, module, steps, batch):
    path = save(module, tmp_path_factory.mktemp("round") / "module.safetensors")
    twin = load(path)
    assert type(twin) is type(module)
    assert twin.config() == module.config()
    assert list(twin.params) == list(module.params)
    for name, value in module.params.items():
        assert twin.params[name].dtype == value.dtype, name
        np.testing.assert_array_equal(twin.params[name], value, err_msg=name)
    x = input_for(module, steps, batch, np.random.default_rng(steps * 10 + batch))
    for ours, theirs in zip(outputs(module, x), outputs(twin, x), strict=True):
        np.testing.assert_array_equal(theirs, ours)


def test_extra_metadata_is_kept_beside_the_reserved_entries(tmp_path):
    path = save(Linear(2, 3, rng=0), tmp_path / "linear.safetensors", metadata={"run": {"lr": 0.01, "steps": 5}})
    _, metadata = load_arrays(path)
    assert metadata["run"] == {"lr": 0.01, "steps": 5}
    assert metadata["format"] == "bptt" and metadata["class"] == "Linear"


# ---------------------------------------------------------------------------------------------------------
# The files are PyTorch state dicts
# ---------------------------------------------------------------------------------------------------------

def torch_module(family: str, config: dict):
    """The torch.nn twin built from the bptt config alone (float64), independent of ``to_torch``."""
    options = {key: value for key, value in config.items() if key != "dtype"}
    return getattr(torch.nn, family)(**options, dtype=torch.float64).eval()


def run_torch(module, x: np.ndarray, hx):
    with torch.no_grad():
        out, state = module(torch.from_numpy(x), hx)
    return out.numpy(), state


@torch_dropout_warning
@settings(max_examples=40, deadline=None)
@given(case=recurrent_configs(dtypes=(np.float64,)), steps=st.integers(1, 4), batch=st.integers(1, 3),
       seed=st.integers(0, 2**32 - 1))
def test_bare_layer_file_loads_into_torch_with_the_same_outputs(tmp_path_factory, case, steps, batch, seed):
    family, config = case
    layer = FAMILIES[family](**config, rng=seed).eval()
    path = save(layer, tmp_path_factory.mktemp("torch") / f"{family}.safetensors")
    module = torch_module(family, config)
    module.load_state_dict(safetensors_torch.load_file(path))
    x = input_for(layer, steps, batch, np.random.default_rng(seed))
    out, state = layer(x)
    torch_out, torch_state = run_torch(module, x, None)
    assert rel_err(out, torch_out) <= TOL
    for ours, theirs in zip(state if family == "LSTM" else (state,),
                            torch_state if family == "LSTM" else (torch_state,), strict=True):
        assert rel_err(ours, theirs.numpy()) <= TOL


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_sequence_regressor_file_has_pytorch_keys_and_loads_into_a_torch_module(tmp_path, cell):
    model = SequenceRegressor(3, 5, 2, num_layers=2, cell=cell, rng=1)
    path = save(model, tmp_path / "model.safetensors")

    class TorchRegressor(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rnn = getattr(torch.nn, cell.upper())(3, 5, num_layers=2, dtype=torch.float64)
            self.head = torch.nn.Linear(5, 2, dtype=torch.float64)

    reference = TorchRegressor()
    state = safetensors_torch.load_file(path)
    assert sorted(state) == sorted(reference.state_dict())
    assert all(key.startswith(("rnn.", "head.")) for key in state)
    reference.load_state_dict(state)
    x = np.random.default_rng(0).standard_normal((4, 2, 3))
    with torch.no_grad():
        expected = reference.head(reference.rnn(torch.from_numpy(x))[0]).numpy()
    assert rel_err(model(x), expected) <= TOL


# ---------------------------------------------------------------------------------------------------------
# Broken files: ValueError naming the file
# ---------------------------------------------------------------------------------------------------------

def valid_file(tmp_path: Path) -> Path:
    return save(LSTM(2, 3, num_layers=2, rng=0), tmp_path / "lstm.safetensors")


def rewrite(tmp_path: Path, change) -> Path:
    """A copy of a valid LSTM file with its arrays and metadata passed through ``change`` (in place)."""
    arrays, metadata = load_arrays(valid_file(tmp_path))
    change(arrays, metadata)
    return save_arrays(tmp_path / "changed.safetensors", arrays, metadata)


def truncated(tmp_path: Path) -> Path:
    data = valid_file(tmp_path).read_bytes()
    target = tmp_path / "truncated.safetensors"
    target.write_bytes(data[:len(data) // 2])
    return target


def corrupt(tmp_path: Path) -> Path:
    target = tmp_path / "corrupt.safetensors"
    target.write_bytes(np.random.default_rng(0).integers(0, 256, 500, dtype=np.uint8).tobytes())
    return target


def corrupt_header(tmp_path: Path) -> Path:
    data = bytearray(valid_file(tmp_path).read_bytes())
    data[8:20] = b"#" * 12                       # inside the JSON header that follows the 8-byte length
    target = tmp_path / "corrupt_header.safetensors"
    target.write_bytes(bytes(data))
    return target


def empty(tmp_path: Path) -> Path:
    target = tmp_path / "empty.safetensors"
    target.write_bytes(b"")
    return target


def foreign(tmp_path: Path) -> Path:
    """A valid safetensors file with PyTorch's keys, but not written by bptt.save (no class, no config)."""
    return save_arrays(tmp_path / "foreign.safetensors", LSTM(2, 3, rng=0).params)


def set_config(**changes):
    def change(arrays, metadata):
        metadata["config"] = {**metadata["config"], **changes}
    return change


BROKEN_FILES = {
    "corrupt bytes": (corrupt, "expected a readable safetensors file"),
    "corrupt header": (corrupt_header, "expected a readable safetensors file"),
    "truncated": (truncated, "expected a readable safetensors file"),
    "empty": (empty, "expected a readable safetensors file"),
    "missing": (lambda tmp_path: tmp_path / "missing.safetensors", "expected a readable safetensors file"),
    "directory": (lambda tmp_path: tmp_path, "expected a readable safetensors file"),
    "not written by bptt.save": (foreign, "to be written by bptt.save"),
    "wrong shape": (lambda p: rewrite(p, lambda a, m: a.update(weight_hh_l1=a["weight_hh_l1"].T.copy())),
                    r"expected weight_hh_l1 of shape \(12, 3\), got \(3, 12\)"),
    "missing key": (lambda p: rewrite(p, lambda a, m: a.pop("bias_hh_l1")), r"missing keys \['bias_hh_l1'\]"),
    "extra key": (lambda p: rewrite(p, lambda a, m: a.update(weight_ih_l2=np.zeros((12, 3)))),
                  r"unexpected keys \['weight_ih_l2'\]"),
    "other dtype": (lambda p: rewrite(p, lambda a, m: a.update(bias_ih_l0=a["bias_ih_l0"].astype(np.float32))),
                    r"expected arrays of the configured dtype float64, got \{'bias_ih_l0': 'float32'\}"),
    "non-finite array": (lambda p: rewrite(p, lambda a, m: a["bias_ih_l0"].fill(np.nan)),
                         "expected finite values in bias_ih_l0"),
    "config with a bad size": (lambda p: rewrite(p, set_config(hidden_size=0)), "expected hidden_size >= 1, got 0"),
    "config that disagrees with the arrays": (lambda p: rewrite(p, set_config(hidden_size=4)),
                                              r"expected weight_ih_l0 of shape \(16, 2\), got \(12, 2\)"),
    "config with an unknown option": (lambda p: rewrite(p, set_config(peepholes=True)), "peepholes"),
    "config of another class's options": (lambda p: rewrite(p, set_config(nonlinearity="relu")), "nonlinearity"),
    "config not a dict": (lambda p: rewrite(p, lambda a, m: m.update(config=[2, 3])),
                          r"expected a configuration dict .* got \[2, 3\]"),
    "unknown class": (lambda p: rewrite(p, lambda a, m: m.update({"class": "Transformer"})),
                      "got format 'bptt' and class 'Transformer'"),
    "class not a string": (lambda p: rewrite(p, lambda a, m: m.update({"class": ["LSTM"]})),
                           r"class \['LSTM'\]"),
}


@pytest.mark.parametrize("case", list(BROKEN_FILES))
def test_broken_file_raises_value_error_naming_it(tmp_path, case):
    make, reason = BROKEN_FILES[case]
    path = make(tmp_path)
    with pytest.raises(ValueError, match=re.escape(str(path))) as excinfo:
        load(path)
    assert re.search(reason, str(excinfo.value)), str(excinfo.value)


def test_non_json_metadata_raises_value_error_naming_the_file(tmp_path):
    from safetensors.numpy import save_file

    path = tmp_path / "raw.safetensors"
    save_file({"weight": np.zeros((2, 2))}, str(path), metadata={"format": "not json {"})
    with pytest.raises(ValueError, match="expected JSON metadata in " + re.escape(repr(str(path)))):
        load(path)


# ---------------------------------------------------------------------------------------------------------
# Never unpickle
# ---------------------------------------------------------------------------------------------------------

class _Trap:
    """Unpickling this object creates the file ``marker``: proof that a loader ran pickle."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_pickle_renamed_safetensors_is_refused_and_never_unpickled(tmp_path):
    marker = tmp_path / "unpickled"
    path = tmp_path / "model.safetensors"
    path.write_bytes(pickle.dumps({**LSTM(2, 3, rng=0).state_dict(), "trap": _Trap(marker)}))
    with pytest.raises(ValueError, match=re.escape(str(path))):
        load(path)
    assert not marker.exists(), "load ran pickle"
    pickle.loads(path.read_bytes())          # the trap works: unpickling does create the marker
    assert marker.exists()


UNPICKLING_MODULES = {"pickle", "cPickle", "_pickle", "dill", "joblib", "shelve", "marshal", "cloudpickle"}


def unpickling_sites(source: str) -> list[str]:
    """Imports of pickle-like modules, ``np.load(..., allow_pickle=True)`` and ``torch.load`` in ``source``."""
    sites = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            sites += [a.name for a in node.names if a.name.split(".")[0] in UNPICKLING_MODULES]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in UNPICKLING_MODULES:
            sites.append(f"from {node.module}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "load":
            owner = ast.unparse(node.func.value)
            allows_pickle = any(k.arg == "allow_pickle" and not (isinstance(k.value, ast.Constant)
                                                                 and k.value.value is False)
                                for k in node.keywords)
            if owner == "torch" or (owner in ("np", "numpy") and allows_pickle):
                sites.append(ast.unparse(node))
    return sites


def test_the_detector_finds_what_it_looks_for():
    assert unpickling_sites("import pickle\nfrom joblib import load\nnp.load(p, allow_pickle=True)\n"
                            "torch.load(p)\nnp.load(p)\nnp.load(p, allow_pickle=False)") == [
        "pickle", "from joblib", "np.load(p, allow_pickle=True)", "torch.load(p)"]


def test_no_module_of_bptt_can_unpickle():
    package = Path(bptt.__file__).parent
    found = {str(path.relative_to(package)): sites for path in sorted(package.rglob("*.py"))
             if (sites := unpickling_sites(path.read_text(encoding="utf-8")))}
    assert found == {}


# ---------------------------------------------------------------------------------------------------------
# from_torch / to_torch
# ---------------------------------------------------------------------------------------------------------

def torch_pass(module, x: np.ndarray, hx, dout: np.ndarray, dhx, lstm: bool):
    """Forward and backward through a torch module: out, final states, dx, initial-state grads, param grads."""
    x_t = torch.from_numpy(x).requires_grad_(True)
    hx_t = tuple(torch.from_numpy(s).requires_grad_(True) for s in hx)
    out, state = module(x_t, hx_t if lstm else hx_t[0])
    finals = state if lstm else (state,)
    loss = (out * torch.from_numpy(dout)).sum() + sum((s * torch.from_numpy(d)).sum()
                                                      for s, d in zip(finals, dhx, strict=True))
    loss.backward()
    grads = {name: p.grad.numpy() for name, p in module.named_parameters()}
    return (out.detach().numpy(), [s.detach().numpy() for s in finals], x_t.grad.numpy(),
            [s.grad.numpy() for s in hx_t], grads)


def bptt_pass(layer, x: np.ndarray, hx, dout: np.ndarray, dhx, lstm: bool):
    layer.zero_grad()
    out, state = layer(x, tuple(hx) if lstm else hx[0])
    dx, dstate = layer.backward(dout, tuple(dhx) if lstm else dhx[0])
    return (out, list(state) if lstm else [state], dx, list(dstate) if lstm else [dstate],
            {name: grad.copy() for name, grad in layer.grads.items()})


def assert_same_pass(layer, module, steps: int, batch: int, seed: int) -> float:
    """Run one random forward and backward through both; return the largest relative difference."""
    rng = np.random.default_rng(seed)
    lstm = isinstance(layer, LSTM)
    x = input_for(layer, steps, batch, rng)
    D, L = 2 if layer.bidirectional else 1, layer.num_layers
    sizes = (layer.output_size, layer.hidden_size) if lstm else (layer.hidden_size,)
    hx = [rng.standard_normal((L * D, batch, size)) for size in sizes]
    dhx = [rng.standard_normal((L * D, batch, size)) for size in sizes]
    out_shape = x.shape[:2] + (D * layer.output_size,)
    dout = rng.standard_normal(out_shape)
    ours, theirs = bptt_pass(layer, x, hx, dout, dhx, lstm), torch_pass(module, x, hx, dout, dhx, lstm)
    errors = {"out": rel_err(ours[0], theirs[0]), "dx": rel_err(ours[2], theirs[2])}
    errors.update({f"final {k}": rel_err(a, b) for k, (a, b) in enumerate(zip(ours[1], theirs[1], strict=True))})
    errors.update({f"initial {k}": rel_err(a, b) for k, (a, b) in enumerate(zip(ours[3], theirs[3], strict=True))})
    assert sorted(ours[4]) == sorted(theirs[4])
    errors.update({name: rel_err(ours[4][name], theirs[4][name]) for name in ours[4]})
    worst = max(errors, key=errors.get)
    assert errors[worst] <= TOL, f"{worst}: {errors[worst]:.3g}"
    return errors[worst]


@torch_dropout_warning
@settings(max_examples=40, deadline=None)
@given(case=recurrent_configs(dtypes=(np.float64,)), steps=st.integers(1, 4), batch=st.integers(1, 3),
       seed=st.integers(0, 2**32 - 1))
def test_from_torch_gives_the_same_outputs_and_gradients(case, steps, batch, seed):
    family, config = case
    torch.manual_seed(seed % 2**31)
    module = torch_module(family, config)
    layer = from_torch(module)
    assert type(layer) is FAMILIES[family] and layer.config() == FAMILIES[family](**config).config()
    assert not layer.training
    for name, value in module.state_dict().items():
        np.testing.assert_array_equal(layer.params[name], value.numpy(), err_msg=name)
    assert_same_pass(layer, module, steps, batch, seed)


@torch_dropout_warning
@settings(max_examples=40, deadline=None)
@given(case=recurrent_configs(dtypes=(np.float64,)), steps=st.integers(1, 4), batch=st.integers(1, 3),
       seed=st.integers(0, 2**32 - 1))
def test_to_torch_gives_the_same_outputs_and_gradients(case, steps, batch, seed):
    family, config = case
    layer = FAMILIES[family](**config, rng=seed).eval()
    module = to_torch(layer)
    assert type(module) is getattr(torch.nn, family) and not module.training
    assert from_torch(module).config() == layer.config()
    for name, value in module.state_dict().items():
        assert value.dtype == torch.float64
        np.testing.assert_array_equal(value.numpy(), layer.params[name], err_msg=name)
    assert_same_pass(layer, module, steps, batch, seed)


@torch_dropout_warning
@settings(max_examples=30, deadline=None)
@given(case=recurrent_configs(dtypes=(np.float32,)), seed=st.integers(0, 2**32 - 1), training=st.booleans())
def test_float32_and_the_mode_survive_both_ways(case, seed, training):
    family, config = case
    layer = FAMILIES[family](**config, rng=seed).train(training)
    module = to_torch(layer)
    assert all(p.dtype == torch.float32 for p in module.parameters()) and module.training == training
    back = from_torch(module)
    assert back.dtype == np.float32 and back.training == training and back.config() == layer.config()
    for name, value in layer.params.items():
        np.testing.assert_array_equal(back.params[name], value, err_msg=name)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_converts_both_ways(dtype, bias):
    torch.manual_seed(0)
    module = torch.nn.Linear(4, 3, bias=bias, dtype=dtype)
    layer = from_torch(module)
    assert layer.config() == {"in_features": 4, "out_features": 3, "bias": bias,
                              "dtype": np.dtype(str(dtype).removeprefix("torch."))}
    x = np.random.default_rng(1).standard_normal((5, 2, 4)).astype(layer.dtype)
    with torch.no_grad():
        expected = module(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(layer(x), expected, rtol=1e-5 if dtype == torch.float32 else 1e-12)
    back = to_torch(layer)
    for name, value in module.state_dict().items():
        assert torch.equal(back.state_dict()[name], value), name


def test_converted_weights_are_copies():
    layer = LSTM(2, 3, rng=0)
    module = to_torch(layer)
    with torch.no_grad():
        module.weight_hh_l0.add_(1.0)
    twin = from_torch(module)
    twin.params["weight_ih_l0"] += 1.0
    assert not np.array_equal(layer.params["weight_hh_l0"], module.weight_hh_l0.detach().numpy())
    assert not np.array_equal(twin.params["weight_ih_l0"], module.weight_ih_l0.detach().numpy())


@pytest.mark.parametrize(("convert", "argument", "error", "message"), [
    (from_torch, lambda: torch.nn.Conv1d(2, 3, 1), ValueError,
     r"from_torch: expected a torch\.nn module of type LSTM, GRU, RNN, Linear, LSTMCell, GRUCell, RNNCell, got "
     r"torch\.nn\.modules\.conv\.Conv1d"),
    (from_torch, lambda: torch.nn.Bilinear(2, 3, 4), ValueError, r"got torch\.nn\.modules\.linear\.Bilinear"),
    (from_torch, lambda: type("MyLSTM", (torch.nn.LSTM,), {})(2, 3), ValueError, r"got .*MyLSTM"),
    (from_torch, lambda: LSTM(2, 3), TypeError, "from_torch: expected a torch.nn.Module, got LSTM"),
    (from_torch, lambda: torch.nn.GRU(2, 3, dtype=torch.float16), TypeError,
     "from_torch: expected parameters all float32 or all float64, got float16"),
    (from_torch, lambda: torch.nn.Linear(2, 3).to(torch.bfloat16), TypeError, "got bfloat16"),
    (to_torch, lambda: Embedding(5, 2), ValueError, r"got Embedding\.$"),
    (to_torch, lambda: torch.nn.LSTM(2, 3), TypeError, "to_torch: expected a bptt layer, got LSTM"),
])
def test_unsupported_conversions(convert, argument, error, message):
    with pytest.raises(error, match=message):
        convert(argument())


def test_mixed_torch_dtypes_are_refused():
    module = torch.nn.Linear(2, 3, dtype=torch.float64)
    module.bias.data = module.bias.data.float()
    with pytest.raises(TypeError, match="expected parameters all float32 or all float64, got float32, float64"):
        from_torch(module)


def test_non_finite_torch_weights_are_refused():
    module = torch.nn.RNN(2, 3, dtype=torch.float64)
    with torch.no_grad():
        module.weight_hh_l0[0, 0] = float("nan")
    with pytest.raises(ValueError, match="expected finite values in weight_hh_l0"):
        from_torch(module)


@pytest.mark.parametrize("convert", [from_torch, to_torch])
def test_missing_torch_raises_import_error(monkeypatch, convert):
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ImportError, match=rf"{convert.__name__}: expected PyTorch to be installed"):
        convert(LSTM(2, 3, rng=0))
