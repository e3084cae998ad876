"""What the report and the evaluation plot take from a grid's task rather than assume: its title, its metrics'
names, its languages' names, its source languages, and the baselines computed from its data.

- **Metric names**: a task's metric columns (``Task.metric_columns``) named for the text; F1, precision and
  recall are entity-level where the task scores entities (its columns hold precision and recall: MasakhaNER,
  WikiANN), SQuAD's token F1 and exact match where they hold ``exact_match`` (XQuAD).
- **Language names**: ``Task.language_info`` (the SIB-200 registry, through the task's FLORES codes), else the
  ISO 639-3 reference name of ``Task.iso_code`` (pycountry): NusaX's ``bbc`` is Batak Toba; a group code (ISO
  639-5: AmericasNLI's ``nah``) by the group's name.
- **Source sets**: a run's ``source`` may name several languages, comma-separated (``eng_Latn,fra_Latn``).
- **Baselines** (classification only, ``Task.baselines``): per language, ``majority`` (always answering the
  class most frequent in the evaluated split of that language) and ``chance`` (uniform guessing, in
  expectation). Text tasks have none; without the data, none are computed and the reason is kept.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from xlpeft.data.languages import language_name
from xlpeft.errors import XlpeftError
from xlpeft.tasks import Task

TITLES = {"sib200": "SIB-200", "nusax": "NusaX", "americasnli": "AmericasNLI", "masakhaner": "MasakhaNER",
          "xquad": "XQuAD", "xnli": "XNLI", "wikiann": "WikiANN"}  # how the datasets' authors write them
METRIC_NAMES = {"accuracy": "accuracy", "macro_f1": "macro-F1", "f1": "F1", "precision": "precision",
                "recall": "recall", "exact_match": "exact match"}
BASELINES = ("majority", "chance")


def task_title(task: Task) -> str:
    """The dataset's name as its authors write it (a task outside :data:`TITLES`: its own name)."""
    return TITLES.get(task.name, task.name)


def metrics(task: Task) -> list[str]:
    """The metrics a report can be about: the task's metric columns but the count ``n``, its community's first."""
    return [column for column in task.metric_columns if column != "n"]


def metric_name(task: Task, metric: str) -> str:
    """``metric`` (a metric column) as the text names it: ``macro-F1``, ``entity F1``, ``SQuAD exact match``."""
    name = METRIC_NAMES.get(metric, metric.replace("_", " "))
    if metric in ("f1", "precision", "recall") and "precision" in task.metric_columns:
        return f"entity {name}"
    if metric in ("f1", "exact_match") and "exact_match" in task.metric_columns:
        return f"SQuAD {name}"
    return name


def language_names(task: Task, codes: list[str]) -> dict[str, str]:
    """Each code's English name (:mod:`module docstring <xlpeft.analysis.facts>`); "" when none is known."""
    return {code: task.language_info(code)[0] or language_name(task.iso_code(code) or code) or _group_name(code)
            for code in codes}


def _group_name(code: str) -> str:
    """The name of an ISO 639-5 group code (AmericasNLI's ``nah``, Nahuatl languages; ``oto``), else ""."""
    import pycountry

    group = pycountry.language_families.get(alpha_3=code) if len(code) == 3 else None
    return group.name if group else ""


def source_languages(source: str) -> list[str]:
    """The languages of a run's ``source``: one code, or a comma-separated set of them."""
    return [code.strip() for code in str(source).split(",") if code.strip()]


@dataclass(frozen=True)
class Baselines:
    """Languages x :data:`BASELINES` for one metric (NaN where a language's data could not be read), or None
    with ``note`` saying why there are none."""

    table: pd.DataFrame | None
    note: str = ""


def baselines(task: Task, languages: list[str], split: str, metric: str, source_data: str = "local") -> Baselines:
    """The baselines of ``metric`` on each language's ``split``, read from the task's data (``Task.baselines``).
    When the first language's data cannot be read, none are computed (the data are missing, and trying every
    language would only repeat it, with a hub probe each); a later language that cannot be read gets NaN."""
    rows, errors = {}, {}
    for language in languages:
        try:
            values = task.baselines(language, split, source_data)
        except XlpeftError as error:
            if not rows:
                return Baselines(None, f"baselines were not computed: the {task_title(task)} data could not be read "
                                       f"({error})")
            errors[language] = str(error)
            continue
        if not values:
            return Baselines(None, f"{task_title(task)} is scored on generated text ({metric_name(task, metric)}): "
                                   "it has no majority class or chance level, so no baseline is drawn")
        rows[language] = {name: values[name].get(metric, float("nan")) for name in BASELINES}
    note = f"no baselines for {', '.join(errors)}: {next(iter(errors.values()))}" if errors else ""
    return Baselines(pd.DataFrame.from_dict(rows, orient="index", columns=list(BASELINES)).reindex(languages), note)
