"""Per-language accuracy at a glance: one bar per language, sorted, coloured by script."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from xlpeft.experiments.run_dir import atomic_write  # noqa: E402

MAJORITY = 0.25  # always predicting the largest SIB-200 class (methods.md C)
CHANCE = 1 / 7


def accuracy_plot(results: pd.DataFrame, runs: list[str], path: Path) -> None:
    """Bars of mean accuracy over ``runs`` per language (min-max whiskers when several runs)."""
    table = results[results["run"].isin(runs)]
    stats = table.groupby(["language", "script"])["accuracy"].agg(["mean", "min", "max"]).reset_index()
    stats = stats.sort_values("mean", ascending=False)
    scripts = sorted(stats["script"].unique())
    colours = {s: plt.get_cmap("tab20")(i % 20) for i, s in enumerate(scripts)}
    fig, ax = plt.subplots(figsize=(max(6, 0.22 * len(stats) + 2), 4))
    x = range(len(stats))
    errors = [stats["mean"] - stats["min"], stats["max"] - stats["mean"]] if len(runs) > 1 else None
    ax.bar(x, stats["mean"], color=[colours[s] for s in stats["script"]], yerr=errors, capsize=1.5)
    ax.axhline(MAJORITY, color="grey", linestyle="--", linewidth=0.8, label="majority class (25%)")
    ax.axhline(CHANCE, color="grey", linestyle=":", linewidth=0.8, label="chance (14.3%)")
    ax.set_xticks(list(x), stats["language"], rotation=90, fontsize=7)
    ax.set_ylabel("accuracy" + (f" (mean of {len(runs)} runs)" if len(runs) > 1 else ""))
    ax.set_ylim(0, 1)
    ax.set_title(", ".join(runs[:4]) + (f" and {len(runs) - 4} more" if len(runs) > 4 else ""), fontsize=9)
    ax.set_xlim(-0.6, len(stats) - 0.4)
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours[s]) for s in scripts]
    ax.legend(handles + ax.get_legend_handles_labels()[0], scripts + ax.get_legend_handles_labels()[1],
              fontsize=6, ncol=min(8, len(scripts) + 2), loc="upper right")
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=130, format="png"))
    plt.close(fig)
