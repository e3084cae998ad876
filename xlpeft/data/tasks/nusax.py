"""NusaX-Senti: three-way sentiment for English, Indonesian and 10 local languages of Indonesia.

Source: GitHub ``IndoNLP/nusax`` (CC-BY-SA-4.0), ``datasets/sentiment/<language name>/{train,valid,test}.csv``
with columns ``id,text,label`` (500 / 100 / 400 rows per language). The data are sentence-parallel: row
``id`` and label are the same in every language, so English training data and target test sets line up.
Transfer setting: train on English, evaluate on the other 11 languages with macro-F1 (NusaX's metric).

Only a local copy is read: the hub copy (``indonlp/NusaX-senti``, configs ``ace`` ... ``sun``) is a
loading-script dataset that current ``datasets`` releases no longer run, and the GitHub files are small.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import pandas as pd

from xlpeft.data.tasks.common import check_choice, find_task_dir, require_dir, require_file
from xlpeft.errors import XlpeftError

TASK = "nusax"
ORIGIN = "github.com/IndoNLP/nusax"
# ISO 639-3 code (the hub's config names) -> the repository's folder name.
FOLDERS: dict[str, str] = {
    "ace": "acehnese",
    "ban": "balinese",
    "bbc": "toba_batak",
    "bjn": "banjarese",
    "bug": "buginese",
    "eng": "english",
    "ind": "indonesian",
    "jav": "javanese",
    "mad": "madurese",
    "min": "minangkabau",
    "nij": "ngaju",
    "sun": "sundanese",
}
LANGUAGES: tuple[str, ...] = tuple(FOLDERS)
SOURCE = "eng"
# SIB-200 (FLORES-200) codes, for languages SIB-200 covers: links tasks to per-language modules.
FLORES: dict[str, str] = {
    "ace": "ace_Latn", "ban": "ban_Latn", "bjn": "bjn_Latn", "bug": "bug_Latn", "eng": "eng_Latn",
    "ind": "ind_Latn", "jav": "jav_Latn", "min": "min_Latn", "sun": "sun_Latn",
}
LABELS: tuple[str, ...] = ("negative", "neutral", "positive")
# The project's split names -> the repository's file names.
SPLITS: dict[str, str] = {"train": "train", "dev": "valid", "test": "test"}


@dataclass(frozen=True)
class SentimentSplit:
    """One language's split: parallel lists; ``ids`` are NusaX's row ids (shared across languages)."""

    language: str
    name: str
    ids: list[int]
    texts: list[str]
    labels: list[int]  # indices into LABELS

    def __len__(self) -> int:
        return len(self.texts)


def load(language: str, split: str, data_dir: str | os.PathLike | None = None) -> SentimentSplit:
    """Read ``split`` (train/dev/test) of ``language`` (an ISO 639-3 code from LANGUAGES)."""
    check_choice("NusaX language", language, LANGUAGES)
    check_choice("NusaX split", split, SPLITS)
    root = require_dir(TASK, find_task_dir(TASK, "datasets/sentiment", data_dir), ORIGIN)
    folder = root / "datasets" / "sentiment"
    present = (code for code, name in FOLDERS.items() if (folder / name).is_dir())
    path = require_file(folder / FOLDERS[language] / f"{SPLITS[split]}.csv", f"NusaX {language}/{split}", present)
    # Default quoting matters: texts with commas are quoted. keep_default_na: a text "NA" stays text.
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    if {"id", "text", "label"} - set(frame.columns) or not set(frame["label"]) <= set(LABELS):
        raise XlpeftError(f"malformed NusaX file {path}: expected columns id,text,label and labels {', '.join(LABELS)}")
    label_id = {label: i for i, label in enumerate(LABELS)}
    return SentimentSplit(
        language=language,
        name=split,
        ids=[int(i) for i in frame["id"]],
        texts=list(frame["text"]),
        labels=[label_id[label] for label in frame["label"]],
    )
