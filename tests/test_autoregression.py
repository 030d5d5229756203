"""The forecaster's linear stage (bptt.train.tasks.autoregression): the ridge solution, the choice of its
penalty, and when it is kept."""

import numpy as np
import pytest

from bptt.train.tasks.autoregression import PENALTIES, Autoregression, choose_autoregression, ridge


def test_ridge_is_the_penalised_least_squares_solution_with_a_free_intercept():
    """The closed form equals the least-squares solution of the system augmented with sqrt(M lambda) I rows (the
    penalty), whose intercept column has no such row."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 40, 2))
    y = rng.standard_normal(40) + 3.0
    design = np.hstack([x.transpose(1, 0, 2).reshape(40, 10), np.ones((40, 1))])
    for penalty in (0.0, 0.3):
        augmented = np.vstack([design, np.hstack([np.sqrt(40 * penalty) * np.eye(10), np.zeros((10, 1))])])
        expected = np.linalg.lstsq(augmented, np.concatenate([y, np.zeros(10)]), rcond=None)[0]
        stage = ridge(x, y, penalty)
        np.testing.assert_allclose(stage.weights.ravel(), expected[:10], rtol=1e-10, atol=1e-12)
        assert stage.intercept == pytest.approx(expected[10], rel=1e-10)
        np.testing.assert_allclose(stage(x), design @ expected, rtol=1e-10, atol=1e-12)


def _autoregressive(n, rng, coefficient):
    """Windows of 3 of a standard normal series, and a target that is ``coefficient`` times their last value
    plus unit noise."""
    series = rng.standard_normal(n + 2)
    x = np.stack([series[k:k + n] for k in range(3)])[:, :, None]
    return x, coefficient * series[2:] + rng.standard_normal(n)


def test_a_stage_that_beats_the_baseline_on_validation_is_kept_and_noise_is_not():
    rng = np.random.default_rng(1)
    kept = choose_autoregression(_autoregressive(300, rng, 0.8), _autoregressive(100, rng, 0.8))
    assert kept.penalty in PENALTIES and kept.weights[-1, 0] == pytest.approx(0.8, abs=0.15)
    noise = choose_autoregression(_autoregressive(300, rng, 0.0), _autoregressive(100, rng, 0.0))
    assert noise.penalty is None and not noise.weights.any() and noise.intercept == 0
    np.testing.assert_array_equal(noise(_autoregressive(5, rng, 0.0)[0]), np.zeros(5))


def test_the_stage_round_trips_through_metadata_and_an_older_checkpoint_has_none():
    stage = ridge(*_autoregressive(50, np.random.default_rng(2), 0.5), 0.1)
    again = Autoregression.from_metadata(stage.to_metadata(), 3, 1)
    np.testing.assert_array_equal(again.weights, stage.weights)
    assert (again.intercept, again.penalty) == (stage.intercept, stage.penalty)
    older = Autoregression.from_metadata({"target_scale": 1.0}, 3, 1)
    assert older.penalty is None and older.weights.shape == (3, 1) and not older.weights.any()
