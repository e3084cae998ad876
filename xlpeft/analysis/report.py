"""``xlpeft report``: a grid's results as tables, statistics and figures, in one readable document, for any
task (its metrics, language names and baselines come from the task: :mod:`xlpeft.analysis.facts`).

The input is a grid output directory written by ``xlpeft run`` (``results.parquet`` and ``grid.json``);
the output, by default in ``DIR/report/``::

    report.md, report.html      the report; the HTML embeds its figures, so it is one file to send around
    summary.tex                 the summary table as a booktabs tabular, for a paper
    summary.csv, per_language.csv, correlations.csv, gains.csv, findings.csv      the tables, unrounded
    truncation.csv              the share of inputs cut per language and configuration (when recorded)
    by_distance.png, scatter.png, heatmap.png, prompt_length.png (when L is an axis), world_map.png

Two steps: :func:`~xlpeft.analysis.tables.analyse` computes every table and statistic into a
:class:`~xlpeft.analysis.tables.Report` (what the numbers mean is said there), and
:mod:`xlpeft.analysis.render` lays them out as files.
"""

from __future__ import annotations

from pathlib import Path

from xlpeft.analysis import render
from xlpeft.analysis.tables import analyse


def write_report(results_dir: str | Path, out: str | Path | None = None, metric: str | None = None,
                 distance: str = "syntactic", data_dir: str | Path | None = None) -> list[Path]:
    """Write the report files (see the module docstring) into ``out`` (default ``results_dir/report``);
    ``metric`` is one of the task's (default: its first), ``distance`` the kind the claims are tested with and
    by_distance.png orders by, ``data_dir`` where the task's data are read for the baselines (default: the
    grid's, else XLPEFT_DATA_DIR). Returns the paths written."""
    report = analyse(results_dir, metric, distance, data_dir)
    out = Path(out) if out is not None else Path(results_dir) / "report"
    written = render.write_tables(report, out)
    figures, unplaced = render.draw_figures(report, out)
    written += [path for path in figures.values() if path is not None]
    return written + render.write_document(report, render.document(report, figures, unplaced, Path(results_dir)), out)
