"""The figures of ``xlpeft evaluate`` and ``xlpeft report``: per-language results against languages,
distances, prompt length and the map.

Figures with one tick per language widen with the language count and shrink their tick labels, so
that 205 labels stay legible (the report shows them at natural size, scrolling sideways); a tick names the
language by its code and, where known, its name. Missing values (a distance URIEL lacks, a language without
coordinates) are left out or set apart, never filled.

Baselines (``baselines``: languages x ``majority``, ``chance`` of the plotted metric, computed from the task's
data by :mod:`xlpeft.analysis.facts`; None draws none) are grey lines: dashed for the majority class, dotted
for chance. Where every language has the same value it is one line across the plot; where they differ, a
plot with one position per language draws each language's own value over it, and the others draw the mean
over languages, saying so in the legend.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from xlpeft.analysis.facts import source_languages  # noqa: E402
from xlpeft.analysis.stats import correlation  # noqa: E402
from xlpeft.files import atomic_write  # noqa: E402

BASELINE_LINES = {"majority": ("--", "majority class"), "chance": (":", "chance")}  # style, legend text
DPI = 110
LEGEND_ROWS = 24  # entries per legend column beside a 4-inch-high plot (6-point text)


def accuracy_plot(results: pd.DataFrame, runs: list[str], path: Path, metric: str = "accuracy",
                  baselines: pd.DataFrame | None = None, names: dict[str, str] | None = None) -> None:
    """Bars of mean ``metric`` over ``runs`` per language (min-max whiskers when several runs), with the
    task's ``baselines`` (see the module docstring) and the languages' ``names`` under their codes."""
    table = results[results["run"].isin(runs)].assign(script=lambda t: t["script"].fillna("").replace("", "other"))
    stats = table.groupby(["language", "script"])[metric].agg(["mean", "min", "max"]).reset_index()
    stats = stats.sort_values("mean", ascending=False)
    scripts = sorted(stats["script"].unique())
    colours = {s: plt.get_cmap("tab20")(i % 20) for i, s in enumerate(scripts)}
    # constrained layout makes room for the legend outside the axes (on the right): inside them it hid bars,
    # and with many scripts it grew wider than the axes, over the title and past the figure's left edge
    ticks = _tick_labels(list(stats["language"]), names)
    fig, ax = plt.subplots(figsize=(max(6, 0.22 * len(stats) + 2), 3.6 + max(map(len, ticks)) * 0.55 * 7 / 72),
                           layout="constrained")
    x = range(len(stats))
    errors = [stats["mean"] - stats["min"], stats["max"] - stats["mean"]] if len(runs) > 1 else None
    ax.bar(x, stats["mean"], color=[colours[s] for s in stats["script"]], yerr=errors, capsize=1.5)
    _references(ax, baselines, list(stats["language"]))
    ax.set_xticks(list(x), ticks, rotation=90, fontsize=7)
    ax.set_ylabel(metric + (f" (mean of {len(runs)} runs)" if len(runs) > 1 else ""))
    ax.set_ylim(0, 1)
    ax.set_title(", ".join(runs[:4]) + (f" and {len(runs) - 4} more" if len(runs) > 4 else ""), fontsize=9)
    ax.set_xlim(-0.6, len(stats) - 0.4)
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours[s]) for s in scripts] + ax.get_legend_handles_labels()[0]
    labels = scripts + ax.get_legend_handles_labels()[1]
    fig.legend(handles, labels, fontsize=6, loc="outside right upper", ncol=-(-len(labels) // LEGEND_ROWS))
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=130, format="png"))
    plt.close(fig)


def by_distance_plot(means: pd.DataFrame, distance: pd.Series, kind: str, source: str, metric: str,
                     path: Path, baselines: pd.DataFrame | None = None, names: dict[str, str] | None = None) -> None:
    """The metric per language (``means``: languages x configurations), languages in order of ``distance``
    from ``source`` (a set of sources: the nearest); the distance itself is drawn on a second axis so the
    ordering can be read off.

    Languages without this distance come last, past a dashed line, with no distance drawn.
    """
    known = distance.reindex(means.index).dropna().sort_values(kind="stable")
    missing = [language for language in means.index if language not in known.index]
    order = [*known.index, *missing]
    x = np.arange(len(order))
    fig, ax = plt.subplots(figsize=(_width(len(order)), 4.05 + _label_height(order, names)))
    for colour, config in zip(_colours(len(means.columns)), means.columns):
        ax.plot(x, means.loc[order, config], marker="o", markersize=3, linewidth=0.7, color=colour, label=config)
    _references(ax, baselines, order)
    ax.set_ylabel(metric)
    ax.set_ylim(0, 1)
    distance_axis = ax.twinx()
    distance_axis.plot(x[:len(known)], known.to_numpy(), color="black", linestyle=":", linewidth=1,
                       label=f"{kind} distance (right axis)")
    distance_axis.set_ylabel(f"{kind} distance from {source}")
    distance_axis.set_ylim(0, 1.05)
    if missing:
        ax.axvline(len(known) - 0.5, color="black", linestyle="--", linewidth=0.8)
        ax.text(len(known) - 0.4, 0.98, f"no {kind} distance ({len(missing)})", transform=ax.get_xaxis_transform(),
                fontsize=7, va="top", ha="left", rotation=90)
    _language_ticks(ax, order, names)
    handles = ax.get_legend_handles_labels()[0] + distance_axis.get_legend_handles_labels()[0]
    distance_axis.legend(handles, [h.get_label() for h in handles], fontsize=6, loc="lower left",  # drawn over both
                         ncol=max(1, min(4, int(fig.get_figwidth() // 3.5))))
    ax.set_title(f"{metric} per language, sorted by {kind} distance from {source}", fontsize=9)
    _save(fig, path)


def scatter_plot(means: pd.DataFrame, distances: dict[str, pd.DataFrame], kinds: tuple[str, ...], metric: str,
                 path: Path, baselines: pd.DataFrame | None = None) -> None:
    """One panel per distance kind: the metric of each configuration (``means`` column) against the
    distance of each language from that configuration's source (``distances[config]``: languages x
    kinds), with its least-squares line and Pearson's r over the languages that have the distance."""
    columns = min(3, len(kinds))
    rows = -(-len(kinds) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.6 * rows + 0.4 + 0.15 * len(means.columns)),
                             squeeze=False)
    colours = _colours(len(means.columns))
    for ax, kind in zip(axes.ravel(), kinds):
        for colour, config in zip(colours, means.columns):
            x = distances[config][kind].reindex(means.index).to_numpy(dtype=float)
            y = means[config].to_numpy(dtype=float)
            keep = np.isfinite(x) & np.isfinite(y)
            ax.scatter(x[keep], y[keep], s=10, color=colour, alpha=0.7)
            r = correlation(x, y)
            if keep.sum() >= 2 and np.ptp(x[keep]) > 0:
                slope, intercept = np.polyfit(x[keep], y[keep], 1)
                ends = np.array([x[keep].min(), x[keep].max()])
                ax.plot(ends, slope * ends + intercept, color=colour, linewidth=1.2,
                        label=f"r={r['pearson_r']:.2f}, n={r['n']}" if r["n"] >= 3 else f"n={r['n']}")
        ax.set_title(kind, fontsize=9)
        ax.set_xlabel(f"{kind} distance")
        ax.set_ylabel(metric)
        _references(ax, baselines, labelled=False)  # the panel legends hold the fits' r only
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6, loc="best")
    for ax in axes.ravel()[len(kinds):]:
        ax.set_visible(False)
    fig.legend([plt.Line2D([], [], color=c, marker="o", linestyle="-") for c in colours], list(means.columns),
               loc="lower center", ncol=min(3, len(means.columns)), fontsize=7)
    fig.tight_layout(rect=(0, 0.02 + 0.025 * -(-len(means.columns) // 3) / rows, 1, 1))  # room for the legend
    _save(fig, path, tight=False)


def heatmap_plot(means: pd.DataFrame, metric: str, path: Path, names: dict[str, str] | None = None) -> None:
    """Configurations x languages, languages ordered by their mean over configurations (best first)."""
    order = means.mean(axis=1).sort_values(ascending=False, kind="stable").index
    matrix = means.loc[order].T
    # the heat rows, the title, and the tick labels below them (a language's name lengthens its label)
    fig, ax = plt.subplots(figsize=(_width(len(order)), 1.2 + 0.3 * len(matrix) + _label_height(list(order), names)))
    image = ax.imshow(matrix.to_numpy(dtype=float), aspect="auto", cmap="viridis", interpolation="nearest")
    ax.set_yticks(range(len(matrix)), matrix.index, fontsize=7)
    _language_ticks(ax, list(order), names)
    fig.colorbar(image, ax=ax, label=metric, fraction=0.03, pad=0.01)
    ax.set_title(f"{metric}: configurations x languages (languages by mean over configurations)", fontsize=9)
    _save(fig, path)


def prompt_length_plot(summary: pd.DataFrame, others: list[str], metric: str, path: Path,
                       baselines: pd.DataFrame | None = None) -> None:
    """Mean metric (with its interval over seeds) against ``prompt_length``, one line per combination of
    the ``others`` axes. ``summary`` has ``prompt_length``, ``mean``, ``ci_low``, ``ci_high`` and ``others``."""
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    groups = summary.groupby(others, sort=False) if others else [((), summary)]
    for colour, (key, group) in zip(_colours(len(groups)), groups):
        group = group.sort_values("prompt_length")
        errors = np.nan_to_num([group["mean"] - group["ci_low"], group["ci_high"] - group["mean"]])  # one seed: none
        label = ", ".join(f"{axis}={value}" for axis, value in zip(others, key)) or "mean over seeds"
        ax.errorbar(group["prompt_length"], group["mean"], yerr=errors, marker="o", markersize=4, capsize=3,
                    color=colour, label=label)
    lengths = sorted(summary["prompt_length"].unique())
    ax.set_xscale("symlog", linthresh=1)  # lengths grow geometrically; symlog keeps L=0 (no prompt) on the axis
    ax.set_xticks(lengths, [str(length) for length in lengths])
    ax.minorticks_off()
    _references(ax, baselines)
    ax.set_xlabel("prompt length L")
    ax.set_ylabel(f"{metric} (mean over languages, 95% CI over seeds)")
    ax.legend(fontsize=7)
    _save(fig, path)


def world_map_plot(points: pd.DataFrame, source: str, title: str, metric: str, path: Path) -> None:
    """Languages at their ``longitude``/``latitude``, coloured by ``value``, on a plain degree frame with a
    graticule (no coastlines: no basemap data is available offline), the ``source`` language(s) ringed in
    red. Rows without a point are skipped."""
    placed = points.dropna(subset=["longitude", "latitude"])
    fig, ax = plt.subplots(figsize=(16, 8.4))
    ax.set_xlim(-180, 180)
    ax.set_ylim(-90, 90)
    ax.set_aspect("equal")
    ax.set_xticks(range(-180, 181, 30))
    ax.set_yticks(range(-90, 91, 30))
    ax.tick_params(labelsize=7)
    ax.grid(color="0.88", linewidth=0.5)
    ax.axhline(0, color="0.75", linewidth=0.6)
    image = ax.scatter(placed["longitude"], placed["latitude"], c=placed["value"], cmap="viridis", s=22,
                       edgecolors="black", linewidths=0.3, zorder=3)
    for language, lon, lat in zip(placed["language"], placed["longitude"], placed["latitude"]):
        ax.annotate(language, (lon, lat), xytext=(2, 2), textcoords="offset points", fontsize=4.5, zorder=4)
    ring = placed[placed["language"].isin(source_languages(source))]
    ax.scatter(ring["longitude"], ring["latitude"], s=90, facecolors="none", edgecolors="red", linewidths=1.2,
               zorder=5, label=f"source ({source})")
    if len(ring):
        ax.legend(fontsize=7, loc="lower left")
    fig.colorbar(image, ax=ax, label=metric, shrink=0.7, pad=0.01)
    ax.set_xlabel("longitude (degrees)")
    ax.set_ylabel("latitude (degrees)")
    ax.set_title(title, fontsize=9)
    _save(fig, path)


def _colours(n: int) -> list:
    cmap = plt.get_cmap("tab10" if n <= 10 else "tab20")
    return [cmap(i % cmap.N) for i in range(n)]


def _width(n_languages: int) -> float:
    """Inches: room for one tick label per language (about 0.13 in each at the small font)."""
    return max(7.0, 0.13 * n_languages + 2.5)


def _language_ticks(ax, languages: list[str], names: dict[str, str] | None = None) -> None:
    ax.set_xticks(range(len(languages)), _tick_labels(languages, names), rotation=90,
                  fontsize=7 if len(languages) <= 60 else 5.5)
    ax.set_xlim(-0.6, len(languages) - 0.4)


def _label_height(languages: list[str], names: dict[str, str] | None) -> float:
    """Inches that the longest rotated tick label takes (about 0.55 em per character)."""
    size = 7 if len(languages) <= 60 else 5.5
    return max(map(len, _tick_labels(languages, names)), default=0) * 0.55 * size / 72


def _tick_labels(languages: list[str], names: dict[str, str] | None) -> list[str]:
    """``code name`` (``bbc Batak Toba``), or the code alone where no name is known."""
    names = names or {}
    return [f"{code} {names[code]}" if names.get(code) else code for code in languages]


def _references(ax, baselines: pd.DataFrame | None, order: list[str] | None = None, labelled: bool = True) -> None:
    """The baselines' lines (module docstring); ``order``: the languages at x = 0, 1, ... where the plot has them."""
    if baselines is None:
        return
    for name, (style, text) in BASELINE_LINES.items():
        values = baselines[name].dropna()
        if values.empty:
            continue
        if order is not None and np.ptp(values.to_numpy()) > 1e-12:
            x = np.arange(len(order))
            ax.hlines(baselines[name].reindex(order).to_numpy(dtype=float), x - 0.45, x + 0.45, color="grey",
                      linestyles=style, linewidth=1, label=f"{text} (per language)" if labelled else None)
            continue
        differ = np.ptp(values.to_numpy()) > 1e-12
        label = f"{text} ({100 * values.mean():.1f}%{', mean over languages' if differ else ''})"
        ax.axhline(values.mean(), color="grey", linestyle=style, linewidth=0.8, label=label if labelled else None)


def _save(fig, path: Path, tight: bool = True) -> None:
    if tight:
        fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=DPI, format="png", bbox_inches="tight"))
    plt.close(fig)
