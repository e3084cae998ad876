"""Statistics on results tables, checked on hand-made data with known answers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from xlpeft.analysis import stats as S
from xlpeft.errors import XlpeftError


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


def test_gain_is_the_difference_of_seed_means_per_language():
    results = pd.DataFrame({
        "regime": ["frozen", "frozen", "joint", "joint", "frozen", "joint"],
        "language": ["eng_Latn", "eng_Latn", "eng_Latn", "eng_Latn", "yor_Latn", "deu_Latn"],
        "accuracy": [0.6, 0.8, 0.5, 0.5, 0.3, 0.9],
    })
    g = S.gain(results, "regime", "frozen", "joint")
    assert g["eng_Latn"] == pytest.approx(0.2)
    assert math.isnan(g["yor_Latn"]) and math.isnan(g["deu_Latn"])  # evaluated in one regime only
    with pytest.raises(XlpeftError, match="full"):
        S.gain(results, "regime", "frozen", "full")
