"""A task defined in YAML: the schema, read with ``yaml.safe_load`` into typed dataclasses (docs/tasks.md, "Task
definitions", is its reference; docs/your_task.md its walk-through).

```yaml
name: my_sentiment
kind: classification            # classification | text | multiple_choice
data:
  files: "{language}/{split}.tsv"   # relative to this file's folder; or hub: name, with config: "{language}"
source: eng
input: sentence                 # a column, or a template over columns: "{premise}\\n{hypothesis}"
label: polarity
metric: macro_f1
```

A multiple-choice definition names ``choices`` (columns or templates) and the gold column as ``label`` (its
values mapped to 0-based positions by ``label_values`` where the data count from 1); ``value_maps`` renders a
column through a map, ``source_data`` reads one source language from another hub dataset (XCOPA's English
COPA), ``source_from_test`` carves the source out of a test-only dataset by group (Belebele's passages).

Every mistake is one line naming the file, the key and the fix: an unknown key (with the allowed ones), a value
of the wrong type, a missing required key. What the schema cannot know until the data are read (a missing
column, an unknown language, a label never seen in the source) is checked by the task (``tasks/defined.py``).

A definition is stored whole in each run's config (``TrainConfig.task_definition``, as :meth:`to_dict` writes
it), so evaluation and reports rebuild the task without the file, and a changed definition is a new run id. The
file's folder travels with it (``folder``) for relative paths but is not part of the run's identity.
"""

from __future__ import annotations

import hashlib
import string
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from xlpeft.data.tables import FORMATS
from xlpeft.errors import XlpeftError

KINDS = ("classification", "text", "multiple_choice")
METRICS = {"classification": ("accuracy", "macro_f1"), "text": ("squad", "entity_f1"), "multiple_choice": ("accuracy",)}
SPLITS = ("train", "dev", "test")
DEV_NAMES = ("dev", "validation", "valid")  # what a files definition's dev split is looked for as, unless mapped


@dataclass(frozen=True)
class LanguageSpec:
    """One language of the task, in the task's own code, and how the data and the rest of xlpeft name it."""

    code: str
    in_data: str = ""  # the name the data use ({language} in files and hub config, the language column's value)
    iso: str = ""  # ISO 639-3 (URIEL's key); default: recognised from the code
    flores: str = ""  # FLORES-200 code of method B's language modules; default: recognised from the code

    @property
    def data_name(self) -> str:
        return self.in_data or self.code


@dataclass(frozen=True)
class DataSpec:
    """Where the rows come from: files by a path pattern, or a hub dataset."""

    files: str = ""  # path pattern with {language} and {split}
    format: str = ""  # csv | tsv | jsonl | parquet; default: the extension's
    hub: str = ""  # a dataset name for datasets.load_dataset
    config: str = ""  # the hub config, e.g. "{language}"
    language_column: str = ""  # one table holds every language: this column says which row is which
    task_folder: str = ""  # relative files live in DATA/tasks/<task_folder> (--data-dir), not beside the file
    encoding: str = "utf-8"


@dataclass(frozen=True)
class SourceDataSpec:
    """``--source-data hub``: one language's training data read from another hub dataset with the same columns
    (XCOPA's English source is COPA); that language is only ever a source, never evaluated."""

    language: str
    hub: str
    config: str = ""
    splits: dict[str, str] = field(default_factory=dict)  # train/dev -> the hub's split names (train, validation)
    name: str = ""  # what the data are called, for messages ("COPA"); default: the hub name

    def split_name(self, split: str) -> str:
        return self.splits.get(split, {"train": "train", "dev": "validation"}.get(split, split))


@dataclass(frozen=True)
class SourceFromTest:
    """The data have a test split only: it is divided once into the source's train and dev rows and the rows
    every language is evaluated on, by groups of rows (a passage and its questions stay on one side). A group's
    side depends on its value alone (SHA-256, :func:`group_part`), so it is the same in every language, for every
    seed, whatever rows a language lacks: no item a source trained on is evaluated in any language."""

    group: str  # the column whose value ties rows together (Belebele: link, the passage's source)
    share: float  # the groups the source trains (3/4 of them) and validates (1/4) on; the rest are evaluated


def group_part(value: str, share: float) -> str:
    """train, dev or test for a group (:class:`SourceFromTest`): the first 8 bytes of SHA-256 of its value as a
    fraction of 2**64; below ``share * 3/4`` trains, below ``share`` validates, the rest is evaluated."""
    fraction = int.from_bytes(hashlib.sha256(value.encode("utf-8")).digest()[:8], "big") / 2**64
    return "train" if fraction < share * 0.75 else "dev" if fraction < share else "test"


@dataclass(frozen=True)
class PaperTemplate:
    text: str
    answers: tuple[str, ...] = ()  # classification: the label strings the template asks for, in labels' order
    origin: str = ""  # where the strings come from, for the record


@dataclass(frozen=True)
class TaskDefinition:
    name: str
    kind: str
    data: DataSpec
    input: str
    source: str
    label: str = ""  # classification: the label column; multiple_choice: the gold choice's index (or label_values')
    target: str = ""  # text: the target column
    choices: tuple[str, ...] = ()  # multiple_choice: the choices, each a column or a template over columns
    id: str = ""  # the id column; default: the row's position in its file
    labels: tuple[str, ...] = ()  # in class-id order; default: discovered from the source's train split, sorted
    label_words: dict[str, str] = field(default_factory=dict)  # label -> verbalizer word; default: the label
    label_values: dict[str, str] = field(default_factory=dict)  # the data's label value -> label (0 -> entailment);
    # multiple_choice: -> the gold choice's 0-based index ("1" -> 0)
    value_maps: dict[str, dict[str, str]] = field(default_factory=dict)  # column -> {the data's value: the text read}
    metric: str = ""  # default: the kind's first
    languages: tuple[LanguageSpec, ...] = ()  # default: discovered from the files
    splits: dict[str, str] = field(default_factory=dict)  # train/dev/test -> the data's split names
    help: str = ""
    paper_templates: dict[str, PaperTemplate] = field(default_factory=dict)  # backbone family -> template
    unparsed_label: str = ""  # the label of a generated answer that names none (NLI: neutral)
    source_data: SourceDataSpec | None = None  # --source-data hub: a source language's data from another dataset
    source_from_test: SourceFromTest | None = None  # no train/dev split: the source's carved out of test by group
    folder: str = ""  # the file's folder (relative paths); not part of a run's identity

    @property
    def fields(self) -> tuple[str, ...]:
        """The columns the input reads: the template's fields, or the one column."""
        return _fields_of(self.input)

    @property
    def choice_fields(self) -> tuple[str, ...]:
        """The columns the choices read: each choice's column, or its template's fields."""
        return tuple(dict.fromkeys(name for choice in self.choices for name in _fields_of(choice)))

    @property
    def metric_used(self) -> str:
        return self.metric or METRICS[self.kind][0]

    def split_name(self, split: str) -> str:
        """The data's name of ``split``; with ``source_from_test``, every split is read from the test split."""
        if self.source_from_test:
            split = "test"
        return self.splits.get(split, "validation" if split == "dev" and self.data.hub else split)

    @property
    def dev_from_train(self) -> bool:
        """``splits`` maps dev to train's split: a fixed quarter of it validates (as when there is no dev split)."""
        return not self.source_from_test and self.split_name("dev") == self.split_name("train")

    def to_dict(self) -> dict:
        """The definition in its file's form, as stored in a run's config: the keys it sets (defaults left out),
        plus ``folder``; ``from_dict`` reads it back to an equal definition."""
        raw = _compact({**asdict(self), "languages": {}, "labels": [], "label_words": {}})
        if self.languages:
            raw["languages"] = {spec.code: _compact({**asdict(spec), "code": ""}) or None for spec in self.languages}
        if self.labels:
            raw["labels"] = dict(self.label_words) if self.label_words else list(self.labels)
        return raw

    @classmethod
    def from_dict(cls, raw: dict, where: str = "task definition", folder: str = "") -> TaskDefinition:
        return _parse(raw, where, folder)


def load_definition(path: str | Path) -> TaskDefinition:
    """Read and check a task file (one-line errors naming the file, the key and the fix)."""
    path = Path(path).expanduser()
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise XlpeftError(f"cannot read task file {path} ({exc.strerror}); give the path of a task definition "
                          "(docs/your_task.md)") from exc
    except yaml.YAMLError as exc:
        raise XlpeftError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from exc
    return _parse(raw, str(path), str(path.resolve().parent))


# ---------------------------------------------------------------------------------------------- checking
_TOP = {"name": str, "kind": str, "data": dict, "input": str, "source": str, "label": str, "target": str,
        "choices": list, "id": str, "labels": (list, dict), "label_values": dict, "value_maps": dict, "metric": str,
        "languages": (list, dict), "splits": dict, "help": str, "paper_templates": dict, "unparsed_label": str,
        "source_data": dict, "source_from_test": dict, "folder": str}
_REQUIRED = ("name", "kind", "data", "input", "source")
_DATA = {"files": str, "format": str, "hub": str, "config": str, "language_column": str, "task_folder": str,
         "encoding": str}
_LANGUAGE = {"in_data": str, "iso": str, "flores": str}
_SOURCE_DATA = {"language": str, "hub": str, "config": str, "splits": dict, "name": str}
_SOURCE_FROM_TEST = {"group": str, "share": float}


def _parse(raw: Any, where: str, folder: str) -> TaskDefinition:
    if not isinstance(raw, dict):
        raise XlpeftError(f"{where} must be a mapping of keys such as name, kind, data, input (docs/tasks.md)")
    _check(raw, _TOP, where, "")
    missing = [key for key in _REQUIRED if key not in raw]
    if missing:
        raise XlpeftError(f"{where}: missing key {missing[0]!r}; a task file needs {', '.join(_REQUIRED)} "
                          "(docs/tasks.md, 'Task definitions')")
    kind = _one_of(raw["kind"], KINDS, where, "kind")
    data = _data(raw["data"], where)
    labels, words = _labels(raw.get("labels", []), where)
    definition = TaskDefinition(
        name=raw["name"], kind=kind, data=data, input=raw["input"], source=raw["source"],
        label=raw.get("label", ""), target=raw.get("target", ""), choices=tuple(_strings(raw.get("choices", []),
                                                                                       where, "choices")),
        id=raw.get("id", ""), labels=labels, label_words=words,
        label_values={str(k): str(v) for k, v in raw.get("label_values", {}).items()},
        value_maps=_value_maps(raw.get("value_maps", {}), where),
        metric=_one_of(raw.get("metric", METRICS[kind][0]), METRICS[kind], where, "metric") if "metric" in raw else "",
        languages=_languages(raw.get("languages", []), where), splits=_splits(raw.get("splits", {}), where),
        help=raw.get("help", ""), paper_templates=_templates(raw.get("paper_templates", {}), where),
        unparsed_label=raw.get("unparsed_label", ""), source_data=_source_data(raw.get("source_data"), where),
        source_from_test=_source_from_test(raw.get("source_from_test"), where), folder=raw.get("folder", folder))
    _check_kind(definition, where)
    return definition


def _check(mapping: dict, allowed: dict[str, Any], where: str, prefix: str) -> None:
    for key, value in mapping.items():
        if key not in allowed:
            raise XlpeftError(f"{where}: unknown key '{prefix}{key}'; allowed: {', '.join(allowed)}")
        if not isinstance(value, allowed[key]):
            want = " or ".join(t.__name__ for t in (allowed[key] if isinstance(allowed[key], tuple) else (allowed[key],)))
            raise XlpeftError(f"{where}: {prefix}{key} must be a {_TYPE_WORDS.get(want, want)}, not "
                              f"{type(value).__name__} {value!r}")


_TYPE_WORDS = {"str": "string (quote it)", "dict": "mapping", "list": "list", "list or dict": "list or a mapping",
               "float": "number between 0 and 1"}


def _one_of(value: str, allowed: tuple[str, ...], where: str, key: str) -> str:
    if value not in allowed:
        raise XlpeftError(f"{where}: {key} {value!r} is not one of {', '.join(allowed)}")
    return value


def _strings(values: list, where: str, key: str) -> list[str]:
    if not all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in values):
        raise XlpeftError(f"{where}: {key} must be a list of strings (quote yes, no, on, off), not {values!r}")
    return [str(v) for v in values]


def _data(raw: dict, where: str) -> DataSpec:
    _check(raw, _DATA, where, "data.")
    data = DataSpec(**raw)
    if bool(data.files) == bool(data.hub):
        raise XlpeftError(f"{where}: data needs exactly one of files (a path pattern with {{language}} and {{split}}) "
                          "or hub (a dataset name)")
    if data.format:
        _one_of(data.format, FORMATS, where, "data.format")
    pattern = data.files or data.config
    if "{language}" not in pattern and not data.language_column:
        raise XlpeftError(f"{where}: data.{'files' if data.files else 'config'} has no {{language}}: put it in the "
                          "pattern, or name the column that holds each row's language with data.language_column")
    if data.files and "{split}" not in data.files:
        raise XlpeftError(f"{where}: data.files has no {{split}}: write the pattern as e.g. '{{language}}/{{split}}.tsv'")
    return data


def _labels(raw: list | dict, where: str) -> tuple[tuple[str, ...], dict[str, str]]:
    """A list of labels, or a mapping label -> verbalizer word (one word each)."""
    if isinstance(raw, dict):
        if not all(isinstance(v, str) for v in raw.values()):
            raise XlpeftError(f"{where}: labels maps each label to its word as a string (quote yes, no, on, off): {raw!r}")
        words = {str(k): v for k, v in raw.items()}
        return tuple(words), words
    return tuple(_strings(raw, where, "labels")), {}


def _languages(raw: list | dict, where: str) -> tuple[LanguageSpec, ...]:
    """A list of codes, or a mapping code -> {in_data, iso, flores} (or nothing)."""
    if isinstance(raw, list):
        return tuple(LanguageSpec(code) for code in _strings(raw, where, "languages"))
    specs = []
    for code, settings in raw.items():
        if not isinstance(code, str):
            raise XlpeftError(f"{where}: language code {code!r} must be a string: quote it")
        settings = settings or {}
        if not isinstance(settings, dict):
            raise XlpeftError(f"{where}: languages.{code} must be a mapping of in_data, iso, flores (or empty), "
                              f"not {settings!r}")
        _check(settings, _LANGUAGE, where, f"languages.{code}.")
        specs.append(LanguageSpec(str(code), **settings))
    return tuple(specs)


def _splits(raw: dict, where: str) -> dict[str, str]:
    for key, value in raw.items():
        _one_of(key, SPLITS, where, "a splits key")
        if not isinstance(value, str):
            raise XlpeftError(f"{where}: splits.{key} must be the data's split name as a string, not {value!r}")
    return dict(raw)


def _value_maps(raw: dict, where: str) -> dict[str, dict[str, str]]:
    """column -> {the data's value: the text the input reads instead}."""
    for column, mapping in raw.items():
        if not isinstance(mapping, dict) or not all(isinstance(v, str) for v in mapping.values()):
            raise XlpeftError(f"{where}: value_maps.{column} must map each of the column's values to a string (quote "
                              f"yes, no, on, off), not {mapping!r}")
    return {str(column): {str(k): v for k, v in mapping.items()} for column, mapping in raw.items()}


def _source_data(raw: dict | None, where: str) -> SourceDataSpec | None:
    if raw is None:
        return None
    _check(raw, _SOURCE_DATA, where, "source_data.")
    if not raw.get("language") or not raw.get("hub"):
        raise XlpeftError(f"{where}: source_data needs language (the source it is for) and hub (the dataset its train "
                          "and dev splits are read from)")
    for key, value in raw.get("splits", {}).items():
        _one_of(key, ("train", "dev"), where, "a source_data.splits key")
        if not isinstance(value, str):
            raise XlpeftError(f"{where}: source_data.splits.{key} must be the hub's split name as a string, not {value!r}")
    return SourceDataSpec(**raw)


def _source_from_test(raw: dict | None, where: str) -> SourceFromTest | None:
    if raw is None:
        return None
    _check(raw, _SOURCE_FROM_TEST, where, "source_from_test.")
    if "group" not in raw or not 0 < raw.get("share", 0) < 1:
        raise XlpeftError(f"{where}: source_from_test needs group (the column tying rows together) and share (the "
                          f"part of the groups the source trains and validates on, between 0 and 1), not {raw!r}")
    return SourceFromTest(raw["group"], raw["share"])


def _templates(raw: dict, where: str) -> dict[str, PaperTemplate]:
    """family -> a template string, or {text, answers}."""
    result = {}
    for family, value in raw.items():
        if isinstance(value, str):
            result[family] = PaperTemplate(value)
        elif isinstance(value, dict) and set(value) <= {"text", "answers", "origin"} and isinstance(value.get("text"), str):
            answers = tuple(_strings(value.get("answers", []), where, f"paper_templates.{family}.answers"))
            result[family] = PaperTemplate(value["text"], answers, str(value.get("origin", "")))
        else:
            raise XlpeftError(f"{where}: paper_templates.{family} must be a template string or {{text, answers, origin}}")
    return result


def _check_kind(d: TaskDefinition, where: str) -> None:
    """The columns each kind needs: a label (classification), a target (text), choices and the gold one's column
    (multiple choice); and the keys that only fit some kinds or need other keys."""
    need = {"classification": ("label", d.label), "text": ("target", d.target),
            "multiple_choice": ("choices", d.choices)}[d.kind]
    if not need[1]:
        raise XlpeftError(f"{where}: kind {d.kind} needs {need[0]}: the column that holds "
                          f"{'each row' + chr(39) + 's class' if d.kind == 'classification' else 'the answer'}")
    if d.kind == "multiple_choice":
        _check_choices(d, where)
    elif d.kind != "classification" and (d.labels or d.label_values):
        raise XlpeftError(f"{where}: labels and label_values are for kind classification, not {d.kind}")
    if d.unparsed_label and d.unparsed_label not in d.labels:
        raise XlpeftError(f"{where}: unparsed_label {d.unparsed_label!r} is not among labels ({', '.join(d.labels)})")
    for family, template in d.paper_templates.items():
        if template.answers and len(template.answers) != len(d.labels):
            raise XlpeftError(f"{where}: paper_templates.{family} has {len(template.answers)} answers for "
                              f"{len(d.labels)} labels: give one per label, in labels' order")
    read = (*d.fields, *d.choice_fields)
    for column in d.value_maps:
        if column not in read:
            raise XlpeftError(f"{where}: value_maps.{column}: {column!r} is not a column the input or the choices read "
                              f"({', '.join(read)})")
    if d.source_from_test and set(d.splits) - {"test"}:
        raise XlpeftError(f"{where}: source_from_test reads every split from the test split: map only splits.test")
    if d.source_data and d.languages and d.source_data.language not in {spec.code for spec in d.languages}:
        raise XlpeftError(f"{where}: source_data.language {d.source_data.language!r} is not among languages: add it")


def _check_choices(d: TaskDefinition, where: str) -> None:
    """Multiple choice: two choices or more, the gold column, label_values that name choice positions."""
    if len(d.choices) < 2:
        raise XlpeftError(f"{where}: choices lists the columns of the choices: give two or more, not {list(d.choices)}")
    if not d.label:
        raise XlpeftError(f"{where}: kind multiple_choice needs label: the column that holds the right choice (its "
                          "0-based index, or values that label_values maps to one)")
    if d.labels:
        raise XlpeftError(f"{where}: labels are for kind classification; a multiple-choice task's choices are its "
                          "columns (choices) and label_values maps the gold column's values to their positions")
    positions = [str(i) for i in range(len(d.choices))]
    for value, position in d.label_values.items():
        if position not in positions:
            raise XlpeftError(f"{where}: label_values maps {value!r} to {position!r}, not a choice's position: use "
                              f"0..{len(d.choices) - 1} (0 for {d.choices[0]})")


def _fields_of(template: str) -> tuple[str, ...]:
    """A template's fields in order, or the one column a string without braces names."""
    if "{" not in template:
        return (template,)
    return tuple(dict.fromkeys(name for _, name, _, _ in string.Formatter().parse(template) if name))


def _compact(value):
    """Defaults (empty strings, lists, mappings) left out, so that a definition stores only what it says."""
    if isinstance(value, dict):
        return {k: _compact(v) for k, v in value.items() if v not in ("", (), [], {}, None)}
    if isinstance(value, (list, tuple)):
        return [_compact(v) for v in value]
    return value
