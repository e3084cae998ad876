"""Statistics on results tables: intervals over seeds, tests over seeds, correlations, bootstraps over
languages, Holm's correction.

A results table has one row per (run, language) with an ``accuracy`` column (``xlpeft evaluate``'s
CSV); the configuration columns (``regime``, ``prompt_length``, ``seed``...) say which run is which.
Small samples are the rule here (3 to 5 seeds), so intervals use Student's t, one seed gives NaN
bounds rather than a zero-width interval, and every function reports how many values it used.

Two sources of variation are kept apart. **Seeds** are the unit of replication: a claim that one
configuration beats another is tested on one value per seed (:func:`seed_test`), because languages
scored by the same trained prompt share its training noise and are not independent replicates.
**Languages** are resampled whole (:func:`language_bootstrap`) to ask whether a statistic computed
over languages (a correlation with distance, a share of languages) depends on which languages were
evaluated.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats


MIN_SEEDS = 3  # fewer seeds than this: a test over seeds is underpowered and no p-value is given


def mean_ci(values, confidence: float = 0.95) -> tuple[float, float, float, int]:
    """``(mean, low, high, n)``: the mean and its two-sided Student-t confidence interval.

    The interval is ``mean ± t(confidence, n - 1) · s / √n`` with ``s`` the sample standard deviation
    (ddof=1): it treats the values (e.g. one per seed) as independent draws. With n = 1 the spread is
    unknown, so the bounds are NaN; with n = 0 everything is NaN. A NaN among the values propagates.
    """
    x = np.asarray(values, dtype=float).ravel()
    n = len(x)
    if n == 0:
        return np.nan, np.nan, np.nan, 0
    mean = float(x.mean())
    if n == 1:
        return mean, np.nan, np.nan, 1
    half = float(stats.t.ppf((1 + confidence) / 2, n - 1) * x.std(ddof=1) / np.sqrt(n))
    return mean, mean - half, mean + half, n


def summarize(results: pd.DataFrame, by: list[str], value: str = "accuracy",
              confidence: float = 0.95) -> pd.DataFrame:
    """One row per group of ``by``: ``mean``, ``ci_low``, ``ci_high`` (see :func:`mean_ci`) and ``n``.

    Group by the configuration and language to get an interval over seeds per language, or by the
    configuration alone to pool seeds and languages (then the interval treats languages as draws too).
    """
    rows = [(*(key if isinstance(key, tuple) else (key,)), *mean_ci(group[value], confidence))
            for key, group in results.groupby(by, sort=True, dropna=False)]
    return pd.DataFrame(rows, columns=[*by, "mean", "ci_low", "ci_high", "n"])


def correlation(x, y) -> dict[str, float | int]:
    """Pearson's r and Spearman's rho (each with its two-sided p-value) between ``x`` and ``y``.

    Two Series are paired by index (e.g. languages), anything else by position. Pairs where either
    value is NaN, or whose index is in only one Series, are dropped and counted in ``n_dropped``;
    ``n`` is the number used. Fewer than 3 pairs give NaN statistics (two points always lie on a line).
    """
    xs, ys = _paired(x, y)
    keep = ~(np.isnan(xs) | np.isnan(ys))
    n = int(keep.sum())
    out: dict[str, float | int] = {"pearson_r": np.nan, "pearson_p": np.nan, "spearman_rho": np.nan,
                                   "spearman_p": np.nan, "n": n, "n_dropped": int(len(xs) - n)}
    if n >= 3:
        pearson, spearman = stats.pearsonr(xs[keep], ys[keep]), stats.spearmanr(xs[keep], ys[keep])
        out.update(pearson_r=float(pearson.statistic), pearson_p=float(pearson.pvalue),
                   spearman_rho=float(spearman.statistic), spearman_p=float(spearman.pvalue))
    return out


@dataclass(frozen=True)
class SeedTest:
    """A one-sample test over per-seed values: their ``mean``, its Student-t interval ``[low, high]``
    (:func:`mean_ci`), the two-sided t-test ``p`` against ``null`` (NaN when underpowered) and ``seeds``."""

    mean: float
    low: float
    high: float
    p: float
    seeds: int

    @property
    def underpowered(self) -> bool:
        return self.seeds < MIN_SEEDS


def seed_test(per_seed, null: float = 0.0, confidence: float = 0.95) -> SeedTest:
    """Test per-seed values (one per seed, e.g. a configuration's gain over another averaged over languages,
    paired on seed) against ``null`` with Student's t over seeds (scipy's ``ttest_1samp``).

    Seeds are what is independent: each is a separately trained module. With fewer than
    :data:`MIN_SEEDS` the interval is still given (with two seeds t has one degree of freedom and the
    interval is wide) but ``p`` is NaN: the report says "underpowered" rather than print it. ``p`` is NaN
    too when every seed gives the same value (t is undefined; the interval has zero width). NaN values
    (a seed missing in one configuration) are left out of ``seeds``.
    """
    x = np.asarray(per_seed, dtype=float).ravel()
    x = x[~np.isnan(x)]
    mean, low, high, n = mean_ci(x, confidence)
    p = float(stats.ttest_1samp(x, null).pvalue) if n >= MIN_SEEDS and np.ptp(x) > 0 else np.nan
    return SeedTest(mean, low, high, p, n)


def language_bootstrap(statistic: Callable[..., np.ndarray], *columns: np.ndarray, n_resamples: int = 2000,
                       seed: int = 0, confidence: float = 0.95) -> tuple[float, float]:
    """Percentile interval of ``statistic`` over languages resampled with replacement.

    Each array in ``columns`` has languages on its last axis (a seeds x languages matrix of gains, a vector
    of distances); every resample draws the same languages from all of them, so a language's seeds and
    its distance stay together. ``statistic`` receives the resampled arrays with a leading resample axis
    (``(n_resamples, ..., languages)``) and returns one value per resample. Written here rather than with
    ``scipy.stats.bootstrap`` because that resamples each row of a matrix independently (it cannot keep a
    language's seeds together) and fails when a resample leaves the statistic undefined; here such
    resamples (NaN: e.g. one language drawn every time, so no correlation) are dropped, and the interval is
    NaN if more than half are. Deterministic: the generator is seeded with ``seed`` at every call.
    """
    count = columns[0].shape[-1]
    if count < 2:
        return np.nan, np.nan
    draws = np.random.default_rng(seed).integers(0, count, size=(n_resamples, count))
    resampled = [np.moveaxis(np.take(column, draws, axis=-1), -2, 0) for column in columns]
    values = np.asarray(statistic(*resampled), dtype=float)
    if np.isnan(values).sum() > n_resamples / 2:
        return np.nan, np.nan
    tail = 100 * (1 - confidence) / 2
    low, high = np.nanpercentile(values, [tail, 100 - tail])
    return float(low), float(high)


def holm(pvalues) -> np.ndarray:
    """Holm's step-down adjustment of a family of p-values, e.g. one test per distance kind: it controls the
    chance of any false rejection in the family without assuming the tests independent (the six URIEL
    distances are correlated). The k-th smallest of m p-values becomes ``max over j <= k of (m - j + 1) p_(j)``,
    capped at 1. NaN p-values stay NaN and are not counted in the family.

    Written here rather than called from statsmodels (``multipletests(method="holm")``, which the tests
    compare it with) because that function runs a full garbage collection at every call: about a second in
    the report's process, which adjusts one family per configuration and per pair of configurations.
    """
    p = np.asarray(pvalues, dtype=float)
    adjusted = np.full(p.shape, np.nan)
    known = np.flatnonzero(~np.isnan(p))
    order = known[np.argsort(p[known], kind="stable")]
    steps = np.maximum.accumulate((len(order) - np.arange(len(order))) * p[order])
    adjusted[order] = np.minimum(steps, 1.0)
    return adjusted


def pearson(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson's r along the last axis (vectorised for bootstraps); NaN where either side is constant."""
    xc, yc = x - x.mean(axis=-1, keepdims=True), y - y.mean(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (xc * yc).sum(axis=-1) / np.sqrt((xc**2).sum(axis=-1) * (yc**2).sum(axis=-1))


def spearman(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman's rho along the last axis: Pearson's r of the ranks (ties get their mean rank)."""
    return pearson(stats.rankdata(x, axis=-1), stats.rankdata(y, axis=-1))


def slope(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least-squares slope of ``y`` on ``x`` along the last axis; NaN where ``x`` is constant."""
    xc = x - x.mean(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (xc * y).sum(axis=-1) / (xc**2).sum(axis=-1)


def correlation_ci(x, y, n_resamples: int = 2000, seed: int = 0,
                   confidence: float = 0.95) -> dict[str, float]:
    """Bootstrap intervals over languages (:func:`language_bootstrap`) for Pearson's r and Spearman's rho
    between ``x`` and ``y``, paired as in :func:`correlation` (NaN pairs dropped; NaN with fewer than 3)."""
    xs, ys = _paired(x, y)
    keep = ~(np.isnan(xs) | np.isnan(ys))
    out = {"pearson_low": np.nan, "pearson_high": np.nan, "spearman_low": np.nan, "spearman_high": np.nan}
    if keep.sum() >= 3:
        for name, statistic in (("pearson", pearson), ("spearman", spearman)):
            out[f"{name}_low"], out[f"{name}_high"] = language_bootstrap(
                statistic, xs[keep], ys[keep], n_resamples=n_resamples, seed=seed, confidence=confidence)
    return out


def _paired(x, y) -> tuple[np.ndarray, np.ndarray]:
    """Two float arrays of equal length: Series are aligned on their index (outer join), others as given."""
    if isinstance(x, pd.Series) and isinstance(y, pd.Series):
        x, y = x.align(y, join="outer")
    xs, ys = np.asarray(x, dtype=float).ravel(), np.asarray(y, dtype=float).ravel()
    if len(xs) != len(ys):
        raise ValueError(f"x and y must pair up: {len(xs)} values against {len(ys)}")
    return xs, ys
