"""Run a grid: train what is missing, evaluate what is not evaluated, gather one results store.

Output directory::

    OUT/grid.json              the expanded grid (run ids, configs, evaluation plan)
    OUT/runs/<run_id>/         one run directory per training run (see run_dir.py)
    OUT/eval/<name>.csv        evaluation tables: local.csv (runs evaluated together, sharing text caches)
                               or <run_id>.csv (one run per scheduler job)
    OUT/eval/<name>.samples/   with ``evaluate: {log_samples: true}``: per-example records, <run_id>/<language>.jsonl
    OUT/results.parquet        the store: one row per run x language x metric (the task's metrics), with the
                               run's settings and each row's identity and record (split, precision, backbone
                               fingerprint and source, text budget, truncated/empty inputs, xlpeft version)
    OUT/skipped.csv            the (task, language) pairs the grid leaves out and why (grid.py's Skip): a
                               source without training data, a target without a test set or language module

Robustness comes from the pieces: training resumes from its last epoch checkpoint, evaluation rewrites
its table atomically after each language and resumes, and the store is rebuilt (atomically) from the
evaluation tables, keyed by (run, language), so a killed process restarted with the same command loses
nothing and duplicates nothing. A run counts as evaluated only when its rows carry the identity the
grid's evaluation plan asks for (evaluation/identity.py): changing ``split``, ``precision`` or another
identifying option recomputes exactly those rows, and the store holds only rows of the current plan. Runs are independent, so a scheduler can run them anywhere: with
``executor="slurm"`` every run becomes one task of a submitit job array writing its own table.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from xlpeft import files
from xlpeft import runs as rd
from xlpeft.errors import XlpeftError
from xlpeft.evaluation.identity import ROW_RECORD, EvalIdentity, read_rows
from xlpeft.evaluation.samples import samples_current, samples_path
from xlpeft.experiments.grid import Grid, RunSpec
from xlpeft.experiments.store import GRID, STORE, load_results  # noqa: F401  (load_results re-exported for the CLI)
from xlpeft.tasks import task_for

log = logging.getLogger("xlpeft")
LOCAL_TABLE = "local"
SKIPPED = "skipped.csv"
MODULE_COLUMNS = ("module_language", "module_borrowed", "module_distance_kind", "module_distance")


@dataclass(frozen=True)
class Status:
    spec: RunSpec
    trained: bool
    evaluated: bool


def run_path(out: Path, spec: RunSpec) -> Path:
    return out / "runs" / spec.run_id


def status(grid: Grid, out: Path) -> list[Status]:
    """Which runs are trained and which have a row of the plan's identity for every language of the plan."""
    table = _current_rows(grid, out)
    result = []
    for spec in grid.runs:
        trained = (run_path(out, spec) / rd.METRICS).is_file()
        rows = table[(table["run"] == spec.run_id) & table["language"].isin(grid.evaluation.languages)] if len(table) else table
        evaluated = trained and len(rows) == len(grid.evaluation.languages)
        if evaluated and grid.evaluation.options.get("log_samples"):
            evaluated = all(_samples_written(out, spec, row) for row in rows.to_dict("records"))
        result.append(Status(spec, trained, evaluated))
    return result


def _samples_written(out: Path, spec: RunSpec, row: dict) -> bool:
    """``log_samples``: the row's per-example records lie beside its table (the local one or the run's own)."""
    return any(samples_current(samples_path(out / "eval" / f"{table}.csv", spec.run_id, row["language"]), row)
               for table in (LOCAL_TABLE, spec.run_id))


def _options(grid: Grid):
    from xlpeft.evaluation.evaluate import EvalOptions

    return EvalOptions(split=grid.evaluation.split, **grid.evaluation.options)


def _current_rows(grid: Grid, out: Path) -> pd.DataFrame:
    """The evaluation rows whose identity is the one the grid's plan asks for (a row of another split,
    precision, weights or option is not a result of this plan); one per (run, language)."""
    from xlpeft.evaluation.evaluate import identity_for
    from xlpeft.runtime import resolve_device, resolve_precision

    table = _evaluation_rows(out)
    if not len(table):
        return table
    options = _options(grid)
    precision = resolve_precision(options.precision, resolve_device(options.device))
    identities = {spec.run_id: identity_for(_run_config(out, spec), options, precision) for spec in grid.runs}
    keep = [row["run"] in identities and identities[row["run"]].matches(row) for row in table.to_dict("records")]
    return table[keep].drop_duplicates(["run", "language"], keep="last")


def _run_config(out: Path, spec: RunSpec) -> dict:
    """A run's config.json (what it recorded at training: weights, generation length), or for a run not
    trained here the grid's configuration of it."""
    path = run_path(out, spec) / rd.CONFIG
    return json.loads(path.read_text()) if path.is_file() else {"train": spec.config.to_dict()}


def write_grid(grid: Grid, out: Path, data_dir: str | None = None) -> None:
    """OUT/grid.json and OUT/skipped.csv; ``data_dir`` (else the grid's) is recorded, absolute, so that
    ``xlpeft report`` finds the task's data for its baselines."""
    files.ensure_writable(out)
    recorded = data_dir or grid.data_dir
    files.write_json(out / GRID, {
        "name": grid.name, "axes": grid.axes,
        "data_dir": str(Path(recorded).expanduser().resolve()) if recorded else None,
        "runs": [{"run_id": s.run_id, "axes": s.axes, "train": s.config.to_dict()} for s in grid.runs],
        "evaluate": {"languages": grid.evaluation.languages, "split": grid.evaluation.split,
                     **grid.evaluation.options},
        "skipped": [asdict(skip) for skip in grid.skipped],
    })
    if grid.skipped:
        table = pd.DataFrame([asdict(skip) for skip in grid.skipped])
        files.atomic_write(out / SKIPPED, lambda tmp: table.to_csv(tmp, index=False))
    else:
        (out / SKIPPED).unlink(missing_ok=True)  # an earlier version of the grid's list


def plan_lines(grid: Grid, out: Path) -> list[str]:
    """What ``xlpeft run --dry-run`` prints for one grid, offline: its size, the pairs it leaves out and why,
    and every run with its state."""
    states = status(grid, out)
    lines = [f"{grid.name}{'/' + grid.subdir if grid.subdir else ''}: {len(states)} runs x "
             f"{len(grid.evaluation.languages)} languages ({grid.evaluation.split}: "
             f"{' '.join(grid.evaluation.languages)}) -> {out}"]
    lines += [f"  left out: {skip.describe()}" for skip in grid.skipped]
    for state in states:
        mark = "done" if state.evaluated else ("trained" if state.trained else "todo")
        lines.append(f"  {state.spec.run_id}  {mark:<8} " + " ".join(f"{k}={v}" for k, v in state.spec.axes.items()))
    return lines


def train_language_modules(grid: Grid, data_dir: str | None, progress: bool = True) -> None:
    """Method B: train the grid's language modules that the registry lacks (finished ones are skipped)."""
    from xlpeft.training.language_module import LanguageModuleTrainer

    for i, config in enumerate(grid.language_modules, 1):
        trainer = LanguageModuleTrainer(config, grid.modules_dir, data_dir=data_dir)
        if progress and not trainer.final.is_dir():
            tqdm.write(f"[{i}/{len(grid.language_modules)}] language module {config.kind} {config.language}")
        trainer.run(progress=progress)


def missing_language_modules(grid: Grid) -> list[str]:
    from xlpeft.modular.registry import ModuleRegistry

    registry = ModuleRegistry(grid.modules_dir)
    return [f"{c.kind} {c.language}" for c in grid.language_modules if not registry.exists(c.model, c.language, c.kind)]


def run_local(grid: Grid, out: Path, data_dir: str | None, progress: bool = True) -> pd.DataFrame:
    """Train missing language modules and runs, evaluate all runs of the grid together, rebuild the store."""
    from xlpeft.training.trainer import Trainer

    write_grid(grid, out, data_dir)
    for skip in grid.skipped:
        log.warning("left out: %s", skip.describe())
    train_language_modules(grid, data_dir, progress)
    states = status(grid, out)
    todo = [s.spec for s in states if not s.trained]
    for i, spec in enumerate(todo, 1):
        log.info("training run %d/%d: %s", i, len(todo), spec.run_id)
        if progress:
            tqdm.write(f"[{i}/{len(todo)}] train {spec.run_id} {_describe(spec)}")
        Trainer(spec.config, run_path(out, spec), data_dir=data_dir).run(progress=progress)
    if any(not s.evaluated for s in status(grid, out)):
        evaluate_runs(grid, [s.spec for s in states], out, data_dir, LOCAL_TABLE, progress)
    return gather(grid, out)


def run_one(grid: Grid, run_id: str, out: Path, data_dir: str | None) -> None:
    """One scheduler task: train and evaluate a single run into its own table."""
    from xlpeft.training.trainer import Trainer

    [spec] = [s for s in grid.runs if s.run_id == run_id]
    Trainer(spec.config, run_path(out, spec), data_dir=data_dir).run(progress=False)
    evaluate_runs(grid, [spec], out, data_dir, spec.run_id, progress=False)


def evaluate_runs(grid: Grid, specs: list[RunSpec], out: Path, data_dir: str | None, table: str,
                  progress: bool) -> None:
    from xlpeft.evaluation.evaluate import evaluate

    runs = [rd.load_run(run_path(out, spec)) for spec in specs]
    evaluate(runs, grid.evaluation.languages, data_dir, out / "eval" / f"{table}.csv", _options(grid),
             progress=progress)


def gather(grid: Grid, out: Path) -> pd.DataFrame:
    """Rebuild OUT/results.parquet from the evaluation tables' rows of the current plan: long format, one row
    per metric, each with its row's identity and record columns."""
    table = _current_rows(grid, out)
    ids = {s.run_id: s for s in grid.runs}
    if not len(table):
        return pd.DataFrame()
    modules = [c for c in MODULE_COLUMNS if c in table.columns]  # method B: which language module was used
    metrics = [c for c in task_for(grid.runs[0].config).metric_columns if c != "n"]  # one task per grid
    labels = [c for c in (*EvalIdentity.columns(), *ROW_RECORD, "n", "n_words_cut", "n_unparsed") if c in table.columns]
    long = table.melt(id_vars=["run", "run_id", "language", "name", "script", *modules, *labels], value_vars=metrics,
                      var_name="metric", value_name="value").rename(columns={"run_id": "artifact_id", "run": "run_id"})
    settings = pd.DataFrame([{"run_id": rid, **{f"cfg_{k}": v for k, v in spec.config.to_dict().items()},
                              **{f"axis_{k}": v for k, v in spec.axes.items()}} for rid, spec in ids.items()])
    store = long.merge(settings, on="run_id", how="left")
    store = store.sort_values(["run_id", "language", "metric"]).reset_index(drop=True)
    files.atomic_write(out / STORE, lambda tmp: store.to_parquet(tmp, index=False))
    return store


def _evaluation_rows(out: Path) -> pd.DataFrame:
    """Every evaluation table's rows (a (run, language) may be in several tables: see ``_current_rows``)."""
    frames = []
    for path in sorted((out / "eval").glob("*.csv")):
        frames.append(read_rows(path))
    if not frames:
        return pd.DataFrame(columns=["run", "run_id", "language"])
    return pd.concat(frames, ignore_index=True)


def _describe(spec: RunSpec) -> str:
    return " ".join(f"{k}={v}" for k, v in spec.axes.items())


def submit(grid: Grid, out: Path, data_dir: str | None, cluster: str | None, parameters: dict,
           wait: bool = False) -> list:
    """Submit the missing runs as one job array (SLURM through submitit, or submitit's local executor)."""
    import submitit

    write_grid(grid, out, data_dir)
    missing = missing_language_modules(grid)
    if missing:
        raise XlpeftError(f"the grid's language modules are not all trained ({len(missing)} missing, e.g. {missing[0]}); "
                          "train them first with 'xlpeft run CONFIG --modules-only' (locally or in one job), so that "
                          "array tasks do not train the same module at once")
    todo = [s.spec.run_id for s in status(grid, out) if not s.evaluated]
    if not todo:
        gather(grid, out)
        return []
    executor = submitit.AutoExecutor(folder=out / "submitit", cluster=cluster)
    executor.update_parameters(name=f"xlpeft-{grid.name}", **parameters)
    jobs = executor.map_array(run_one, [grid] * len(todo), todo, [out] * len(todo), [data_dir] * len(todo))
    (out / "submitit").mkdir(parents=True, exist_ok=True)
    files.atomic_write(out / "submitit" / "jobs.json",
                    lambda tmp: tmp.write_text(json.dumps({j.job_id: rid for j, rid in zip(jobs, todo)}, indent=2)))
    if wait:
        for job in jobs:
            job.result()  # re-raises a task's exception with its traceback
        gather(grid, out)
    return jobs
