"""The task names the CLI offers (data/task_names.py, read without the data readers) are the registry's."""

from xlpeft.data.task_names import TASK_HELP, TASK_NAMES
from xlpeft.tasks import TASKS


def test_the_declared_task_names_are_the_registry_s_in_order():
    assert list(TASKS) == list(TASK_NAMES) == list(TASK_HELP)
    assert all(TASKS[name].name == name and TASK_HELP[name] for name in TASK_NAMES)
