"""The digits task: its split, its sequences in both modes, its loss and metrics, and `bptt train digits`.

The data tests read the images straight from scikit-learn, independently of the task module; they are
skipped where scikit-learn is not installed.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest

from bptt.cli import main
from bptt.interop.io import load_arrays
from bptt.layers.models import SequenceClassifier
from bptt.train.experiment import make_task, resolve
from bptt.train.losses import cross_entropy
from bptt.train.tasks.digits import DigitsTask

SPLITS = ("train", "validation", "test")


@pytest.fixture(scope="module")
def raw():
    """The 1,797 images (8, 8) with values 0..16 and their labels, as scikit-learn ships them."""
    datasets = pytest.importorskip("sklearn.datasets")
    digits = datasets.load_digits()
    return digits.images, digits.target


def run_cli(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# ---------------------------------------------------------------------------------------------------------
# The split
# ---------------------------------------------------------------------------------------------------------

def test_split_is_disjoint_covers_every_image_and_is_stratified(raw):
    _, labels = raw
    task = DigitsTask(seed=0)
    parts = {name: task.indices(name) for name in SPLITS}
    every = np.concatenate(list(parts.values()))
    assert len(every) == len(labels) == 1797
    np.testing.assert_array_equal(np.sort(every), np.arange(1797))      # disjoint and complete
    per_class = np.bincount(labels, minlength=10)
    for name, fraction in (("test", 0.15), ("validation", 0.15)):
        counts = np.bincount(labels[parts[name]], minlength=10)
        np.testing.assert_array_equal(counts, np.round(per_class * fraction), err_msg=name)
    assert {name: len(indices) for name, indices in parts.items()} == {"train": 1259, "validation": 269, "test": 269}


def test_split_is_fixed_by_the_seed_and_differs_between_seeds(raw):
    first, again, other = DigitsTask(seed=1), DigitsTask(seed=1), DigitsTask(seed=2)
    for name in SPLITS:
        np.testing.assert_array_equal(first.indices(name), again.indices(name))
    assert not np.array_equal(first.indices("test"), other.indices("test"))
    assert make_task("digits", 2).indices("test").tolist() == other.indices("test").tolist()  # the run's seed
    assert make_task("digits", 2, pixels=True).indices("test").tolist() == other.indices("test").tolist()


# ---------------------------------------------------------------------------------------------------------
# Sequences
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_rows_and_pixels_read_the_scaled_images_in_order(raw, dtype):
    images, labels = raw
    rows, pixels = DigitsTask(), DigitsTask(pixels=True)
    test = rows.indices("test")
    x, y = rows.held_out("test", None, dtype)
    assert x.shape == (8, 269, 8) and x.dtype == dtype and y.shape == (269,) and np.issubdtype(y.dtype, np.integer)
    np.testing.assert_array_equal(y, labels[test])
    n = 5
    np.testing.assert_allclose(x[3, n], images[test[n], 3] / 16, rtol=1e-7)              # step 3 = row 3
    xp, yp = pixels.held_out("test", None, dtype)
    assert xp.shape == (64, 269, 1) and xp.dtype == dtype
    np.testing.assert_array_equal(yp, y)
    np.testing.assert_allclose(xp[8 * 3 + 6, n, 0], images[test[n], 3, 6] / 16, rtol=1e-7)  # row-major
    np.testing.assert_array_equal(xp[:, :, 0].reshape(8, 8, -1).transpose(0, 2, 1), x)
    assert 0 <= x.min() and x.max() == 1
    assert (rows.input_size, rows.seq_len, pixels.input_size, pixels.seq_len) == (8, 8, 1, 64)


def test_batches_draw_training_images_deterministically(raw):
    images, labels = raw
    task = DigitsTask(seed=3)
    x, y = task.batch(np.random.default_rng(7), 200)
    again = task.batch(np.random.default_rng(7), 200)
    other = task.batch(np.random.default_rng(8), 200)
    np.testing.assert_array_equal(x, again[0])
    assert not np.array_equal(x, other[0])
    assert x.shape == (8, 200, 8) and y.shape == (200,)
    train = task.indices("train")
    by_image = {images[i].tobytes(): labels[i] for i in train}
    for n in range(200):                      # every image is a training image, with its own label
        assert by_image[(x[:, n] * 16).tobytes()] == y[n]
    assert len(set(map(bytes, (x * 16).transpose(1, 0, 2)))) < 200          # drawn with replacement


def test_validation_and_test_are_the_whole_splits(raw):
    task = DigitsTask()
    for split in ("validation", "test"):
        _, y = task.held_out(split, np.random.default_rng(0))
        assert len(y) == len(task.indices(split))
        np.testing.assert_array_equal(task.held_out(split, np.random.default_rng(1))[1], y)   # rng unused
    with pytest.raises(ValueError, match=re.escape("DigitsTask.held_out: expected split to be one of 'validation', "
                                                   "'test', got 'train'.")):
        task.held_out("train", None)


# ---------------------------------------------------------------------------------------------------------
# Loss, metrics and the model
# ---------------------------------------------------------------------------------------------------------

def test_loss_is_cross_entropy_and_its_gradient_matches_central_differences():
    rng = np.random.default_rng(0)
    logits, labels = rng.standard_normal((6, 10)), rng.integers(0, 10, size=6)
    loss, dlogits = DigitsTask().loss(logits, labels)
    assert (loss, dlogits.tolist()) == (cross_entropy(logits, labels)[0], cross_entropy(logits, labels)[1].tolist())
    numeric = np.zeros_like(logits)
    eps = 1e-6
    for index in np.ndindex(logits.shape):
        step = np.zeros_like(logits)
        step[index] = eps
        numeric[index] = (DigitsTask().loss(logits + step, labels)[0] - DigitsTask().loss(logits - step, labels)[0]) / (
            2 * eps)
    np.testing.assert_allclose(dlogits, numeric, rtol=1e-6, atol=1e-10)


@pytest.mark.parametrize("labels, message", [
    ([0, 3, 12, 1], "cross_entropy: expected labels in 0..9, got values in 0..12: 1 out of range, the first 12 at "
                    "index (2,)."),
    ([-1, 3, 2, 10], "cross_entropy: expected labels in 0..9, got values in -1..10: 2 out of range, the first -1 at "
                     "index (0,)."),
])
def test_labels_outside_the_classes_are_named(labels, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        DigitsTask().loss(np.zeros((4, 10)), np.array(labels))


@pytest.mark.parametrize("pred, target, message", [
    (np.zeros((8, 4, 10)), np.zeros(4, dtype=int), "DigitsTask.loss: expected pred of shape (4, 10), got (8, 4, 10). "
                                                    "The model's logits, one row per image."),
    (np.zeros((4, 9)), np.zeros(4, dtype=int), "DigitsTask.loss: expected pred of shape (4, 10), got (4, 9)."),
    (np.zeros((4, 10)), np.zeros((4, 1), dtype=int), "DigitsTask.loss: expected target of shape (*,), got (4, 1)."),
])
def test_wrong_shapes_name_both(pred, target, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        DigitsTask().loss(pred, target)


def test_metrics_and_confusion_count_by_hand():
    class Fixed:
        """A model whose largest logit is at the class written in x[0, n, 0]."""

        def __call__(self, x):
            logits = np.zeros((x.shape[1], 10))
            logits[np.arange(x.shape[1]), x[0, :, 0].astype(int)] = 5.0
            return logits

    target = np.array([0, 1, 2, 3, 3])
    guesses = np.array([0, 1, 2, 3, 7])      # one 3 taken for a 7
    x = np.zeros((8, 5, 8))
    x[0, :, 0] = guesses
    task = DigitsTask()
    metrics = task.metrics(Fixed(), (x, target))
    assert metrics["test_accuracy"] == 0.8
    logits = Fixed()(x)
    assert metrics["test_loss"] == cross_entropy(logits, target)[0]
    matrix = task.confusion(Fixed(), (x, target))
    expected = np.zeros((10, 10), dtype=int)
    expected[[0, 1, 2, 3, 3], [0, 1, 2, 3, 7]] = 1
    np.testing.assert_array_equal(matrix, expected)


def test_the_task_builds_a_classifier_bidirectional_by_rows():
    for pixels, input_size, bidirectional in ((False, 8, True), (True, 1, False)):
        task = DigitsTask(pixels=pixels)
        model = task.build_model(5, 1, cell="gru", dtype=np.float32, rng=np.random.default_rng(0))
        assert isinstance(model, SequenceClassifier)
        config = model.config()
        assert (config["input_size"], config["num_classes"], config["bidirectional"]) == (input_size, 10,
                                                                                           bidirectional)
        assert config["cell"] == "gru" and config["dtype"] == np.float32
        assert model(np.zeros((task.seq_len, 3, input_size), dtype=np.float32)).shape == (3, 10)


def test_goals_defaults_and_bad_options():
    assert DigitsTask().goals == {"test_accuracy": (">", 0.97)}
    assert DigitsTask(pixels=True).goals == {"test_accuracy": (">", 0.90)}
    assert resolve("digits", 0).hidden_size == DigitsTask().defaults["hidden_size"]
    assert resolve("digits", 0, task_options={"pixels": True}).config.steps == DigitsTask(pixels=True).defaults["steps"]
    with pytest.raises(ValueError, match=re.escape("make_task: expected options of the digits task from ['pixels'], "
                                                   "got ['rows'].")):
        make_task("digits", 0, rows=True)
    with pytest.raises(TypeError, match="DigitsTask: expected pixels to be a bool"):
        DigitsTask(pixels="yes")
    with pytest.raises(ValueError, match=re.escape("DigitsTask: expected seed >= 0, got -1.")):
        DigitsTask(seed=-1)
    with pytest.raises(TypeError, match=re.escape("DigitsTask: expected seed to be an int, got float.")):
        DigitsTask(seed=1.0)


def test_the_library_imports_without_scikit_learn():
    code = ("import sys, bptt, bptt.cli, bptt.train.experiment, bptt.train.tasks.digits; "
            "sys.exit(any(m.split('.')[0] == 'sklearn' for m in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0


# ---------------------------------------------------------------------------------------------------------
# The command line
# ---------------------------------------------------------------------------------------------------------

def test_train_digits_writes_checkpoint_confusion_figure_and_json(raw, tmp_path, capsys):
    out = tmp_path / "run"
    code, stdout, _ = run_cli(capsys, "train", "digits", "--steps", "20", "--hidden-size", "8", "--eval-every", "10",
                              "--seed", "2", "--out", str(out), "--json")
    assert code == 0
    lines = stdout.strip().splitlines()
    assert lines[0].startswith("bptt train | task digits | model gru | hidden-size 8")
    summary = json.loads(lines[-1])
    assert summary["steps"] == 20 and summary["seed"] == 2 and summary["seconds"] > 0
    assert 0 <= summary["test_accuracy"] <= 1 and np.isfinite(summary["test_loss"])
    assert summary["checkpoint"] == str(out / "model.safetensors") and summary["task_options"] == {}
    for name in ("model.safetensors", "train_state.safetensors", "metrics.jsonl", "loss.png", "confusion.png"):
        assert (out / name).stat().st_size > 0, name
    assert summary["figures"] == [str(out / "loss.png"), str(out / "confusion.png")]
    assert load_arrays(out / "model.safetensors")[1]["class"] == "SequenceClassifier"


def test_train_digits_pixels_records_the_option_and_resume_keeps_it(raw, tmp_path, capsys):
    out = tmp_path / "pixels"
    code, stdout, _ = run_cli(capsys, "train", "digits", "--pixels", "--steps", "2", "--hidden-size", "4",
                              "--eval-every", "2", "--final-lr", "5e-3", "--out", str(out), "--json")
    assert code == 0
    assert stdout.startswith("bptt train | task digits --pixels | model lstm")
    assert json.loads(stdout.strip().splitlines()[-1])["task_options"] == {"pixels": True}
    metadata = load_arrays(out / "model.safetensors")[1]
    assert metadata["task_options"] == {"pixels": True} and metadata["config"]["input_size"] == 1
    code, stdout, _ = run_cli(capsys, "train", "digits", "--resume", "--steps", "4", "--out", str(out), "--json")
    assert code == 0
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary["task_options"] == {"pixels": True} and summary["steps"] == 4

    rows = tmp_path / "rows"
    assert run_cli(capsys, "train", "digits", "--steps", "2", "--hidden-size", "4", "--out", str(rows))[0] == 0
    code, _, stderr = run_cli(capsys, "train", "digits", "--resume", "--pixels", "--out", str(rows))
    assert code == 2 and "got task_options {'pixels': True} (saved: {})" in stderr


@pytest.mark.parametrize("verb", ["train", "sweep"])
def test_pixels_with_another_task_exits_2_naming_the_task_that_takes_it(verb, tmp_path, capsys):
    code, _, stderr = run_cli(capsys, verb, "sine", "--pixels", "--steps", "1", "--out", str(tmp_path))
    assert code == 2
    assert f"bptt {verb}: --pixels is an option of the digits task, not of the sine task." in stderr
    assert not any(tmp_path.iterdir())
