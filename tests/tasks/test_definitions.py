"""Task definitions in YAML (xlpeft/tasks/definition.py, defined.py, data/tables.py): the schema and its one-line
errors, the file and hub readers, the messy-data rules, labels and their subsets, language codes, run identity."""

from __future__ import annotations

import logging
from pathlib import Path

import datasets
import pandas as pd
import pytest
import yaml

from xlpeft.config import TrainConfig
from xlpeft.errors import XlpeftError
from xlpeft.experiments.grid import run_id
from xlpeft.tasks import task_for
from xlpeft.tasks.defined import task_class
from xlpeft.tasks.definition import TaskDefinition, load_definition

BASE = {"name": "toy", "kind": "classification", "data": {"files": "{language}/{split}.tsv"}, "input": "sentence",
        "label": "polarity", "source": "eng"}
ROWS = {  # language -> split -> (sentence, polarity) rows
    "eng": {"train": [("good film", "pos"), ("bad film", "neg"), ("fine film", "mid"), ("great plot", "pos"),
                      ("awful plot", "neg"), ("okay plot", "mid")],
            "dev": [("good song", "pos"), ("bad song", "neg"), ("okay song", "mid")],
            "test": [("good day", "pos"), ("bad day", "neg"), ("okay day", "mid")]},
    "deu": {"test": [("guter Film", "pos"), ("schlechter Film", "neg"), ("toller Film", "pos")]},  # no "mid"
}


def write_rows(folder: Path, rows=ROWS, ext="tsv") -> None:
    for language, splits in rows.items():
        for split, pairs in splits.items():
            frame = pd.DataFrame(pairs, columns=["sentence", "polarity"])
            path = folder / language / f"{split}.{ext}"
            path.parent.mkdir(parents=True, exist_ok=True)
            {"tsv": lambda p: frame.to_csv(p, sep="\t", index=False), "csv": lambda p: frame.to_csv(p, index=False),
             "jsonl": lambda p: frame.to_json(p, orient="records", lines=True, force_ascii=False),
             "parquet": lambda p: frame.to_parquet(p, index=False)}[ext](path)


def task_file(folder: Path, **changes) -> Path:
    path = folder / "toy.yaml"
    path.write_text(yaml.safe_dump({**BASE, **changes}, allow_unicode=True, sort_keys=False))
    return path


def toy(folder: Path, **changes):
    return task_class(load_definition(task_file(folder, **changes)))()


# ------------------------------------------------------------------------------------------------ schema
@pytest.mark.parametrize("changes, message", [
    ({"colour": "red"}, "unknown key 'colour'; allowed: name, kind"),
    ({"name": 3}, "name must be a string"),
    ({"source": None}, "source must be a string"),
    ({"kind": "regression"}, "kind 'regression' is not one of classification, text, multiple_choice"),
    ({"metric": "bleu"}, "metric 'bleu' is not one of accuracy, macro_f1"),
    ({"data": {"files": "{language}/{split}.tsv", "hub": "x/y"}}, "exactly one of files"),
    ({"data": {"files": "{language}/train.tsv"}}, "data.files has no {split}"),
    ({"data": {"files": "all/{split}.tsv"}}, "no {language}: put it in the pattern, or name the column"),
    ({"data": {"files": "{language}/{split}.tsv", "sep": ","}}, "unknown key 'data.sep'"),
    ({"data": {"files": "{language}/{split}.tsv", "format": "xlsx"}}, "data.format 'xlsx' is not one of csv, tsv"),
    ({"labels": {"pos": True, "neg": False}}, "quote yes, no"),
    ({"languages": {False: None}}, "language code False must be a string: quote it"),
    ({"languages": {"eng": {"flores": "eng_Latn", "script": "Latn"}}}, "unknown key 'languages.eng.script'"),
    ({"splits": {"validation": "valid"}}, "a splits key 'validation' is not one of train, dev, test"),
    ({"label": ""}, "kind classification needs label"),
    ({"kind": "text", "label": "", "target": ""}, "kind text needs target"),
    ({"labels": ["pos", "neg"], "unparsed_label": "mid"}, "unparsed_label 'mid' is not among labels"),
    ({"labels": ["pos", "neg"], "paper_templates": {"mt5": {"text": "{sentence}", "answers": ["Yes"]}}},
     "has 1 answers for 2 labels"),
])
def test_schema_errors_name_the_file_the_key_and_the_fix(tmp_path, changes, message):
    path = task_file(tmp_path, **changes)
    with pytest.raises(XlpeftError, match=f"^{path}: .*") as error:
        load_definition(path)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_a_missing_required_key_and_a_broken_file_are_one_line_errors(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump({k: v for k, v in BASE.items() if k != "input"}))
    with pytest.raises(XlpeftError, match=f"{path}: missing key 'input'; a task file needs name, kind, data, input"):
        load_definition(path)
    path.write_text("name: [unclosed")
    with pytest.raises(XlpeftError, match="is not valid YAML"):
        load_definition(path)
    with pytest.raises(XlpeftError, match="cannot read task file .*nothing.yaml"):
        load_definition(tmp_path / "nothing.yaml")


def test_a_definition_survives_the_round_trip_through_a_run_config(tmp_path):
    path = task_file(tmp_path, labels={"pos": "good", "neg": "bad", "mid": "okay"}, splits={"dev": "valid"},
                     languages={"eng": None, "deu": {"in_data": "german", "iso": "deu", "flores": "deu_Latn"}},
                     paper_templates={"default": "Review: {sentence}"})
    definition = load_definition(path)
    stored = definition.to_dict()
    assert stored["folder"] == str(tmp_path.resolve()) and "format" not in stored["data"]  # defaults left out
    assert TaskDefinition.from_dict(stored) == definition


# ------------------------------------------------------------------------------------------------ readers
@pytest.mark.parametrize("ext", ["tsv", "csv", "jsonl", "parquet"])
def test_every_file_format_reads_the_rows_pandas_reads(tmp_path, ext):
    rows = {"eng": {"train": [("a \"quoted\", text", "pos"), ("NA", "neg"), ("ünï cödé", "pos")],
                    "test": [("x", "neg")]}}
    write_rows(tmp_path, rows, ext)
    task = toy(tmp_path, data={"files": f"{{language}}/{{split}}.{ext}"})
    examples = task.load("eng", "train")
    assert examples.texts == [text for text, _ in rows["eng"]["train"]]  # quotes, commas, "NA" and UTF-8 kept
    assert [task.labels[i] for i in examples.labels] == ["pos", "neg", "pos"] and task.labels == ("neg", "pos")
    assert examples.ids == [0, 1, 2] and examples.fields == {"sentence": examples.texts}


def test_a_template_over_several_columns_is_the_text_and_its_columns_are_template_fields(tmp_path):
    frame = pd.DataFrame({"premise": ["It rains.", "Sun."], "hypothesis": ["It is wet.", "It is dark."],
                          "gold": ["yes", "no"], "uid": ["7", "9"]})
    (tmp_path / "eng").mkdir()
    for split in ("train", "test"):
        frame.to_csv(tmp_path / "eng" / f"{split}.csv", index=False)
    task = toy(tmp_path, data={"files": "{language}/{split}.csv"}, input="{premise}\n{hypothesis}", label="gold", id="uid")
    examples = task.load("eng", "test")
    assert examples.texts == ["It rains.\nIt is wet.", "Sun.\nIt is dark."] and examples.ids == [7, 9]
    assert examples.fields == {"premise": ["It rains.", "Sun."], "hypothesis": ["It is wet.", "It is dark."]}
    assert task.fields == ("text", "premise", "hypothesis")
    assert task.template("Q: {hypothesis} P: {premise}", "llama").fields == ("hypothesis", "premise")
    with pytest.raises(XlpeftError, match="unknown field"):
        task.template("{question}", "llama")


def test_the_hub_reader_takes_configs_or_a_language_column(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the stand-in answers as datasets' cache would: no network probe
    calls = []

    def stand_in(name, config, split, **kwargs):
        calls.append((name, config, split))
        languages = [config] * 4 if config else ["en", "en", "sw", "sw"]
        return datasets.Dataset.from_dict({"q": [f"{lang} {split} {i}" for i, lang in enumerate(languages)],
                                           "y": [0, 1, 1, 0], "lang": languages})

    monkeypatch.setattr(datasets, "load_dataset", stand_in)
    by_config = task_class(TaskDefinition.from_dict(
        {**BASE, "data": {"hub": "me/qa", "config": "{language}"}, "input": "q", "label": "y", "source": "en",
         "languages": ["en", "sw"]}))()
    examples = by_config.load("sw", "dev")
    assert ("me/qa", "sw", "validation") in calls  # a hub's dev split is its validation split
    assert examples.texts == [f"sw validation {i}" for i in range(4)] and examples.labels == [0, 1, 1, 0]
    with pytest.raises(XlpeftError, match="pass --source-data hub"):
        by_config.check_source_data("en", "local")
    by_column = task_class(TaskDefinition.from_dict(
        {**BASE, "data": {"hub": "me/qa", "language_column": "lang"}, "input": "q", "label": "y", "source": "en",
         "languages": ["en", "sw"], "splits": {"dev": "train"}}))()
    examples = by_column.load("sw", "dev")
    assert ("me/qa", None, "train") in calls and examples.texts == ["sw train 2", "sw train 3"]
    assert examples.ids == [2, 3]  # positions in the split, as read


# ---------------------------------------------------------------------------------------- messy data
def test_empty_and_duplicate_rows_are_dropped_counted_and_reported_once(tmp_path, caplog):
    rows = {"eng": {"train": [("good", "pos"), ("", "neg"), ("bad", ""), ("good", "pos"), ("bad", "neg"),
                              ("  ", "neg"), ("good", "neg")],
                    "test": [("good", "pos")]}}
    write_rows(tmp_path, rows)
    task = toy(tmp_path)
    with caplog.at_level(logging.WARNING, logger="xlpeft"):
        examples = task.load("eng", "train")
        task.load("eng", "train")
    assert examples.ids == [0, 4, 6] and examples.texts == ["good", "bad", "good"]  # file positions kept
    assert task.describe()["dropped_rows"] == {"eng/train": {"empty": 3, "duplicate": 1}}
    assert caplog.text.count("dropped 3 empty and 1 duplicate rows of 7") == 1


def test_unreadable_files_missing_columns_splits_and_languages_are_one_line_errors(tmp_path):
    write_rows(tmp_path)
    (tmp_path / "fra").mkdir()
    (tmp_path / "fra" / "test.tsv").write_bytes("sentence\tpolarity\ncaf\xe9\tpos\n".encode("latin-1"))
    task = toy(tmp_path)
    with pytest.raises(XlpeftError, match=r"fra/test.tsv is not utf-8 text .*re-save it as UTF-8, or name its encoding"):
        task.load("fra", "test")
    assert toy(tmp_path, data={"files": "{language}/{split}.tsv", "encoding": "latin-1"}).load("fra", "test").texts == \
        ["café"]
    with pytest.raises(XlpeftError, match=r"eng/test.tsv has no column 'stars' \(its columns: sentence, polarity\)"):
        toy(tmp_path, label="stars").load("eng", "test")
    with pytest.raises(XlpeftError, match="toy has no train split for deu: no file .*add the file, or map splits.train"):
        task.source_splits("deu", "local")
    with pytest.raises(XlpeftError, match="unknown toy language 'ita': use one of deu, eng, fra"):
        task.load("ita", "test")


def test_a_source_without_dev_validates_on_a_fixed_quarter_of_train(tmp_path):
    rows = {"eng": {"train": [(f"text {i}", "pos" if i % 2 else "neg") for i in range(12)], "test": [("t", "pos")]}}
    write_rows(tmp_path, rows)
    task = toy(tmp_path)
    train, dev = task.source_splits("eng", "local")
    assert (len(train), len(dev)) == (9, 3) and not set(train.ids) & set(dev.ids)
    assert sorted(train.ids + dev.ids) == list(range(12))
    assert task.describe()["dropped_rows"]["eng/dev"] == {"from_train": 3}


# ------------------------------------------------------------------------------------------------ labels
def test_labels_are_discovered_from_the_source_and_targets_may_use_a_subset(tmp_path):
    write_rows(tmp_path)
    task = toy(tmp_path)
    assert task.labels == ("mid", "neg", "pos") and task.label_words("llama") == {"mid": "mid", "neg": "neg", "pos": "pos"}
    assert task.languages == ("deu", "eng") and task.metric_columns == ("accuracy", "macro_f1", "n")
    deu = task.load("deu", "test")
    assert deu.labels == [2, 1, 2]
    predicted = [2, 2, 0]  # pos, pos, mid: the gold has neg and pos only
    # by hand, over the labels present in the gold: pos: P 1/2, R 1/2 -> F1 0.5; neg: P 0, R 0 -> 0; macro 0.25
    scores = task.score(deu, deu, predicted)
    assert scores["macro_f1"] == pytest.approx(0.25) and scores["accuracy"] == pytest.approx(1 / 3)
    eng = task.load("eng", "test")  # every label present: the usual macro-F1 over all of them
    assert task.score(eng, eng, [2, 1, 1])["macro_f1"] == pytest.approx((1 + 2 / 3 + 0) / 3)


def test_a_target_label_the_source_never_has_is_an_error_naming_label_and_language(tmp_path):
    write_rows(tmp_path, {**ROWS, "deu": {"test": [("guter Film", "pos"), ("na ja", "meh")]}})
    with pytest.raises(XlpeftError, match=r"deu/test.tsv: label 'meh' of deu never occurs in the task's labels "
                                          r"\(mid, neg, pos, from eng's train split unless listed\)"):
        toy(tmp_path).load("deu", "test")


def test_label_values_rename_and_labels_give_order_and_words(tmp_path):
    rows = {"eng": {split: [("a", "0"), ("b", "1"), ("c", "2")] for split in ("train", "test")}}
    write_rows(tmp_path, rows)
    task = toy(tmp_path, label_values={0: "entailment", 1: "neutral", 2: "contradiction"},
               labels={"entailment": "yes", "neutral": "maybe", "contradiction": "no"}, metric="macro_f1")
    assert task.load("eng", "test").labels == [0, 1, 2] and task.label_words("x")["contradiction"] == "no"
    assert task.metric_columns == ("macro_f1", "accuracy", "n")


# ------------------------------------------------------------------------------------------ language codes
def test_language_codes_are_recognised_and_can_be_overridden(tmp_path):
    rows = {code: {"train": [("a", "x")], "test": [("a", "x")]} for code in ("eng", "swh", "de", "bbc", "toba")}
    write_rows(tmp_path, rows)
    task = toy(tmp_path, languages={"eng": None, "swh": None, "de": None, "bbc": None,
                                    "toba": {"iso": "bbc", "flores": "ind_Latn"}})
    assert [task.module_language(c) for c in task.languages] == ["eng_Latn", "swh_Latn", "deu_Latn", "bbc", "ind_Latn"]
    assert [task.iso_code(c) for c in task.languages] == ["eng", "swh", "deu", "bbc", "bbc"]
    assert task.language_info("swh")[0] == "Swahili (individual language)"


# -------------------------------------------------------------------------------------------- run identity
def test_a_task_file_is_stored_in_the_config_and_its_definition_is_the_run_id(tmp_path):
    write_rows(tmp_path)
    config = TrainConfig(task=str(task_file(tmp_path)))
    task = task_for(config)
    assert (config.task, task.name) == ("toy", "toy") and config.task_definition["data"]["files"] == "{language}/{split}.tsv"
    again = TrainConfig.from_dict(config.to_dict())
    assert task_for(again).load("eng", "test").texts == ["good day", "bad day", "okay day"]
    moved = TrainConfig.from_dict({**config.to_dict(), "task_definition": {**config.task_definition, "folder": "/x"}})
    assert run_id(moved) == run_id(config)  # where the file lay is not the run
    changed = TrainConfig(task=str(task_file(tmp_path, metric="macro_f1")))
    task_for(changed)
    assert run_id(changed) != run_id(config)
    assert run_id(TrainConfig(task="nusax")) == run_id(TrainConfig.from_dict({"task": "nusax"}))  # built-ins: names
    assert "task_definition" not in TrainConfig(task="nusax").identity()


def test_a_task_file_may_not_take_a_built_in_name(tmp_path):
    with pytest.raises(XlpeftError, match="'nusax' is a built-in task's name; give your task another name"):
        task_for(TrainConfig(task=str(task_file(tmp_path, name="nusax"))))


def test_the_command_line_takes_a_task_file_and_still_refuses_unknown_names():
    from xlpeft.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["train", "--out", "r", "--task", "my_task.yaml"]).task == "my_task.yaml"
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "--out", "r", "--task", "nusaxx"])


# ------------------------------------------------------------------------------------------- xlpeft tasks
def test_xlpeft_tasks_lists_every_task_and_shows_and_checks_definitions(tmp_path, capsys):
    from xlpeft.cli import main
    from xlpeft.data.task_names import TASK_NAMES

    assert main(["tasks"]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in listing[1:1 + len(TASK_NAMES)]] == list(TASK_NAMES)
    assert "definitions/nusax.yaml" in listing[2] and "macro_f1" in listing[2] and "12" in listing[2]
    assert main(["tasks", "show", "nusax"]) == 0
    shown = capsys.readouterr().out
    path = tmp_path / "copy.yaml"
    path.write_text(shown.replace("name: nusax", "name: my_nusax"))
    assert load_definition(path).languages == load_definition(Path(__file__).parents[2] / "xlpeft" / "tasks" /
                                                               "definitions" / "nusax.yaml").languages
    assert main(["tasks", "show", "sib200"]) == 2 and "written in Python" in capsys.readouterr().err
    write_rows(tmp_path)
    assert main(["tasks", "show", str(task_file(tmp_path))]) == 0
    assert "#   deu: deu, deu_Latn" in capsys.readouterr().out
