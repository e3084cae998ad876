"""Multiple choice as a task definition (kind: multiple_choice): the schema and its one-line errors, a files task
read against the rows written, and the shipped XStoryCloze and Belebele definitions read through a stand-in for the
hub: the examples against hand-built ones, and their source protocols (no evaluated item was trained on)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import datasets
import pandas as pd
import pytest
import yaml

from xlpeft.errors import XlpeftError
from xlpeft.tasks import BUILTIN_DEFINITIONS, get_task, hub
from xlpeft.tasks.defined import task_class
from xlpeft.tasks.definition import TaskDefinition, load_definition

BASE = {"name": "toy_choice", "kind": "multiple_choice", "data": {"files": "{language}/{split}.tsv"},
        "input": "{context} {question}", "choices": ["first", "second"], "label": "answer", "source": "eng"}


def task_file(folder: Path, **changes) -> Path:
    path = folder / "toy_choice.yaml"
    path.write_text(yaml.safe_dump({**BASE, **changes}, allow_unicode=True, sort_keys=False))
    return path


# ------------------------------------------------------------------------------------------------ schema
@pytest.mark.parametrize("changes, message", [
    ({"choices": []}, "kind multiple_choice needs choices"),
    ({"choices": ["first"]}, "choices lists the columns of the choices: give two or more"),
    ({"label": ""}, "kind multiple_choice needs label: the column that holds the right choice"),
    ({"labels": ["A", "B"]}, "labels are for kind classification"),
    ({"label_values": {"A": 0, "B": 2}}, "label_values maps 'B' to '2', not a choice's position: use 0..1"),
    ({"metric": "macro_f1"}, "metric 'macro_f1' is not one of accuracy"),
    ({"value_maps": {"answer": {"A": "x"}}}, "value_maps.answer: 'answer' is not a column the input or the choices read"),
    ({"value_maps": {"question": {"why": 3}}}, "value_maps.question must map each of the column's values to a string"),
    ({"source_data": {"language": "eng"}}, "source_data needs language (the source it is for) and hub"),
    ({"source_data": {"language": "eng", "hub": "x/y", "revision": "main"}}, "unknown key 'source_data.revision'"),
    ({"source_data": {"language": "eng", "hub": "x/y", "splits": {"test": "t"}}},
     "a source_data.splits key 'test' is not one of train, dev"),
    ({"source_data": {"language": "en", "hub": "x/y"}, "languages": ["eng", "deu"]},
     "source_data.language 'en' is not among languages: add it"),
    ({"source_from_test": {"group": "context", "share": 2.0}}, "share (the part of the groups"),
    ({"source_from_test": {"group": "context", "share": "half"}}, "source_from_test.share must be a number"),
    ({"source_from_test": {"group": "context", "share": 0.5}, "splits": {"train": "train"}},
     "source_from_test reads every split from the test split: map only splits.test"),
])
def test_multiple_choice_schema_errors_name_the_file_the_key_and_the_fix(tmp_path, changes, message):
    path = task_file(tmp_path, **changes)
    with pytest.raises(XlpeftError, match=f"^{path}: .*") as error:
        load_definition(path)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_a_multiple_choice_definition_survives_the_round_trip_through_a_run_config(tmp_path):
    definition = load_definition(task_file(
        tmp_path, label_values={"A": 0, "B": 1}, value_maps={"question": {"why": "Why?"}},
        choices=["first", "{second} ({context})"], languages={"eng": None, "en": {"flores": "eng_Latn"}},
        source_data={"language": "en", "hub": "me/english", "config": "c", "name": "Toy"},
        source_from_test={"group": "context", "share": 0.5}))
    assert definition.choice_fields == ("first", "second", "context")
    assert TaskDefinition.from_dict(definition.to_dict()) == definition
    for name in ("xcopa", "xstorycloze", "belebele"):  # as a copy of a shipped one would be stored in a run
        shipped = load_definition(BUILTIN_DEFINITIONS[name])
        assert TaskDefinition.from_dict(shipped.to_dict()) == shipped


# ----------------------------------------------------------------------------------------- a files task
ROWS = pd.DataFrame({"context": ["The glass fell.", "It rained.", "She smiled.", "He ran."],
                     "question": ["why", "then", "why", "then"],
                     "first": ["It broke.", "The street got wet.", " She was happy. ", "He was late."],
                     "second": ["It was sold.", "The sun shone.", "She was sad.", "He slept."],
                     "answer": ["A", "A", "A", "B"], "uid": ["11", "12", "13", "14"]})


def write(folder: Path, frame: pd.DataFrame = ROWS) -> None:
    for language in ("eng", "deu"):
        (folder / language).mkdir(exist_ok=True)
        for split in ("train", "test"):
            frame.to_csv(folder / language / f"{split}.tsv", sep="\t", index=False)


def toy(folder: Path, **changes):
    return task_class(load_definition(task_file(folder, **changes)))()


def test_a_files_task_reads_input_choices_and_gold_as_written(tmp_path):
    write(tmp_path)
    task = toy(tmp_path, id="uid", label_values={"A": 0, "B": 1}, choices=["first", "{second}!"],
               value_maps={"question": {"why": "What caused it?", "then": "What happened next?"}})
    examples = task.load("deu", "test")
    assert task.kind == "choice" and task.metric_columns == ("accuracy", "n") and task.languages == ("deu", "eng")
    assert examples.texts == ["The glass fell. What caused it?", "It rained. What happened next?",
                              "She smiled. What caused it?", "He ran. What happened next?"]
    assert examples.choices == [("It broke.", "It was sold.!"), ("The street got wet.", "The sun shone.!"),
                                ("She was happy.", "She was sad.!"), ("He was late.", "He slept.!")]  # stripped
    assert examples.labels == [0, 0, 0, 1] and examples.ids == [11, 12, 13, 14]
    assert examples.fields == {"context": list(ROWS["context"]), "question": examples.fields["question"]}
    assert examples.fields["question"][1] == "What happened next?" and task.fields == ("text", "context", "question")
    train, validation = task.source_splits("eng", "local")  # no dev file: a fixed quarter of train validates
    assert (len(train), len(validation)) == (3, 1) and not set(train.ids) & set(validation.ids)
    gold = task.model_inputs(train, None, 64, training=True)
    assert gold.targets == [c[g] for c, g in zip(train.choices, train.labels)]  # training reads the gold choice


def test_gold_values_and_mapped_values_outside_their_maps_are_one_line_errors(tmp_path):
    write(tmp_path)
    with pytest.raises(XlpeftError, match="gold value 'B' of column 'answer' is not in label_values \\(A\\)"):
        toy(tmp_path, label_values={"A": 0}).load("eng", "test")
    with pytest.raises(XlpeftError, match="gold value 'A' of column 'answer' is not a choice position; map"):
        toy(tmp_path).load("eng", "test")
    with pytest.raises(XlpeftError, match="value 'then' of column 'question' is not in value_maps.question \\(why\\)"):
        toy(tmp_path, label_values={"A": 0, "B": 1}, value_maps={"question": {"why": "Why?"}}).load("eng", "test")
    again = tmp_path / "again"  # files are read once per process: a new folder for new rows
    again.mkdir()
    write(again, ROWS.assign(answer=["0", "1", "2", "1"]))
    with pytest.raises(XlpeftError, match="toy_choice eng/test item 2: gold index 2 among 2 choices"):
        toy(again).load("eng", "test")


# -------------------------------------------------------------------------------------- hub stand-ins
def stand_in(tables: dict, calls: list):
    """``hub.load_hub`` answering from ``tables``: (dataset, config, split) -> columns."""
    def load_hub(dataset, config, split, what):
        calls.append((dataset, config, split))
        return datasets.Dataset.from_dict(tables[dataset, config, split])
    return load_hub


def stories(language: str, split: str, n: int) -> dict:
    """XStoryCloze's columns: n stories of one split, parallel across languages (the same story_id and answer)."""
    ids = [f"{split}-{i}" for i in range(n)]
    return {"story_id": ids, **{f"input_sentence_{k}": [f"{language} {s} s{k}." for s in ids] for k in range(1, 5)},
            "sentence_quiz1": [f"{language} {s} end A" for s in ids], "sentence_quiz2": [f"{language} {s} end B" for s in ids],
            "answer_right_ending": [1 + i % 2 for i in range(n)]}


def test_xstorycloze_reads_stories_and_trains_on_english_train_only(monkeypatch):
    calls = []
    tables = {("juletxara/xstory_cloze", lang, split): stories(lang, split, n)
              for lang in ("en", "sw") for split, n in (("train", 8), ("eval", 5))}
    monkeypatch.setattr(hub, "load_hub", stand_in(tables, calls))
    task = get_task("xstorycloze")
    test = task.load("sw", "test")
    assert calls == [("juletxara/xstory_cloze", "sw", "eval")]
    assert test.texts[1] == "sw eval-1 s1. sw eval-1 s2. sw eval-1 s3. sw eval-1 s4."
    assert test.choices[1] == ("sw eval-1 end A", "sw eval-1 end B") and test.labels == [0, 1, 0, 1, 0]
    assert test.ids == [f"eval-{i}" for i in range(5)]
    train, validation = task.source_splits("en", "hub")
    assert {split for *_, split in calls[1:]} == {"train"}  # no validation split: dev is a quarter of train
    assert (len(train), len(validation)) == (6, 2) and sorted(train.ids + validation.ids) == sorted(tables[
        "juletxara/xstory_cloze", "en", "train"]["story_id"])
    assert not set(train.ids + validation.ids) & set(test.ids)  # no evaluated story is trained on
    assert task.module_language("sw") == "swh_Latn" and task.iso_code("eu") == "eus" and len(task.languages) == 11
    with pytest.raises(XlpeftError, match="pass --source-data hub"):
        task.check_source_data("en", "local")


LINKS = [f"https://en.wikibooks.org/wiki/Page_{i}" for i in range(40)]


def passages(language: str) -> dict:
    """Belebele's columns: 40 passages, the even ones with two questions, parallel across languages."""
    rows = [(link, q) for i, link in enumerate(LINKS) for q in ((1, 2) if i % 2 == 0 else (1,))]
    return {"link": [link for link, _ in rows], "question_number": [q for _, q in rows],
            "flores_passage": [f"{language} passage {link[-2:]}" for link, _ in rows],
            "question": [f"{language} question {link[-2:]}/{q}" for link, q in rows],
            **{f"mc_answer{k}": [f"{language} answer {k}" for _ in rows] for k in range(1, 5)},
            "correct_answer_num": [str(1 + i % 4) for i in range(len(rows))]}


def part(link: str) -> str:
    """Belebele's division by hand: SHA-256 of the link as a fraction; below 0.1875 trains, below 0.25 validates."""
    fraction = int(hashlib.sha256(link.encode()).hexdigest()[:16], 16) / 2**64
    return "train" if fraction < 0.1875 else "dev" if fraction < 0.25 else "test"


def test_belebele_evaluates_every_language_on_passages_the_source_never_saw(monkeypatch):
    eng, fra = passages("eng_Latn"), passages("fra_Latn")
    empty = next(i for i, link in enumerate(eng["link"]) if part(link) == "test")
    for column in ("flores_passage", "question", "mc_answer1", "mc_answer2", "mc_answer3", "mc_answer4"):
        fra[column][empty] = ""  # an empty row of an evaluated passage, dropped: the division must not move
    calls = []
    tables = {("facebook/belebele", "eng_Latn", "test"): eng, ("facebook/belebele", "fra_Latn", "test"): fra}
    monkeypatch.setattr(hub, "load_hub", stand_in(tables, calls))
    task = get_task("belebele")
    train, validation = task.source_splits("eng_Latn", "hub")
    test = {language: task.load(language, "test") for language in ("eng_Latn", "fra_Latn")}
    assert {split for *_, split in calls} == {"test"}  # Belebele's only split
    link_of = dict(enumerate(eng["link"]))  # ids are row positions in the split
    expected = {name: [i for i, link in link_of.items() if part(link) == name] for name in ("train", "dev", "test")}
    assert (train.ids, validation.ids, test["eng_Latn"].ids) == (expected["train"], expected["dev"], expected["test"])
    assert test["fra_Latn"].ids == [i for i in expected["test"] if i != empty]
    assert all(len(ids) for ids in expected.values())  # the stand-in's 40 links fall on every side
    source_links = {link_of[i] for i in train.ids + validation.ids}
    assert not source_links & {link_of[i] for e in test.values() for i in e.ids}  # no passage on both sides
    i = test["fra_Latn"].ids[0]  # the first evaluated French item, row i of the split
    assert test["fra_Latn"].texts[0] == f"{fra['flores_passage'][i]}\n{fra['question'][i]}"
    assert test["fra_Latn"].choices[0] == tuple(f"fra_Latn answer {k}" for k in range(1, 5))
    assert test["fra_Latn"].labels == [int(eng["correct_answer_num"][i]) - 1 for i in test["fra_Latn"].ids]
    assert task.dropped["fra_Latn/test"] == {"empty": 1, "duplicate": 0}
    assert len(task.languages) == 122 and task.default_targets == task.languages and task.iso_code("hin_Latn") == "hin"
    assert task.module_language("eng_Latn") == "eng_Latn" and task.module_language("urd_Latn") == "urd_Latn"


def test_xlpeft_tasks_lists_the_multiple_choice_definitions(capsys):
    from xlpeft.cli import main

    assert main(["tasks"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:] if line.strip()}
    for name, count in (("xcopa", "12"), ("xstorycloze", "11"), ("belebele", "122")):
        assert rows[name].split()[1:4] == ["choice", count, "accuracy"] and f"definitions/{name}.yaml" in rows[name]
    assert main(["tasks", "show", "belebele"]) == 0 and "source_from_test: {group: link" in capsys.readouterr().out
