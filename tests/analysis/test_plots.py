"""Every figure xlpeft writes keeps its legends inside the figure and off the titles, at the size it is written.

The per-language plot beside an evaluation CSV drew its legend inside the axes with one column per script:
with many scripts it grew wider than the axes, over the title and past the figure's left edge (issue 19).
The figures are checked as they are saved: each one is kept when the code closes it, after ``savefig`` ran
its layout, and the legends' and titles' boxes are measured by matplotlib's own renderer.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from test_report import _grid_dir

from xlpeft.analysis import plots
from xlpeft.analysis.report import write_report
from xlpeft.data.languages import registry, resolve_languages


@pytest.fixture
def closed_figures(monkeypatch) -> list:
    """The figures the code closes (after writing them), kept for measuring."""
    kept: list = []
    monkeypatch.setattr(plt, "close", kept.append)
    yield kept
    monkeypatch.undo()
    for figure in kept:
        plt.close(figure)


def _results(languages: list[str], runs: list[str]) -> pd.DataFrame:
    scripts = registry()
    rng = np.random.default_rng(0)
    return pd.DataFrame([{"run": run, "language": language, "script": scripts[language].script,
                          "accuracy": rng.uniform(0.1, 0.9)} for run in runs for language in languages])


def assert_legends_placed(figure) -> None:
    """Each legend lies inside the figure (the written image) and overlaps no axes' title."""
    renderer = figure.canvas.get_renderer()
    legends = [*figure.legends, *(ax.get_legend() for ax in figure.axes if ax.get_legend() is not None)]
    titles = [ax.title for ax in figure.axes if ax.get_visible() and ax.get_title()]
    assert legends, "a figure without a legend checks nothing"
    frame = figure.bbox
    for legend in legends:
        box = legend.get_window_extent(renderer)
        assert frame.x0 - 0.5 <= box.x0 and box.x1 <= frame.x1 + 0.5, (box, frame)
        assert frame.y0 - 0.5 <= box.y0 and box.y1 <= frame.y1 + 0.5, (box, frame)
        for title in titles:
            assert not box.overlaps(title.get_window_extent(renderer)), f"legend over the title {title.get_text()!r}"


@pytest.mark.parametrize("languages, runs", [
    ("eng_Latn", ["spt"]),
    ("quick", ["spt"]),
    ("xglm30", [f"spt_seed{seed}" for seed in range(5)]),  # 13 scripts: the legend was wider than the axes
    ("all", ["spt"]),  # 30 scripts: two legend columns
])
def test_the_per_language_plot_keeps_its_legend_inside_and_off_the_title(tmp_path, closed_figures, languages, runs):
    codes = resolve_languages(languages)
    plots.accuracy_plot(_results(codes, runs), runs, tmp_path / "plot.png")
    [figure] = closed_figures
    assert (tmp_path / "plot.png").stat().st_size > 0
    assert_legends_placed(figure)


def test_the_reports_figures_keep_their_legends_inside_and_off_the_titles(tmp_path, closed_figures, monkeypatch):
    monkeypatch.setenv("XLPEFT_CACHE_DIR", str(tmp_path / "cache"))
    grid = _grid_dir(tmp_path / "grid", {"regime": ["prompt", "joint"], "prompt_length": [4, 16], "seed": [0, 1]})
    written = [path.name for path in write_report(grid) if path.suffix == ".png"]
    assert len(closed_figures) == len(written) >= 4
    for figure in closed_figures:
        if figure.legends or any(ax.get_legend() for ax in figure.axes):  # the heatmap has a colour bar only
            assert_legends_placed(figure)
