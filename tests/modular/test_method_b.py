"""Method B: language modules trained on text, task modules on top, the seven configurations, swapping and
borrowing language modules at evaluation, the registry's backbone check."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
from conftest import make_backbone, make_encoder, make_seq2seq, with_template
from transformers import PreTrainedTokenizerFast

from xlpeft import runs as rd
from xlpeft.adapters import adapter_names, adapter_state_dict
from xlpeft.config import LanguageModuleConfig, TrainConfig
from xlpeft.data.sib200 import Sib200
from xlpeft.errors import XlpeftError
from xlpeft.evaluation import evaluate as ev
from xlpeft.evaluation.predict import predict_modular
from xlpeft.modular.configurations import CONFIGURATIONS, Configuration
from xlpeft.modular.registry import ModuleRegistry, list_modules
from xlpeft.modular.stack import TASK_ADAPTER, ModuleStack, splice_lm_prompt
from xlpeft.runs import CHECKPOINT
from xlpeft.training.language_module import LanguageModuleTrainer
from xlpeft.training.trainer import Trainer

LM = dict(text="sib200-train", steps=6, batch_size=4, block_length=32, eval_every=3, prompt_length=4,
          reduction_factor=4, validation_lines=40, lr=0.01)


@pytest.fixture(scope="module")
def data_dir(sib_dir):
    return str(sib_dir.parent)


def lm_trainer(root, backbone, language, kind, data_dir, **overrides):
    config = LanguageModuleConfig(model=backbone.name, language=language, kind=kind, **{**LM, **overrides})
    return LanguageModuleTrainer(config, root, data_dir=data_dir, backbone=backbone)


@pytest.fixture(scope="module")
def llama(tiny_tokenizer):
    """Shared by the tests of this module: each leaves it as it found it (which some of them check)."""
    return make_backbone("llama", tiny_tokenizer)


@pytest.fixture(scope="module")
def modules(tmp_path_factory, llama, data_dir):
    """LA and SLP for English and German on the tiny Llama."""
    root = tmp_path_factory.mktemp("modules")
    for language in ("eng_Latn", "deu_Latn"):
        for kind in ("la", "slp"):
            lm_trainer(root, llama, language, kind, data_dir).run(progress=False)
    return root


def task_run(path, backbone, configuration, modules_root, sib_dir, **overrides):
    settings = dict(model=backbone.name, shots=4, prompt_length=3, epochs=2, lr=0.05, batch_size=4, placement="prefix",
                    configuration=configuration, modules_dir=str(modules_root), adapter_reduction_factor=4)
    return Trainer(TrainConfig(**{**settings, **overrides}), path, data_dir=str(sib_dir), backbone=backbone)


# ---------------------------------------------------------------------------------------------- modules
@pytest.mark.parametrize("kind", ["la", "slp"])
def test_language_module_learns_the_text_and_is_stored_with_its_record(tmp_path, llama, data_dir, kind):
    meta = lm_trainer(tmp_path, llama, "deu_Latn", kind, data_dir, steps=12, lr=0.05).run(progress=False)
    assert meta["val_loss_best"] < meta["val_loss_initial"]
    assert meta["tokens_seen"] == 12 * 4 * 32  # packed blocks: no padding until the text runs out
    assert meta["text"]["source"] == "sib200-train" and meta["text"]["lines_validation"] == 40
    assert meta["parameters"] == (2 * (2 * 32 * 8 + 8 + 32) if kind == "la" else 4 * 32)
    assert meta["objective"] == "CausalLM" and meta["backbone"]["model_type"] == "llama"
    folder = tmp_path / "tiny-llama" / "deu_Latn" / kind
    assert (folder / "module.json").is_file() and not (folder.parent / f".{kind}.partial").exists()
    assert adapter_names(llama.model) == []  # the shared backbone is left as it was given
    log = [json.loads(line) for line in (folder / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [3, 6, 9, 12]


@pytest.mark.parametrize("settings", [{}, dict(optimizer="adafactor", max_grad_norm=0.5)], ids=["adamw", "adafactor"])
def test_interrupted_language_module_resumes_to_identical_weights(tmp_path, llama, data_dir, monkeypatch, settings):
    whole = lm_trainer(tmp_path / "a", llama, "deu_Latn", "la", data_dir, **settings).run(progress=False)
    trainer = lm_trainer(tmp_path / "b", llama, "deu_Latn", "la", data_dir, **settings)
    original = LanguageModuleTrainer._checkpoint

    def crash_after_first(self, *args):
        original(self, *args)
        raise KeyboardInterrupt

    monkeypatch.setattr(LanguageModuleTrainer, "_checkpoint", crash_after_first)
    with pytest.raises(KeyboardInterrupt):
        trainer.run(progress=False)
    assert (trainer.work / CHECKPOINT).is_file() and not trainer.final.exists()
    monkeypatch.setattr(LanguageModuleTrainer, "_checkpoint", original)
    resumed = lm_trainer(tmp_path / "b", llama, "deu_Latn", "la", data_dir, **settings).run(progress=False)
    assert resumed["val_loss_best"] == whole["val_loss_best"] and resumed["tokens_seen"] == whole["tokens_seen"]
    a = torch.load(tmp_path / "a/tiny-llama/deu_Latn/la/adapter/pytorch_adapter.bin")
    b = torch.load(tmp_path / "b/tiny-llama/deu_Latn/la/adapter/pytorch_adapter.bin")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_soft_language_prompt_trains_with_the_papers_adafactor_and_clipping(tmp_path, llama, data_dir):
    meta = lm_trainer(tmp_path, llama, "deu_Latn", "slp", data_dir, steps=12, optimizer="adafactor", lr=0.5,
                      weight_decay=1e-5, max_grad_norm=1.0).run(progress=False)
    assert meta["val_loss_best"] < meta["val_loss_initial"]
    assert (meta["train"]["optimizer"], meta["train"]["max_grad_norm"]) == ("adafactor", 1.0)


def test_a_module_written_before_the_optimizer_options_is_still_the_same_module(tmp_path, llama, data_dir):
    lm_trainer(tmp_path, llama, "deu_Latn", "la", data_dir).run(progress=False)
    path = tmp_path / "tiny-llama" / "deu_Latn" / "la" / "module.json"
    meta = json.loads(path.read_text())
    for key in ("optimizer", "max_grad_norm"):
        del meta["train"][key]
    path.write_text(json.dumps(meta))  # as an earlier xlpeft wrote it
    assert LanguageModuleConfig.from_dict(meta["train"]) == lm_trainer(tmp_path, llama, "deu_Latn", "la", data_dir).config
    again = lm_trainer(tmp_path, llama, "deu_Latn", "la", data_dir).run(progress=False)  # already trained: no error
    assert again["train"] == meta["train"]


@pytest.fixture
def t5_tokenizer(tiny_tokenizer) -> PreTrainedTokenizerFast:
    tok = PreTrainedTokenizerFast(tokenizer_object=tiny_tokenizer.backend_tokenizer, eos_token="</s>", pad_token="<pad>")
    tok.add_tokens([f"<extra_id_{i}>" for i in reversed(range(100))], special_tokens=True)
    return tok


@pytest.mark.parametrize("family", ["mt5", "xlm-roberta", "xglm", "bloom"])
def test_each_backbone_kind_trains_both_modules_with_its_objective(tmp_path, data_dir, family, tiny_tokenizer,
                                                                   special_tokenizer, t5_tokenizer):
    backbone = {"mt5": lambda: make_seq2seq(t5_tokenizer), "xlm-roberta": lambda: make_encoder(special_tokenizer),
                "xglm": lambda: make_backbone("xglm", tiny_tokenizer),
                "bloom": lambda: make_backbone("bloom", tiny_tokenizer)}[family]()
    objective = {"mt5": "SpanCorruption", "xlm-roberta": "MaskedLM"}.get(family, "CausalLM")
    for kind in ("la", "slp"):
        meta = lm_trainer(tmp_path, backbone, "eng_Latn", kind, data_dir, steps=8, lr=0.1).run(progress=False)
        assert meta["objective"] == objective and meta["val_loss_best"] < meta["val_loss_initial"]


def test_a_bos_first_models_language_module_trains_on_blocks_that_start_with_bos(tmp_path, tiny_tokenizer, data_dir):
    """Issue 17: Gemma's language modules packed blocks without the BOS it always reads at evaluation."""
    with_bos = with_template(tiny_tokenizer, "<bos>")
    for backbone, lead in ((make_backbone("gemma3", with_bos), [with_bos.bos_token_id]),
                           (make_backbone("llama", tiny_tokenizer), [])):  # SmolLM2: no BOS, the paper's layout
        objective = lm_trainer(tmp_path, backbone, "eng_Latn", "slp", data_dir)._objective(backbone)
        batch = next(objective.batches([[10, 11, 12]] * 40, batch_size=2, seed=0))
        assert batch["input_ids"].shape[1] == LM["block_length"]
        assert (batch["input_ids"][:, :len(lead)] == torch.tensor(lead)).all() and batch["input_ids"][0, len(lead)] == 10


def test_splice_puts_the_prompt_before_the_text_and_never_predicts_it(tiny_tokenizer, special_tokenizer):
    gemma = make_backbone("gemma3", with_template(tiny_tokenizer, "<bos>"))  # reads [BOS][prompt][text], as evaluated
    for backbone, at in ((make_backbone("llama", tiny_tokenizer), 0), (make_encoder(special_tokenizer), 1), (gemma, 1)):
        ids = torch.tensor([[5, 6, 7, 8], [9, 10, 0, 0]])
        batch = {"input_ids": ids, "attention_mask": (ids > 0).long(), "labels": torch.where(ids > 0, ids, -100)}
        prompt = torch.randn(3, 32)
        out = splice_lm_prompt(backbone, batch, prompt)
        assert out["inputs_embeds"].shape == (2, 7, 32)
        torch.testing.assert_close(out["inputs_embeds"][0, at:at + 3], prompt * backbone.embed_scale)
        assert out["attention_mask"].sum(1).tolist() == [7, 5]
        assert (out["labels"][:, at:at + 3] == -100).all()
        assert out["labels"][0].tolist() == [5, 6, 7, 8][:at] + [-100] * 3 + [5, 6, 7, 8][at:]


# ---------------------------------------------------------------------------------------------- registry
def test_module_of_another_backbone_is_refused_with_the_fix(modules, tiny_tokenizer):
    other = make_backbone("llama", tiny_tokenizer, seed=1)  # same architecture and name, other weights
    with pytest.raises(XlpeftError, match="trained for backbone 'tiny-llama'.*embedding weights"):
        ModuleRegistry(modules).load(other, "eng_Latn", "la")
    xglm = make_backbone("xglm", tiny_tokenizer)
    xglm.name = "tiny-llama"
    with pytest.raises(XlpeftError, match="llama.*xglm.*model_type"):
        ModuleRegistry(modules).load(xglm, "eng_Latn", "slp")


def test_missing_module_error_names_the_training_command_and_borrowing(modules, llama):
    with pytest.raises(XlpeftError, match="no language adapter.*fra_Latn.*xlpeft language-module train.*--borrow"):
        ModuleRegistry(modules).load(llama, "fra_Latn", "la")


def test_borrowing_takes_the_nearest_language_by_the_chosen_distance(modules, llama):
    from xlpeft.data.distances import distances

    registry = ModuleRegistry(modules)
    for kind in ("syntactic", "genetic"):
        table = distances(["nld_Latn"], ["deu_Latn", "eng_Latn"], (kind,)).set_index("target")[kind]
        resolved = registry.resolve(llama, "nld_Latn", "la", borrow=kind)
        assert resolved.borrowed and resolved.module.language == table.idxmin()
        assert resolved.distance == pytest.approx(table.min())
    own = registry.resolve(llama, "deu_Latn", "la", borrow="syntactic")
    assert not own.borrowed and own.module.language == "deu_Latn" and own.distance == 0
    with pytest.raises(XlpeftError, match="unknown --borrow"):
        registry.resolve(llama, "nld_Latn", "la", borrow="closest")
    assert sorted(list_modules(modules)["language"]) == ["deu_Latn", "deu_Latn", "eng_Latn", "eng_Latn"]


# ---------------------------------------------------------------------------------------------- task modules
@pytest.mark.parametrize("configuration", CONFIGURATIONS)
def test_only_the_task_module_is_trainable(tmp_path, llama, modules, sib_dir, configuration):
    trainer = task_run(tmp_path, llama, configuration, modules, sib_dir)
    trainer._attach()
    try:
        prompt = trainer._make_prompt()
        trainer._set_trainable(prompt)
        trainable = [p for p in llama.model.parameters() if p.requires_grad]
        trainable += [] if prompt is None else list(prompt.parameters())
        task = Configuration(configuration).task
        expected = {"ta": 2 * (2 * 32 * 8 + 8 + 32), "tp": 3 * 32, None: 0}[task]
        assert sum(p.numel() for p in trainable) == expected
        assert trainer._parameter_counts(prompt)["trainable"] == expected
        language = Configuration(configuration).language
        language_params = {"la": 2 * (2 * 32 * 8 + 8 + 32), "slp": 4 * 32, None: 0}[language]
        assert trainer._parameter_counts(prompt)["language_module"] == language_params
        rows = trainer._prompt_matrix(prompt)
        n_rows = (4 if language == "slp" else 0) + (3 if task == "tp" else 0)
        assert (0 if rows is None else rows.shape[0]) == n_rows
        if language == "slp":  # [SLP, TP, text]: the language prompt comes first
            torch.testing.assert_close(rows[:4], trainer.stack.language_prompt)
    finally:
        trainer._detach()
    assert adapter_names(llama.model) == []


@pytest.mark.parametrize("configuration", ["la+ta", "slp+tp", "slp+ta", "zero-shot"])
def test_prediction_composes_modules_as_training_did(tmp_path, llama, modules, sib_dir, configuration):
    """Predicting the source validation set with the source module reproduces the accuracy training recorded."""
    metrics = task_run(tmp_path, llama, configuration, modules, sib_dir, epochs=3).run(progress=False)
    run = rd.load_run(tmp_path)
    sample = json.loads((tmp_path / rd.SAMPLE).read_text())
    dev = Sib200.resolve(str(sib_dir)).load("eng_Latn", "dev")
    pick = {i: k for k, i in enumerate(dev.index_ids)}
    rows = [pick[i] for i in sample["validation_index_ids"]]
    module = ModuleRegistry(modules).load(llama, "eng_Latn", Configuration(configuration).language) \
        if Configuration(configuration).language else None
    preds = predict_modular(llama, run, [dev.texts[i] for i in rows], 8, module)
    accuracy = sum(p == dev.labels[i] for p, i in zip(preds, rows)) / len(rows)
    assert accuracy == pytest.approx(metrics["val_accuracy"])
    assert run.config["configuration"] == configuration and adapter_names(llama.model) == []
    if configuration == "la+ta":
        assert (tmp_path / rd.TASK_ADAPTER / "adapter_config.json").is_file()
        assert run.config["language_module"]["language"] == "eng_Latn"


def test_swapping_the_language_module_changes_outputs_and_nothing_else(tmp_path, llama, modules, sib_dir):
    task_run(tmp_path, llama, "la+ta", modules, sib_dir).run(progress=False)
    run = rd.load_run(tmp_path)
    registry = ModuleRegistry(modules)
    stack = ModuleStack(llama, Configuration("la+ta"))
    base = {k: v.clone() for k, v in llama.model.state_dict().items()}
    texts = Sib200.resolve(str(sib_dir)).load("deu_Latn", "test").texts[:6]
    try:
        stack.use_language(registry.load(llama, "eng_Latn", "la"))
        stack.load_task_adapter(run.task_adapter_dir)
        task = adapter_state_dict(llama.model, TASK_ADAPTER)

        def logits():
            from xlpeft.evaluation.predict import classifier_for_run

            classifier = classifier_for_run(llama, run)
            with torch.no_grad():
                return classifier.outputs(classifier.tokenize(texts), None)

        english = logits()
        stack.use_language(registry.load(llama, "deu_Latn", "la"))
        german = logits()
        assert not torch.allclose(english, german)
        after = adapter_state_dict(llama.model, TASK_ADAPTER)
        assert all(torch.equal(task[k], after[k]) for k in task)
        stack.use_language(registry.load(llama, "eng_Latn", "la"))
        torch.testing.assert_close(logits(), english, rtol=0, atol=0)
    finally:
        stack.detach()
    assert all(torch.equal(base[k], v) for k, v in llama.model.state_dict().items())


def test_a_task_module_trains_a_step_budget_and_resumes_inside_an_epoch(tmp_path, llama, modules, sib_dir, monkeypatch):
    """The method B paper's budget form (issue 21): optimizer steps, validated every N steps. Interrupted after
    the evaluation at step 4 (inside the first epoch of 7 batches), the task adapter resumes to the same weights."""
    steps = dict(max_steps=5, eval_every=2)
    expected = task_run(tmp_path / "whole", llama, "la+ta", modules, sib_dir, **steps).run(progress=False)
    log = [json.loads(line) for line in (tmp_path / "whole" / rd.LOG).read_text().splitlines()]
    assert [r["step"] for r in log] == [2, 4, 5] and expected["best_step"] in (2, 4, 5)
    original = Trainer._train_interval
    monkeypatch.setattr(Trainer, "_train_interval", lambda self, step, *args: (_ for _ in ()).throw(KeyboardInterrupt)
                        if step == 4 else original(self, step, *args))
    with pytest.raises(KeyboardInterrupt):
        task_run(tmp_path / "cut", llama, "la+ta", modules, sib_dir, **steps).run(progress=False)
    monkeypatch.setattr(Trainer, "_train_interval", original)
    assert task_run(tmp_path / "cut", llama, "la+ta", modules, sib_dir, **steps).run(progress=False) == expected
    a, b = (torch.load(next((tmp_path / name / rd.TASK_ADAPTER).rglob("*.bin"))) for name in ("whole", "cut"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_configuration_misuse_is_refused(tmp_path, llama, modules, sib_dir):
    with pytest.raises(XlpeftError, match="--placement prefix"):
        task_run(tmp_path, llama, "slp+tp", modules, sib_dir, placement="suffix")
    with pytest.raises(XlpeftError, match="--modules-dir"):
        task_run(tmp_path, llama, "la+ta", "", sib_dir)
    with pytest.raises(XlpeftError, match="--regime prompt"):
        task_run(tmp_path, llama, "ta", modules, sib_dir, regime="joint")
    with pytest.raises(XlpeftError, match="unknown configuration"):
        task_run(tmp_path, llama, "la+slp", modules, sib_dir)
    with pytest.raises(XlpeftError, match="no soft language prompt.*ibo_Latn"):
        task_run(tmp_path, llama, "slp+ta", modules, sib_dir, source="ibo_Latn")


# ---------------------------------------------------------------------------------------------- evaluation
def test_evaluation_swaps_in_each_targets_module_and_records_borrowing(tmp_path, llama, modules, sib_dir,
                                                                       monkeypatch):
    for configuration in ("slp+ta", "tp"):
        task_run(tmp_path / configuration, llama, configuration, modules, sib_dir).run(progress=False)
    runs = [rd.load_run(tmp_path / c) for c in ("slp+ta", "tp")]
    monkeypatch.setattr(ev, "load_backbone", lambda key, device: llama)
    data = Sib200.resolve(str(sib_dir))
    with pytest.raises(XlpeftError, match="no soft language prompt.*nld_Latn"):
        ev.evaluate(runs, ["nld_Latn"], str(sib_dir), tmp_path / "strict.csv", ev.EvalOptions(), progress=False)
    table = ev.evaluate(runs, ["eng_Latn", "deu_Latn", "nld_Latn"], str(sib_dir), tmp_path / "out.csv",
                        ev.EvalOptions(borrow="syntactic"), progress=False).set_index(["run", "language"])
    slp = table.loc["slp+ta"]
    assert slp.loc["eng_Latn", "module_language"] == "eng_Latn" and not slp.loc["deu_Latn", "module_borrowed"]
    assert slp.loc["deu_Latn", "module_language"] == "deu_Latn"
    assert slp.loc["nld_Latn", "module_borrowed"] and slp.loc["nld_Latn", "module_distance_kind"] == "syntactic"
    assert slp.loc["nld_Latn", "module_language"] in ("deu_Latn", "eng_Latn")
    assert table.loc[("tp", "nld_Latn"), "configuration"] == "tp"
    module = ModuleRegistry(modules).load(llama, slp.loc["nld_Latn", "module_language"], "slp")
    texts = data.load("nld_Latn", "test")
    preds = predict_modular(llama, runs[0], texts.texts, 16, module)
    assert slp.loc["nld_Latn", "accuracy"] == pytest.approx(sum(p == g for p, g in zip(preds, texts.labels)) / len(preds))


def test_cli_trains_modules_and_task_runs_and_evaluates_with_borrowing(tmp_path, tiny_model_dir, sib_dir):
    from xlpeft.cli import main

    data = str(sib_dir.parent)
    common = ["--model", str(tiny_model_dir), "--modules-dir", str(tmp_path / "m"), "--data-dir", data]
    for language in ("eng_Latn", "deu_Latn"):
        assert main(["language-module", "train", "--language", language, "--kind", "la", "--text", "sib200-train",
                     "--steps", "4", "--eval-every", "2", "--block-length", "32", "--batch-size", "4",
                     "--reduction-factor", "4", "--quiet", *common]) == 0
    assert main(["train", "--configuration", "la+ta", "--shots", "2", "--epochs", "1", "--lr", "0.01",
                 "--adapter-reduction-factor", "4", "--out", str(tmp_path / "run"), "--quiet", *common]) == 0
    out = tmp_path / "res.csv"
    assert main(["evaluate", str(tmp_path / "run"), "--languages", "deu_Latn,nld_Latn", "--borrow", "genetic",
                 "--no-plot", "--out", str(out), "--quiet", "--data-dir", data]) == 0

    table = pd.read_csv(out).set_index("language")
    assert table.loc["deu_Latn", "module_language"] == "deu_Latn" and table.loc["nld_Latn", "module_borrowed"]
    assert main(["language-module", "train", "--language", "xx", "--kind", "la", *common]) == 2


# ---------------------------------------------------------------------------------------------- grids
def test_vykopal2025_config_expands_to_the_published_design():
    from conftest import REPO

    from xlpeft.experiments.grid import load_grid

    grid = load_grid(REPO / "configs" / "vykopal2025.yaml")
    assert len(grid.runs) == 6 * 7 * 3 and len(grid.language_modules) == 16 * 2
    assert {r.config.configuration for r in grid.runs} == set(CONFIGURATIONS)
    slp = [c for c in grid.language_modules if c.kind == "slp"]
    assert {(c.prompt_length, c.block_length, c.steps, c.batch_size) for c in slp} == {(50, 256, 100000, 32)}
    assert {c.lr for c in grid.language_modules if c.kind == "la"} == {5e-5}
    assert all(r.config.modules_dir == grid.modules_dir for r in grid.runs)


def test_a_method_b_grid_trains_its_modules_first_and_records_them(tmp_path, tiny_model_dir, sib_dir):
    from xlpeft.experiments import runner
    from xlpeft.experiments.grid import expand

    modules = str(tmp_path / "modules")
    spec = {"name": "b", "language_modules": {"model": str(tiny_model_dir), "modules_dir": modules,
                                              "languages": ["eng_Latn", "deu_Latn"], "kinds": "slp",
                                              "text": "sib200-train", "steps": 2, "eval_every": 2,
                                              "block_length": 32, "prompt_length": 3},
            "train": {"model": str(tiny_model_dir), "configuration": ["slp+tp"], "modules_dir": modules,
                      "placement": "prefix", "prompt_length": 2, "shots": 2, "epochs": 1},
            "evaluate": {"languages": ["deu_Latn"]}}
    grid = expand(spec)
    with pytest.raises(XlpeftError, match="--modules-only"):
        runner.submit(grid, tmp_path / "out", str(sib_dir.parent), "local", {})
    store = runner.run_local(grid, tmp_path / "out", str(sib_dir.parent), progress=False)
    assert runner.missing_language_modules(grid) == []
    assert set(store["metric"]) == {"accuracy", "macro_f1"} and set(store["language"]) == {"deu_Latn"}
    assert set(store["module_language"]) == {"deu_Latn"} and not store["module_borrowed"].any()


@pytest.mark.parametrize("family", ["mt5", "xlm-roberta", "bloom"])
def test_every_backbone_kind_composes_modules_the_same_in_training_and_prediction(tmp_path, data_dir, sib_dir, family,
                                                                                  tiny_tokenizer, special_tokenizer,
                                                                                  t5_tokenizer):
    backbone = {"mt5": lambda: make_seq2seq(t5_tokenizer), "xlm-roberta": lambda: make_encoder(special_tokenizer),
                "bloom": lambda: make_backbone("bloom", tiny_tokenizer)}[family]()
    for kind in ("la", "slp"):
        lm_trainer(tmp_path / "modules", backbone, "eng_Latn", kind, data_dir, steps=2, eval_every=2).run(progress=False)
    dev = Sib200.resolve(str(sib_dir)).load("eng_Latn", "dev")
    for configuration in ("la+ta", "slp+tp"):
        out = tmp_path / configuration
        metrics = task_run(out, backbone, configuration, tmp_path / "modules", sib_dir).run(progress=False)
        run = rd.load_run(out)
        ids = json.loads((out / rd.SAMPLE).read_text())["validation_index_ids"]
        rows = [dev.index_ids.index(i) for i in ids]
        kind = Configuration(configuration).language
        module = ModuleRegistry(tmp_path / "modules").load(backbone, "eng_Latn", kind)
        preds = predict_modular(backbone, run, [dev.texts[i] for i in rows], 8, module)
        assert sum(p == dev.labels[i] for p, i in zip(preds, rows)) / len(rows) == pytest.approx(metrics["val_accuracy"])
        assert adapter_names(backbone.model) == []


def test_results_are_reused_until_the_language_module_is_retrained(tmp_path, llama, modules, sib_dir, data_dir,
                                                                   monkeypatch):
    import shutil

    registry = tmp_path / "registry"
    shutil.copytree(modules, registry)
    task_run(tmp_path / "run", llama, "slp+ta", registry, sib_dir).run(progress=False)
    runs, data, out = [rd.load_run(tmp_path / "run")], str(sib_dir), tmp_path / "out.csv"
    monkeypatch.setattr(ev, "load_backbone", lambda key, device: llama)
    first = ev.evaluate(runs, ["deu_Latn"], data, out, ev.EvalOptions(), progress=False)
    calls = []
    monkeypatch.setattr(ev, "predict_modular", lambda *args: calls.append(args) or [0] * len(args[2]))
    ev.evaluate(runs, ["deu_Latn"], data, out, ev.EvalOptions(), progress=False)
    assert calls == []  # nothing changed: the row is reused
    shutil.rmtree(registry / "tiny-llama" / "deu_Latn" / "slp")
    lm_trainer(registry, llama, "deu_Latn", "slp", data_dir, seed=1).run(progress=False)
    again = ev.evaluate(runs, ["deu_Latn"], data, out, ev.EvalOptions(), progress=False)
    assert len(calls) == 1 and len(again) == 1  # recomputed once, not duplicated
    assert again["module_id"].iloc[0] != first["module_id"].iloc[0]
