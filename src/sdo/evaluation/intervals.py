"""The 95% intervals of an evaluation: bootstrap resamples of the incidents, from a fixed
seed, so the same log gives the same intervals. Shared by :mod:`sdo.evaluation.evaluate`
(which computes them) and :mod:`sdo.evaluation.report` (which explains them).
"""

from __future__ import annotations

import statistics
from typing import Any, Final

import numpy as np

__all__ = [
    "BOOTSTRAP_RESAMPLES",
    "BOOTSTRAP_SEED",
    "CI_MIN_VALUES",
    "ci95",
    "difference",
    "quantile",
    "resampled_medians",
]

#: Each 95% interval comes from this many resamples of the incidents (a bootstrap), drawn
#: from a fixed seed: the same log gives the same intervals. None below CI_MIN_VALUES.
BOOTSTRAP_RESAMPLES: Final = 1000
BOOTSTRAP_SEED: Final = 20151201
CI_MIN_VALUES: Final = 10


def quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return round(values[0], 1)
    return round(statistics.quantiles(values, n=100, method="inclusive")[int(q * 100) - 1], 1)


def ci95(values: list[float] | list[bool], *, median: bool = False) -> list[float] | None:
    """The 95% interval of the median (or, of flags, the share) of ``values``: the 2.5th
    and 97.5th percentiles of it over :data:`BOOTSTRAP_RESAMPLES` resamples of the values
    with replacement; how far the figure could move on another log like this one. None
    for fewer than :data:`CI_MIN_VALUES`."""
    n = len(values)
    if n < CI_MIN_VALUES:
        return None
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    if median:
        stats = resampled_medians(rng, np.asarray(values, dtype=np.float64))
    else:
        # a resample of n flags holds Binomial(n, share) of them set: drawn at once
        stats = rng.binomial(n, sum(values) / n, size=BOOTSTRAP_RESAMPLES) / n
    low, high = np.percentile(stats, [2.5, 97.5])
    digits = 1 if median else 4
    return [round(float(low), digits), round(float(high), digits)]


def resampled_medians(
    rng: np.random.Generator, x: np.ndarray, y: np.ndarray | None = None
) -> np.ndarray:
    """The median of ``x`` (less that of ``y``, over the same items) in each of
    :data:`BOOTSTRAP_RESAMPLES` resamples of the items with replacement."""
    n = len(x)
    stats = np.empty(BOOTSTRAP_RESAMPLES)
    step = max(1, 250_000 // n)  # resamples at once, a few megabytes each
    for start in range(0, BOOTSTRAP_RESAMPLES, step):
        count = min(step, BOOTSTRAP_RESAMPLES - start)
        idx = rng.integers(0, n, size=(count, n))
        stats[start : start + count] = np.median(x[idx], axis=1)
        if y is not None:
            stats[start : start + count] -= np.median(y[idx], axis=1)
    return stats


def difference(key: str, a: list[float], b: list[float], *, median: bool = False) -> dict[str, Any]:
    """``{key}_diff`` (a's median, or share, minus b's, over the same items) and its paired
    95% interval ``{key}_diff_ci95`` (None from fewer than :data:`CI_MIN_VALUES`)."""
    n = len(a)
    digits = 1 if median else 4
    if not n:
        return {f"{key}_diff": None, f"{key}_diff_ci95": None}
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    point = float(np.median(x) - np.median(y)) if median else float(x.mean() - y.mean())
    interval = None
    if n >= CI_MIN_VALUES:
        rng = np.random.default_rng(BOOTSTRAP_SEED)
        if median:
            stats = resampled_medians(rng, x, y)
        else:
            # each item's difference is -1, 0 or +1: a resample's counts are multinomial
            d = x - y
            fewer, more = float((d < 0).mean()), float((d > 0).mean())
            p = [fewer, max(0.0, 1.0 - fewer - more), more]
            counts = rng.multinomial(n, p, size=BOOTSTRAP_RESAMPLES)
            stats = (counts[:, 2] - counts[:, 0]) / n
        low, high = np.percentile(stats, [2.5, 97.5])
        interval = [round(float(low), digits), round(float(high), digits)]
    return {f"{key}_diff": round(point, digits), f"{key}_diff_ci95": interval}
