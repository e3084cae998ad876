"""``--log-samples``: per-example records beside the results table, the same numbers as its rows (issue 19).

The rows are recomputed from the records alone (accuracy and macro-F1 by hand, entity F1 from the targets and
predictions, XQuAD's F1 as the mean over questions), on the cached and the uncached path, for several prompts
evaluated over one text cache; the option changes no number, and a resumed evaluation neither recomputes
nor duplicates records.
"""

import json

import by_hand
import pandas as pd
import pytest
import torch
from conftest import make_backbone

from xlpeft import runs as rd
from xlpeft.config import EvalOptions, TrainConfig
from xlpeft.data.sib200 import LABELS
from xlpeft.data.tasks.masakhaner import parse_target
from xlpeft.evaluation import evaluate as ev
from xlpeft.evaluation.predict import classifier_for_run
from xlpeft.evaluation.samples import read_samples, samples_path
from xlpeft.metrics.entities import text_entity_scores
from xlpeft.training.trainer import Trainer

LANGUAGES = ["eng_Latn", "fra_Latn"]
RUNS = {  # two suffix prompts share the text cache; a prefix prompt takes the ordinary path
    "suffix_a": dict(prompt_length=3, seed=0),
    "suffix_b": dict(prompt_length=5, seed=1),
    "prefix": dict(prompt_length=3, placement="prefix"),
}


@pytest.fixture(scope="module")
def llama(tiny_tokenizer):
    return make_backbone("llama", tiny_tokenizer)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, llama, sib_dir):
    root = tmp_path_factory.mktemp("runs")
    for name, settings in RUNS.items():  # max_length 12: most test sentences are cut, so "as read" matters
        config = TrainConfig(model="tiny", shots=2, epochs=1, lr=0.05, batch_size=4, max_length=12, **settings)
        Trainer(config, root / name, data_dir=str(sib_dir), backbone=llama).run(progress=False)
    return [rd.load_run(root / name) for name in RUNS]


def evaluate(runs, out, backbone, data_dir, monkeypatch, languages=LANGUAGES, **options):
    monkeypatch.setattr(ev, "load_backbone", lambda key, device: backbone)
    return ev.evaluate(runs, languages, data_dir, out, EvalOptions(**options), progress=False)


@pytest.mark.parametrize("text_cache", [True, False])
def test_records_recompute_every_row_and_hold_what_each_run_read(tmp_path, runs, llama, sib_dir, monkeypatch,
                                                                  text_cache):
    out = tmp_path / "results.csv"
    table = evaluate(runs, out, llama, str(sib_dir), monkeypatch, log_samples=True, text_cache=text_cache)
    assert len(table) == len(RUNS) * len(LANGUAGES)
    for row in table.to_dict("records"):
        records = read_samples(samples_path(out, row["run"], row["language"]))
        test = pd.read_csv(sib_dir / row["language"] / "test.tsv", sep="\t")
        assert [r["doc_id"] for r in records] == list(range(len(test))) == list(range(row["n"]))
        gold = [LABELS.index(r["target"]) for r in records]
        pred = [LABELS.index(r["prediction"]) for r in records]
        assert gold == [LABELS.index(c) for c in test["category"]]
        assert sum(r["accuracy"] for r in records) / len(records) == pytest.approx(row["accuracy"], abs=1e-6)
        assert by_hand.accuracy(gold, pred) == pytest.approx(row["accuracy"], abs=1e-6)
        assert by_hand.macro_f1(gold, pred, len(LABELS)) == pytest.approx(row["macro_f1"], abs=1e-6)
        for record in records:  # the prediction is the argmax of the logged scores (the first on a tie)
            scores = list(record["scores"].values())
            assert list(record["scores"]) == list(LABELS) and LABELS[scores.index(max(scores))] == record["prediction"]
            assert (record["run"], record["run_id"], record["language"]) == (row["run"], row["run_id"], row["language"])
        run = next(r for r in runs if r.name == row["run"])
        read = classifier_for_run(llama, run).tokenize(list(test["text"]))
        assert max(map(len, read)) == 12 and [r["input"] for r in records] == llama.tokenizer.batch_decode(read)
        assert sum(len(r["input"]) < len(text) for r, text in zip(records, test["text"])) > len(records) / 2  # cut


def test_cached_and_uncached_records_agree(tmp_path, runs, llama, sib_dir, monkeypatch):
    """Several prompts over one text cache: each run's records are its own, and equal to the ordinary path's."""
    cached, uncached = tmp_path / "cached.csv", tmp_path / "uncached.csv"
    evaluate(runs, cached, llama, str(sib_dir), monkeypatch, log_samples=True, languages=["fra_Latn"])
    evaluate(runs, uncached, llama, str(sib_dir), monkeypatch, log_samples=True, languages=["fra_Latn"],
             text_cache=False)
    logged = {}
    for run in runs:
        a, b = (read_samples(samples_path(out, run.name, "fra_Latn")) for out in (cached, uncached))
        assert [r["input"] for r in a] == [r["input"] for r in b]
        scores = torch.tensor([list(r["scores"].values()) for r in a])
        torch.testing.assert_close(scores, torch.tensor([list(r["scores"].values()) for r in b]), atol=1e-4, rtol=1e-4)
        logged[run.name] = scores
    assert not torch.equal(logged["suffix_a"], logged["suffix_b"])  # one cache, each prompt its own scores


def test_the_option_changes_no_number_and_resumes_without_recomputing(tmp_path, runs, llama, sib_dir, monkeypatch):
    plain, logged = tmp_path / "plain" / "results.csv", tmp_path / "logged" / "results.csv"
    evaluate(runs, plain, llama, str(sib_dir), monkeypatch)
    assert not list(plain.parent.glob("*.samples"))
    evaluate(runs[:1], logged, llama, str(sib_dir), monkeypatch, log_samples=True, languages=["eng_Latn"])
    first = samples_path(logged, runs[0].name, "eng_Latn")
    written = first.read_bytes()
    calls = []
    original = ev._predict
    monkeypatch.setattr(ev, "_predict", lambda *args, **kwargs: calls.append(args[1]) or original(*args, **kwargs))
    evaluate(runs, logged, llama, str(sib_dir), monkeypatch, log_samples=True)  # another run, another language
    assert first.read_bytes() == written  # its language recomputed for the other runs: rewritten whole, not appended to
    assert len(calls) == len(LANGUAGES)
    assert sorted(p.relative_to(logged.with_name("results.samples")).as_posix()
                  for p in logged.with_name("results.samples").rglob("*.jsonl")) == sorted(
        f"{run.name}/{language}.jsonl" for run in runs for language in LANGUAGES)
    calls.clear()
    evaluate(runs, logged, llama, str(sib_dir), monkeypatch, log_samples=True)
    assert calls == []  # resumed: rows and records done
    by_key = ["run", "language"]
    pd.testing.assert_frame_equal(pd.read_csv(plain).sort_values(by_key, ignore_index=True),
                                  pd.read_csv(logged).sort_values(by_key, ignore_index=True))


def test_samples_are_added_to_rows_evaluated_without_them_and_stale_ones_replaced(tmp_path, runs, llama, sib_dir,
                                                                                  monkeypatch):
    out = tmp_path / "results.csv"
    evaluate(runs[:1], out, llama, str(sib_dir), monkeypatch, languages=["eng_Latn"])
    path = samples_path(out, runs[0].name, "eng_Latn")
    evaluate(runs[:1], out, llama, str(sib_dir), monkeypatch, languages=["eng_Latn"], log_samples=True)
    assert path.is_file()
    evaluate(runs[:1], out, llama, str(sib_dir), monkeypatch, languages=["eng_Latn"], split="dev")
    assert json.loads(path.read_text().splitlines()[0])["split"] == "test"  # left behind, no longer its row's
    evaluate(runs[:1], out, llama, str(sib_dir), monkeypatch, languages=["eng_Latn"], split="dev", log_samples=True)
    records = read_samples(path)
    assert {r["split"] for r in records} == {"dev"}
    assert len(records) == len(pd.read_csv(sib_dir / "eng_Latn" / "dev.tsv", sep="\t"))


@pytest.fixture(scope="module")
def data_root(sib_dir):
    if not (sib_dir.parent / "tasks").is_dir():
        pytest.skip(f"no tasks/ folder beside {sib_dir}")
    return str(sib_dir.parent)


@pytest.mark.parametrize("task, source, target", [("masakhaner", "eng", "yor"), ("xquad", "en", "en")])
def test_text_task_records_hold_targets_generations_and_recompute_the_row(tmp_path, llama, data_root, monkeypatch,
                                                                            task, source, target):
    config = TrainConfig(model="tiny", task=task, source=source, shots=2, prompt_length=3, epochs=1, lr=0.05,
                         batch_size=4, placement="prefix", max_length=160 if task == "xquad" else 64)
    Trainer(config, tmp_path / "run", data_dir=data_root, backbone=llama).run(progress=False)
    out = tmp_path / "results.csv"
    row = evaluate([rd.load_run(tmp_path / "run")], out, llama, data_root, monkeypatch, languages=[target],
                   log_samples=True, max_new_tokens=4).iloc[0]
    records = read_samples(samples_path(out, "run", target))
    assert len(records) == row["n"]
    assert all(isinstance(r["prediction"], str) and isinstance(r["score"], float) for r in records)
    if task == "masakhaner":
        f1 = text_entity_scores([parse_target(r["target"]) for r in records],
                                [parse_target(r["prediction"]) for r in records])["f1"]
        assert f1 == pytest.approx(row["f1"], abs=1e-6)
        assert by_hand.entity_f1([r["target"] for r in records], [r["prediction"] for r in records]) == pytest.approx(
            row["f1"], abs=1e-6)
    else:  # SQuAD's F1 and EM: per question, the mean over questions; inputs are the question's windows
        assert sum(r["f1"] for r in records) / len(records) == pytest.approx(row["f1"], abs=1e-6)
        assert sum(r["exact_match"] for r in records) / len(records) == pytest.approx(row["exact_match"], abs=1e-6)
        assert all(isinstance(r["target"], list) and r["input"] and isinstance(r["input"], list) for r in records)
