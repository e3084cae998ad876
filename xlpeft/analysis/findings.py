"""The papers' claims as findings: each claim that a grid can test, restated as a test with its effect
size, intervals, numbers of seeds and languages, and a verdict.

The claims (../shared/docs/methods.md):

- Philippy et al. (2024): freezing the model helps distant languages (the frozen - joint gain grows with
  distance from the source); shorter prompts transfer better; reparameterization helps some languages
  and hurts others.
- Vykopal et al. (2025): SLP + TA beats the other configurations in most languages.

A claim applies when the grid has configurations that differ only in the axis it is about (``regime``
prompt vs joint, several ``prompt_length`` values, ``reparam`` none vs another, ``configuration`` slp+ta
vs others); one finding per such comparison, the other axes held fixed. Claims are about transfer, so
the source language (every one of a set of sources) is left out. Every finding is computed on gains
paired on seed and language: seed ``s`` of one configuration against seed ``s`` of the other, on the
same language. The claims are about the methods, not about one dataset, so they are tested on any
task's grid, with the grid's metric (the papers made them on their own tasks: the report says which).

Each finding has two intervals. The **seed interval** is Student's t over one value per seed (the
statistic computed on that seed's languages): training noise, the unit of replication. The **language
interval** is a bootstrap over languages of the statistic computed on the seed means (for a share of
languages, the exact binomial interval): would other languages say the same? The verdict (:func:`verdict`) asks both to agree, and needs at least
:data:`~xlpeft.analysis.stats.MIN_SEEDS` seeds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from xlpeft.analysis.facts import source_languages
from xlpeft.analysis.stats import MIN_SEEDS, holm, language_bootstrap, seed_test, slope

SUPPORTED, CONTRADICTED, INCONCLUSIVE, UNDERPOWERED = "supported", "contradicted", "inconclusive", "underpowered"
PHILIPPY, VYKOPAL = "Philippy et al. 2024", "Vykopal et al. 2025"
PAPER_TASKS = {PHILIPPY: "SIB-200", VYKOPAL: "extractive QA, WikiANN NER, XNLI and claim detection"}  # methods.md


@dataclass(frozen=True)
class Claim:
    """A published claim: its words as the report gives them, the paper, and what a grid needs to test it."""

    text: str
    paper: str
    needs: str


DISTANT = Claim("freezing the model helps distant languages: the frozen - joint gain grows with distance from "
                "the source", PHILIPPY, "regime prompt and joint")
SHORTER = Claim("shorter prompts transfer better", PHILIPPY, "two or more prompt lengths")
REPARAM = Claim("reparameterization helps some languages and hurts others", PHILIPPY, "reparam none and mlp")
SLP_TA = Claim("SLP + TA beats the other configurations in most languages", VYKOPAL, "configuration slp+ta and others")
CLAIMS = (DISTANT, SHORTER, REPARAM, SLP_TA)


@dataclass(frozen=True)
class Bootstrap:
    """How language intervals are drawn: recorded in the report so that its numbers can be reproduced."""

    n_resamples: int = 2000
    seed: int = 0
    confidence: float = 0.95


@dataclass(frozen=True)
class Finding:
    """One claim tested on one comparison. ``estimate`` and the intervals are in ``statistic``'s unit; the
    claim holds when the statistic lies on side ``direction`` (+1 above, -1 below, 0 see ``detail``) of
    ``null``. ``p`` is the t-test over seeds (NaN when underpowered)."""

    claim: str
    paper: str
    comparison: str
    statistic: str
    estimate: float
    seed_low: float
    seed_high: float
    p: float
    language_low: float
    language_high: float
    null: float
    direction: int
    seeds: int
    languages: int
    verdict: str
    detail: str = ""


def verdict(seeds: int, intervals: list[tuple[float, float]], null: float, direction: int) -> str:
    """``underpowered`` with fewer than :data:`MIN_SEEDS` seeds; ``supported`` when every interval lies
    wholly on the claimed side of ``null``; ``contradicted`` when every one lies wholly on the other side;
    ``inconclusive`` otherwise (an interval that holds ``null``, intervals that disagree, or a NaN one)."""
    if seeds < MIN_SEEDS:
        return UNDERPOWERED
    sides = {_side(low, high, null) for low, high in intervals}
    if sides == {direction}:
        return SUPPORTED
    if sides == {-direction}:
        return CONTRADICTED
    return INCONCLUSIVE


def findings(data: pd.DataFrame, configs: pd.DataFrame, axes: list[str], distance: dict[str, pd.DataFrame],
             kind: str, boot: Bootstrap = Bootstrap()) -> list[Finding]:
    """Every applicable claim on ``data`` (``configuration, seed, language, value``), ``configs`` (one row
    per configuration with its axis values and ``source``) and ``distance`` (source -> languages x kinds);
    ``kind`` is the distance the first claim is tested with. Configurations absent: no finding."""
    source = dict(zip(configs["configuration"], configs["source"]))
    languages = list(pd.unique(data["language"]))

    def targets(config: str) -> list[str]:  # the claims are about transfer: the source is left out
        return [language for language in languages if language not in source_languages(source[config])]

    out: list[Finding] = []
    for a, b, context in _pairs(configs, axes, "regime", "prompt", "joint"):
        column = distance[source[a]][kind].reindex(targets(a)).dropna()
        out.append(_frozen_gain_grows(data, a, b, context, column, kind, boot))
    for context, group in _length_contexts(configs, axes):
        out.append(_shorter_prompts(data, group, context, targets(group["configuration"].iloc[0]), boot))
    for value in sorted(_values(configs, axes, "reparam") - {"none"}):
        for a, b, context in _pairs(configs, axes, "reparam", value, "none"):
            out.append(_reparam_sign_changes(data, a, b, value, context, targets(a), boot))
    for other in sorted(_values(configs, axes, "configuration") - {"slp+ta"}):
        for a, b, context in _pairs(configs, axes, "configuration", "slp+ta", other):
            out.append(_slp_ta_wins(data, a, b, other, context, targets(a), boot))
    return out


# --- the claims --------------------------------------------------------------------------------------

def _frozen_gain_grows(data, a, b, context, distance: pd.Series, kind, boot) -> Finding:
    """Slope of the per-language gain frozen - joint on ``distance`` (the targets that have it), in
    points per 0.1 of distance."""
    targets = list(distance.index)
    gains, _ = paired_gains(data, a, b, targets)
    x = distance.to_numpy(dtype=float)
    per_seed = 10 * slope(x, gains)  # fraction per unit distance -> points per 0.1
    interval = language_bootstrap(lambda g, d: 10 * slope(d, g.mean(axis=-2)), gains, x, **_kw(boot))
    return _finding(DISTANT, f"regime prompt - joint{context}",
                    f"slope of the gain on {kind} distance, pp per 0.1", per_seed, interval, 0.0, +1, len(targets),
                    boot)


def _shorter_prompts(data, group, context, targets, boot) -> Finding:
    """Slope of the mean over target languages on log2(prompt length): points per doubling of L."""
    group = group.sort_values("prompt_length")
    labels = list(group["configuration"])
    seeds = sorted(set.intersection(*(set(data.loc[data["configuration"] == label, "seed"]) for label in labels)))
    scores = np.stack([_matrix(data, label, seeds, targets) for label in labels])  # lengths x seeds x languages
    log_length = np.log2(group["prompt_length"].to_numpy(dtype=float))
    per_seed = 100 * slope(log_length, scores.mean(axis=-1).T)
    interval = language_bootstrap(lambda s: 100 * slope(log_length, s.mean(axis=(-1, -2))), scores, **_kw(boot))
    lengths = ", ".join(str(int(length)) for length in group["prompt_length"])
    return _finding(SHORTER, f"prompt_length {lengths}{context}",
                    "slope of the mean score on log2 L, pp per doubling", per_seed, interval, 0.0, -1, len(targets),
                    boot)


def _reparam_sign_changes(data, a, b, value, context, targets, boot) -> Finding:
    """Per language, the gain a - b tested over seeds (Holm over languages): how many languages it
    significantly helps and hurts. Supported when both happen; contradicted when only one direction does
    and the mean gain too lies on that side; the mean gain is the finding's estimate."""
    gains, seeds = paired_gains(data, a, b, targets)
    helped = hurt = 0
    if len(seeds) >= MIN_SEEDS:
        p = holm(stats.ttest_1samp(gains, 0.0, axis=0).pvalue)
        significant = p < 1 - boot.confidence
        means = gains.mean(axis=0)
        helped, hurt = int((significant & (means > 0)).sum()), int((significant & (means < 0)).sum())
    test = seed_test(100 * gains.mean(axis=-1), 0.0, boot.confidence)
    interval = language_bootstrap(lambda g: 100 * g.mean(axis=(-1, -2)), gains, **_kw(boot))
    if test.underpowered:
        result = UNDERPOWERED
    elif helped and hurt:
        result = SUPPORTED
    elif (helped or hurt) and verdict(test.seeds, [(test.low, test.high), interval], 0.0, 1 if helped else -1) == SUPPORTED:
        result = CONTRADICTED  # one direction only, everywhere it is clear: a uniform effect, not sign changes
    else:
        result = INCONCLUSIVE
    detail = (f"{helped} language(s) helped, {hurt} hurt beyond seed noise (t over seeds per language, Holm "
              f"over {len(targets)})" if not test.underpowered else "")
    return Finding(REPARAM.text, REPARAM.paper, f"reparam {value} - none{context}",
                   "mean gain, pp", test.mean, test.low, test.high, test.p, *interval, 0.0, 0, test.seeds,
                   len(targets), result, detail)


def _slp_ta_wins(data, a, b, other, context, targets, boot) -> Finding:
    """Share of target languages (%) where slp+ta scores above the other configuration, paired on seed. The
    language interval is Clopper and Pearson's exact binomial interval for the share of languages won on
    the seed means (scipy's ``binomtest``) rather than a bootstrap: with few languages all won, a bootstrap
    can only draw 100 %, while 4 languages of 4 leave the share anywhere above 40 %."""
    gains, _ = paired_gains(data, a, b, targets)
    per_seed = 100 * (gains > 0).mean(axis=-1)
    won = gains.mean(axis=0) > 0
    exact = stats.binomtest(int(won.sum()), len(won)).proportion_ci(boot.confidence) if len(won) else None
    interval = (100 * exact.low, 100 * exact.high) if exact else (np.nan, np.nan)
    return _finding(SLP_TA, f"configuration slp+ta vs {other}{context}",
                    "% of languages where slp+ta scores higher", per_seed, interval, 50.0, +1, len(targets), boot)


# --- pieces ------------------------------------------------------------------------------------------

def paired_gains(data: pd.DataFrame, a: str, b: str, languages: list[str]) -> tuple[np.ndarray, list]:
    """Seeds x languages matrix of ``a - b``, paired on seed (the seeds both configurations have) and
    language; also those seeds."""
    seeds = sorted(set(data.loc[data["configuration"] == a, "seed"]) & set(data.loc[data["configuration"] == b, "seed"]))
    return _matrix(data, a, seeds, languages) - _matrix(data, b, seeds, languages), seeds


def _matrix(data: pd.DataFrame, config: str, seeds: list, languages: list[str]) -> np.ndarray:
    rows = data[data["configuration"] == config]
    table = rows.pivot_table(index="seed", columns="language", values="value", aggfunc="mean")
    return table.reindex(index=seeds, columns=languages).to_numpy(dtype=float)


def _finding(claim: Claim, comparison, statistic, per_seed, interval, null, direction, languages, boot) -> Finding:
    test = seed_test(per_seed, null, boot.confidence)
    return Finding(claim.text, claim.paper, comparison, statistic, test.mean, test.low, test.high, test.p, *interval, null,
                   direction, test.seeds, languages, verdict(test.seeds, [(test.low, test.high), interval], null,
                                                             direction))


def _side(low: float, high: float, null: float) -> int:
    return 1 if low > null else -1 if high < null else 0  # NaN compares False: no side


def _kw(boot: Bootstrap) -> dict:
    return {"n_resamples": boot.n_resamples, "seed": boot.seed, "confidence": boot.confidence}


def _values(configs: pd.DataFrame, axes: list[str], axis: str) -> set:
    return set(configs[axis_column(axis)]) if axis in axes else set()


def _pairs(configs: pd.DataFrame, axes: list[str], axis: str, a_value, b_value) -> list[tuple[str, str, str]]:
    """``(a, b, context)``: configurations with ``axis`` at ``a_value`` and ``b_value`` and every other axis
    equal; ``context`` names those other axes' values (" at x=1")."""
    if axis not in axes:
        return []
    others = [other for other in axes if other != axis]
    column = configs[axis_column(axis)]
    pairs = []
    for _, a in configs[column == a_value].iterrows():
        for _, b in configs[column == b_value].iterrows():
            if all(same(a[axis_column(other)], b[axis_column(other)]) for other in others):
                pairs.append((a["configuration"], b["configuration"], _context(a, others)))
    return pairs


def _length_contexts(configs: pd.DataFrame, axes: list[str]) -> list[tuple[str, pd.DataFrame]]:
    """Groups of configurations that differ only in a positive prompt length, at least two lengths each."""
    if "prompt_length" not in axes:
        return []
    others = [axis for axis in axes if axis != "prompt_length"]
    prompted = configs[configs["prompt_length"].astype(float) > 0]
    groups = (prompted.groupby([axis_column(axis) for axis in others], sort=False, dropna=False) if others
              else [((), prompted)])
    return [(_context(group.iloc[0], others), group) for _, group in groups if group["prompt_length"].nunique() >= 2]


def _context(row: pd.Series, others: list[str]) -> str:
    return (" at " + ", ".join(f"{axis}={show(row[axis_column(axis)], axis)}" for axis in others)) if others else ""


def show(value, axis: str = "") -> str:
    """A setting as labels show it: a local model directory by its name rather than its absolute path, a
    whole number without '.0' (Parquet stores an integer column with a missing value as floats), and a
    missing value by its meaning (``shots`` None is the whole training split)."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "all" if axis == "shots" else "none"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return Path(value).name if isinstance(value, str) and value.startswith("/") else str(value)


def axis_column(axis: str) -> str:
    """The column of a configurations table that holds a grid axis: the axis's name, except for method B's
    ``configuration`` axis, whose name is taken by the configurations' labels."""
    return "configuration_axis" if axis == "configuration" else axis


def same(a, b) -> bool:
    """Equal settings, two missing values included."""
    return bool((pd.isna(a) and pd.isna(b)) or a == b)


