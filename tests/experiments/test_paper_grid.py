"""The paper profiles (issue 21). Method B's grid (configs/vykopal2025_tasks.yaml) loads and dry-runs offline,
the (task, language) pairs the data lack are left out with their reasons, and a grid with such a pair completes
and records it. Method A's (configs/philippy2024.yaml) expands to the reference protocol, docs/papers.md's table."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml
from conftest import REPO

from xlpeft.config import TrainConfig
from xlpeft.errors import XlpeftError
from xlpeft.experiments import runner
from xlpeft.experiments.grid import expand, expand_tasks
from xlpeft.tasks import get_task

CONFIG = REPO / "configs" / "vykopal2025_tasks.yaml"
LANGUAGES = "ar bg cs de el en es ml ro ru sl sk sw te ur zh".split()  # methods.md B: the paper's 16
SOURCES = "ar de en es ru zh".split()
# the datasets' own language lists, written out here from their cards, not read from xlpeft
XNLI = set("ar bg de el en es fr hi ru sw th tr ur vi zh".split())  # facebook/xnli: 15 languages
XQUAD = set("ar de el en es hi ro ru th tr vi zh".split())  # github.com/deepmind/xquad: 12 languages


def _paper_spec() -> dict:
    return yaml.safe_load(CONFIG.read_text())


@pytest.fixture(scope="module")
def paper():
    return {grid.subdir: grid for grid in expand_tasks(_paper_spec(), CONFIG.stem)}


def test_the_paper_config_expands_to_the_published_design(paper):
    assert list(paper) == ["xquad", "wikiann", "xnli"]
    modules = paper["xnli"].language_modules
    assert len(modules) == 16 * 2  # 16 languages x {LA, SLP}, shared by the three grids
    assert all(grid.language_modules == modules for grid in paper.values())
    # runs per task = sources with training data x 7 configurations x 3 seeds, less the module runs left out
    assert len(paper["xnli"].runs) == 6 * 7 * 3  # 126: XNLI has training data in all six sources
    assert len(paper["wikiann"].runs) == (6 * 7 - 2 * 4) * 3  # 102: ar and zh have no module code (4 module configs)
    assert len(paper["xquad"].runs) == 1 * 7 * 3  # 21: online QA trains on English SQuAD only
    assert sum(len(grid.runs) for grid in paper.values()) == 249
    # evaluated targets: the 16 less those the dataset lacks (or, WikiANN, whose module xlpeft cannot find)
    assert paper["xnli"].evaluation.languages == [code for code in LANGUAGES if code in XNLI]  # 16 - 6 = 10
    assert paper["xquad"].evaluation.languages == [code for code in LANGUAGES if code in XQUAD]  # 16 - 8 = 8
    assert paper["wikiann"].evaluation.languages == [code for code in LANGUAGES if code not in ("ar", "zh")]  # 14
    runs = [spec.config for grid in paper.values() for spec in grid.runs]
    assert {c.model for c in runs} == {"bigscience/mt0-base"} and {c.precision for c in runs} == {"fp32"}
    assert {c.seed for c in runs} == {0, 1, 2} and {c.batch_size for c in runs} == {32}
    prompts = {(c.optimizer, c.lr, c.weight_decay) for c in runs if c.configuration.endswith("tp")}
    adapters = {(c.optimizer, c.lr, c.weight_decay) for c in runs if c.configuration.endswith("ta")}
    assert prompts == {("adafactor", 0.5, 1e-5)} and adapters == {("adamw", 5e-5, 0.0)}
    slp = {(m.optimizer, m.lr, m.weight_decay, m.prompt_length) for m in modules if m.kind == "slp"}
    la = {(m.optimizer, m.lr, m.steps, m.batch_size, m.block_length) for m in modules if m.kind == "la"}
    assert slp == {("adafactor", 0.5, 1e-5, 50)} and la == {("adamw", 5e-5, 100000, 32, 256)}
    assert all(c.modules_dir == paper["xnli"].modules_dir for c in runs)
    assert {(c.max_steps, c.eval_every, c.template) for c in runs} == {(50000, 1000, "paper")}


def test_the_left_out_pairs_are_the_right_ones_with_their_reasons(paper):
    def left_out(task, role):
        return {skip.language: skip for skip in paper[task].skipped if skip.role == role}

    assert set(left_out("xnli", "target")) == set(LANGUAGES) - XNLI == {"cs", "ml", "ro", "sl", "sk", "te"}
    assert set(left_out("xquad", "target")) == set(LANGUAGES) - XQUAD == {"bg", "cs", "ml", "sl", "sk", "sw", "te", "ur"}
    assert left_out("xnli", "target")["cs"].reason.startswith("xnli has no Czech test set")
    assert left_out("xquad", "target")["te"].reason.startswith("xquad has no Telugu test set")
    assert not left_out("xnli", "source") and not left_out("wikiann", "target").keys() - {"ar", "zh"}
    qa = left_out("xquad", "source")
    assert set(qa) == set(SOURCES) - {"en"} and {skip.runs for skip in qa.values()} == {7 * 3}
    assert "English SQuAD v1.1" in qa["de"].reason
    ner = left_out("wikiann", "source")
    assert set(ner) == {"ar", "zh"} and {skip.runs for skip in ner.values()} == {4 * 3}  # la+ta la+tp slp+ta slp+tp
    assert "'ar'" in ner["ar"].reason and "'zh'" in left_out("wikiann", "target")["zh"].reason


def test_the_paper_config_dry_runs_offline_from_the_cli(tmp_path, capsys):
    from xlpeft.cli import main

    config = tmp_path / CONFIG.name
    config.write_text(yaml.safe_dump(_paper_spec()))
    assert main(["run", str(config), "--out", str(tmp_path / "out"), "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert "language modules: 0/32 trained in modules_paper" in printed
    assert "xnli: 126 runs x 10 languages" in printed and "wikiann: 102 runs x 14 languages" in printed
    assert "xquad: 21 runs x 8 languages" in printed and printed.count("todo") == 249
    assert "left out: xnli target cs: xnli has no Czech test set" in printed
    assert printed.count("left out:") == 6 + 8 + 5 + 4  # XNLI targets, XQuAD targets and sources, WikiANN
    assert not (tmp_path / "out").exists()


def test_a_language_the_task_lacks_is_left_out_but_a_typo_is_an_error():
    grid = expand({"train": {"task": "xnli", "source_data": "hub"}, "evaluate": {"languages": ["de", "cs"]}})
    assert grid.evaluation.languages == ["de"] and [(s.role, s.language) for s in grid.skipped] == [("target", "cs")]
    with pytest.raises(XlpeftError, match="unknown xnli language"):
        expand({"train": {"task": "xnli", "source_data": "hub"}, "evaluate": {"languages": ["de", "xx"]}})
    with pytest.raises(XlpeftError, match="xnli has none of the evaluate languages"):
        expand({"train": {"task": "xnli", "source_data": "hub"}, "evaluate": {"languages": ["cs"]}})
    # SIB-200 still resolves ISO 639-3 items and named sets, leaving nothing out
    grid = expand({"train": {}, "evaluate": {"languages": ["deu", "quick"]}})
    assert grid.evaluation.languages[0] == "deu_Latn" and not grid.skipped
    # the task refuses the same source outside a grid
    with pytest.raises(XlpeftError, match="English SQuAD"):
        TrainConfig(task="xquad", source="de", source_data="hub").resolve(get_task("xquad"))


def test_module_runs_without_a_module_in_the_grid_are_left_out_unless_borrowing(tmp_path):
    spec = {"language_modules": {"modules_dir": str(tmp_path), "languages": ["eng_Latn", "deu_Latn"], "kinds": "slp"},
            "train": {"configuration": ["ta", "slp+ta"], "source": ["eng_Latn", "fra_Latn"], "modules_dir": str(tmp_path),
                      "placement": "prefix"},
            "evaluate": {"languages": ["deu_Latn", "fra_Latn"]}}
    grid = expand(spec)
    assert sorted((s.config.configuration, s.config.source) for s in grid.runs) == [
        ("slp+ta", "eng_Latn"), ("ta", "eng_Latn"), ("ta", "fra_Latn")]
    assert [(s.role, s.language, s.runs) for s in grid.skipped] == [("source", "fra_Latn", 1), ("target", "fra_Latn", 0)]
    assert grid.evaluation.languages == ["deu_Latn"]
    borrowing = expand({**spec, "evaluate": {**spec["evaluate"], "borrow": "syntactic"}})
    assert borrowing.evaluation.languages == ["deu_Latn", "fra_Latn"] and len(borrowing.skipped) == 1


def _fake_xnli(dataset, config, split, what):
    """facebook/xnli's columns, 12 pairs per language and split, four of each label."""
    return {"premise": [f"a {config} premise {i}" for i in range(12)],
            "hypothesis": [f"hypothesis {i}" for i in range(12)], "label": [i % 3 for i in range(12)]}


def test_a_grid_with_a_missing_target_completes_and_records_it(tmp_path, tiny_model_dir, sib_dir, monkeypatch, caplog):
    from xlpeft.tasks import hub

    monkeypatch.setattr(hub, "load_hub", _fake_xnli)
    grid = expand({"name": "nli", "train": {"task": "xnli", "source_data": "hub", "model": str(tiny_model_dir),
                                            "shots": 2, "epochs": 1, "prompt_length": 2, "batch_size": 4},
                   "evaluate": {"languages": ["de", "cs"]}})
    out = tmp_path / "out"
    store = runner.run_local(grid, out, str(sib_dir.parent), progress=False)
    assert set(store["language"]) == {"de"} and set(store["metric"]) == {"accuracy", "macro_f1"}
    assert all(state.evaluated for state in runner.status(grid, out))  # cs is not owed: a rerun does nothing
    skipped = pd.read_csv(out / runner.SKIPPED)
    assert skipped.to_dict("records") == [{"task": "xnli", "role": "target", "language": "cs", "runs": 0,
                                           "reason": grid.skipped[0].reason}]
    assert json.loads((out / "grid.json").read_text())["skipped"][0]["language"] == "cs"
    assert "left out: xnli target cs: xnli has no Czech test set" in caplog.text


BLOOM_BARE = {"geography": "earth", "science/technology": "science", "entertainment": "fun", "politics": "government",
              "health": "health", "travel": "travel", "sports": "play"}  # methods.md A's BLOOM words, as the reference


def test_method_a_paper_profile_is_the_reference_protocol():
    from xlpeft.experiments.grid import load_grid
    from xlpeft.objectives.verbalizer import parse_label_words

    runs = [spec.config for spec in load_grid(REPO / "configs" / "philippy2024.yaml").runs]
    assert len(runs) == 2 * (2 * 5 * 2 + 1) * 4  # models x (regimes with a prompt x lengths x reparams + full) x seeds
    # HF Trainer's defaults around the authors' code: no weight decay, clipping at 1.0; 50 epochs, fp32, dropout on
    assert {(c.weight_decay, c.max_grad_norm, c.epochs, c.precision, c.init) for c in runs} == {
        (0.0, 1.0, 50, "fp32", "uniform")}
    assert {c.frozen_dropout for c in runs if c.regime != "full"} == {True}
    # the reference's 128 tokens held the prompt and the EOS: text budget 128 - L - 1
    assert {c.max_length == 128 - c.prompt_length - 1 for c in runs} == {True}
    # the LayerNorm affine trains exactly in the joint runs with the MLP
    assert {(c.regime, c.reparam, c.reparam_affine) for c in runs if c.reparam_affine == "on"} == {("joint", "mlp", "on")}
    words = {c.model: c.label_words for c in runs}
    assert words["facebook/xglm-564M"] == ""  # XGLM's SentencePiece words already are the reference's tokens
    assert parse_label_words(words["bigscience/bloom-560m"], tuple(BLOOM_BARE)) == BLOOM_BARE
