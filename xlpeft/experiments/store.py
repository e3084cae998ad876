"""A grid output directory's two files that outlive the run: the expanded grid and the results store.

Kept apart from runner.py, which trains and evaluates, so that reading results (``xlpeft report``,
``xlpeft.analysis``) imports neither torch nor the training code.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from xlpeft.errors import XlpeftError

GRID = "grid.json"  # the expanded grid: run ids, configs, evaluation plan
STORE = "results.parquet"  # one row per run x language x metric


def load_results(out: str | Path) -> pd.DataFrame:
    """The results store of a grid output directory, as a DataFrame."""
    path = Path(out) / STORE
    if not path.is_file():
        raise XlpeftError(f"{path} does not exist: run 'xlpeft run CONFIG --out {out}' first")
    return pd.read_parquet(path)
