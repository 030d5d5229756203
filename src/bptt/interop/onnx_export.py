r"""``export_onnx``: a recurrent stack or one of bptt's composite models as an ONNX file; ``describe_inputs``:
what the exported graph takes, in words.

Each recurrent layer becomes one of ONNX's own ``LSTM``, ``GRU`` or ``RNN`` operators (both directions in
one operator when the layer is bidirectional), so any ONNX runtime runs the model with its fused kernels.
What differs between PyTorch's layout and ONNX's is settled here, once:

- **Gate order.** PyTorch stacks the gate rows of ``weight_ih``/``weight_hh`` as i, f, g, o (LSTM) and r, z, n
  (GRU); ONNX wants i, o, f, c and z, r, h. The rows are moved block by block.
- **Biases.** ONNX's ``B`` is ``[Wb; Rb]``, the input-side and recurrent biases concatenated, one row per
  direction; a layer built with ``bias=False`` gets zeros there.
- **GRU candidate.** PyTorch applies the reset gate after the recurrent matmul,
  :math:`n = \tanh(W_{in} x + b_{in} + r \odot (W_{hn} h + b_{hn}))`: ONNX's ``linear_before_reset=1``.
- **Stacking.** ONNX's ``Y`` is ``(T, D, N, H)``; a Transpose and a Reshape make it ``(T, N, D*H)``, the next
  layer's input (and the graph's output after the last layer). The final states of all layers are
  concatenated to ``(L*D, N, H)``, PyTorch's order (layer-major, forward direction first); initial states
  ``(L*D, N, H)`` are sliced the other way, ``D`` rows per layer.
- **Lengths.** ``sequence_lens`` (a bare layer's or a classifier's) goes to every layer's operator, which then
  stops each sequence at its own length: its ``Y`` is zero after step :math:`\ell_n` and its ``Y_h`` is the
  state at step :math:`\ell_n` (the reverse direction's at step 1, its pass running backwards from step
  :math:`\ell_n`), bptt's packed-sequence semantics (``layer(x, lengths=...)``). The classifier's head reads
  the last layer's ``Y_h`` ``(D, N, H)`` as ``(N, D*H)``, forward direction first: PyTorch's
  ``cat(h_n[-2], h_n[-1])``.
- **Optional inputs.** ``sequence_lens``, ``h0`` and ``c0`` are inputs of ONNX's Optional type (opset 15 and
  later): an ``If`` on ``OptionalHasElement`` takes the tensor given or builds the default (every sequence
  full; zero states). In onnxruntime, leave them out of the feed (or feed None). Exported at opset 14, a bare
  layer's graph takes ``input`` alone.
- **Embedding.** A ``Gather`` of the table's rows by the int64 tokens.

The graphs (T and N symbolic; I input, H hidden, L layers, D directions, O outputs, C classes, V vocabulary;
``?`` marks an optional input), as :func:`describe_inputs` states them:

==================  ===============================================  ==================================================
module              inputs                                           outputs
==================  ===============================================  ==================================================
LSTM, GRU, RNN      ``input (T, N, I)`` float32,                     ``output (T, N, D*H)``, ``h_n (L*D, N, H)``, and
                    ``sequence_lens? (N,)`` int32 in 1..T,           ``c_n (L*D, N, H)`` for an LSTM
                    ``h0? (L*D, N, H)``, ``c0? (L*D, N, H)`` (LSTM)
SequenceRegressor   ``input (T, N, I)`` float32                      ``output (T, N, O)``
SequenceClassifier  ``input (T, N, I)`` float32,                     ``logits (N, C)``
                    ``sequence_lens? (N,)`` int32 in 1..T
LanguageModel       ``tokens (T, N)`` int64 in 0..V-1,               ``logits (T, N, V)``, ``h_n (L, N, H)``, and
                    ``h0? (L, N, H)``, ``c0? (L, N, H)`` (LSTM)      ``c_n (L, N, H)`` for an LSTM
==================  ===============================================  ==================================================

Every float is float32 whatever the module's dtype; dropout, an inference no-op, is left out. A
:class:`bptt.Seq2Seq` is two graphs, its encoder and one decoder step: :mod:`bptt.interop.onnx_seq2seq`.
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from bptt import __version__
from bptt.interop.io import atomic_write_bytes
from bptt.layers.linear import Linear
from bptt.layers.models import LanguageModel, SequenceClassifier, SequenceRegressor
from bptt.layers.recurrent import RecurrentLayer

DEFAULT_OPSET = 17
MIN_OPSET = 14  # the opset of the current LSTM, GRU and RNN operator definitions
OPTIONAL_OPSET = 15  # the first with OptionalHasElement and OptionalGetElement: graphs with optional inputs

# ONNX's gate blocks, each given as the index of the same gate in PyTorch's row order.
GATE_ORDER = {
    "LSTM": (0, 3, 1, 2),   # PyTorch i, f, g, o -> ONNX i, o, f, c
    "GRU": (1, 0, 2),       # PyTorch r, z, n -> ONNX z, r, h
    "RNN": (0,),
}
ACTIVATIONS = {"tanh": "Tanh", "relu": "Relu"}
EXPORTABLE = (RecurrentLayer, SequenceRegressor, SequenceClassifier, LanguageModel)
Exportable = RecurrentLayer | SequenceRegressor | SequenceClassifier | LanguageModel


class _Tensor(NamedTuple):
    """One input or output of an exported graph."""

    name: str
    dtype: str                        # "float32", "int32" or "int64"
    shape: tuple[int | str, ...]      # ints fixed, strings symbolic
    optional: bool = False            # an input of ONNX's Optional type, which the caller may leave out
    note: str = ""                    # the valid values, or an optional input's default

    def describe(self) -> str:
        dims = ", ".join(str(d) for d in self.shape) + ("," if len(self.shape) == 1 else "")
        note = f" ({self.note})" if self.note else ""
        return f"{'optional ' if self.optional else ''}{self.name} ({dims}) {self.dtype}{note}"


def _check_exportable(where: str, module: object) -> RecurrentLayer:
    """The module's recurrent stack, or an error saying why it has no ONNX equivalent."""
    if not isinstance(module, EXPORTABLE):
        seq2seq = (" A Seq2Seq is two graphs: export it with bptt.interop.onnx_seq2seq.export_seq2seq_onnx."
                   if type(module).__name__ == "Seq2Seq" else "")
        raise TypeError(f"{where}: expected an LSTM, GRU, RNN, SequenceRegressor, SequenceClassifier or "
                        f"LanguageModel, got {type(module).__name__}.{seq2seq}")
    layer = module if isinstance(module, RecurrentLayer) else module.rnn
    if layer.proj_size:
        raise ValueError(f"{where}: expected an LSTM without projection (proj_size=0), got proj_size="
                         f"{layer.proj_size}; ONNX's LSTM operator has no projection, so it cannot be exported.")
    return layer


def _signature(module: Exportable, opset: int = DEFAULT_OPSET) -> tuple[list[_Tensor], list[_Tensor]]:
    """The inputs and outputs of ``module``'s graph at ``opset``, in order (``module`` already checked)."""
    layer = module if isinstance(module, RecurrentLayer) else module.rnn
    D, H = layer.num_directions, layer.hidden_size
    states = [_Tensor(f"{s}_n", "float32", (layer.num_layers * D, "N", H)) for s in layer.family.state_names]
    sequence = _Tensor("input", "float32", ("T", "N", layer.input_size))
    lengths = _Tensor("sequence_lens", "int32", ("N",), optional=True, note="1..T, default T")
    initial = [_Tensor(f"{s}0", "float32", state.shape, optional=True, note="default zeros")
               for s, state in zip(layer.family.state_names, states, strict=True)]
    if isinstance(module, RecurrentLayer):
        optional = [lengths, *initial] if opset >= OPTIONAL_OPSET else []   # Optional inputs need opset 15
        return [sequence, *optional], [_Tensor("output", "float32", ("T", "N", D * H)), *states]
    if isinstance(module, SequenceRegressor):
        return [sequence], [_Tensor("output", "float32", ("T", "N", module.head.out_features))]
    if isinstance(module, SequenceClassifier):
        return [sequence, lengths], [_Tensor("logits", "float32", ("N", module.head.out_features))]
    V = module.vocab_size
    tokens = _Tensor("tokens", "int64", ("T", "N"), note=f"0..{V - 1}")
    return [tokens, *initial], [_Tensor("logits", "float32", ("T", "N", V)), *states]


def _check_opset(where: str, module: Exportable, opset: object, newest: int | None = None) -> int:
    """``opset`` if ``module`` can be exported at it (up to ``newest``, the installed onnx's, when given)."""
    if isinstance(opset, bool) or not isinstance(opset, numbers.Integral):
        raise TypeError(f"{where}: expected opset to be an int, got {type(opset).__name__}.")
    lowest = OPTIONAL_OPSET if any(tensor.optional for tensor in _signature(module, MIN_OPSET)[0]) else MIN_OPSET
    if opset < lowest or (newest is not None and opset > newest):
        reason = f" for a {type(module).__name__} (its optional inputs need opset 15)" if lowest > MIN_OPSET else ""
        upper = f"between {lowest} and {newest}" if newest is not None else f"of at least {lowest}"
        raise ValueError(f"{where}: expected opset {upper}{reason}, got {opset}.")
    return int(opset)


def describe_inputs(module: Exportable, *, opset: int = DEFAULT_OPSET) -> str:
    r"""What the graph that :func:`export_onnx` writes for ``module`` at ``opset`` takes, in words.

    Examples
    --------
    >>> from bptt import GRU
    >>> from bptt.layers.models import SequenceClassifier
    >>> describe_inputs(SequenceClassifier(3, 8, 4, rng=0))
    'inputs: input (T, N, 3) float32, optional sequence_lens (N,) int32 (1..T, default T)'
    >>> print(describe_inputs(GRU(3, 8, num_layers=2, bidirectional=True, rng=0)).replace(", optional", ",\noptional"))
    inputs: input (T, N, 3) float32,
    optional sequence_lens (N,) int32 (1..T, default T),
    optional h0 (4, N, 8) float32 (default zeros)
    >>> describe_inputs(GRU(3, 8, rng=0), opset=14)
    'inputs: input (T, N, 3) float32'
    """
    where = "describe_inputs"
    _check_exportable(where, module)
    inputs, _ = _signature(module, _check_opset(where, module, opset))
    return "inputs: " + ", ".join(tensor.describe() for tensor in inputs)


def _reorder_gates(array: NDArray, order: tuple[int, ...]) -> NDArray:
    """The gate blocks of ``array`` ``(G*H, *)`` (or ``(G*H,)``) rearranged into ``order``."""
    blocks = array.reshape(len(order), -1, *array.shape[1:])
    return blocks[list(order)].reshape(array.shape)


def _onnx_weights(layer: RecurrentLayer, k: int) -> tuple[NDArray, NDArray, NDArray]:
    """ONNX's ``W (D, G*H, in)``, ``R (D, G*H, H)`` and ``B (D, 2*G*H)`` of layer ``k``, as float32."""
    order = GATE_ORDER[layer.family.name]
    W, R, B = [], [], []
    for d in range(layer.num_directions):
        weights = layer._weights(k, d)
        W.append(_reorder_gates(weights["weight_ih"], order))
        R.append(_reorder_gates(weights["weight_hh"], order))
        if "bias_ih" in weights:
            B.append(np.concatenate([_reorder_gates(weights["bias_ih"], order),
                                     _reorder_gates(weights["bias_hh"], order)]))
        else:
            B.append(np.zeros(2 * R[-1].shape[0]))
    return tuple(np.stack(arrays).astype(np.float32) for arrays in (W, R, B))


def _operator_attributes(layer: RecurrentLayer) -> dict[str, object]:
    """The attributes of layer's ONNX operator: its size, direction and the family's PyTorch semantics."""
    attributes = {"hidden_size": layer.hidden_size, "direction": "bidirectional" if layer.bidirectional else "forward"}
    if layer.family.name == "GRU":
        attributes["linear_before_reset"] = 1
    if layer.family.name == "RNN":
        attributes["activations"] = [ACTIVATIONS[layer.nonlinearity]] * layer.num_directions
    return attributes


class _Graph:
    """The nodes and initializers of a graph under construction, with ``onnx`` imported by the caller. A
    branch (the body of an ``If``) has nodes of its own and puts its constants in the main graph's
    initializers, which it sees from the outer scope."""

    def __init__(self, onnx: object, initializers: list[object] | None = None) -> None:
        self.onnx = onnx
        self.nodes: list[object] = []
        self.initializers: list[object] = [] if initializers is None else initializers

    def constant(self, name: str, array: NDArray) -> str:
        self.initializers.append(self.onnx.numpy_helper.from_array(array, name))
        return name

    def node(self, op_type: str, inputs: list[str], outputs: list[str], **attributes: object) -> list[str]:
        """Add a node named after its first output that is not left out; return its outputs."""
        name = next(output for output in outputs if output)
        self.nodes.append(self.onnx.helper.make_node(op_type, inputs, outputs, name=name, **attributes))
        return outputs

    def value_info(self, tensor: _Tensor, name: str | None = None) -> object:
        """``tensor``'s type as a graph input or output, under ``name`` (default: its own)."""
        element = {"float32": self.onnx.TensorProto.FLOAT, "int32": self.onnx.TensorProto.INT32,
                   "int64": self.onnx.TensorProto.INT64}[tensor.dtype]
        type_proto = self.onnx.helper.make_tensor_type_proto(element, list(tensor.shape))
        if tensor.optional:
            type_proto = self.onnx.helper.make_optional_type_proto(type_proto)
        return self.onnx.helper.make_value_info(name or tensor.name, type_proto)

    def batch_size(self, x: str, output: str) -> str:
        """Add ``output``: ``[N]``, the second dimension of ``x``, as a 1-D int64 tensor."""
        return self.node("Shape", [x], [output], start=1, end=2)[0]

    def optional_input(self, tensor: _Tensor, default: Callable[[_Graph], str]) -> str:
        """The value of the optional graph input ``tensor``: the tensor given, or the one ``default`` adds to
        a branch when it is left out. ``OptionalHasElement`` picks the branch of an ``If``."""
        helper = self.onnx.helper
        (given,) = self.node("OptionalHasElement", [tensor.name], [f"{tensor.name}_given"])
        present = _Graph(self.onnx, self.initializers)
        (value,) = present.node("OptionalGetElement", [tensor.name], [f"{tensor.name}_value"])
        absent = _Graph(self.onnx, self.initializers)
        fallback = default(absent)
        plain = tensor._replace(optional=False)
        branches = {f"{branch}_branch": helper.make_graph(graph.nodes, f"{tensor.name}_{branch}", [],
                                                          [self.value_info(plain, output)])
                    for branch, graph, output in (("then", present, value), ("else", absent, fallback))}
        (chosen,) = self.node("If", [given], [f"{tensor.name}_or_default"], **branches)
        return chosen

    def linear(self, head: Linear, x: str, output: str) -> str:
        """Add ``y = x W^T + b`` (a MatMul, then an Add when the head has a bias) reading ``x`` ``(*, in)``."""
        weight = self.constant("head.weight_T", head.params["weight"].T.astype(np.float32))
        (y,) = self.node("MatMul", [x, weight], ["head_matmul" if head.bias else output])
        if head.bias:
            self.node("Add", [y, self.constant("head.bias", head.params["bias"].astype(np.float32))], [output])
        return output

    def recurrent_stack(self, layer: RecurrentLayer, x: str, output: str | None, *, sequence_lens: str = "",
                        initial: dict[str, str] | None = None) -> dict[str, list[str]]:
        """Add ``layer``'s operators reading ``x`` ``(T, N, I)`` and writing ``output`` ``(T, N, D*H)`` (None: the
        last layer's ``Y`` is left out); return each final state's name (``h_n``, ``c_n`` for an LSTM) mapped to
        its per-layer ``(D, N, H)`` tensors. ``sequence_lens`` ``(N,)`` int32 goes to every layer; ``initial``
        maps state names (``h``, ``c``) to ``(L*D, N, H)`` initial states, D rows of which go to each layer."""
        names = layer.family.state_names
        finals: dict[str, list[str]] = {f"{name}_n": [] for name in names}
        feature_shape, D = "", layer.num_directions
        for k in range(layer.num_layers):
            W, R, B = _onnx_weights(layer, k)
            inputs = [x, self.constant(f"W_l{k}", W), self.constant(f"R_l{k}", R), self.constant(f"B_l{k}", B),
                      sequence_lens]
            for name in names if initial is not None else ():       # rows k*D .. (k+1)*D - 1 of each state
                rows = [self.constant(f"{name}0_l{k}_{end}", np.array([row], dtype=np.int64))
                        for end, row in (("start", k * D), ("end", (k + 1) * D))]
                inputs += self.node("Slice", [initial[name], *rows], [f"{name}0_l{k}"])
            last = k == layer.num_layers - 1
            sequence = "" if last and output is None else f"Y_l{k}"
            _, *states = self.node(layer.family.name, inputs, [sequence] + [f"{s}_n_l{k}" for s in names],
                                   **_operator_attributes(layer))
            for name, state in zip(finals, states, strict=True):
                finals[name].append(state)
            if sequence:
                feature_shape = feature_shape or self.constant("feature_shape", np.array([0, 0, -1], dtype=np.int64))
                (batch_major,) = self.node("Transpose", [sequence], [f"Y_l{k}_TNDH"], perm=[0, 2, 1, 3])
                x = output if last else f"out_l{k}"
                self.node("Reshape", [batch_major, feature_shape], [x])
        return finals


def _full_lengths(branch: _Graph) -> str:
    """The default of an optional ``sequence_lens``: ``(N,)`` int32, every entry T (each sequence runs to the end
    of ``input``)."""
    (steps,) = branch.node("Shape", ["input"], ["input_T"], start=0, end=1)
    (steps32,) = branch.node("Cast", [steps], ["input_T_int32"], to=branch.onnx.TensorProto.INT32)
    return branch.node("Expand", [steps32, branch.batch_size("input", "input_N")], ["sequence_lens_full"])[0]


def _zero_state(tensor: _Tensor, source: str) -> Callable[[_Graph], str]:
    """The default of an optional initial state ``tensor`` ``(L*D, N, H)``: zeros, with N read off the graph
    input ``source`` (its second dimension)."""
    def zeros(branch: _Graph) -> str:
        LD = branch.constant(f"{tensor.name}_LD", np.array([tensor.shape[0]], dtype=np.int64))
        H = branch.constant(f"{tensor.name}_H", np.array([tensor.shape[2]], dtype=np.int64))
        N = branch.batch_size(source, f"{tensor.name}_N")
        (shape,) = branch.node("Concat", [LD, N, H], [f"{tensor.name}_shape"], axis=0)
        zero = branch.onnx.numpy_helper.from_array(np.zeros(1, dtype=np.float32))
        return branch.node("ConstantOfShape", [shape], [f"{tensor.name}_zeros"], value=zero)[0]
    return zeros


def _initial_states(graph: _Graph, layer: RecurrentLayer, tensors: list[_Tensor], source: str) -> dict[str, str]:
    """The optional initial states ``tensors`` (``h0``, and ``c0`` for an LSTM) as ``recurrent_stack`` takes
    them: state name -> the tensor given or zeros (N from the graph input ``source``)."""
    return {name: graph.optional_input(tensor, _zero_state(tensor, source))
            for name, tensor in zip(layer.family.state_names, tensors, strict=True)}


def _layer_nodes(graph: _Graph, layer: RecurrentLayer, inputs: list[_Tensor]) -> None:
    lengths, initial = "", None
    if len(inputs) > 1:                            # opset 15 and later: sequence_lens, h0 (and c0), each optional
        _, lengths_tensor, *states = inputs
        lengths = graph.optional_input(lengths_tensor, _full_lengths)
        initial = _initial_states(graph, layer, states, "input")
    finals = graph.recurrent_stack(layer, "input", "output", sequence_lens=lengths, initial=initial)
    for name, states in finals.items():
        graph.node("Concat", states, [name], axis=0)


def _regressor_nodes(graph: _Graph, model: SequenceRegressor, inputs: list[_Tensor]) -> None:
    graph.recurrent_stack(model.rnn, "input", "features")
    graph.linear(model.head, "features", "output")


def _classifier_nodes(graph: _Graph, model: SequenceClassifier, inputs: list[_Tensor]) -> None:
    lengths = graph.optional_input(inputs[1], _full_lengths)
    finals = graph.recurrent_stack(model.rnn, "input", None, sequence_lens=lengths)
    # f = [h_n[-D], ..., h_n[-1]]: the last layer's Y_h (D, N, H) as (N, D*H), forward direction first
    (batch_major,) = graph.node("Transpose", [finals["h_n"][-1]], ["h_n_last_NDH"], perm=[1, 0, 2])
    graph.node("Reshape", [batch_major, graph.constant("head_shape", np.array([0, -1], dtype=np.int64))],
               ["features"])
    graph.linear(model.head, "features", "logits")


def _language_model_nodes(graph: _Graph, model: LanguageModel, inputs: list[_Tensor]) -> None:
    table = graph.constant("embedding.weight", model.embedding.params["weight"].astype(np.float32))
    graph.node("Gather", [table, "tokens"], ["embedded"], axis=0)        # e_t = W_E[x_t], (T, N, E)
    _, *states = inputs                                                   # h0 (and c0), (L, N, H)
    initial = _initial_states(graph, model.rnn, states, "tokens")
    finals = graph.recurrent_stack(model.rnn, "embedded", "features", initial=initial)
    for name, tensors in finals.items():
        graph.node("Concat", tensors, [name], axis=0)
    graph.linear(model.head, "features", "logits")


NODES = {RecurrentLayer: _layer_nodes, SequenceRegressor: _regressor_nodes, SequenceClassifier: _classifier_nodes,
         LanguageModel: _language_model_nodes}


def export_onnx(module: Exportable, path: str | os.PathLike, *, opset: int = DEFAULT_OPSET) -> Path:
    r"""Write ``module`` to ``path`` as an ONNX model (float32) and return the path.

    Parameters
    ----------
    module : an :class:`~bptt.LSTM`, :class:`~bptt.GRU` or :class:`~bptt.RNN` (tanh or relu), any number of
        layers, uni- or bidirectional, with or without biases; or a composite model of
        :mod:`bptt.layers.models`: ``SequenceRegressor``, ``SequenceClassifier``, ``LanguageModel``. An LSTM
        with ``proj_size > 0`` is refused (ValueError): ONNX's LSTM operator has no projection.
    path : the file to write, atomically (a crash leaves the old file or the new one).
    opset : the ONNX opset to target, from 14 (15 for a ``SequenceClassifier`` or ``LanguageModel``, whose
        optional inputs need ONNX's Optional type) to the newest the installed ``onnx`` knows (default 17). A
        bare layer exported at opset 14 has no optional inputs: ``input`` alone.

    Notes
    -----
    The graph's inputs and outputs are in the module docstring's table; :func:`describe_inputs` says them
    in words. T and N are symbolic. The float input is ``"input"`` ``(T, N, I)``, **time-major even when the
    layer was built with** ``batch_first=True`` (transpose batch-first data before feeding it). A bare layer
    returns ``layer(x, hx, lengths)`` in evaluation mode: feed ``sequence_lens`` (int32) for a padded batch
    (outputs after a sequence's length are zero, its final states those of its own last step) and ``h0`` (and
    ``c0``) ``(L*D, N, H)`` to start from given states; left out, every sequence has T steps and the states
    start at zero, PyTorch's ``layer(x)``. A ``SequenceRegressor`` returns the head at every step. A
    ``SequenceClassifier`` returns ``model(x, lengths)``: feed ``sequence_lens`` (int32) for padded batches,
    leave it out when every sequence has T steps. A ``LanguageModel`` returns ``model(tokens, hx)`` in
    evaluation mode and its final states: feed ``h_n`` (and ``c_n``) back as ``h0`` (and ``c0``) to carry the
    state from one chunk, or one sampled token, to the next. The model is checked with
    ``onnx.checker.check_model`` before it is written. Needs the ``onnx`` package (``pip install 'bptt[onnx]'``).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from bptt import GRU
    >>> path = export_onnx(GRU(3, 4, num_layers=2, rng=0), pathlib.Path(tempfile.mkdtemp()) / "gru.onnx")
    >>> import onnx
    >>> [node.op_type for node in onnx.load(path).graph.node if node.op_type == "GRU"]
    ['GRU', 'GRU']
    """
    where = "export_onnx"
    _check_exportable(where, module)
    onnx = _import_onnx(where)
    opset = _check_opset(where, module, opset, onnx.defs.onnx_opset_version())
    inputs, outputs = _signature(module, opset)
    graph = _Graph(onnx)
    build = next(nodes for cls, nodes in NODES.items() if isinstance(module, cls))
    build(graph, module, inputs)
    return _write_model(graph, type(module).__name__, inputs, outputs, opset, path)


def _import_onnx(where: str):
    """The ``onnx`` package (with its ``numpy_helper``), or ImportError naming ``where`` and the extra to
    install."""
    try:
        import onnx
        import onnx.numpy_helper
    except ImportError as error:
        raise ImportError(f"{where}: expected the onnx package, got none installed. "
                          "Install it with pip install 'bptt[onnx]'.") from error
    return onnx


def _write_model(graph: _Graph, name: str, inputs: list[_Tensor], outputs: list[_Tensor], opset: int,
                path: str | os.PathLike) -> Path:
    """``graph`` as an ONNX model named ``name`` with these inputs and outputs at ``opset``, checked by
    ``onnx.checker`` and written to ``path`` atomically; the path written."""
    onnx = graph.onnx
    onnx_graph = onnx.helper.make_graph(graph.nodes, name, [graph.value_info(t) for t in inputs],
                                        [graph.value_info(t) for t in outputs], graph.initializers)
    opsets = [onnx.helper.make_opsetid("", opset)]
    model = onnx.helper.make_model(onnx_graph, opset_imports=opsets, producer_name="bptt",
                                   producer_version=__version__, ir_version=onnx.helper.find_min_ir_version_for(opsets))
    onnx.checker.check_model(model, full_check=True)
    return atomic_write_bytes(path, model.SerializeToString())
