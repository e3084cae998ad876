"""Grids: expansion and run identity, a local run into the results store, submitit (resume after SIGKILL:
test_crash_safety.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from xlpeft.config import TrainConfig
from xlpeft.errors import XlpeftError
from xlpeft.experiments import runner
from xlpeft.experiments.grid import expand, load_grid, run_id


def _spec(model, **train):
    base = {"model": str(model), "shots": 4, "epochs": 2, "batch_size": 4, "lr": 0.05,
            "prompt_length": [2, 3], "seed": [0, 1]}
    return {"name": "t", "train": {**base, **train}, "evaluate": {"languages": ["eng_Latn", "fra_Latn"]}}


def test_expansion_hashing_and_overrides(tmp_path):
    grid = expand({"train": {"regime": ["prompt", "full"], "prompt_length": [4, 8], "seed": [0, 1], "epochs": 3},
                   "overrides": [{"when": {"regime": "full"}, "set": {"lr": 1e-4}}],
                   "evaluate": {"languages": "quick"}})
    # full has no prompt: its two prompt lengths are one run
    assert len(grid.runs) == 2 * 2 + 2 and grid.axes == ["regime", "prompt_length", "seed"]
    full = [s for s in grid.runs if s.config.regime == "full"]
    assert {s.config.lr for s in full} == {1e-4} and {s.config.lr for s in grid.runs if s not in full} == {5e-3}
    assert len({s.run_id for s in grid.runs}) == len(grid.runs)
    # identity: defaults spelled out or not, same id; any setting changed, new id; device is not identity
    assert run_id(TrainConfig(epochs=3)) == run_id(TrainConfig(epochs=3, lr=5e-3))
    assert run_id(TrainConfig(epochs=3)) != run_id(TrainConfig(epochs=4))
    assert run_id(TrainConfig(device="cpu")) == run_id(TrainConfig(device="cuda"))
    assert len(grid.evaluation.languages) == 10


@pytest.mark.parametrize("spec, message", [
    ({"train": {"learning_rate": 1}}, "unknown train settings"),
    ({"train": {}, "evaluate": {"languages": "klingon"}}, "klingon"),
    ({"train": {}, "extra": 1}, "unknown top-level keys"),
    ({"train": {}, "overrides": [{"when": {"regime": "joint"}}]}, "exactly 'when"),
    ({"train": {"source": "quick"}}, "the source must be one language"),
])
def test_bad_grids_say_what_to_fix(spec, message):
    with pytest.raises(XlpeftError, match=message):
        expand(spec)


def test_bad_yaml_is_a_clear_error(tmp_path):
    path = tmp_path / "g.yaml"
    path.write_text("train: [unclosed")
    with pytest.raises(XlpeftError, match="not valid YAML"):
        load_grid(path)


def _write(tmp_path, spec) -> Path:
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _cli(*args, env_extra=None) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env_extra or {})}
    return subprocess.Popen([sys.executable, "-m", "xlpeft.cli", *map(str, args)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny_model_dir, sib_dir):
    """An uninterrupted run of the grid: the numbers every other way of running it must reproduce."""
    tmp = tmp_path_factory.mktemp("ref")
    config = _write(tmp, _spec(tiny_model_dir))
    proc = _cli("run", config, "--out", tmp / "out", "--data-dir", sib_dir, "--quiet")
    assert proc.wait() == 0, proc.stderr.read().decode()
    return runner.load_results(tmp / "out")


def _values(store: pd.DataFrame) -> pd.Series:
    return store.set_index(["run_id", "language", "metric"])["value"].sort_index()


def test_local_run_fills_the_store_and_a_rerun_does_nothing(tmp_path, tiny_model_dir, sib_dir, reference):
    assert len(reference) == 4 * 2 * 2  # runs x languages x metrics
    assert {"cfg_prompt_length", "cfg_seed", "axis_seed", "metric", "value", "language"} <= set(reference.columns)
    assert not reference.duplicated(["run_id", "language", "metric"]).any()
    # same config + seed in a fresh directory: bit-identical metrics
    config = _write(tmp_path, _spec(tiny_model_dir))
    proc = _cli("run", config, "--out", tmp_path / "out", "--data-dir", sib_dir, "--quiet")
    assert proc.wait() == 0
    pd.testing.assert_series_equal(_values(runner.load_results(tmp_path / "out")), _values(reference))
    logs = {p: p.stat().st_mtime_ns for p in (tmp_path / "out" / "runs").glob("*/train_log.jsonl")}
    assert _cli("run", config, "--out", tmp_path / "out", "--data-dir", sib_dir, "--quiet").wait() == 0
    assert {p: p.stat().st_mtime_ns for p in logs} == logs  # nothing retrained


def test_dry_run_lists_states(tmp_path, tiny_model_dir, sib_dir, capsys):
    from xlpeft.cli import main

    config = _write(tmp_path, _spec(tiny_model_dir))
    assert main(["run", str(config), "--out", str(tmp_path / "out"), "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert "4 runs x 2 languages" in printed and printed.count("todo") == 4
    assert not (tmp_path / "out" / "runs").exists()


def test_submitit_job_array_gathers_into_the_same_store(tmp_path, tiny_model_dir, sib_dir, reference):
    config = _write(tmp_path, _spec(tiny_model_dir))
    grid = load_grid(config)
    jobs = runner.submit(grid, tmp_path / "out", str(sib_dir), cluster="local",
                         parameters={"timeout_min": 10}, wait=True)
    assert len(jobs) == 4
    assert sorted(p.name for p in (tmp_path / "out" / "eval").glob("*.csv")) == sorted(f"{s.run_id}.csv" for s in grid.runs)
    pd.testing.assert_series_equal(_values(runner.load_results(tmp_path / "out")), _values(reference))


def test_a_rerun_after_changing_split_or_precision_recomputes(tmp_path, tiny_model_dir, sib_dir):
    """Issue 18: after a finished grid, 'split: dev, precision: bf16' printed "nothing to do" and labelled the
    fp32 test values split=dev."""
    spec = _spec(tiny_model_dir, prompt_length=2, seed=0, epochs=1)
    spec["evaluate"]["precision"] = "fp32"
    out = tmp_path / "out"
    store = runner.run_local(load_grid(_write(tmp_path, spec)), out, str(sib_dir), progress=False)
    assert set(store["split"]) == {"test"} and set(store["eval_precision"]) == {"fp32"} and set(store["n"]) == {204}
    assert {"backbone_fingerprint", "backbone_source", "max_length", "n_truncated", "n_empty",
            "xlpeft_version"} <= set(store.columns)
    spec["evaluate"].update(split="dev", precision="bf16")
    grid = load_grid(_write(tmp_path, spec))
    assert not any(s.evaluated for s in runner.status(grid, out))
    store = runner.run_local(grid, out, str(sib_dir), progress=False)
    assert set(store["split"]) == {"dev"} and set(store["eval_precision"]) == {"bf16"} and set(store["n"]) == {99}
    assert all(s.evaluated for s in runner.status(grid, out))


def test_a_grid_logs_samples_when_asked_even_after_it_was_evaluated_without(tmp_path, tiny_model_dir, sib_dir):
    """``evaluate: {log_samples: true}`` is EvalOptions' ``--log-samples``: a finished grid is not finished until
    every row has its records, and the store's numbers do not change."""
    from xlpeft.evaluation.samples import read_samples, samples_path

    spec = _spec(tiny_model_dir, prompt_length=2, seed=0, epochs=1)
    out = tmp_path / "out"
    store = runner.run_local(load_grid(_write(tmp_path, spec)), out, str(sib_dir), progress=False)
    spec["evaluate"]["log_samples"] = True
    grid = load_grid(_write(tmp_path, spec))
    assert grid.evaluation.options == {"log_samples": True}
    assert not any(s.evaluated for s in runner.status(grid, out))
    logged = runner.run_local(grid, out, str(sib_dir), progress=False)
    assert all(s.evaluated for s in runner.status(grid, out))
    pd.testing.assert_series_equal(_values(logged), _values(store))
    [run] = grid.runs
    for language in ("eng_Latn", "fra_Latn"):
        records = read_samples(samples_path(out / "eval" / f"{runner.LOCAL_TABLE}.csv", run.run_id, language))
        accuracy = logged.set_index(["language", "metric"]).loc[(language, "accuracy"), "value"]
        assert len(records) == 204 and sum(r["accuracy"] for r in records) / 204 == pytest.approx(accuracy, abs=1e-6)


def test_gather_carries_the_count_of_unparsed_answers(tmp_path, tiny_model_dir, sib_dir):
    """Generated NLI answers that name no label are counted per row (n_unparsed); the grid's store keeps that count
    next to the metric it qualifies (here written into a finished evaluation table, as a generate run writes it)."""
    config = _write(tmp_path, {**_spec(tiny_model_dir, prompt_length=2, seed=0), "evaluate": {"languages": ["eng_Latn"]}})
    assert _cli("run", config, "--out", tmp_path / "out", "--data-dir", sib_dir, "--quiet").wait() == 0
    [table] = (tmp_path / "out" / "eval").glob("*.csv")
    rows = pd.read_csv(table)
    rows.assign(n_unparsed=3).to_csv(table, index=False)
    store = runner.gather(load_grid(config), tmp_path / "out")
    assert set(store["n_unparsed"]) == {3} and len(store) == 2  # accuracy and macro-F1 rows
