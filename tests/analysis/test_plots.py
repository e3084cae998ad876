"""Every figure xlpeft writes keeps its legends inside the figure and off the titles, at the size it is written.

The per-language plot beside an evaluation CSV drew its legend inside the axes with one column per script:
with many scripts it grew wider than the axes, over the title and past the figure's left edge (issue 19).
The figures are checked at the size they are written: each one is kept when the code closes it, drawn again
at the resolution it was saved with (text does not scale exactly with the resolution: at 100 dpi the old
legend fitted, at the 130 dpi it is written with it did not), and the legends' and titles' boxes are
measured by matplotlib's own renderer.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from test_report import _grid_dir

from xlpeft.analysis import plots
from xlpeft.analysis.report import write_report
from xlpeft.data.languages import registry, resolve_languages


@pytest.fixture
def closed_figures(monkeypatch) -> list:
    """The figures the code closes (after writing them), kept for measuring, each with the dpi it was saved at."""
    kept: list = []
    save = Figure.savefig

    def savefig(figure, *args, **kwargs):
        figure.written_dpi = kwargs.get("dpi") or figure.dpi
        save(figure, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", savefig)
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
    """Each legend lies inside the figure (the written image) and overlaps no axes' title, at the written size."""
    figure.set_dpi(figure.written_dpi)
    figure.canvas.draw()
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


TEN_SCRIPTS = "eng_Latn,rus_Cyrl,zho_Hans,arb_Arab,hin_Deva,jpn_Jpan,kor_Hang,tha_Thai,ell_Grek,heb_Hebr"


@pytest.mark.parametrize("languages, runs", [
    ("eng_Latn", ["spt"]),
    ("quick", ["spt"]),
    (TEN_SCRIPTS, ["spt"]),  # the plot: 8 legend columns in a 6-inch figure, cut at its left edge
    ("xglm30", [f"spt_seed{seed}" for seed in range(5)]),
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
