"""docs/your_task.md end to end: a folder of per-language TSV files (own column names, ISO 639-3 codes, a target
with fewer labels than the source) and one YAML file train with method A (`xlpeft train --task FILE`), evaluate
(`xlpeft evaluate RUN`, without the YAML file), and run as a grid with method A and a method B task adapter
(`task: FILE` relative to the grid, `--dry-run` first), on a tiny model."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from xlpeft.cli import main

DEFINITION = """\
name: my_sentiment
kind: classification
data:
  files: "{language}/{split}.tsv"
input: sentence
label: polarity
metric: macro_f1
source: eng
"""
LABELS = ["negative", "neutral", "positive"]  # one token each in the tiny tokenizer, so they are their own words


@pytest.fixture(scope="module")
def folder(tmp_path_factory, sib_dir):
    """eng with all three labels in train/dev/test, deu with a test set of two of them (no neutral)."""
    root = tmp_path_factory.mktemp("my_data")
    lines = {code: (sib_dir / f"{code}_Latn" / "train.tsv").read_text(encoding="utf-8").splitlines()[1:40]
             for code in ("eng", "deu")}
    for code, splits in {"eng": {"train": 12, "dev": 6, "test": 6}, "deu": {"test": 6}}.items():
        texts = [line.split("\t")[2] for line in lines[code]]
        start = 0
        for split, n in splits.items():
            keep = LABELS if code == "eng" else ["negative", "positive"]
            rows = pd.DataFrame({"sentence": texts[start:start + n], "polarity": [keep[i % len(keep)] for i in range(n)]})
            (root / code).mkdir(exist_ok=True)
            rows.to_csv(root / code / f"{split}.tsv", sep="\t", index=False)
            start += n
    (root / "my_sentiment.yaml").write_text(DEFINITION)
    return root


def test_train_and_evaluate_a_task_from_its_file(folder, tmp_path, tiny_model_dir, monkeypatch):
    run = tmp_path / "run"
    assert main(["train", "--task", str(folder / "my_sentiment.yaml"), "--model", str(tiny_model_dir), "--shots", "2",
                 "--epochs", "1", "--prompt-length", "3", "--max-length", "48", "--out", str(run), "--quiet"]) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["train"]["task"] == "my_sentiment" and config["train"]["source"] == "eng"
    assert config["train"]["task_definition"]["data"]["files"] == "{language}/{split}.tsv"
    assert config["labels"] == ["negative", "neutral", "positive"] and config["dropped_rows"] == {}
    (folder / "my_sentiment.yaml").rename(folder / "moved.yaml")  # evaluation needs the run, not the file
    try:
        out = tmp_path / "res.csv"
        monkeypatch.chdir(tmp_path)
        assert main(["evaluate", str(run), "--out", str(out), "--quiet", "--no-plot"]) == 0
    finally:
        (folder / "moved.yaml").rename(folder / "my_sentiment.yaml")
    table = pd.read_csv(out).set_index("language")
    assert list(table.index) == ["deu", "eng"] and set(table["task"]) == {"my_sentiment"}
    assert list(table["n"]) == [6, 6] and table.loc["deu", "name"] == "German"
    assert 0 <= table.loc["deu", "macro_f1"] <= 1


def test_a_grid_trains_the_task_with_method_a_and_b(folder, tmp_path, tiny_model_dir, capsys):
    grid = folder / "grid.yaml"
    grid.write_text(f"""\
name: my_grid
train:
  task: my_sentiment.yaml
  model: {tiny_model_dir}
  configuration: ["", ta]
  placement: prefix
  shots: 2
  epochs: 1
  prompt_length: 3
  max_length: 48
evaluate:
  languages: [deu]
""")
    out = tmp_path / "my_grid"
    assert main(["run", str(grid), "--out", str(out), "--dry-run"]) == 0
    plan = capsys.readouterr().out
    assert "my_grid: 2 runs x 1 languages (test: deu)" in plan and plan.count("todo") == 2
    assert main(["run", str(grid), "--out", str(out), "--quiet"]) == 0
    store = pd.read_parquet(out / "results.parquet")
    assert store["run_id"].nunique() == 2 and set(store["language"]) == {"deu"}
    assert set(store["metric"]) >= {"macro_f1", "accuracy"}



def test_the_done_when_of_issue_19_a_tsv_folder_to_a_report_with_uriel_correlations(tmp_path, tiny_model_dir, sib_dir):
    """The whole path of docs/your_task.md: per-language TSV folders in ISO 639-3 codes with columns of the user's
    naming and label sets that differ across languages, one YAML file, a grid of method A, a method B task adapter
    and a task prompt on soft language prompts (trained first from raw text), then ``xlpeft report``: baselines from
    the data, language names, URIEL distances through the ISO codes and their correlations with the scores."""
    root = tmp_path / "my_data"
    targets = {"deu": ["negative", "positive"], "fra": LABELS, "spa": ["neutral", "positive"]}
    for code, keep in {"eng": LABELS, **targets}.items():
        lines = (sib_dir / f"{code}_Latn" / "train.tsv").read_text(encoding="utf-8").splitlines()[1:31]
        texts = [line.split("\t")[2] for line in lines]
        splits = {"train": texts[:12], "dev": texts[12:18], "test": texts[18:30]} if code == "eng" else {"test": texts[:12]}
        (root / code).mkdir(parents=True)
        for split, rows in splits.items():
            frame = pd.DataFrame({"sentence": rows, "polarity": [keep[i % len(keep)] for i in range(len(rows))]})
            frame.to_csv(root / code / f"{split}.tsv", sep="\t", index=False)
    (root / "my_sentiment.yaml").write_text(DEFINITION)
    modules = tmp_path / "modules"
    (tmp_path / "my_grid.yaml").write_text(f"""\
name: my_grid
train:
  task: my_data/my_sentiment.yaml
  model: {tiny_model_dir}
  configuration: ["", ta, slp+tp]
  placement: prefix
  modules_dir: {modules}
  shots: 2
  epochs: 1
  prompt_length: 3
  max_length: 48
language_modules: {{model: {tiny_model_dir}, modules_dir: {modules}, languages: [eng_Latn, deu_Latn, fra_Latn, spa_Latn],
                   kinds: slp, text: sib200-train, steps: 2, eval_every: 2, block_length: 32, prompt_length: 3}}
evaluate: {{languages: targets}}
""")
    out = tmp_path / "runs"
    assert main(["run", str(tmp_path / "my_grid.yaml"), "--out", str(out), "--data-dir", str(sib_dir.parent), "--quiet"]) == 0
    store = pd.read_parquet(out / "results.parquet")
    assert store["run_id"].nunique() == 3 and set(store["language"]) == set(targets)
    assert main(["report", str(out), "--out", str(tmp_path / "report")]) == 0
    per_language = pd.read_csv(tmp_path / "report" / "per_language.csv")
    assert set(per_language["language"]) == set(targets)
    names = dict(zip(per_language["language"], per_language["name"]))
    assert names["deu"] == "German" and names["fra"] == "French" and names["spa"] == "Spanish"
    # baselines from each target's own test labels: deu and spa have two of the three labels, 6 of 12 each
    majority = per_language.drop_duplicates("language").set_index("language")["majority"]
    assert majority["deu"] == pytest.approx(2 * 0.5 / 1.5 / 2)  # macro-F1 over deu's two labels: F1 2/3 and 0
    correlations = pd.read_csv(tmp_path / "report" / "correlations.csv")
    syntactic = correlations[correlations["kind"] == "syntactic"]
    assert len(syntactic) == 3 and (syntactic["n"] == 3).all() and syntactic["pearson_r"].notna().all()
    assert "my_sentiment" in (tmp_path / "report" / "report.md").read_text()
