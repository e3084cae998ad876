"""What identifies a result row: the one rule for reusing rows (``xlpeft evaluate --out``, grid status,
the grid store).

A row (run x language) is reused only when everything that decides its numbers is unchanged: the run's
artefacts (``run_id``: its config, hence its task and ``max_length``), the split, the precision, the
backbone weights it was computed on and the evaluation options that change numbers (generation length,
``max_new_tokens``; NLI answers generated rather than ranked, ``nli_output``; multiple choice ranked by summed or
per-character log-likelihoods, ``choice_score``). Method B's language module is checked row by row in
evaluate.py (``module_id``, and ``--borrow`` only for rows that borrowed a module: a language's own module
does not depend on it).
Batch size, device, memory caps and the text cache do not change numbers and are not part of it. A row whose identity differs from the one asked for is computed again and replaces the
old one, so a table never holds a value under another setting's label.

Rows also record what explains them without identifying them (``ROW_RECORD``): where the weights came
from, the xlpeft version, the text budget in text tokens (fixed by the run's config and the backbone's
special tokens, both identified above), and how many inputs were truncated or empty.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import pandas as pd

from xlpeft.errors import XlpeftError

ROW_RECORD = ("backbone_source", "xlpeft_version", "max_length", "n_truncated", "n_empty")

# Columns holding names and hex digests: read as text, never as numbers. Left to pandas, a run named
# "557e55195972" reads back as inf and "949028475304" as an integer, so a finished row would no longer
# match its run and would be computed (and written) a second time.
TEXT_COLUMNS = ("run", "run_id", "language", "name", "script", "task", "model", "split", "eval_precision",
                "backbone_fingerprint", "backbone_source", "xlpeft_version", "configuration", "module_language",
                "module_distance_kind", "module_id", "source")


def read_rows(path: Path) -> pd.DataFrame:
    """A results table written by xlpeft, its names and digests as text (``TEXT_COLUMNS``)."""
    try:
        return pd.read_csv(path, dtype=dict.fromkeys(TEXT_COLUMNS, str))
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise XlpeftError(f"{path} exists but is not a results table ({exc}); move it away or choose another path") from exc


@dataclass(frozen=True)
class EvalIdentity:
    """The identifying columns of a run's rows, besides ``run``, ``run_id`` and ``language``."""

    split: str
    eval_precision: str  # resolved: fp32 or bf16 ("precision" is NER's entity precision metric in the same rows)
    backbone_fingerprint: str | None  # None: the run recorded none (trained before fingerprints); checked at load
    max_new_tokens: int | None = None  # text-to-text runs: generation length
    nli_output: str | None = None  # "generate": NLI labels read from generated answers; None: ranked (as before)
    choice_score: str | None = None  # multiple-choice tasks: "sum" or "per_char"; None for other tasks

    @classmethod
    def columns(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    def as_row(self) -> dict:
        return asdict(self)

    def matches(self, row: dict) -> bool:
        """Whether a stored row was computed under this identity (a missing column never matches)."""
        return all(_same(value, row.get(name)) or (name == "backbone_fingerprint" and value is None)
                   for name, value in self.as_row().items())

    def differences(self, row: dict) -> list[str]:
        """``name: old -> new`` for each identifying column a stored row differs in (for the log)."""
        return [f"{name}: {row.get(name)} -> {value}" for name, value in self.as_row().items()
                if not (_same(value, row.get(name)) or (name == "backbone_fingerprint" and value is None))]


def run_identity(run_config: dict, split: str, precision: str, max_new_tokens: int | None = None,
                 nli_output: str | None = None, choice_score: str | None = None) -> EvalIdentity:
    """The identity a run's rows must have under these evaluation settings (``run_config``: its config.json)."""
    recorded = (run_config.get("backbone") or {}).get("fingerprint")
    return EvalIdentity(split, precision, recorded, max_new_tokens, nli_output, choice_score)


def same_values(record: dict, row: dict, names: tuple[str, ...]) -> bool:
    """Whether ``record`` (written from a row) and a stored ``row`` agree on ``names``, after a CSV round trip."""
    return all(_same(record.get(name), row.get(name)) for name in names)


def _same(value, stored) -> bool:
    """Equal after a CSV round trip (numbers may come back as floats or strings, missing as NaN)."""
    if stored is None or (isinstance(stored, float) and math.isnan(stored)):
        return value is None
    if value is None:
        return False
    return str(value) == str(stored) or _number(value) == _number(stored) is not None


def _number(value) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
