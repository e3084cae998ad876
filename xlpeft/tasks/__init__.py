"""Tasks as training and evaluation see them (base.py); readers of the files live in ``xlpeft.data``."""

from __future__ import annotations

from xlpeft.data.task_names import TASK_NAMES
from xlpeft.errors import XlpeftError
from xlpeft.tasks.base import ClassificationTask, Examples, FewShotSample, Task, TextTask
from xlpeft.tasks.choice import MultipleChoiceTask, XcopaTask
from xlpeft.tasks.classification import AmericasNliTask, NusaxTask, Sib200Task
from xlpeft.tasks.hub import WikiannTask, XnliTask
from xlpeft.tasks.text_to_text import MasakhanerTask, XquadTask

_CLASSES = {t.name: t for t in (Sib200Task, NusaxTask, AmericasNliTask, MasakhanerTask, XquadTask, XcopaTask, XnliTask,
                                 WikiannTask)}
# the tasks that exist, in the order of their declaration (data/task_names.py, which the CLI reads without the readers)
TASKS: dict[str, type[Task]] = {name: _CLASSES[name] for name in TASK_NAMES}


def get_task(name: str, data_dir=None) -> Task:
    """The task ``name`` reading its data from ``data_dir`` (else XLPEFT_DATA_DIR, or the hub for SIB-200)."""
    if name not in TASKS:
        raise XlpeftError(f"unknown task {name!r}: use one of {', '.join(TASKS)}")
    return TASKS[name](data_dir)


__all__ = ["TASKS", "ClassificationTask", "Examples", "FewShotSample", "MultipleChoiceTask", "Task", "TextTask",
           "get_task"]
