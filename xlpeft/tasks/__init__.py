"""Tasks as training and evaluation see them (base.py); readers of the files live in ``xlpeft.data``.

A task is written in Python (SIB-200, AmericasNLI, MasakhaNER, XQuAD, WikiANN: their data or scoring need code)
or defined in YAML (``definition.py``): the built-in definitions ship in ``definitions/`` (NusaX, XNLI, XCOPA,
XStoryCloze, Belebele) and a user's own is named by its path (``--task my_task.yaml``). :func:`task_for` builds the
task of a run's config, whichever it is; every place that needs a run's task goes through it.
"""

from __future__ import annotations

from pathlib import Path

from xlpeft.data.task_names import TASK_NAMES, is_task_file
from xlpeft.errors import XlpeftError
from xlpeft.tasks.base import ClassificationTask, Examples, FewShotSample, Task, TextTask
from xlpeft.tasks.choice import MultipleChoiceTask
from xlpeft.tasks.classification import AmericasNliTask, Sib200Task
from xlpeft.tasks.defined import task_class
from xlpeft.tasks.definition import TaskDefinition, load_definition
from xlpeft.tasks.hub import WikiannTask
from xlpeft.tasks.text_to_text import MasakhanerTask, XquadTask

DEFINITIONS_DIR = Path(__file__).parent / "definitions"  # the built-in tasks defined in YAML, shipped as package data
BUILTIN_DEFINITIONS: dict[str, Path] = {path.stem: path for path in sorted(DEFINITIONS_DIR.glob("*.yaml"))}

_CLASSES = {t.name: t for t in (Sib200Task, AmericasNliTask, MasakhanerTask, XquadTask, WikiannTask)}
_CLASSES.update({name: task_class(load_definition(path)) for name, path in BUILTIN_DEFINITIONS.items()})
# the tasks that exist, in the order of their declaration (data/task_names.py, which the CLI reads without the readers)
TASKS: dict[str, type[Task]] = {name: _CLASSES[name] for name in TASK_NAMES}


def get_task(name: str, data_dir=None) -> Task:
    """The built-in task ``name`` reading its data from ``data_dir`` (else XLPEFT_DATA_DIR, or the hub for SIB-200)."""
    if name not in TASKS:
        raise XlpeftError(f"unknown task {name!r}: use one of {', '.join(TASKS)}, or a task file (my_task.yaml)")
    return TASKS[name](data_dir)


def task_for(config, data_dir=None) -> Task:
    """The task of a run's configuration (a TrainConfig, or anything with ``task`` and ``task_definition``): the
    definition it stores, else the built-in task it names. A ``task`` that is a definition file is read here,
    once: the config then names the definition's task and stores the definition (``task_definition``), so the
    run is self-contained and its id follows the definition, not the file's path."""
    stored = getattr(config, "task_definition", None)
    if stored:
        return task_class(TaskDefinition.from_dict(stored, f"the stored definition of task {config.task}"))(data_dir)
    if is_task_file(config.task):
        definition = load_definition(config.task)
        if definition.name in TASKS:
            raise XlpeftError(f"{config.task}: {definition.name!r} is a built-in task's name; give your task another "
                              f"name, or use --task {definition.name}")
        config.task, config.task_definition = definition.name, definition.to_dict()
        return task_class(definition)(data_dir)
    return get_task(config.task, data_dir)


__all__ = ["TASKS", "ClassificationTask", "Examples", "FewShotSample", "MultipleChoiceTask", "Task", "TextTask", "get_task",
           "task_for"]
