"""``xlpeft report``: a grid's results as tables, statistics and figures, in one readable document.

The input is a grid output directory written by ``xlpeft run`` (``results.parquet`` and ``grid.json``);
the output, by default in ``DIR/report/``::

    report.md, report.html      the report; the HTML embeds its figures, so it is one file to send around
    summary.tex                 the summary table as a booktabs tabular, for a paper
    summary.csv, per_language.csv, correlations.csv, gains.csv, findings.csv      the tables, unrounded
    truncation.csv              the share of inputs cut per language and configuration (when recorded)
    by_distance.png, scatter.png, heatmap.png, prompt_length.png (when L is an axis), world_map.png

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
(``cfg_source``); a missing distance stays missing: the language is left out of that correlation and
``n`` says how many remain.
"""

from __future__ import annotations

import base64
import html
import json
import re
from dataclasses import asdict, dataclass
from datetime import datetime
from itertools import combinations
from pathlib import Path

import pandas as pd

from xlpeft.analysis import plots
from xlpeft.analysis.findings import (
    CLAIMS,
    CONTRADICTED,
    INCONCLUSIVE,
    SUPPORTED,
    UNDERPOWERED,
    Bootstrap,
    Finding,
    axis_column,
    findings,
    paired_gains,
    same,
    show,
)
from xlpeft.analysis.stats import MIN_SEEDS, correlation, correlation_ci, holm, language_bootstrap, mean_ci, seed_test, summarize
from xlpeft.data.distances import ALL_KINDS, MISSING_REASONS, coordinates, distances
from xlpeft.data.languages import registry
from xlpeft.errors import XlpeftError
from xlpeft.experiments.runner import load_results
from xlpeft.files import atomic_write

CONFIDENCE = 0.95
BOOTSTRAP = Bootstrap(n_resamples=2000, seed=0, confidence=CONFIDENCE)  # recorded in the report's header
TOP = 3  # best and worst languages named per configuration
TRUNCATION_LIMIT = 0.05  # a language losing more than this share of its inputs is named in a warning
CORRELATION_STATS = ("pearson_r", "pearson_low", "pearson_high", "pearson_p", "pearson_p_holm",
                     "spearman_rho", "spearman_low", "spearman_high", "spearman_p", "spearman_p_holm", "n")
GAIN_COLUMNS = ["a", "b", "axis", "mean_gain", "ci_low", "ci_high", "p", "lang_low", "lang_high", "seeds", "n",
                "wins", "ties", "losses",
                *(f"{stat}_{kind}" for kind in ALL_KINDS for stat in CORRELATION_STATS)]
METRIC_NAMES = {"accuracy": "accuracy", "macro_f1": "macro-F1"}
METRICS = tuple(METRIC_NAMES)


@dataclass
class Report:
    """Everything the report's files are made of, computed once by :func:`analyse`."""

    name: str
    split: str
    metric: str
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
                 dist: dict[str, pd.DataFrame], confidence: float = CONFIDENCE) -> pd.DataFrame:
    """One row per language: name, script, then per configuration its mean over seeds and ``<config> ci95``
    (the interval's half-width, NaN with one seed), then the URIEL distances from the source (named
    ``<kind> from <source>`` when configurations have different sources)."""
    stats = summarize(data, ["configuration", "language"], "value", confidence).set_index(["configuration", "language"])
    reg = registry()
    table = pd.DataFrame({"language": languages, "name": [reg[code].name for code in languages],
                          "script": [reg[code].script for code in languages]}).set_index("language")
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
    return values.drop(index=source, errors="ignore")


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


def truncation_warnings(share: pd.DataFrame, pairs: list[tuple[str, str, str]]) -> list[str]:
    """One line per language losing more than :data:`TRUNCATION_LIMIT` of its inputs in some configuration,
    and one per compared pair (:func:`gain_pairs`) whose configurations cut a different share in some
    language: a gain between them then mixes the effect of the axis with that of the text lost."""
    lines = []
    for language, row in share.iterrows():
        over = row[row > TRUNCATION_LIMIT]
        if len(over):
            lines.append(f"`{language}` loses more than {TRUNCATION_LIMIT:.0%} of its inputs: "
                         + ", ".join(f"{_pct(value)} % in {config}" for config, value in over.items()))
    for a, b, _ in pairs:
        difference = (share[a] - share[b]).abs()
        differing = difference[difference > 0]
        if len(differing):
            worst = differing.idxmax()
            lines.append(f"{a} and {b} cut different shares in {len(differing)} language(s), by up to "
                         f"{_pct(differing.max())} pp (`{worst}`: {_pct(share.loc[worst, a])} % vs "
                         f"{_pct(share.loc[worst, b])} %)")
    return lines


def summary_latex(table: pd.DataFrame, axes: list[str], metric: str) -> str:
    """The summary (``table``: :func:`summary` with the axis columns) as a booktabs tabular: one column
    per axis (or the configuration label), the metric in %, its interval, seeds, best and worst languages."""
    lead = axes or ["configuration"]
    header = [_tex(column.replace("_", " ")) for column in lead]
    header += [f"{_tex(METRIC_NAMES[metric])} (\\%)", f"{round(CONFIDENCE * 100)}\\% CI", "Seeds",
               f"Best {TOP}", f"Worst {TOP}"]
    lines = ["% needs \\usepackage{booktabs}", f"\\begin{{tabular}}{{{'l' * len(lead)}rrrll}}", "\\toprule",
             " & ".join(header) + " \\\\", "\\midrule"]
    for _, row in table.iterrows():
        cells = [_tex(show(row[axis_column(column)] if axes else row[column])) for column in lead]
        cells += [_pct(row["mean"]), _tex(_interval(row)), str(row["seeds"]), _tex(row["best"]), _tex(row["worst"])]
        lines.append(" & ".join(cells) + " \\\\")
    return "\n".join([*lines, "\\bottomrule", "\\end{tabular}", ""])


# --- the whole report --------------------------------------------------------------------------------

def analyse(results_dir: str | Path, metric: str = "accuracy", distance: str = "syntactic") -> Report:
    """Read a grid output directory and compute every table of the report (URIEL distances included);
    ``distance`` is the kind the claim about distant languages is tested with."""
    if distance not in ALL_KINDS:
        raise XlpeftError(f"unknown distance kind {distance!r}: choose from {', '.join(ALL_KINDS)}")
    if metric not in METRICS:
        raise XlpeftError(f"unknown metric {metric!r}: choose from {', '.join(METRICS)}")
    results_dir = Path(results_dir)
    results = load_results(results_dir)
    grid_file = results_dir / "grid.json"
    if not grid_file.is_file():
        raise XlpeftError(f"{grid_file} is missing, so {results_dir} was not written by 'xlpeft run': "
                          f"run 'xlpeft run CONFIG --out {results_dir}' first")
    grid = json.loads(grid_file.read_text())
    task = grid["runs"][0]["train"].get("task", "sib200")
    if task != "sib200":
        raise XlpeftError(f"xlpeft report analyses SIB-200 grids; {results_dir} is a {task} grid: read its results "
                          f"with pandas from {results_dir / 'results.parquet'} (one row per run, language and metric)")
    axes = [axis for axis in grid["axes"] if axis != "seed"]
    configs = configurations(results, grid["axes"], [run["run_id"] for run in grid["runs"]])
    data, languages, left_out = metric_table(results, configs, metric, grid["evaluate"]["languages"])
    table = distances(sorted(configs["source"].unique()), languages)
    dist = {source: group.set_index("target").drop(columns="source")
            for source, group in table.groupby("source", sort=False)}
    means = language_means(data, configs, languages)
    share, inputs = truncation(results, configs, metric, languages)
    return Report(
        name=grid["name"], split=str(results["split"].iloc[0]), metric=metric, axes=axes, configs=configs,
        data=data, languages=languages, left_out=left_out, distances=dist, means=means,
        summary=summary(data, configs), per_language=per_language(data, configs, languages, dist),
        correlations=correlations(means, configs, dist), gains=gains(data, configs, axes, languages, dist),
        kind=distance, findings=findings(data, configs, axes, dist, distance, BOOTSTRAP), truncation=share,
        inputs=inputs,
    )


def write_report(results_dir: str | Path, out: str | Path | None = None, metric: str = "accuracy",
                 distance: str = "syntactic") -> list[Path]:
    """Write the report files (see the module docstring) into ``out`` (default ``results_dir/report``);
    ``distance`` orders by_distance.png. Returns the paths written."""
    report = analyse(results_dir, metric, distance)
    out = Path(out) if out is not None else Path(results_dir) / "report"
    written: list[Path] = []

    def csv(name: str, frame: pd.DataFrame) -> None:
        written.append(out / name)
        atomic_write(out / name, lambda tmp: frame.to_csv(tmp, index=False))

    columns = ["configuration", *map(axis_column, report.axes), "source", "model"]
    summary_table = report.configs[list(dict.fromkeys(columns))].merge(
        report.summary, on="configuration")
    csv("summary.csv", summary_table)
    csv("per_language.csv", report.per_language)
    csv("correlations.csv", report.correlations)
    csv("gains.csv", report.gains)
    csv("findings.csv", pd.DataFrame([asdict(finding) for finding in report.findings], columns=list(Finding.__annotations__)))
    if report.truncation is not None:
        csv("truncation.csv", report.truncation.rename_axis("language").reset_index())
    written.append(out / "summary.tex")
    atomic_write(out / "summary.tex", lambda tmp: tmp.write_text(summary_latex(summary_table, report.axes, metric)))
    figures, unplaced = _figures(report, summary_table, distance, out)
    written += [path for path in figures.values() if path is not None]
    document = _document(report, summary_table, figures, unplaced, distance, Path(results_dir))
    for name, text in (("report.md", document.markdown()),
                       ("report.html", document.html(f"{report.name}: {METRIC_NAMES[metric]}"))):
        written.append(out / name)
        atomic_write(out / name, lambda tmp, text=text: tmp.write_text(text, encoding="utf-8"))
    return written


def _figures(report: Report, summary_table: pd.DataFrame, distance: str,
             out: Path) -> tuple[dict[str, Path | None], list[str]]:
    """Draw the plots, and name the languages the map could not place. A plot that does not apply
    (prompt length when L is not an axis) maps to None."""
    configs, means, metric = report.configs, report.means, report.metric
    source = configs["source"].iloc[0]
    figures: dict[str, Path | None] = {name: out / f"{name}.png" for name in
                                       ("heatmap", "prompt_length", "by_distance", "world_map", "scatter")}
    plots.heatmap_plot(means, metric, figures["heatmap"])
    if "prompt_length" in report.axes:
        others = [axis_column(axis) for axis in report.axes if axis != "prompt_length"]
        plots.prompt_length_plot(summary_table, others, metric, figures["prompt_length"])
    else:
        figures["prompt_length"] = None
    plots.by_distance_plot(means, report.distances[source][distance], distance, source, metric,
                           figures["by_distance"])
    best = _best(report)
    points = coordinates(report.languages)
    points["value"] = points["language"].map(means[best])
    best_source = configs.set_index("configuration").loc[best, "source"]
    plots.world_map_plot(points, best_source, f"{metric} of the best configuration ({best}), mean over seeds", metric,
                         figures["world_map"])
    plots.scatter_plot(means, {config: report.distances[src] for config, src in
                               zip(configs["configuration"], configs["source"])}, ALL_KINDS, metric,
                       figures["scatter"])
    return figures, list(points.loc[points["latitude"].isna(), "language"])


def _best(report: Report) -> str:
    return report.summary.loc[report.summary["mean"].idxmax(), "configuration"]



# --- the document ------------------------------------------------------------------------------------

def _document(report: Report, summary_table: pd.DataFrame, figures: dict[str, Path | None], unplaced: list[str],
              distance: str, results_dir: Path) -> _Document:
    """The report's text: header, how to read, summary, per-language results, correlations, gains, files."""
    configs, metric = report.configs, METRIC_NAMES[report.metric]
    reg = registry()
    seeds = sorted(report.data["seed"].unique())
    fewest, most = configs["seeds"].min(), configs["seeds"].max()
    doc = _Document()
    doc.heading(f"{report.name}: cross-lingual {metric} on SIB-200", 1)
    doc.bullets([
        f"**Grid**: `{report.name}` (results from `{results_dir}`)",
        "**Model(s)**: " + ", ".join(f"`{model}`" for model in configs["model"].unique()),
        "**Source language(s)**: " + ", ".join(f"`{code}` ({reg[code].name})" for code in configs["source"].unique()),
        f"**Runs**: {configs['seeds'].sum()} in {len(configs)} configuration(s), "
        f"{fewest if fewest == most else f'{fewest} to {most}'} seed(s) each (seeds {', '.join(map(str, seeds))})",
        "**Configurations vary in**: " + (_codes(report.axes) or "nothing (no axis but seed)"),
        f"**Languages**: {len(report.languages)}, SIB-200 `{report.split}` split"
        + (f"; left out because only some runs were evaluated on them: {_codes(report.left_out)}"
           if report.left_out else ""),
        f"**Metric**: {metric}",
        f"**Statistics**: tests over seeds (Student's t; fewer than {MIN_SEEDS} seeds: underpowered, no p-value); "
        f"bootstrap over languages with {BOOTSTRAP.n_resamples} resamples, generator seed {BOOTSTRAP.seed}; "
        f"{round(100 * BOOTSTRAP.confidence)} % intervals",
        f"**Report date**: {datetime.now():%Y-%m-%d %H:%M}",
    ])

    doc.heading("How to read")
    doc.text(f"Numbers are {metric} in percent. SIB-200 has 7 topic labels: guessing uniformly scores 14.3 % "
             "accuracy and always answering the largest class (science/technology) 25 % accuracy"
             + (", but only 0.4/7 = 5.7 % macro-F1." if report.metric == "macro_f1" else "."))
    doc.text("A configuration's score is the mean over languages of each run, then the mean over seeds; its "
             "95 % interval is Student's t over seeds (none with one seed). A per-language cell is the mean over "
             "seeds ± the half-width of its 95 % interval over seeds.")
    doc.text("Distances are URIEL's, from the source language: 0 is identical, 1 opposite. A negative r or rho "
             "means the metric falls as languages get more distant from the source. A language without a distance "
             "of some kind is left out of that kind's correlations (never imputed), and n counts the languages "
             "used; the source language itself is left out (zero-shot transfer is about the targets). Brackets "
             "hold a bootstrap interval over languages; p-values are Holm-adjusted across the six distances.")
    doc.text("Seeds are the unit of replication: languages scored by the same trained prompt share its training "
             "noise and are not independent replicates. A gain a - b (percentage points, between two configurations "
             "that differ in one axis only) pairs seed s of a with seed s of b on the same language; its interval "
             "and p-value are Student's t over the per-seed mean gains, and a second interval resamples languages "
             f"(would other languages agree?). With fewer than {MIN_SEEDS} seeds no p-value is given: "
             "\"underpowered\". Wins/ties/losses count the languages where a is above, equal to, below b "
             "(means over seeds): a description, not a test.")

    doc.heading("Summary per configuration")
    doc.table(["Configuration", f"{metric} (%)", "95 % CI", "Seeds", "Languages", f"Best {TOP}", f"Worst {TOP}"],
              [[row["configuration"], _pct(row["mean"]), _interval(row), str(row["seeds"]), str(row["languages"]),
                _codes(row["best"].split(", ")), _codes(row["worst"].split(", "))]
               for _, row in summary_table.iterrows()])
    doc.text("For a paper: `summary.tex` (booktabs); unrounded values: `summary.csv`.")
    _findings_section(doc, report)
    doc.image(figures["heatmap"], f"{metric} per configuration and language; languages ordered by their mean "
                                  "over configurations, best first.")
    if figures["prompt_length"] is None:
        doc.text("No prompt-length plot: `prompt_length` is not an axis of this grid.")
    else:
        doc.image(figures["prompt_length"], f"{metric} (mean over languages, 95 % CI over seeds) against prompt "
                                            "length, one line per value of the other axes.")

    source = configs["source"].iloc[0]
    best = _best(report)
    doc.heading("Per language")
    doc.image(figures["by_distance"], f"{metric} per language, languages sorted by {distance} distance from "
                                      f"`{source}` (dotted line, right axis); those without it at the right.")
    doc.image(figures["world_map"], f"{metric} of the best configuration ({best}) at each language's Glottolog "
                                    "point (or URIEL's), the source ringed in red; a plain longitude/latitude frame, "
                                    "no coastlines.")
    doc.text(f"Languages without coordinates, not on the map: {_codes(unplaced)}." if unplaced
             else "Every language has coordinates and is on the map.")
    doc.text("Mean over seeds ± 95 % half-width; URIEL distances from the source (– where URIEL lacks them). "
             "Unrounded: `per_language.csv` (the `ci95` columns hold the half-widths).")
    doc.table(*_per_language_cells(report))
    _truncation_section(doc, report)

    doc.heading("Correlation with linguistic distance")
    doc.image(figures["scatter"], f"{metric} against each URIEL distance from the source, one colour per "
                                  "configuration, with least-squares lines; r is Pearson's over the n languages "
                                  "that have the distance.")
    doc.table(["Configuration", *ALL_KINDS],
              [[config, *(_correlation_cell(cells.set_index("kind").loc[kind]) for kind in ALL_KINDS)]
               for config, cells in report.correlations.groupby("configuration", sort=False)])
    missing = _missing_distances(report)
    doc.text("Missing distances:" if missing else "No distance is missing.")
    if missing:
        doc.bullets(missing)

    doc.heading("Gains between configurations")
    if report.gains.empty:
        doc.text("No two configurations differ in exactly one axis, so there are no gains to compare.")
    else:
        doc.table(["a", "b", "Axis", "Mean gain (pp)", "95 % CI over seeds", "p over seeds", "95 % CI over languages",
                   "Seeds", "Wins/ties/losses", "Languages"],
                  [[row["a"], row["b"], row["axis"], _points(row["mean_gain"]), _bounds(row["ci_low"], row["ci_high"]),
                    _seed_p(row["p"], row["seeds"]), _bounds(row["lang_low"], row["lang_high"]), str(row["seeds"]),
                    f"{row['wins']}/{row['ties']}/{row['losses']}", str(row["n"])]
                   for _, row in report.gains.iterrows()])
        doc.text("Correlation of the per-language gain (mean over seeds) with each distance (does the gain grow with "
                 "distance from the source?), bootstrap intervals over languages, p Holm-adjusted across distances; "
                 "a description over languages: the claims above test it against seed noise too.")
        doc.table(["a - b", *ALL_KINDS],
                  [[f"{row['a']} - {row['b']}",
                    *(_correlation_cell(row, f"_{kind}") for kind in ALL_KINDS)] for _, row in report.gains.iterrows()])

    doc.heading("Files")
    doc.bullets(["`report.md`, `report.html`: this report (the HTML embeds its figures)",
                 "`summary.csv`, `per_language.csv`, `correlations.csv`, `gains.csv`, `findings.csv`"
                 + (", `truncation.csv`" if report.truncation is not None else "")
                 + ": the tables, unrounded (metric values as fractions, not percent)",
                 "`summary.tex`: the summary as a LaTeX tabular",
                 "figures: " + ", ".join(f"`{path.name}`" for path in figures.values() if path is not None)])
    return doc


def _findings_section(doc: _Document, report: Report) -> None:
    """The claims table, its verdict rules and the claims this grid cannot test."""
    doc.heading("Findings: the papers' claims")
    tested = {finding.claim for finding in report.findings}
    absent = [f"{claim.text} ({claim.paper}): needs {claim.needs}" for claim in CLAIMS if claim.text not in tested]
    if report.findings:
        doc.text(f"Each claim is tested on every pair of configurations that differ only in the axis it is about, "
                 f"over the target languages (the source left out), paired on seed and language. The distance "
                 f"claim uses {report.kind} distance (`--distance`).")
        doc.table(["Claim", "Comparison", "Statistic", "Estimate", "95 % CI over seeds", "p over seeds",
                   "95 % CI over languages", "Seeds", "Languages", "Verdict"],
                  [[f"{finding.claim} ({finding.paper})", finding.comparison, finding.statistic,
                    _number(finding.estimate, 2), _bounds(finding.seed_low, finding.seed_high, 1),
                    _seed_p(finding.p, finding.seeds), _bounds(finding.language_low, finding.language_high, 1),
                    str(finding.seeds), str(finding.languages),
                    f"**{finding.verdict}**" + (f": {finding.detail}" if finding.detail else "")]
                   for finding in report.findings])
    else:
        doc.text("No claim of the papers applies to this grid.")
    if absent:
        doc.text("Not applicable (the grid lacks the configurations):")
        doc.bullets(absent)
    doc.text(f"Verdicts. **{UNDERPOWERED}**: fewer than {MIN_SEEDS} seeds, so training noise cannot be "
             f"estimated; no p-value is given and nothing is concluded. **{SUPPORTED}**: both intervals, over seeds "
             "(Student's t over the statistic computed per seed) and over languages (bootstrap of the statistic "
             "on the seed means; for a share of languages, the exact binomial interval), lie wholly on the claimed side (above 0 for a growing gain, below 0 for a "
             "slope against prompt length, above 50 % for \"most languages\"). "
             f"**{CONTRADICTED}**: both lie wholly on the other side. **{INCONCLUSIVE}**: otherwise. "
             "Reparameterization is supported when, with per-language t-tests over seeds Holm-adjusted across "
             "languages, some language is helped and another hurt; contradicted when only one direction is "
             "significant and the mean gain's intervals agree with it (a uniform effect).")


def _truncation_section(doc: _Document, report: Report) -> None:
    """The share of inputs cut per language and configuration, and the warnings it calls for."""
    doc.heading("Truncation", 3)
    share = report.truncation
    if share is None:
        doc.text("Truncation was not recorded in these results (evaluated before xlpeft counted the inputs cut to "
                 "the text budget): evaluate again to know how much of each language's text the models saw.")
        return
    groups: dict[tuple, list[str]] = {}  # configurations that cut the same shares everywhere share a column
    for config in share.columns:
        groups.setdefault(tuple(share[config].round(12).fillna(-1)), []).append(config)
    columns = ["all configurations"] if len(groups) == 1 else ["; ".join(configs) for configs in groups.values()]
    doc.text("Share of each language's inputs cut to the text budget (`max_length`), in percent, over a "
             "configuration's runs; configurations that cut the same shares in every language share a column.")
    doc.table(["Language", "Inputs", *columns],
              [[language, "–" if pd.isna(report.inputs[language]) else str(int(report.inputs[language])),
                *(_pct(share.loc[language, configs[0]]) for configs in groups.values())]
               for language in share.index])
    warnings = truncation_warnings(share, gain_pairs(report.configs, report.axes))
    doc.text("**Warnings**:" if warnings else f"No language loses more than {TRUNCATION_LIMIT:.0%} of its inputs, "
                                             "and compared configurations cut the same share.")
    if warnings:
        doc.bullets(warnings)


def _per_language_cells(report: Report) -> tuple[list[str], list[list[str]]]:
    table = report.per_language
    configs = list(report.configs["configuration"])
    kinds = [column for column in table.columns[3:] if column not in configs and not column.endswith(" ci95")]
    rows = [[row["language"], row["name"], row["script"],
             *(_pct(row[config]) + ("" if pd.isna(row[f"{config} ci95"]) else f" ± {100 * row[f'{config} ci95']:.1f}")
               for config in configs),
             *(_number(row[kind], 3) for kind in kinds)]
            for _, row in table.iterrows()]
    return ["Language", "Name", "Script", *configs, *kinds], rows


def _missing_distances(report: Report) -> list[str]:
    """One line per source and kind with missing distances: how many, grouped by URIEL's reason."""
    lines = []
    for source, frame in report.distances.items():
        for kind in ALL_KINDS:
            reasons = frame[f"missing_{kind}"].dropna()
            if len(reasons):
                groups = "; ".join(f"{MISSING_REASONS[reason]}: {_codes(reasons.index[reasons == reason])}"
                                   for reason in reasons.unique())
                lines.append(f"**{kind}** from `{source}`, {len(reasons)} language(s). {groups}")
    return lines


class _Document:
    """The report as a list of blocks, rendered alike to Markdown (figures linked) and to one
    self-contained HTML file (figures embedded as data URIs). Text may use `code` and **bold**."""

    def __init__(self) -> None:
        self.blocks: list[tuple] = []

    def heading(self, text: str, level: int = 2) -> None:
        self.blocks.append(("heading", level, text))

    def text(self, text: str) -> None:
        self.blocks.append(("text", text))

    def bullets(self, items: list[str]) -> None:
        self.blocks.append(("bullets", items))

    def table(self, header: list[str], rows: list[list[str]]) -> None:
        self.blocks.append(("table", header, rows))

    def image(self, path: Path, caption: str) -> None:
        self.blocks.append(("image", path, caption))

    def markdown(self) -> str:
        parts = []
        for block in self.blocks:
            match block:
                case ("heading", level, text):
                    parts.append(f"{'#' * level} {text}")
                case ("text", text):
                    parts.append(text)
                case ("bullets", items):
                    parts.append("\n".join(f"- {item}" for item in items))
                case ("table", header, rows):
                    lines = [header, ["---"] * len(header), *rows]
                    parts.append("\n".join("| " + " | ".join(cell.replace("|", "\\|") for cell in line) + " |"
                                           for line in lines))
                case ("image", path, caption):
                    parts.append(f"![{path.stem}]({path.name})\n\n{caption}")
        return "\n\n".join(parts) + "\n"

    def html(self, title: str) -> str:
        parts = []
        for block in self.blocks:
            match block:
                case ("heading", level, text):
                    parts.append(f"<h{level}>{_inline(text)}</h{level}>")
                case ("text", text):
                    parts.append(f"<p>{_inline(text)}</p>")
                case ("bullets", items):
                    parts.append("<ul>" + "".join(f"<li>{_inline(item)}</li>" for item in items) + "</ul>")
                case ("table", header, rows):
                    head = "".join(f"<th>{_inline(cell)}</th>" for cell in header)
                    body = "".join("<tr>" + "".join(f"<td>{_inline(cell)}</td>" for cell in row) + "</tr>"
                                   for row in rows)
                    parts.append(f'<div class="scroll"><table><thead><tr>{head}</tr></thead>'
                                 f"<tbody>{body}</tbody></table></div>")
                case ("image", path, caption):
                    data = base64.b64encode(path.read_bytes()).decode("ascii")
                    parts.append(f'<figure><div class="scroll"><img src="data:image/png;base64,{data}" '
                                 f'alt="{html.escape(path.stem)}"></div><figcaption>{_inline(caption)}</figcaption></figure>')
        return (f'<!DOCTYPE html>\n<html lang="en">\n<head><meta charset="utf-8"><title>{html.escape(title)}</title>'
                f"<style>{_CSS}</style></head>\n<body>\n" + "\n".join(parts) + "\n</body>\n</html>\n")


# Wide figures (one tick per language) keep their natural size and scroll sideways, so labels stay legible.
_CSS = ("body{font-family:system-ui,sans-serif;color:#222;line-height:1.45;max-width:80em;margin:2em auto;"
        "padding:0 1em}table{border-collapse:collapse;font-size:.8em;margin:.6em 0}th,td{border:1px solid #ccc;"
        "padding:.15em .5em;text-align:left;vertical-align:top}th{background:#f3f3f3}.scroll{overflow-x:auto}"
        "figure{margin:1.2em 0}figcaption{font-size:.85em;color:#555}img{max-width:none}"
        "code{background:#f4f4f4;padding:0 .2em;font-size:.92em}")


# --- formatting --------------------------------------------------------------------------------------

def _inline(text: str) -> str:
    """HTML for one line of text with `code` and **bold**."""
    escaped = html.escape(text, quote=False)
    escaped = re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)
    return re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", escaped)


def _codes(codes) -> str:
    return ", ".join(f"`{code}`" for code in codes)


def _pct(value: float) -> str:
    return "–" if pd.isna(value) else f"{100 * value:.1f}"


def _points(value: float) -> str:
    return "–" if pd.isna(value) else f"{100 * value:+.1f}"


def _number(value: float, digits: int = 2) -> str:
    return "–" if pd.isna(value) else f"{value:.{digits}f}"


def _p(value: float) -> str:
    return "–" if pd.isna(value) else "<0.001" if value < 0.001 else f"{value:.3f}"


def _bounds(low: float, high: float, digits: int | None = None) -> str:
    """``[low, high]``: fractions in points (``digits`` None) or numbers already in their unit."""
    if pd.isna(low) or pd.isna(high):
        return "–"
    if digits is None:
        return f"[{100 * low:+.1f}, {100 * high:+.1f}]"
    return f"[{low:.{digits}f}, {high:.{digits}f}]"


def _seed_p(p: float, seeds: int) -> str:
    return f"underpowered ({seeds} seed{'s' if seeds != 1 else ''})" if seeds < MIN_SEEDS else _p(p)


def _interval(row) -> str:
    return "–" if pd.isna(row["ci_low"]) else f"[{_pct(row['ci_low'])}, {_pct(row['ci_high'])}]"


def _correlation_cell(stats, suffix: str = "") -> str:
    """``r 0.41 [0.10, 0.70] (p 0.020), rho ...; n 6`` from a correlations row (or a gains row's ``_<kind>``
    columns): the interval is the bootstrap over languages, p Holm-adjusted across the distances."""
    cells = [f"{symbol} {_number(stats[f'{name}_{symbol}{suffix}'])} "
             f"{_bounds(stats[f'{name}_low{suffix}'], stats[f'{name}_high{suffix}'], 2)} "
             f"(p {_p(stats[f'{name}_p_holm{suffix}'])})" for symbol, name in (("r", "pearson"), ("rho", "spearman"))]
    return "; ".join([*cells, f"n {stats[f'n{suffix}']}"])


_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
        "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "–": "--"}


def _tex(text) -> str:
    return "".join(_TEX.get(char, char) for char in str(text))
