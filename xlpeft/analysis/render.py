"""The report's files from a :class:`~xlpeft.analysis.tables.Report`: the tables as CSV and the summary as
a LaTeX booktabs tabular (:func:`write_tables`), the figures (:func:`draw_figures`, drawn by
:mod:`xlpeft.analysis.plots`), and the document (:func:`document`) as Markdown and self-contained HTML
(:func:`write_document`). Nothing here computes a statistic: numbers are rounded and laid out, and the
truncation warnings compare the shares cut with a threshold."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from pathlib import Path

import pandas as pd

from xlpeft.analysis import plots
from xlpeft.analysis.document import Document
from xlpeft.analysis.facts import source_languages
from xlpeft.analysis.findings import (CLAIMS, CONTRADICTED, INCONCLUSIVE, PAPER_TASKS, SUPPORTED, UNDERPOWERED, Finding,
                                      axis_column, show)
from xlpeft.analysis.stats import MIN_SEEDS
from xlpeft.analysis.tables import BOOTSTRAP, CONFIDENCE, TOP, Report, gain_pairs
from xlpeft.data.distances import ALL_KINDS, MISSING_REASONS
from xlpeft.files import atomic_write

TRUNCATION_LIMIT = 0.05  # a language losing more than this share of its inputs is named in a warning


def write_tables(report: Report, out: Path) -> list[Path]:
    """The tables as CSV files, unrounded, and the summary as ``summary.tex``; returns the paths written."""
    written: list[Path] = []

    def csv(name: str, frame: pd.DataFrame) -> None:
        written.append(out / name)
        atomic_write(out / name, lambda tmp: frame.to_csv(tmp, index=False))

    csv("summary.csv", report.summary_table)
    csv("per_language.csv", report.per_language)
    csv("correlations.csv", report.correlations)
    csv("gains.csv", report.gains)
    csv("findings.csv", pd.DataFrame([asdict(finding) for finding in report.findings], columns=list(Finding.__annotations__)))
    if report.truncation is not None:
        csv("truncation.csv", report.truncation.rename_axis("language").reset_index())
    written.append(out / "summary.tex")
    atomic_write(out / "summary.tex", lambda tmp: tmp.write_text(summary_latex(report)))
    return written


def write_document(report: Report, doc: Document, out: Path) -> list[Path]:
    """``report.md`` (figures linked) and ``report.html`` (figures embedded); returns the paths written."""
    written = []
    for name, text in (("report.md", doc.markdown()),
                       ("report.html", doc.html(f"{report.name}: {report.metric_name}"))):
        written.append(out / name)
        atomic_write(out / name, lambda tmp, text=text: tmp.write_text(text, encoding="utf-8"))
    return written


def draw_figures(report: Report, out: Path) -> tuple[dict[str, Path | None], list[str]]:
    """Draw the plots into ``out``, and name the languages the map could not place. A plot that does not
    apply (prompt length when L is not an axis) maps to None."""
    configs, means, metric, distance = report.configs, report.means, report.metric_name, report.kind
    source, baselines, names = configs["source"].iloc[0], report.baselines.table, report.names
    figures: dict[str, Path | None] = {name: out / f"{name}.png" for name in
                                       ("heatmap", "prompt_length", "by_distance", "world_map", "scatter")}
    plots.heatmap_plot(means, metric, figures["heatmap"], names)
    if "prompt_length" in report.axes:
        others = [axis_column(axis) for axis in report.axes if axis != "prompt_length"]
        plots.prompt_length_plot(report.summary_table, others, metric, figures["prompt_length"], baselines)
    else:
        figures["prompt_length"] = None
    plots.by_distance_plot(means, report.distances[source][distance], distance, _source(source), metric,
                           figures["by_distance"], baselines, names)
    best = report.best
    points = report.coordinates.copy()
    points["value"] = points["language"].map(means[best])
    best_source = configs.set_index("configuration").loc[best, "source"]
    plots.world_map_plot(points, best_source, f"{metric} of the best configuration ({best}), mean over seeds", metric,
                         figures["world_map"])
    plots.scatter_plot(means, {config: report.distances[src] for config, src in
                               zip(configs["configuration"], configs["source"])}, ALL_KINDS, metric,
                       figures["scatter"], baselines)
    return figures, list(points.loc[points["latitude"].isna(), "language"])


def document(report: Report, figures: dict[str, Path | None], unplaced: list[str], results_dir: Path) -> Document:
    """The report's text: header, how to read, summary, per-language results, correlations, gains, files."""
    configs, metric, distance = report.configs, report.metric_name, report.kind
    summary_table = report.summary_table
    seeds = sorted(report.data["seed"].unique())
    fewest, most = configs["seeds"].min(), configs["seeds"].max()
    doc = Document()
    doc.heading(f"{report.name}: cross-lingual {metric} on {report.task}", 1)
    doc.bullets([
        f"**Grid**: `{report.name}` (results from `{results_dir}`)",
        "**Model(s)**: " + ", ".join(f"`{model}`" for model in configs["model"].unique()),
        "**Source language(s)**: " + ", ".join(f"`{source}` ({_names(report, source_languages(source))})"
                                               for source in configs["source"].unique()),
        f"**Runs**: {configs['seeds'].sum()} in {len(configs)} configuration(s), "
        f"{fewest if fewest == most else f'{fewest} to {most}'} seed(s) each (seeds {', '.join(map(str, seeds))})",
        "**Configurations vary in**: " + (_codes(report.axes) or "nothing (no axis but seed)"),
        f"**Languages**: {len(report.languages)}, {report.task} `{report.split}` split"
        + (f"; left out because only some runs were evaluated on them: {_codes(report.left_out)}"
           if report.left_out else ""),
        f"**Metric**: {metric}",
        f"**Statistics**: tests over seeds (Student's t; fewer than {MIN_SEEDS} seeds: underpowered, no p-value); "
        f"bootstrap over languages with {BOOTSTRAP.n_resamples} resamples, generator seed {BOOTSTRAP.seed}; "
        f"{round(100 * BOOTSTRAP.confidence)} % intervals",
        f"**Report date**: {datetime.now():%Y-%m-%d %H:%M}",
    ])

    doc.heading("How to read")
    doc.text(f"Numbers are {metric} in percent. {_baseline_text(report)}")
    doc.text("A configuration's score is the mean over languages of each run, then the mean over seeds; its "
             "95 % interval is Student's t over seeds (none with one seed). A per-language cell is the mean over "
             "seeds ± the half-width of its 95 % interval over seeds.")
    doc.text("Distances are URIEL's, from the source language (looked up under the task's ISO 639-3 codes; from a "
             "set of source languages, the distance to the nearest of them, per kind): 0 is identical, 1 opposite. "
             "A negative r or rho means the metric falls as languages get more distant from the source. A language "
             "without a distance of some kind is left out of that kind's correlations (never imputed), and n counts "
             "the languages used; the source language itself (each of a set) is left out (zero-shot transfer is "
             "about the targets). Brackets hold a bootstrap interval over languages; p-values are Holm-adjusted "
             "across the six distances.")
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
    best = report.best
    doc.heading("Per language")
    doc.image(figures["by_distance"], f"{metric} per language, languages sorted by {distance} distance from "
                                      f"{_source(source, '`')} (dotted line, right axis); those without it at the right"
                                      + ("; grey lines: the majority class (dashed) and chance (dotted)."
                                         if report.baselines.table is not None else "."))
    doc.image(figures["world_map"], f"{metric} of the best configuration ({best}) at each language's Glottolog "
                                    "point (or URIEL's), the source(s) ringed in red; a plain longitude/latitude frame, "
                                    "no coastlines.")
    doc.text(f"Languages without coordinates, not on the map: {_codes(unplaced)}." if unplaced
             else "Every language has coordinates and is on the map.")
    doc.text("Mean over seeds ± 95 % half-width; URIEL distances from the source (– where URIEL lacks them). "
             "Unrounded: `per_language.csv` (the `ci95` columns hold the half-widths"
             + (", `majority` and `chance` the baselines" if report.baselines.table is not None else "") + ").")
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


def _findings_section(doc: Document, report: Report) -> None:
    """The claims table, its verdict rules and the claims this grid cannot test."""
    doc.heading("Findings: the papers' claims")
    tested = {finding.claim for finding in report.findings}
    absent = [f"{claim.text} ({claim.paper}): needs {claim.needs}" for claim in CLAIMS if claim.text not in tested]
    if report.findings:
        doc.text(f"The papers made these claims on their own tasks ({_paper_tasks()}); here each is tested on "
                 f"{report.task}'s {report.metric_name}. "
                 f"Each claim is tested on every pair of configurations that differ only in the axis it is about, "
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


def _truncation_section(doc: Document, report: Report) -> None:
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
    """The per-language table; the baselines get columns where they differ between languages (the text says
    them once otherwise)."""
    table = report.per_language
    configs = list(report.configs["configuration"])
    kinds = [column for column in table.columns if column.split(" from ")[0] in ALL_KINDS]
    lines = [name for name in ("majority", "chance") if name in table and table[name].nunique() > 1]
    rows = [[row["language"], row["name"], row["script"], *(_pct(row[name]) for name in lines),
             *(_pct(row[config]) + ("" if pd.isna(row[f"{config} ci95"]) else f" ± {100 * row[f'{config} ci95']:.1f}")
               for config in configs),
             *(_number(row[kind], 3) for kind in kinds)]
            for _, row in table.iterrows()]
    return ["Language", "Name", "Script", *lines, *configs, *kinds], rows


def _baseline_text(report: Report) -> str:
    """What the task's baselines are on this grid's languages, or why there are none."""
    table, metric = report.baselines.table, report.metric_name
    if table is None:
        return report.baselines.note + "."
    chance, majority = _spread(table["chance"]), _spread(table["majority"])
    exact = f" (1/{report.labels})" if report.metric == "accuracy" else " in expectation"
    text = (f"{report.task} has {report.labels} labels. Baselines, from each language's `{report.split}` split: "
            f"guessing uniformly at random scores {chance} {metric}{exact}, and always answering the class most "
            f"frequent in a language's split scores {majority}.")
    return text + (f" ({report.baselines.note}.)" if report.baselines.note else "")


def _spread(values: pd.Series) -> str:
    """``25.0 %``, or ``12.0 to 30.0 % (per language below)`` where languages differ."""
    values = values.dropna()
    if values.empty:
        return "–"
    if values.max() - values.min() <= 1e-12:
        return f"{_pct(values.iloc[0])} %"
    return f"{_pct(values.min())} to {_pct(values.max())} % (per language below)"


def _names(report: Report, codes: list[str]) -> str:
    return ", ".join(report.names.get(code) or code for code in codes)


def _source(source: str, quote: str = "") -> str:
    """A configuration's source as the text names it: one language, or "the nearest of" a set."""
    codes = source_languages(source)
    listed = ", ".join(f"{quote}{code}{quote}" for code in codes)
    return listed if len(codes) == 1 else f"the nearest of {listed}"


def _paper_tasks() -> str:
    return "; ".join(f"{paper}: {tasks}" for paper, tasks in PAPER_TASKS.items())


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


def truncation_warnings(share: pd.DataFrame, pairs: list[tuple[str, str, str]]) -> list[str]:
    """One line per language losing more than :data:`TRUNCATION_LIMIT` of its inputs in some configuration,
    and one per compared pair (:func:`~xlpeft.analysis.tables.gain_pairs`) whose configurations cut a different share in some
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


def summary_latex(report: Report) -> str:
    """The summary (:attr:`Report.summary_table`) as a booktabs tabular: one column per axis (or the
    configuration label), the metric in %, its interval, seeds, best and worst languages."""
    table, axes = report.summary_table, report.axes
    lead = axes or ["configuration"]
    header = [_tex(column.replace("_", " ")) for column in lead]
    header += [f"{_tex(report.metric_name)} (\\%)", f"{round(CONFIDENCE * 100)}\\% CI", "Seeds",
               f"Best {TOP}", f"Worst {TOP}"]
    lines = ["% needs \\usepackage{booktabs}", f"\\begin{{tabular}}{{{'l' * len(lead)}rrrll}}", "\\toprule",
             " & ".join(header) + " \\\\", "\\midrule"]
    for _, row in table.iterrows():
        cells = [_tex(show(row[axis_column(column)] if axes else row[column])) for column in lead]
        cells += [_pct(row["mean"]), _tex(_interval(row)), str(row["seeds"]), _tex(row["best"]), _tex(row["worst"])]
        lines.append(" & ".join(cells) + " \\\\")
    return "\n".join([*lines, "\\bottomrule", "\\end{tabular}", ""])


# --- formatting --------------------------------------------------------------------------------------

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
