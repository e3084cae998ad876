"""Statistics on results tables: intervals over seeds, correlations, paired tests between configurations.

A results table has one row per (run, language) with an ``accuracy`` column (``xlpeft evaluate``'s
CSV); the configuration columns (``regime``, ``prompt_length``, ``seed``...) say which run is which.
Small samples are the rule here (3 to 5 seeds), so intervals use Student's t, one seed gives NaN
bounds rather than a zero-width interval, and every function reports how many values it used.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from xlpeft.errors import XlpeftError


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


def paired_comparison(a: pd.Series, b: pd.Series) -> dict[str, float | int]:
    """Compare two configurations over the same languages: ``a`` and ``b`` are paired by index.

    Returns the mean difference ``a - b``; the Wilcoxon signed-rank statistic and two-sided p (scipy's
    defaults: zero differences are dropped, exact p for small samples), which assumes nothing about
    the differences' distribution; the paired t-test's t and p; ``n`` pairs used and ``n_dropped``
    (NaN or unmatched); and ``wins``/``ties``/``losses`` of ``a`` against ``b``. Fewer than 2 pairs
    give NaN tests.
    """
    xs, ys = _paired(a, b)
    keep = ~(np.isnan(xs) | np.isnan(ys))
    diff = xs[keep] - ys[keep]
    n = len(diff)
    out: dict[str, float | int] = {
        "mean_diff": float(diff.mean()) if n else np.nan,
        "wilcoxon_stat": np.nan, "wilcoxon_p": np.nan, "t": np.nan, "t_p": np.nan,
        "n": n, "n_dropped": int(len(xs) - n),
        "wins": int((diff > 0).sum()), "ties": int((diff == 0).sum()), "losses": int((diff < 0).sum()),
    }
    if n >= 2:
        if (diff != 0).any():  # scipy cannot rank an all-zero sample
            wilcoxon = stats.wilcoxon(diff)
            out.update(wilcoxon_stat=float(wilcoxon.statistic), wilcoxon_p=float(wilcoxon.pvalue))
        ttest = stats.ttest_rel(xs[keep], ys[keep])
        out.update(t=float(ttest.statistic), t_p=float(ttest.pvalue))
    return out


def gain(results: pd.DataFrame, config_col: str, a, b, value: str = "accuracy",
         language_col: str = "language") -> pd.Series:
    """Per language, mean ``value`` over the rows with ``config_col == a`` minus that with ``== b``.

    E.g. ``gain(results, "regime", "frozen", "joint")``: the mean is over seeds, so filter the table
    first if other columns (model, prompt length) vary too. Indexed by language, ready for
    :func:`correlation` against a distance column; a language evaluated in only one of the two
    configurations gets NaN, which :func:`correlation` then counts as dropped.
    """
    means = results.groupby([config_col, language_col])[value].mean()
    if a not in means.index.get_level_values(0) or b not in means.index.get_level_values(0):
        present = sorted(map(str, means.index.get_level_values(0).unique()))
        raise XlpeftError(f"{config_col} must contain both {a!r} and {b!r}; it has {', '.join(present)}: pick two of those")
    return (means.loc[a] - means.loc[b]).rename(f"{value}_gain")


def _paired(x, y) -> tuple[np.ndarray, np.ndarray]:
    """Two float arrays of equal length: Series are aligned on their index (outer join), others as given."""
    if isinstance(x, pd.Series) and isinstance(y, pd.Series):
        x, y = x.align(y, join="outer")
    xs, ys = np.asarray(x, dtype=float).ravel(), np.asarray(y, dtype=float).ravel()
    if len(xs) != len(ys):
        raise ValueError(f"x and y must pair up: {len(xs)} values against {len(ys)}")
    return xs, ys
