r"""A :class:`bptt.Seq2Seq` as two ONNX graphs, the encoder and one decoder step, and greedy decoding over them
in onnxruntime.

A decoder reads its own last output, so no single graph of fixed steps decodes; an ONNX runtime runs the
encoder once per batch and the step in a loop, as :mod:`bptt.layers.decoding` does with the model:

- **encoder** (S1), (S2) and (A1): ``source (S, N)`` int64 and ``source_lengths (N,)`` int32 in ``1..S`` to
  ``enc (S, N, 2H)``, the attention ``keys (S, N, H)``, ``padding (S, N)`` (0 at the source's positions,
  :math:`-\infty` past each length: added to the scores, it is the mask of (A3)), and the decoder's initial
  ``h0``, ``c0`` (LSTM) and ``o0`` (zeros), each ``(N, H)``. The encoder is ONNX's bidirectional ``LSTM`` or
  ``GRU`` operator with ``sequence_lens``, bptt's packed semantics (:mod:`bptt.interop.onnx_export`).
- **decoder step** (S3)-(S6) and (A2)-(A4): ``previous (N,)`` int64, the last ``o``, ``h`` (and ``c``), and
  the encoder's ``enc``, ``keys`` and ``padding`` to ``logits (N, V)``, ``o_next``, ``h_next`` (and
  ``c_next``) and the weights ``alpha (S, N)``. The cell is ONNX's ``LSTM`` or ``GRU`` operator over one step.

Every float is float32; dropout, an inference no-op, is left out. :func:`greedy_onnxruntime` is the loop.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from bptt.interop.onnx_export import (
    DEFAULT_OPSET,
    GATE_ORDER,
    MIN_OPSET,
    _Graph,
    _import_onnx,
    _reorder_gates,
    _Tensor,
    _write_model,
)
from bptt.layers.seq2seq import Seq2Seq


def seq2seq_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """The two files :func:`export_seq2seq_onnx` writes for ``path``: ``NAME.encoder.onnx`` and
    ``NAME.decoder_step.onnx`` beside it (``NAME``: the file name without its ``.onnx`` suffix)."""
    path = Path(path)
    stem = path.name.removesuffix(".onnx")
    return path.with_name(f"{stem}.encoder.onnx"), path.with_name(f"{stem}.decoder_step.onnx")


def _signatures(model: Seq2Seq) -> dict[str, tuple[list[_Tensor], list[_Tensor]]]:
    """The inputs and outputs of the two graphs, in order."""
    H, V = model.hidden_size, model.target_embedding.num_embeddings
    states = ["h", "c"] if model.cell == "lstm" else ["h"]
    memory = [_Tensor("enc", "float32", ("S", "N", 2 * H)), _Tensor("keys", "float32", ("S", "N", H)),
              _Tensor("padding", "float32", ("S", "N"), note="0 at the source, -inf past its length")]
    encoder = ([_Tensor("source", "int64", ("S", "N"), note=f"0..{model.source_embedding.num_embeddings - 1}"),
                _Tensor("source_lengths", "int32", ("N",), note="1..S")],
               [*memory, *(_Tensor(f"{s}0", "float32", ("N", H)) for s in states),
                _Tensor("o0", "float32", ("N", H), note="zeros")])
    step = ([_Tensor("previous", "int64", ("N",), note=f"0..{V - 1}"), _Tensor("o", "float32", ("N", H)),
             *(_Tensor(s, "float32", ("N", H)) for s in states), *memory],
            [_Tensor("logits", "float32", ("N", V)), _Tensor("o_next", "float32", ("N", H)),
             *(_Tensor(f"{s}_next", "float32", ("N", H)) for s in states),
             _Tensor("alpha", "float32", ("S", "N"))])
    return {"encoder": encoder, "decoder_step": step}


def describe_seq2seq_graphs(model: Seq2Seq) -> str:
    """The two graphs' inputs and outputs, in words.

    Examples
    --------
    >>> print(describe_seq2seq_graphs(Seq2Seq(5, 6, 3, 4, cell="gru", rng=0)))
    encoder: source (S, N) int64 (0..4), source_lengths (N,) int32 (1..S) -> enc, keys, padding, h0, o0
    decoder_step: previous (N,) int64 (0..5), o, h, enc, keys, padding -> logits (N, 6), o_next, h_next, alpha
    """
    lines = []
    for name, (inputs, outputs) in _signatures(_check_model("describe_seq2seq_graphs", model)).items():
        shown = [t.describe() if t.dtype != "float32" else t.name for t in inputs]
        produced = [f"{t.name} (N, {t.shape[1]})" if t.name == "logits" else t.name for t in outputs]
        lines.append(f"{name}: {', '.join(shown)} -> {', '.join(produced)}")
    return "\n".join(lines)


def _check_model(where: str, model: object) -> Seq2Seq:
    if not isinstance(model, Seq2Seq):
        raise TypeError(f"{where}: expected a Seq2Seq, got {type(model).__name__}.")
    return model


def _const(graph: _Graph, name: str, array: NDArray) -> str:
    return graph.constant(name, np.asarray(array, dtype=np.float32))


def _encoder_nodes(graph: _Graph, model: Seq2Seq) -> None:
    layer = model.encoder
    table = _const(graph, "source_embedding.weight", model.source_embedding.params["weight"])
    graph.node("Gather", [table, "source"], ["embedded"], axis=0)                     # E_s[x], (S, N, E)
    finals = graph.recurrent_stack(layer, "embedded", "enc", sequence_lens="source_lengths")  # (S1)
    flat = graph.constant("flat_shape", np.array([0, -1], dtype=np.int64))
    projections = {"h": model.h_projection, "c": model.c_projection}
    for name, states in finals.items():                                           # (S2) the last layer's
        state = name.removesuffix("_n")
        (last,) = graph.node("Transpose", [states[-1]], [f"{state}_last_NDH"], perm=[1, 0, 2])
        (both,) = graph.node("Reshape", [last, flat], [f"{state}_last"])                  # [fwd; bwd], (N, 2H)
        weight = _const(graph, f"{state}_projection.weight_T", projections[state].params["weight"].T)
        graph.node("MatMul", [both, weight], [f"{state}0"])
    key_weight = model.attention.params["weight" if model.attention_score == "general" else "key.weight"]
    graph.node("MatMul", ["enc", _const(graph, "key_weight_T", key_weight.T)], ["keys"])    # (A1)
    (steps,) = graph.node("Shape", ["source"], ["S"], start=0, end=1)
    (count,) = graph.node("Squeeze", [steps], ["S_scalar"])
    zero, one = (graph.constant(name, np.array(value, dtype=np.int64)) for name, value in (("zero", 0), ("one", 1)))
    (positions,) = graph.node("Range", [zero, count, one], ["positions"])
    (column,) = graph.node("Unsqueeze", [positions, graph.constant("axis_1", np.array([1], dtype=np.int64))],
                           ["positions_S1"])
    (lengths,) = graph.node("Cast", ["source_lengths"], ["lengths_int64"], to=graph.onnx.TensorProto.INT64)
    (past,) = graph.node("GreaterOrEqual", [column, lengths], ["past_length"])      # j >= length: padding
    graph.node("Where", [past, _const(graph, "minus_inf", -np.inf), _const(graph, "zero_float", 0.0)], ["padding"])
    graph.node("Mul", ["h0", _const(graph, "zero_o", 0.0)], ["o0"])                 # (S3) o_0 = 0


def _cell_weights(model: Seq2Seq) -> tuple[NDArray, NDArray, NDArray]:
    """ONNX's ``W (1, G*H, E+H)``, ``R (1, G*H, H)``, ``B (1, 2*G*H)`` of the decoder cell."""
    cell, order = model.decoder, GATE_ORDER[model.decoder.family.name]
    W = _reorder_gates(cell.params["weight_ih"], order)
    R = _reorder_gates(cell.params["weight_hh"], order)
    B = np.concatenate([_reorder_gates(cell.params["bias_ih"], order), _reorder_gates(cell.params["bias_hh"], order)])
    return tuple(array[None].astype(np.float32) for array in (W, R, B))


def _step_nodes(graph: _Graph, model: Seq2Seq) -> None:
    lstm = model.cell == "lstm"
    table = _const(graph, "target_embedding.weight", model.target_embedding.params["weight"])
    graph.node("Gather", [table, "previous"], ["embedded"], axis=0)                  # E_t[y_{t-1}], (N, E)
    graph.node("Concat", ["embedded", "o"], ["cell_input"], axis=1)                   # (S3) input feeding
    axis_0 = graph.constant("axis_0", np.array([0], dtype=np.int64))
    inputs = [graph.node("Unsqueeze", ["cell_input", axis_0], ["cell_input_1NI"])[0]]
    inputs += [graph.constant(name, array) for name, array in zip(("W", "R", "B"), _cell_weights(model), strict=True)]
    inputs += ["", *(graph.node("Unsqueeze", [s, axis_0], [f"{s}_1NH"])[0] for s in (["h", "c"] if lstm else ["h"]))]
    attributes = {"hidden_size": model.hidden_size, **({} if lstm else {"linear_before_reset": 1})}
    outputs = ["", "h_next_1NH", "c_next_1NH"] if lstm else ["", "h_next_1NH"]
    _, *states = graph.node("LSTM" if lstm else "GRU", inputs, outputs, **attributes)    # (S3) one step
    for state in states:
        graph.node("Squeeze", [state, axis_0], [state.removesuffix("_1NH")])
    if model.attention_score == "general":
        graph.node("Einsum", ["keys", "h_next"], ["raw_scores"], equation="snh,nh->sn")   # (A2) e_j = k_j . h
    else:
        weights = model.attention.params
        graph.node("MatMul", ["h_next", _const(graph, "query.weight_T", weights["query.weight"].T)], ["query"])
        graph.node("Add", ["keys", "query"], ["s"])
        graph.node("Tanh", ["s"], ["u"])                                              # (A2) u_j = tanh(k_j + h W_q^T)
        graph.node("Einsum", ["u", _const(graph, "v.weight", weights["v.weight"][0])], ["raw_scores"],
                   equation="snh,h->sn")                                               # (A2) e_j = u_j v^T
    graph.node("Add", ["raw_scores", "padding"], ["scores"])
    graph.node("Softmax", ["scores"], ["alpha"], axis=0)                              # (A3) masked softmax over j
    graph.node("Einsum", ["alpha", "enc"], ["context"], equation="sn,snk->nk")       # (A4) a = sum_j alpha_j enc_j
    graph.node("Concat", ["context", "h_next"], ["combined"], axis=1)
    weight = _const(graph, "combined_output_projection.weight_T", model.combined_output_projection.params["weight"].T)
    graph.node("MatMul", ["combined", weight], ["combined_projected"])
    graph.node("Tanh", ["combined_projected"], ["o_next"])                            # (S5) without dropout
    weight = _const(graph, "target_vocab_projection.weight_T", model.target_vocab_projection.params["weight"].T)
    graph.node("MatMul", ["o_next", weight], ["logits"])                              # (S6)


def export_seq2seq_onnx(model: Seq2Seq, path: str | os.PathLike, *, opset: int = DEFAULT_OPSET) -> tuple[Path, Path]:
    """Write ``model`` as its two ONNX graphs (module docstring), float32, to the files of :func:`seq2seq_paths`
    (each atomically, each checked by ``onnx.checker``); return their paths, encoder first. ``opset``: 14 to the
    installed onnx's newest. Needs the ``onnx`` package.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> model = Seq2Seq(6, 7, 3, 4, rng=0)
    >>> encoder, step = export_seq2seq_onnx(model, pathlib.Path(tempfile.mkdtemp()) / "s2s.onnx")
    >>> encoder.name, step.name
    ('s2s.encoder.onnx', 's2s.decoder_step.onnx')
    """
    where = "export_seq2seq_onnx"
    _check_model(where, model)
    onnx = _import_onnx(where)
    newest = onnx.defs.onnx_opset_version()
    if isinstance(opset, bool) or not isinstance(opset, int) or not MIN_OPSET <= opset <= newest:
        raise ValueError(f"{where}: expected opset to be an int between {MIN_OPSET} and {newest}, got {opset!r}.")
    written = []
    for (name, (inputs, outputs)), out, build in zip(_signatures(model).items(), seq2seq_paths(path),
                                                     (_encoder_nodes, _step_nodes), strict=True):
        graph = _Graph(onnx)
        build(graph, model)
        written.append(_write_model(graph, f"Seq2Seq_{name}", inputs, outputs, opset, out))
    return written[0], written[1]


def greedy_onnxruntime(encoder: str | os.PathLike, decoder_step: str | os.PathLike, source: NDArray,
                       source_lengths: NDArray, *, bos: int, eos: int, max_length: int) -> list[list[int]]:
    """Greedy decoding of every column of ``source (S, N)`` with the two graphs of :func:`export_seq2seq_onnx`
    in onnxruntime: the output tokens of each (``<s>`` and ``</s>`` left out), as
    :meth:`bptt.Seq2Seq.decode` gives them with ``beam=1``. Needs the ``onnxruntime`` package."""
    import onnxruntime

    sessions = [onnxruntime.InferenceSession(os.fspath(path), providers=["CPUExecutionProvider"])
                for path in (encoder, decoder_step)]
    names = [output.name for output in sessions[0].get_outputs()]
    memory = dict(zip(names, sessions[0].run(None, {"source": np.asarray(source, dtype=np.int64),
                                                    "source_lengths": np.asarray(source_lengths, dtype=np.int32)}),
                      strict=True))
    fixed = {name: memory[name] for name in ("enc", "keys", "padding")}
    states = {name[:-1]: value for name, value in memory.items() if name.endswith("0")}   # h0, c0, o0 -> h, c, o
    previous = np.full(source.shape[1], bos, dtype=np.int64)
    step_names = [output.name for output in sessions[1].get_outputs()]
    tokens, done = [], np.zeros(source.shape[1], dtype=bool)
    for _ in range(max_length):
        results = dict(zip(step_names, sessions[1].run(None, {"previous": previous, **states, **fixed}), strict=True))
        previous = results["logits"].argmax(axis=1).astype(np.int64)
        states = {name: results[f"{name}_next"] for name in states}
        tokens.append(previous)
        done |= previous == eos
        if done.all():
            break
    columns = np.array(tokens).T
    return [[int(t) for t in column[:_end(column, eos)]] for column in columns]


def _end(column: NDArray, eos: int) -> int:
    """Where an output stops: its first ``</s>``, or its end."""
    ends = np.flatnonzero(column == eos)
    return int(ends[0]) if len(ends) else len(column)
