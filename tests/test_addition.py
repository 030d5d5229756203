"""The addition task (bptt.train.tasks.addition) and what the sequence-to-sequence tasks share: problems as
Keras draws them, held-out problems never drawn for training (in either order), the encodings, the loss that
skips padding, exact-match accuracy, and the command line."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bptt.cli import main
from bptt.layers.seq2seq import Seq2Seq
from bptt.train.losses import cross_entropy
from bptt.train.tasks._seq2seq import BOS, EOS
from bptt.train.tasks.addition import AdditionTask


def test_problems_are_sums_and_reverse_reads_them_backwards():
    task, backwards = AdditionTask(digits=2, seed=1), AdditionTask(digits=2, reverse=True, seed=1)
    for source, target in task.problems["test"][:50]:
        a, b = source.split("+")
        assert int(a) + int(b) == int(target) and len(a) <= 2 and len(b) <= 2
    assert [s[::-1] for s, _ in task.problems["test"]] == [s for s, _ in backwards.problems["test"]]


def test_training_never_draws_a_held_out_problem_in_either_order():
    task = AdditionTask(digits=2, seed=0)
    held_out = {tuple(map(int, s.split("+"))) for split in ("validation", "test") for s, _ in task.problems[split]}
    assert len(task.problems["validation"]) + len(task.problems["test"]) == len(held_out) > 200
    rng = np.random.default_rng(0)
    drawn = {tuple(map(int, task.problem(rng)[0].split("+"))) for _ in range(20_000)}
    assert not drawn & (held_out | {(b, a) for a, b in held_out})
    assert len(drawn) > 3_000                                       # the rest of the problems are drawn
    small = [s for s, _ in task.problems["test"] if len(s) == 3]    # sums of two one-digit numbers
    assert small and all(task.is_held_out(*map(int, s.split("+"))) for s in small)


def test_the_held_out_problems_depend_on_the_seed_and_nothing_else():
    assert AdditionTask(seed=3).problems == AdditionTask(seed=3).problems != AdditionTask(seed=4).problems
    assert len(AdditionTask().problems["test"]) == 2_000 and len(AdditionTask().problems["validation"]) == 1_000


def test_encodings_pad_with_zero_and_frame_the_target():
    task = AdditionTask()
    (source, lengths, target_in), target_out = task.batch_of([("535+61", "596"), ("1+2", "3")])
    assert source.shape == (6, 2) and lengths.tolist() == [6, 3] and (source[3:, 1] == 0).all()
    assert target_in[:, 0].tolist() == [BOS, 8, 12, 9] and target_out[:, 0].tolist() == [8, 12, 9, EOS]
    assert target_in[:, 1].tolist() == [BOS, 6, 0, 0] and target_out[:, 1].tolist() == [6, EOS, 0, 0]
    assert task.decode_target([8, 12, 9, EOS]) == "596"
    with pytest.raises(ValueError, match=r"expected a source of the characters '0123456789\+', got '1-2' with '-'"):
        task.encode_sources(["1-2"])


def test_the_loss_skips_padding():
    task = AdditionTask()
    batch, target_out = task.batch_of([("535+61", "596"), ("1+2", "3")])
    logits = np.random.default_rng(0).standard_normal((*target_out.shape, task.output_size))
    loss, dlogits = task.loss(logits, target_out)
    assert loss == pytest.approx(cross_entropy(logits[target_out > 0], target_out[target_out > 0])[0], rel=1e-12)
    assert not dlogits[target_out == 0].any()


class _Oracle(Seq2Seq):
    """A stand-in that answers every problem but the first correctly, by looking the answer up."""

    def __init__(self, task, answers):
        super().__init__(task.input_size, task.output_size, 2, 2, rng=0)
        self.answers = answers

    def decode(self, source, source_lengths, **options):
        from bptt.layers.decoding import Decoded

        return [Decoded(tokens, np.zeros((len(tokens), 1)), 0.0) for tokens in self.answers]


def test_accuracy_is_the_share_of_exact_answers():
    task = AdditionTask(digits=1, seed=0)
    data = task.held_out("test")
    truth = [[int(t) for t in column[:np.flatnonzero(column == EOS)[0]]] for column in data[1].T]
    answers = [[3] + t for t in truth[:1]] + truth[1:]              # the first has one digit too many
    metrics = task.metrics(_Oracle(task, answers), data)
    assert metrics == {"test_accuracy": (len(truth) - 1) / len(truth), "test_problems": len(truth)}


def test_bptt_train_addition_runs_and_reports(tmp_path, capsys):
    assert main(["train", "addition", "--digits", "2", "--reverse", "--steps", "4", "--batch-size", "8",
                 "--eval-every", "2", "--hidden-size", "8", "--out", str(tmp_path), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["task_options"] == {"digits": 2, "reverse": True}
    assert summary["sequences_seen"] == 32 and 0 <= summary["test_accuracy"] <= 1 and summary["steps"] == 4
    assert (tmp_path / "model.safetensors").is_file()
