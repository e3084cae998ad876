"""The ``xlpeft`` command: train soft prompts, evaluate them on many languages, list languages.

Every user-fixable problem ends with one line ``xlpeft: error: ...`` naming the fix, and exit code 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from xlpeft.config import REGIME_HELP, TrainConfig
from xlpeft.data.languages import (
    NAMED_SET_HELP,
    NAMED_SETS,
    registry,
    resolve_languages,
)
from xlpeft.errors import XlpeftError
from xlpeft.modular.configurations import CONFIGURATIONS
from xlpeft.training.language_config import DEFAULT_LR, LanguageModuleConfig

# the names in xlpeft.tasks.TASKS (written out so that the CLI starts without importing the data readers)
TASK_CHOICES = ("sib200", "nusax", "americasnli", "masakhaner", "xquad", "xnli", "wikiann")

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


def _shots(value: str) -> int | None:
    if value == "all":
        return None
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of examples per class or 'all'") from None


def _data_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", default=None, help="data root holding sib200/ and tasks/<task>/ (for SIB-200 "
                        "the sib200 folder itself also works); default: $XLPEFT_DATA_DIR, else the hub dataset "
                        "Davlan/sib200 (the other tasks are read from local copies)")


def _runtime_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 ...; auto = cuda when available")
    parser.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                        help="bf16 autocast; auto = bf16 on GPU, fp32 on CPU. On CPUs with AVX512-BF16 bf16 trains a "
                             "frozen suffix prompt about 1.6x faster, and accuracies move by about a point, so "
                             "there it is opt-in (docs/benchmarks.md). fp32 products of the frozen model run on "
                             "oneDNN on non-Intel x86 CPUs (2x MKL's speed there); XLPEFT_CPU_MATMUL=mkl|onednn "
                             "overrides")
    parser.add_argument("--no-text-cache", dest="text_cache", action="store_false",
                        help="run the whole sequence every step instead of caching the text's states "
                             "(the cache is on by default where it applies: frozen model, suffix prompt; "
                             "same numbers; for checking, and needed for --frozen-dropout)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def _train_parser(sub) -> None:
    d = TrainConfig()
    p = sub.add_parser("train", formatter_class=_Formatter, help="train a soft prompt (or model) on one language",
                       description="Train a soft prompt (or, method B, a task module) on a task (SIB-200 by default) "
                                   "in one language with a (frozen) language model and write a run directory: config, "
                                   "sampled ids, training log, the prompt in PEFT's format (adapter_config.json, "
                                   "adapter_model.safetensors), metrics. The model's config decides its kind: causal "
                                   "LM (LM-head verbalizer), encoder (masked-LM head at a [MASK], or a linear head on "
                                   "mean-pooled states), encoder-decoder (the decoder scores each label string). "
                                   "Text-to-text tasks (masakhaner, xquad) train on the target string by teacher "
                                   "forcing and are evaluated by greedy generation.",
                       epilog=EPILOG)
    p.add_argument("--model", default=d.model, help="offline model (smollm2-135m, gemma-3-270m, multilingual-e5-small), hub id "
                   "(facebook/xglm-564M, bigscience/bloom-560m, bigscience/mt0-base, FacebookAI/xlm-roberta-base, "
                   "...) or a local model directory")
    p.add_argument("--task", choices=TASK_CHOICES, default=d.task,
                   help="sib200: topic classification, 205 languages; nusax: sentiment, English -> 11 languages of "
                   "Indonesia; americasnli: NLI in 10 languages of the Americas; masakhaner: NER as text-to-text "
                   "('PER: X$$LOC: Y'; encoders tag words), English CoNLL -> 20 African languages; xquad: "
                   "extractive QA as answer generation, 12 languages; online (--source-data hub): xnli, wikiann (docs/tasks.md)")
    p.add_argument("--source", default=d.source, help="training language in the task's codes (SIB-200: FLORES, e.g. "
                   "eng_Latn; nusax/masakhaner: eng; xquad/americasnli: en); default: the task's source")
    p.add_argument("--source-data", choices=["local", "hub"], default=d.source_data,
                   help="where the source data come from: local copies, or the standard hub source where the local "
                   "data have none (xquad: SQuAD v1.1 train; americasnli: English XNLI). Offline, xquad trains on half "
                   "of XQuAD's English articles and evaluates the other half, and americasnli trains on one of its "
                   "languages' dev pairs (--source quy)")
    p.add_argument("--shots", type=_shots, default=d.shots, help="classification: k examples per class after balanced "
                   "undersampling (validation: ceil(k/4) per class); text-to-text tasks: k examples (validation: "
                   "ceil(k/4), at least 8); 'all' = whole train/dev splits")
    p.add_argument("--prompt-length", type=int, default=d.prompt_length, help="L, soft prompt vectors (0 with "
                   "--head linear trains the head alone)")
    p.add_argument("--placement", choices=["suffix", "prefix", "start"], default=d.placement,
                   help="suffix: [text][prompt][EOS] (Philippy et al.; cached on causal LMs); prefix: [prompt][text][EOS] "
                   "(Lester et al.; after [CLS] on encoders); start: before every token, PEFT's layout (differs from "
                   "prefix only on encoders)")
    p.add_argument("--head", choices=["auto", "lm", "linear"], default=d.head,
                   help="lm: the model's LM / masked-LM head with label words (encoder-decoders: label strings scored "
                   "by the decoder); linear: a trainable linear head on mean-pooled encoder states (causal: on the "
                   "prediction position); auto: lm when the model has such a head, else linear (e5)")
    p.add_argument("--reparam", choices=["none", "mlp", "residual"], default=d.reparam,
                   help="MLP reparameterization during training (folded into a plain prompt afterwards)")
    p.add_argument("--reparam-hidden", type=int, default=d.reparam_hidden, help="hidden width h of the MLP")
    p.add_argument("--init", choices=["uniform", "vocab", "text"], default=d.init,
                   help="uniform(-0.5, 0.5) (the paper's); embeddings of random vocabulary tokens (the default: "
                   "docs/backbones.md, 'Defaults and what was tried'); or of --init-text")
    p.add_argument("--init-text", default=d.init_text, help="text whose token embeddings initialise the prompt (--init text)")
    p.add_argument("--regime", choices=list(REGIME_HELP), default=d.regime,
                   help="; ".join(f"{k}: {v}" for k, v in REGIME_HELP.items()))
    p.add_argument("--epochs", type=int, default=d.epochs, help="training epochs; the best epoch on the "
                   "source-language validation set (--select) is kept")
    p.add_argument("--select", choices=["val_loss", "val_accuracy"], default=d.select,
                   help="the epoch kept: lowest validation loss, or highest validation accuracy (ties: lower "
                   "loss; text-to-text tasks always use the loss)")
    p.add_argument("--lr", type=float, default=d.lr, help="AdamW learning rate of the prompt (and of the model in full)")
    p.add_argument("--lr-model", type=float, default=d.lr_model, help="joint/full: learning rate of the model "
                   "(default: same as --lr, the paper's joint setting)")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="sentences per step")
    p.add_argument("--warmup-ratio", type=float, default=d.warmup_ratio, help="linear warm-up share of all steps")
    p.add_argument("--weight-decay", type=float, default=d.weight_decay, help="AdamW weight decay")
    p.add_argument("--max-length", type=int, default=d.max_length, help="text tokens per sequence, the same "
                   "for every prompt length, placement, model and configuration (prompt and special tokens come on "
                   "top); longer texts are cut and the cuts counted in each result row")
    p.add_argument("--label-words", default=d.label_words, help="override verbalizer words, e.g. 'sports= play,"
                   "geography= earth' (each must be one token, except on encoder-decoders, which score strings); "
                   "default: the paper's words for XGLM/BLOOM, space-prefixed where the tokenizer does not mark word "
                   "starts itself (byte-level BPE, Gemma)")
    p.add_argument("--text-prefix", default=d.text_prefix, help="prepended to every text (training and evaluation), "
                   "e.g. 'query: ' as multilingual-e5 expects")
    p.add_argument("--seed", type=int, default=d.seed, help="seeds sampling, prompt init, head init, data order and "
                   "dropout")
    p.add_argument("--frozen-dropout", action="store_true", help="keep dropout on in the frozen model, as the "
                   "reference code did (forces the uncached path)")
    p.add_argument("--configuration", choices=["", *CONFIGURATIONS], default=d.configuration,
                   help="method B (Vykopal et al.): a task adapter (ta) or task prompt (tp), alone or on top of the "
                   "source language's frozen language adapter (la+) or soft language prompt (slp+) from "
                   "--modules-dir; zero-shot trains nothing. Prompts go [language prompt, task prompt, text] "
                   "(--placement prefix). Empty: method A's soft prompt")
    p.add_argument("--modules-dir", default=d.modules_dir, help="language module registry written by 'xlpeft "
                   "language-module train' (la+/slp+ configurations)")
    p.add_argument("--adapter-reduction-factor", type=float, default=d.adapter_reduction_factor,
                   help="task adapter bottleneck: hidden size / this (16: 576 -> 36 on SmolLM2, 768 -> 48 on mT0-base)")
    p.add_argument("--out", required=True, type=Path, help="run directory to write (an interrupted run resumes)")
    _data_arg(p)
    _runtime_args(p)


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
                   "the source) or codes in the task's own scheme, e.g. 'jav,sun' (default all)")
    p.add_argument("--split", choices=["test", "dev", "train"], default="test", help="split to evaluate")
    p.add_argument("--out", type=Path, default=None, help="results CSV (default: RUN_DIR/results_<split>.csv for one "
                   "run, results_<split>.csv in the working directory for several)")
    p.add_argument("--batch-size", type=int, default=32, help="sentences per batch on the uncached path")
    p.add_argument("--no-plot", action="store_true", help="do not draw the per-language accuracy plot "
                   "(written next to the CSV, .png)")
    p.add_argument("--max-memory-gb", type=float, default=None, help="cap on cached text states in memory "
                   "(default: a quarter of available RAM, at most 4)")
    p.add_argument("--modules-dir", default=None, help="method B runs: the language module registry to take each "
                   "target language's module from (default: the one the run was trained with)")
    p.add_argument("--borrow", default="none", help="method B runs: a target language without its own module "
                   "borrows the nearest language's by this URIEL distance (syntactic, geographic, inventory, genetic, "
                   "phonological, featural); none = an error naming the missing module. Rows record the module used")
    p.add_argument("--max-new-tokens", type=int, default=None, help="text-to-text runs: tokens to generate (default: "
                   "what the run's training answers needed, recorded at training; never the evaluated answers)")
    _data_arg(p)
    _runtime_args(p)


def _language_module_parser(sub) -> None:
    d = LanguageModuleConfig()
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
    t.add_argument("--model", default=d.model, help="backbone: offline name, hub id or local directory")
    t.add_argument("--language", required=True, help="FLORES code of the language, e.g. swh_Latn")
    t.add_argument("--kind", choices=["la", "slp"], required=True, help="la: language adapter (seq_bn after every "
                   "block's feed-forward); slp: soft language prompt before the text")
    t.add_argument("--text", default=d.text, help="text source: a folder of DATA/text (udhr, tatoeba, lafand, ...), "
                   "sib200-train (the unlabeled SIB-200 train split), a file, or a hub dataset such as "
                   "wikimedia/wikipedia; auto = the largest local source of the language")
    t.add_argument("--max-lines", type=int, default=d.max_lines, help="use at most this many lines (seeded choice)")
    t.add_argument("--steps", type=int, default=d.steps, help="optimizer steps (the paper: 100k on a GPU)")
    t.add_argument("--batch-size", type=int, default=d.batch_size, help="blocks per step")
    t.add_argument("--block-length", type=int, default=d.block_length, help="tokens per block (span corruption: "
                   "encoder input length; the paper: 256)")
    t.add_argument("--lr", type=float, default=d.lr, help="AdamW learning rate (default: "
                   + ", ".join(f"{k} {v:g}" for k, v in DEFAULT_LR.items()) + ")")
    t.add_argument("--weight-decay", type=float, default=d.weight_decay, help="AdamW weight decay")
    t.add_argument("--warmup-ratio", type=float, default=d.warmup_ratio, help="linear warm-up share of the steps")
    t.add_argument("--prompt-length", type=int, default=d.prompt_length, help="slp: prompt rows (the paper: 50)")
    t.add_argument("--init-text", default=d.init_text, help="slp: text whose embeddings initialise the prompt, "
                   "repeated to fill it (default: 'Generate the output in <language name>:')")
    t.add_argument("--reduction-factor", type=float, default=d.reduction_factor, help="la: hidden size / bottleneck")
    t.add_argument("--noise-density", type=float, default=d.noise_density, help="span corruption: share of noise")
    t.add_argument("--mean-noise-span-length", type=float, default=d.mean_noise_span_length,
                   help="span corruption: mean span length")
    t.add_argument("--validation-lines", type=int, default=d.validation_lines, help="held-out lines (at most a "
                   "tenth of the text) for the validation loss; the best step's weights are kept")
    t.add_argument("--eval-every", type=int, default=d.eval_every, help="steps between validations and checkpoints")
    t.add_argument("--seed", type=int, default=d.seed, help="seeds line order, held-out lines, noise, initial values")
    t.add_argument("--modules-dir", required=True, type=Path, help="registry directory (created if missing)")
    _data_arg(t)
    t.add_argument("--device", default="auto", help="cpu, cuda, ...; auto = cuda when available")
    t.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto", help="bf16 autocast (auto: on GPU)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
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
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _languages_parser(sub) -> None:
    p = sub.add_parser("languages", formatter_class=_Formatter, help="list languages and named sets",
                       description="List the SIB-200 language registry (FLORES code, ISO 639-3, script, name) "
                                   "and the named sets usable with --languages.")
    p.add_argument("--set", default="all", help="a named set or comma list to show")


def _report_parser(sub) -> None:
    p = sub.add_parser("report", formatter_class=_Formatter, help="tables, statistics and plots of a grid's results",
                       description="Write a report of a grid output directory ('xlpeft run'): report.md and a "
                                   "self-contained report.html (figures embedded) with a summary per configuration "
                                   "(a combination of the grid's axes other than seed: mean over languages per seed, "
                                   "then mean and 95% CI over seeds), a per-language table with URIEL distances from "
                                   "the source, correlations of each configuration's scores with each distance "
                                   "(Pearson and Spearman with bootstrap intervals over languages, p Holm-adjusted "
                                   "across the six distances; languages without a distance left out, n reported), "
                                   "gains between configurations that differ in one axis (paired on seed and "
                                   "language, tested over seeds; fewer than 3 seeds: underpowered, no p-value), the "
                                   "papers' claims as findings with effect sizes, intervals and verdicts, and the "
                                   "share of inputs truncated per language when the results record it. Also summary.tex "
                                   "(booktabs), the tables as CSV, and PNG plots: by distance, metric vs distance, "
                                   "configuration x language heatmap, prompt length (when it is an axis), world map.",
                       epilog="examples:\n  xlpeft report runs/quickstart\n"
                              "  xlpeft report runs/quickstart --metric macro_f1 --distance genetic --out paper/")
    p.add_argument("results", type=Path, help="grid output directory holding results.parquet and grid.json")
    p.add_argument("--out", type=Path, default=None, help="report directory (default: RESULTS/report)")
    p.add_argument("--metric", choices=["accuracy", "macro_f1"], default="accuracy", help="score to report")
    p.add_argument("--distance", default="syntactic", help="URIEL distance that orders the languages of "
                   "by_distance.png and that the claim 'freezing helps distant languages' is tested with: "
                   "syntactic, geographic, inventory, genetic, phonological or featural")


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

    fields = set(TrainConfig.__dataclass_fields__)
    config = TrainConfig(**{k: v for k, v in vars(args).items() if k in fields})
    metrics = Trainer(config, args.out, data_dir=args.data_dir).run(progress=not args.quiet)
    scores = "" if metrics.get("val_accuracy") is None else (
        f"validation accuracy {metrics['val_accuracy']:.3f}, macro-F1 {metrics['val_macro_f1']:.3f}, ")
    print(f"best epoch {metrics['best_epoch']}: {config.source} {scores}validation loss {metrics['val_loss']:.4f} "
          f"-> {args.out}")


def cmd_evaluate(args) -> None:
    from xlpeft.evaluation.evaluate import EvalOptions, evaluate, summary_table, truncation_warnings
    from xlpeft.files import ensure_writable
    from xlpeft.runs import load_run
    from xlpeft.tasks import get_task

    _quiet_libraries(args.verbose)

    runs = [load_run(path) for path in args.runs]
    tasks = {run.task for run in runs}
    if len(tasks) > 1:
        raise XlpeftError(f"these runs were trained on different tasks ({', '.join(sorted(tasks))}); evaluate each "
                          "task's runs in their own command")
    task = get_task(tasks.pop(), args.data_dir)
    languages = task.resolve_languages(args.languages or ("quick" if task.name == "sib200" else "all"))
    out = args.out or (args.runs[0] / f"results_{args.split}.csv" if len(runs) == 1 else Path(f"results_{args.split}.csv"))
    ensure_writable(out.parent)
    options = EvalOptions(split=args.split, batch_size=args.batch_size, max_memory_gb=args.max_memory_gb,
                          text_cache=args.text_cache, precision=args.precision, device=args.device,
                          modules_dir=args.modules_dir, borrow=args.borrow, max_new_tokens=args.max_new_tokens)
    results = evaluate(runs, languages, args.data_dir, out, options, progress=not args.quiet)
    metric = task.metric_columns[0]
    print(summary_table(results, runs, languages, metric))
    for warning in truncation_warnings(results, runs, languages):
        print(f"warning: {warning}")
    print(f"-> {out}")
    if not args.no_plot:
        from xlpeft.analysis.plots import accuracy_plot

        plot = out.with_suffix(".png")
        accuracy_plot(results[results["language"].isin(languages)], [run.name for run in runs], plot, metric,
                      baselines=task.name == "sib200")
        print(f"-> {plot}")


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
    from xlpeft.experiments.grid import load_grid

    _quiet_libraries(args.verbose)
    grid = load_grid(args.config)
    out = args.out or Path("runs") / grid.name
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
        states = runner.status(grid, out)
        print(f"{grid.name}: {len(states)} runs x {len(grid.evaluation.languages)} languages ({grid.evaluation.split}) "
              f"-> {out}")
        for state in states:
            mark = "done" if state.evaluated else ("trained" if state.trained else "todo")
            print(f"  {state.spec.run_id}  {mark:<8} " + " ".join(f"{k}={v}" for k, v in state.spec.axes.items()))
        return
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


def cmd_language_module(args) -> None:
    from xlpeft.modular.registry import list_modules

    if args.action == "list":
        table = list_modules(args.modules_dir)
        print(table.to_string(index=False) if len(table) else f"no language modules in {args.modules_dir}")
        return
    from xlpeft.training.language_module import LanguageModuleTrainer

    _quiet_libraries(args.verbose)
    fields = set(LanguageModuleConfig.__dataclass_fields__)
    config = LanguageModuleConfig(**{k: v for k, v in vars(args).items() if k in fields})
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

    for path in write_report(args.results, args.out, metric=args.metric, distance=args.distance):
        print(f"-> {path}")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    try:
        {"run": cmd_run, "train": cmd_train, "evaluate": cmd_evaluate, "language-module": cmd_language_module,
         "languages": cmd_languages, "report": cmd_report}[args.command](args)
    except XlpeftError as exc:
        print(f"xlpeft: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("xlpeft: interrupted; finished work is saved, rerun the same command to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
