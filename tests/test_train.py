"""The trainer: truncated BPTT, validation and the kept weights, early stopping, schedules, failures."""

import dataclasses

import numpy as np
import pytest

from bptt.layers.models import SequenceRegressor
from bptt.train.fit import DivergenceError, NonFiniteError, TrainConfig, data_streams, fit, model_generators
from bptt.train.optim import Adam, clip_grad_norm
from bptt.train.tasks.adding import AddingTask
from bptt.train.tasks.sine import SineTask


def small_model(seed=0, cell="lstm"):
    return SequenceRegressor(1, 6, 1, cell=cell, rng=np.random.default_rng(seed))


def test_tbptt_carries_the_state_and_stops_the_gradient_at_chunk_borders():
    """One training step with tbptt=4 on 10-step sequences equals, by hand: chunk [0,4) from zeros,
    chunk [4,8) from the state chunk 1 ended in, chunk [8,10) likewise, each with its own backward
    (no gradient into the carried state), clipping and Adam step."""
    task = SineTask(seq_len=10, warmup=2)
    config = TrainConfig(steps=1, batch_size=3, lr=0.05, final_lr=0.05, tbptt=4, eval_every=1)
    model = small_model(1)
    fit(model, task, config, seed=3)

    reference = small_model(1)
    optimizer = Adam(reference.params, reference.grads, lr=0.05)
    x, y = task.batch(data_streams(3)["train"], 3, np.float64)
    state = None
    for start in (0, 4, 8):
        pred = reference(x[start:start + 4], state)
        state = reference.final_state
        _, dpred = task.loss(pred, y[start:start + 4], start=start)
        reference.zero_grad()
        reference.backward(dpred)
        clip_grad_norm(reference.grads, config.clip_norm)
        optimizer.step()
    for name, value in reference.params.items():
        np.testing.assert_array_equal(model.params[name], value, err_msg=name)


def test_tbptt_of_the_whole_length_is_plain_bptt():
    task = SineTask(seq_len=12)
    plain, chunked = small_model(2), small_model(2)
    config = TrainConfig(steps=4, batch_size=4, eval_every=2)
    fit(plain, task, config, seed=1)
    fit(chunked, task, dataclasses.replace(config, tbptt=12), seed=1)
    for name, value in plain.params.items():
        np.testing.assert_array_equal(chunked.params[name], value, err_msg=name)


def test_tbptt_is_refused_for_a_task_scored_on_whole_sequences():
    with pytest.raises(ValueError, match="truncated BPTT needs a task whose loss is a sum over steps; 'adding'"):
        fit(SequenceRegressor(2, 4, 1, rng=0), AddingTask(seq_len=10), TrainConfig(steps=1, tbptt=5), seed=0)


class WorseningValidation(SineTask):
    """A sine task whose validation loss only ever gets worse after the first evaluation."""

    def __init__(self):
        super().__init__(seq_len=8)
        object.__setattr__(self, "_calls", [0])

    def loss(self, pred, target, start=0):
        value, dpred = super().loss(pred, target, start)
        if len(pred) and pred.shape[1] == self.held_out_size:  # the validation set
            self._calls[0] += 1
            return float(self._calls[0]), dpred
        return value, dpred


def test_early_stopping_and_the_best_weights_are_kept():
    task = WorseningValidation()
    model = small_model(4)
    kept = {}
    history = fit(model, task, TrainConfig(steps=50, batch_size=2, eval_every=5, patience=2), seed=0,
                  on_best=lambda step, h: kept.update(step=step, state=model.state_dict()))
    assert history.eval_step == [5, 10, 15]
    assert history.stopped_early_at == 15 and history.step[-1] == 15
    assert history.best_step == kept["step"] == 5
    for name, value in kept["state"].items():
        np.testing.assert_array_equal(model.params[name], value, err_msg=name)


def test_learning_rate_warms_up_linearly_then_decays_by_cosine():
    config = TrainConfig(steps=10, lr=1.0, final_lr=0.0, warmup_steps=4)
    assert [config.lr_at(s) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert config.lr_at(4) == pytest.approx(1.0)
    assert config.lr_at(7) == pytest.approx(0.5)
    history = fit(small_model(), SineTask(seq_len=8), dataclasses.replace(config, lr=0.01, eval_every=5), seed=0)
    assert history.lr[:4] == pytest.approx([0.0025, 0.005, 0.0075, 0.01])


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw", "rmsprop"])
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_every_optimizer_and_family_trains(optimizer, cell):
    lr = 0.1 if optimizer == "sgd" else 0.01
    model = small_model(5, cell)
    history = fit(model, SineTask(seq_len=20), TrainConfig(steps=40, batch_size=8, lr=lr, eval_every=20,
                                                          optimizer=optimizer), seed=5)
    assert history.val_loss[-1] < history.val_loss[0] or history.val_loss[-1] < 0.05


class NaNTask(SineTask):
    def loss(self, pred, target, start=0):
        value, dpred = super().loss(pred, target, start)
        return float("nan"), dpred


def test_a_non_finite_loss_stops_training_and_names_the_step():
    with pytest.raises(NonFiniteError, match="training stopped at step 1: non-finite loss"):
        fit(small_model(), NaNTask(seq_len=8), TrainConfig(steps=3), seed=0)


class NaNValidation(SineTask):
    def loss(self, pred, target, start=0):
        value, dpred = super().loss(pred, target, start)
        return (float("nan") if pred.shape[1] == self.held_out_size else value), dpred


def test_a_non_finite_validation_loss_stops_training_and_names_the_step():
    steps = []
    with pytest.raises(NonFiniteError, match=r"training stopped at step 3: non-finite validation loss \(nan\)"):
        fit(small_model(), NaNValidation(seq_len=8), TrainConfig(steps=9, eval_every=3), seed=0,
            on_step=lambda step, history: steps.append(step))
    assert steps == [1, 2]


def test_a_diverging_loss_stops_training_and_names_the_step():
    """Adam moves every weight by about lr per step, so lr=1e6 sends the loss from ~0.5 to ~1e10 in one
    step: finite in float64, but lost; the run stops at step 2 unless divergence_factor is None."""
    config = TrainConfig(steps=4, batch_size=4, lr=1e6, final_lr=1e6, eval_every=4)
    with pytest.raises(DivergenceError, match=r"training stopped at step 2: non-finite or diverging loss: \S+ is "
                                              r"more than 1e\+06 times step 1's \(0\.\d+\)"):
        fit(small_model(), SineTask(seq_len=8), config, seed=0)
    history = fit(small_model(), SineTask(seq_len=8), dataclasses.replace(config, divergence_factor=None), seed=0)
    assert history.loss[1] > 1e6 * history.loss[0]
    assert issubclass(NonFiniteError, DivergenceError)


def test_sgd_momentum_from_the_config_reaches_the_optimizer():
    """Two steps of SGD with momentum 0.9 differ from two without it (the buffer adds 0.9 g_1 to step 2)."""
    runs = {}
    for momentum in (0.0, 0.9):
        model = small_model(3)
        fit(model, SineTask(seq_len=8), TrainConfig(steps=2, batch_size=4, optimizer="sgd", lr=0.1, final_lr=0.1,
                                                    momentum=momentum), seed=0)
        runs[momentum] = model.params["head.weight"].copy()
    assert not np.array_equal(runs[0.0], runs[0.9])


def test_model_generators_finds_the_recurrent_layers_generator():
    model = small_model()
    assert model_generators(model) == {"rnn.rng": model.rnn.rng}


def test_keep_last_ends_with_the_last_weights_whatever_the_validation_says():
    """The validation loss worsens after the first evaluation: keep="best" ends with step 5's weights, keep="last"
    with the last step's, which are those of a run that never evaluated before its end."""
    task = WorseningValidation()
    kept = {}
    last = small_model(4)
    history = fit(last, task, TrainConfig(steps=20, batch_size=2, eval_every=5, keep="last"), seed=0,
                  on_best=lambda step, h: kept.setdefault("steps", []).append(step))
    assert history.best_step == 20 and kept["steps"] == [5, 10, 15, 20]
    once = small_model(4)
    fit(once, WorseningValidation(), TrainConfig(steps=20, batch_size=2, eval_every=20), seed=0)
    for name, value in once.params.items():
        np.testing.assert_array_equal(last.params[name], value, err_msg=name)


@pytest.mark.parametrize("field, value, message", [
    ("tbptt", 0, "expected tbptt to be None or an int >= 1, got 0"),
    ("patience", -1, "expected patience to be None or an int >= 1, got -1"),
    ("warmup_steps", -2, "expected warmup_steps to be an int >= 0, got -2"),
    ("optimizer", "lbfgs", "expected optimizer to be one of sgd, adam, adamw, rmsprop, got 'lbfgs'"),
    ("weight_decay", -0.1, "expected weight_decay >= 0, got -0.1"),
    ("momentum", 0.9, "expected momentum 0 with adam, got 0.9. Only sgd and rmsprop take a momentum."),
    ("momentum", float("nan"), "expected momentum >= 0, got nan"),
    ("divergence_factor", 1.0, "expected divergence_factor to be None or a number > 1, got 1.0"),
    ("keep", "first", "expected keep to be one of best, last, got 'first'"),
])
def test_bad_train_config_raises(field, value, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**{field: value})


def test_keep_last_takes_no_patience():
    with pytest.raises(ValueError, match="expected no patience with keep='last'"):
        TrainConfig(keep="last", patience=3)


# --- Experiments: the dtype and task options a run records --------------------------------------------------

def test_an_experiment_records_its_dtype_and_task_options_and_reads_them_back():
    from bptt.train.experiment import Experiment, resolve

    experiment = resolve("sine", 4, dtype="float32", steps=3)
    assert experiment.dtype == "float32" and experiment.task_options == {}
    assert Experiment.from_metadata(experiment.metadata()) == experiment
    older = {key: value for key, value in experiment.metadata().items() if key not in ("dtype", "task_options")}
    assert Experiment.from_metadata(older).dtype == "float64"   # files written before the field existed


def test_make_task_refuses_options_the_task_does_not_take():
    from bptt.train.experiment import make_task

    with pytest.raises(ValueError, match=r"expected options of the sine task from .*got \['pixels'\]"):
        make_task("sine", 0, pixels=True)
    with pytest.raises(ValueError, match="expected a task from"):
        make_task("nope")
