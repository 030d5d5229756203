"""export_onnx and ``bptt export``: the exported file, run by onnxruntime in float32, against bptt's float64
forward pass."""

import re
import sys

import numpy as np
import onnx
import onnxruntime
import pytest

from bptt import GRU, LSTM, RNN, Linear, save
from bptt.cli import main
from bptt.interop.onnx_export import describe_inputs, export_onnx
from bptt.layers.models import LanguageModel, SequenceClassifier, SequenceRegressor

T, N, I, H = 5, 3, 4, 6
C, V, E = 3, 11, 5  # classes; a language model's vocabulary and embedding
TOLERANCE = 1e-4  # float32 graph against the float64 reference
RELATIVE_TOLERANCE = 1e-5  # ... as a fraction of the largest reference entry
FAMILIES = {"lstm": (LSTM, {}), "gru": (GRU, {}), "rnn-tanh": (RNN, {"nonlinearity": "tanh"}),
            "rnn-relu": (RNN, {"nonlinearity": "relu"})}


def run_onnx(path, x=None, **feed):
    """The exported model's outputs, by output name, on ``x`` (cast to float32) as ``"input"`` and the
    other inputs in ``feed``, passed as they are."""
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]
    if x is not None:
        feed["input"] = x.astype(np.float32)
    return dict(zip(names, session.run(None, feed), strict=True))


def reference_outputs(layer, x):
    """bptt's forward pass of a bare layer under the exported graph's output names."""
    out, states = layer(x)
    states = states if isinstance(states, tuple) else (states,)
    return {"output": out, **dict(zip(["h_n", "c_n"], states, strict=False))}


def largest_error(got, expected):
    assert sorted(got) == sorted(expected)
    for name, value in expected.items():
        assert got[name].shape == value.shape, name
    return max(float(np.abs(got[name] - value).max()) for name, value in expected.items())


def largest_relative_error(got, expected):
    """``largest_error`` output by output as a fraction of the output's largest reference entry."""
    largest_error(got, expected)
    return max(float(np.abs(got[name] - value).max() / np.abs(value).max()) for name, value in expected.items())


def state_outputs(states):
    """A language model's ``final_state`` under the graph's output names."""
    return dict(zip(["h_n", "c_n"], states if isinstance(states, tuple) else (states,), strict=False))


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no-bias"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("num_layers", [1, 2, 3])
@pytest.mark.parametrize("family", FAMILIES)
def test_layer_matches_onnxruntime(tmp_path, family, num_layers, bidirectional, bias):
    cls, options = FAMILIES[family]
    layer = cls(I, H, num_layers=num_layers, bidirectional=bidirectional, bias=bias, **options, rng=1)
    path = export_onnx(layer, tmp_path / "layer.onnx")
    operators = [node.op_type for node in onnx.load(path).graph.node]
    assert operators.count(cls.__name__) == num_layers  # one ONNX operator per layer, both directions in it
    x = np.random.default_rng(2).standard_normal((T, N, I))
    assert largest_error(run_onnx(path, x), reference_outputs(layer, x)) <= TOLERANCE


def packed_case(family, num_layers, bidirectional, initial_states, seed):
    """A float32 layer, a padded batch ``x (T, 6, I)`` (noise after each sequence's length), its lengths (two of
    them T, one 1) and initial states (or None), and the graph's feed for them."""
    cls, options = FAMILIES[family]
    layer = cls(I, H, num_layers=num_layers, bidirectional=bidirectional, **options, dtype=np.float32, rng=seed)
    rng = np.random.default_rng(seed + 1)
    x = rng.standard_normal((T, 6, I)).astype(np.float32)
    lengths = np.concatenate([[T, 1, T], rng.integers(1, T + 1, 3)])
    feed = {"sequence_lens": lengths.astype(np.int32)}
    hx = None
    if initial_states:
        shape = (num_layers * layer.num_directions, 6, H)
        states = [rng.standard_normal(shape).astype(np.float32) for _ in layer.family.state_names]
        feed.update({f"{name}0": state for name, state in zip(layer.family.state_names, states, strict=True)})
        hx = tuple(states) if len(states) > 1 else states[0]
    return layer, x, lengths, hx, feed


@pytest.mark.parametrize("initial_states", [False, True], ids=["zero-states", "given-states"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("family", FAMILIES)
def test_layer_with_lengths_and_initial_states_matches_onnxruntime(tmp_path, family, num_layers, bidirectional,
                                                                   initial_states):
    layer, x, lengths, hx, feed = packed_case(family, num_layers, bidirectional, initial_states, seed=23)
    path = export_onnx(layer, tmp_path / "layer.onnx")
    out, states = layer(x, hx, lengths)
    expected = {"output": out, **state_outputs(states)}
    assert np.abs(out - layer(x, hx)[0]).max() > 1e-3                # the lengths change the outputs
    got = run_onnx(path, x, **feed)
    assert largest_error(got, expected) <= TOLERANCE
    padded = np.arange(T)[:, None] >= lengths                         # (T, N): steps after each length
    assert (got["output"][padded] == 0).all() and (out[padded] == 0).all()


def test_leaving_the_layer_inputs_out_runs_full_sequences_from_zero_states(tmp_path):
    layer = LSTM(I, H, num_layers=2, bidirectional=True, rng=24)
    path = export_onnx(layer, tmp_path / "lstm.onnx")
    graph_inputs = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_inputs()
    assert [(g.name, g.type.startswith("optional(")) for g in graph_inputs] == [
        ("input", False), ("sequence_lens", True), ("h0", True), ("c0", True)]
    x = np.random.default_rng(25).standard_normal((T, N, I))
    left_out = run_onnx(path, x)
    assert largest_error(left_out, reference_outputs(layer, x)) <= TOLERANCE
    zeros = np.zeros((4, N, H), dtype=np.float32)
    defaults = run_onnx(path, x, sequence_lens=np.full(N, T, dtype=np.int32), h0=zeros, c0=zeros)
    assert all(np.array_equal(left_out[name], defaults[name]) for name in left_out)
    assert all(np.array_equal(left_out[name], value) for name, value in run_onnx(path, x, h0=None).items())


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_sequence_regressor_matches_onnxruntime(tmp_path, cell):
    model = SequenceRegressor(I, H, 2, num_layers=2, cell=cell, rng=3)
    x = np.random.default_rng(4).standard_normal((T, N, I))
    got = run_onnx(export_onnx(model, tmp_path / "model.onnx"), x)
    assert largest_error(got, {"output": model(x)}) <= TOLERANCE


def test_batch_first_layer_takes_time_major_input(tmp_path):
    layer = LSTM(I, H, num_layers=2, batch_first=True, bidirectional=True, rng=5)
    x = np.random.default_rng(6).standard_normal((T, N, I))
    out, (h_n, c_n) = layer(x.swapaxes(0, 1))
    got = run_onnx(export_onnx(layer, tmp_path / "layer.onnx"), x)
    assert largest_error(got, {"output": out.swapaxes(0, 1), "h_n": h_n, "c_n": c_n}) <= TOLERANCE


def test_one_file_runs_any_length_and_batch(tmp_path):
    layer = GRU(I, H, num_layers=2, bidirectional=True, rng=7)
    path = export_onnx(layer, tmp_path / "gru.onnx")
    dims = onnx.load(path).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["T", "N", I]
    rng = np.random.default_rng(8)
    for steps, batch in [(1, 1), (11, 2), (4, 9)]:
        x = rng.standard_normal((steps, batch, I))
        assert largest_error(run_onnx(path, x), reference_outputs(layer, x)) <= TOLERANCE


def test_float32_layer_and_dropout_export_the_inference_pass(tmp_path):
    layer = RNN(I, H, num_layers=3, nonlinearity="relu", dropout=0.5, dtype=np.float32, rng=9)
    x = np.random.default_rng(10).standard_normal((T, N, I))
    got = run_onnx(export_onnx(layer, tmp_path / "rnn.onnx"), x)
    assert largest_error(got, reference_outputs(layer.eval(), x)) <= TOLERANCE


@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_classifier_matches_onnxruntime_with_and_without_lengths(tmp_path, cell, bidirectional, num_layers):
    model = SequenceClassifier(I, H, C, num_layers, cell=cell, bidirectional=bidirectional, rng=16)
    path = export_onnx(model, tmp_path / "classifier.onnx")
    onnx.checker.check_model(onnx.load(path), full_check=True)
    x = np.random.default_rng(17).standard_normal((T, N, I))     # padded: noise after each sequence's length
    lengths = np.array([T, 1, 3])
    packed = model(x, lengths)
    assert np.abs(packed - model(x)).max() > 1e-3                # the lengths change the logits
    assert largest_relative_error(run_onnx(path, x), {"logits": model(x)}) <= RELATIVE_TOLERANCE
    got = run_onnx(path, x, sequence_lens=lengths.astype(np.int32))
    assert largest_relative_error(got, {"logits": packed}) <= RELATIVE_TOLERANCE


@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_language_model_matches_onnxruntime_in_one_pass_and_in_chunks(tmp_path, cell, num_layers):
    model = LanguageModel(V, E, H, num_layers, cell=cell, dropout=0.5, rng=18)   # training mode: dropout on
    path = export_onnx(model, tmp_path / "lm.onnx")
    onnx.checker.check_model(onnx.load(path), full_check=True)
    model.eval()                                                  # the graph is the inference pass
    tokens = np.random.default_rng(19).integers(0, V, size=(T, N))
    expected = {"logits": model(tokens), **state_outputs(model.final_state)}
    assert largest_relative_error(run_onnx(path, tokens=tokens), expected) <= RELATIVE_TOLERANCE
    # two chunks: the first one's final states, carried through onnxruntime as h0 (and c0), start the second
    first = run_onnx(path, tokens=tokens[:2])
    carried = {f"{name[0]}0": first[name] for name in state_outputs(model.final_state)}
    second = run_onnx(path, tokens=tokens[2:], **carried)
    model(tokens[:2])
    expected = {"logits": model(tokens[2:], hx=model.final_state), **state_outputs(model.final_state)}
    assert largest_relative_error(second, expected) <= RELATIVE_TOLERANCE


@pytest.mark.parametrize("module, expected", [
    (GRU(I, H, num_layers=2, rng=0), "inputs: input (T, N, 4) float32, optional sequence_lens (N,) int32 "
                                     "(1..T, default T), optional h0 (2, N, 6) float32 (default zeros)"),
    (LSTM(I, H, bidirectional=True, rng=0), "inputs: input (T, N, 4) float32, optional sequence_lens (N,) int32 "
                                            "(1..T, default T), optional h0 (2, N, 6) float32 (default zeros), "
                                            "optional c0 (2, N, 6) float32 (default zeros)"),
    (SequenceRegressor(I, H, 2, rng=0), "inputs: input (T, N, 4) float32"),
    (SequenceClassifier(I, H, C, bidirectional=True, rng=0),
     "inputs: input (T, N, 4) float32, optional sequence_lens (N,) int32 (1..T, default T)"),
    (LanguageModel(V, E, H, 2, cell="rnn", rng=0),
     "inputs: tokens (T, N) int64 (0..10), optional h0 (2, N, 6) float32 (default zeros)"),
    (LanguageModel(V, E, H, 3, rng=0), "inputs: tokens (T, N) int64 (0..10), optional h0 (3, N, 6) float32 "
                                       "(default zeros), optional c0 (3, N, 6) float32 (default zeros)"),
], ids=["gru", "bidirectional-lstm", "regressor", "classifier", "rnn-lm", "lstm-lm"])
def test_describe_inputs_says_what_the_file_takes(tmp_path, module, expected):
    assert describe_inputs(module) == expected
    session = onnxruntime.InferenceSession(str(export_onnx(module, tmp_path / "model.onnx")),
                                           providers=["CPUExecutionProvider"])
    described = re.findall(r"(?:inputs: |, )(optional )?(\w+) \(", expected)
    assert described == [("optional " if graph_input.type.startswith("optional(") else "", graph_input.name)
                         for graph_input in session.get_inputs()]


def test_older_opset_runs_the_same(tmp_path):
    layer = LSTM(I, H, bidirectional=True, rng=11)
    path = export_onnx(layer, tmp_path / "lstm.onnx", opset=14)
    assert onnx.load(path).opset_import[0].version == 14
    assert [graph_input.name for graph_input in onnx.load(path).graph.input] == ["input"]  # no Optional type yet
    assert describe_inputs(layer, opset=14) == "inputs: input (T, N, 4) float32"
    x = np.random.default_rng(12).standard_normal((T, N, I))
    assert largest_error(run_onnx(path, x), reference_outputs(layer, x)) <= TOLERANCE


@pytest.mark.parametrize("module, options, error, message", [
    (LSTM(I, H, proj_size=2, rng=0), {}, ValueError,
     r"expected an LSTM without projection \(proj_size=0\), got proj_size=2; ONNX's LSTM operator has no projection"),
    (SequenceRegressor(I, H, 1, rng=0), {"opset": 13}, ValueError, r"expected opset between 14 and \d+, got 13"),
    (GRU(I, H, rng=0), {"opset": "17"}, TypeError, "expected opset to be an int, got str"),
    (SequenceClassifier(I, H, C, rng=0), {"opset": 14}, ValueError,
     r"expected opset between 15 and \d+ for a SequenceClassifier \(its optional inputs need opset 15\), got 14"),
    (LanguageModel(V, E, H, rng=0), {"opset": 14}, ValueError,
     r"expected opset between 15 and \d+ for a LanguageModel"),
    (Linear(I, H, rng=0), {}, TypeError,
     "expected an LSTM, GRU, RNN, SequenceRegressor, SequenceClassifier or LanguageModel, got Linear"),
])
def test_refusals_name_the_reason_and_write_nothing(tmp_path, module, options, error, message):
    with pytest.raises(error, match=f"^export_onnx: {message}"):
        export_onnx(module, tmp_path / "model.onnx", **options)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("module, opset, error, message", [
    (GRU(I, H, rng=0), 14.0, TypeError, "expected opset to be an int, got float"),
    (RNN(I, H, rng=0), 13, ValueError, r"expected opset of at least 14, got 13\.$"),
    (SequenceClassifier(I, H, C, rng=0), 14, ValueError,
     r"expected opset of at least 15 for a SequenceClassifier \(its optional inputs need opset 15\), got 14\.$"),
    (Linear(I, H, rng=0), 17, TypeError, "expected an LSTM, GRU, RNN, SequenceRegressor, SequenceClassifier or "
                                         "LanguageModel, got Linear"),
])
def test_describe_inputs_refuses_what_cannot_be_exported(module, opset, error, message):
    with pytest.raises(error, match=f"^describe_inputs: {message}"):
        describe_inputs(module, opset=opset)


def test_missing_onnx_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # makes `import onnx` fail
    with pytest.raises(ImportError, match=r"expected the onnx package.*pip install 'bptt\[onnx\]'"):
        export_onnx(LSTM(I, H, rng=0), tmp_path / "lstm.onnx")


@pytest.mark.parametrize("module", [LSTM(I, H, num_layers=2, bidirectional=True, rng=13),
                                    SequenceRegressor(I, H, 3, cell="gru", rng=14)], ids=["lstm", "regressor"])
def test_cli_export_writes_a_model_onnxruntime_runs(tmp_path, capsys, module):
    checkpoint = save(module, tmp_path / "model.safetensors")
    out = tmp_path / "model.onnx"
    assert main(["export", str(checkpoint), str(out)]) == 0
    stdout = capsys.readouterr().out
    assert stdout.count("\n") == 1 and f"wrote {out}" in stdout and type(module).__name__ in stdout
    x = np.random.default_rng(15).standard_normal((T, N, I))
    expected = reference_outputs(module, x) if isinstance(module, LSTM) else {"output": module(x)}
    assert largest_error(run_onnx(out, x), expected) <= TOLERANCE


@pytest.mark.parametrize("module", [SequenceClassifier(I, H, C, 2, cell="gru", bidirectional=True, rng=20),
                                    LanguageModel(V, E, H, 2, rng=21)], ids=["classifier", "language-model"])
def test_cli_export_writes_composite_models_and_says_their_inputs(tmp_path, capsys, module):
    checkpoint = save(module, tmp_path / "model.safetensors")
    out = tmp_path / "model.onnx"
    assert main(["export", str(checkpoint), str(out)]) == 0
    stdout = capsys.readouterr().out
    assert stdout.count("\n") == 1 and f"wrote {out}" in stdout and describe_inputs(module) in stdout
    rng = np.random.default_rng(22)
    if isinstance(module, SequenceClassifier):
        x, lengths = rng.standard_normal((T, N, I)), np.array([2, T, 1])
        got, expected = run_onnx(out, x, sequence_lens=lengths.astype(np.int32)), {"logits": module(x, lengths)}
    else:
        tokens, hx = rng.integers(0, V, size=(T, N)), tuple(rng.standard_normal((2, 2, N, H)))
        got = run_onnx(out, tokens=tokens, h0=hx[0].astype(np.float32), c0=hx[1].astype(np.float32))
        expected = {"logits": module.eval()(tokens, hx=hx), **state_outputs(module.final_state)}
    assert largest_relative_error(got, expected) <= RELATIVE_TOLERANCE


@pytest.mark.parametrize("write_checkpoint, message", [
    (lambda path: path.write_bytes(b"not a safetensors file"), "expected a readable safetensors file"),
    (lambda path: save(LSTM(I, H, proj_size=3, rng=0), path), "ONNX's LSTM operator has no projection"),
], ids=["corrupt", "proj-size"])
def test_cli_export_refuses_with_one_line_and_exit_2(tmp_path, capsys, write_checkpoint, message):
    checkpoint = tmp_path / "model.safetensors"
    write_checkpoint(checkpoint)
    assert main(["export", str(checkpoint), str(tmp_path / "model.onnx")]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("bptt export: ") and captured.err.count("\n") == 1
    assert message in captured.err and "Traceback" not in captured.err
    assert not (tmp_path / "model.onnx").exists()
