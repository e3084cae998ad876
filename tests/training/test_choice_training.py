"""Multiple choice end to end on real XCOPA rows: reading, sampling, training on the gold choice, scoring, samples."""

import json
import math

import pytest
from conftest import make_backbone

from xlpeft import runs as rd
from xlpeft.config import TrainConfig
from xlpeft.errors import XlpeftError
from xlpeft.evaluation import evaluate as ev
from xlpeft.evaluation.samples import read_samples, samples_path
from xlpeft.tasks import get_task
from xlpeft.training.trainer import Trainer

QUESTIONS = {"cause": "What was the cause of this?", "effect": "What happened as a result?"}


@pytest.fixture(scope="module")
def data_root(sib_dir):
    if not (sib_dir.parent / "tasks" / "xcopa").is_dir():
        pytest.skip(f"no tasks/xcopa folder beside {sib_dir}")
    return sib_dir.parent


def _file_rows(data_root, language: str, name: str) -> list[dict]:
    path = data_root / "tasks" / "xcopa" / "data" / language / f"{name}.{language}.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_xcopa_examples_are_the_files_rows(data_root):
    task = get_task("xcopa", data_root)
    examples = task.load("sw", "test")
    rows = _file_rows(data_root, "sw", "test")
    assert len(examples) == len(rows) == 500 and task.kind == "choice"
    assert examples.ids == [r["idx"] for r in rows] and examples.labels == [r["label"] for r in rows]
    assert examples.choices == [(r["choice1"], r["choice2"]) for r in rows]
    assert examples.texts == [f"{r['premise']} {QUESTIONS[r['question']]}" for r in rows]
    assert examples.fields["premise"] == [r["premise"] for r in rows]
    picked = examples.subset([7, 2])
    assert picked.choices == [examples.choices[7], examples.choices[2]] and picked.labels == [rows[7]["label"], rows[2]["label"]]


def test_xcopa_sources_and_sampling(data_root):
    task = get_task("xcopa", data_root)
    train, validation = task.source_splits("it", "local")
    assert len(train) + len(validation) == 100 and len(validation) == 25  # the validation items, a fixed quarter held
    assert not set(train.ids) & set(validation.ids)
    a, b, c = (task.sample(train, validation, 8, seed) for seed in (1, 1, 2))
    assert a.train.ids == b.train.ids and a.train.ids != c.train.ids
    assert (len(a.train), len(a.validation)) == (8, 8) and set(a.train.ids) <= set(train.ids)
    row = {r["idx"]: r for r in _file_rows(data_root, "it", "val")}[a.train.ids[0]]
    target = task.model_inputs(a.train, None, 64, training=True).targets[0]
    assert target == row[f"choice{row['label'] + 1}"]  # training teacher-forces the gold choice's text
    with pytest.raises(XlpeftError, match="--shots 76"):
        task.sample(train, validation, 76, 0)
    with pytest.raises(XlpeftError, match="--source-data hub.*--source one of et"):
        task.check_source_data("en", "local")
    with pytest.raises(XlpeftError, match="means English COPA: use --source en"):
        task.check_source_data("it", "hub")
    with pytest.raises(XlpeftError, match="English \\(COPA\\) is only a training source"):
        task.load("en", "test")


def test_online_xcopa_trains_on_english_copa_from_the_hub(monkeypatch, data_root):
    """A stand-in for the hub: ``aps/super_glue``'s ``copa`` rows (its columns) become English source examples."""
    import datasets

    from xlpeft.tasks import hub

    asked = []
    rows = [{"premise": "My body cast a shadow over the grass.", "choice1": "The sun was rising.",
             "choice2": "The grass was cut.", "question": "cause", "idx": 0, "label": 0},
            {"premise": "The woman tolerated her friend's difficult behavior.", "choice1": "The woman knew her friend "
             "was going through a hard time.", "choice2": "The woman felt that her friend took advantage of her "
             "kindness.", "question": "cause", "idx": 1, "label": 0}]

    def load_hub(dataset, config, split, what):
        asked.append((dataset, config, split))
        return datasets.Dataset.from_list(rows)

    monkeypatch.setattr(hub, "load_hub", load_hub)  # where every hub definition reads (XCOPA: xcopa.yaml's source_data)
    task = get_task("xcopa", data_root)
    task.check_source_data("en", "hub")
    train, validation = task.source_splits("en", "hub")
    assert asked == [("aps/super_glue", "copa", "train"), ("aps/super_glue", "copa", "validation")]
    assert train.texts[0] == "My body cast a shadow over the grass. What was the cause of this?"
    assert train.choices[1][1].endswith("kindness.") and train.labels == [0, 0] and train.language == "en"
    assert task.module_language("en") == "eng_Latn"


def _evaluate(tmp_path, backbone, data_root, monkeypatch, **options):
    monkeypatch.setattr(ev, "load_backbone", lambda key, device: backbone)
    return ev.evaluate([rd.load_run(tmp_path / "run")], ["ht"], str(data_root), tmp_path / "out.csv",
                       ev.EvalOptions(log_samples=True, **options), progress=False).iloc[0]


@pytest.mark.parametrize("configuration", ["", "tp"])  # method A's prompt; method B's task prompt
def test_xcopa_trains_on_the_gold_choice_and_is_scored_by_its_likeliest_choice(tmp_path, tiny_tokenizer, data_root,
                                                                                monkeypatch, configuration):
    llama = make_backbone("llama", tiny_tokenizer)
    config = TrainConfig(model=llama.name, task="xcopa", source="it", shots=8, prompt_length=3, max_steps=2,
                         lr=0.05, batch_size=4, max_length=64, configuration=configuration,
                         placement="prefix" if configuration else "suffix")
    metrics = Trainer(config, tmp_path / "run", data_dir=str(data_root), backbone=llama).run(progress=False)
    assert math.isfinite(metrics["val_loss"]) and metrics["val_accuracy"] is None
    run_config = rd.load_run(tmp_path / "run").config
    assert run_config["task_kind"] == "choice" and run_config["output"] == "choice" and "max_new_tokens" not in run_config

    row = _evaluate(tmp_path, llama, data_root, monkeypatch)
    records = read_samples(samples_path(tmp_path / "out.csv", "run", "ht"))
    gold = [r["label"] for r in _file_rows(data_root, "ht", "test")]
    assert row["choice_score"] == "sum" and row["n"] == len(records) == len(gold) == 500
    assert [r["target"] for r in records] == gold
    for r in records[:50]:
        assert r["prediction"] == max(range(2), key=r["loglikelihoods"].__getitem__) and r["scores"] == r["loglikelihoods"]
    assert row["accuracy"] == pytest.approx(sum(r["prediction"] == g for r, g in zip(records, gold)) / 500, abs=1e-9)
    assert records[0]["choices"] == list(get_task("xcopa", data_root).load("ht", "test").choices[0])

    row = _evaluate(tmp_path, llama, data_root, monkeypatch, choice_score="per_char")  # not the sum row reused
    normalised = read_samples(samples_path(tmp_path / "out.csv", "run", "ht"))
    assert row["choice_score"] == "per_char"
    for r, s in zip(normalised, records):
        assert r["loglikelihoods"] == pytest.approx(s["loglikelihoods"], abs=1e-6)
        per_char = [ll / len(" " + c) for ll, c in zip(r["loglikelihoods"], r["choices"])]  # as the model read it
        assert r["prediction"] == max(range(2), key=per_char.__getitem__)
    assert row["accuracy"] == pytest.approx(sum(r["prediction"] == g for r, g in zip(normalised, gold)) / 500, abs=1e-9)
