"""Grids that sweep source sets: the YAML forms, the planned runs, left-out pairs and errors that name the language."""

from __future__ import annotations

import pytest
import yaml

from xlpeft.config import TrainConfig
from xlpeft.errors import XlpeftError
from xlpeft.experiments import runner
from xlpeft.experiments.grid import expand, load_grid, run_id
from xlpeft.tasks import get_task


def _grid(source, evaluate=("eng_Latn", "fra_Latn", "deu_Latn"), **train):
    return expand({"name": "s", "train": {"shots": 4, "epochs": 1, "source": source, **train},
                   "evaluate": {"languages": list(evaluate)}})


def _id(**settings) -> str:
    config = TrainConfig(**settings)
    config.resolve(get_task(config.task))
    return run_id(config)


def test_a_source_axis_sweeps_single_languages_and_sets(tmp_path):
    grid = load_grid(_write(tmp_path, """
        train: {shots: 4, epochs: 1, source: [eng_Latn, [eng_Latn, fra_Latn], "fra_Latn,deu"]}
        evaluate: {languages: [eng_Latn, fra_Latn]}"""))
    assert [spec.config.source for spec in grid.runs] == ["eng_Latn", "eng_Latn,fra_Latn", "fra_Latn,deu_Latn"]
    assert [spec.axes for spec in grid.runs] == [{"source": "eng_Latn"}, {"source": "eng_Latn,fra_Latn"},
                                                 {"source": "fra_Latn,deu"}]
    # the single source is the run it was before source sets existed (id computed on main at f0e8578)
    assert grid.runs[0].run_id == _id(shots=4, epochs=1, source="eng_Latn") == "4bb1a87447c4"
    assert grid.runs[1].run_id == _id(shots=4, epochs=1, source="eng_Latn,fra_Latn")
    lines = runner.plan_lines(grid, tmp_path / "out")
    assert sum("todo" in line for line in lines) == 3 and any("source=eng_Latn,fra_Latn" in line for line in lines)


def test_a_fixed_source_set_as_a_string_or_a_list_is_one_run():
    as_string, as_list = _grid("eng_Latn,fra_Latn"), _grid([["eng_Latn", "fra_Latn"]])
    assert [s.run_id for s in as_string.runs] == [s.run_id for s in as_list.runs]
    assert as_string.axes == [] and as_list.axes == ["source"]


def test_overrides_match_a_source_set_written_as_a_list():
    grid = expand({"train": {"epochs": 1, "source": ["eng_Latn", ["eng_Latn", "fra_Latn"]]},
                   "overrides": [{"when": {"source": ["eng_Latn", "fra_Latn"]}, "set": {"epochs": 2}}],
                   "evaluate": {"languages": ["deu_Latn"]}})
    assert [(s.config.source, s.config.epochs) for s in grid.runs] == [("eng_Latn", 1), ("eng_Latn,fra_Latn", 2)]


def test_targets_leave_out_the_grids_source_sets():
    grid = expand({"train": {"task": "nusax", "source": ["eng", ["eng", "jav"]]}, "evaluate": {"languages": "targets"}})
    targets = get_task("nusax").resolve_languages("targets")
    assert grid.evaluation.languages == [code for code in targets if code != "jav"]


def test_a_source_without_training_data_leaves_the_set_out_naming_the_language():
    grid = expand({"train": {"task": "nusax", "source": [["eng", "jav"], ["eng", "fra"]]},
                   "evaluate": {"languages": ["sun"]}})
    assert [s.config.source for s in grid.runs] == ["eng,jav"]
    [skip] = grid.skipped
    assert (skip.role, skip.language, skip.runs) == ("source", "eng,fra", 1) and "no French training set" in skip.reason


def test_method_b_runs_stacking_a_language_module_on_several_sources_are_left_out():
    grid = _grid([["eng_Latn", "fra_Latn"]], configuration=["ta", "la+ta"], modules_dir="modules", placement="prefix")
    assert [(s.config.configuration, s.config.source) for s in grid.runs] == [("ta", "eng_Latn,fra_Latn")]
    [skip] = grid.skipped
    assert skip.language == "eng_Latn,fra_Latn" and "la module, one per run: give one source language" in skip.reason


@pytest.mark.parametrize("source, message", [
    ([["eng_Latn", "eng_Latn"]], "eng_Latn is given twice"),
    ([["eng_Latn", ["fra_Latn"]]], "a source set is a list of language codes"),
    ([[]], "a source set is a list of language codes"),
])
def test_bad_source_sets_in_a_grid_say_what_to_fix(source, message):
    with pytest.raises(XlpeftError, match=message):
        _grid(source)


def _write(tmp_path, text: str):
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(yaml.safe_load(text)))
    return path
