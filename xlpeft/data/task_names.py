"""Which tasks exist, each with its one-line description: declared once, for the task registry (``xlpeft.tasks``
orders its classes by it) and for the command line, which lists the names without importing any data reader."""

from __future__ import annotations

from typing import Literal

TASK_HELP = {
    "sib200": "topic classification, 205 languages",
    "nusax": "sentiment, English -> 11 languages of Indonesia",
    "americasnli": "NLI in 10 languages of the Americas",
    "masakhaner": "NER as text-to-text ('PER: X$$LOC: Y'; encoders tag words), English CoNLL -> 20 African languages",
    "xquad": "extractive QA as answer generation, 12 languages",
    "xcopa": "multiple choice (cause/effect), 11 languages; English COPA online (--source-data hub)",
    "xstorycloze": "multiple choice (story endings), English -> 10 languages, online (--source-data hub)",
    "belebele": "reading comprehension (4 choices), 122 language variants, online (--source-data hub)",
    "xnli": "NLI, English -> 14 languages, online (--source-data hub)",
    "wikiann": "NER as text-to-text, 176 languages, online (--source-data hub)",
}
TASK_NAMES = tuple(TASK_HELP)
TASK_FILE_SUFFIXES = (".yaml", ".yml")  # --task FILE: a task defined in YAML (xlpeft/tasks/definition.py)


def is_task_file(value: str) -> bool:
    """Whether a ``--task`` value names a task definition file rather than a built-in task."""
    return str(value).lower().endswith(TASK_FILE_SUFFIXES)

# where a task's source data come from: its local copy, or the standard source on the hub (each task allows a subset)
SourceData = Literal["local", "hub"]
