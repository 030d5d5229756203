"""The dates task (bptt.train.tasks.dates): every format says the date its target names, held-out dates are
never drawn for training in any format, the splits are distinct, and the command line runs it."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pytest

from bptt.cli import main
from bptt.train.tasks.dates import FORMATS, DatesTask, written

PARSERS = {"{weekday} {d} {month} {Y}": "%A %d %B %Y", "{m}/{d}/{y}": "%m/%d/%y", "{month} {d}, {Y}": "%B %d, %Y",
           "{Y}.{mm}.{dd}": "%Y.%m.%d", "{dd}.{mm}.{Y}": "%d.%m.%Y", "{d} {mon} {Y}": "%d %b %Y",
           "{mon} {d} {Y}": "%b %d %Y", "{wkd}, {d} {mon} {Y}": "%a, %d %b %Y", "{mm}/{dd}/{Y}": "%m/%d/%Y",
           "{d} {month} {Y}": "%d %B %Y"}


@pytest.mark.parametrize("layout", FORMATS)
def test_every_format_says_its_date(layout):
    for date in (dt.date(1987, 3, 3), dt.date(2049, 12, 31), dt.date(1950, 1, 1), dt.date(2000, 2, 29)):
        text = written(date, layout)
        assert text == text.lower()
        parsed = dt.datetime.strptime(text, PARSERS[layout]).date()
        assert parsed == date or (layout == "{m}/{d}/{y}" and parsed.replace(year=parsed.year - 100) == date)


def test_the_example_of_the_issue():
    assert written(dt.date(1987, 3, 3), FORMATS[0]) == "tuesday 3 march 1987"
    assert written(dt.date(1987, 3, 3), FORMATS[1]) == "3/3/87"


def test_training_never_draws_a_held_out_date_and_the_splits_are_distinct():
    task = DatesTask(seed=2)
    held_out = {target for split in ("validation", "test") for _, target in task.problems[split]}
    assert len(task.problems["validation"]) == 1_000 and len(task.problems["test"]) == 2_000
    assert len(held_out) == 3_000
    drawn = {target for _, target in task.problems_for_training(np.random.default_rng(0), 20_000)}
    assert not drawn & held_out and len(drawn) > 10_000
    assert all(task.is_held_out(dt.date.fromisoformat(target).toordinal()) for target in held_out)
    assert DatesTask(seed=2).problems == task.problems != DatesTask(seed=3).problems


def test_bptt_train_dates_runs_and_reports(tmp_path, capsys):
    assert main(["train", "dates", "--steps", "2", "--batch-size", "8", "--eval-every", "1", "--hidden-size", "8",
                 "--out", str(tmp_path), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["task"] == "dates" and summary["sequences_seen"] == 16 and 0 <= summary["test_accuracy"] <= 1
    assert (tmp_path / "attention.png").is_file()
