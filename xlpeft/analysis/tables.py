"""The tables and statistics of ``xlpeft report``, computed from a grid's results store into one
:class:`Report` (rendered to files by :mod:`xlpeft.analysis.render`).

**Configurations.** A configuration is one combination of the grid's axes other than ``seed``; its runs
(one per seed) are repetitions. Axis values are the runs' resolved settings (``cfg_<axis>``), so a
``full`` run, which trains no prompt, reads ``prompt_length=0`` whatever the grid listed.

**What the statistics treat as draws.** Seeds are the unit of replication: languages scored by the same
trained prompt share its training noise, so they are not independent replicates. A configuration's summary
averages each run over languages, then takes Student's t over those per-seed means. A gain a - b is paired
on seed and language, averaged over languages per seed, and tested over seeds (no p-value with fewer than
3 seeds: "underpowered"); a bootstrap over languages says whether it depends on which languages were
evaluated. Correlations with distance run across languages (each language's mean over seeds), with
bootstrap intervals over languages and Holm's correction across the six distances. The papers' claims
are restated as findings with verdicts (:mod:`xlpeft.analysis.findings`). Bootstraps are seeded
(:data:`BOOTSTRAP`), so a report is reproducible.

**Gains** compare every two configurations that differ in exactly one axis, as a - b where a holds the
value that comes first in the grid (``regime: [prompt, joint]`` gives prompt - joint).

**Truncation.** When the store records how many inputs were cut to the text budget (``n_truncated`` and
``n`` on each row), the report gives the share per language and configuration and warns where a
language loses more than 5 % or two compared configurations cut differently (a longer prompt leaves less
room for the text).

**Languages** are those every run was evaluated on, so that every configuration is measured on the same
set; any other is named in the report. URIEL distances are from each configuration's source language
(``cfg_source``), looked up under the task's ISO 639-3 codes (``Task.iso_code``), so NusaX's, MasakhaNER's
and XQuAD's codes find URIEL as SIB-200's do; from a set of source languages (``eng_Latn,fra_Latn``), the
distance to the nearest of them, per kind. A missing distance stays missing: the language is left out of
that correlation and ``n`` says how many remain.

**The task** (the grid's, from its first run) gives the metrics a report can be about (its metric columns,
its community's first by default), the languages' names, and the majority and chance baselines computed from
its data (:mod:`xlpeft.analysis.facts`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import pandas as pd

from xlpeft.analysis import facts
from xlpeft.analysis.findings import Bootstrap, Finding, axis_column, findings, paired_gains, same, show
from xlpeft.analysis.stats import correlation, correlation_ci, holm, language_bootstrap, mean_ci, seed_test, summarize
from xlpeft.config import TrainConfig
from xlpeft.data.distances import ALL_KINDS, coordinates, distances
from xlpeft.errors import XlpeftError
from xlpeft.experiments.store import GRID, load_results
from xlpeft.tasks import Task, task_for

CONFIDENCE = 0.95
BOOTSTRAP = Bootstrap(n_resamples=2000, seed=0, confidence=CONFIDENCE)  # recorded in the report's header
TOP = 3  # best and worst languages named per configuration
CORRELATION_STATS = ("pearson_r", "pearson_low", "pearson_high", "pearson_p", "pearson_p_holm",
                     "spearman_rho", "spearman_low", "spearman_high", "spearman_p", "spearman_p_holm", "n")
GAIN_COLUMNS = ["a", "b", "axis", "mean_gain", "ci_low", "ci_high", "p", "lang_low", "lang_high", "seeds", "n",
                "wins", "ties", "losses",
                *(f"{stat}_{kind}" for kind in ALL_KINDS for stat in CORRELATION_STATS)]


@dataclass
class Report:
    """Everything the report's files are made of, computed once by :func:`analyse`."""

    name: str
    split: str
    metric: str
    metric_name: str  # as the text names it (facts.metric_name): "macro-F1", "entity F1"
    task: str  # the dataset's title (facts.task_title): "SIB-200", "NusaX"
    labels: int  # classification: the task's number of labels; text tasks: 0
    names: dict[str, str]  # language (evaluated or source) -> English name ("" when unknown)
    coordinates: pd.DataFrame  # per language: latitude, longitude (data.distances.coordinates)
    baselines: facts.Baselines  # languages x (majority, chance) of the metric, or None and why
    axes: list[str]  # the grid's axes other than seed
    configs: pd.DataFrame  # see configurations()
    data: pd.DataFrame  # configuration, run_id, seed, language, value: the metric's rows
    languages: list[str]  # evaluated by every run, in the grid's order
    left_out: list[str]  # evaluated by some runs only
    distances: dict[str, pd.DataFrame]  # source -> languages x (kinds, missing_<kind>)
    means: pd.DataFrame  # languages x configurations: mean over seeds
    summary: pd.DataFrame
    per_language: pd.DataFrame
    correlations: pd.DataFrame
    gains: pd.DataFrame
    kind: str  # the distance the claims are tested with
    findings: list[Finding]
    truncation: pd.DataFrame | None  # languages x configurations: share of inputs cut; None if not recorded
    inputs: pd.Series | None  # per language: a run's number of inputs

    @property
    def summary_table(self) -> pd.DataFrame:
        """:attr:`summary` with each configuration's axis values, source and model first (``summary.csv``)."""
        columns = ["configuration", *map(axis_column, self.axes), "source", "model"]
        return self.configs[list(dict.fromkeys(columns))].merge(self.summary, on="configuration")

    @property
    def best(self) -> str:
        """The configuration with the highest mean (the world map shows it)."""
        return self.summary.loc[self.summary["mean"].idxmax(), "configuration"]


# --- tables ------------------------------------------------------------------------------------------

def configurations(results: pd.DataFrame, axes: list[str], run_order: list[str]) -> pd.DataFrame:
    """One row per configuration, in the grid's order (that of its first run): ``configuration`` (a
    label such as ``regime=prompt, prompt_length=4``), one column per axis other than seed (named by
    :func:`~xlpeft.analysis.findings.axis_column`), ``source``,
    ``model``, ``run_ids`` and ``seeds`` (how many runs). With no such axis there is one configuration,
    labelled by model and regime."""
    varying = [axis for axis in axes if axis != "seed"]
    runs = results.drop_duplicates("run_id").set_index("run_id")
    rank = {run_id: i for i, run_id in enumerate(run_order)}
    rows: dict[str, dict] = {}
    for run_id in sorted(runs.index, key=lambda run_id: (rank.get(run_id, len(rank)), run_id)):
        run = runs.loc[run_id]
        values = {axis: run[f"cfg_{axis}"] for axis in varying}
        label = (", ".join(f"{axis}={show(value, axis)}" for axis, value in values.items())
                 or f"{show(run['cfg_model'])} {run['cfg_regime']}")
        row = rows.setdefault(label, {"configuration": label, **{axis_column(axis): value for axis, value in values.items()},
                                      "source": run["cfg_source"],
                                      "model": run["cfg_model"], "run_ids": []})
        row["run_ids"].append(run_id)
    table = pd.DataFrame(list(rows.values()))
    return table.assign(seeds=table["run_ids"].map(len))


def metric_table(results: pd.DataFrame, configs: pd.DataFrame, metric: str,
                 order: list[str]) -> tuple[pd.DataFrame, list[str], list[str]]:
    """The metric's rows as ``configuration, run_id, seed, language, value``, kept to the languages that
    every run was evaluated on; also those languages (in ``order``, others after) and the ones left out."""
    rows = results[results["metric"] == metric]
    if rows.empty:
        raise XlpeftError(f"the results have no {metric!r} rows: choose --metric from "
                          f"{', '.join(sorted(results['metric'].unique()))}")
    runs_per_language = rows.groupby("language")["run_id"].nunique()
    complete = set(runs_per_language.index[runs_per_language == rows["run_id"].nunique()])
    if not complete:
        raise XlpeftError("no language was evaluated by every run: finish the grid with 'xlpeft run CONFIG --out DIR'")
    rank = {language: i for i, language in enumerate(order)}
    languages = sorted(complete, key=lambda language: (rank.get(language, len(rank)), language))
    config_of = {run_id: config for config, ids in zip(configs["configuration"], configs["run_ids"]) for run_id in ids}
    kept = rows[rows["language"].isin(complete)]
    data = pd.DataFrame({"configuration": kept["run_id"].map(config_of), "run_id": kept["run_id"],
                         "seed": kept["cfg_seed"], "language": kept["language"], "value": kept["value"].astype(float)})
    return data.reset_index(drop=True), languages, sorted(set(runs_per_language.index) - complete)


def language_means(data: pd.DataFrame, configs: pd.DataFrame, languages: list[str]) -> pd.DataFrame:
    """Languages x configurations: each language's metric averaged over a configuration's seeds."""
    means = data.pivot_table(index="language", columns="configuration", values="value", aggfunc="mean")
    return means.reindex(index=languages, columns=list(configs["configuration"]))


def summary(data: pd.DataFrame, configs: pd.DataFrame, confidence: float = CONFIDENCE) -> pd.DataFrame:
    """Per configuration: ``mean``, ``ci_low``, ``ci_high`` over seeds of each run's mean over languages,
    ``seeds``, ``languages``, and the ``best`` and ``worst`` :data:`TOP` languages by mean over seeds."""
    per_run = data.groupby(["configuration", "run_id"])["value"].mean()
    per_language = data.groupby(["configuration", "language"])["value"].mean()
    rows = []
    for config in configs["configuration"]:
        mean, low, high, n = mean_ci(per_run.loc[config], confidence)
        ranked = per_language.loc[config].sort_values(ascending=False, kind="stable")
        rows.append({"configuration": config, "mean": mean, "ci_low": low, "ci_high": high, "seeds": n,
                     "languages": len(ranked), "best": ", ".join(ranked.index[:TOP]),
                     "worst": ", ".join(ranked.index[::-1][:TOP])})
    return pd.DataFrame(rows)


def per_language(data: pd.DataFrame, configs: pd.DataFrame, languages: list[str],
                 dist: dict[str, pd.DataFrame], task: Task, baselines: pd.DataFrame | None = None,
                 confidence: float = CONFIDENCE) -> pd.DataFrame:
    """One row per language: name and script (from the task), the ``majority`` and ``chance`` baselines
    where there are some, then per configuration its mean over seeds and ``<config> ci95`` (the interval's
    half-width, NaN with one seed), then the URIEL distances from the source (named ``<kind> from <source>``
    when configurations have different sources)."""
    stats = summarize(data, ["configuration", "language"], "value", confidence).set_index(["configuration", "language"])
    names = facts.language_names(task, languages)
    table = pd.DataFrame({"language": languages, "name": [names[code] for code in languages],
                          "script": [task.language_info(code)[1] for code in languages]}).set_index("language")
    if baselines is not None:
        table = table.join(baselines)
    for config in configs["configuration"]:
        cells = stats.loc[config].reindex(languages)
        table[config] = cells["mean"]
        table[f"{config} ci95"] = cells["ci_high"] - cells["mean"]
    for source, frame in dist.items():
        for kind in ALL_KINDS:
            table[kind if len(dist) == 1 else f"{kind} from {source}"] = frame[kind].reindex(languages)
    return table.reset_index()


def correlations(means: pd.DataFrame, configs: pd.DataFrame, dist: dict[str, pd.DataFrame],
                 boot: Bootstrap = BOOTSTRAP) -> pd.DataFrame:
    """Per configuration and distance kind: Pearson and Spearman between the per-language mean and the
    distance from the configuration's source, with bootstrap intervals over languages and p-values
    Holm-adjusted across the six kinds (``*_p_holm``), over the *target* languages that have the distance
    (the source itself, at distance 0 and usually the best score, would inflate any correlation)."""
    rows = [{"configuration": config, "source": source, "kind": kind,
             **distance_correlation(means[config], dist[source][kind], source, boot)}
            for config, source in zip(configs["configuration"], configs["source"]) for kind in ALL_KINDS]
    table = pd.DataFrame(rows)
    for stat in ("pearson", "spearman"):
        table[f"{stat}_p_holm"] = table.groupby("configuration", sort=False)[f"{stat}_p"].transform(holm)
    return table


def distance_correlation(values: pd.Series, distance: pd.Series, source: str, boot: Bootstrap) -> dict:
    """:func:`correlation` and :func:`correlation_ci` of ``values`` with ``distance`` over the targets."""
    x, y = _targets(values, source), _targets(distance, source)
    return {**correlation(x, y), **correlation_ci(x, y, boot.n_resamples, boot.seed, boot.confidence)}


def _targets(values: pd.Series, source: str) -> pd.Series:
    return values.drop(index=facts.source_languages(source), errors="ignore")


def gain_pairs(configs: pd.DataFrame, axes: list[str]) -> list[tuple[str, str, str]]:
    """``(a, b, axis)`` for every two configurations whose values differ on exactly one axis, ``a`` first
    in the grid's order."""
    pairs = []
    for (_, a), (_, b) in combinations(configs.iterrows(), 2):
        differ = [axis for axis in axes if not same(a[axis_column(axis)], b[axis_column(axis)])]
        if len(differ) == 1:
            pairs.append((a["configuration"], b["configuration"], differ[0]))
    return pairs


def gains(data: pd.DataFrame, configs: pd.DataFrame, axes: list[str], languages: list[str],
          dist: dict[str, pd.DataFrame], boot: Bootstrap = BOOTSTRAP) -> pd.DataFrame:
    """Per pair of :func:`gain_pairs`, the gain a - b paired on seed and language: ``mean_gain`` over seeds
    and languages; its Student-t interval over seeds of the per-seed mean (``ci_low``, ``ci_high``) and the
    t-test over seeds ``p`` (NaN with fewer than :data:`MIN_SEEDS` seeds); a bootstrap interval over
    languages (``lang_low``, ``lang_high``); ``seeds`` paired and ``n`` languages; ``wins``/``ties``/
    ``losses`` of a over languages (seed means; descriptive, not a test); and the correlation of the
    per-language gain with each distance kind (``<stat>_<kind>``, Holm across kinds; NaN when a and b have
    different sources, as no single distance applies)."""
    source = dict(zip(configs["configuration"], configs["source"]))
    rows = []
    for a, b, axis in gain_pairs(configs, axes):
        matrix, seeds = paired_gains(data, a, b, languages)
        test = seed_test(matrix.mean(axis=-1), 0.0, boot.confidence)
        lang_low, lang_high = language_bootstrap(lambda g: g.mean(axis=(-1, -2)), matrix, n_resamples=boot.n_resamples,
                                                 seed=boot.seed, confidence=boot.confidence)
        per_language = pd.Series(matrix.mean(axis=0), index=languages)
        row = {"a": a, "b": b, "axis": axis, "mean_gain": test.mean, "ci_low": test.low, "ci_high": test.high,
               "p": test.p, "lang_low": lang_low, "lang_high": lang_high, "seeds": test.seeds, "n": len(languages),
               "wins": int((per_language > 0).sum()), "ties": int((per_language == 0).sum()),
               "losses": int((per_language < 0).sum())}
        for kind in ALL_KINDS:
            r = (distance_correlation(per_language, dist[source[a]][kind], source[a], boot) if source[a] == source[b]
                 else {**correlation([], []), **correlation_ci([], [])})
            row.update({f"{stat}_{kind}": r[stat] for stat in CORRELATION_STATS if not stat.endswith("_holm")})
        for stat in ("pearson", "spearman"):
            adjusted = holm([row[f"{stat}_p_{kind}"] for kind in ALL_KINDS])
            row.update({f"{stat}_p_holm_{kind}": p for kind, p in zip(ALL_KINDS, adjusted)})
        rows.append(row)
    return pd.DataFrame(rows, columns=GAIN_COLUMNS)


def truncation(results: pd.DataFrame, configs: pd.DataFrame, metric: str,
               languages: list[str]) -> tuple[pd.DataFrame | None, pd.Series | None]:
    """Languages x configurations: the share of a language's inputs cut to the text budget, summed over a
    configuration's runs (``n_truncated / n``); and per language a run's number of inputs. ``(None, None)``
    when the store does not record it (stores written before evaluation counted truncated inputs)."""
    if not {"n", "n_truncated"} <= set(results.columns) or results["n_truncated"].isna().all():
        return None, None
    config_of = {run_id: config for config, ids in zip(configs["configuration"], configs["run_ids"]) for run_id in ids}
    rows = results[(results["metric"] == metric) & results["language"].isin(languages)]
    rows = rows.assign(configuration=rows["run_id"].map(config_of))
    counts = rows.groupby(["language", "configuration"])[["n_truncated", "n"]].agg(lambda s: s.sum(skipna=False))
    share = (counts["n_truncated"] / counts["n"]).unstack("configuration")
    inputs = rows.groupby("language")["n"].max()
    return share.reindex(index=languages, columns=list(configs["configuration"])), inputs.reindex(languages)


def source_distances(task: Task, sources: list[str], languages: list[str]) -> dict[str, pd.DataFrame]:
    """Source (a configuration's: one language or a comma-separated set) -> languages x (kinds,
    ``missing_<kind>``): URIEL distances through the task's ISO codes. From a set, the distance to the nearest
    source per kind (the minimum over the sources that have it; missing only when none has it)."""
    singles = sorted({code for source in sources for code in facts.source_languages(source)})
    table = distances(singles, languages, iso=task.iso_code)
    frames = {source: group.set_index("target").drop(columns="source")
              for source, group in table.groupby("source", sort=False)}
    return {source: _nearest([frames[code] for code in facts.source_languages(source)]) for source in sources}


def _source_codes(configs: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(code for source in configs["source"] for code in facts.source_languages(source)))


def _nearest(frames: list[pd.DataFrame]) -> pd.DataFrame:
    if len(frames) == 1:
        return frames[0]
    nearest = frames[0].copy()
    for kind in ALL_KINDS:
        nearest[kind] = pd.concat([frame[kind] for frame in frames], axis=1).min(axis=1)
        nearest[f"missing_{kind}"] = nearest[f"missing_{kind}"].where(nearest[kind].isna(), None)
    return nearest


def grid_task(config: TrainConfig, grid: dict, data_dir: str | Path | None = None) -> Task:
    """The grid's task (one per grid: ``config`` is its first run's), reading its data from ``data_dir``, else
    the directory the grid recorded (grid.json's ``data_dir``), else XLPEFT_DATA_DIR."""
    return task_for(config, data_dir or grid.get("data_dir"))


def analyse(results_dir: str | Path, metric: str | None = None, distance: str = "syntactic",
            data_dir: str | Path | None = None) -> Report:
    """Read a grid output directory and compute every table of the report (URIEL distances and baselines
    included); ``metric`` is one of the task's metric columns (default: its first, its community's metric),
    ``distance`` the kind the claim about distant languages is tested with, ``data_dir`` where the task's data
    are (for the baselines; see :func:`grid_task`)."""
    if distance not in ALL_KINDS:
        raise XlpeftError(f"unknown distance kind {distance!r}: choose from {', '.join(ALL_KINDS)}")
    results_dir = Path(results_dir)
    results = load_results(results_dir)
    grid_file = results_dir / GRID
    if not grid_file.is_file():
        raise XlpeftError(f"{grid_file} is missing, so {results_dir} was not written by 'xlpeft run': "
                          f"run 'xlpeft run CONFIG --out {results_dir}' first")
    grid = json.loads(grid_file.read_text())
    config = TrainConfig.from_dict(grid["runs"][0]["train"])
    task = grid_task(config, grid, data_dir)
    metric = metric or facts.metrics(task)[0]
    if metric not in facts.metrics(task):
        raise XlpeftError(f"unknown metric {metric!r} for {task.name}: choose --metric from {', '.join(facts.metrics(task))}")
    axes = [axis for axis in grid["axes"] if axis != "seed"]
    configs = configurations(results, grid["axes"], [run["run_id"] for run in grid["runs"]])
    data, languages, left_out = metric_table(results, configs, metric, grid["evaluate"]["languages"])
    dist = source_distances(task, list(configs["source"].unique()), languages)
    means = language_means(data, configs, languages)
    share, inputs = truncation(results, configs, metric, languages)
    split = str(results["split"].iloc[0])
    baselines = facts.baselines(task, languages, split, metric, config.source_data)
    return Report(
        name=grid["name"], split=split, metric=metric, metric_name=facts.metric_name(task, metric),
        task=facts.task_title(task), labels=len(task.labels) if task.kind == "classification" else 0,
        names=facts.language_names(task, [*languages, *_source_codes(configs)]), baselines=baselines,
        coordinates=coordinates(languages, iso=task.iso_code), axes=axes, configs=configs,
        data=data, languages=languages, left_out=left_out, distances=dist, means=means,
        summary=summary(data, configs), per_language=per_language(data, configs, languages, dist, task, baselines.table),
        correlations=correlations(means, configs, dist), gains=gains(data, configs, axes, languages, dist),
        kind=distance, findings=findings(data, configs, axes, dist, distance, BOOTSTRAP), truncation=share,
        inputs=inputs,
    )
