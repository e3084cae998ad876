"""AmericasNLI: natural language inference in 10 Indigenous languages of the Americas (dev and test).

Source: GitHub ``abteen/americasnli``, ``data/anli_final/{dev,test}/<lang>.tsv`` with columns
``id, language, premise, hypothesis, label`` (tab-separated, no quoting: quote characters are text).
AmericasNLI translates XNLI's Spanish dev/test, so its labels are XNLI's: entailment, neutral,
contradiction, in XNLI's label-id order. Per language at most 743 dev and 750 test pairs (fewer for
``cni``, ``nah`` and ``oto``: Otomí has only 222 dev pairs). The repository's ``anli.{dev,test}.tsv``
concatenate the per-language files and are not read. Hub copy: ``americas_nli`` (a loading-script
dataset, not read here).

Source training data. Transfer starts from English NLI, which this copy does not contain: the files
hold only the 10 target languages (no English or Spanish side). Online, :func:`load_xnli_english`
reads XNLI's English training set (``facebook/xnli``, config ``en``: MultiNLI's 392,702 pairs) from
the hub. Offline there is no English NLI source; the only labelled NLI data here are these target-
language dev sets, and training on them is an in-language setting, not zero-shot transfer.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass

import pandas as pd

from xlpeft.data.tasks.common import check_choice, find_task_dir, load_hub, require_dir, require_file
from xlpeft.errors import XlpeftError

TASK = "americasnli"
ORIGIN = "github.com/abteen/americasnli"
XNLI_HUB = "facebook/xnli"
LANGUAGES: tuple[str, ...] = tuple("aym bzd cni gn hch nah oto quy shp tar".split())
SOURCE = "en"  # English XNLI from the hub: not one of LANGUAGES, which are all targets
FLORES: dict[str, str] = {"aym": "ayr_Latn", "gn": "grn_Latn", "quy": "quy_Latn"}
LABELS: tuple[str, ...] = ("entailment", "neutral", "contradiction")  # XNLI's label ids 0, 1, 2
SPLITS: tuple[str, ...] = ("dev", "test")


@dataclass(frozen=True)
class NliSplit:
    """One language's split: parallel lists of premise/hypothesis pairs and label ids."""

    language: str
    name: str
    ids: list[int]
    premises: list[str]
    hypotheses: list[str]
    labels: list[int]  # indices into LABELS

    def __len__(self) -> int:
        return len(self.labels)


def load(language: str, split: str, data_dir: str | os.PathLike | None = None) -> NliSplit:
    """Read ``split`` (dev/test) of ``language`` from the local copy."""
    check_choice("AmericasNLI language", language, LANGUAGES)
    check_choice("AmericasNLI split (it has no train split; see load_xnli_english)", split, SPLITS)
    root = require_dir(TASK, find_task_dir(TASK, "data/anli_final", data_dir), ORIGIN)
    folder = root / "data" / "anli_final" / split
    present = [code for code in LANGUAGES if (folder / f"{code}.tsv").is_file()]
    path = require_file(folder / f"{language}.tsv", f"AmericasNLI {language}/{split}", present)
    frame = pd.read_csv(path, sep="\t", quoting=csv.QUOTE_NONE, dtype=str, keep_default_na=False)
    columns = {"id", "premise", "hypothesis", "label"}
    if columns - set(frame.columns) or not set(frame["label"]) <= set(LABELS):
        raise XlpeftError(f"malformed AmericasNLI file {path}: expected columns {sorted(columns)} and labels {LABELS}")
    label_id = {label: i for i, label in enumerate(LABELS)}
    return NliSplit(
        language=language,
        name=split,
        ids=[int(i) for i in frame["id"]],
        premises=list(frame["premise"]),
        hypotheses=list(frame["hypothesis"]),
        labels=[label_id[label] for label in frame["label"]],
    )


def load_xnli_english(split: str = "train") -> NliSplit:
    """English XNLI (``train`` is MultiNLI's training set) from the hub; ids are row numbers."""
    rows = load_hub(XNLI_HUB, "en", split, "English NLI, the AmericasNLI source training data")
    return NliSplit(
        language=SOURCE,
        name=split,
        ids=list(range(len(rows))),
        premises=list(rows["premise"]),
        hypotheses=list(rows["hypothesis"]),
        labels=[int(label) for label in rows["label"]],  # the hub's class ids follow LABELS
    )
