"""Every task trains and evaluates through the same trainer and evaluator (xlpeft/tasks), method A and B."""

import math

import by_hand
import pandas as pd
import pytest
from conftest import make_backbone, make_seq2seq

from xlpeft import runs as rd
from xlpeft.config import LanguageModuleConfig, TrainConfig
from xlpeft.data.tasks.xquad import Answer, QaExample
from xlpeft.errors import XlpeftError
from xlpeft.evaluation import evaluate as ev
from xlpeft.experiments.grid import expand, run_id
from xlpeft.heads.generation import Generated
from xlpeft.tasks import Examples, get_task
from xlpeft.training.language_module import LanguageModuleTrainer
from xlpeft.training.trainer import Trainer

# task -> (source, a target, the main metric column)
CASES = {
    "nusax": ("eng", "jav", "macro_f1"),
    "americasnli": ("quy", "aym", "accuracy"),
    "masakhaner": ("eng", "yor", "f1"),
    "xquad": ("en", "en", "f1"),  # held-out English articles (the tiny tokenizer splits other questions finely)
    "xnli": ("en", "de", "accuracy"),
}


@pytest.fixture(scope="module")
def data_root(sib_dir):
    if not (sib_dir.parent / "tasks").is_dir():
        pytest.skip(f"no tasks/ folder beside {sib_dir}")
    return str(sib_dir.parent)


@pytest.fixture(scope="module")
def llama(tiny_tokenizer):
    return make_backbone("llama", tiny_tokenizer)


def train(path, backbone, data_root, task, **overrides):
    settings = dict(model=backbone.name, task=task, source=CASES[task][0], shots=2, prompt_length=3, epochs=2,
                    lr=0.05, batch_size=4, max_length=64)
    config = TrainConfig(**{**settings, **overrides})
    return Trainer(config, path, data_dir=data_root, backbone=backbone).run(progress=False)


def record_predictions(monkeypatch) -> list:
    """Every prediction the evaluator makes, as it makes it: per language, {run: labels} or (inputs, outputs)."""
    made = []

    def spy(predict):
        def recorded(*args, **kwargs):
            made.append(predict(*args, **kwargs))
            return made[-1]
        return recorded

    monkeypatch.setattr(ev, "_predict", spy(ev._predict))
    monkeypatch.setattr(ev, "predict_text", spy(ev.predict_text))
    return made


def recomputed(task, target: str, predicted) -> dict:
    """The main metric recomputed from the evaluator's predictions: by hand (tests/by_hand.py) for labels and
    generated entities; for XQuAD, whose answers are gathered over context windows, by the task's scorer."""
    examples = task.load(target, "test")
    if task.name == "masakhaner":
        return {"f1": by_hand.entity_f1(list(examples.targets), [o.text for o in predicted[1]])}
    if task.name == "xquad":
        return {"f1": task.score(examples, *predicted)["f1"]}
    [labels] = predicted.values()
    return {"accuracy": by_hand.accuracy(examples.labels, labels),
            "macro_f1": by_hand.macro_f1(examples.labels, labels, len(task.labels))}


def evaluate(tmp_path, backbone, runs, languages, data_root, monkeypatch, **options):
    monkeypatch.setattr(ev, "load_backbone", lambda key, device: backbone)
    return ev.evaluate([rd.load_run(tmp_path / r) for r in runs], languages, data_root, tmp_path / "out.csv",
                       ev.EvalOptions(**options), progress=False)


@pytest.mark.parametrize("task", [task for task in CASES if task != "xnli"])
def test_each_task_trains_and_is_scored_with_its_metric(tmp_path, llama, data_root, task, monkeypatch):
    source, target, metric = CASES[task]
    placement = "prefix" if get_task(task).kind == "text" else "suffix"
    max_length = 160 if task == "xquad" else 64  # room for the longest question and some context
    metrics = train(tmp_path / "run", llama, data_root, task, placement=placement, max_length=max_length)
    assert math.isfinite(metrics["val_loss"])
    config = rd.load_run(tmp_path / "run").config
    assert config["task"] == task and config["train"]["source"] == source
    made = record_predictions(monkeypatch)
    table = evaluate(tmp_path, llama, ["run"], [target], data_root, monkeypatch)
    row = table.iloc[0]
    assert row["task"] == task and row["language"] == target
    [predicted] = made
    assert row[metric] == pytest.approx(recomputed(get_task(task, data_root), target, predicted)[metric], abs=1e-6)
    assert row["n"] == len(get_task(task, data_root).load(target, "test"))


def test_text_task_on_an_encoder_decoder_scores_its_generated_outputs(tmp_path, special_tokenizer, data_root):
    from xlpeft.data.tasks.masakhaner import parse_target
    from xlpeft.evaluation.predict import predict_text
    from xlpeft.metrics.entities import text_entity_scores

    mt5 = make_seq2seq(special_tokenizer)
    train(tmp_path / "run", mt5, data_root, "masakhaner", placement="prefix")
    task = get_task("masakhaner", data_root)
    examples = task.load("yor", "test").subset(range(12))
    inputs, outputs = predict_text(mt5, rd.load_run(tmp_path / "run"), task, examples, batch_size=5)
    assert len(outputs) == 12 and inputs.texts == examples.texts
    expected = text_entity_scores([parse_target(t) for t in examples.targets], [parse_target(o.text) for o in outputs])
    assert task.score(examples, inputs, outputs)["f1"] == expected["f1"]


def test_ner_on_an_encoder_tags_words_and_is_scored_by_span_f1(tmp_path, special_tokenizer, data_root, monkeypatch):
    from conftest import make_encoder

    from xlpeft.evaluation.predict import predict_text
    from xlpeft.metrics.entities import entity_scores

    xlmr = make_encoder(special_tokenizer)
    train(tmp_path / "run", xlmr, data_root, "masakhaner", placement="prefix", shots=8)
    run = rd.load_run(tmp_path / "run")
    assert run.config["head_used"] == "linear" and run.head is not None
    task = get_task("masakhaner", data_root)
    examples = task.load("yor", "test").subset(range(20))
    _, tags = predict_text(xlmr, run, task, examples, batch_size=8)
    assert [len(t) for t in tags] == [len(s.tokens) for s in examples.items]
    assert set(sum(tags, [])) <= set(task.tags)
    expected = entity_scores([s.tags for s in examples.items], tags)["f1"]
    assert task.score(examples, examples, tags)["f1"] == expected
    made = record_predictions(monkeypatch)
    table = evaluate(tmp_path, xlmr, ["run"], ["yor"], data_root, monkeypatch)
    [(_, all_tags)] = made
    gold = [s.tags for s in task.load("yor", "test").items]
    assert table.iloc[0]["n"] == len(gold)
    assert table.iloc[0]["f1"] == pytest.approx(entity_scores(gold, all_tags)["f1"], abs=1e-6)


def test_text_tasks_refuse_encoders_and_linear_heads(tmp_path, special_tokenizer, llama, data_root):
    from conftest import make_encoder

    with pytest.raises(XlpeftError, match="text-to-text tasks need a decoder"):
        train(tmp_path / "a", make_encoder(special_tokenizer), data_root, "xquad", placement="prefix", max_length=160)
    with pytest.raises(XlpeftError, match="generates with the LM head"):
        train(tmp_path / "b", llama, data_root, "xquad", head="linear")


def test_americasnli_needs_english_from_the_hub_or_a_local_source(tmp_path, llama, data_root):
    with pytest.raises(XlpeftError, match="--source-data hub.*--source one of aym"):
        train(tmp_path / "a", llama, data_root, "americasnli", source="en")
    task = get_task("americasnli", data_root)
    train_split, validation = task.source_splits("quy", "local")
    assert not set(train_split.ids) & set(validation.ids)
    assert len(train_split) + len(validation) == len(task.load("quy", "dev"))


def test_sampling_text_tasks_is_seeded_and_counts_examples(data_root):
    task = get_task("masakhaner", data_root)
    train_split, dev = task.source_splits("eng", "local")
    a, b, c = (task.sample(train_split, dev, 16, seed) for seed in (3, 3, 4))
    assert a.train.ids == b.train.ids and a.train.ids != c.train.ids
    assert (len(a.train), len(a.validation)) == (16, 8)
    assert a.train.targets[0] and all(t for t in a.train.targets)  # "none" for sentences without entities
    with pytest.raises(XlpeftError, match="--shots 99999"):
        task.sample(train_split, dev, 99999, 0)


def test_xquad_windows_keep_the_question_and_the_best_window_answers(tiny_tokenizer):
    task = get_task("xquad")
    context = " ".join(f"word{i}" for i in range(60)) + " The answer is Paris. " + " ".join(f"tail{i}" for i in range(60))
    start = context.index("Paris")
    example = QaExample("q1", 0, context, "Where?", (Answer("Paris", start),))
    examples = Examples("en", "test", ["q1"], ["Where?"], targets=["Paris"], items=[example])
    windows = task.model_inputs(examples, tiny_tokenizer, 48, training=False)
    assert len(windows) > 2 and all(text.startswith("Where?\n") for text in windows.texts)
    assert all(len(tiny_tokenizer(t)["input_ids"]) <= 48 for t in windows.texts)
    training = task.model_inputs(examples, tiny_tokenizer, 48, training=True)
    assert 1 <= len(training) < len(windows) and set(training.targets) == {"Paris"}
    # the highest-scoring window's answer is the question's prediction
    outputs = [Generated("London", -2.0) for _ in range(len(windows))]
    best = [i for i, item in enumerate(windows.items) if item.answer_text == "Paris"][0]
    outputs[best] = Generated("Paris", -0.5)
    assert task.score(examples, windows, outputs) == {"f1": 1.0, "exact_match": 1.0, "n": 1}
    outputs[best] = Generated("Paris", -3.0)
    assert task.score(examples, windows, outputs)["f1"] == 0.0


def test_offline_xquad_never_evaluates_a_question_it_trained_on(data_root):
    task = get_task("xquad", data_root)
    train_split, validation = task.source_splits("en", "local")
    held_out = task.load("de", "test")
    trained = {e.article for e in train_split.items} | {e.article for e in validation.items}
    assert trained.isdisjoint(e.article for e in held_out.items)
    assert len(held_out) + len(train_split) + len(validation) == 1190
    assert len(task.load("de", "test", source_data="hub")) == 1190


@pytest.fixture(scope="module")
def modules(tmp_path_factory, llama, data_root):
    """A language adapter and a soft language prompt for English and Javanese on the tiny Llama."""
    root = tmp_path_factory.mktemp("modules")
    for language in ("eng_Latn", "jav_Latn"):
        for kind in ("la", "slp"):
            config = LanguageModuleConfig(model=llama.name, language=language, kind=kind, text="sib200-train", steps=4,
                                          batch_size=4, block_length=32, eval_every=2, prompt_length=4,
                                          reduction_factor=4, validation_lines=40, lr=0.01)
            LanguageModuleTrainer(config, root, data_dir=data_root, backbone=llama).run(progress=False)
    return root


@pytest.mark.parametrize("task,configuration", [("nusax", "la+ta"), ("nusax", "slp+tp"), ("masakhaner", "slp+ta")])
def test_method_b_on_other_tasks_swaps_in_each_targets_module(tmp_path, llama, modules, data_root, task,
                                                              configuration, monkeypatch):
    train(tmp_path / "run", llama, data_root, task, configuration=configuration, modules_dir=str(modules),
          placement="prefix", adapter_reduction_factor=4)
    config = rd.load_run(tmp_path / "run").config
    assert config["language_module"]["language"] == "eng_Latn"
    own, borrowing = ("jav", "sun") if task == "nusax" else (None, "hau")
    languages = [code for code in (own, borrowing) if code]
    table = evaluate(tmp_path, llama, ["run"], languages, data_root, monkeypatch, borrow="genetic")
    table = table.set_index("language")
    if own:
        assert table.loc[own, "module_language"] == "jav_Latn" and not table.loc[own, "module_borrowed"]
    assert table.loc[borrowing, "module_borrowed"]
    assert table.loc[borrowing, "module_language"] in ("eng_Latn", "jav_Latn")
    assert (table["configuration"] == configuration).all()


def test_run_ids_of_sib200_runs_do_not_change_with_the_task_fields():
    assert "task" not in TrainConfig(source="eng_Latn").identity()
    assert TrainConfig(task="nusax").identity()["task"] == "nusax"
    assert run_id(TrainConfig(source="eng_Latn")) != run_id(TrainConfig(source="eng_Latn", task="nusax"))


def test_a_grid_of_another_task_resolves_its_languages_in_the_tasks_codes():
    grid = expand({"train": {"task": "nusax", "seed": [0, 1]}, "evaluate": {"languages": "targets"}})
    assert [spec.config.source for spec in grid.runs] == ["eng", "eng"]
    assert grid.evaluation.languages == [code for code in get_task("nusax").languages if code != "eng"]
    with pytest.raises(XlpeftError, match="one task"):
        expand({"train": {"task": ["nusax", "sib200"]}})
    with pytest.raises(XlpeftError, match="unknown nusax language"):
        expand({"train": {"task": "nusax"}, "evaluate": {"languages": ["xx"]}})


def test_cli_trains_and_evaluates_a_text_task(tmp_path, tiny_model_dir, data_root):
    from xlpeft.cli import main
    from xlpeft.data.task_names import TASK_NAMES
    from xlpeft.tasks import TASKS

    assert set(TASK_NAMES) == set(TASKS)
    run = tmp_path / "ner"
    assert main(["train", "--task", "masakhaner", "--model", str(tiny_model_dir), "--shots", "4", "--epochs", "1",
                 "--placement", "prefix", "--prompt-length", "3", "--max-length", "64", "--out", str(run),
                 "--quiet", "--data-dir", data_root]) == 0
    out = tmp_path / "res.csv"
    assert main(["evaluate", str(run), "--languages", "hau", "--out", str(out), "--quiet", "--data-dir",
                 data_root]) == 0
    table = pd.read_csv(out)
    assert list(table["language"]) == ["hau"] and {"f1", "precision", "recall"} <= set(table.columns)
    assert out.with_suffix(".png").stat().st_size > 0
    assert main(["train", "--task", "americasnli", "--source", "en", "--model", str(tiny_model_dir),
                 "--out", str(tmp_path / "x"), "--quiet", "--data-dir", data_root]) == 2


def _fake_hub(calls):
    """Stands in for datasets: XNLI and WikiANN rows in the hub's column layout."""
    def load_hub(dataset, config, split, what):
        calls.append((dataset, config, split))
        if dataset == "facebook/xnli":
            return {"premise": [f"a {config} premise {i}" for i in range(12)],
                    "hypothesis": [f"hypothesis {i}" for i in range(12)], "label": [i % 3 for i in range(12)]}
        return {"tokens": [["Ada", "Lovelace", "visited", "Paris"], ["nothing", "here"]],
                "ner_tags": [[1, 2, 0, 5], [0, 0]]}

    return load_hub


def test_online_tasks_read_the_hub_by_name(tmp_path, llama, data_root, monkeypatch):
    from xlpeft.tasks import hub

    calls = []
    monkeypatch.setattr(hub, "load_hub", _fake_hub(calls))
    with pytest.raises(XlpeftError, match="--source-data hub"):
        train(tmp_path / "a", llama, data_root, "xnli")
    train(tmp_path / "run", llama, data_root, "xnli", source_data="hub")
    table = evaluate(tmp_path, llama, ["run"], ["de"], data_root, monkeypatch)
    assert ("facebook/xnli", "en", "train") in calls and ("facebook/xnli", "de", "test") in calls
    assert table.iloc[0]["n"] == 12 and table.iloc[0]["task"] == "xnli"
    wikiann = get_task("wikiann")
    examples = wikiann.load("yo", "test")
    assert examples.targets == ["PER: Ada Lovelace$$LOC: Paris", "none"]
    assert wikiann.module_language("yo") == "yor_Latn" and wikiann.module_language("sw") == "swh_Latn"  # swa -> swh
    assert wikiann.module_language("zh") == "zh" and wikiann.module_language("ar") == "ar"  # ambiguous: no module
    with pytest.raises(XlpeftError, match="name the ones to use"):
        wikiann.resolve_languages("all")


def test_languages_outside_sib200_borrow_by_their_iso_code(modules, llama):
    from xlpeft.data.distances import distances
    from xlpeft.modular.registry import ModuleRegistry

    table = distances(["bbc"], ["ind_Latn", "eng_Latn"], ("genetic",)).set_index("target")
    assert table.loc["ind_Latn", "genetic"] < table.loc["eng_Latn", "genetic"]  # Toba Batak is Austronesian
    resolved = ModuleRegistry(modules).resolve(llama, get_task("nusax").module_language("bbc"), "la", "genetic")
    assert resolved.borrowed and resolved.module.language == "jav_Latn"
    with pytest.raises(XlpeftError, match="unknown language"):
        distances(["qqq"], ["ind_Latn"], ("genetic",))


def test_borrowed_rows_are_recomputed_when_the_borrowing_distance_changes(tmp_path, llama, modules, data_root,
                                                                          monkeypatch):
    train(tmp_path / "run", llama, data_root, "nusax", configuration="la+ta", modules_dir=str(modules),
          placement="prefix", adapter_reduction_factor=4)
    evaluate(tmp_path, llama, ["run"], ["jav", "sun"], data_root, monkeypatch, borrow="genetic")
    calls = []
    monkeypatch.setattr(ev, "predict_modular", lambda *args: calls.append(args) or [0] * len(args[2]))
    evaluate(tmp_path, llama, ["run"], ["jav", "sun"], data_root, monkeypatch, borrow="genetic")
    assert calls == []
    table = evaluate(tmp_path, llama, ["run"], ["jav", "sun"], data_root, monkeypatch, borrow="syntactic")
    assert len(calls) == 1 and len(table) == 2  # only the borrowed row, recomputed once
    assert table.set_index("language").loc["sun", "module_distance_kind"] == "syntactic"


def test_a_grid_of_a_text_task_stores_its_own_metrics(tmp_path, tiny_model_dir, data_root):
    """The results store holds the task's metric columns (MasakhaNER: f1, precision, recall), not SIB-200's."""
    from xlpeft.analysis.tables import analyse
    from xlpeft.experiments import runner

    grid = expand({"name": "ner", "train": {"task": "masakhaner", "model": str(tiny_model_dir), "shots": 2,
                                            "epochs": 1, "placement": "prefix", "prompt_length": 3,
                                            "max_length": 64, "batch_size": 4},
                   "evaluate": {"languages": ["hau"]}})
    store = runner.run_local(grid, tmp_path / "out", data_root, progress=False)
    assert set(store["metric"]) == {"f1", "precision", "recall"} and set(store["language"]) == {"hau"}
    assert store.equals(runner.load_results(tmp_path / "out"))
    report = analyse(tmp_path / "out")  # the report reads the task's own metric (entity F1), not SIB-200's accuracy
    assert report.metric == "f1" and report.languages == ["hau"]


def test_generation_length_comes_from_training_targets_not_the_evaluated_answers(tmp_path, llama, data_root,
                                                                                  monkeypatch):
    """Issue 18 item 7: generation ran for as many tokens as the evaluated language's longest gold answer."""
    from xlpeft.heads.generation import TextToText

    train(tmp_path / "run", llama, data_root, "masakhaner", placement="prefix")
    recorded = rd.load_run(tmp_path / "run").config["max_new_tokens"]
    task = get_task("masakhaner", data_root)
    sample = Trainer(TrainConfig(model=llama.name, task="masakhaner", source="eng", shots=2, prompt_length=3,
                                 placement="prefix", max_length=64), tmp_path / "probe", data_dir=data_root,
                     backbone=llama)._sample()
    assert recorded == max(task.answer_tokens(split, llama.tokenizer) for split in (sample.train, sample.validation))
    seen = []
    original = TextToText.generate
    monkeypatch.setattr(TextToText, "generate", lambda self, ids, prompt, n, batch_size=16:
                        seen.append(n) or original(self, ids, prompt, n, batch_size))
    table = evaluate(tmp_path, llama, ["run"], ["yor", "hau"], data_root, monkeypatch)
    assert set(seen) == {recorded} and set(table["max_new_tokens"]) == {recorded}
    seen.clear()
    table = evaluate(tmp_path, llama, ["run"], ["yor"], data_root, monkeypatch, max_new_tokens=3)
    assert set(seen) == {3} and table.set_index("language").loc["yor", "max_new_tokens"] == 3  # recomputed


def test_tagging_rows_count_the_words_beyond_the_length_limit(tmp_path, special_tokenizer, data_root, monkeypatch):
    from conftest import make_encoder

    xlmr = make_encoder(special_tokenizer)
    train(tmp_path / "run", xlmr, data_root, "masakhaner", placement="prefix", max_length=8)
    row = evaluate(tmp_path, xlmr, ["run"], ["yor"], data_root, monkeypatch).iloc[0]
    sentences = get_task("masakhaner", data_root).load("yor", "test").items
    assert row["max_length"] == 8 and 0 < row["n_truncated"] <= len(sentences)
    assert row["n_words_cut"] >= row["n_truncated"]
