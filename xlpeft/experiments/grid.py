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

A grid trains one task (``task: nusax``; default SIB-200) and evaluates the languages of that task,
in its codes (for tasks other than SIB-200: ``all``, ``targets`` or a list such as ``[jav, sun]``).

Axes expand in the order written (the last varies fastest). A run is identified by a hash of its
*resolved* training configuration (every TrainConfig field, defaults included, the source language
normalised), so the same run is recognised whatever YAML produced it, and a changed setting is a new
run. Options that do not change numbers (device, progress) are not part of the identity.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from xlpeft.config import EvalOptions, LanguageModuleConfig, TrainConfig
from xlpeft.data.languages import resolve_languages
from xlpeft.errors import XlpeftError
from xlpeft.tasks import Task, get_task

TRAIN_FIELDS = {f.name for f in fields(TrainConfig)}
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


@dataclass
class Grid:
    name: str
    runs: list[RunSpec]
    evaluation: EvalSpec
    axes: list[str]
    data_dir: str | None = None
    language_modules: list[LanguageModuleConfig] = field(default_factory=list)  # method B, trained first
    modules_dir: str = ""


def run_id(config: TrainConfig) -> str:
    """12 hex digits of the SHA-256 of the resolved configuration (sorted JSON)."""
    return hashlib.sha256(json.dumps(config.identity(), sort_keys=True).encode()).hexdigest()[:12]


def load_grid(path: str | Path) -> Grid:
    """Read and expand a grid file; every mistake is an XlpeftError naming the key and the fix."""
    path = Path(path)
    try:
        spec = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise XlpeftError(f"cannot read grid file {path} ({exc.strerror}); give the path of a YAML config") from exc
    except yaml.YAMLError as exc:
        raise XlpeftError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from exc
    if not isinstance(spec, dict) or not isinstance(spec.get("train"), dict):
        raise XlpeftError(f"{path} needs a 'train:' mapping of TrainConfig settings (see configs/quickstart.yaml)")
    return expand(spec, default_name=path.stem)


def expand(spec: dict, default_name: str = "grid") -> Grid:
    unknown = set(spec) - {"name", "train", "overrides", "evaluate", "data_dir", "language_modules"}
    if unknown:
        raise XlpeftError(f"unknown top-level keys {sorted(unknown)}; allowed: name, train, overrides, evaluate, "
                          "data_dir, language_modules")
    train = spec["train"]
    _check_keys(train, TRAIN_FIELDS, "train")
    axes = [k for k, v in train.items() if isinstance(v, list)]
    fixed = {k: v for k, v in train.items() if k not in axes}
    overrides = _overrides(spec.get("overrides") or [])
    runs, seen = [], set()
    for values in itertools.product(*(train[a] for a in axes)):
        point = dict(zip(axes, values))
        settings = {**fixed, **point}
        for when, changes in overrides:
            if all(settings.get(k) == v for k, v in when.items()):
                settings.update(changes)
        config = _train_config(settings)
        rid = run_id(config)
        if rid not in seen:  # e.g. prompt lengths of a 'full' run collapse to one run
            seen.add(rid)
            runs.append(RunSpec(rid, config, point))
    tasks = {run.config.task for run in runs}
    if len(tasks) > 1:
        raise XlpeftError(f"a grid evaluates one task, this one trains {sorted(tasks)}: write one grid per task")
    modules_dir, modules = _language_modules(spec.get("language_modules") or {})
    task = get_task(tasks.pop() if tasks else TrainConfig.task)  # no runs: the default task
    return Grid(spec.get("name", default_name), runs, _evaluation(spec.get("evaluate") or {}, task), axes,
                spec.get("data_dir"), modules, modules_dir)


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
        result.append((item["when"], item["set"]))
    return result


def _train_config(settings: dict) -> TrainConfig:
    try:
        config = TrainConfig(**settings)
    except TypeError as exc:
        raise XlpeftError(f"bad train settings {settings}: {exc}") from exc
    config.resolve(get_task(config.task))
    return config


def _evaluation(spec: dict, task: Task) -> EvalSpec:
    _check_keys(spec, EVAL_FIELDS, "evaluate")
    languages = spec.get("languages", "quick" if task.name == "sib200" else "all")
    codes = task.resolve_languages(",".join(languages) if isinstance(languages, list) else str(languages))
    options = {k: v for k, v in spec.items() if k not in {"languages", "split"}}
    return EvalSpec(codes, spec.get("split", "test"), options)
