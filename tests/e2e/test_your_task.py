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

