"""Files written so that readers never see half of one, and where xlpeft keeps its cache.

Every result, checkpoint and cache entry is written to a temporary name and renamed over its path
(``atomic_write``), so a process killed at any moment leaves the old file or the new one. Kept free of
torch so that ``xlpeft report`` and the CLI start fast.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from xlpeft import faults
from xlpeft.errors import XlpeftError


def cache_dir() -> Path:
    """The per-user xlpeft cache: ``$XLPEFT_CACHE_DIR``, else ``$XDG_CACHE_HOME/xlpeft``, else ``~/.cache/xlpeft``."""
    if os.environ.get("XLPEFT_CACHE_DIR"):
        return Path(os.environ["XLPEFT_CACHE_DIR"]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "xlpeft"
    return Path.home() / ".cache" / "xlpeft"


def atomic_write(path: Path, write) -> None:
    """Call ``write(tmp_path)`` then rename over ``path``: readers see the old file or the new, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; results are meant to be shared like any other
    try:
        write(Path(tmp))
        faults.crash_point(faults.BEFORE_RENAME, path.name)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _remove_leftovers(path: Path) -> None:
    """Delete the temporary files of earlier writes of ``path`` that were killed before their rename.

    A SIGKILL skips ``finally``, so such a file stays: junk that a language module's directory would
    publish with it, and that a joint run's checkpoint (the whole model) makes large. The rerun redoes
    the killed write, and so removes it here. One process writes a given file at a time (a second would
    overwrite the first's rows anyway), so no live write's temporary file is removed.
    """
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        stale.unlink(missing_ok=True)


def atomic_dir(path: Path, write) -> None:
    """Call ``write(tmp_dir)`` then swap the directory into ``path``: a reader never sees half a directory."""
    tmp = path.parent / f".{path.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    write(tmp)
    shutil.rmtree(path, ignore_errors=True)
    tmp.rename(path)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: Path, data: Any) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n"))


def append_jsonl(path: Path, record: dict) -> None:
    """Rewrite the log with one more line (atomic; logs are a few dozen lines)."""
    old = path.read_text() if path.exists() else ""
    atomic_write(path, lambda tmp: tmp.write_text(old + json.dumps(record, sort_keys=True) + "\n"))


def ensure_writable(directory: Path, flag: str = "--out") -> Path:
    """Create ``directory`` and prove it is writable before hours of work go into it."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory):
            pass
    except OSError as exc:
        raise XlpeftError(f"cannot write to {directory} ({exc.strerror}); choose a writable {flag} directory") from exc
    return directory
