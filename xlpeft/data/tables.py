"""Tables of a task defined in YAML (``xlpeft.tasks.definition``): local CSV, TSV, JSON Lines or Parquet files, or a
hub dataset, read as columns of strings, and the messy-data rules every such task shares.

Every cell is read as text (``dtype=str``; ``keep_default_na=False``, so a text "NA" or "null" stays text). CSV and
TSV are read with minimal quoting, as pandas and Python's csv module write them (and SIB-200's TSV files are
read): a field that starts with a double quote is quoted. Rows whose label (or target) is empty, or whose every input column is
empty, are dropped, and so are exact duplicates of an earlier row over the columns the task uses; both are counted
(``Cleaned``) and logged once per file. A file that is not the declared encoding, or lacks a column the task needs,
is a one-line error naming the file, the column and the fix.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from xlpeft.errors import XlpeftError

log = logging.getLogger("xlpeft")
FORMATS = ("csv", "tsv", "jsonl", "parquet")
_EXTENSIONS = {".csv": "csv", ".tsv": "tsv", ".txt": "tsv", ".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet"}
_LOGGED: set[str] = set()  # files whose dropped rows were already reported


@dataclass(frozen=True)
class Cleaned:
    """A table's rows left after the messy-data rules, with their positions in the source and what was dropped."""

    frame: pd.DataFrame  # the rows kept; ``frame.index`` is each row's position in the file (0-based)
    empty: int = 0
    duplicate: int = 0

    def counts(self) -> dict[str, int]:
        return {"empty": self.empty, "duplicate": self.duplicate}


def format_of(path: str, given: str | None) -> str:
    """The file format: ``given`` (``data.format``), else read from the extension."""
    if given:
        return given
    suffix = Path(path.replace("{", "").replace("}", "")).suffix.lower()
    if suffix not in _EXTENSIONS:
        raise XlpeftError(f"cannot tell the format of {path} from its extension: add data.format: one of {', '.join(FORMATS)}")
    return _EXTENSIONS[suffix]


def read_file(path: Path, fmt: str, encoding: str = "utf-8") -> pd.DataFrame:
    """A whole file as a table of strings (None and NaN cells become empty strings)."""
    try:
        if fmt == "csv":
            return pd.read_csv(path, dtype=str, keep_default_na=False, encoding=encoding)
        if fmt == "tsv":
            return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, encoding=encoding)
        if fmt == "jsonl":
            return _as_strings(pd.read_json(path, lines=True, dtype=False, encoding=encoding))
        return _as_strings(pd.read_parquet(path))
    except UnicodeDecodeError as exc:
        raise XlpeftError(f"{path} is not {encoding} text (byte {exc.start}: {exc.reason}); re-save it as UTF-8, or "
                          "name its encoding with data.encoding in the task file") from exc
    except (ValueError, pd.errors.ParserError) as exc:
        raise XlpeftError(f"{path} cannot be read as {fmt} ({str(exc).splitlines()[0]}); fix the file or set "
                          f"data.format to its format ({', '.join(FORMATS)})") from exc


def hub_table(rows) -> pd.DataFrame:
    """A hub dataset's split (a ``datasets.Dataset``, or a mapping of columns) as a table of strings."""
    return _as_strings(rows.to_pandas() if hasattr(rows, "to_pandas") else pd.DataFrame(dict(rows)))


def _as_strings(frame: pd.DataFrame) -> pd.DataFrame:
    def text(value) -> str:
        if value is None or (isinstance(value, float) and value != value):
            return ""
        return str(value)

    return frame.apply(lambda column: column.map(text)) if len(frame.columns) else frame


def require_columns(frame: pd.DataFrame, columns: Sequence[str], where: str, task_file: str) -> None:
    """An error naming the first missing column, the columns there are, and where to fix it."""
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise XlpeftError(f"{where} has no column {missing[0]!r} (its columns: {', '.join(map(str, frame.columns))}); "
                          f"rename the column, or name the right one in {task_file}")


def clean(frame: pd.DataFrame, inputs: Sequence[str], answer: str | None, where: str) -> Cleaned:
    """Drop empty rows (``answer`` empty, or every input column empty) and rows repeating an earlier one over
    ``inputs`` and ``answer``; count both and log them once per ``where``."""
    used = [*inputs, *([answer] if answer else [])]
    blank = frame[list(inputs)].apply(lambda column: column.str.strip() == "").all(axis=1)
    if answer:
        blank |= frame[answer].str.strip() == ""
    kept = frame[~blank]
    repeated = kept.duplicated(subset=used)
    result = Cleaned(kept[~repeated], empty=int(blank.sum()), duplicate=int(repeated.sum()))
    if (result.empty or result.duplicate) and where not in _LOGGED:
        _LOGGED.add(where)
        log.warning("%s: dropped %d empty and %d duplicate rows of %d", where, result.empty, result.duplicate, len(frame))
    return result
