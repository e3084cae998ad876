"""Statistics on results tables, checked on hand-made data with known answers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from xlpeft.analysis import stats as S


def test_mean_ci_matches_a_hand_computed_t_interval():
    # values 1, 2, 3: mean 2, s = 1, n = 3; t(0.975, 2) = 4.302652729911275
    mean, low, high, n = S.mean_ci([1.0, 2.0, 3.0])
    half = 4.302652729911275 * 1.0 / math.sqrt(3)
    assert (mean, n) == (2.0, 3)
    assert low == pytest.approx(2 - half) and high == pytest.approx(2 + half)
    # a 90% interval is narrower: t(0.95, 2) = 2.919985580355516
    _, low90, _, _ = S.mean_ci([1.0, 2.0, 3.0], confidence=0.90)
    assert low90 == pytest.approx(2 - 2.919985580355516 / math.sqrt(3))


def test_mean_ci_one_value_has_nan_bounds_not_zero_width():
    mean, low, high, n = S.mean_ci([0.7])
    assert mean == 0.7 and n == 1 and math.isnan(low) and math.isnan(high)
    assert all(math.isnan(v) for v in S.mean_ci([])[:3]) and S.mean_ci([])[3] == 0


def test_summarize_over_seeds_per_group():
    results = pd.DataFrame({
        "regime": ["frozen"] * 4 + ["joint"],
        "language": ["eng_Latn", "eng_Latn", "eng_Latn", "yor_Latn", "eng_Latn"],
        "seed": [0, 1, 2, 0, 0],
        "accuracy": [0.1, 0.2, 0.3, 0.5, 0.9],
    })
    table = S.summarize(results, ["regime", "language"]).set_index(["regime", "language"])
    assert list(table.columns) == ["mean", "ci_low", "ci_high", "n"]
    row = table.loc[("frozen", "eng_Latn")]
    assert row["mean"] == pytest.approx(0.2) and row["n"] == 3
    assert row["ci_high"] - row["mean"] == pytest.approx(4.302652729911275 * 0.1 / math.sqrt(3))
    assert math.isnan(table.loc[("joint", "eng_Latn"), "ci_low"])
    pooled = S.summarize(results, ["regime"]).set_index("regime")
    assert pooled.loc["frozen", "n"] == 4 and pooled.loc["frozen", "mean"] == pytest.approx(0.275)


def test_correlation_of_a_linear_relation_drops_nan_pairs():
    x = pd.Series([1.0, 2.0, 3.0, 4.0, np.nan], index=list("abcde"))
    y = pd.Series([30.0, 10.0, 20.0, 40.0, 7.0, 8.0], index=list("cabdef"))  # f has no x: dropped too
    result = S.correlation(x, 3 * y)
    assert result["n"] == 4 and result["n_dropped"] == 2
    assert result["pearson_r"] == pytest.approx(1.0) and result["spearman_rho"] == pytest.approx(1.0)
    assert result["pearson_p"] < 1e-6
    falling = S.correlation([1, 2, 3, 4], [8, 6, 4, 2])
    assert falling["pearson_r"] == pytest.approx(-1.0) and falling["n_dropped"] == 0
    assert math.isnan(S.correlation([1, 2], [3, 4])["pearson_r"])


def test_spearman_is_rank_based():
    result = S.correlation([1, 2, 3, 4, 5], [1, 4, 9, 16, 1000])
    assert result["spearman_rho"] == pytest.approx(1.0) and result["pearson_r"] < 1.0


def test_seed_test_is_students_t_over_seeds_and_underpowered_below_three():
    # per-seed gains 1, 2, 3: mean 2, s = 1, t = 2 / (1 / sqrt 3) with 2 degrees of freedom
    result = S.seed_test([1.0, 2.0, 3.0])
    assert (result.mean, result.seeds, result.underpowered) == (2.0, 3, False)
    assert result.p == pytest.approx(2 * stats.t.sf(2 * math.sqrt(3), 2))
    assert result.low == pytest.approx(2 - 4.302652729911275 / math.sqrt(3))
    assert S.seed_test([1.0, 2.0, 3.0], null=2.0).p == pytest.approx(1.0)
    two = S.seed_test([1.0, 3.0, np.nan])  # a seed missing in one configuration is not counted
    assert two.seeds == 2 and two.underpowered and math.isnan(two.p)
    assert two.high - two.mean == pytest.approx(12.706204736174707 * math.sqrt(2) / math.sqrt(2))


def test_language_bootstrap_of_a_mean_agrees_with_scipy_and_is_deterministic():
    x = np.random.default_rng(1).normal(size=40)
    ours = S.language_bootstrap(lambda v: v.mean(axis=-1), x, n_resamples=20000)
    scipys = stats.bootstrap((x,), np.mean, method="percentile", n_resamples=20000, rng=2).confidence_interval
    assert ours == pytest.approx((scipys.low, scipys.high), abs=0.01)  # Monte Carlo error of either, ~0.005
    assert S.language_bootstrap(lambda v: v.mean(axis=-1), x, n_resamples=20000) == ours


def test_language_bootstrap_keeps_a_languages_seeds_together():
    # seeds x languages: every seed has the same value per language, so resampling languages whole gives the
    # bootstrap of the language values; resampling each seed's languages independently would narrow it
    languages = np.arange(10.0)
    matrix = np.tile(languages, (3, 1))
    whole = S.language_bootstrap(lambda m: m.mean(axis=(-1, -2)), matrix, n_resamples=5000)
    alone = S.language_bootstrap(lambda v: v.mean(axis=-1), languages, n_resamples=5000)
    assert whole == pytest.approx(alone)
    # languages all alike, only seeds differ: no language variation, a zero-width interval over languages
    flat = np.array([[1.0] * 10, [2.0] * 10, [3.0] * 10])
    assert S.language_bootstrap(lambda m: m.mean(axis=(-1, -2)), flat) == pytest.approx((2.0, 2.0))


def test_language_bootstrap_drops_undefined_resamples():
    x, y = np.array([0.0, 0.0, 0.0, 1.0]), np.array([1.0, 2.0, 3.0, 4.0])
    low, high = S.language_bootstrap(S.pearson, x, y, n_resamples=4000)  # ~32 % of resamples lack the 1: NaN r
    assert 0 < low <= high <= 1
    assert all(math.isnan(v) for v in S.language_bootstrap(S.pearson, np.zeros(4), y))  # always undefined


def test_vectorised_statistics_match_scipy_row_by_row():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(5, 12)), rng.normal(size=(5, 12))
    y[0, :6] = 1.0  # ties
    for row in range(5):
        assert S.pearson(x, y)[row] == pytest.approx(stats.pearsonr(x[row], y[row]).statistic)
        assert S.spearman(x, y)[row] == pytest.approx(stats.spearmanr(x[row], y[row]).statistic)
        assert S.slope(x, y)[row] == pytest.approx(stats.linregress(x[row], y[row]).slope)


def test_correlation_ci_agrees_with_scipys_paired_bootstrap():
    rng = np.random.default_rng(3)
    x = rng.normal(size=30)
    y = x + rng.normal(size=30)
    ours = S.correlation_ci(pd.Series(x), pd.Series(y), n_resamples=20000)
    scipys = stats.bootstrap((x, y), lambda a, b, axis=-1: stats.pearsonr(a, b, axis=axis).statistic, paired=True,
                             vectorized=True, method="percentile",
                             n_resamples=20000, rng=5).confidence_interval
    assert (ours["pearson_low"], ours["pearson_high"]) == pytest.approx((scipys.low, scipys.high), abs=0.02)
    assert ours["spearman_low"] < stats.spearmanr(x, y).statistic < ours["spearman_high"]
    assert all(math.isnan(v) for v in S.correlation_ci([1.0, 2.0], [3.0, 4.0]).values())


def test_holm_by_hand_and_against_statsmodels():
    # sorted 0.01, 0.03, 0.04 times 3, 2, 1: 0.03, 0.06, 0.04 -> step-down keeps them non-decreasing: 0.06
    adjusted = S.holm([0.01, 0.04, np.nan, 0.03])
    assert adjusted[[0, 1, 3]] == pytest.approx([0.03, 0.06, 0.06]) and math.isnan(adjusted[2])
    p = np.array([0.001, 0.02, 0.2, 0.04, 0.5, 0.011])
    assert S.holm(p) == pytest.approx(multipletests(p, method="holm")[1])
    assert math.isnan(S.holm([np.nan])[0])


def test_seed_test_without_seed_variation_has_no_p_value():
    result = S.seed_test([0.5, 0.5, 0.5])
    assert (result.low, result.high) == (0.5, 0.5) and math.isnan(result.p)


def test_holm_matches_statsmodels_on_random_families():
    rng = np.random.default_rng(7)
    for size in (1, 2, 6, 52):
        p = rng.uniform(0, 0.2, size) ** 2
        p[: size // 3] = p[0]  # ties
        assert S.holm(p) == pytest.approx(multipletests(p, method="holm")[1])
