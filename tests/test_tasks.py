"""The adding, copy and sunspots tasks and the cross-entropy loss.

Each task: the Task interface (shapes, dtypes, determinism, defaults), its data checked against its
definition, its masked loss and gradient, its metrics against hand computations, and its bad inputs.
Sunspots tests read the raw series straight from statsmodels, independently of the task module.
"""

from __future__ import annotations

import math
import re
import sys

import numpy as np
import pytest

from bptt.check.gradcheck import gradcheck
from bptt.layers.models import SequenceRegressor
from bptt.train.losses import cross_entropy
from bptt.train.tasks import sunspots
from bptt.train.tasks.adding import AddingTask
from bptt.train.tasks.copy import IGNORE, CopyTask
from bptt.train.tasks.sunspots import SunspotsTask

DEFAULT_KEYS = {"hidden_size", "steps", "batch_size", "lr", "eval_every"}


def esc(text: str) -> str:
    return re.escape(text)


@pytest.fixture
def raw_sunspots() -> np.ndarray:
    """The yearly series as statsmodels ships it, read without the task module."""
    datasets = pytest.importorskip("statsmodels.datasets")
    return datasets.sunspots.load_pandas().data["SUNACTIVITY"].to_numpy(dtype=np.float64)


def small_tasks() -> list:
    return [AddingTask(seq_len=12, held_out_size=7), CopyTask(symbols=5, length=3, delay=4, held_out_size=7),
            SunspotsTask(seq_len=15)]


def task_id(task) -> str:
    return task.name


# ---------------------------------------------------------------------------------------------------------
# The Task interface, for every task
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("task", small_tasks(), ids=task_id)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_batch_shapes_dtypes_and_loss_gradient_shape(task, dtype):
    if task.name == "sunspots":
        pytest.importorskip("statsmodels")
    x, y = task.batch(np.random.default_rng(0), 6, dtype)
    assert x.dtype == dtype and x.ndim == 3 and x.shape[1:] == (6, task.input_size)
    if task.name == "copy":
        assert y.shape == x.shape[:2] and np.issubdtype(y.dtype, np.integer)
    else:
        assert y.dtype == dtype and y.shape[1:] == (6, task.output_size)
    pred = np.random.default_rng(1).standard_normal((x.shape[0], 6, task.output_size)).astype(dtype)
    loss, dpred = task.loss(pred, y)
    assert isinstance(loss, float) and math.isfinite(loss)
    assert dpred.shape == pred.shape and dpred.dtype == dtype


@pytest.mark.parametrize("task", small_tasks(), ids=task_id)
def test_data_are_deterministic_for_a_seed(task):
    if task.name == "sunspots":
        pytest.importorskip("statsmodels")
    first = task.batch(np.random.default_rng(3), 5)
    again = task.batch(np.random.default_rng(3), 5)
    other = task.batch(np.random.default_rng(4), 5)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], other[0])
    for split in ("validation", "test"):
        held = task.held_out(split, np.random.default_rng(9))
        held_again = task.held_out(split, np.random.default_rng(9))
        for a, b in zip(held, held_again, strict=True):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("task", small_tasks(), ids=task_id)
def test_names_sizes_and_defaults(task):
    assert task.name in ("adding", "copy", "sunspots")
    assert DEFAULT_KEYS <= set(task.defaults)
    assert task.defaults["lr"] > 0 and all(task.defaults[k] >= 1 for k in DEFAULT_KEYS - {"lr"})
    hash(task)                                      # frozen and hashable: can key a cache
    mine = type(task)()
    mine.defaults["steps"] = 1                      # each instance owns its defaults: no shared class state
    assert type(task)().defaults["steps"] != 1


@pytest.mark.parametrize("task", small_tasks(), ids=task_id)
def test_held_out_rejects_unknown_splits(task):
    with pytest.raises(ValueError, match=esc("expected split to be one of 'validation', 'test', got 'train'")):
        task.held_out("train", np.random.default_rng(0))


# ---------------------------------------------------------------------------------------------------------
# Adding
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("seq_len", [2, 7, 100])
def test_adding_has_one_marker_per_half_and_the_marked_sum_as_target(seq_len):
    x, y = AddingTask(seq_len=seq_len).batch(np.random.default_rng(seq_len), 500)
    values, markers = x[..., 0], x[..., 1]
    assert np.all((values >= 0) & (values < 1))
    assert set(np.unique(markers)) <= {0.0, 1.0}
    half = seq_len // 2
    np.testing.assert_array_equal(markers[:half].sum(axis=0), 1.0)
    np.testing.assert_array_equal(markers[half:].sum(axis=0), 1.0)
    np.testing.assert_allclose(y[0, :, 0], (values * markers).sum(axis=0), rtol=0, atol=1e-15)


def test_adding_markers_reach_every_step_of_their_half():
    x, _ = AddingTask(seq_len=10).batch(np.random.default_rng(0), 2000)
    first = x[:5, :, 1].argmax(axis=0)
    second = 5 + x[5:, :, 1].argmax(axis=0)
    assert set(first.tolist()) == set(range(5)) and set(second.tolist()) == set(range(5, 10))


def test_adding_baseline_is_one_sixth_and_an_oracle_scores_zero():
    task = AddingTask(seq_len=20, held_out_size=20000)
    x, y = task.held_out("test", np.random.default_rng(1))

    def oracle(inputs):
        pred = np.full((inputs.shape[0], inputs.shape[1], 1), 5.0)   # anything before the last step
        pred[-1, :, 0] = (inputs[..., 0] * inputs[..., 1]).sum(axis=0)
        return pred

    metrics = task.metrics(oracle, (x, y))
    assert metrics["baseline_mse"] == pytest.approx(1 / 6, abs=0.006)
    assert metrics["test_mse"] == pytest.approx(0.0, abs=1e-28)
    always_one = task.metrics(lambda inputs: np.ones((inputs.shape[0], inputs.shape[1], 1)), (x, y))
    assert always_one["test_mse"] == always_one["baseline_mse"]


def test_adding_loss_scores_the_last_step_only():
    task = AddingTask(seq_len=9)
    rng = np.random.default_rng(2)
    x, y = task.batch(rng, 4)
    pred = rng.standard_normal((9, 4, 1))
    loss, dpred = task.loss(pred, y)
    assert loss == pytest.approx(np.mean((pred[-1] - y[0]) ** 2), rel=1e-14)
    assert not dpred[:-1].any() and dpred[-1].all()
    assert gradcheck(lambda p: task.loss(p["pred"], y)[0], {"pred": pred}, {"pred": dpred}, loss=loss).ok


# ---------------------------------------------------------------------------------------------------------
# Copy
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("symbols", "length", "delay"), [(8, 5, 10), (3, 2, 0), (1, 1, 1)])
def test_copy_input_encodes_symbols_delay_and_go_and_labels_are_the_symbols(symbols, length, delay):
    task = CopyTask(symbols=symbols, length=length, delay=delay)
    x, y = task.batch(np.random.default_rng(0), 50)
    T = 2 * length + delay + 1
    assert task.seq_len == T and x.shape == (T, 50, symbols + 2) and y.shape == (T, 50)
    assert task.input_size == symbols + 2 and task.output_size == symbols
    assert set(np.unique(x)) <= {0.0, 1.0}
    np.testing.assert_array_equal(x.sum(axis=-1), 1.0)                   # one-hot at every step
    codes = x.argmax(axis=-1)
    blank, go = symbols, symbols + 1
    assert np.all(codes[:length] < symbols)                              # the data symbols
    assert np.all(codes[length:length + delay] == blank)                 # the delay
    assert np.all(codes[length + delay] == go)                           # the go marker
    assert np.all(codes[length + delay + 1:] == blank)                   # blanks while recalling
    np.testing.assert_array_equal(y[-length:], codes[:length])           # recall the symbols in order
    assert np.all(y[:-length] == IGNORE)
    if symbols > 1:
        assert len(np.unique(codes[:length])) == symbols                 # every symbol drawn


def one_hot_logits(labels: np.ndarray, symbols: int, height: float) -> np.ndarray:
    logits = np.zeros(labels.shape + (symbols,))
    np.put_along_axis(logits, np.clip(labels, 0, None)[..., None], height, axis=-1)
    return logits


def test_copy_oracle_is_perfect_and_uniform_logits_cost_log_symbols():
    task = CopyTask(held_out_size=64)
    x, y = task.held_out("validation", np.random.default_rng(5))
    oracle = task.metrics(lambda _: one_hot_logits(y, task.symbols, 50.0), (x, y))
    assert oracle["accuracy"] == 1.0 and oracle["test_loss"] < 1e-18
    assert oracle["chance_accuracy"] == 1 / 8
    uniform = task.metrics(lambda inputs: np.zeros(inputs.shape[:2] + (8,)), (x, y))
    assert uniform["test_loss"] == pytest.approx(math.log(8), rel=1e-14)
    wrong = task.metrics(lambda _: one_hot_logits((y + 1) % 8, task.symbols, 50.0), (x, y))
    assert wrong["accuracy"] == 0.0


def test_copy_loss_scores_the_recall_steps_only():
    task = CopyTask(symbols=4, length=3, delay=2)
    rng = np.random.default_rng(6)
    x, y = task.batch(rng, 5)
    pred = rng.standard_normal((task.seq_len, 5, 4))
    loss, dpred = task.loss(pred, y)
    expected, _ = cross_entropy(pred[-3:], y[-3:])
    assert loss == expected
    assert not dpred[:-3].any() and dpred[-3:].any()
    assert gradcheck(lambda p: task.loss(p["pred"], y)[0], {"pred": pred}, {"pred": dpred}, loss=loss).ok


def test_model_gradients_through_the_copy_loss():
    task = CopyTask(symbols=3, length=2, delay=1)
    model = SequenceRegressor(task.input_size, 4, task.output_size, rng=0)
    x, y = task.batch(np.random.default_rng(7), 2)
    loss, dpred = task.loss(model(x), y)
    model.zero_grad()
    model.backward(dpred)
    report = gradcheck(lambda _: task.loss(model(x), y)[0], model.params, model.grads, loss=loss)
    assert report.ok, str(report)


# ---------------------------------------------------------------------------------------------------------
# Sunspots
# ---------------------------------------------------------------------------------------------------------

def test_sunspots_series_is_the_statsmodels_one(raw_sunspots):
    assert len(raw_sunspots) == 309
    np.testing.assert_array_equal(SunspotsTask().series(), raw_sunspots)


def test_sunspots_splits_are_chronological_and_disjoint(raw_sunspots):
    task = SunspotsTask()
    train, validation, test = (task.split_range(s) for s in ("train", "validation", "test"))
    assert train.start == 1 and train.stop == validation.start and validation.stop == test.start
    assert test.stop == len(raw_sunspots)
    assert (len(train) + 1, len(validation), len(test)) == (217, 46, 46)     # 70 / 15 / 15 % of 309 values


def test_sunspots_held_out_targets_are_the_split_in_order_and_the_next_values(raw_sunspots):
    task = SunspotsTask(seq_len=40)
    for split in ("validation", "test"):
        scored = task.split_range(split)
        x, y = task.held_out(split, np.random.default_rng(0))
        assert x.shape == y.shape == (40, 2, 1)
        u = y[..., 0].T.ravel() * task.scale + task.offset                   # window after window, in time
        inputs = x[..., 0].T.ravel() * task.scale + task.offset
        kept = ~np.isnan(u)
        np.testing.assert_allclose(u[kept], raw_sunspots[scored.start:scored.stop], rtol=0, atol=1e-12)
        # Each input is the value before its target, context included: the window before the split.
        first = scored.stop - 80
        np.testing.assert_allclose(inputs, raw_sunspots[first - 1:scored.stop - 1], rtol=0, atol=1e-12)
        assert np.isnan(u[:80 - len(scored)]).all() and kept[80 - len(scored):].all()


def test_sunspots_training_windows_lie_in_the_training_part_with_next_value_targets(raw_sunspots):
    task = SunspotsTask(seq_len=40)
    n_train = task.split_range("train").stop
    x, y = task.batch(np.random.default_rng(0), 3000)
    np.testing.assert_array_equal(x[1:], y[:-1])
    windows = np.concatenate([x[:1, :, 0], y[..., 0]]).T * task.scale + task.offset     # (N, 41)
    # The raw values have one decimal: rounded to three, a window names its start.
    candidates = np.lib.stride_tricks.sliding_window_view(raw_sunspots, 41)
    start_of = {tuple(np.round(c, 3)): s for s, c in enumerate(candidates)}
    assert len(start_of) == len(candidates)
    starts = np.array([start_of[tuple(np.round(w, 3))] for w in windows])
    np.testing.assert_allclose(windows, candidates[starts], rtol=0, atol=1e-12)
    assert set(starts.tolist()) == set(range(n_train - 40))          # every window that fits, no more


def test_sunspots_scale_is_fitted_on_the_training_part_only(raw_sunspots, monkeypatch):
    task = SunspotsTask()
    n_train = task.split_range("train").stop
    assert task.offset == pytest.approx(np.mean(raw_sunspots[:n_train]), rel=1e-14)
    assert task.scale == pytest.approx(np.std(raw_sunspots[:n_train]), rel=1e-14)
    batch = task.batch(np.random.default_rng(1), 8)
    test_x, test_y = task.held_out("test", np.random.default_rng(1))
    changed = raw_sunspots.copy()
    changed[n_train:] = 3 * changed[n_train:] + 100                  # other later years, same training part
    monkeypatch.setattr(sunspots, "_load_series", lambda: changed)
    assert (task.offset, task.scale) == (pytest.approx(np.mean(raw_sunspots[:n_train]), rel=1e-14),
                                         pytest.approx(np.std(raw_sunspots[:n_train]), rel=1e-14))
    for a, b in zip(batch, task.batch(np.random.default_rng(1), 8), strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.allclose(task.held_out("test", np.random.default_rng(1))[1][-1], test_y[-1])


def test_sunspots_metrics_against_a_manual_computation(raw_sunspots):
    task = SunspotsTask(seq_len=30)
    x, y = task.held_out("test", np.random.default_rng(0))
    scored = task.split_range("test")
    truth = raw_sunspots[scored.start:scored.stop]
    persistence = np.mean((truth - raw_sunspots[scored.start - 1:scored.stop - 1]) ** 2)
    pred = np.random.default_rng(1).standard_normal(y.shape)
    metrics = task.metrics(lambda _: pred, (x, y))
    forecast = (pred[..., 0].T.ravel() * task.scale + task.offset)[~np.isnan(y[..., 0].T.ravel())]
    test_mse = np.mean((forecast - truth) ** 2)
    assert metrics["persistence_mse"] == pytest.approx(persistence, rel=1e-12)
    assert metrics["test_mse"] == pytest.approx(test_mse, rel=1e-12)
    assert metrics["skill"] == pytest.approx(1 - test_mse / persistence, rel=1e-12)
    repeat = task.metrics(lambda inputs: inputs, (x, y))                # persistence itself: skill 0
    assert repeat["test_mse"] == pytest.approx(persistence, rel=1e-12) and repeat["skill"] == pytest.approx(0.0)
    oracle = task.metrics(lambda _: np.where(np.isnan(y), 1e6, y), (x, y))   # unscored steps ignored
    assert oracle["test_mse"] == 0.0 and oracle["skill"] == 1.0


def test_sunspots_loss_skips_the_context_steps(raw_sunspots):
    task = SunspotsTask(seq_len=30)
    x, y = task.held_out("validation", np.random.default_rng(0))
    pred = np.random.default_rng(2).standard_normal(y.shape)
    loss, dpred = task.loss(pred, y)
    scored = ~np.isnan(y)
    assert loss == pytest.approx(np.mean((pred[scored] - y[scored]) ** 2), rel=1e-14)
    assert not dpred[~scored].any() and dpred[scored].all()
    assert gradcheck(lambda p: task.loss(p["pred"], y)[0], {"pred": pred}, {"pred": dpred}, loss=loss).ok


def test_sunspots_without_statsmodels_says_how_to_install_it(monkeypatch):
    for name in ("statsmodels", "statsmodels.datasets", "statsmodels.datasets.sunspots"):
        monkeypatch.setitem(sys.modules, name, None)
    sunspots._load_series.cache_clear()
    try:
        with pytest.raises(ImportError, match=esc("reads its data from statsmodels: pip install 'bptt[tasks]'")):
            SunspotsTask().batch(np.random.default_rng(0), 1)
    finally:
        sunspots._load_series.cache_clear()


# ---------------------------------------------------------------------------------------------------------
# cross_entropy
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(6, 3, 7), (4, 2), (5,)])
def test_cross_entropy_matches_torch(shape):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(len(shape))
    logits = 3 * rng.standard_normal(shape)
    labels = rng.integers(0, shape[-1], size=shape[:-1])
    upstream = 0.7                                                        # dL/dloss, not one
    loss, dlogits = cross_entropy(logits, labels)
    reference = torch.tensor(logits, dtype=torch.float64, requires_grad=True)
    target = torch.as_tensor(labels).reshape(-1)
    expected = torch.nn.functional.cross_entropy(reference.reshape(-1, shape[-1]), target)
    (upstream * expected).backward()
    assert loss == pytest.approx(expected.item(), rel=0, abs=1e-12)
    np.testing.assert_allclose(upstream * dlogits, reference.grad.numpy(), rtol=0, atol=1e-12)


def test_cross_entropy_ignores_a_label_as_torch_does():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    logits, labels = rng.standard_normal((5, 3, 6)), rng.integers(0, 6, size=(5, 3))
    labels[2:, 1] = 0                                                     # a padded column
    loss, dlogits = cross_entropy(logits, labels, ignore_index=0)
    reference = torch.tensor(logits, requires_grad=True)
    expected = torch.nn.functional.cross_entropy(reference.reshape(-1, 6), torch.as_tensor(labels).reshape(-1),
                                                 ignore_index=0)
    expected.backward()
    assert loss == pytest.approx(expected.item(), rel=0, abs=1e-12)
    np.testing.assert_allclose(dlogits, reference.grad.numpy(), rtol=0, atol=1e-12)
    assert not dlogits[labels == 0].any()
    with pytest.raises(ValueError, match=r"cross_entropy: expected at least one label other than ignore_index 0"):
        cross_entropy(logits, np.zeros((5, 3), dtype=int), ignore_index=0)


def test_cross_entropy_gradcheck_and_dtype():
    rng = np.random.default_rng(3)
    logits = rng.standard_normal((4, 3, 5))
    labels = rng.integers(0, 5, size=(4, 3))
    loss, dlogits = cross_entropy(logits, labels)
    report = gradcheck(lambda p: cross_entropy(p["z"], labels)[0], {"z": logits}, {"z": dlogits}, loss=loss)
    assert report.ok, str(report)
    assert cross_entropy(logits.astype(np.float32), labels)[1].dtype == np.float32


def test_cross_entropy_is_stable_for_huge_logits():
    logits = np.array([[1e4, 0.0, -1e4], [-800.0, -800.0, -800.0]])
    loss, dlogits = cross_entropy(logits, np.array([1, 2]))
    assert loss == pytest.approx((1e4 + math.log(3)) / 2, rel=1e-14)
    np.testing.assert_allclose(dlogits, [[0.5, -0.5, 0.0], [1 / 6, 1 / 6, -1 / 3]], rtol=0, atol=1e-15)


@pytest.mark.parametrize(("logits", "labels", "error", "message"), [
    (np.zeros((3, 4)), np.zeros(3), TypeError, "expected integer labels, got dtype float64"),
    (np.zeros((3, 4)), np.zeros(4, dtype=int), ValueError,
     "expected labels of the logits' leading shape (3,), got (4,)"),
    (np.zeros((3, 4)), np.array([0, 4, 1]), ValueError, "expected labels in 0..3, got values in 0..4"),
    (np.zeros((3, 4)), np.array([-1, 0, 1]), ValueError, "expected labels in 0..3, got values in -1..1"),
    (np.zeros(()), np.zeros((), dtype=int), ValueError, "expected logits of shape (..., C), got a scalar"),
    (np.zeros((3, 0)), np.zeros(3, dtype=int), ValueError, "expected at least one class, got logits of shape (3, 0)"),
    (np.zeros((0, 4)), np.zeros(0, dtype=int), ValueError, "expected at least one label, got size 0"),
    (np.array([[0.0, np.nan]]), np.array([0]), ValueError, "expected finite logits, got 1 NaN or infinite entries"),
    (np.array([["a", "b"]]), np.array([0]), TypeError, "expected real numeric logits, got dtype <U1"),
])
def test_cross_entropy_bad_inputs(logits, labels, error, message):
    with pytest.raises(error, match="cross_entropy: " + esc(message)):
        cross_entropy(logits, labels)


# ---------------------------------------------------------------------------------------------------------
# Bad task settings and inputs
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("make", "error", "message"), [
    (lambda: AddingTask(seq_len=1), ValueError, "AddingTask: expected seq_len >= 2 (a marker in each half), got 1"),
    (lambda: AddingTask(seq_len=2.5), TypeError, "AddingTask: expected seq_len to be an int, got float"),
    (lambda: CopyTask(delay=-1), ValueError, "CopyTask: expected delay >= 0, got -1"),
    (lambda: CopyTask(symbols=0), ValueError, "CopyTask: expected symbols >= 1, got 0"),
    (lambda: SunspotsTask(test_fraction=0.0), ValueError, "SunspotsTask: expected 0 < test_fraction < 1, got 0.0"),
    (lambda: SunspotsTask(validation_fraction=0.5, test_fraction=0.5), ValueError,
     "SunspotsTask: expected validation_fraction + test_fraction < 1, got 0.5 + 0.5"),
    (lambda: AddingTask().batch(np.random.default_rng(0), 0), ValueError,
     "AddingTask.batch: expected size >= 1, got 0"),
    (lambda: CopyTask().batch(np.random.default_rng(0), 2, np.int32), TypeError,
     "CopyTask.batch: expected dtype float32 or float64, got int32"),
    (lambda: AddingTask(seq_len=5).loss(np.zeros((5, 3, 1)), np.zeros((1, 4, 1))), ValueError,
     "AddingTask.loss: expected pred of shape (*, 4, 1), got (5, 3, 1)"),
    (lambda: CopyTask(length=2, delay=1).loss(np.zeros((6, 3, 8)), np.zeros((7, 3), dtype=int)), ValueError,
     "CopyTask.loss: expected target of shape (6, *), got (7, 3)"),
    (lambda: CopyTask(length=2, delay=1).loss(np.zeros((6, 3, 5)), np.zeros((6, 3), dtype=int)), ValueError,
     "CopyTask.loss: expected pred of shape (6, 3, 8), got (6, 3, 5)"),
    (lambda: SunspotsTask().loss(np.zeros((4, 2, 1)), np.full((4, 2, 1), np.nan)), ValueError,
     "SunspotsTask.loss: expected at least one scored (not NaN) target, got none"),
])
def test_bad_task_settings_and_inputs_raise(make, error, message):
    with pytest.raises(error, match=esc(message)):
        make()


def test_sunspots_too_long_windows_raise(raw_sunspots):
    with pytest.raises(ValueError, match=esc("a training part of at least seq_len + 1 = 301 values, got 217")):
        SunspotsTask(seq_len=300).batch(np.random.default_rng(0), 1)
