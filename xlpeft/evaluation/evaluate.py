"""Evaluate trained runs on many languages: one results table, written atomically, resumable.

Runs that share a frozen backbone are evaluated together over one stream of languages; each language's
test set is read, predicted and scored, and the CSV is rewritten after every language, so an
interrupted evaluation resumes where it stopped and never duplicates rows. Rows are reused only when
their identity (identity.py: the run's artefacts, split, precision, backbone weights, numbers-changing
options) is the one asked for; any other row of these runs is computed again and replaced. Every row
records that identity, where the weights came from, the text budget and how many inputs it cut.

A run is evaluated only on the weights it was trained on: its config.json records their fingerprint,
and other weights under the same name (the embedded models' hub checkpoint and offline copy) are a
one-line error. Runs trained before fingerprints were recorded, and PEFT directories, are evaluated on
what loads, with a logged note; their rows record the fingerprint used.

Method B runs (a ``configuration`` such as ``slp+ta``) are evaluated with the target language's module
swapped in for the source language's; a language without one borrows the nearest language's module
when ``borrow`` names a URIEL distance, and every row records the module used (``module_language``,
``module_borrowed``, ``module_distance``).

With ``log_samples`` every row also gets its per-example records (samples.py), written just before the row;
a row whose records are missing or belong to other numbers is computed again, so the option also fills in
the records of an evaluation done without it. Off, nothing about evaluation changes.
"""

from __future__ import annotations

import functools
import logging
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from xlpeft import __version__, faults
from xlpeft.backbones import Backbone, load_backbone
from xlpeft.config import EvalOptions, TrainConfig
from xlpeft.errors import XlpeftError
from xlpeft.evaluation.identity import EvalIdentity, read_rows, run_identity
from xlpeft.evaluation.predict import (
    Labels,
    TextCounts,
    cache_key,
    cached_text_ids,
    generates_answers,
    head_alone,
    inputs_read,
    kv_bytes_per_token,
    modules_attached,
    plan_memory,
    predict_cached,
    predict_choices,
    predict_generated,
    predict_heads_alone,
    predict_modular,
    predict_text,
    predict_uncached,
    text_counts,
    uses_cache,
)
from xlpeft.evaluation.samples import (
    choice_records,
    classification_records,
    samples_current,
    samples_path,
    text_records,
    write_samples,
)
from xlpeft.files import atomic_write
from xlpeft.kernels.frozen import prepare_frozen_model
from xlpeft.modular.configurations import Configuration
from xlpeft.modular.registry import ModuleRegistry, Resolved, module_fingerprint
from xlpeft.objectives.label_strings import ParsedAnswers
from xlpeft.runs import Run
from xlpeft.runtime import autocast, resolve_device, resolve_precision
from xlpeft.tasks import Examples, Task, TextTask, task_for

log = logging.getLogger("xlpeft")
KEY = ["run", "run_id", "language"]
# the run's settings each row carries; ``source`` is the source set as stored (several: codes joined by commas)
RUN_COLUMNS = ("model", "regime", "placement", "prompt_length", "head", "reparam", "shots", "seed", "source")


@dataclass(frozen=True)
class Scored:
    """One run on one language: its metrics, the language module it used (method B) and, with
    ``log_samples``, one record per example."""

    metrics: dict
    module: Resolved | None
    samples: list[dict] | None = None


def evaluate(runs: list[Run], languages: list[str], data_dir: str | None, out_csv: Path, options: EvalOptions,
             progress: bool = True) -> pd.DataFrame:
    """Evaluate every run on every language (codes of the runs' task); return (and keep writing) the table."""
    device = resolve_device(options.device)
    precision = resolve_precision(options.precision, device)
    identities = {run.name: identity_for(run.config, options, precision) for run in runs}
    done = _previous_results(out_csv, runs, identities, options)
    for (key, _, source_data), group in _group(runs).items():
        todo = [lang for lang in languages if not _all_done(done, group, lang, out_csv if options.log_samples else None)]
        if not todo:
            continue
        task = task_for(group[0].train, data_dir)
        backbone = load_backbone(key, device=device)
        check_weights(backbone, group)
        backbone.model.eval()
        per_token = kv_bytes_per_token(backbone) if backbone.kind == "causal" else 0
        backbone.freeze()
        prepare_frozen_model(backbone.model, device, precision)  # everything below runs under this precision
        bar = tqdm(todo, desc=f"evaluate {len(group)} run(s) on {Path(key).name}", disable=not progress, unit="lang")
        for language in bar:
            bar.set_postfix(lang=language)
            examples = task.load(language, options.split, source_data)
            with autocast(precision, device):
                if isinstance(task, TextTask):
                    scored = _evaluate_text(backbone, task, group, language, examples, options)
                elif task.kind == "choice":
                    scored = _evaluate_choice(backbone, task, group, language, examples, options)
                else:
                    scored = _evaluate_classification(backbone, task, group, language, examples, options, per_token)
            rows = [_row(run, task, language, result.metrics, result.module, identities[run.name], backbone,
                         text_counts(backbone, run, task, examples, _language_rows(result.module)))
                    for run, result in zip(group, scored)]
            if options.log_samples:
                for run, row, result in zip(group, rows, scored):
                    write_samples(samples_path(out_csv, run.name, language), row, result.samples)
            done = pd.concat([done[~_is_rows(done, group, language)], pd.DataFrame(rows)], ignore_index=True)
            _write(out_csv, done)
            faults.crash_point(faults.EVALUATE_LANGUAGE_WRITTEN)
    return done


def identity_for(run_config: dict, options: EvalOptions, precision: str) -> EvalIdentity:
    """The identity the rows of a run (its config.json) must have under ``options`` (precision resolved for
    the device)."""
    task = task_for(TrainConfig.from_dict(run_config.get("train", {})))  # built once for both settings below
    return run_identity(run_config, options.split, precision, generation_length(run_config, options),
                        nli_answers(task, options), choice_scoring(task, options))


def choice_scoring(task: Task, options: EvalOptions) -> str | None:
    """How a multiple-choice run's choices are ranked (``--choice-score``); None for other tasks, whose rows
    never depended on it."""
    return options.choice_score if task.kind == "choice" else None


def nli_answers(task: Task, options: EvalOptions) -> str | None:
    """``generate`` where the run's labels are read from generated answers (``--nli-output generate`` on an NLI
    task), else None: ranked label strings, as every row was before the option existed."""
    return "generate" if options.nli_output == "generate" and getattr(task, "unparsed_label", None) else None


def generation_length(run_config: dict, options: EvalOptions) -> int | None:
    """Text-to-text runs: new tokens to generate, from ``--max-new-tokens`` or the run's training targets
    (never from the evaluated language's answers). None for runs that do not generate."""
    if options.max_new_tokens is not None:
        return options.max_new_tokens
    return run_config.get("max_new_tokens")


def check_weights(backbone: Backbone, runs: list[Run]) -> None:
    """Refuse to evaluate a run on weights other than those it was trained on (a one-line error naming both).
    Runs that carry their own model (joint/full) are their weights; older runs and PEFT directories recorded
    none, so they are evaluated on what loaded, with a note."""
    for run in runs:
        recorded = run.config.get("backbone") or {}
        if run.model_dir is not None:
            continue
        if not recorded.get("fingerprint"):
            log.info("%s records no backbone fingerprint (trained before xlpeft recorded one, or by PEFT): evaluated "
                     "on %s weights %s (%s)", run.name, backbone.name, backbone.fingerprint, backbone.source)
        elif recorded["fingerprint"] != backbone.fingerprint:
            raise XlpeftError(
                f"run {run.name} was trained on {backbone.name} weights {recorded['fingerprint']} "
                f"({recorded.get('source', 'unknown source')}), but {backbone.name} now loads weights "
                f"{backbone.fingerprint} ({backbone.source}): evaluate where the same weights load (e.g. with the "
                "hub cache, or offline for an offline copy) or retrain the run on these weights")


def _evaluate_classification(backbone: Backbone, task: Task, group: list[Run], language: str, examples: Examples,
                             options: EvalOptions, per_token: int) -> list[Scored]:
    """Each run's metrics on one language and the language module it used (method B). Runs that generate their
    answers (``--nli-output generate``) also count the answers that named no label (``n_unparsed``)."""
    answering = {run.name for run in group if generates_answers(backbone, run, task, options.nli_output)}
    plain = [run for run in group if not run.configuration and run.name not in answering]
    preds: dict[str, Labels | ParsedAnswers] = dict(_predict(backbone, plain, examples, options, per_token))
    for run in group:
        if run.name in answering and not run.configuration:
            preds[run.name] = predict_generated(backbone, run, task, examples.texts, options.batch_size,
                                                fields=examples.fields)
    modules = {run.name: _predict_modular(backbone, run, task, language, examples, options, preds,
                                          run.name in answering)
               for run in group if run.configuration}
    scored = []
    for run in group:
        module = modules.get(run.name)
        samples = None
        if options.log_samples:
            read = inputs_read(backbone, run, examples, _language_rows(module))
            samples = classification_records(task, examples, read, preds[run.name])
        scored.append(Scored(_score(task, examples, preds[run.name]), module, samples))
    return scored


def _score(task: Task, examples: Examples, predicted: Labels | ParsedAnswers) -> dict:
    if isinstance(predicted, ParsedAnswers):
        return {**task.score(examples, examples, predicted.labels), "n_unparsed": predicted.n_unparsed}
    return task.score(examples, examples, predicted)


def _evaluate_text(backbone: Backbone, task: TextTask, group: list[Run], language: str, examples: Examples,
                   options: EvalOptions) -> list[Scored]:
    """Text-to-text runs generate one at a time (no text cache: their prompts precede generated tokens)."""
    scored = []
    for run in group:
        module = _resolve_module(backbone, run, task, language, options)
        length = generation_length(run.config, options)
        if run.configuration:
            with modules_attached(backbone, run, None if module is None else module.module) as stack:
                inputs, outputs = predict_text(backbone, run, task, examples, options.batch_size, length, stack)
        else:
            inputs, outputs = predict_text(backbone, run, task, examples, options.batch_size, length)
        samples = None
        if options.log_samples:
            read = inputs_read(backbone, run, inputs, _language_rows(module))
            samples = text_records(task, examples, inputs, outputs, read)
        scored.append(Scored(task.score(examples, inputs, outputs), module, samples))
    return scored


def _evaluate_choice(backbone: Backbone, task: Task, group: list[Run], language: str, examples: Examples,
                     options: EvalOptions) -> list[Scored]:
    """Multiple-choice runs score every choice run by run (no text cache: the choices follow the prompt)."""
    scored = []
    for run in group:
        module = _resolve_module(backbone, run, task, language, options)
        attached = (modules_attached(backbone, run, None if module is None else module.module) if run.configuration
                    else nullcontext())
        with attached as stack:
            chosen = predict_choices(backbone, run, examples, options.batch_size, options.choice_score, stack)
        samples = None
        if options.log_samples:
            samples = choice_records(examples, inputs_read(backbone, run, examples, _language_rows(module)), chosen)
        scored.append(Scored(task.score(examples, examples, chosen), module, samples))
    return scored


def _predict(backbone: Backbone, runs: list[Run], examples: Examples, options: EvalOptions,
             per_token: int) -> dict[str, Labels]:
    texts, fields = examples.texts, examples.fields
    cached = [run for run in runs if uses_cache(backbone, run, options.text_cache)]
    preds: dict[str, Labels] = {}
    by_text: dict[tuple, list[Run]] = {}  # the cache holds the texts as these runs read them (cache_key)
    for run in cached:
        by_text.setdefault(cache_key(run), []).append(run)
    for group in by_text.values():
        token_ids = cached_text_ids(backbone, group, texts, fields)
        plan = plan_memory(per_token, len(group), max(map(len, token_ids)), options.memory_budget())
        preds.update(predict_cached(backbone, group, token_ids, plan))
    alone = [run for run in runs if head_alone(backbone, run)]
    if alone:
        preds.update(predict_heads_alone(backbone, alone, texts, options.batch_size, fields))
    for run in runs:
        if run.name not in preds:
            preds[run.name] = predict_uncached(backbone, run, texts, options.batch_size, fields=fields)
    return preds


def _resolve_module(backbone: Backbone, run: Run, task: Task, language: str, options: EvalOptions) -> Resolved | None:
    """The language module a method B run uses on ``language`` (its own, or a borrowed one); None without."""
    kind = Configuration(run.configuration).language if run.configuration else None
    if kind is None:
        return None
    root = options.modules_dir or run.train.modules_dir
    return ModuleRegistry(root).resolve(backbone, task.module_language(language), kind, options.borrow)


def _predict_modular(backbone: Backbone, run: Run, task: Task, language: str, examples: Examples,
                     options: EvalOptions, preds: dict, answers: bool) -> Resolved | None:
    """A method B run on ``language``: resolve the language's module (or a borrowed one), predict into ``preds``
    (``answers``: read from generated answers)."""
    resolved = _resolve_module(backbone, run, task, language, options)
    preds[run.name] = predict_modular(backbone, run, examples.texts, options.batch_size,
                                      None if resolved is None else resolved.module, examples.fields,
                                      task if answers else None)
    return resolved


def _group(runs: list[Run]) -> dict[tuple[str, str, str], list[Run]]:
    """Runs that share a frozen backbone and a task's evaluation data are evaluated together."""
    names = [run.name for run in runs]
    if len(set(names)) != len(names):
        raise XlpeftError("two runs share a directory name; the 'run' column needs unique names: rename one")
    groups: dict[tuple[str, str, str], list[Run]] = {}
    for run in runs:
        groups.setdefault((run.backbone_key, run.task_key, run.train.source_data), []).append(run)
    return groups


def _weights(run: Run, backbone: Backbone) -> dict:
    """The backbone a row is labelled with: the weights the run was trained from, as it recorded them (a
    joint/full run is evaluated on its own trained copy of them); what loaded, for runs that recorded none."""
    recorded = run.config.get("backbone") or {}
    if recorded.get("fingerprint"):
        return {"backbone_fingerprint": recorded["fingerprint"], "backbone_source": recorded.get("source", "")}
    return {"backbone_fingerprint": backbone.fingerprint, "backbone_source": backbone.source}


def _language_rows(module: Resolved | None) -> int:
    """A method B language prompt's length (counted in ``max_length`` by runs written before the text rule)."""
    return 0 if module is None else module.module.meta.get("prompt_length", 0)


def _row(run: Run, task: Task, language: str, metrics: dict, module: Resolved | None, identity: EvalIdentity,
         backbone: Backbone, counts: TextCounts) -> dict:
    name, script = task.language_info(language)
    row = {
        "run": run.name, "run_id": run.fingerprint, "language": language, "name": name, "script": script,
        "task": task.name, **metrics, **{col: getattr(run.train, col) for col in RUN_COLUMNS},
        **identity.as_row(), **_weights(run, backbone), "xlpeft_version": __version__, **counts.as_row(),
    }
    if run.configuration:
        row.update(configuration=run.configuration, module_language=None if module is None else module.module.language,
                   module_borrowed=module is not None and module.borrowed,
                   module_distance_kind=None if module is None else module.distance_kind,
                   module_distance=None if module is None else module.distance,
                   module_id=None if module is None else module.module.fingerprint)
    return row


def _previous_results(out_csv: Path, runs: list[Run], identities: dict[str, EvalIdentity],
                      options: EvalOptions) -> pd.DataFrame:
    """The rows already in ``out_csv``: other runs' rows are kept untouched, these runs' rows are reused
    if the run is unchanged (same ``run_id``), the row's identity is the one asked for (split, precision,
    weights, options: identity.py) and, for method B, the language module used is unchanged (same
    ``module_id``); any other row of these runs is dropped and computed again."""
    if not out_csv.exists():
        return pd.DataFrame()
    old = read_rows(out_csv)
    if not set(KEY) <= set(old.columns):
        raise XlpeftError(f"{out_csv} exists but has no {KEY} columns; move it away or choose another --out")
    current = {run.name: run.fingerprint for run in runs}
    records = old.to_dict("records")
    keep = [row["run"] not in current or (current[row["run"]] == row["run_id"] and identities[row["run"]].matches(row))
            for row in records]
    if "module_id" in old.columns:
        unchanged = _module_check(runs, options)
        keep = [k and unchanged(row) for k, (_, row) in zip(keep, old.iterrows())]
    if not all(keep):
        changed = next(row for row, k in zip(records, keep) if not k)
        why = ("retrained" if current[changed["run"]] != changed["run_id"]
               else "; ".join(identities[changed["run"]].differences(changed)) or "language module changed")
        log.info("recomputing %d rows of %s whose result identity changed (e.g. %s %s: %s)", len(keep) - sum(keep),
                 out_csv, changed["run"], changed["language"], why)
    return old[keep].reset_index(drop=True)


def _module_check(runs: list[Run], options: EvalOptions):
    """A predicate: a method B row's language module is still the one evaluation would use: not retrained or
    removed, and a borrowed one still borrowed by the same distance (the target has no module of its own
    since). Each module's fingerprint is read once, however many rows used it."""
    by_name = {run.name: run for run in runs}
    tasks = {name: task_for(run.train) for name, run in by_name.items()}

    @functools.cache
    def current(run_name: str, language: str) -> str | None:
        run = by_name[run_name]
        registry = ModuleRegistry(options.modules_dir or run.train.modules_dir)
        return module_fingerprint(registry.path(run.train.model, language, Configuration(run.configuration).language))

    def unchanged(row: pd.Series) -> bool:
        if row["run"] not in by_name or pd.isna(row.get("module_id")):
            return True
        if bool(row["module_borrowed"]):  # borrowed by another distance, or the target now has its own module
            own = current(row["run"], tasks[row["run"]].module_language(row["language"]))
            if row["module_distance_kind"] != options.borrow or own is not None:
                return False
        return current(row["run"], row["module_language"]) == row["module_id"]

    return unchanged


def _is_rows(done: pd.DataFrame, runs: list[Run], language: str) -> pd.Series:
    if done.empty:
        return pd.Series([], dtype=bool)
    return done["language"].eq(language) & done["run"].isin([run.name for run in runs])


def _all_done(done: pd.DataFrame, runs: list[Run], language: str, samples_of: Path | None = None) -> bool:
    """Every run has its row on ``language``; with ``samples_of`` (the CSV, under ``log_samples``) also the
    row's current samples file."""
    if done.empty or int(_is_rows(done, runs, language).sum()) != len(runs):
        return False
    return samples_of is None or all(samples_current(samples_path(samples_of, row["run"], language), row)
                                     for row in done[_is_rows(done, runs, language)].to_dict("records"))


def _write(out_csv: Path, table: pd.DataFrame) -> None:
    atomic_write(out_csv, lambda tmp: table.to_csv(tmp, index=False, float_format="%.6g"))


TRUNCATION_WARNING = 0.05  # a language losing more than this share of its inputs to the text budget


def truncation_warnings(results: pd.DataFrame, runs: list[Run], languages: list[str]) -> list[str]:
    """What the text budget cut, said where it matters: a language that lost more than 5 % of its inputs,
    and a language on which compared runs cut different numbers of inputs (they read different text)."""
    table = results[results["language"].isin(languages) & results["run"].isin([run.name for run in runs])]
    if "n_truncated" not in table or table["n_truncated"].isna().all():
        return []
    warnings = [f"{row.run}: {row.n_truncated:.0f} of {row.n:.0f} {row.language} inputs cut to max_length "
                f"{row.max_length:.0f} text tokens ({row.n_truncated / row.n:.0%})"
                for row in table.itertuples() if row.n and row.n_truncated / row.n > TRUNCATION_WARNING]
    for language, rows in table.groupby("language", sort=False):
        if rows["n_truncated"].nunique() > 1:
            cut = ", ".join(f"{r.run} {r.n_truncated:.0f}" for r in rows.itertuples())
            warnings.append(f"compared runs read different text on {language}: inputs cut {cut}")
    return warnings


def summary_table(results: pd.DataFrame, runs: list[Run], languages: list[str], metric: str = "accuracy") -> str:
    """A readable table: one row per language; ``metric`` per run (for a single run, all its metric columns)."""
    table = results[results["language"].isin(languages) & results["run"].isin([run.name for run in runs])]
    if table["run"].nunique() == 1:
        columns = [c for c in ("accuracy", "macro_f1", "f1", "exact_match", "precision", "recall") if c in table]
        columns = [c for c in columns if table[c].notna().any()]
        counts = [c for c in ("n", "n_truncated") if c in table]
        view = table.set_index("language")[["name", *columns, *counts]].reindex(languages)
        mean = pd.DataFrame([{"name": "(mean)", **{c: view[c].mean() for c in columns},
                              **{c: view[c].sum() for c in counts}}], index=["all"])
        view = pd.concat([view, mean])
    else:
        view = table.pivot(index="language", columns="run", values=metric).reindex(languages)
        view.loc["(mean)"] = view.mean()
    return view.to_string(float_format=lambda v: f"{v:.3f}")
