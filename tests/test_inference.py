"""The claim statistics against values computed by hand or by scipy directly."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.stats

from pipeline_steps.core import inference


def test_three_seeds_all_positive_give_the_smallest_p_of_one_in_eight():
    assert inference.sign_flip_test([6.7, 1.0, 12.0]) == 0.125


def test_eight_seeds_seven_positive_smallest_negative():
    """|d| = 1..8 with the 1 negative: sum 34; only the all-positive flips (36) and the observed one
    (34) reach 34, so p = 2 / 256."""
    d = np.array([-1, 2, 3, 4, 5, 6, 7, 8], float)
    assert inference.sign_flip_test(d) == 2 / 256
    # the largest negative instead: sum 20; count the sign assignments by brute force
    d2 = np.array([1, 2, 3, 4, 5, 6, 7, -8], float)
    hand = sum(np.dot(s, np.abs(d2)) >= d2.sum() for s in itertools.product((1, -1), repeat=8)) / 256
    assert inference.sign_flip_test(d2) == hand and hand > 0.05


def test_sign_flip_test_is_symmetric_and_refuses_what_it_cannot_enumerate():
    d = np.array([0.5, -1.5, 2.0, 0.1])
    p_up, p_down = inference.sign_flip_test(d), inference.sign_flip_test(-d)
    assert p_up + p_down >= 1.0  # the observed sum counts on both sides
    with pytest.raises(ValueError, match="1 <= n <= 20"):
        inference.sign_flip_test(np.ones(21))
    with pytest.raises(ValueError, match="one per seed"):
        inference.paired_differences([1, 2, 3], [1, 2])


def test_mean_difference_is_the_t_interval_and_counts_the_seeds_in_the_claimed_direction():
    a, b = [10.0, 12.0, 9.0, 15.0], [8.0, 12.5, 7.0, 10.0]
    d = inference.paired_differences(a, b)
    np.testing.assert_allclose(d, [2.0, -0.5, 2.0, 5.0])
    res = inference.mean_difference(d)
    lo, hi = scipy.stats.t.interval(0.95, 3, loc=d.mean(), scale=scipy.stats.sem(d))
    assert res.mean == pytest.approx(2.125) and (res.k, res.n) == (3, 4)
    assert (res.lo, res.hi) == (pytest.approx(lo), pytest.approx(hi))
    one = inference.mean_difference([3.0])
    assert one.mean == 3.0 and np.isnan(one.lo) and np.isnan(one.hi)


def test_page_trend_statistic_of_a_perfect_rise():
    """Every seed rises along the grid: the ranks are 1..m in every row, L = n * sum_j j^2."""
    scores = np.array([[1.0, 2.0, 3.0, 4.0], [10.0, 11.0, 30.0, 31.0], [0.1, 0.2, 0.3, 0.4]])
    L, p = inference.page_trend(scores)
    assert L == 3 * (1 + 4 + 9 + 16)
    assert p < 0.01
    L_down, p_down = inference.page_trend(scores[:, ::-1])
    assert L_down == 3 * (4 + 6 + 6 + 4) and p_down > 0.99


def test_iqm_is_the_mean_of_the_middle_half():
    assert inference.iqm(np.arange(1, 9, dtype=float).reshape(4, 2)) == pytest.approx(4.5)  # mean(3..6)
    assert inference.iqm([[1.0], [2.0], [3.0], [1000.0]]) == pytest.approx(2.5)  # the outlier is cut


def test_stratified_bootstrap_resamples_runs_within_each_task():
    """Constant scores within each task, different across tasks: every replicate that keeps each task's
    runs in that task has the same IQM, so the interval collapses onto it (a pooled bootstrap would not)."""
    scores = np.tile([1.0, 5.0, 9.0], (6, 1))  # 6 runs x 3 tasks
    lo, hi = inference.stratified_bootstrap_ci(scores, reps=300)
    assert lo == hi == pytest.approx(inference.iqm(scores))
    noisy = scores + np.random.default_rng(1).normal(0, 1, scores.shape)
    lo, hi = inference.stratified_bootstrap_ci(noisy, reps=500)
    assert lo < inference.iqm(noisy) < hi


def test_probability_of_improvement():
    x = np.array([[5.0, 6.0], [7.0, 8.0]])
    assert inference.probability_of_improvement(x, x - 10) == 1.0
    assert inference.probability_of_improvement(x, x) == 0.5  # ties count a half
    assert inference.probability_of_improvement(x - 10, x) == 0.0
    # one task: X beats Y in 3 of the 4 pairs
    assert inference.probability_of_improvement([[2.0], [4.0]], [[1.0], [3.0]]) == 0.75
