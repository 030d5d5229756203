"""Ctrl-C and SIGTERM stop a run at a step boundary, write its train state, say how to resume, and exit
130 / 143 without a traceback; the resumed run equals the uninterrupted one bitwise. --save-every writes
the train state between evaluations."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
from runs import assert_same_run_files

from bptt.layers.models import SequenceRegressor
from bptt.train.fit import TrainConfig, TrainingInterrupted, fit
from bptt.train.tasks.sine import SineTask

RUN = ["--steps", "2000", "--hidden-size", "8", "--eval-every", "50", "--final-lr", "0.01"]


def bptt_train(out, *extra) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "bptt", "train", "sine", "--out", str(out), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


@pytest.mark.parametrize(("signum", "code", "twice"), [(signal.SIGINT, 130, False), (signal.SIGTERM, 143, False),
                                                       (signal.SIGINT, 130, True)])
def test_a_signal_stops_at_a_step_boundary_and_the_resumed_run_is_bitwise_the_whole(tmp_path, signum, code, twice):
    out = tmp_path / "stopped"
    process = bptt_train(out, *RUN)
    for line in process.stdout:
        if line.startswith("step "):                        # the first evaluation is written
            process.send_signal(signum)
            if twice:                                        # a second Ctrl-C while it stops changes nothing
                process.send_signal(signum)
            break
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == code, stderr
    assert "Traceback" not in stdout + stderr
    name = signal.Signals(signum).name
    assert f"bptt train: stopped by {name} after step " in stderr
    assert f"resume with: bptt train sine --out {out} --resume" in stderr
    resumed = subprocess.run([sys.executable, "-m", "bptt", "train", "sine", "--out", str(out), "--resume"],
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    whole = bptt_train(tmp_path / "whole", *RUN)
    whole.communicate(timeout=300)
    assert whole.returncode == 0
    assert_same_run_files(out, tmp_path / "whole")


def test_save_every_hands_over_the_train_state_between_evaluations_too():
    steps = []
    model = SequenceRegressor(1, 4, 1, rng=0)
    fit(model, SineTask(), TrainConfig(steps=20, eval_every=100), 0, checkpoint_every=7,
        on_checkpoint=lambda state: steps.append(state.step))
    assert steps == [7, 14, 20]                              # 20: the evaluation every run makes at its end


def test_should_stop_ends_fit_after_the_step_with_its_state():
    states, asked = [], []
    model = SequenceRegressor(1, 4, 1, rng=0)

    def should_stop() -> bool:
        asked.append(True)
        return len(asked) == 3

    with pytest.raises(TrainingInterrupted) as stopped:
        fit(model, SineTask(), TrainConfig(steps=20, eval_every=100), 0, should_stop=should_stop,
            on_checkpoint=states.append)
    assert stopped.value.step == 3 and [s.step for s in states] == [3] and states[0].history.step == [1, 2, 3]
