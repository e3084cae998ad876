"""XCOPA: choice of plausible alternatives (cause/effect) in 11 languages, validation 100 / test 500.

Source: GitHub ``cambridgeltl/xcopa`` (CC-BY-4.0), ``data/<lang>/{val,test}.<lang>.jsonl`` with fields
``premise, choice1, choice2, question ("cause"/"effect"), label (0/1 for choice1/choice2), idx``. Items
are parallel across languages (same ``idx`` and label). The repository's ``data-gmt/`` holds Google
Translate English versions of the same items (translate-test inputs, no Quechua) and is not read.
Hub copy: ``cambridgeltl/xcopa`` (not read here).

Source training data. XCOPA translates COPA's English validation and test items, so it has no
training split. The English source is COPA's 400 training items (SuperGLUE's ``copa`` on the hub:
:func:`load_copa_english` reads ``aps/super_glue``, config ``copa``, the copy lm-evaluation-harness reads),
which this copy does not contain; offline, the only labelled items are the 100 validation items per
language, and training on them is an in-language setting, not zero-shot transfer.

The task (two alternatives scored per premise) is ``xlpeft.tasks.choice.XcopaTask``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from xlpeft.data.tasks.common import check_choice, find_task_dir, load_hub, require_dir, require_file
from xlpeft.errors import XlpeftError

TASK = "xcopa"
ORIGIN = "github.com/cambridgeltl/xcopa"
LANGUAGES: tuple[str, ...] = tuple("et ht id it qu sw ta th tr vi zh".split())
SOURCE = "en"  # English COPA: not one of LANGUAGES, which are all targets
COPA_HUB = ("aps/super_glue", "copa")  # English COPA on the hub: dataset, config (train 400, validation 100)
# qu is Eastern Apurímac Quechua (qve), which SIB-200's quy_Latn (Ayacucho) is not, so it is left out.
FLORES: dict[str, str] = {
    "et": "est_Latn", "ht": "hat_Latn", "id": "ind_Latn", "it": "ita_Latn", "sw": "swh_Latn", "ta": "tam_Taml",
    "th": "tha_Thai", "tr": "tur_Latn", "vi": "vie_Latn", "zh": "zho_Hans",
}
QUESTIONS: tuple[str, ...] = ("cause", "effect")
# The project's split names -> the repository's file names.
SPLITS: dict[str, str] = {"dev": "val", "test": "test"}


@dataclass(frozen=True)
class CopaExample:
    """A premise, two alternatives, and which one (``label`` 0 or 1) is its cause or effect."""

    idx: int
    premise: str
    choice1: str
    choice2: str
    question: str  # "cause" or "effect"
    label: int


@dataclass(frozen=True)
class CopaSplit:
    language: str
    name: str
    examples: list[CopaExample]

    def __len__(self) -> int:
        return len(self.examples)


def load(language: str, split: str, data_dir: str | os.PathLike | None = None) -> CopaSplit:
    """Read ``split`` (dev/test) of ``language`` from the local copy."""
    check_choice("XCOPA language", language, LANGUAGES)
    check_choice("XCOPA split (it has no train split)", split, SPLITS)
    root = require_dir(TASK, find_task_dir(TASK, "data", data_dir), ORIGIN)
    present = [code for code in LANGUAGES if (root / "data" / code).is_dir()]
    name = f"{SPLITS[split]}.{language}.jsonl"
    path = require_file(root / "data" / language / name, f"XCOPA {language}/{split}", present)
    examples = [_example(line, path) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return CopaSplit(language, split, examples)


def load_copa_english(split: str) -> CopaSplit:
    """English COPA's ``train`` or ``validation`` split from the hub (``COPA_HUB``), XCOPA's source data online."""
    rows = load_hub(*COPA_HUB, split, f"English COPA {split}, the XCOPA source training data").to_list()
    return CopaSplit(SOURCE, split, [_checked(row, f"{COPA_HUB[0]} ({COPA_HUB[1]}/{split})") for row in rows])


def _example(line: str, path: os.PathLike) -> CopaExample:
    return _checked(json.loads(line), path)


def _checked(row: dict, path) -> CopaExample:
    try:
        example = CopaExample(int(row["idx"]), row["premise"], row["choice1"], row["choice2"], row["question"],
                              int(row["label"]))
    except KeyError as exc:
        raise XlpeftError(f"malformed XCOPA file {path}: a line lacks {exc}; re-copy the data") from exc
    if example.question not in QUESTIONS or example.label not in (0, 1):
        raise XlpeftError(f"malformed XCOPA file {path}: item {example.idx} has question {example.question!r} "
                          f"and label {example.label}")
    return example
