"""Crashes never cost a readable checkpoint: atomic writes, SIGKILL at random moments, a run that diverges or
goes non-finite, a corrupt train state."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from runs import assert_same_run_files

import bptt.interop.io
from bptt import load
from bptt.cli import main
from bptt.interop.io import atomic_write_bytes, remove_interrupted_writes
from bptt.train.experiment import TASKS
from bptt.train.fit import load_train_state
from bptt.train.tasks.sine import SineTask

# ---------------------------------------------------------------------------------------------------------
# atomic_write_bytes
# ---------------------------------------------------------------------------------------------------------


class DiskFull(OSError):
    pass


def fail(*args):
    raise DiskFull("no space left on device")


def interrupt(*args):
    raise KeyboardInterrupt


@pytest.mark.parametrize("where, failure", [("fsync", fail), ("replace", fail), ("fsync", interrupt)])
def test_a_failed_write_leaves_the_old_file_and_no_temporary_file(where, failure, tmp_path, monkeypatch):
    target = tmp_path / "model.safetensors"
    target.write_bytes(b"old checkpoint")
    monkeypatch.setattr(bptt.interop.io.os, where, failure)
    with pytest.raises((DiskFull, KeyboardInterrupt)):
        atomic_write_bytes(target, b"new checkpoint" * 1000)
    assert target.read_bytes() == b"old checkpoint"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors"]


def test_a_write_in_progress_never_shows_in_the_target(tmp_path, monkeypatch):
    """At the moment of the flush the new bytes sit in a temporary file of the same folder, the target still
    holds the old ones; afterwards the target holds exactly the new ones."""
    target = tmp_path / "state.bin"
    target.write_bytes(b"old")
    seen = {}
    flush = os.fsync

    def look_then_flush(descriptor):
        seen.setdefault("target", target.read_bytes())
        seen.setdefault("others", sorted(p.name for p in tmp_path.iterdir() if p != target))
        flush(descriptor)

    monkeypatch.setattr(bptt.interop.io.os, "fsync", look_then_flush)
    atomic_write_bytes(target, b"new")
    assert seen["target"] == b"old" and len(seen["others"]) == 1 and seen["others"][0].startswith(".state.bin.")
    assert target.read_bytes() == b"new" and sorted(tmp_path.iterdir()) == [target]


def test_leftovers_of_killed_writes_are_removed_for_their_target_only(tmp_path):
    names = [".model.safetensors.a1b2.tmp", ".model.safetensors.zz.tmp", ".other.safetensors.a1b2.tmp",
             "model.safetensors", ".model.safetensors.a1b2.txt"]
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    removed = remove_interrupted_writes(tmp_path / "model.safetensors")
    assert [p.name for p in removed] == names[:2]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names[2:])


# ---------------------------------------------------------------------------------------------------------
# SIGKILL at random moments, then --resume
# ---------------------------------------------------------------------------------------------------------

# A run far longer than the test, at a constant learning rate, so that every kill lands in a running process
# and the run can afterwards be finished at the step it reached (a longer --steps then changes no lr).
RUN = ["sine", "--hidden-size", "4", "--batch-size", "4", "--eval-every", "1", "--lr", "0.01", "--final-lr", "0.01",
       "--seed", "1"]
KILLS = 20


def bptt_train(out: Path, steps: int, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "bptt", "train", *RUN, "--steps", str(steps), "--out", str(out),
                             *extra], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def started(process: subprocess.Popen) -> str:
    """The output of ``process`` up to its first evaluation line (its train state is written by then). Loading
    the compiled kernels before the first step takes 1-3 s on a loaded machine, longer than most kill moments:
    counted from the process's start, the kills would all land before any step and the run would never move."""
    lines = []
    while not lines or not lines[-1].startswith("step "):
        line = process.stdout.readline()
        assert line, "".join(lines)           # the process ended before its first evaluation
        lines.append(line)
    return "".join(lines)


def reported_steps(output: str) -> list[int]:
    """The steps whose evaluation line the run printed (after writing their train state)."""
    return [int(line.split("|")[0].split()[1]) for line in output.splitlines() if line.startswith("step ")]


def test_sigkill_at_20_random_moments_leaves_loadable_checkpoints_and_resumes_bitwise(tmp_path):
    out, moments = tmp_path / "killed", np.random.default_rng(20240611).uniform(0.1, 1.8, size=KILLS)
    done, log = 0, []
    for moment in moments:
        resume = ["--resume"] if (out / "train_state.safetensors").exists() else []
        process = bptt_train(out, 100_000, *resume)
        header = started(process)     # the moment counts from the first evaluation, not from the imports
        time.sleep(moment)
        process.send_signal(signal.SIGKILL)
        output = header + process.communicate(timeout=60)[0]
        assert process.returncode == -signal.SIGKILL and "Traceback" not in output, output
        reported = reported_steps(output)
        if reported:  # an evaluation happened: both files must be there
            assert (out / "model.safetensors").exists() and (out / "train_state.safetensors").exists()
        if (out / "model.safetensors").exists():
            model = load(out / "model.safetensors")
            assert all(np.isfinite(value).all() for value in model.params.values())
        if (out / "train_state.safetensors").exists():
            state = load_train_state(out / "train_state.safetensors")[0]
            assert state.step >= max(reported, default=0) and state.step >= done  # no reported step is lost
            done = state.step
        log.append(f"killed after {moment:.2f} s{' (resumed)' if resume else ''}: train state at step {done}")
    leftovers = sorted(p.name for p in out.iterdir() if p.suffix == ".tmp")  # from kills in the middle of a write
    print("\n".join(log), f"\ntemporary files left by the kills before the last run: {leftovers}")
    assert done > 0
    end = done + 5
    for process in (bptt_train(out, end, "--resume"), bptt_train(tmp_path / "whole", end)):  # and uninterrupted
        output = process.communicate(timeout=300)[0]
        assert process.returncode == 0, output
    assert not [p for p in out.iterdir() if p.suffix == ".tmp"]  # the last run cleared what the kills left
    assert_same_run_files(out, tmp_path / "whole")


# ---------------------------------------------------------------------------------------------------------
# Divergence and non-finite values: one line, the step, no traceback, the last good checkpoint
# ---------------------------------------------------------------------------------------------------------


def test_lr_1e6_stops_with_one_line_naming_the_step_and_keeps_a_finite_checkpoint(tmp_path):
    result = subprocess.run([sys.executable, "-m", "bptt", "train", "sine", "--lr", "1e6", "--hidden-size", "8",
                             "--eval-every", "1", "--out", str(tmp_path)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 1
    output = result.stdout + result.stderr
    assert "Traceback" not in output
    stopped = [line for line in output.splitlines() if "training stopped" in line]
    assert stopped == [line for line in result.stderr.splitlines() if line]  # the one line, alone on stderr
    assert len(stopped) == 1
    assert stopped[0].startswith("bptt train: training stopped at step 2: non-finite or diverging loss: ")
    assert "Lower the learning rate (--lr)" in stopped[0]
    model = load(tmp_path / "model.safetensors")  # step 1's evaluation was the last good one
    assert all(np.isfinite(value).all() for value in model.params.values())
    assert load_train_state(tmp_path / "train_state.safetensors")[0].step == 1


class GoesNonFinite(SineTask):
    """The sine task, whose validation loss (``what="validation"``) or training loss (``"training"``) is NaN
    from the ``after``-th call on."""

    def __init__(self, what, after):
        super().__init__(seq_len=12)
        object.__setattr__(self, "plan", {"what": what, "after": after, "calls": 0})

    def loss(self, pred, target, start=0):
        value, dpred = super().loss(pred, target, start)
        validation = pred.shape[1] == self.held_out_size
        if validation == (self.plan["what"] == "validation"):
            self.plan["calls"] += 1
            if self.plan["calls"] >= self.plan["after"]:
                return float("nan"), dpred
        return value, dpred


@pytest.mark.parametrize("what, after, message", [
    ("validation", 3, "bptt train: training stopped at step 6: non-finite validation loss (nan)."),
    ("training", 5, "bptt train: training stopped at step 5: non-finite loss (nan) or gradient norm"),
])
def test_non_finite_losses_stop_with_one_line_and_keep_the_last_good_checkpoint(what, after, message, tmp_path,
                                                                               capsys, monkeypatch):
    monkeypatch.setitem(TASKS, "sine", lambda: GoesNonFinite(what, after))
    code = main(["train", "sine", "--steps", "20", "--hidden-size", "4", "--eval-every", "2", "--out", str(tmp_path)])
    captured = capsys.readouterr()
    assert code == 1
    lines = [line for line in (captured.out + captured.err).splitlines() if "non-finite" in line]
    assert len(lines) == 1 and lines[0].startswith(message) and captured.err == lines[0] + "\n"
    state = load_train_state(tmp_path / "train_state.safetensors")[0]
    assert state.step == 4 and all(np.isfinite(v).all() for v in state.params.values())
    assert load(tmp_path / "model.safetensors").params.keys() == state.params.keys()


# ---------------------------------------------------------------------------------------------------------
# A corrupt or truncated train state
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["truncated", "garbage", "a model file"])
def test_resume_from_a_damaged_train_state_exits_2_with_one_line_naming_it(damage, tmp_path, capsys):
    argv = ["train", "sine", "--steps", "4", "--hidden-size", "4", "--eval-every", "2", "--out", str(tmp_path)]
    assert main(argv) == 0
    path = tmp_path / "train_state.safetensors"
    data = path.read_bytes()
    path.write_bytes({"truncated": data[:len(data) // 2], "garbage": b"\x07" * 64,
                      "a model file": (tmp_path / "model.safetensors").read_bytes()}[damage])
    capsys.readouterr()
    assert main([*argv, "--resume"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and captured.err.startswith("bptt train: ")
    assert repr(str(path)) in captured.err
