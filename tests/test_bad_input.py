"""Bad input to every public function and class that ``tests/test_errors.py`` leaves out: the exception type
(ValueError for values and shapes, TypeError for types) and a message of the form "<where>: expected X, got Y".

Most paths are one row of ``BAD_CALLS``: the call, the exception and a pattern of its message. Paths that need
a prepared object (a forward pass first, a layer whose params must stay unchanged) have their own test.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from bptt import GRU, LSTM, RNN, Linear, check_layer, cross_entropy, gradcheck, load, mse_loss, save
from bptt.layers.models import SequenceRegressor
from bptt.train.optim import SGD, Adam, CosineLR, LinearWarmup, StepLR, clip_grad_norm, cosine_lr

I, H, T, N = 3, 4, 5, 2


def esc(text: str) -> str:
    return re.escape(text)


def params_and_grads() -> tuple[dict, dict]:
    return {"w": np.ones(3)}, {"w": np.zeros(3)}


def square(p: dict) -> float:
    return float(np.sum(p["w"] ** 2))


BIG = np.full((T, N, I), 1e300)
RAGGED = [[[0.0, 0.0, 0.0]], [[0.0, 0.0]]]

BAD_CALLS = {
    # -- recurrent layers: constructor flags, mode, inputs ------------------------------------------------------
    "LSTM bias not a bool": (lambda: LSTM(I, H, bias="False"), TypeError, "LSTM: expected bias to be a bool, got str"),
    "GRU batch_first not a bool": (lambda: GRU(I, H, batch_first=1), TypeError,
                                   "GRU: expected batch_first to be a bool, got int"),
    "RNN bidirectional not a bool": (lambda: RNN(I, H, bidirectional=None), TypeError,
                                     "RNN: expected bidirectional to be a bool, got NoneType"),
    "train mode not a bool": (lambda: GRU(I, H).train("eval"), TypeError,
                              "GRU.train: expected mode to be a bool, got str"),
    "x ragged": (lambda: LSTM(I, H, rng=0)(RAGGED), ValueError,
                 "LSTM.forward: expected x to be a rectangular array, got a ragged list"),
    "lengths ragged": (lambda: GRU(I, H, rng=0)(np.zeros((T, N, I)), lengths=[1, [2]]), ValueError,
                       "GRU.forward: expected lengths to be a rectangular array, got a ragged list"),
    "RNN nonlinearity an array": (lambda: RNN(I, H, nonlinearity=np.array(["tanh", "relu"])), ValueError,
                                  "RNN: expected nonlinearity 'tanh' or 'relu', got array("),
    "x without steps": (lambda: RNN(I, H, rng=0)(np.zeros((0, N, I))), ValueError,
                        "RNN.forward: expected x with at least one step and one sequence, got shape (0, 2, 3)"),
    "x without sequences": (lambda: GRU(I, H, rng=0)(np.zeros((T, 0, I))), ValueError,
                            "expected x with at least one step and one sequence, got shape (5, 0, 3)"),
    "unbatched x without steps": (lambda: LSTM(I, H, rng=0)(np.zeros((0, I))), ValueError,
                                  "expected x with at least one step and one sequence, got shape (0, 3)"),
    "x beyond float32": (lambda: LSTM(I, H, dtype=np.float32, rng=0)(BIG), ValueError,
                         "LSTM.forward: expected x within the float32 range (|value| <= 3.403e+38), got 30 entries"),
    "h0 beyond float32": (lambda: GRU(I, H, dtype=np.float32, rng=0)(np.zeros((T, N, I)), np.full((1, N, H), -1e39)),
                          ValueError, "GRU.forward: expected h0 within the float32 range"),
    # -- Linear -------------------------------------------------------------------------------------------------
    "Linear bias not a bool": (lambda: Linear(I, 2, bias="yes"), TypeError,
                               "Linear: expected bias to be a bool, got str"),
    "Linear x ragged": (lambda: Linear(2, 2, rng=0)(RAGGED), ValueError,
                        "Linear.forward: expected x to be a rectangular array, got a ragged list"),
    "Linear x beyond float32": (lambda: Linear(I, 2, dtype=np.float32, rng=0)(BIG), ValueError,
                                "Linear.forward: expected x within the float32 range"),
    "Linear x complex": (lambda: Linear(I, 2, rng=0)(np.zeros(I, dtype=complex)), TypeError,
                         "Linear.forward: expected x to be a real numeric array, got dtype complex128"),
    # -- SequenceRegressor --------------------------------------------------------------------------------------
    "regressor cell unhashable": (lambda: SequenceRegressor(1, 2, 1, cell=["lstm"]), ValueError,
                                  "SequenceRegressor: expected cell to be one of lstm, gru, rnn, got ['lstm']"),
    "regressor output_size 0": (lambda: SequenceRegressor(1, 2, 0), ValueError,
                                "SequenceRegressor: expected output_size >= 1, got 0"),
    "regressor hidden_size a str": (lambda: SequenceRegressor(1, "8", 1), TypeError,
                                    "SequenceRegressor: expected hidden_size to be an int, got str"),
    "regressor num_layers 0": (lambda: SequenceRegressor(1, 2, 1, num_layers=0), ValueError,
                               "SequenceRegressor: expected num_layers >= 1, got 0"),
    "regressor x wrong features": (lambda: SequenceRegressor(2, 3, 1, rng=0)(np.zeros((T, N, 3))), ValueError,
                                   "LSTM.forward: expected x of shape (*, *, 2), got (5, 2, 3)"),
    # -- losses -------------------------------------------------------------------------------------------------
    "mse_loss pred complex": (lambda: mse_loss(np.zeros(2, dtype=complex), np.zeros(2)), TypeError,
                              "mse_loss: expected pred to be a real numeric array, got dtype complex128"),
    "mse_loss target strings": (lambda: mse_loss(np.zeros(2), np.array(["a", "b"])), TypeError,
                                "mse_loss: expected target to be a real numeric array, got dtype <U1"),
    "mse_loss bools": (lambda: mse_loss(np.array([True]), np.array([False])), TypeError,
                       "mse_loss: expected pred to be a real numeric array, got dtype bool"),
    "mse_loss objects": (lambda: mse_loss(np.array([None, 1.0]), np.zeros(2)), TypeError,
                         "mse_loss: expected pred to be a real numeric array, got dtype object"),
    "mse_loss ragged": (lambda: mse_loss([[1.0], [1.0, 2.0]], np.zeros(2)), ValueError,
                        "mse_loss: expected pred to be a rectangular array, got a ragged list"),
    "cross_entropy logits ragged": (lambda: cross_entropy([[0.0], [0.0, 1.0]], np.zeros(2, dtype=int)), ValueError,
                                    "cross_entropy: expected logits to be a rectangular array, got a ragged list"),
    "cross_entropy labels ragged": (lambda: cross_entropy(np.zeros((2, 3)), [0, [1]]), ValueError,
                                    "cross_entropy: expected labels to be a rectangular array, got a ragged list"),
    # -- optimizers, schedules, clipping ------------------------------------------------------------------------
    "optimizer params not a mapping": (lambda: SGD([np.ones(2)], {"w": np.zeros(2)}, lr=0.1), TypeError,
                                       "SGD: expected params to be a mapping of names to arrays, got list"),
    "optimizer param of ints": (lambda: Adam({"w": np.ones(2, dtype=int)}, {"w": np.zeros(2)}), TypeError,
                                "Adam: expected params['w'] to be a float ndarray (it is updated in place), "
                                "got dtype int64"),
    "optimizer param a list": (lambda: SGD({"w": [1.0, 2.0]}, {"w": np.zeros(2)}, lr=0.1), TypeError,
                               "SGD: expected params['w'] to be a float ndarray (it is updated in place), got list"),
    "optimizer grads not a mapping": (lambda: SGD({"w": np.ones(2)}, [np.zeros(2)], lr=0.1), TypeError,
                                      "SGD: expected grads to be a mapping of names to arrays, got list"),
    "optimizer grad complex": (lambda: SGD({"w": np.ones(2)}, {"w": np.zeros(2, dtype=complex)}, lr=0.1),
                               TypeError, "SGD: expected grads['w'] to be a real numeric array, got dtype complex128"),
    "StepLR step_size a list": (lambda: StepLR([1, [2]]), TypeError,
                                "StepLR: expected step_size to be an int, got list"),
    "StepLR base_lr a str": (lambda: StepLR(2).lr(0, "0.1"), TypeError,
                             "StepLR.lr: expected base_lr to be a real number, got str"),
    "CosineLR base_lr negative": (lambda: CosineLR(10).lr(3, -0.1), ValueError,
                                  "CosineLR.lr: expected base_lr > 0, got -0.1"),
    "LinearWarmup base_lr NaN": (lambda: LinearWarmup(3).lr(1, float("nan")), ValueError,
                                 "LinearWarmup.lr: expected base_lr > 0, got nan"),
    "cosine_lr step a float": (lambda: cosine_lr(1.5, 10, 0.1), TypeError,
                               "cosine_lr: expected step to be an int, got float"),
    "cosine_lr total_steps a str": (lambda: cosine_lr(1, "10", 0.1), TypeError,
                                    "cosine_lr: expected total_steps to be an int, got str"),
    "clip_grad_norm max_norm a str": (lambda: clip_grad_norm({"w": np.ones(2)}, "1"), TypeError,
                                      "clip_grad_norm: expected max_norm to be a real number, got str"),
    "clip_grad_norm max_norm NaN": (lambda: clip_grad_norm({"w": np.ones(2)}, float("nan")), ValueError,
                                    "clip_grad_norm: expected max_norm > 0, got nan"),
    "clip_grad_norm grads a list": (lambda: clip_grad_norm([np.ones(2)], 1.0), TypeError,
                                    "clip_grad_norm: expected grads to be a mapping of names to arrays, got list"),
    "clip_grad_norm grad of ints": (lambda: clip_grad_norm({"w": np.ones(2, dtype=int)}, 1.0), TypeError,
                                    "clip_grad_norm: expected grads['w'] to be a float ndarray"),
    # -- gradcheck and check_layer ------------------------------------------------------------------------------
    "gradcheck f not callable": (lambda: gradcheck(1.0, *params_and_grads()), TypeError,
                                 "gradcheck: expected f to be callable, got float"),
    "gradcheck params a list": (lambda: gradcheck(square, [np.ones(3)], {"w": np.zeros(3)}), TypeError,
                                "gradcheck: expected params to be a mapping of names to arrays, got list"),
    "gradcheck grads an array": (lambda: gradcheck(square, {"w": np.ones(3)}, np.zeros(3)), TypeError,
                                 "gradcheck: expected grads to be a mapping of names to arrays, got ndarray"),
    "gradcheck grad of strings": (lambda: gradcheck(square, {"w": np.ones(3)}, {"w": np.array(["a"] * 3)}),
                                  TypeError, "gradcheck: expected grads['w'] to be a real numeric array, got dtype"),
    "gradcheck mode an array": (lambda: gradcheck(square, *params_and_grads(), mode=np.array(["full", "fast"])),
                                ValueError, "gradcheck: expected mode to be one of full, sample, fast, got array("),
    "gradcheck eps a str": (lambda: gradcheck(square, *params_and_grads(), eps="1e-6"), TypeError,
                            "gradcheck: expected eps to be a real number, got str"),
    "gradcheck loss a str": (lambda: gradcheck(square, *params_and_grads(), loss="3"), TypeError,
                             "gradcheck: expected loss to be a real number, got str"),
    "gradcheck rtol NaN": (lambda: gradcheck(square, *params_and_grads(), rtol=float("nan")), ValueError,
                           "gradcheck: expected eps, atol and rtol > 0 and finite, got 1e-06, 3e-07, nan"),
    "gradcheck atol infinite": (lambda: gradcheck(square, *params_and_grads(), atol=float("inf")), ValueError,
                                "gradcheck: expected eps, atol and rtol > 0 and finite"),
    "gradcheck seed a str": (lambda: gradcheck(square, *params_and_grads(), seed="0"), TypeError,
                             "gradcheck: expected seed to be an int seed or a numpy.random.Generator, got str"),
    "gradcheck seed negative": (lambda: gradcheck(square, *params_and_grads(), seed=-1), ValueError,
                                "gradcheck: expected a non-negative int seed, got -1"),
    "gradcheck f returns NaN": (lambda: gradcheck(lambda p: float("nan"), *params_and_grads()), ValueError,
                                "gradcheck: expected f(params) to be finite, got nan"),
    "gradcheck f returns a str": (lambda: gradcheck(lambda p: "1.0", *params_and_grads()), TypeError,
                                  "gradcheck: expected f to return a real number, got str of dtype <U3"),
    "gradcheck f returns a complex": (lambda: gradcheck(lambda p: 1j, *params_and_grads()), TypeError,
                                      "gradcheck: expected f to return a real number, got complex"),
    "gradcheck f returns a ragged list": (lambda: gradcheck(lambda p: [1.0, [2.0]], *params_and_grads()), ValueError,
                                          "gradcheck: expected the value of f to be a rectangular array, got a ragged"),
    "check_layer on a Linear": (lambda: check_layer(Linear(2, 2), np.zeros((3, 2))), TypeError,
                                "check_layer: expected an LSTM, GRU or RNN layer, got Linear"),
    "check_layer x complex": (lambda: check_layer(GRU(2, 2, rng=0), np.zeros((3, 1, 2), dtype=complex)), TypeError,
                              "check_layer: expected x to be a real numeric array, got dtype complex128"),
    "check_layer x NaN": (lambda: check_layer(RNN(2, 2, rng=0), np.full((3, 1, 2), np.nan)), ValueError,
                          "check_layer: expected finite values in x, got 6 NaN or infinite entries"),
    "check_layer seed a float": (lambda: check_layer(RNN(2, 2, rng=0), np.zeros((3, 1, 2)), seed=0.5), TypeError,
                                 "check_layer: expected seed to be an int seed or a numpy.random.Generator, got float"),
    "check_layer mode unknown": (lambda: check_layer(RNN(2, 2, rng=0), np.zeros((3, 1, 2)), mode="quick"),
                                 ValueError, "gradcheck: expected mode to be one of full, sample, fast, got 'quick'"),
}


@pytest.mark.parametrize("case", list(BAD_CALLS))
def test_bad_call(case):
    call, error, message = BAD_CALLS[case]
    with pytest.raises(error, match=esc(message)):
        call()


# ---------------------------------------------------------------------------------------------------------
# Paths that need a prepared object
# ---------------------------------------------------------------------------------------------------------

def test_optimizer_lr_set_to_nonsense_between_steps():
    optimizer = SGD(*params_and_grads(), lr=0.1)
    optimizer.lr = -0.1
    with pytest.raises(ValueError, match=esc("SGD.step: expected lr >= 0, got -0.1")):
        optimizer.step()
    optimizer.lr = "0.1"
    with pytest.raises(TypeError, match=esc("SGD.step: expected lr to be a real number, got str")):
        optimizer.step()
    optimizer.lr = 0.0           # a schedule that decays to zero is fine
    optimizer.step()


@pytest.mark.parametrize(("value", "error", "message"), [
    (np.full((4 * H, H), 1e300), ValueError,
     "LSTM.load_state_dict: expected weight_hh_l0 within the float32 range (|value| <= 3.403e+38), got 64 entries"),
    ([[0.0] * H, [0.0]], ValueError, "LSTM.load_state_dict: expected weight_hh_l0 to be a rectangular array, got a "
                                     "ragged list"),
])
def test_load_state_dict_refuses_and_changes_nothing(value, error, message):
    layer = LSTM(I, H, dtype=np.float32, rng=0)
    before = layer.state_dict()
    state = {**before, "weight_hh_l0": value}
    with pytest.raises(error, match=esc(message)):
        layer.load_state_dict(state)
    for name, array in before.items():
        np.testing.assert_array_equal(layer.params[name], array, err_msg=name)


def test_backward_refuses_a_ragged_dout():
    layer = LSTM(I, H, rng=0)
    layer(np.zeros((T, N, I)))
    with pytest.raises(ValueError, match=esc("LSTM.backward: expected dout to be a rectangular array, got a ragged")):
        layer.backward([[0.0], [0.0, 1.0]])


def test_backward_refuses_a_dout_beyond_float32():
    layer = RNN(I, H, dtype=np.float32, rng=0)
    out, _ = layer(np.zeros((T, N, I)))
    with pytest.raises(ValueError, match=esc("RNN.backward: expected dout within the float32 range")):
        layer.backward(np.full(out.shape, 1e40))


def test_regressor_backward_before_forward():
    with pytest.raises(ValueError, match=esc("Linear.backward: expected a forward pass first, got none")):
        SequenceRegressor(1, 2, 1, rng=0).backward(np.zeros((T, N, 1)))


# ---------------------------------------------------------------------------------------------------------
# save and load arguments (broken files are in test_serialization.py)
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("module", "metadata", "error", "message"), [
    (object(), None, TypeError,
     "save: expected one of LSTM, GRU, RNN, Linear, Embedding, SequenceRegressor, SequenceClassifier, LanguageModel, "
     "LSTMCell, GRUCell, RNNCell, Seq2Seq, got object"),
    (LSTM(2, 3, rng=0), [("run", 1)], TypeError, "save: expected metadata to be a mapping or None, got list"),
    (LSTM(2, 3, rng=0), {1: "one"}, TypeError, "save: expected metadata keys to be strings, got [1]"),
    (LSTM(2, 3, rng=0), {"weights": np.ones(2)}, TypeError,
     "save: expected JSON-ready metadata values, got Object of type ndarray is not JSON serializable"),
    (LSTM(2, 3, rng=0), {"class": "GRU"}, ValueError,
     "save: expected metadata without the reserved keys format, class, config, got ['class']"),
])
def test_save_refuses_bad_arguments(tmp_path, module, metadata, error, message):
    path = tmp_path / "module.safetensors"
    with pytest.raises(error, match=esc(message)):
        save(module, path, metadata)
    assert not path.exists()


def test_save_refuses_non_finite_parameters(tmp_path):
    layer = GRU(2, 3, rng=0)
    layer.params["bias_hh_l0"][1] = np.inf
    with pytest.raises(ValueError, match=esc("save: expected finite parameters, got NaN or infinite entries in "
                                             "['bias_hh_l0']")):
        save(layer, tmp_path / "gru.safetensors")


@pytest.mark.parametrize("function", [lambda path: save(Linear(2, 2), path), load], ids=["save", "load"])
def test_path_not_a_path(function):
    with pytest.raises(TypeError, match=r"(save|load): expected path to be a str or os\.PathLike, got int"):
        function(3)
