"""Statistics for judging a claim from few seeds (method.md §12), written on numpy / scipy after the
definitions of rliable (Agarwal et al., 2021), whose package does not import beside pandas 3.

Paired by seed (the same critic, data and evaluation start states for both sides of a contrast):
  - `paired_differences`: d_i = a_i - b_i per seed;
  - `sign_flip_test`: the exact one-sided permutation test of mean(d) > 0 (every sign assignment of
    the |d_i|; with n seeds the smallest p-value is 2^-n: 0.125 for 3 seeds);
  - `mean_difference`: mean(d) with its 95% t-interval, and k of n seeds in the claimed direction;
  - `page_trend`: Page's L test of a rise over an ordered grid (e.g. w), seeds as blocks.
Aggregates over many tasks (runs x tasks score matrices):
  - `iqm`: the interquartile mean (the mean of the middle 50% of all scores);
  - `stratified_bootstrap_ci`: percentile interval of an aggregate, runs resampled within each task;
  - `probability_of_improvement`: P(X > Y) per task (Mann-Whitney U / (n m), ties half), averaged.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import scipy.stats


class MeanDifference(NamedTuple):
    mean: float  # mean over seeds of d_i = a_i - b_i
    lo: float  # 95% t-interval of the mean (NaN with one seed)
    hi: float
    k: int  # seeds with d_i > 0
    n: int  # seeds


def paired_differences(a, b) -> np.ndarray:
    """d_i = a_i - b_i for seeds i (a, b: one value per seed, in the same seed order) -> [n]."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired values need one per seed on both sides, got shapes {a.shape} and {b.shape}")
    return a - b


def sign_flip_test(d) -> float:
    """Exact one-sided p-value of mean(d) > 0 under the null of differences symmetric about 0: the share
    of the 2^n sign assignments of |d| whose sum is at least the observed one."""
    d = np.asarray(d, np.float64)
    if d.ndim != 1 or not len(d) or len(d) > 20:
        raise ValueError(f"the exact test enumerates 2^n sign flips: needs 1 <= n <= 20 seeds, got {d.shape}")
    signs = np.array(list(itertools.product((1.0, -1.0), repeat=len(d))))  # [2^n, n]
    sums = signs @ np.abs(d)
    return float(np.mean(sums >= d.sum() - 1e-12 * max(1.0, np.abs(d).sum())))


def mean_difference(d, confidence: float = 0.95) -> MeanDifference:
    """mean(d), its t-interval over seeds, and k of n seeds with d_i > 0."""
    d = np.asarray(d, np.float64)
    n, mean = len(d), float(np.mean(d))
    if n < 2:
        lo = hi = float("nan")
    else:
        half = scipy.stats.t.ppf(0.5 + confidence / 2, n - 1) * d.std(ddof=1) / np.sqrt(n)
        lo, hi = mean - half, mean + half
    return MeanDifference(mean, float(lo), float(hi), int(np.sum(d > 0)), n)


def page_trend(scores) -> tuple[float, float]:
    """Page's L test that scores rise along the columns (an ordered grid, e.g. w ascending), rows the
    blocks (seeds): (L, one-sided p). scipy.stats.page_trend_test (exact for small grids)."""
    res = scipy.stats.page_trend_test(np.asarray(scores, np.float64))
    return float(res.statistic), float(res.pvalue)


def iqm(scores) -> float:
    """Interquartile mean of all scores (runs x tasks, flattened): the mean of the middle 50%."""
    return float(scipy.stats.trim_mean(np.asarray(scores, np.float64).ravel(), 0.25))


def stratified_bootstrap_ci(
    scores,
    aggregate: Callable[[np.ndarray], float] = iqm,
    reps: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile interval of aggregate(scores) over `reps` bootstrap samples that resample the runs
    (rows) of each task (column) with replacement, separately per task (rliable's stratified bootstrap)."""
    scores = np.asarray(scores, np.float64)
    runs, tasks = scores.shape
    rng = np.random.default_rng(seed)
    idx = rng.integers(runs, size=(reps, runs, tasks))  # run index per replicate, row slot and task
    samples = np.take_along_axis(np.broadcast_to(scores, (reps, runs, tasks)), idx, axis=1)
    values = np.array([aggregate(s) for s in samples])
    tail = (1 - confidence) / 2 * 100
    lo, hi = np.percentile(values, [tail, 100 - tail])
    return float(lo), float(hi)


def probability_of_improvement(x, y) -> float:
    """P(X > Y) of algorithm X over Y (runs x tasks each, the same tasks): per task the Mann-Whitney
    U of X's runs against Y's divided by n m (a tie counts a half), averaged over tasks."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"scores need shape runs x tasks with the same tasks, got {x.shape} and {y.shape}")
    per_task = [
        scipy.stats.mannwhitneyu(x[:, t], y[:, t]).statistic / (len(x) * len(y)) for t in range(x.shape[1])
    ]
    return float(np.mean(per_task))
