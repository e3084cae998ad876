"""The papers' claims as findings, on synthetic grids whose answer is known by construction.

Scores are built per (configuration, seed, language) with a fixed generator, so each effect is present,
absent or reversed on purpose; the seed noise is small next to the built-in effects and, where there is
no effect, large enough to leave the claim open.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from xlpeft.analysis import findings as F

SOURCE = "eng_Latn"
TARGETS = [f"l{i:02d}" for i in range(16)]
DISTANCE = np.linspace(0.2, 0.9, len(TARGETS))
DIST = {SOURCE: pd.DataFrame({"syntactic": [0.0, *DISTANCE]}, index=[SOURCE, *TARGETS])}
FAST = F.Bootstrap(n_resamples=500)


def _grid(axis: str, values: list, score, seeds: int = 4, noise: float = 0.005, others: dict | None = None):
    """``data`` and ``configs`` for configurations differing in ``axis``; ``score(value, language index, seed)``
    is the noise-free score of a target (the source scores 0.9), plus normal noise of sd ``noise``."""
    rng = np.random.default_rng(0)
    others = others or {}
    configs, rows = [], []
    for value in values:
        label = f"{axis}={value}"
        configs.append({"configuration": label, F.axis_column(axis): value, **others, "source": SOURCE})
        for seed in range(seeds):
            rows.append({"configuration": label, "seed": seed, "language": SOURCE, "value": 0.9})
            for i, language in enumerate(TARGETS):
                rows.append({"configuration": label, "seed": seed, "language": language,
                             "value": score(value, i, seed) + rng.normal(0, noise)})
    return pd.DataFrame(rows), pd.DataFrame(configs), [axis, *others]


def _only(data, configs, axes):
    [finding] = F.findings(data, configs, axes, DIST, "syntactic", FAST)
    return finding


def test_verdict_rules():
    assert F.verdict(3, [(0.1, 0.5), (0.2, 0.4)], 0.0, +1) == F.SUPPORTED
    assert F.verdict(3, [(-0.5, -0.1), (-0.4, -0.2)], 0.0, +1) == F.CONTRADICTED
    assert F.verdict(3, [(0.1, 0.5), (-0.1, 0.4)], 0.0, +1) == F.INCONCLUSIVE  # languages disagree
    assert F.verdict(3, [(0.1, 0.5), (float("nan"), float("nan"))], 0.0, +1) == F.INCONCLUSIVE
    assert F.verdict(2, [(0.1, 0.5), (0.2, 0.4)], 0.0, +1) == F.UNDERPOWERED  # two seeds: whatever the intervals
    assert F.verdict(5, [(55.0, 70.0), (60.0, 80.0)], 50.0, +1) == F.SUPPORTED
    assert F.verdict(5, [(-3.0, -1.0), (-2.0, -0.5)], 0.0, -1) == F.SUPPORTED


def test_frozen_gain_growing_with_distance_is_supported():
    # frozen - joint gain = 0.3 * distance - 0.1 per target: 3 points per 0.1 of distance
    data, configs, axes = _grid("regime", ["prompt", "joint"],
                                lambda regime, i, seed: 0.5 + (0.3 * DISTANCE[i] - 0.1 if regime == "prompt" else 0))
    finding = _only(data, configs, axes)
    assert finding.claim == F.DISTANT.text and finding.comparison == "regime prompt - joint"
    assert finding.estimate == pytest.approx(3.0, abs=0.1)
    assert finding.seed_low > 0 and finding.language_low > 0 and finding.p < 0.01
    assert (finding.seeds, finding.languages, finding.verdict) == (4, 16, F.SUPPORTED)


def test_no_effect_is_inconclusive_and_a_falling_gain_contradicted():
    # no effect of distance, seed noise 3 points: the intervals hold 0
    data, configs, axes = _grid("regime", ["prompt", "joint"], lambda regime, i, seed: 0.5, noise=0.03)
    assert _only(data, configs, axes).verdict == F.INCONCLUSIVE
    data, configs, axes = _grid("regime", ["prompt", "joint"],
                                lambda regime, i, seed: 0.5 - (0.3 * DISTANCE[i] if regime == "prompt" else 0))
    assert _only(data, configs, axes).verdict == F.CONTRADICTED


def test_two_seeds_are_underpowered_and_give_no_p_value():
    data, configs, axes = _grid("regime", ["prompt", "joint"],
                                lambda regime, i, seed: 0.5 + (0.3 * DISTANCE[i] if regime == "prompt" else 0), seeds=2)
    finding = _only(data, configs, axes)
    assert finding.verdict == F.UNDERPOWERED and np.isnan(finding.p) and finding.seeds == 2
    assert finding.estimate == pytest.approx(3.0, abs=0.1)  # the estimate is still given


def test_shorter_prompts_slope_per_doubling():
    # every doubling of L costs 2 points on every target: slope -2 per doubling, supported
    data, configs, axes = _grid("prompt_length", [4, 8, 16, 32], lambda length, i, seed: 0.6 - 0.02 * np.log2(length))
    finding = _only(data, configs, axes)
    assert finding.claim == F.SHORTER.text and finding.comparison == "prompt_length 4, 8, 16, 32"
    assert finding.estimate == pytest.approx(-2.0, abs=0.05) and finding.verdict == F.SUPPORTED
    flat, configs, axes = _grid("prompt_length", [4, 16], lambda length, i, seed: 0.6, noise=0.03)
    assert _only(flat, configs, axes).verdict == F.INCONCLUSIVE


def test_reparameterization_sign_changes_beyond_seed_noise():
    # mlp helps the first half of the targets by 10 points and hurts the second half by 10: supported
    data, configs, axes = _grid("reparam", ["none", "mlp"],
                                lambda reparam, i, seed: 0.5 + (0.1 if i < 8 else -0.1) * (reparam == "mlp"), seeds=5)
    finding = _only(data, configs, axes)
    assert finding.comparison == "reparam mlp - none" and finding.verdict == F.SUPPORTED
    assert finding.detail.startswith("8 language(s) helped, 8 hurt") and finding.estimate == pytest.approx(0, abs=0.5)
    # mlp helps every target by 10 points: a uniform effect, which contradicts the claim
    data, configs, axes = _grid("reparam", ["none", "mlp"], lambda reparam, i, seed: 0.5 + 0.1 * (reparam == "mlp"),
                                seeds=5)
    finding = _only(data, configs, axes)
    assert finding.verdict == F.CONTRADICTED and finding.detail.startswith("16 language(s) helped, 0 hurt")
    # the same differences as the first grid drowned in seed noise: no language is clear
    data, configs, axes = _grid("reparam", ["none", "mlp"],
                                lambda reparam, i, seed: 0.5 + (0.01 if i < 8 else -0.01) * (reparam == "mlp"),
                                seeds=3, noise=0.05)
    assert _only(data, configs, axes).verdict == F.INCONCLUSIVE


def test_slp_ta_wins_in_most_languages():
    # slp+ta is 5 points above ta on 14 of 16 targets and 5 below on 2: 87.5 % of languages
    data, configs, axes = _grid("configuration", ["slp+ta", "ta"],
                                lambda config, i, seed: 0.5 + 0.05 * (config == "slp+ta") * (1 if i < 14 else -1))
    finding = _only(data, configs, axes)
    assert finding.comparison == "configuration slp+ta vs ta" and finding.null == 50.0
    assert finding.estimate == pytest.approx(87.5) and finding.verdict == F.SUPPORTED
    # the language interval is Clopper-Pearson for 14 of 16: scipy's exact interval, [61.7, 98.4] %
    assert (finding.language_low, finding.language_high) == pytest.approx((61.65, 98.45), abs=0.01)
    # 4 targets of 4 won: an exact interval from 39.8 %, so however clear the seeds, not "most languages" yet
    few = data[data["language"].isin([SOURCE, *TARGETS[:4]])]
    finding = _only(few, configs, axes)
    assert finding.estimate == 100.0 and finding.language_low == pytest.approx(39.76, abs=0.01)
    assert finding.verdict == F.INCONCLUSIVE


def test_claims_apply_only_where_the_grid_has_their_configurations():
    data, configs, axes = _grid("regime", ["prompt", "full"], lambda regime, i, seed: 0.5)
    assert F.findings(data, configs, axes, DIST, "syntactic", FAST) == []
    # regime x prompt length: one distance finding per length, one length finding per regime, held fixed
    rows, frames = [], []
    for length in (4, 16):
        data, configs, axes = _grid("regime", ["prompt", "joint"], lambda regime, i, seed: 0.5,
                                    others={"prompt_length": length})
        relabel = {c: f"{c}, L={length}" for c in configs["configuration"]}
        rows.append(data.replace({"configuration": relabel}))
        frames.append(configs.replace({"configuration": relabel}))
    result = F.findings(pd.concat(rows), pd.concat(frames, ignore_index=True), axes, DIST, "syntactic", FAST)
    assert [(f.claim, f.comparison) for f in result] == [
        (F.DISTANT.text, "regime prompt - joint at prompt_length=4"),
        (F.DISTANT.text, "regime prompt - joint at prompt_length=16"),
        (F.SHORTER.text, "prompt_length 4, 16 at regime=prompt"),
        (F.SHORTER.text, "prompt_length 4, 16 at regime=joint")]
    assert all(f.languages == 16 for f in result)  # the source is left out
