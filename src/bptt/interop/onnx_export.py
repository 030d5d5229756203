r"""``export_onnx``: an LSTM, GRU or RNN stack, or a :class:`~bptt.layers.models.SequenceRegressor`, as an ONNX file.

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
  concatenated to ``(L*D, N, H)``, PyTorch's order (layer-major, forward direction first).

The graph is float32 whatever the module's dtype; dropout, an inference no-op, is left out.
"""

from __future__ import annotations

import numbers
import os
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from bptt import __version__
from bptt.interop.io import atomic_write_bytes
from bptt.layers.models import SequenceRegressor
from bptt.layers.recurrent import RecurrentLayer

DEFAULT_OPSET = 17
MIN_OPSET = 14  # the opset of the current LSTM, GRU and RNN operator definitions

# ONNX's gate blocks, each given as the index of the same gate in PyTorch's row order.
GATE_ORDER = {
    "LSTM": (0, 3, 1, 2),   # PyTorch i, f, g, o -> ONNX i, o, f, c
    "GRU": (1, 0, 2),       # PyTorch r, z, n -> ONNX z, r, h
    "RNN": (0,),
}
ACTIVATIONS = {"tanh": "Tanh", "relu": "Relu"}


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
    """The nodes and initializers of a graph under construction, with ``onnx`` imported by the caller."""

    def __init__(self, onnx: object) -> None:
        self.onnx = onnx
        self.nodes: list[object] = []
        self.initializers: list[object] = []

    def constant(self, name: str, array: NDArray) -> str:
        self.initializers.append(self.onnx.numpy_helper.from_array(array, name))
        return name

    def node(self, op_type: str, inputs: list[str], outputs: list[str], **attributes: object) -> list[str]:
        """Add a node named after its first output; return its outputs."""
        self.nodes.append(self.onnx.helper.make_node(op_type, inputs, outputs, name=outputs[0], **attributes))
        return outputs

    def recurrent_stack(self, layer: RecurrentLayer, x: str, output: str) -> dict[str, list[str]]:
        """Add ``layer``'s operators reading ``x`` ``(T, N, I)`` and writing ``output`` ``(T, N, D*H)``; return
        each final state's name (``h_n``, ``c_n`` for an LSTM) mapped to its per-layer ``(D, N, H)`` tensors."""
        state_names = [f"{name}_n" for name in layer.family.state_names]
        finals: dict[str, list[str]] = {name: [] for name in state_names}
        feature_shape = self.constant("feature_shape", np.array([0, 0, -1], dtype=np.int64))  # (T, N, D*H)
        for k in range(layer.num_layers):
            W, R, B = _onnx_weights(layer, k)
            inputs = [x, self.constant(f"W_l{k}", W), self.constant(f"R_l{k}", R), self.constant(f"B_l{k}", B)]
            sequence, *states = self.node(layer.family.name, inputs, [f"Y_l{k}"] + [f"{s}_l{k}" for s in state_names],
                                          **_operator_attributes(layer))
            for name, state in zip(state_names, states, strict=True):
                finals[name].append(state)
            (batch_major,) = self.node("Transpose", [sequence], [f"Y_l{k}_TNDH"], perm=[0, 2, 1, 3])
            x = output if k == layer.num_layers - 1 else f"out_l{k}"
            self.node("Reshape", [batch_major, feature_shape], [x])
        return finals


def _check_exportable(where: str, module: object) -> RecurrentLayer:
    """The module's recurrent stack, or an error saying why it has no ONNX equivalent."""
    if not isinstance(module, (RecurrentLayer, SequenceRegressor)):
        raise TypeError(f"{where}: expected an LSTM, GRU, RNN or SequenceRegressor, got {type(module).__name__}.")
    layer = module.rnn if isinstance(module, SequenceRegressor) else module
    if layer.proj_size:
        raise ValueError(f"{where}: expected an LSTM without projection (proj_size=0), got proj_size="
                         f"{layer.proj_size}; ONNX's LSTM operator has no projection, so it cannot be exported.")
    return layer


def export_onnx(module: RecurrentLayer | SequenceRegressor, path: str | os.PathLike, *,
                opset: int = DEFAULT_OPSET) -> Path:
    r"""Write ``module`` to ``path`` as an ONNX model (float32) and return the path.

    Parameters
    ----------
    module : an :class:`~bptt.LSTM`, :class:`~bptt.GRU` or :class:`~bptt.RNN` (tanh or relu), any number of
        layers, uni- or bidirectional, with or without biases; or a :class:`~bptt.layers.models.SequenceRegressor`.
        An LSTM with ``proj_size > 0`` is refused (ValueError): ONNX's LSTM operator has no projection.
    path : the file to write, atomically (a crash leaves the old file or the new one).
    opset : the ONNX opset to target, from 14 to the newest the installed ``onnx`` knows (default 17).

    Notes
    -----
    Graph: input ``"input"`` ``(T, N, I)`` float32 with symbolic T and N, **time-major even when the layer
    was built with** ``batch_first=True`` (transpose batch-first data before feeding it). Outputs of a bare
    layer: ``"output"`` ``(T, N, D*H)``, ``"h_n"`` ``(L*D, N, H)`` and, for an LSTM, ``"c_n"`` ``(L*D, N, H)``,
    as PyTorch's forward returns them from zero initial states. Output of a SequenceRegressor: ``"output"``
    ``(T, N, output_size)``, the head applied at every step. The model is checked with
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
    layer = _check_exportable(where, module)
    try:
        import onnx
        import onnx.numpy_helper
    except ImportError as error:
        raise ImportError(f"{where}: expected the onnx package, got none installed. "
                          "Install it with pip install 'bptt[onnx]'.") from error
    newest = onnx.defs.onnx_opset_version()
    if isinstance(opset, bool) or not isinstance(opset, numbers.Integral):
        raise TypeError(f"{where}: expected opset to be an int, got {type(opset).__name__}.")
    if not MIN_OPSET <= opset <= newest:
        raise ValueError(f"{where}: expected opset between {MIN_OPSET} and {newest}, got {opset}.")

    graph = _Graph(onnx)
    features = "output" if module is layer else "features"
    finals = graph.recurrent_stack(layer, "input", features)
    float32 = onnx.TensorProto.FLOAT
    D, H = layer.num_directions, layer.hidden_size
    if module is layer:
        outputs = [onnx.helper.make_tensor_value_info("output", float32, ["T", "N", D * H])]
        for name, states in finals.items():
            graph.node("Concat", states, [name], axis=0)
            outputs.append(onnx.helper.make_tensor_value_info(name, float32, [layer.num_layers * D, "N", H]))
    else:
        head = module.head
        weight = graph.constant("head.weight_T", head.params["weight"].T.astype(np.float32))
        (y,) = graph.node("MatMul", [features, weight], ["head_matmul" if head.bias else "output"])
        if head.bias:
            graph.node("Add", [y, graph.constant("head.bias", head.params["bias"].astype(np.float32))], ["output"])
        outputs = [onnx.helper.make_tensor_value_info("output", float32, ["T", "N", head.out_features])]
    inputs = [onnx.helper.make_tensor_value_info("input", float32, ["T", "N", layer.input_size])]
    onnx_graph = onnx.helper.make_graph(graph.nodes, type(module).__name__, inputs, outputs, graph.initializers)
    opsets = [onnx.helper.make_opsetid("", opset)]
    model = onnx.helper.make_model(onnx_graph, opset_imports=opsets, producer_name="bptt",
                                   producer_version=__version__, ir_version=onnx.helper.find_min_ir_version_for(opsets))
    onnx.checker.check_model(model, full_check=True)
    return atomic_write_bytes(path, model.SerializeToString())
