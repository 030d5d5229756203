"""Dynamic evaluation (Krause et al. 2018): the static figure at lr = 0, the model passed in left unchanged,
each segment scored before the update that sees it, adaptation on text that repeats, and bad arguments."""

from __future__ import annotations

import numpy as np
import pytest

from bptt.layers.models import LanguageModel
from bptt.train.dynamic_eval import EPSILON, dynamic_bits_per_character
from bptt.train.losses import cross_entropy
from bptt.train.tasks.chars import CharsTask

V = 7


def _stream(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    tokens = rng.integers(0, V, size=n + 1)
    return tokens[:-1, None], tokens[1:, None]


def _model(dtype=np.float64) -> LanguageModel:
    return LanguageModel(V, 5, 12, dtype=dtype, rng=3)


def _rhyme_task(tmp_path) -> tuple[CharsTask, LanguageModel, np.ndarray, np.ndarray]:
    """A chars task on a short rhyme, an untrained model of it in evaluation mode (the task's dropout off, as
    after training), and its test stream."""
    path = tmp_path / "text.txt"
    path.write_text("the cat sat on the mat. the dog sat on the log.\n" * 30, encoding="utf-8")
    task = CharsTask(text=str(path), seq_len=8)
    return (task, task.build_model(16, 1, cell="lstm", dtype=np.float64, rng=1).eval(), *task.held_out("test"))


def _one_pass_bits(model, x: np.ndarray, y: np.ndarray) -> float:
    """The static bits per character: the whole stream in one forward pass, log-softmax of the targets."""
    logits = model(x)
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    return float(-np.take_along_axis(log_probs, y[..., None], -1).mean() / np.log(2))


def test_with_lr_zero_it_is_the_static_bits_per_character(tmp_path):
    task, model, x, y = _rhyme_task(tmp_path)
    static = _one_pass_bits(model, x, y)
    for segment in (1, 7, 50, len(x) + 5):
        assert dynamic_bits_per_character(model, x, y, segment=segment, lr=0.0) == pytest.approx(static, rel=1e-12)


def test_the_model_passed_in_is_left_unchanged():
    model = _model()
    x, y = _stream(np.random.default_rng(0), 60)
    model(x[:5])
    model.zero_grad()
    model.backward(np.random.default_rng(1).standard_normal((5, 1, V)))
    params, grads = model.state_dict(), {k: g.copy() for k, g in model.grads.items()}
    final_state = model.final_state
    dynamic_bits_per_character(model, x, y, segment=9, lr=0.05, decay=0.1)
    assert model.final_state is final_state
    for name in params:
        np.testing.assert_array_equal(model.params[name], params[name])
        np.testing.assert_array_equal(model.grads[name], grads[name])


def test_one_segment_is_scored_before_its_update_so_a_single_segment_gives_the_static_figure():
    model = _model()
    x, y = _stream(np.random.default_rng(2), 40)
    static = dynamic_bits_per_character(model, x, y, lr=0.0)
    assert dynamic_bits_per_character(model, x, y, segment=40, lr=5.0) == pytest.approx(static, rel=1e-12)
    assert dynamic_bits_per_character(model, x, y, segment=20, lr=5.0) != pytest.approx(static, rel=1e-6)


def test_the_second_segment_is_scored_by_one_rms_step_on_the_first_by_hand():
    """After one update the bias-corrected mean square is g^2, so theta_1 = theta_0 - lr g / (|g| + eps)
    whatever the decay (theta_0 - theta_0 = 0); s_1 starts from the state theta_0 left after s_0."""
    model, lr, k = _model(), 0.05, 11
    x, y = _stream(np.random.default_rng(4), 2 * k)
    logits0 = model(x[:k])
    state = model.final_state
    loss0, dlogits = cross_entropy(logits0, y[:k])
    model.zero_grad()
    model.backward(dlogits)
    stepped = LanguageModel(V, 5, 12, dtype=np.float64, rng=0)
    stepped.load_state_dict({name: model.params[name] - lr * g / (np.abs(g) + EPSILON)
                             for name, g in model.grads.items()})
    loss1, _ = cross_entropy(stepped(x[k:], state), y[k:])
    expected = (loss0 + loss1) / 2 / np.log(2)
    for decay in (0.0, 0.3):
        assert dynamic_bits_per_character(model, x, y, segment=k, lr=lr, decay=decay) == pytest.approx(expected,
                                                                                                     rel=1e-12)


def test_on_text_that_repeats_it_adapts_and_beats_the_static_figure():
    rng = np.random.default_rng(5)
    phrase = rng.integers(0, V, size=17)
    tokens = np.tile(phrase, 24)
    x, y = tokens[:-1, None], tokens[1:, None]
    model = _model(np.float32)
    static = dynamic_bits_per_character(model, x, y, lr=0.0)
    dynamic = dynamic_bits_per_character(model, x, y, segment=5, lr=0.03, decay=0.0)
    assert dynamic < static - 1.0                 # 1.09 against 2.88 bits: it learns the phrase as it reads
    # the decay pulls back towards the trained weights: a full pull keeps only the last segment's step
    assert dynamic < dynamic_bits_per_character(model, x, y, segment=5, lr=0.03, decay=1.0) - 1.0


@pytest.mark.parametrize("kwargs, error, match", [
    ({"segment": 0}, ValueError, r"dynamic_bits_per_character: expected segment >= 1, got 0\."),
    ({"segment": 2.5}, TypeError, r"expected segment to be an int, got float\."),
    ({"lr": -0.1}, ValueError, r"expected lr in \[0, inf\], got -0\.1\."),
    ({"lr": float("nan")}, ValueError, r"expected lr in \[0, inf\], got nan\."),
    ({"lr": "0.1"}, TypeError, r"expected lr to be a real number, got str\."),
    ({"decay": 1.5}, ValueError, r"expected decay in \[0, 1\], got 1\.5\."),
])
def test_bad_arguments_are_refused_with_a_clear_message(kwargs, error, match):
    x, y = _stream(np.random.default_rng(6), 10)
    with pytest.raises(error, match=match):
        dynamic_bits_per_character(_model(), x, y, **kwargs)


def test_bad_streams_are_refused_with_a_clear_message():
    model = _model()
    x, y = _stream(np.random.default_rng(7), 10)
    with pytest.raises(ValueError, match=r"expected x of shape \(n, N\) with n, N >= 1, got \(10,\)\. For one "
                                         r"stream pass tokens\[:, None\]\."):
        dynamic_bits_per_character(model, x[:, 0], y[:, 0])
    with pytest.raises(ValueError, match=r"expected y of the shape of x \(10, 1\), got \(9, 1\)\."):
        dynamic_bits_per_character(model, x, y[:-1])
    with pytest.raises(TypeError, match=r"expected x to be integer token ids, got dtype float64\."):
        dynamic_bits_per_character(model, x.astype(float), y)


def test_the_chars_task_reports_the_dynamic_figure_beside_the_static_one(tmp_path):
    task, model, x, y = _rhyme_task(tmp_path)
    metrics = task.metrics(model, (x, y))
    assert metrics["test_bpc"] == pytest.approx(_one_pass_bits(model, x, y), rel=1e-12)
    assert metrics["test_bpc_dynamic"] == pytest.approx(dynamic_bits_per_character(model, x, y), rel=1e-12)
    assert metrics["test_bpc_dynamic"] < metrics["test_bpc"]         # the test text repeats the training text
    assert metrics["bpc_margin_dynamic"] == pytest.approx(metrics["baseline_bpc"] - metrics["test_bpc_dynamic"])
