"""The ``xlpeft`` command: train soft prompts, evaluate them on many languages, list languages.

Every user-fixable problem ends with one line ``xlpeft: error: ...`` naming the fix, and exit code 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import types
import typing
from pathlib import Path

from xlpeft.config import EvalOptions, LanguageModuleConfig, TrainConfig
from xlpeft.data.task_names import TASK_HELP
from xlpeft.data.languages import (
    NAMED_SET_HELP,
    NAMED_SETS,
    registry,
    resolve_languages,
)
from xlpeft.errors import XlpeftError

EPILOG = """examples:
  xlpeft run configs/quickstart.yaml --data-dir ../shared/data   # a whole grid, resumable
  xlpeft train --model smollm2-135m --data-dir ../shared/data --epochs 10 --out runs/spt
  xlpeft evaluate runs/spt --languages quick --data-dir ../shared/data --out runs/spt/test.csv
  xlpeft evaluate runs/* --languages paper52 --out grid.csv   # a grid shares one text cache
  xlpeft languages --set paper52
  xlpeft language-module train --language swh_Latn --kind slp --modules-dir modules   # method B
  xlpeft train --configuration slp+ta --modules-dir modules --placement prefix --lr 1e-3 --out runs/slp_ta
  xlpeft evaluate runs/slp_ta --languages swh_Latn,yor_Latn --borrow syntactic
"""


LANGUAGE_MODULE_EPILOG = """examples:
  xlpeft language-module train --language deu_Latn --kind la --modules-dir modules
  xlpeft language-module train --language yor_Latn --kind slp --text lafand --steps 600 --modules-dir modules
  xlpeft language-module list --modules-dir modules
"""


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults shown for options that take a value. Not for on/off flags, where "--no-text-cache (default:
    True)" would read as if the cache were off by default, nor for empty (None or "") defaults, whose help
    says what happens when the option is left out."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.nargs == 0 or action.default in (None, ""):
            return action.help or ""
        return super()._get_help_string(action)


def add_config_options(parser: argparse.ArgumentParser, config_type: type) -> None:
    """One option per field of ``config_type`` (a dataclass of xlpeft.config), everything taken from the field:
    ``--prompt-length`` for ``prompt_length``, its default, its help (``metadata["help"]``), its type, and its
    choices (the values of its ``Literal``). A bool field is an on/off flag: ``--frozen-dropout`` turns an off
    default on, ``--no-text-cache`` an on default off."""
    hints = typing.get_type_hints(config_type)
    for f in dataclasses.fields(config_type):
        name = f.name.replace("_", "-")
        if f.metadata.get("cli") is False:
            continue
        if hints[f.name] is bool:
            parser.add_argument(f"--no-{name}" if f.default else f"--{name}", dest=f.name, default=f.default,
                                action="store_false" if f.default else "store_true", help=f.metadata["help"])
        else:
            parser.add_argument(f"--{name}", dest=f.name, help=f.metadata["help"], **_value_settings(f, hints[f.name]))


def _value_settings(f: dataclasses.Field, hint: typing.Any) -> dict:
    """argparse's settings for a field that takes a value: required or its default, choices or a type."""
    meta = f.metadata
    settings: dict = {"required": True} if meta.get("required") else {"default": f.default}
    if typing.get_origin(hint) in (typing.Union, types.UnionType):  # int | None: None is the default or meta["none"]
        [hint] = [arg for arg in typing.get_args(hint) if arg is not type(None)]
    if typing.get_origin(hint) is typing.Literal:
        settings["choices"] = list(typing.get_args(hint))
    elif "choices" in meta:  # a list as it is (--task's also takes task files), else listed
        settings["choices"] = meta["choices"] if isinstance(meta["choices"], list) else list(meta["choices"])
    if "none" in meta:
        settings["type"] = _or_none(hint, meta["none"])
    elif hint in (int, float):
        settings["type"] = hint
    return settings


def _or_none(parse: type, word: str):
    """A value of type ``parse``, or the word that means None (``--shots all``)."""
    def convert(value: str):
        if value == word:
            return None
        try:
            return parse(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{value!r} is not a number or {word!r}") from None
    return convert


def config_from(config_type: type, args: argparse.Namespace):
    """The config the options of :func:`add_config_options` filled in."""
    return config_type(**{f.name: getattr(args, f.name) for f in dataclasses.fields(config_type) if f.metadata.get("cli")
                          is not False})


def _data_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", default=None, help="data root holding sib200/ and tasks/<task>/ (for SIB-200 "
                        "the sib200 folder itself also works); default: $XLPEFT_DATA_DIR, else the hub dataset "
                        "Davlan/sib200 (the other tasks are read from local copies)")


def _quiet_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def _train_parser(sub) -> None:
    p = sub.add_parser("train", formatter_class=_Formatter, help="train a soft prompt (or model) on one language",
                       description="Train a soft prompt (or, method B, a task module) on a task (SIB-200 by default) "
                                   "in one language (or several: --source eng_Latn,fra_Latn) with a (frozen) language "
                                   "model and write a run directory: config, "
                                   "sampled ids, training log, the prompt in PEFT's format (adapter_config.json, "
                                   "adapter_model.safetensors), metrics. The model's config decides its kind: causal "
                                   "LM (LM-head verbalizer), encoder (masked-LM head at a [MASK], or a linear head on "
                                   "mean-pooled states), encoder-decoder (the decoder scores each label string). "
                                   "Text-to-text tasks (masakhaner, xquad) train on the target string by teacher "
                                   "forcing and are evaluated by greedy generation.",
                       epilog=EPILOG)
    add_config_options(p, TrainConfig)
    p.add_argument("--out", required=True, type=Path, help="run directory to write (an interrupted run resumes)")
    _data_arg(p)
    _quiet_arg(p)


def _evaluate_parser(sub) -> None:
    p = sub.add_parser("evaluate", formatter_class=_Formatter, help="evaluate runs on many languages",
                       description="Evaluate one or more run directories on their task's test sets (SIB-200 by "
                                   "default). Runs that share a frozen backbone and task are evaluated together: each "
                                   "language's text is encoded once and every suffix prompt runs only its L positions "
                                   "against it. One CSV row per (run, language); rerunning resumes and reuses finished rows.",
                       epilog=EPILOG)
    p.add_argument("runs", nargs="+", type=Path, help="run directories written by 'xlpeft train', or PEFT "
                   "prompt-tuning adapter directories (adapter_config.json names the base model)")
    p.add_argument("--languages", default=None, help="SIB-200: named set (" + ", ".join(NAMED_SETS) + ") or comma list "
                   "of codes, e.g. 'paper52' or 'eng_Latn,yor_Latn' (default quick); other tasks: all, targets (all but "
                   "the source, and but every language of a run trained on several) or codes in the task's own scheme, "
                   "e.g. 'jav,sun' (default all)")
    p.add_argument("--out", type=Path, default=None, help="results CSV (default: RUN_DIR/results_<split>.csv for one "
                   "run, results_<split>.csv in the working directory for several)")
    add_config_options(p, EvalOptions)
    p.add_argument("--no-plot", action="store_true", help="do not draw the per-language accuracy plot "
                   "(written next to the CSV, .png)")
    _data_arg(p)
    _quiet_arg(p)


def _language_module_parser(sub) -> None:
    p = sub.add_parser("language-module", formatter_class=_Formatter,
                       help="method B: train and list language modules (adapters, soft language prompts)",
                       description="Language modules represent a language on a frozen backbone (Vykopal et al. 2025): "
                                   "a language adapter (la) or a soft language prompt (slp) trained on raw text with "
                                   "the backbone's language-modelling objective (span corruption on mT5/mT0, causal LM "
                                   "on decoder-only models, masked LM on encoders). They are stored in a registry, one "
                                   "per (backbone, language, kind), and reused by every task run.",
                       epilog=LANGUAGE_MODULE_EPILOG)
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    t = actions.add_parser("train", formatter_class=_Formatter, help="train one language module into the registry")
    add_config_options(t, LanguageModuleConfig)
    t.add_argument("--modules-dir", required=True, type=Path, help="registry directory (created if missing)")
    _data_arg(t)
    _quiet_arg(t)
    ls = actions.add_parser("list", formatter_class=_Formatter, help="list the modules of a registry")
    ls.add_argument("--modules-dir", required=True, type=Path, help="registry directory")


def _run_parser(sub) -> None:
    p = sub.add_parser("run", formatter_class=_Formatter, help="train and evaluate a whole grid from a YAML config",
                       description="Expand a YAML grid (list values are axes), train the runs not yet trained, "
                                   "evaluate the runs not yet evaluated, and write OUT/results.parquet (one row per "
                                   "run x language x metric, with each run's settings). A run is identified by a "
                                   "hash of its resolved config, so rerunning the same command after an interruption "
                                   "(even SIGKILL) skips finished work and duplicates nothing.",
                       epilog="see configs/quickstart.yaml for the format")
    p.add_argument("config", type=Path, help="grid YAML file")
    p.add_argument("--out", type=Path, default=None, help="output directory (default: runs/<grid name>)")
    p.add_argument("--dry-run", action="store_true", help="list the runs and their state; train nothing")
    p.add_argument("--modules-only", action="store_true", help="method B grids: train the language_modules the "
                   "registry lacks, then stop (before submitting task runs to a scheduler)")
    p.add_argument("--executor", choices=["local", "slurm", "submitit-local"], default="local",
                   help="local: this process, sharing text caches across runs; slurm: one submitit job array, "
                   "one task per run (results gathered in the same store); submitit-local: the same through "
                   "submitit's local executor (for testing a setup)")
    p.add_argument("--slurm", action="append", default=[], metavar="KEY=VALUE",
                   help="submitit parameter for the job array, repeatable, e.g. --slurm slurm_partition=gpu "
                   "--slurm gpus_per_node=1 --slurm timeout_min=120")
    p.add_argument("--wait", action="store_true", help="with a scheduler: wait for the jobs and gather the results")
    _data_arg(p)
    _quiet_arg(p)


def _languages_parser(sub) -> None:
    p = sub.add_parser("languages", formatter_class=_Formatter, help="list languages and named sets",
                       description="List the SIB-200 language registry (FLORES code, ISO 639-3, script, name) "
                                   "and the named sets usable with --languages.")
    p.add_argument("--set", default="all", help="a named set or comma list to show")


def _report_parser(sub) -> None:
    p = sub.add_parser("report", formatter_class=_Formatter, help="tables, statistics and plots of a grid's results",
                       description="Write a report of a grid output directory ('xlpeft run'), for any task: report.md and a "
                                   "self-contained report.html (figures embedded) with a summary per configuration "
                                   "(a combination of the grid's axes other than seed: mean over languages per seed, "
                                   "then mean and 95% CI over seeds), a per-language table with the languages' names "
                                   "and URIEL distances from the source (through the task's ISO 639-3 codes; from a "
                                   "set of source languages, the nearest), the majority-class and chance baselines "
                                   "computed from the task's data (classification tasks; text tasks have none), "
                                   "correlations of each configuration's scores with each distance "
                                   "(Pearson and Spearman with bootstrap intervals over languages, p Holm-adjusted "
                                   "across the six distances; languages without a distance left out, n reported), "
                                   "gains between configurations that differ in one axis (paired on seed and "
                                   "language, tested over seeds; fewer than 3 seeds: underpowered, no p-value), the "
                                   "papers' claims as findings with effect sizes, intervals and verdicts, and the "
                                   "share of inputs truncated per language when the results record it. Also summary.tex "
                                   "(booktabs), the tables as CSV, and PNG plots: by distance, metric vs distance, "
                                   "configuration x language heatmap, prompt length (when it is an axis), world map.",
                       epilog="examples:\n  xlpeft report runs/quickstart\n"
                              "  xlpeft report runs/quickstart --metric macro_f1 --distance genetic --out paper/\n"
                              "  xlpeft report runs/nusax --data-dir ../shared/data   # NusaX: macro-F1, its baselines")
    p.add_argument("results", type=Path, help="grid output directory holding results.parquet and grid.json")
    p.add_argument("--out", type=Path, default=None, help="report directory (default: RESULTS/report)")
    p.add_argument("--metric", default=None, help="score to report: one of the task's metrics (default: its first, its "
                   "community's metric): accuracy or macro_f1 for SIB-200, AmericasNLI and XNLI, macro_f1 (default) or "
                   "accuracy for NusaX, entity f1, precision or recall for MasakhaNER and WikiANN, SQuAD f1 or "
                   "exact_match for XQuAD")
    p.add_argument("--data-dir", default=None, help="data root holding the task's data, read for the baselines "
                   "(default: the data_dir the grid recorded, else XLPEFT_DATA_DIR); without the data the report is "
                   "still written, saying that the baselines were not computed")
    p.add_argument("--distance", default="syntactic", help="URIEL distance that orders the languages of "
                   "by_distance.png and that the claim 'freezing helps distant languages' is tested with: "
                   "syntactic, geographic, inventory, genetic, phonological or featural")


TASKS_EPILOG = """A task definition is one YAML file. For a folder DIR/<language>/{train,dev,test}.tsv (dev optional; a
target may have test.tsv only) whose files have columns 'sentence' and 'polarity', DIR/my_sentiment.yaml is:

  name: my_sentiment
  kind: classification                # or text (a target column), or multiple_choice (below)
  data:
    files: "{language}/{split}.tsv"   # relative to this file; .csv .tsv .jsonl .parquet (or format:)
  input: sentence                     # a column, or a template over columns: "{premise}\\n{hypothesis}"
  label: polarity
  metric: macro_f1                    # accuracy | macro_f1; text tasks: squad | entity_f1
  source: eng                         # the default training language, in the folders' codes

Optional keys: labels (a list, or label: word), label_values (the data's values renamed), splits (train/dev/test
-> the data's split names), languages (codes, or code: {in_data, iso, flores}), id (an id column), help,
paper_templates, unparsed_label; data.hub + data.config: "{language}" (or data.language_column) for a hub
dataset. Multiple choice: kind: multiple_choice, choices: [ending1, ending2] (columns or templates), label: the
gold column (0-based, or label_values: {1: 0, 2: 1}); value_maps, source_data and source_from_test as in
xlpeft tasks show xcopa / belebele. Languages, labels and the dev split are found in the data when not given;
ISO 639-1/3 and FLORES codes are recognised for URIEL and method B's language modules. Reference: docs/tasks.md;
walk-through: docs/your_task.md.

  xlpeft train --task DIR/my_sentiment.yaml --out runs/mine        # method A
  xlpeft evaluate runs/mine                                        # every language of the task
  xlpeft run my_grid.yaml                                          # task: my_sentiment.yaml in its train section
  xlpeft tasks show nusax                                          # a built-in definition to copy
"""


def _tasks_parser(sub) -> None:
    p = sub.add_parser("tasks", formatter_class=_Formatter, help="list the tasks; show or check a task definition",
                       description="List the built-in tasks (name, kind, languages, metric, where each is defined), "
                                   "or print a task definition: a built-in one to copy, or your own file, checked "
                                   "and with the languages and codes it resolves to.",
                       epilog=TASKS_EPILOG)
    actions = p.add_subparsers(dest="action", required=False, metavar="ACTION")
    show = actions.add_parser("show", formatter_class=_Formatter, help="print a definition (a built-in name or a file)")
    show.add_argument("task", help="a built-in task defined in YAML (xlpeft tasks lists them) or a task file")
    _data_arg(show)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xlpeft", formatter_class=_Formatter,
        description="Cross-lingual transfer with soft prompts on frozen multilingual LMs: train on one language, "
                    "evaluate on up to 205 (SIB-200).", epilog=EPILOG)
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _run_parser(sub)
    _train_parser(sub)
    _evaluate_parser(sub)
    _language_module_parser(sub)
    _languages_parser(sub)
    _report_parser(sub)
    _tasks_parser(sub)
    return parser


def _quiet_libraries(verbose: bool) -> None:
    """transformers' weight-loading bars and notices are noise next to xlpeft's own progress."""
    from transformers.utils import logging as hf_logging

    if not verbose:
        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()


def cmd_train(args) -> None:
    from xlpeft.training.trainer import Trainer

    _quiet_libraries(args.verbose)

    config = config_from(TrainConfig, args)
    metrics = Trainer(config, args.out, data_dir=args.data_dir).run(progress=not args.quiet)
    scores = "" if metrics.get("val_accuracy") is None else (
        f"validation accuracy {metrics['val_accuracy']:.3f}, macro-F1 {metrics['val_macro_f1']:.3f}, ")
    best = f"step {metrics['best_step']}" if "best_step" in metrics else f"epoch {metrics['best_epoch']}"
    print(f"best {best}: {config.source} {scores}validation loss {metrics['val_loss']:.4f} -> {args.out}")


def cmd_evaluate(args) -> None:
    from xlpeft.evaluation.evaluate import evaluate, summary_table, truncation_warnings
    from xlpeft.files import ensure_writable
    from xlpeft.runs import load_run
    from xlpeft.tasks import task_for
    from xlpeft.tasks.sources import evaluation_languages

    _quiet_libraries(args.verbose)

    runs = [load_run(path) for path in args.runs]
    if len({run.task_key for run in runs}) > 1:
        raise XlpeftError(f"these runs were trained on different tasks ({', '.join(sorted({r.task for r in runs}))}, or "
                          "different definitions of one); evaluate each task's runs in their own command")
    task = task_for(runs[0].train, args.data_dir)
    languages = evaluation_languages(task, args.languages or ("quick" if task.name == "sib200" else "all"),
                                     [run.train.source for run in runs])
    out = args.out or (args.runs[0] / f"results_{args.split}.csv" if len(runs) == 1 else Path(f"results_{args.split}.csv"))
    ensure_writable(out.parent)
    results = evaluate(runs, languages, args.data_dir, out, config_from(EvalOptions, args), progress=not args.quiet)
    metric = task.metric_columns[0]
    print(summary_table(results, runs, languages, metric))
    for warning in truncation_warnings(results, runs, languages):
        print(f"warning: {warning}")
    print(f"-> {out}")
    if args.log_samples:
        from xlpeft.evaluation.samples import samples_dir

        print(f"-> {samples_dir(out)} (per-example records, RUN/LANGUAGE.jsonl)")
    if not args.no_plot:
        from xlpeft.analysis.facts import baselines, language_names
        from xlpeft.analysis.plots import accuracy_plot

        plot = out.with_suffix(".png")
        lines = baselines(task, languages, args.split, metric, runs[0].train.source_data)  # none for text tasks
        accuracy_plot(results[results["language"].isin(languages)], [run.name for run in runs], plot, metric,
                      baselines=lines.table, names=language_names(task, languages))
        print(f"-> {plot}" + (f" ({lines.note})" if lines.note and task.kind == "classification" else ""))


def _slurm_parameters(items: list[str]) -> dict:
    params = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise XlpeftError(f"bad --slurm {item!r}: write KEY=VALUE, e.g. slurm_partition=gpu")
        params[key] = int(value) if value.isdigit() else value
    return params


def cmd_run(args) -> None:
    from xlpeft.experiments import runner
    from xlpeft.experiments.grid import load_grids

    _quiet_libraries(args.verbose)
    grids = load_grids(args.config)  # one, or one per task sharing the language modules
    grid = grids[0]
    data_dir = args.data_dir or grid.data_dir
    if args.modules_only:
        runner.train_language_modules(grid, data_dir, progress=not args.quiet)
        print(f"{len(grid.language_modules)} language modules in {grid.modules_dir}")
        return
    if args.dry_run:
        missing = runner.missing_language_modules(grid)
        if grid.language_modules:
            print(f"language modules: {len(grid.language_modules) - len(missing)}/{len(grid.language_modules)} "
                  f"trained in {grid.modules_dir}")
        for each in grids:
            print("\n".join(runner.plan_lines(each, (args.out or Path("runs") / each.name) / each.subdir)))
        return
    for each in grids:
        _run_grid(args, runner, each, (args.out or Path("runs") / each.name) / each.subdir, data_dir)


def _run_grid(args, runner, grid, out: Path, data_dir: str | None) -> None:
    if args.executor == "local":
        store = runner.run_local(grid, out, data_dir, progress=not args.quiet)
    else:
        cluster = "local" if args.executor == "submitit-local" else "slurm"
        jobs = runner.submit(grid, out, data_dir, cluster, _slurm_parameters(args.slurm), wait=args.wait)
        print(f"submitted {len(jobs)} task(s); rerun with --wait, or 'xlpeft run' locally later, to gather")
        if not args.wait:
            return
        store = runner.load_results(out)
    print(f"{store['run_id'].nunique() if len(store) else 0} runs, {len(store)} result rows -> {out / runner.STORE}")
    if grid.skipped:
        print(f"{len(grid.skipped)} pairs left out, with their reasons -> {out / runner.SKIPPED}")


def cmd_language_module(args) -> None:
    from xlpeft.modular.registry import list_modules

    if args.action == "list":
        table = list_modules(args.modules_dir)
        print(table.to_string(index=False) if len(table) else f"no language modules in {args.modules_dir}")
        return
    from xlpeft.training.language_module import LanguageModuleTrainer

    _quiet_libraries(args.verbose)
    config = config_from(LanguageModuleConfig, args)
    trainer = LanguageModuleTrainer(config, args.modules_dir, data_dir=args.data_dir)
    meta = trainer.run(progress=not args.quiet)
    print(f"{config.kind} {config.language}: {meta['tokens_seen']:,} tokens seen ({meta['text']['source']}), validation "
          f"loss {meta['val_loss_initial']:.3f} -> {meta['val_loss_best']:.3f} (step {meta['best_step']}) -> "
          f"{trainer.final}")


def cmd_languages(args) -> None:
    codes = resolve_languages(args.set)
    reg = registry()
    print(f"{'code':<10} {'iso':<4} {'script':<6} name")
    for code in codes:
        lang = reg[code]
        print(f"{code:<10} {lang.iso639_3:<4} {lang.script:<6} {lang.name}")
    print(f"\n{len(codes)} languages. Named sets:")
    for name, members in NAMED_SETS.items():
        print(f"  {name:<8} {len(members):>3}  {NAMED_SET_HELP[name]}")


def cmd_report(args) -> None:
    from xlpeft.analysis.report import write_report

    for path in write_report(args.results, args.out, metric=args.metric, distance=args.distance, data_dir=args.data_dir):
        print(f"-> {path}")


def cmd_tasks(args) -> None:
    from xlpeft.tasks import BUILTIN_DEFINITIONS, TASKS, task_for
    from xlpeft.tasks.defined import DefinedTask

    if args.action == "show":
        from xlpeft.data.task_names import is_task_file

        if is_task_file(args.task):
            task = task_for(types.SimpleNamespace(task=args.task, task_definition=None), args.data_dir)
            print(Path(args.task).read_text(encoding="utf-8").rstrip())
            print(f"# checked: {task.name}, {len(task.languages)} languages; code -> ISO 639-3 (URIEL), module code:")
            for code in task.languages:
                print(f"#   {code}: {task.iso_code(code) or 'none: give languages.' + code + '.iso'}, "
                      f"{task.module_language(code)}")
            return
        if args.task not in BUILTIN_DEFINITIONS:
            where = TASKS[args.task].__module__ if args.task in TASKS else None
            raise XlpeftError(f"{args.task} is {'written in Python (' + where + ')' if where else 'no task'}, not a "
                              f"definition; definitions: {', '.join(BUILTIN_DEFINITIONS)}, or a task file")
        print(BUILTIN_DEFINITIONS[args.task].read_text(encoding="utf-8").rstrip())
        return
    print(f"{'task':<12} {'kind':<15} {'languages':<10} {'metric':<9} {'defined in':<34} help")
    for name, cls in TASKS.items():
        task = cls()
        languages = str(len(task.languages)) if task.languages else "any (hub)"
        where = (f"definitions/{name}.yaml" if issubclass(cls, DefinedTask) else
                 f"{cls.__module__.removeprefix('xlpeft.tasks.')}.py:{cls.__name__}")
        print(f"{name:<12} {task.kind:<15} {languages:<10} {task.metric_columns[0]:<9} {where:<34} "
              f"{TASK_HELP[name]}")
    print("\nxlpeft tasks show NAME prints a definition; xlpeft tasks --help teaches the format (docs/your_task.md)")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    try:
        {"run": cmd_run, "train": cmd_train, "evaluate": cmd_evaluate, "language-module": cmd_language_module,
         "languages": cmd_languages, "report": cmd_report, "tasks": cmd_tasks}[args.command](args)
    except XlpeftError as exc:
        print(f"xlpeft: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("xlpeft: interrupted; finished work is saved, rerun the same command to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
