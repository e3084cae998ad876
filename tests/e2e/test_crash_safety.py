"""Crash safety, proven: SIGKILL at named moments of the program's own progress, then the same command.

Each command below is killed at a point of xlpeft/faults.py. A kill counts only if the process died by
SIGKILL (exit -9) after writing that point's name to the mark file, and the files it left show it died
where it claims (no checkpoint yet, one epoch checkpointed, no rows yet, one language's rows ...). The
kills follow each other on one output directory, each command resuming what the previous one left and
dying further on; a last run without a crash point must then give exactly what an uninterrupted run
gives: the same store row for row and column for column, nothing lost, duplicated or changed.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pandas as pd
import pytest
import yaml
from forked_cli import ForkedCli

from xlpeft import faults
from xlpeft import runs as rd
from xlpeft.experiments.runner import LOCAL_TABLE, STORE, load_results
from xlpeft.modular.registry import MODULE_JSON

LANGUAGES = ["eng_Latn", "fra_Latn", "deu_Latn"]
MEMORY_GB = "0.004"  # cached text states of ~60 sentences: each language is evaluated in several chunks


@pytest.fixture(scope="module")
def cli(tmp_path_factory) -> ForkedCli:
    return ForkedCli(tmp_path_factory.mktemp("cli") / "commands.log")


def _grid(tmp_path: Path, model: Path) -> Path:
    """Two frozen suffix-prompt runs (text cache), four batches an epoch, two epochs, three languages."""
    spec = {"name": "crash", "train": {"model": str(model), "shots": 2, "epochs": 2, "batch_size": 4, "lr": 0.05,
                                       "max_length": 64, "prompt_length": [2, 3], "seed": 0},
            "evaluate": {"languages": LANGUAGES, "max_memory_gb": float(MEMORY_GB)}}
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.fixture(scope="module")
def reference_grid(tmp_path_factory, cli, tiny_model_dir, sib_dir) -> Path:
    """The grid run once, uninterrupted: the output every interrupted sequence must reproduce."""
    tmp = tmp_path_factory.mktemp("reference")
    assert cli("run", _grid(tmp, tiny_model_dir), "--out", tmp / "out", "--data-dir", sib_dir, "--quiet") == 0, cli.output()
    return tmp / "out"


def _kill(cli: ForkedCli, args: list, point: str, mark: Path) -> None:
    """Run ``args`` with a crash at ``point``; assert it died by SIGKILL there."""
    mark.unlink(missing_ok=True)
    code = cli(*args, crash_at=point, mark=mark)
    assert code == -signal.SIGKILL, f"expected a SIGKILL at {point}, got exit code {code}\n{cli.output()}"
    assert mark.read_text() == point


def _sorted(table: pd.DataFrame, key: list[str]) -> pd.DataFrame:
    return table.sort_values(key).reset_index(drop=True)


def _first_run(out: Path) -> Path:
    """The run trained first (the grid's order)."""
    return out / "runs" / json.loads((out / "grid.json").read_text())["runs"][0]["run_id"]


def _epochs_logged(run: Path) -> int:
    return len((run / rd.LOG).read_text().splitlines()) if (run / rd.LOG).exists() else 0


def test_a_grid_killed_at_six_moments_then_rerun_equals_an_uninterrupted_run(tmp_path, cli, tiny_model_dir, sib_dir,
                                                                             reference_grid):
    out, mark = tmp_path / "out", tmp_path / "mark"
    args = ["run", _grid(tmp_path, tiny_model_dir), "--out", out, "--data-dir", sib_dir, "--quiet"]
    table = out / "eval" / f"{LOCAL_TABLE}.csv"

    _kill(cli, args, faults.TEXT_CACHE_CHUNK, mark)  # the first run's training text, half encoded
    first = _first_run(out)
    assert (first / rd.CONFIG).exists() and not (first / rd.CHECKPOINT).exists() and _epochs_logged(first) == 0

    _kill(cli, args, f"{faults.TRAIN_EPOCH_END}#1", mark)  # between the first run's epochs
    assert (first / rd.CHECKPOINT).exists() and _epochs_logged(first) == 1 and not (first / rd.METRICS).exists()

    _kill(cli, args, f"{faults.TRAIN_BATCH}#2", mark)  # resumed, then inside its second epoch
    assert _epochs_logged(first) == 1 and not (first / rd.METRICS).exists()

    _kill(cli, args, f"{faults.EVALUATE_CHUNK}#2", mark)  # all trained; inside the first language, 2 chunks done
    assert all((run / rd.METRICS).exists() for run in (out / "runs").iterdir()) and not table.exists()

    _kill(cli, args, f"{faults.EVALUATE_LANGUAGE_WRITTEN}#1", mark)  # between the first and second language
    assert list(pd.read_csv(table)["language"]) == [LANGUAGES[0]] * 2

    _kill(cli, args, faults.before_rename(STORE), mark)  # the store written to its temporary file, not renamed
    assert len(pd.read_csv(table)) == 2 * len(LANGUAGES) and not (out / STORE).exists()
    assert list(out.glob(f".{STORE}.*.tmp"))

    assert cli(*args) == 0, cli.output()
    key = ["run_id", "language", "metric"]
    store, reference = load_results(out), load_results(reference_grid)
    assert len(store) == 2 * len(LANGUAGES) * 2 and not store.duplicated(key).any()
    pd.testing.assert_frame_equal(_sorted(store, key), _sorted(reference, key))
    assert not list(out.rglob("*.tmp"))  # the killed write's temporary file is gone too


def _evaluate_args(reference_grid: Path, sib_dir: Path, out: Path) -> list:
    runs = sorted((reference_grid / "runs").iterdir())
    return ["evaluate", *runs, "--languages", ",".join(LANGUAGES), "--data-dir", sib_dir, "--out", out,
            "--max-memory-gb", MEMORY_GB, "--no-plot", "--quiet"]


def test_evaluate_out_killed_inside_and_between_languages_and_while_writing(tmp_path, cli, sib_dir, reference_grid):
    mark, csv = tmp_path / "mark", tmp_path / "results.csv"
    args = _evaluate_args(reference_grid, sib_dir, csv)

    _kill(cli, args, f"{faults.EVALUATE_CHUNK}#2", mark)  # inside the first language
    assert not csv.exists()
    _kill(cli, args, f"{faults.EVALUATE_LANGUAGE_WRITTEN}#1", mark)  # after the first language's rows
    assert list(pd.read_csv(csv)["language"]) == [LANGUAGES[0]] * 2
    _kill(cli, args, faults.before_rename(csv.name), mark)  # the second language's table written, not renamed
    assert list(pd.read_csv(csv)["language"]) == [LANGUAGES[0]] * 2

    assert cli(*args) == 0, cli.output()
    assert cli(*_evaluate_args(reference_grid, sib_dir, tmp_path / "reference.csv")) == 0, cli.output()
    key = ["run", "language"]
    got, expected = pd.read_csv(csv), pd.read_csv(tmp_path / "reference.csv")
    assert len(got) == 2 * len(LANGUAGES) and not got.duplicated(key).any()
    pd.testing.assert_frame_equal(_sorted(got, key), _sorted(expected, key))
    assert not list(tmp_path.glob("*.tmp"))


def _module_files(root: Path) -> dict[str, object]:
    """Every file of a registry: bytes, or parsed JSON lines without their wall-clock ``seconds``."""
    files = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        name = str(path.relative_to(root))
        if path.name == "train_log.jsonl":
            files[name] = [{k: v for k, v in json.loads(line).items() if k != "seconds"}
                           for line in path.read_text().splitlines()]
        else:
            files[name] = path.read_bytes()
    return files


def test_language_module_training_killed_between_and_at_checkpoints(tmp_path, cli, tiny_model_dir, sib_dir):
    mark = tmp_path / "mark"

    def args(registry: Path) -> list:
        return ["language-module", "train", "--model", tiny_model_dir, "--language", "eng_Latn", "--kind", "slp",
                "--text", "sib200-train", "--steps", "6", "--eval-every", "2", "--batch-size", "2", "--block-length",
                "32", "--prompt-length", "2", "--validation-lines", "20", "--lr", "0.01",
                "--modules-dir", registry, "--data-dir", sib_dir.parent, "--quiet"]

    registry = tmp_path / "modules"
    _kill(cli, args(registry), f"{faults.LANGUAGE_MODULE_STEP}#1", mark)  # before any checkpoint
    assert not list(registry.rglob("checkpoint.pt"))
    _kill(cli, args(registry), f"{faults.LANGUAGE_MODULE_CHECKPOINT}#2", mark)  # after step 4's checkpoint
    assert len(list(registry.rglob("checkpoint.pt"))) == 1
    _kill(cli, args(registry), f"{faults.LANGUAGE_MODULE_STEP}#1", mark)  # step 5: between checkpoints
    _kill(cli, args(registry), faults.before_rename(MODULE_JSON), mark)  # finished, module.json not renamed
    assert not list(registry.rglob(MODULE_JSON))

    assert cli(*args(registry)) == 0, cli.output()
    assert cli(*args(tmp_path / "reference")) == 0, cli.output()
    got, expected = _module_files(registry), _module_files(tmp_path / "reference")
    assert MODULE_JSON in {Path(name).name for name in got} and not [n for n in got if n.endswith(".tmp")]
    assert got == expected


def _run_files(run: Path) -> dict[str, object]:
    """Every file of a run directory: bytes, or parsed JSON lines without their wall-clock ``train_seconds``."""
    files = {}
    for path in sorted(p for p in run.rglob("*") if p.is_file()):
        name = str(path.relative_to(run))
        if path.name == rd.LOG:
            files[name] = [{k: v for k, v in json.loads(line).items() if k != "train_seconds"}
                           for line in path.read_text().splitlines()]
        else:
            files[name] = path.read_bytes()
    return files


def test_a_step_budget_run_killed_inside_and_at_its_evaluations(tmp_path, cli, tiny_model_dir, sib_dir):
    """--max-steps 10 --eval-every 4 on 7 batches an epoch: checkpoints at steps 4 and 8, both inside an epoch."""
    mark = tmp_path / "mark"

    def args(out: Path) -> list:
        return ["train", "--model", tiny_model_dir, "--data-dir", sib_dir, "--shots", "4", "--prompt-length", "2",
                "--batch-size", "4", "--lr", "0.05", "--max-steps", "10", "--eval-every", "4", "--out", out, "--quiet"]

    run = tmp_path / "run"
    _kill(cli, args(run), f"{faults.TRAIN_BATCH}#6", mark)  # step 6: between the evaluations at steps 4 and 8
    assert (run / rd.CHECKPOINT).exists() and _epochs_logged(run) == 1
    _kill(cli, args(run), f"{faults.TRAIN_EPOCH_END}#1", mark)  # resumed at step 4, killed after step 8's checkpoint
    assert _epochs_logged(run) == 2 and not (run / rd.METRICS).exists()

    assert cli(*args(run)) == 0, cli.output()
    assert cli(*args(tmp_path / "reference")) == 0, cli.output()
    got, expected = _run_files(run), _run_files(tmp_path / "reference")
    assert [r["step"] for r in got[rd.LOG]] == [4, 8, 10] and rd.CHECKPOINT not in got
    assert got == expected
