"""Tasks built from a YAML definition (``definition.py``): classification, text-to-text and multiple-choice tasks
over local files or a hub dataset, with few-shot sampling, templates, verbalizer words and the metrics of the tasks
written in code.

The rules a definition's data follow, all said in one-line errors or in the run's record:
- **Languages**: those the definition lists, else those its files exist for (the ``{language}`` part of the
  pattern), or the values of its language column. A hub definition lists them (finding them would need the hub).
  Each language's FLORES-200 code (method B's modules) and ISO 639-3 code (URIEL) are the definition's, else
  recognised from the code itself: a FLORES code, or an ISO 639-1/3 code SIB-200 has in one script.
- **Splits**: train, dev and test are the data's own names through ``splits`` (default: the same names; a files
  definition's dev split is also found as ``validation`` or ``valid``, a hub one's is ``validation``). A source
  without a dev split, or whose dev is mapped to train's split, validates on a fixed quarter of its train split
  (seed-independent, recorded); a source without a train split is an error naming the file and the fix. Data
  with a test split only may carve the source's train and dev out of it by group (``source_from_test``: the
  same groups in every language, never evaluated), and one source language may be read from another hub
  dataset (``source_data``: XCOPA's English COPA; a source only, never evaluated).
- **Multiple choice**: the choices are columns (or templates over columns), stripped; the gold column holds the
  right choice's 0-based position, or values ``label_values`` maps to one. ``value_maps`` (any kind) renders a
  column the input or the choices read through a map.
- **Labels**: the definition's, else the source's train labels, sorted. A label of another language that the
  task does not have is an error naming the label and the language. A language whose test set uses a subset of
  the labels is scored on what is present: macro-F1 over the labels in its gold (``present_label_metrics``).
- **Rows**: empty and duplicate rows are dropped (``xlpeft.data.tables.clean``), counted per language and split
  and recorded in the run's config (``dropped_rows``).
"""

from __future__ import annotations

import functools
import glob
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from xlpeft.data.languages import language_name, registry
from xlpeft.data.tables import Cleaned, clean, format_of, hub_table, read_file, require_columns
from xlpeft.data.tasks.common import find_task_dir, require_dir
from xlpeft.errors import XlpeftError
from xlpeft.tasks.base import ClassificationTask, Examples, Task, TextTask
from xlpeft.tasks.choice import MultipleChoiceTask, choice_examples
from xlpeft.tasks.definition import DEV_NAMES, LanguageSpec, TaskDefinition, group_part
from xlpeft.tasks import hub
from xlpeft.tasks.hub import _flores_of
from xlpeft.tasks.templates import TEXT_FIELD, Template

METRIC_COLUMNS = {"accuracy": ("accuracy", "macro_f1", "n"), "macro_f1": ("macro_f1", "accuracy", "n"),
                  "squad": ("f1", "exact_match", "n"), "entity_f1": ("f1", "precision", "recall", "n")}


class DefinedTask(Task):
    """What every defined task shares: languages, codes, reading and cleaning its tables. Subclasses are made per
    definition by :func:`task_class`, so that ``definition`` is a class attribute as a built-in task's facts are."""

    definition: TaskDefinition

    def __init__(self, data_dir=None):
        super().__init__(data_dir)
        self.dropped: dict[str, dict[str, int]] = {}  # "language/split" -> rows dropped, for the run's record

    # ---- languages and their codes
    @functools.cached_property
    def _specs(self) -> dict[str, LanguageSpec]:
        listed, only_source = self.definition.languages, self._only_source
        specs = {spec.code: spec for spec in (listed or [LanguageSpec(code) for code in self._discover()])}
        return specs if not only_source or only_source in specs else {only_source: LanguageSpec(only_source), **specs}

    @property
    def _only_source(self) -> str:
        """The language whose data come from ``source_data`` alone: trained on, never evaluated ("" if none)."""
        return self.definition.source_data.language if self.definition.source_data else ""

    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(self._specs)

    @property
    def default_targets(self) -> tuple[str, ...]:
        return tuple(code for code in self.languages if code != self._only_source)

    def module_language(self, language: str) -> str:
        spec = self._specs.get(language)
        if spec and spec.flores:
            return spec.flores
        return language if language in registry() else _flores_of(language)

    def iso_code(self, language: str) -> str | None:
        spec = self._specs.get(language)
        return spec.iso if spec and spec.iso else super().iso_code(language)

    def _discover(self) -> list[str]:
        """The languages the data have: from the file names, or the language column of every split's file."""
        data = self.definition.data
        if data.hub:
            raise XlpeftError(f"{self._file}: a hub definition lists its languages (languages: [...]); finding them "
                              "would need the hub")
        if data.language_column:
            paths = [path for split in ("train", "dev", "test") if (path := self._path(None, split)) is not None]
            return sorted({value for path in paths for value in self._read(path)[data.language_column]})
        pattern = str(self._root() / data.files)
        # the first {language} is captured, a repeated one must be the same (data/{language}/{split}.{language}.jsonl)
        regex = re.compile(re.escape(pattern).replace(r"\{language\}", "(?P<language>[^/]+)", 1)
                           .replace(r"\{language\}", "(?P=language)").replace(r"\{split\}", "[^/]+") + "$")
        found = {m["language"] for path in glob.glob(pattern.replace("{language}", "*").replace("{split}", "*"))
                 if (m := regex.match(path))}
        if not found:
            raise XlpeftError(f"{self._file}: no files match {pattern}; check data.files (relative to the task "
                              "file's folder unless absolute) or list the languages")
        return sorted(found)

    # ---- source data
    def check_source_data(self, source, source_data):
        d = self.definition
        if d.data.hub and source_data != "hub":
            raise XlpeftError(f"{self.name} is read from the hub (it has no local copy): pass --source-data hub")
        if source == self._only_source and source_data != "hub":
            raise XlpeftError(f"{self.name} has no local {self._source_data_name} to train on: read it with "
                              f"--source-data hub (online), or train on the local copy with --source one of "
                              f"{', '.join(self.default_targets)}")
        if d.source_data and not d.data.hub and source_data == "hub" and source != self._only_source:
            raise XlpeftError(f"--source-data hub means {self._source_data_name}: use --source {self._only_source} with "
                              f"it (it is read from {d.source_data.hub})")
        super().check_source_data(source, source_data)

    @property
    def _source_data_name(self) -> str:
        """The source_data language and dataset in words, for messages ("English COPA")."""
        spec = self.definition.source_data
        return f"{language_name(spec.language) or spec.language} {spec.name or spec.hub}"

    @property
    def source_data_choices(self) -> tuple[str, ...]:
        if self.definition.data.hub:
            return ("hub",)
        return ("local", "hub") if self.definition.source_data else ("local",)

    def source_splits(self, source, source_data):
        """The source's train and dev splits; without a dev split (or with dev mapped to train's split), a fixed
        quarter of train validates (the same quarter for every seed, so that no seed validates on another seed's
        training rows)."""
        train = self.load(source, "train", source_data)
        from_train = self.definition.dev_from_train and source != self._only_source  # source_data: its own splits
        if self._has_split(source, "dev") and not from_train:
            return train, self.load(source, "dev", source_data)
        held = set(np.random.default_rng(0).permutation(len(train))[: len(train) // 4].tolist())
        self.dropped.setdefault(f"{source}/dev", {})["from_train"] = len(held)
        return train.subset([i for i in range(len(train)) if i not in held]), train.subset(sorted(held))

    # ---- reading
    @property
    def _file(self) -> str:
        return f"task {self.name} ({self.definition.folder or 'its definition'})"

    def _root(self) -> Path:
        data = self.definition.data
        if data.task_folder:
            marker = data.files.split("{", 1)[0].rsplit("/", 1)[0]
            return require_dir(data.task_folder, find_task_dir(data.task_folder, marker, self.data_dir),
                               f"the {self.name} data")
        return Path(self.definition.folder or ".")

    def _path(self, language: str | None, split: str) -> Path | None:
        """The file of ``split``; for dev, unless mapped, the first of dev/validation/valid that exists; None when
        there is none."""
        data, spec = self.definition.data, self._specs.get(language) if language else None
        split = "test" if self.definition.source_from_test else split
        names = [self.definition.splits[split]] if split in self.definition.splits else (
            list(DEV_NAMES) if split == "dev" else [split])
        for name in names:
            path = self._root() / data.files.format(language=spec.data_name if spec else "{language}", split=name)
            if path.is_file():
                return path
        return None

    def _has_split(self, language: str, split: str) -> bool:
        return bool(self.definition.data.hub) or language == self._only_source or self._path(language, split) is not None

    def _read(self, path: Path) -> pd.DataFrame:
        return _read_cached(path, format_of(self.definition.data.files, self.definition.data.format),
                            self.definition.data.encoding)

    def _table(self, language: str, split: str, source_data: str = "local") -> tuple[Cleaned, str]:
        """The cleaned rows of ``language``'s ``split`` and where they come from (for messages)."""
        if language not in self._specs:
            raise XlpeftError(f"unknown {self.name} language {language!r}: use one of {', '.join(self.languages)}, or "
                              f"add it under languages: in the task file")
        d, spec = self.definition, self._specs[language]
        if language == self._only_source:
            frame, where = self._source_data_frame(split, source_data)
        elif d.data.hub:
            config = d.data.config.format(language=spec.data_name) if d.data.config else None
            where = f"{d.data.hub} ({config or 'default'}/{d.split_name(split)})"
            # through tasks/hub.py's load_hub, the one place hub tasks read from (and tests stand in for)
            frame = hub_table(hub.load_hub(d.data.hub, config, d.split_name(split), f"{self.name} {language}/{split}"))
        else:
            path = self._path(language, split)
            if path is None:
                pattern = self._root() / d.data.files
                raise XlpeftError(f"{self.name} has no {split} split for {language}: no file {pattern} with "
                                  f"language={spec.data_name}, split={d.splits.get(split, split)}; add the file, or map "
                                  f"splits.{split} in the task file to the name the data use")
            frame, where = self._read(path), str(path)
        if d.data.language_column and language != self._only_source:
            require_columns(frame, [d.data.language_column], where, self._file)
            frame = frame[frame[d.data.language_column] == spec.data_name]
        if d.source_from_test and language != self._only_source:
            require_columns(frame, [d.source_from_test.group], where, self._file)
            share = d.source_from_test.share
            frame = frame[[group_part(value, share) == split for value in frame[d.source_from_test.group]]]
        answer = d.label or d.target
        read = [*d.fields, *d.choice_fields]
        require_columns(frame, [*read, answer, *([d.id] if d.id else [])], where, self._file)
        cleaned = clean(frame, list(dict.fromkeys(read)), answer, where)
        if cleaned.empty or cleaned.duplicate:
            self.dropped[f"{language}/{split}"] = cleaned.counts()
        return Cleaned(self._mapped(cleaned.frame, where), cleaned.empty, cleaned.duplicate), where

    def _source_data_frame(self, split: str, source_data: str) -> tuple[pd.DataFrame, str]:
        """``split`` of the ``source_data`` dataset (train or dev; the language is never evaluated)."""
        spec = self.definition.source_data
        if split == "test":
            raise XlpeftError(f"{self.name} evaluates {', '.join(self.default_targets)}; "
                              f"{language_name(spec.language) or spec.language} ({spec.name or spec.hub}) is only a "
                              "training source")
        if source_data != "hub":
            self.check_source_data(spec.language, source_data)  # raises: the language is read from the hub only
        where = f"{spec.hub} ({spec.config or 'default'}/{spec.split_name(split)})"
        rows = hub.load_hub(spec.hub, spec.config or None, spec.split_name(split),
                            f"{self._source_data_name} {split}, the {self.name} source training data")
        return hub_table(rows), where

    def _mapped(self, frame: pd.DataFrame, where: str) -> pd.DataFrame:
        """The columns of ``value_maps`` rendered through their maps; a value a map lacks is an error naming it."""
        for column, mapping in self.definition.value_maps.items():
            if odd := sorted(set(frame[column]) - set(mapping)):
                raise XlpeftError(f"{where}: value {odd[0]!r} of column {column!r} is not in value_maps.{column} "
                                  f"({', '.join(mapping)}); add it there, or drop its rows")
            frame = frame.assign(**{column: frame[column].map(mapping)})
        return frame

    def _examples(self, language: str, split: str, source_data: str = "local") -> tuple[Examples, pd.DataFrame, str]:
        cleaned, where = self._table(language, split, source_data)
        frame, d = cleaned.frame, self.definition
        columns = {name: list(frame[name]) for name in d.fields}
        texts = columns[d.input] if d.input in columns else [d.input.format_map(row) for row in _rows(columns)]
        fields = {name: values for name, values in columns.items() if name != TEXT_FIELD} or None
        ids = _ids(list(frame[d.id])) if d.id else [int(i) for i in frame.index]
        return Examples(language, split, ids, texts, fields=fields), frame, where

    def describe(self) -> dict:
        return {**super().describe(), "task_defined_in": self.definition.folder or "a run config",
                "dropped_rows": dict(self.dropped)}


class DefinedClassificationTask(DefinedTask, ClassificationTask):
    macro_f1_over_present = True  # score: present_label_metrics

    @functools.cached_property
    def labels(self) -> tuple[str, ...]:
        """The definition's labels, else those of the source's train split (sorted; numbers as numbers)."""
        if self.definition.labels:
            return self.definition.labels
        _, frame, _ = self._examples(self.default_source, "train")
        return tuple(sorted(set(self._label_names(frame, "the source's train split")), key=_natural))

    @property
    def metric_columns(self) -> tuple[str, ...]:
        return METRIC_COLUMNS[self.definition.metric_used]

    def label_words(self, family: str) -> dict[str, str]:
        """The definition's words, else each label itself (bare, as every task's words are)."""
        return {label: self.definition.label_words.get(label, label) for label in self.labels}

    def load(self, language, split, source_data="local"):
        examples, frame, where = self._examples(language, split, source_data)
        index = {label: i for i, label in enumerate(self.labels)}
        names = self._label_names(frame, where)
        unknown = sorted(set(names) - set(index))
        if unknown:
            raise XlpeftError(f"{where}: label {unknown[0]!r} of {language} never occurs in the task's labels "
                              f"({', '.join(self.labels)}, from {self.default_source}'s train split unless listed); "
                              "list it under labels: in the task file, or drop its rows")
        return Examples(examples.language, split, examples.ids, examples.texts, labels=[index[n] for n in names],
                        fields=examples.fields)

    def _label_names(self, frame: pd.DataFrame, where: str) -> list[str]:
        values, renames = list(frame[self.definition.label]), self.definition.label_values
        if renames and (odd := sorted(set(values) - set(renames))):
            raise XlpeftError(f"{where}: label value {odd[0]!r} is not in label_values ({', '.join(renames)}); add it "
                              "there, or drop its rows")
        return [renames.get(value, value) for value in values]

    def score(self, examples, inputs, predictions):
        from xlpeft.metrics.classification import present_label_metrics

        return present_label_metrics(examples.labels, predictions, len(self.labels))


class DefinedTextTask(DefinedTask, TextTask):
    @property
    def metric_columns(self) -> tuple[str, ...]:
        return METRIC_COLUMNS[self.definition.metric_used]

    def load(self, language, split, source_data="local"):
        examples, frame, _ = self._examples(language, split, source_data)
        return Examples(examples.language, split, examples.ids, examples.texts,
                        targets=list(frame[self.definition.target]), fields=examples.fields)

    def score(self, examples, inputs, predictions):
        answers = [p.text for p in predictions]
        if self.definition.metric_used == "entity_f1":
            from xlpeft.data.tasks.masakhaner import parse_target
            from xlpeft.metrics.entities import text_entity_scores

            scores = text_entity_scores([parse_target(t) for t in examples.targets], [parse_target(a) for a in answers])
            return {"f1": scores["f1"], "precision": scores["precision"], "recall": scores["recall"], "n": len(examples)}
        from xlpeft.metrics.squad import squad_scores

        scores = squad_scores({i: [t] for i, t in enumerate(examples.targets)}, dict(enumerate(answers)))
        return {"f1": scores["f1"], "exact_match": scores["exact_match"], "n": scores["n"]}


class DefinedChoiceTask(DefinedTask, MultipleChoiceTask):
    """Multiple choice: the input, the choices (columns, or templates over columns) and the gold choice's position
    (the label column, through label_values where the data count from 1 or write letters)."""

    def load(self, language, split, source_data="local"):
        examples, frame, where = self._examples(language, split, source_data)
        d = self.definition
        rows = _rows({name: list(frame[name]) for name in d.choice_fields})
        choices = [tuple((row[c] if "{" not in c else c.format_map(row)).strip() for c in d.choices) for row in rows]
        return choice_examples(replace(examples, choices=choices, labels=self._golds(list(frame[d.label]), where)),
                               d.label, self.name)

    def _golds(self, values: list[str], where: str) -> list[int]:
        """The gold choice's 0-based position: through label_values, else the value itself."""
        renames = self.definition.label_values
        odd = sorted(set(values) - set(renames)) if renames else sorted(v for v in set(values) if not v.isdigit())
        if odd:
            raise XlpeftError(f"{where}: gold value {odd[0]!r} of column {self.definition.label!r} is not "
                              f"{'in label_values (' + ', '.join(renames) + ')' if renames else 'a choice position'}; "
                              "map the column's values to positions 0, 1, ... with label_values, or drop its rows")
        return [int(renames.get(value, value)) for value in values]


# kind -> the task class a definition of that kind builds on
KIND_CLASSES: dict[str, type[DefinedTask]] = {"classification": DefinedClassificationTask, "text": DefinedTextTask,
                                              "multiple_choice": DefinedChoiceTask}


def task_class(definition: TaskDefinition) -> type[DefinedTask]:
    """A task class for ``definition``: its facts as class attributes, as a built-in task class has them."""
    if definition.kind not in KIND_CLASSES:
        raise XlpeftError(f"task {definition.name}: kind {definition.kind} has no task class in this version of xlpeft; "
                          f"use one of {', '.join(KIND_CLASSES)}")
    attributes = {
        "name": definition.name, "definition": definition, "default_source": definition.source,
        "fields": tuple(dict.fromkeys((TEXT_FIELD, *definition.fields))),
        "paper_templates": {family: Template(t.text, t.answers, t.origin or f"the {definition.name} task definition")
                            for family, t in definition.paper_templates.items()},
        "unparsed_label": definition.unparsed_label or None,
    }
    base = KIND_CLASSES[definition.kind]
    return type(f"{definition.name.title().replace('_', '')}Task", (base,), attributes)


@functools.lru_cache(maxsize=64)
def _read_cached(path: Path, fmt: str, encoding: str) -> pd.DataFrame:
    """A file read once per process (grids build a task per run; every copy reads the same files)."""
    return read_file(path, fmt, encoding)


def _rows(columns: dict[str, list[str]]):
    names = list(columns)
    for values in zip(*columns.values()):
        yield dict(zip(names, values))


def _ids(values: list[str]) -> list:
    """An id column's values: integers when every one is an integer, else the strings."""
    return [int(v) for v in values] if all(v.strip().lstrip("-").isdigit() for v in values) else values


def _natural(label: str):
    return (0, int(label), "") if label.lstrip("-").isdigit() else (1, 0, label)
