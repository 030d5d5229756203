"""The sine task's data, its masked loss, and training to the promised accuracy."""

import numpy as np
import pytest

from bptt.check.gradcheck import gradcheck
from bptt.layers.models import SequenceRegressor
from bptt.train.fit import TrainConfig, fit
from bptt.train.tasks.sine import SineTask


def test_targets_are_the_next_inputs_without_wrap_around():
    task = SineTask(seq_len=30, period=10.0)
    x, y = task.sample(np.random.default_rng(0), 4)
    assert x.shape == y.shape == (30, 4, 1)
    np.testing.assert_array_equal(x[1:], y[:-1])
    phase = np.arcsin(x[0, :, 0])  # only used to rebuild the wave; x[0] = sin(phase) up to the branch
    assert np.all(np.abs(phase) <= np.pi / 2)
    # The last target continues the wave: it is not the first input again (np.roll would make it so).
    k = np.arange(31)[:, None]
    for n in range(4):
        candidates = [np.sin(2 * np.pi * k / 10.0 + p) for p in (phase[n], np.pi - phase[n])]
        wave = next(c for c in candidates if np.allclose(c[:30, 0], x[:, n, 0]))
        assert y[-1, n, 0] == pytest.approx(wave[30, 0], abs=1e-12)


def test_loss_ignores_the_warm_up_and_its_gradient_is_right():
    task = SineTask(seq_len=12, warmup=4)
    rng = np.random.default_rng(1)
    x, y = task.sample(rng, 3)
    pred = rng.normal(size=y.shape)
    loss, dpred = task.loss(pred, y)
    assert loss == pytest.approx(np.mean((pred[4:] - y[4:]) ** 2))
    assert not dpred[:4].any()
    report = gradcheck(lambda p: task.loss(p["pred"], y)[0], {"pred": pred}, {"pred": dpred})
    assert report.ok, str(report)


def test_model_gradients_through_the_task_loss():
    task = SineTask(seq_len=8, warmup=2)
    model = SequenceRegressor(1, 5, 1, rng=2)
    x, y = task.sample(np.random.default_rng(2), 3)

    def f(_):
        return task.loss(model(x), y)[0]

    loss, dpred = task.loss(model(x), y)
    model.zero_grad()
    model.backward(dpred)
    assert gradcheck(f, model.params, model.grads, loss=loss).ok


def test_default_training_reaches_the_target_for_one_seed():
    """The promise of `bptt train sine`: test MSE < 1e-4 with the defaults (the sweep over seeds is in
    benchmarks/sine_seeds.py; one seed here keeps the suite fast)."""
    model = SequenceRegressor(1, 32, 1, rng=np.random.default_rng(7))
    history = fit(model, SineTask(), TrainConfig(), seed=7)
    assert history.val_loss[-1] < 1e-4


def test_training_is_deterministic_for_a_seed():
    config = TrainConfig(steps=15, eval_every=5)
    runs = []
    for _ in range(2):
        model = SequenceRegressor(1, 4, 1, rng=np.random.default_rng(5))
        runs.append((fit(model, SineTask(), config, seed=5).loss, model.state_dict()))
    assert runs[0][0] == runs[1][0]
    for key in runs[0][1]:
        np.testing.assert_array_equal(runs[0][1][key], runs[1][1][key])


@pytest.mark.parametrize("field, value, message", [
    ("steps", 0, "expected steps to be an int >= 1, got 0"),
    ("lr", float("nan"), "expected lr > 0, got nan"),
    ("final_lr", 1.0, "expected 0 <= final_lr <= lr, got final_lr=1.0"),
])
def test_bad_train_config_raises(field, value, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**{field: value})
