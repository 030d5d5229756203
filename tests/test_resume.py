"""Stopping a run and continuing it gives the uninterrupted run bitwise: weights, best weights, history,
optimizer buffers and metrics, through ``fit`` and through ``bptt train --resume``."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from bptt.cli import main
from bptt.interop.io import load_arrays
from bptt.layers.models import SequenceRegressor
from bptt.train.fit import TrainConfig, check_resume, fit, load_train_state, save_train_state
from bptt.train.tasks.sine import SineTask

SEED = 4
BASE = TrainConfig(steps=80, batch_size=8, eval_every=10)
CASES = {  # config, model options, seed
    "adam with cosine decay": (BASE, {}, SEED),
    "tbptt": (dataclasses.replace(BASE, tbptt=7), {}, SEED),
    "sgd with momentum": (dataclasses.replace(BASE, optimizer="sgd", lr=0.05, momentum=0.9), {}, SEED),
    "rmsprop with momentum": (dataclasses.replace(BASE, optimizer="rmsprop", lr=3e-3, momentum=0.5), {}, SEED),
    "dropout between two layers": (BASE, {"num_layers": 2, "dropout": 0.3}, SEED),
    "patience running at the stop": (dataclasses.replace(BASE, eval_every=2, lr=0.2, final_lr=0.2, patience=3), {}, 7),
}


def small_model(num_layers=1, dropout=0.0, seed=SEED):
    model = SequenceRegressor(1, 8, 1, num_layers, rng=np.random.default_rng(seed))
    model.rnn.dropout = dropout  # the model owns the generator of the masks: a resume must restore it
    return model


def train(config, model_options, seed=SEED, resume=None):
    """Run ``fit`` and keep every train state it hands out, by step."""
    model, states = small_model(**model_options, seed=seed), {}
    history = fit(model, SineTask(seq_len=21), config, seed, on_checkpoint=lambda s: states.update({s.step: s}),
                  resume=resume)
    return model, history, states


def assert_same_arrays(actual, expected):
    assert sorted(actual) == sorted(expected)
    for name, value in expected.items():
        np.testing.assert_array_equal(actual[name], value, err_msg=name)
        assert actual[name].dtype == value.dtype, name


def assert_same_run(resumed, uninterrupted):
    (model, history, states), (model_ref, history_ref, states_ref) = resumed, uninterrupted
    assert history == history_ref
    assert_same_arrays(model.params, model_ref.params)  # the best weights, which fit leaves in the model
    last, last_ref = states[max(states)], states_ref[max(states_ref)]
    assert last.step == last_ref.step == history_ref.step[-1]
    assert_same_arrays(last.params, last_ref.params)  # the final weights
    assert last.optimizer.keys() == last_ref.optimizer.keys()
    for key, value in last_ref.optimizer.items():
        if isinstance(value, dict):
            assert_same_arrays(last.optimizer[key], value)
        else:
            assert last.optimizer[key] == value
    assert last.rngs == last_ref.rngs


@pytest.mark.parametrize("case", CASES)
def test_resuming_after_40_of_80_steps_equals_the_uninterrupted_run_bitwise(case, tmp_path):
    config, model_options, seed = CASES[case]
    uninterrupted = train(config, model_options, seed)
    halfway = uninterrupted[2][40]  # taken during the run, so a state that aliased live arrays would show here
    assert halfway.step == 40 and len(halfway.history.step) == 40
    assert_same_run(train(config, model_options, seed, resume=halfway), uninterrupted)
    path = save_train_state(tmp_path / "train_state.safetensors", halfway)
    assert_same_run(train(config, model_options, seed, resume=load_train_state(path)[0]), uninterrupted)


def test_the_cases_exercise_what_they_name():
    """The dropout case draws masks from the model's generator (another generator state changes the run);
    the patience case has a running count at step 40, its best step before and its early stop after."""
    config, options, seed = CASES["dropout between two layers"]
    reference = train(config, options, seed)
    halfway = reference[2][40]
    halfway.rngs["model.rnn.rng"] = np.random.default_rng(99).bit_generator.state
    resumed_model = train(config, options, seed, resume=halfway)[0]
    assert not np.array_equal(resumed_model.params["rnn.weight_hh_l0"], reference[0].params["rnn.weight_hh_l0"])
    history, states = train(*CASES["patience running at the stop"])[1:]
    assert states[40].evaluations_without_gain >= 1 and history.best_step < 40 < history.stopped_early_at < 80


def test_a_run_of_40_steps_with_constant_lr_extends_to_the_run_of_80():
    config = dataclasses.replace(BASE, lr=0.01, final_lr=0.01)
    first_half = train(dataclasses.replace(config, steps=40), {})
    assert_same_run(train(config, {}, resume=first_half[2][40]), train(config, {}))


def test_a_run_that_stopped_early_resumes_to_the_same_end():
    config = dataclasses.replace(BASE, lr=0.5, final_lr=0.5, eval_every=2, patience=1)
    model, history, states = train(config, {})
    assert history.stopped_early_at is not None and history.stopped_early_at < 80
    again = train(config, {}, resume=states[history.stopped_early_at])
    assert again[2] == {}  # nothing left to train, so no new checkpoint
    assert again[1] == history
    assert_same_arrays(again[0].params, model.params)


@pytest.mark.parametrize("change, message", [
    ({"steps": 80}, r"lr 0\.0099961\d* at step 2 in a run of 80 steps, where the saved run of 40 used 0\.0099846"),
    ({"steps": 30}, "expected steps >= the 40 steps done, got 30"),
    ({"lr": 0.02}, r"expected the saved run's settings, got lr 0\.02 \(saved: 0\.01\)"),
    ({"seed": 5}, "expected the saved run's seed 4, got 5"),
])
def test_resume_refuses_settings_that_cannot_continue_the_run_bitwise(change, message):
    config = dataclasses.replace(BASE, steps=40)
    state = train(config, {})[2][40]
    settings = {key: value for key, value in change.items() if key != "seed"}
    with pytest.raises(ValueError, match=message):
        check_resume(state, dataclasses.replace(config, **settings), change.get("seed", SEED))


def test_resume_refuses_a_longer_run_that_would_not_evaluate_where_the_saved_one_did():
    config = dataclasses.replace(BASE, steps=45, lr=0.01, final_lr=0.01)
    states = train(config, {})[2]
    longer = dataclasses.replace(config, steps=80)
    with pytest.raises(ValueError, match="run of 80 steps that does not evaluate at step 45, where the saved run did"):
        fit(small_model(), SineTask(seq_len=21), longer, SEED, resume=states[45])
    check_resume(states[40], longer, SEED)  # the state before the 45-step run's own last step: accepted


# ---------------------------------------------------------------------------------------------------------
# bptt train --resume
# ---------------------------------------------------------------------------------------------------------

OPTIONS = ["--hidden-size", "8", "--batch-size", "8", "--eval-every", "10", "--lr", "0.01", "--final-lr", "0.01",
           "--seed", "2"]


def train_cli(capsys, out, *extra):
    code = main(["train", "sine", "--out", str(out), *extra])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_steps_40_then_80_with_resume_equals_80_uninterrupted(tmp_path, capsys):
    assert train_cli(capsys, tmp_path / "whole", "--steps", "80", *OPTIONS, "--json")[0] == 0
    assert train_cli(capsys, tmp_path / "split", "--steps", "40", *OPTIONS)[0] == 0
    code, stdout, _ = train_cli(capsys, tmp_path / "split", "--steps", "80", "--resume", "--json")
    assert code == 0
    assert "| resumed after step 40 |" in stdout.splitlines()[0]
    assert "step    30 |" not in stdout and "step    50 |" in stdout
    assert json.loads(stdout.splitlines()[-1])["steps"] == 80
    whole, split = tmp_path / "whole", tmp_path / "split"
    assert (split / "metrics.jsonl").read_bytes() == (whole / "metrics.jsonl").read_bytes()
    for name in ("model.safetensors", "train_state.safetensors"):  # best weights; final weights and the rest
        arrays, metadata = load_arrays(split / name)
        arrays_ref, metadata_ref = load_arrays(whole / name)
        assert_same_arrays(arrays, arrays_ref)
        assert metadata == metadata_ref, name
    state = load_train_state(split / "train_state.safetensors")[0]
    assert state.step == 80 and state.history.best_step == load_arrays(whole / "model.safetensors")[1]["step"]


@pytest.mark.parametrize("options, message", [
    (["--hidden-size", "16"], "got hidden_size 16 (saved: 8)"),
    (["--seed", "3", "--optimizer", "sgd"], "got seed 3 (saved: 2), optimizer 'sgd' (saved: 'adam')"),
    (["--final-lr", "0.001"], "got final_lr 0.001 (saved: 0.01)"),
    (["--dtype", "float32"], "got dtype 'float32' (saved: 'float64')"),
])
def test_cli_resume_refuses_options_that_contradict_the_saved_run(options, message, tmp_path, capsys):
    assert train_cli(capsys, tmp_path, "--steps", "10", *OPTIONS)[0] == 0
    code, stdout, stderr = train_cli(capsys, tmp_path, "--steps", "20", "--resume", *options)
    assert code == 2 and stdout == ""
    assert stderr.count("\n") == 1 and message in stderr and "train_state.safetensors" in stderr


def test_cli_resume_of_the_same_options_and_a_cosine_run_to_its_own_end(tmp_path, capsys):
    """The settings come from the saved run; repeating them is no contradiction, and a finished run resumed
    to its own steps is reproduced."""
    assert train_cli(capsys, tmp_path, "--steps", "20", "--hidden-size", "8", "--eval-every", "10")[0] == 0
    metrics = (tmp_path / "metrics.jsonl").read_bytes()
    code, stdout, _ = train_cli(capsys, tmp_path, "--resume", "--hidden-size", "8", "--eval-every", "10")
    assert code == 0 and "resumed after step 20" in stdout
    assert (tmp_path / "metrics.jsonl").read_bytes() == metrics
    code, _, stderr = train_cli(capsys, tmp_path, "--steps", "40", "--resume")
    assert code == 2 and "a cosine decay to final_lr < lr depends on steps" in stderr


def test_cli_resume_without_a_saved_run_exits_2(tmp_path, capsys):
    code, stdout, stderr = train_cli(capsys, tmp_path / "empty", "--resume")
    assert code == 2 and stdout == ""
    assert stderr == (f"bptt train: load_resumable: expected a train state at "
                      f"'{tmp_path / 'empty' / 'train_state.safetensors'}', found none. Start the run without "
                      "resuming.\n")


def test_a_model_generator_of_another_kind_is_saved_and_restored(tmp_path):
    """MT19937's state holds an array; the train state keeps it as a JSON list and restores it."""
    config = dataclasses.replace(BASE, steps=20)
    model = small_model(num_layers=2, dropout=0.3)
    model.rnn.rng = np.random.Generator(np.random.MT19937(3))
    states = {}
    fit(model, SineTask(seq_len=21), config, SEED, on_checkpoint=lambda s: states.update({s.step: s}))
    path = save_train_state(tmp_path / "train_state.safetensors", states[10])
    loaded, _ = load_train_state(path)
    restored = np.random.Generator(np.random.MT19937(0))
    restored.bit_generator.state = loaded.rngs["model.rnn.rng"]
    original = np.random.Generator(np.random.MT19937(0))
    original.bit_generator.state = states[10].rngs["model.rnn.rng"]
    np.testing.assert_array_equal(restored.random(5), original.random(5))
