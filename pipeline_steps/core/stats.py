"""Interval estimates shared by the evaluation, plot and aggregate stages of both halves."""

from __future__ import annotations

import numpy as np
import scipy.stats


def ci95(x: np.ndarray) -> float:
    """Half-width of the 95% t-interval of the mean."""
    if len(x) < 2:
        return float("nan")
    return float(scipy.stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x)))


def wilson(k: float, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score 95% interval of a success rate k / n (sensible at 0 and 1, unlike the t-interval)."""
    if n == 0:
        return float("nan"), float("nan")
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(centre - half), float(centre + half)
