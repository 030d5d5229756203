"""The character task and its baselines: the corpus, the split, the batches, bits per character, the Kneser-Ney
n-gram and the unigram, and every bad text refused with a clear message."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bptt.layers.models import LanguageModel
from bptt.train.baselines import KneserNey, best_ngram, unigram_bpc
from bptt.train.neural_cache import Cache, bits_alone_and_cached, cache_bits_per_character
from bptt.train.tasks.chars import CORPUS_FILES, SPLIT, CharsTask, default_corpus

TEXT = "the cat sat on the mat. the dog sat on the log. a cat and a dog.\n" * 40


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


# --- Baselines ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("history", ["", "t", "the c", "zzzz", "log. a c"])
def test_every_kneser_ney_order_is_a_distribution_over_the_vocabulary(history):
    vocabulary = "".join(sorted(set(TEXT) | {"z", "Q"}))        # two characters never seen in training
    model = KneserNey(TEXT[:1500], vocabulary, 6)
    totals = np.sum([model.probabilities(history, c) for c in vocabulary], axis=0)
    np.testing.assert_allclose(totals, 1.0, rtol=0, atol=1e-12)
    assert min(model.probabilities(history, "Q")) > 0            # unseen characters keep some probability


def test_kneser_ney_of_order_one_and_two_by_hand():
    """The model of order 1 uses raw unigram counts; in the model of order 2 the lower order uses continuation
    counts (how many distinct characters precede each one)."""
    model = KneserNey("abab", "abc", 2)
    # order 1, raw: a and b twice each; n1 = 0, n2 = 2, so D = 0 and p(a) = 2/4
    assert model.probabilities("", "a")[0] == pytest.approx(0.5)
    # continuation: b after a ("ab"), a after b ("ba"): one each, total 2; n1 = 2, n2 = 0, so D = 1, and
    # p_cont(b) = (max(1 - 1, 0) + 1 * 2 types * 1/3) / 2 = 1/3
    assert model.continuation[0].discount == 1.0
    p_cont_b = 1 / 3
    # order 2, raw bigrams: ab twice, ba once; n1 = 1, n2 = 1, so D = 1/3; context a: total 2, one type
    expected = (2 - 1 / 3 + 1 / 3 * 1 * p_cont_b) / 2
    assert model.probabilities("a", "b")[1] == pytest.approx(expected) == pytest.approx(8 / 9)


def test_longer_contexts_help_on_repetitive_text_and_best_ngram_picks_by_validation():
    train, validation, test = TEXT[:1800], TEXT[1800:2300], TEXT[2300:2800]
    vocabulary = "".join(sorted(set(TEXT)))
    order, test_bpc, scores = best_ngram(train, validation, test, vocabulary, max_order=6)
    assert scores[order] == min(scores.values()) and order > 2
    assert scores[1] > scores[3]
    assert test_bpc < unigram_bpc(train, test[1:], vocabulary)


def test_unigram_bpc_by_hand():
    assert unigram_bpc("aab", "ab", "abc") == pytest.approx(-(math.log2(3 / 6) + math.log2(2 / 6)) / 2)


# --- The task ----------------------------------------------------------------------------------------------

def test_the_default_corpus_is_the_listed_standard_library_files():
    corpus = default_corpus()
    task = CharsTask()
    assert task.corpus_chars == len(corpus) > 500_000
    assert len(task.corpus_sha256) == 64 and len(CORPUS_FILES) >= 30
    assert corpus.startswith('# Author: Steven J. Bethard')              # argparse.py comes first


def test_the_split_is_contiguous_in_order_and_covers_the_text(text_file):
    task = CharsTask(text=str(text_file), seq_len=8)
    parts = [task.decode(task.splits[name]) for name in ("train", "validation", "test")]
    assert "".join(parts) == TEXT
    assert len(parts[0]) == int(len(TEXT) * SPLIT[0])
    assert task.vocabulary == "".join(sorted(set(TEXT))) and task.input_size == len(task.vocabulary)


def test_batches_are_windows_of_the_training_text_with_next_character_targets(text_file):
    task = CharsTask(text=str(text_file), seq_len=10)
    x, y = task.batch(np.random.default_rng(0), 5)
    train = task.decode(task.splits["train"])
    assert x.shape == y.shape == (10, 5) and x.dtype == np.int64
    for n in range(5):
        window = task.decode(x[:, n]) + task.decode(y[-1:, n])
        assert window in train
        assert (x[1:, n] == y[:-1, n]).all()


def test_held_out_splits(text_file):
    task = CharsTask(text=str(text_file), seq_len=8)
    x, y = task.held_out("test")
    test = task.splits["test"]
    assert x.shape == (len(test) - 1, 1) and (x[:, 0] == test[:-1]).all() and (y[:, 0] == test[1:]).all()
    x, y = task.held_out("validation")
    assert x.shape[1] == 32 and (x[1:] == y[:-1]).all()


def test_the_static_figure_reads_the_test_text_as_one_stream(text_file, monkeypatch):
    """Reading in chunks with the state carried gives the BPC of one pass over the whole stream."""
    import bptt.train.neural_cache as neural_cache

    task = CharsTask(text=str(text_file), seq_len=8)
    model = LanguageModel(task.input_size, 4, 6, rng=0)
    x, y = task.held_out("test")
    whole = bits_alone_and_cached(model, x, y, Cache(0.5, 0.0))[0]
    logits = model(x)
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    expected = -np.take_along_axis(log_probs, y[..., None], -1).mean() / np.log(2)
    monkeypatch.setattr(neural_cache, "CHUNK", 7)
    assert bits_alone_and_cached(model, x, y, Cache(0.5, 0.0))[0] == pytest.approx(whole, rel=1e-12)
    assert whole == pytest.approx(expected, rel=1e-12)


def test_metrics_report_the_model_beside_both_baselines(text_file):
    task = CharsTask(text=str(text_file), seq_len=8)
    model = LanguageModel(task.input_size, 4, 6, rng=0)
    metrics = task.metrics(model, task.held_out("test"))
    assert set(metrics) >= {"test_bpc", "baseline_bpc", "baseline_order", "unigram_bpc", "vocab_size",
                            "corpus_chars", "bpc_margin"}
    assert metrics["bpc_margin"] == pytest.approx(metrics["baseline_bpc"] - metrics["test_bpc"])
    for figure in ("dynamic", "cache", "dynamic_cache"):
        assert metrics[f"bpc_margin_{figure}"] == pytest.approx(metrics["baseline_bpc"] - metrics[f"test_bpc_{figure}"])
    assert metrics["test_bpc_cache"] <= metrics["test_bpc"] + 1e-9 or metrics["cache_weight"] > 0
    dynamic_cache = Cache(metrics["dynamic_cache_flatness"], metrics["dynamic_cache_weight"])
    assert metrics["test_bpc_dynamic_cache"] == pytest.approx(
        cache_bits_per_character(model, *task.held_out("test"), dynamic_cache, dynamic=True), rel=1e-12)
    assert metrics["baseline_bpc"] < metrics["unigram_bpc"] < metrics["test_bpc"]   # an untrained model is worst


def test_encode_and_decode_round_trip_and_unknown_characters_are_named(text_file):
    task = CharsTask(text=str(text_file), seq_len=8)
    assert task.decode(task.encode("the cat")) == "the cat"
    with pytest.raises(ValueError, match=r"got 2 outside it: 'XZ'"):
        task.encode("the XZ cat")


# --- Bad texts ----------------------------------------------------------------------------------------------

def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(ValueError, match=r"chars: expected a UTF-8 text file, got '.*nope.txt', which does not exist"):
        CharsTask(text=str(tmp_path / "nope.txt"))


def test_a_file_that_is_not_utf8_is_named_with_the_bad_byte(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("caf\u00e9 ".encode("latin-1") * 100)
    with pytest.raises(ValueError, match=r"latin1.txt', whose byte 3 \(b'\\xe9'\) is not UTF-8"):
        CharsTask(text=str(path))


def test_an_empty_text_is_refused(tmp_path):
    path = tmp_path / "empty.txt"
    path.write_text("")
    with pytest.raises(ValueError, match="expected a text with characters, got an empty"):
        CharsTask(text=str(path))


def test_a_text_too_short_for_the_validation_streams_is_refused_rather_than_read_empty(tmp_path):
    path = tmp_path / "short.txt"
    path.write_text("abcdefghij" * 30)                   # 300 characters: 15 for validation, under 32 streams + 1
    with pytest.raises(ValueError, match=r"at least 660 characters .* validation split 33 characters .* got 300"):
        CharsTask(text=str(path), seq_len=8)


def test_a_text_shorter_than_a_training_sequence_per_split_is_refused(tmp_path):
    path = tmp_path / "short.txt"
    path.write_text("x" * 300)
    with pytest.raises(ValueError, match=r"expected a text of at least 2580 characters .* got 300 characters"):
        CharsTask(text=str(path), seq_len=128)


# --- The command line: bptt train chars, bptt sample ----------------------------------------------------------

def _train(tmp_path, text_file, capsys, *extra):
    from bptt.cli import main

    out = tmp_path / "run"
    code = main(["train", "chars", "--text", str(text_file), "--steps", "6", "--hidden-size", "8",
                 "--batch-size", "4", "--eval-every", "3", "--out", str(out), "--json", *extra])
    return code, out, capsys.readouterr()


def test_train_chars_writes_checkpoint_with_vocabulary_figures_and_the_json_fields(tmp_path, text_file, capsys):
    import json

    from bptt.interop.io import load_arrays

    code, out, captured = _train(tmp_path, text_file, capsys)
    assert code == 0, captured.err
    lines = captured.out.strip().splitlines()
    summary = json.loads(lines[-1])
    for key in ("test_bpc", "baseline_bpc", "unigram_bpc", "vocab_size", "corpus_chars", "seconds", "steps", "seed",
                "checkpoint"):
        assert key in summary, key
    assert summary["vocab_size"] == len(set(TEXT)) and summary["corpus_chars"] == len(TEXT)
    assert summary["steps"] == 6 and summary["dtype"] == "float32"          # the task's default precision
    assert sum(line.strip().startswith("| sample '") for line in lines) == 2   # one sample per evaluation
    metadata = load_arrays(out / "model.safetensors")[1]
    assert metadata["vocabulary"] == "".join(sorted(set(TEXT))) and metadata["task_options"] == {"text": str(text_file)}
    assert (out / "bpc.png").stat().st_size > 0


def test_sample_prints_the_prime_and_the_same_text_for_the_same_seed(tmp_path, text_file, capsys):
    from bptt.cli import main

    _, out, _ = _train(tmp_path, text_file, capsys)
    texts = []
    for seed in (3, 3, 4):
        assert main(["sample", str(out / "model.safetensors"), "--prime", "the ", "--length", "30",
                     "--seed", str(seed)]) == 0
        texts.append(capsys.readouterr().out)
    assert texts[0] == texts[1] != texts[2]
    assert texts[0].startswith("the ") and len(texts[0]) == len("the ") + 30 + 1
    assert set(texts[0][:-1]) <= set(TEXT)
    main(["sample", str(out / "model.safetensors"), "--temperature", "0", "--length", "10", "--seed", "1"])
    greedy = capsys.readouterr().out
    main(["sample", str(out / "model.safetensors"), "--temperature", "0", "--length", "10", "--seed", "2"])
    assert capsys.readouterr().out == greedy                               # temperature 0 ignores the seed


@pytest.mark.parametrize(("argv", "message"), [
    (["--prime", "the XQ"], "whose 'QX' it never saw"),
    (["--prime", ""], "which is empty"),
    (["--temperature", "-1"], "expected a temperature >= 0"),
])
def test_sample_refuses_a_bad_prime_or_temperature_with_exit_2(tmp_path, text_file, capsys, argv, message):
    from bptt.cli import main

    _, out, _ = _train(tmp_path, text_file, capsys)
    assert main(["sample", str(out / "model.safetensors"), *argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and message in captured.err


def test_sample_refuses_a_checkpoint_that_is_not_a_character_model(tmp_path, capsys):
    from bptt import LSTM, save
    from bptt.cli import main

    path = save(LSTM(2, 3, rng=0), tmp_path / "lstm.safetensors")
    assert main(["sample", str(path)]) == 2
    assert "expected a character model saved by bptt train chars" in capsys.readouterr().err


@pytest.mark.parametrize(("content", "message"), [
    (None, "which does not exist"),
    (b"", "got an empty"),
    (b"caf\xe9 " * 100, "is not UTF-8"),
    (b"short text", "expected a text of at least"),
])
def test_train_chars_refuses_a_bad_text_with_exit_2_and_writes_nothing(tmp_path, capsys, content, message):
    from bptt.cli import main

    path = tmp_path / "text.txt"
    if content is not None:
        path.write_bytes(content)
    out = tmp_path / "run"
    assert main(["train", "chars", "--text", str(path), "--steps", "2", "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert message in captured.err and captured.out == ""
    assert not out.exists()


def test_text_is_an_option_of_the_chars_task_only(capsys, text_file):
    from bptt.cli import main

    assert main(["train", "sine", "--text", str(text_file)]) == 2
    assert "--text is an option of the chars task, not of the sine task" in capsys.readouterr().err
    assert main(["train", "digits", "--dropout", "0.2"]) == 2
    assert "--dropout is an option of the chars task, not of the digits task" in capsys.readouterr().err


def test_dropout_is_an_option_of_the_chars_task_checked_and_off_outside_the_training_steps(tmp_path, text_file):
    """With dropout the run is deterministic, the model it returns is in evaluation mode, and the validation loss
    it kept is that of the kept weights without dropout."""
    from bptt.train.experiment import resolve, run

    with pytest.raises(ValueError, match=r"CharsTask: expected dropout in \[0, 1\), got 1.5"):
        CharsTask(text=str(text_file), dropout=1.5)
    with pytest.raises(TypeError, match="CharsTask: expected dropout to be a real number, got str"):
        CharsTask(text=str(text_file), dropout="0.2")
    experiment = resolve("chars", 0, {"text": str(text_file), "seq_len": 8, "dropout": 0.3}, steps=4, eval_every=2,
                         hidden_size=8, batch_size=4)
    first, again = run(experiment), run(experiment)
    assert first.model.rnn.dropout == 0.3 and not first.model.training
    assert first.history.loss == again.history.loss and first.metrics == again.metrics
    x_val, y_val = first.task.held_out("validation")
    assert first.task.loss(first.model(x_val), y_val)[0] == pytest.approx(first.history.best_val_loss, rel=1e-6)


def test_a_run_with_dropout_resumes_bitwise(text_file):
    """The masks come from the model's generator, which the train state carries: resuming at step 2 of 6
    gives the uninterrupted run's history and weights."""
    from bptt.train.experiment import resolve, run

    experiment = resolve("chars", 0, {"text": str(text_file), "seq_len": 8, "dropout": 0.3}, steps=6, eval_every=2,
                         hidden_size=8, batch_size=4)
    states = {}
    whole = run(experiment, on_checkpoint=lambda state: states.update({state.step: state}))
    resumed = run(experiment, resume=states[2])
    assert resumed.history == whole.history
    for name, value in whole.model.params.items():
        np.testing.assert_array_equal(resumed.model.params[name], value, err_msg=name)
