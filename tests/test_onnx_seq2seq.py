"""export_seq2seq_onnx, greedy_onnxruntime and ``bptt export`` of a Seq2Seq: the encoder graph and the decoder
step, run by onnxruntime in float32, against bptt's float64 encode and decode_step; greedy decoding over them
against Seq2Seq.decode."""

from __future__ import annotations

import numpy as np
import onnxruntime
import pytest

from bptt import LSTM, Seq2Seq, save
from bptt.cli import main
from bptt.interop.onnx_seq2seq import describe_seq2seq_graphs, export_seq2seq_onnx, greedy_onnxruntime, seq2seq_paths

SOURCE_VOCAB, TARGET_VOCAB, E, H = 9, 11, 5, 6
S, N = 7, 4
LENGTHS = np.array([7, 3, 5, 1])
TOLERANCE = 1e-5  # the float32 graphs against the float64 model, entries of order one
KINDS = [(cell, attention) for cell in ("lstm", "gru") for attention in ("general", "additive")]


def run(path, **feed) -> dict[str, np.ndarray]:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return dict(zip([output.name for output in session.get_outputs()], session.run(None, feed), strict=True))


def padded_source(rng: np.random.Generator) -> np.ndarray:
    source = rng.integers(1, SOURCE_VOCAB, (S, N))
    source[np.arange(S)[:, None] >= LENGTHS] = 0
    return source


@pytest.fixture(params=[(*kind, layers) for kind in KINDS for layers in (1, 2)], ids=lambda p: "-".join(map(str, p)))
def exported(request, tmp_path):
    cell, attention, layers = request.param
    model = Seq2Seq(SOURCE_VOCAB, TARGET_VOCAB, E, H, cell=cell, attention=attention, num_layers=layers, rng=layers)
    return model.eval(), *export_seq2seq_onnx(model, tmp_path / "model.onnx")


def test_the_encoder_graph_gives_the_models_encoding(exported):
    model, encoder, _ = exported
    source = padded_source(np.random.default_rng(0))
    out = run(encoder, source=source, source_lengths=LENGTHS.astype(np.int32))
    enc, mask, states = model.encode(source, LENGTHS)
    np.testing.assert_array_equal(out["padding"], np.where(mask, -np.inf, 0.0))
    np.testing.assert_allclose(out["enc"][~mask], enc[~mask], atol=TOLERANCE)       # padding's rows are masked
    np.testing.assert_allclose(out["keys"][~mask], model.attention.keys(enc)[~mask], atol=TOLERANCE)
    for name, state in zip(["h0", "c0"], states, strict=False):
        np.testing.assert_allclose(out[name], state, atol=TOLERANCE)
    assert set(out) == {"enc", "keys", "padding", "h0", "o0"} | ({"c0"} if model.cell == "lstm" else set())
    np.testing.assert_array_equal(out["o0"], np.zeros((N, H)))


def test_the_decoder_step_graph_gives_the_models_step(exported):
    model, encoder, step = exported
    rng = np.random.default_rng(1)
    source = padded_source(rng)
    memory = run(encoder, source=source, source_lengths=LENGTHS.astype(np.int32))
    enc, mask, _ = model.encode(source, LENGTHS)
    previous, o = rng.integers(0, TARGET_VOCAB, N), rng.standard_normal((N, H))
    states = tuple(rng.standard_normal((N, H)) for _ in range(2 if model.cell == "lstm" else 1))
    (new_states, o_next, attention) = model.decode_step(previous, o, states, enc, model.attention.keys(enc), mask)
    feed = {"previous": previous, "o": o.astype(np.float32), "enc": memory["enc"], "keys": memory["keys"],
            "padding": memory["padding"], **{n: s.astype(np.float32) for n, s in zip(["h", "c"], states, strict=False)}}
    out = run(step, **feed)
    np.testing.assert_allclose(out["logits"], o_next @ model.target_vocab_projection.params["weight"].T,
                               atol=TOLERANCE)
    np.testing.assert_allclose(out["o_next"], o_next, atol=TOLERANCE)
    np.testing.assert_allclose(out["alpha"], attention.alpha, atol=TOLERANCE)
    assert (out["alpha"][mask] == 0).all()
    for name, state in zip(["h_next", "c_next"], new_states, strict=False):
        np.testing.assert_allclose(out[name], state, atol=TOLERANCE)


@pytest.mark.parametrize(("cell", "attention"), KINDS)
def test_greedy_decoding_in_onnxruntime_is_the_models_token_for_token(tmp_path, cell, attention):
    model = Seq2Seq(SOURCE_VOCAB, TARGET_VOCAB, E, H, cell=cell, attention=attention, rng=4).eval()
    encoder, step = export_seq2seq_onnx(model, tmp_path / "model.onnx")
    source = padded_source(np.random.default_rng(2))
    lengths_seen = set()
    for eos in range(2, TARGET_VOCAB):          # an untrained model's stops depend on which token ends
        ours = [decoded.tokens for decoded in model.decode(source, LENGTHS, bos=1, eos=eos, max_length=12)]
        assert greedy_onnxruntime(encoder, step, source, LENGTHS, bos=1, eos=eos, max_length=12) == ours
        lengths_seen |= {len(tokens) for tokens in ours}
    assert len(lengths_seen) >= 3 and max(lengths_seen) == 12           # outputs that stop early and late


def test_the_two_files_are_named_after_the_path_given(tmp_path):
    assert seq2seq_paths(tmp_path / "dates.onnx") == (tmp_path / "dates.encoder.onnx",
                                                      tmp_path / "dates.decoder_step.onnx")
    assert seq2seq_paths("model")[1].name == "model.decoder_step.onnx"


def test_cli_export_writes_both_graphs_and_says_their_inputs(tmp_path, capsys):
    model = Seq2Seq(SOURCE_VOCAB, TARGET_VOCAB, E, H, rng=0)
    checkpoint = save(model, tmp_path / "model.safetensors")
    assert main(["export", str(checkpoint), str(tmp_path / "s2s.onnx"), "--opset", "15"]) == 0
    printed = capsys.readouterr().out
    assert all(path.is_file() for path in seq2seq_paths(tmp_path / "s2s.onnx"))
    assert "s2s.encoder.onnx and" in printed and "opset 15" in printed
    assert describe_seq2seq_graphs(model).replace("\n", "; ") in printed


def test_what_cannot_be_exported_is_refused():
    with pytest.raises(TypeError, match="export_seq2seq_onnx: expected a Seq2Seq, got LSTM."):
        export_seq2seq_onnx(LSTM(2, 3, rng=0), "x.onnx")
    with pytest.raises(ValueError, match=r"export_seq2seq_onnx: expected opset to be an int between 14 and \d+, "
                                         r"got 13."):
        export_seq2seq_onnx(Seq2Seq(3, 4, 2, 2, rng=0), "x.onnx", opset=13)


def test_export_onnx_points_a_seq2seq_to_its_own_export():
    from bptt.interop.onnx_export import export_onnx

    with pytest.raises(TypeError, match="got Seq2Seq. A Seq2Seq is two graphs: export it with "
                                        "bptt.interop.onnx_seq2seq.export_seq2seq_onnx."):
        export_onnx(Seq2Seq(3, 4, 2, 2, rng=0), "x.onnx")
