"""A declarative grid: a YAML file that expands into training runs and one evaluation plan.

```yaml
name: quickstart
train:                      # TrainConfig fields; a list is a grid axis, a scalar is fixed
  model: smollm2-135m
  regime: [prompt, joint]
  prompt_length: [4, 16]
  seed: [0, 1]
  epochs: 5
overrides:                  # optional: settings that apply only where a condition holds
  - when: {regime: joint}
    set: {lr: 1.0e-4}
evaluate:
  languages: paper52        # a named set or a list of codes
  split: test
```

Method B grids add ``language_modules:`` (LanguageModuleConfig fields, plus ``languages``, ``kinds`` and
``modules_dir``; lists of ``model``/``languages``/``kinds`` are expanded): the runner trains the modules
missing from the registry before the task runs, which name the same ``modules_dir`` (see
configs/vykopal2025.yaml).

Several source languages train one run (tasks/sources.py): ``source: eng_Latn,fra_Latn`` (one string) or
``source: [[eng_Latn, fra_Latn]]``; a list inside the ``source`` axis is one source set, so
``source: [eng_Latn, [eng_Latn, fra_Latn]]`` sweeps English alone and English with French. A method B
configuration that stacks the source's language module (la+, slp+) takes one source: with several its runs
are left out and listed.

A grid trains one task (``task: nusax``, or a task definition file, ``task: my_task.yaml``, relative to the grid
file; default SIB-200) and evaluates the languages of that task,
in its codes (for tasks other than SIB-200: ``all``, ``targets`` or a list such as ``[jav, sun]``). A file
may hold one grid per task: a ``tasks:`` mapping of task name to its own ``train``/``evaluate``/``overrides``
additions, merged onto the shared sections (configs/vykopal2025_tasks.yaml; ``load_grids``); the grids share
the language modules and write to OUT/<task>.

A pair the data do not have is left out and listed, never an error: a source language without training data
for the task (its runs), an evaluation language without a test set (``Task.missing_data``), and on method B
grids a language whose module code (``Task.module_language``) is not among the grid's language modules (the
module runs of that source; that target, unless ``evaluate: borrow`` names a distance). ``Grid.skipped`` holds
them with their reasons; ``--dry-run`` prints them and a run records them in OUT/skipped.csv.

Axes expand in the order written (the last varies fastest). A run is identified by a hash of its
*resolved* training configuration (every TrainConfig field, defaults included, the source language
normalised), so the same run is recognised whatever YAML produced it, and a changed setting is a new
run. Options that do not change numbers (device, progress) are not part of the identity.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections import Counter
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from xlpeft.config import BORROW_NONE, EvalOptions, LanguageModuleConfig, TrainConfig, several_sources_problem
from xlpeft.data.languages import resolve_languages
from xlpeft.data.task_names import is_task_file
from xlpeft.errors import XlpeftError
from xlpeft.modular.configurations import Configuration
from xlpeft.tasks import Task, task_for
from xlpeft.tasks.sources import evaluation_languages, source_languages

TRAIN_FIELDS = {f.name for f in fields(TrainConfig) if f.metadata.get("cli") is not False}  # not task_definition
# a grid's evaluate section: EvalOptions' fields (the device is the machine's, not the grid's) and its languages
EVAL_FIELDS = ({f.name for f in fields(EvalOptions)} - {"device"}) | {"languages"}
MODULE_FIELDS = ({f.name for f in fields(LanguageModuleConfig)} - {"language", "kind"}) | {"languages", "kinds",
                                                                                          "modules_dir"}


@dataclass(frozen=True)
class RunSpec:
    """One training run of the grid."""

    run_id: str
    config: TrainConfig
    axes: dict[str, Any]  # the values this run takes on the grid's axes (for tables)


@dataclass
class EvalSpec:
    languages: list[str]
    split: str = "test"
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Skip:
    """A (task, language) pair the grid leaves out, and why: a source's runs (``runs`` of them) are not
    trained, or a target is not evaluated (``runs`` = 0)."""

    task: str
    role: str  # "source" or "target"
    language: str
    reason: str
    runs: int = 0

    def describe(self) -> str:
        what = f"{self.runs} runs from source" if self.role == "source" else "target"
        return f"{self.task} {what} {self.language}: {self.reason}"


@dataclass
class Grid:
    name: str
    runs: list[RunSpec]
    evaluation: EvalSpec
    axes: list[str]
    data_dir: str | None = None
    language_modules: list[LanguageModuleConfig] = field(default_factory=list)  # method B, trained first
    modules_dir: str = ""
    skipped: list[Skip] = field(default_factory=list)  # pairs without data or module, listed instead of failing
    subdir: str = ""  # a grid of a several-task file: its task, the output directory under the file's


def run_id(config: TrainConfig) -> str:
    """12 hex digits of the SHA-256 of the resolved configuration (sorted JSON)."""
    return hashlib.sha256(json.dumps(config.identity(), sort_keys=True).encode()).hexdigest()[:12]


def load_grid(path: str | Path) -> Grid:
    """Read and expand a grid file of one task; every mistake is an XlpeftError naming the key and the fix."""
    grids = load_grids(path)
    if len(grids) > 1:
        raise XlpeftError(f"{path} holds {len(grids)} grids (one per task under 'tasks:'): read it with load_grids")
    return grids[0]


def load_grids(path: str | Path) -> list[Grid]:
    """Read a grid file: one grid, or one per task of its ``tasks:`` section."""
    path = Path(path)
    try:
        spec = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise XlpeftError(f"cannot read grid file {path} ({exc.strerror}); give the path of a YAML config") from exc
    except yaml.YAMLError as exc:
        raise XlpeftError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from exc
    if not isinstance(spec, dict) or not isinstance(spec.get("train"), dict):
        raise XlpeftError(f"{path} needs a 'train:' mapping of TrainConfig settings (see configs/quickstart.yaml)")
    return expand_tasks(_task_files_from(spec, path.parent), default_name=path.stem)


def _task_files_from(spec: dict, folder: Path) -> dict:
    """``spec`` with its task definition files (``task: my_task.yaml``, ``tasks: {my_task.yaml: ...}``) made
    absolute from the grid file's folder, so that a grid runs from any working directory."""
    def absolute(task):
        if isinstance(task, list):
            return [absolute(item) for item in task]
        return str((folder / Path(task).expanduser()).resolve()) if isinstance(task, str) and is_task_file(task) else task

    spec = {**spec, "train": {**spec["train"], **({"task": absolute(spec["train"]["task"])} if "task" in spec["train"]
                                                   else {})}}
    if isinstance(spec.get("tasks"), dict):
        spec["tasks"] = {absolute(name): section for name, section in spec["tasks"].items()}
    return spec


def expand_tasks(spec: dict, default_name: str = "grid") -> list[Grid]:
    """A file's grids: ``expand(spec)``, or with a ``tasks:`` mapping one grid per task, its section's ``train``
    and ``evaluate`` settings over the shared ones and its ``overrides`` after the shared ones."""
    tasks = spec.get("tasks")
    if tasks is None:
        return [expand(spec, default_name)]
    if not isinstance(tasks, dict) or not tasks:
        raise XlpeftError("'tasks:' must map task names to their settings, e.g. {xnli: {train: {source_data: hub}}}")
    grids = []
    for name, section in tasks.items():
        section = section or {}
        if not isinstance(section, dict) or set(section) - {"train", "evaluate", "overrides"}:
            raise XlpeftError(f"tasks.{name} may hold train, evaluate and overrides, not {section!r}")
        merged = {**{k: v for k, v in spec.items() if k != "tasks"},
                  "train": {**spec["train"], **(section.get("train") or {}), "task": name},
                  "evaluate": {**(spec.get("evaluate") or {}), **(section.get("evaluate") or {})},
                  "overrides": [*(spec.get("overrides") or []), *(section.get("overrides") or [])]}
        grids.append(replace(expand(merged, default_name), subdir=Path(name).stem if is_task_file(name) else name))
    return grids


def expand(spec: dict, default_name: str = "grid") -> Grid:
    unknown = set(spec) - {"name", "train", "overrides", "evaluate", "data_dir", "language_modules"}
    if unknown:
        raise XlpeftError(f"unknown top-level keys {sorted(unknown)}; allowed: name, train, overrides, evaluate, "
                          "data_dir, language_modules (and tasks, in a file)")
    train = _source_sets(spec["train"], "train")
    _check_keys(train, TRAIN_FIELDS, "train")
    axes = [k for k, v in train.items() if isinstance(v, list)]
    fixed = {k: v for k, v in train.items() if k not in axes}
    overrides = _overrides(spec.get("overrides") or [])
    modules_dir, modules = _language_modules(spec.get("language_modules") or {})
    module_codes = {config.language for config in modules}
    runs, seen, left_out, tasks = [], set(), [], {}
    for values in itertools.product(*(train[a] for a in axes)):
        point = dict(zip(axes, values))
        settings = {**fixed, **point}
        for when, changes in overrides:
            if all(settings.get(k) == v for k, v in when.items()):
                settings.update(changes)
        config, task, reason = _train_config(settings, module_codes)
        tasks.setdefault(json.dumps([config.task, config.task_definition], sort_keys=True), task)
        if reason:
            left_out.append(Skip(config.task, "source", config.source or task.default_source, reason))
            continue
        rid = run_id(config)
        if rid not in seen:  # e.g. prompt lengths of a 'full' run collapse to one run
            seen.add(rid)
            runs.append(RunSpec(rid, config, point))
    if len(tasks) > 1:
        names = sorted({task.name for task in tasks.values()})
        raise XlpeftError(f"a grid evaluates one task, this one trains {names} (or two definitions of one): write one "
                          "grid per task")
    task = next(iter(tasks.values()), None) or task_for(TrainConfig())  # no runs: the default task
    evaluation, targets_left_out = _evaluation(spec.get("evaluate") or {}, task, runs, module_codes)
    return Grid(spec.get("name", default_name), runs, evaluation, axes, spec.get("data_dir"), modules, modules_dir,
                _count(left_out) + targets_left_out)


def _count(skips: list[Skip]) -> list[Skip]:
    """One line per (source, reason) with the number of runs it leaves out, in the order first met."""
    counts = Counter(skips)
    return [replace(skip, runs=n) for skip, n in counts.items()]


def _language_modules(spec: dict | list) -> tuple[str, list[LanguageModuleConfig]]:
    """The language modules a method B grid needs: every (model, language, kind) combination; a list of
    sections gives each its own settings (e.g. one per kind), all in one registry."""
    if isinstance(spec, list):
        parts = [_language_modules(item) for item in spec]
        if len({root for root, _ in parts}) > 1:
            raise XlpeftError("every language_modules section must name the same modules_dir")
        return (parts[0][0] if parts else ""), [config for _, configs in parts for config in configs]
    if not spec:
        return "", []
    if not isinstance(spec, dict):
        raise XlpeftError("language_modules must be a mapping of settings or a list of them")
    _check_keys(spec, MODULE_FIELDS, "language_modules")
    if not spec.get("modules_dir") or not spec.get("languages") or not spec.get("kinds"):
        raise XlpeftError("language_modules needs modules_dir (the registry the runs' modules_dir names), languages "
                          "and kinds (la, slp)")
    settings = {k: v for k, v in spec.items() if k not in {"languages", "kinds", "modules_dir", "model"}}
    models = spec.get("model", LanguageModuleConfig.model)
    languages = spec["languages"]
    codes = resolve_languages(",".join(languages) if isinstance(languages, list) else str(languages))
    configs = []
    for model, kind, language in itertools.product(_as_list(models), _as_list(spec["kinds"]), codes):
        try:
            configs.append(LanguageModuleConfig(model=model, language=language, kind=kind, **settings))
        except TypeError as exc:
            raise XlpeftError(f"bad language_modules settings {settings}: {exc}") from exc
    return str(spec["modules_dir"]), configs


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def _check_keys(mapping: dict, allowed: set[str], where: str) -> None:
    unknown = set(mapping) - allowed
    if unknown:
        raise XlpeftError(f"unknown {where} settings {sorted(unknown)}; allowed: {', '.join(sorted(allowed))}")


def _overrides(items: list) -> list[tuple[dict, dict]]:
    result = []
    for item in items:
        if not isinstance(item, dict) or set(item) != {"when", "set"}:
            raise XlpeftError("each 'overrides' item needs exactly 'when: {setting: value}' and 'set: {setting: value}'")
        _check_keys(item["when"], TRAIN_FIELDS, "overrides.when")
        _check_keys(item["set"], TRAIN_FIELDS, "overrides.set")
        result.append((_source_set(item["when"], "overrides.when"), _source_set(item["set"], "overrides.set")))
    return result


def _source_sets(train: dict, where: str) -> dict:
    """``train`` with its ``source`` written as stored: a list is an axis whose items are a language or a source
    set (a list of languages, or a comma string), each set joined by commas (``[eng, [eng, fra]]`` ->
    ``["eng", "eng,fra"]``)."""
    if not isinstance(train.get("source"), list):
        return train
    return {**train, "source": [_joined(item, where) for item in train["source"]]}


def _source_set(settings: dict, where: str) -> dict:
    """``settings`` (an override's condition or change) with a source set given as a list joined by commas."""
    return {**settings, "source": _joined(settings["source"], where)} if "source" in settings else settings


def _joined(value, where: str) -> str:
    if isinstance(value, list):
        if not value or not all(isinstance(code, str) for code in value):
            raise XlpeftError(f"{where}.source: a source set is a list of language codes, not {value!r} (e.g. "
                              "source: [eng_Latn, [eng_Latn, fra_Latn]] sweeps English alone and with French)")
        return ",".join(value)
    if not isinstance(value, str):
        raise XlpeftError(f"{where}.source: give a language code or a list of them, not {value!r}")
    return value


def _train_config(settings: dict, module_codes: set[str]) -> tuple[TrainConfig, Task, str | None]:
    """The run's resolved configuration and its task, or the unresolved one and why the run is left out: its source
    has no training data for the task, or (a module run) no language module in the grid. A task file is read
    into the configuration here (``task_for``), so the run id follows the definition."""
    try:
        config = TrainConfig(**settings)
    except TypeError as exc:
        raise XlpeftError(f"bad train settings {settings}: {exc}") from exc
    task = task_for(config)
    sources = source_languages(config.source or task.default_source)
    if len(sources) > 1 and (problem := several_sources_problem(config.configuration)):
        return config, task, problem
    try:
        config.resolve(task)
    except XlpeftError:
        reason = next(filter(None, (task.missing_data(source, "source", config.source_data) for source in sources)),
                      None)
        if reason:
            return config, task, reason
        raise
    if module_codes and _uses_module(config):
        return config, task, _module_gap(task, config.source, module_codes)
    return config, task, None


def _uses_module(config: TrainConfig) -> bool:
    return bool(config.configuration) and Configuration(config.configuration).language is not None


def _module_gap(task: Task, language: str, module_codes: set[str]) -> str | None:
    """Why ``language``'s module runs cannot find its language module among the grid's, or None."""
    code = task.module_language(language)
    if code in module_codes:
        return None
    return f"{task.name} looks its language module up as {code!r}, which the grid's language_modules do not train"


def _evaluation(spec: dict, task: Task, runs: list[RunSpec], module_codes: set[str]) -> tuple[EvalSpec, list[Skip]]:
    """The plan, and the languages left out of it: those the task has no test set of, and on a grid with module
    runs and no borrowing, those without a language module in the grid."""
    _check_keys(spec, EVAL_FIELDS, "evaluate")
    languages = spec.get("languages", "quick" if task.name == "sib200" else "all")
    codes, skipped = [], []
    for item in languages if isinstance(languages, list) else [str(languages)]:
        try:
            codes += evaluation_languages(task, str(item), [run.config.source for run in runs])
        except XlpeftError:
            reason = task.missing_data(str(item), "target")
            if not reason:
                raise
            skipped.append(Skip(task.name, "target", str(item), reason))
    if not codes:
        raise XlpeftError(f"{task.name} has none of the evaluate languages: {skipped[0].reason}")
    codes = list(dict.fromkeys(codes))
    options = {k: v for k, v in spec.items() if k not in {"languages", "split"}}
    if module_codes and options.get("borrow", BORROW_NONE) == BORROW_NONE and any(_uses_module(r.config) for r in runs):
        gaps = {code: reason for code in codes if (reason := _module_gap(task, code, module_codes))}
        skipped += [Skip(task.name, "target", code, reason) for code, reason in gaps.items()]
        codes = [code for code in codes if code not in gaps]
    return EvalSpec(codes, spec.get("split", "test"), options), skipped
