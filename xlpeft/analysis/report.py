"""``xlpeft report``: a grid's results as tables, statistics and figures, in one readable document.

The input is a grid output directory written by ``xlpeft run`` (``results.parquet`` and ``grid.json``);
the output, by default in ``DIR/report/``::

    report.md, report.html      the report; the HTML embeds its figures, so it is one file to send around
    summary.tex                 the summary table as a booktabs tabular, for a paper
    summary.csv, per_language.csv, correlations.csv, gains.csv      the tables, unrounded
    by_distance.png, scatter.png, heatmap.png, prompt_length.png (when L is an axis), world_map.png

**Configurations.** A configuration is one combination of the grid's axes other than ``seed``; its runs
(one per seed) are repetitions. Axis values are the runs' resolved settings (``cfg_<axis>``), so a
``full`` run, which trains no prompt, reads ``prompt_length=0`` whatever the grid listed.

**What the statistics treat as draws.** A configuration's summary treats seeds as the independent draws:
each run is averaged over languages first, then Student's t over those per-seed means gives the interval
(averaging languages x seeds together would count languages as draws and shrink the interval).
Correlations and paired tests run across languages, each language's value being its mean over seeds: a
gain's p-value asks whether a beats b consistently across languages, not whether it exceeds seed noise.

**Gains** compare every two configurations that differ in exactly one axis, as a - b where a holds the
value that comes first in the grid (``regime: [prompt, joint]`` gives prompt - joint).

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
from dataclasses import dataclass
from datetime import datetime
from itertools import combinations
from pathlib import Path

import pandas as pd

from xlpeft.analysis import plots
from xlpeft.analysis.distances import ALL_KINDS, MISSING_REASONS, coordinates, distances
from xlpeft.analysis.stats import correlation, gain, mean_ci, paired_comparison, summarize
from xlpeft.data.languages import registry
from xlpeft.errors import XlpeftError
from xlpeft.experiments.run_dir import atomic_write
from xlpeft.experiments.runner import load_results

CONFIDENCE = 0.95
TOP = 3  # best and worst languages named per configuration
CORRELATION_STATS = ("pearson_r", "pearson_p", "spearman_rho", "spearman_p", "n")
GAIN_COLUMNS = ["a", "b", "axis", "mean_gain", "wilcoxon_stat", "wilcoxon_p", "t", "t_p", "n", "n_dropped",
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


# --- tables ------------------------------------------------------------------------------------------

def configurations(results: pd.DataFrame, axes: list[str], run_order: list[str]) -> pd.DataFrame:
    """One row per configuration, in the grid's order (that of its first run): ``configuration`` (a
    label such as ``regime=prompt, prompt_length=4``), one column per axis other than seed, ``source``,
    ``model``, ``run_ids`` and ``seeds`` (how many runs). With no such axis there is one configuration,
    labelled by model and regime."""
    varying = [axis for axis in axes if axis != "seed"]
    runs = results.drop_duplicates("run_id").set_index("run_id")
    rank = {run_id: i for i, run_id in enumerate(run_order)}
    rows: dict[str, dict] = {}
    for run_id in sorted(runs.index, key=lambda run_id: (rank.get(run_id, len(rank)), run_id)):
        run = runs.loc[run_id]
        values = {axis: run[f"cfg_{axis}"] for axis in varying}
        label = (", ".join(f"{axis}={_show(value, axis)}" for axis, value in values.items())
                 or f"{_show(run['cfg_model'])} {run['cfg_regime']}")
        row = rows.setdefault(label, {"configuration": label, **values, "source": run["cfg_source"],
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


def correlations(means: pd.DataFrame, configs: pd.DataFrame, dist: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per configuration and distance kind: Pearson and Spearman between the per-language mean and the
    distance from the configuration's source, over the *target* languages that have the distance (the
    source itself, at distance 0 and usually the best score, would inflate any correlation)."""
    rows = [{"configuration": config, "source": source, "kind": kind,
             **correlation(_targets(means[config], source), _targets(dist[source][kind], source))}
            for config, source in zip(configs["configuration"], configs["source"]) for kind in ALL_KINDS]
    return pd.DataFrame(rows)


def _targets(values: pd.Series, source: str) -> pd.Series:
    return values.drop(index=source, errors="ignore")


def gain_pairs(configs: pd.DataFrame, axes: list[str]) -> list[tuple[str, str, str]]:
    """``(a, b, axis)`` for every two configurations whose values differ on exactly one axis, ``a`` first
    in the grid's order."""
    pairs = []
    for (_, a), (_, b) in combinations(configs.iterrows(), 2):
        differ = [axis for axis in axes if not _same(a[axis], b[axis])]
        if len(differ) == 1:
            pairs.append((a["configuration"], b["configuration"], differ[0]))
    return pairs


def gains(data: pd.DataFrame, means: pd.DataFrame, configs: pd.DataFrame, axes: list[str],
          dist: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per pair of :func:`gain_pairs`: the per-language gain a - b summarised (``mean_gain``, Wilcoxon and
    paired t over languages, wins/ties/losses of a) and its correlation with each distance kind
    (``<stat>_<kind>``; NaN when a and b have different sources, as no single distance applies)."""
    source = dict(zip(configs["configuration"], configs["source"]))
    rows = []
    for a, b, axis in gain_pairs(configs, axes):
        per_language_gain = gain(data, "configuration", a, b, "value")
        test = paired_comparison(means[a], means[b])
        row = {"a": a, "b": b, "axis": axis, "mean_gain": test.pop("mean_diff"), **test}
        for kind in ALL_KINDS:
            r = (correlation(_targets(per_language_gain, source[a]), _targets(dist[source[a]][kind], source[a]))
                 if source[a] == source[b]
                 else correlation([], []))
            row.update({f"{stat}_{kind}": r[stat] for stat in CORRELATION_STATS})
        rows.append(row)
    return pd.DataFrame(rows, columns=GAIN_COLUMNS)


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
        cells = [_tex(_show(row[column])) for column in lead]
        cells += [_pct(row["mean"]), _tex(_interval(row)), str(row["seeds"]), _tex(row["best"]), _tex(row["worst"])]
        lines.append(" & ".join(cells) + " \\\\")
    return "\n".join([*lines, "\\bottomrule", "\\end{tabular}", ""])


# --- the whole report --------------------------------------------------------------------------------

def analyse(results_dir: str | Path, metric: str = "accuracy") -> Report:
    """Read a grid output directory and compute every table of the report (URIEL distances included)."""
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
    return Report(
        name=grid["name"], split=str(results["split"].iloc[0]), metric=metric, axes=axes, configs=configs,
        data=data, languages=languages, left_out=left_out, distances=dist, means=means,
        summary=summary(data, configs), per_language=per_language(data, configs, languages, dist),
        correlations=correlations(means, configs, dist), gains=gains(data, means, configs, axes, dist),
    )


def write_report(results_dir: str | Path, out: str | Path | None = None, metric: str = "accuracy",
                 distance: str = "syntactic") -> list[Path]:
    """Write the report files (see the module docstring) into ``out`` (default ``results_dir/report``);
    ``distance`` orders by_distance.png. Returns the paths written."""
    if distance not in ALL_KINDS:
        raise XlpeftError(f"unknown distance kind {distance!r}: choose from {', '.join(ALL_KINDS)}")
    report = analyse(results_dir, metric)
    out = Path(out) if out is not None else Path(results_dir) / "report"
    written: list[Path] = []

    def csv(name: str, frame: pd.DataFrame) -> None:
        written.append(out / name)
        atomic_write(out / name, lambda tmp: frame.to_csv(tmp, index=False))

    summary_table = report.configs[list(dict.fromkeys(["configuration", *report.axes, "source", "model"]))].merge(
        report.summary, on="configuration")
    csv("summary.csv", summary_table)
    csv("per_language.csv", report.per_language)
    csv("correlations.csv", report.correlations)
    csv("gains.csv", report.gains)
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
        others = [axis for axis in report.axes if axis != "prompt_length"]
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
             "used; the source language itself is left out (zero-shot transfer is about the targets).")
    doc.text("A gain is a - b per language, in percentage points, between two configurations that differ in one "
             "axis only. The Wilcoxon signed-rank and paired t-tests pair languages (each its mean over seeds): "
             "they ask whether a beats b across languages, not whether the gap exceeds seed noise. "
             "Wins/ties/losses count the languages where a is above, equal to, below b.")

    doc.heading("Summary per configuration")
    doc.table(["Configuration", f"{metric} (%)", "95 % CI", "Seeds", "Languages", f"Best {TOP}", f"Worst {TOP}"],
              [[row["configuration"], _pct(row["mean"]), _interval(row), str(row["seeds"]), str(row["languages"]),
                _codes(row["best"].split(", ")), _codes(row["worst"].split(", "))]
               for _, row in summary_table.iterrows()])
    doc.text("For a paper: `summary.tex` (booktabs); unrounded values: `summary.csv`.")
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
        doc.table(["a", "b", "Axis", "Mean gain (pp)", "Wilcoxon p", "t-test p", "Wins/ties/losses", "n"],
                  [[row["a"], row["b"], row["axis"], _points(row["mean_gain"]), _p(row["wilcoxon_p"]), _p(row["t_p"]),
                    f"{row['wins']}/{row['ties']}/{row['losses']}", str(row["n"])]
                   for _, row in report.gains.iterrows()])
        doc.text("Correlation of the per-language gain with each distance (does the gain grow with distance from "
                 "the source?):")
        doc.table(["a - b", *ALL_KINDS],
                  [[f"{row['a']} - {row['b']}",
                    *(_correlation_cell(row, f"_{kind}") for kind in ALL_KINDS)] for _, row in report.gains.iterrows()])

    doc.heading("Files")
    doc.bullets(["`report.md`, `report.html`: this report (the HTML embeds its figures)",
                 "`summary.csv`, `per_language.csv`, `correlations.csv`, `gains.csv`: the tables, unrounded "
                 "(metric values as fractions, not percent)",
                 "`summary.tex`: the summary as a LaTeX tabular",
                 "figures: " + ", ".join(f"`{path.name}`" for path in figures.values() if path is not None)])
    return doc


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


def _show(value, axis: str = "") -> str:
    """A setting as labels show it: a local model directory by its name rather than its absolute path, a
    whole number without '.0' (Parquet stores an integer column with a missing value as floats), and a
    missing value by its meaning (``shots`` None is the whole training split)."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "all" if axis == "shots" else "none"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return Path(value).name if isinstance(value, str) and value.startswith("/") else str(value)


def _same(a, b) -> bool:
    return bool((pd.isna(a) and pd.isna(b)) or a == b)


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


def _interval(row) -> str:
    return "–" if pd.isna(row["ci_low"]) else f"[{_pct(row['ci_low'])}, {_pct(row['ci_high'])}]"


def _correlation_cell(stats, suffix: str = "") -> str:
    """``r 0.41 (p 0.020), rho 0.38 (p 0.030), n 6`` from a correlations row (or a gains row's ``_<kind>`` columns)."""
    return (f"r {_number(stats[f'pearson_r{suffix}'])} (p {_p(stats[f'pearson_p{suffix}'])}), "
            f"rho {_number(stats[f'spearman_rho{suffix}'])} (p {_p(stats[f'spearman_p{suffix}'])}), "
            f"n {stats[f'n{suffix}']}")


_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
        "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "–": "--"}


def _tex(text) -> str:
    return "".join(_TEX.get(char, char) for char in str(text))
