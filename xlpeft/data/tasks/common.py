"""What every task reader shares: finding the task's folder, naming choices in errors, the hub.

A task's files live in ``<DATA>/tasks/<task>/``, laid out as the task's own repository lays them out.
``<DATA>`` comes from an explicit ``data_dir`` argument, else the ``XLPEFT_DATA_DIR`` environment variable.
Because users point that variable at the SIB-200 folder or at its parent (both work for SIB-200), each
of these is accepted: the data root, its ``tasks`` folder, the task folder itself, or the ``sib200``
folder beside ``tasks``. A directory that is given but holds no such folder is an error, never a silent
fall-back to the hub, so a typo cannot quietly change which data a run uses.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from xlpeft.errors import XlpeftError
from xlpeft.hub import hub_reachable, offline_mode

DATA_ENV = "XLPEFT_DATA_DIR"


def find_task_dir(task: str, marker: str, data_dir: str | os.PathLike | None = None) -> Path | None:
    """The folder of ``task`` (the one holding ``marker``), or None when no directory is configured."""
    given = data_dir or os.environ.get(DATA_ENV)
    if not given:
        return None
    path = Path(given).expanduser()
    for candidate in (path / "tasks" / task, path / task, path, path.parent / "tasks" / task):
        if (candidate / marker).exists():
            return candidate.resolve()
    origin = "--data-dir" if data_dir else DATA_ENV
    raise XlpeftError(
        f"{task} data not found under {path} (from {origin}): expected {path}/tasks/{task}/{marker}; "
        f"copy the {task} repository to {path}/tasks/{task} or point {origin} at the data root"
    )


def require_dir(task: str, root: Path | None, origin: str) -> Path:
    """``root``, or an error saying where the files come from when no directory is configured."""
    if root is None:
        raise XlpeftError(
            f"no data directory for {task}: pass --data-dir (or set {DATA_ENV}) to a folder holding "
            f"tasks/{task}, a copy of {origin}"
        )
    return root


def check_choice(what: str, value: str, choices: Iterable[str]) -> None:
    """Reject ``value`` unless it is one of ``choices``, naming them all."""
    choices = list(choices)
    if value not in choices:
        raise XlpeftError(f"unknown {what} {value!r}: use one of {', '.join(choices)}")


def require_file(path: Path, what: str, present: Iterable[str]) -> Path:
    """``path`` if it is a file; else an error naming what the directory does hold."""
    if not path.is_file():
        have = ", ".join(sorted(present)) or "nothing"
        raise XlpeftError(f"missing file {path} for {what}; this copy holds: {have}; re-copy the data")
    return path


def load_hub(dataset: str, config: str | None, split: str, what: str):
    """``datasets.load_dataset`` with an early, clear error on a machine that cannot reach the hub."""
    import datasets  # imported lazily: only hub users pay for it

    # As in xlpeft.data.sib200: without the probe, datasets retries for minutes with no network; in
    # offline mode it may still answer from its local cache, so it is allowed to try.
    if not offline_mode() and not hub_reachable():
        raise XlpeftError(f"{what} comes from the hub ({dataset}), which is unreachable; run once online to cache it")
    try:
        return datasets.load_dataset(dataset, config, split=split)
    except Exception as exc:  # network errors come in many types; all mean the same to the user
        raise XlpeftError(f"could not load {dataset} ({config or 'default'}/{split}) from the hub "
                          f"({type(exc).__name__}) for {what}") from exc
