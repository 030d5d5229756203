"""One run per folder: a second bptt train or sweep into a folder where a run is alive is refused with that
run's PID; a lock left by a dead process is taken over, saying so."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from bptt.cli import main
from bptt.train.runlock import LOCK_NAME, FolderInUse, RunLock


@pytest.fixture
def live_pid():
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield process.pid
    process.kill()
    process.wait()


@pytest.fixture
def dead_pid():
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_lock_is_written_with_this_pid_and_removed_after(tmp_path):
    with RunLock(tmp_path) as lock:
        assert (tmp_path / LOCK_NAME).read_text() == f"{os.getpid()}\n" and lock.took_over is None
    assert not (tmp_path / LOCK_NAME).exists()


def test_a_second_lock_on_a_folder_held_by_a_live_process_is_refused_with_its_pid(tmp_path, live_pid):
    (tmp_path / LOCK_NAME).write_text(f"{live_pid}\n")
    with pytest.raises(FolderInUse, match=rf"in use by another run \(PID {live_pid}\)"), RunLock(tmp_path):
        pass
    assert (tmp_path / LOCK_NAME).read_text() == f"{live_pid}\n"        # the holder's lock is untouched


def test_the_lock_of_a_dead_process_is_taken_over(tmp_path, dead_pid):
    (tmp_path / LOCK_NAME).write_text(f"{dead_pid}\n")
    with RunLock(tmp_path) as lock:
        assert lock.took_over == dead_pid
        assert (tmp_path / LOCK_NAME).read_text() == f"{os.getpid()}\n"


def test_a_fresh_lock_without_a_pid_is_one_being_written_and_is_respected(tmp_path):
    (tmp_path / LOCK_NAME).write_text("")
    with pytest.raises(FolderInUse, match="being taken by another run"), RunLock(tmp_path):
        pass


@pytest.mark.parametrize("verb", ["train", "sweep"])
def test_the_cli_refuses_a_folder_in_use_with_exit_2_and_writes_nothing(tmp_path, live_pid, capsys, verb):
    (tmp_path / LOCK_NAME).write_text(f"{live_pid}\n")
    extra = ["--seeds", "1"] if verb == "sweep" else []
    assert main([verb, "sine", "--steps", "2", "--out", str(tmp_path), *extra]) == 2
    captured = capsys.readouterr()
    assert f"bptt {verb}: {tmp_path} is in use by another run (PID {live_pid})" in captured.err
    assert sorted(p.name for p in tmp_path.iterdir()) == [LOCK_NAME]


def test_the_cli_takes_over_a_dead_run_s_lock_and_says_so(tmp_path, dead_pid, capsys):
    (tmp_path / LOCK_NAME).write_text(f"{dead_pid}\n")
    assert main(["train", "sine", "--steps", "2", "--hidden-size", "4", "--out", str(tmp_path)]) == 0
    assert f"took over the lock of {tmp_path} from PID {dead_pid}, which no longer runs" in capsys.readouterr().err
    assert (tmp_path / "model.safetensors").exists() and not (tmp_path / LOCK_NAME).exists()
