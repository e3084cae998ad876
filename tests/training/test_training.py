"""Training: regimes' trainable parameters, loss goes down, seeds reproduce, interrupted runs resume."""

import json

import pytest
import torch
from conftest import make_backbone
from numerics import FP32, assert_close_scaled

from xlpeft import runs as rd
from xlpeft.config import TrainConfig
from xlpeft.runtime import cpu_matmul_backend
from xlpeft.training.trainer import Trainer, improves


def _trainer(tmp_path, tokenizer, sib_dir, family="llama", **overrides):
    settings = dict(model="tiny", shots=4, prompt_length=3, epochs=2, lr=0.05, batch_size=4)
    config = TrainConfig(**{**settings, **overrides})
    return Trainer(config, tmp_path, data_dir=str(sib_dir), backbone=make_backbone(family, tokenizer))


def _trainable(trainer, prompt):
    trainer._set_trainable(prompt)
    params = [p for p in trainer.backbone.model.parameters() if p.requires_grad]
    params += [] if prompt is None else [p for p in prompt.parameters() if p.requires_grad]
    return sum(p.numel() for p in params)


@pytest.mark.parametrize("regime, reparam", [("prompt", "none"), ("prompt", "mlp"), ("joint", "none"), ("full", "none")])
def test_exact_trainable_parameter_counts(tmp_path, tiny_tokenizer, sib_dir, regime, reparam):
    trainer = _trainer(tmp_path, tiny_tokenizer, sib_dir, regime=regime, reparam=reparam, reparam_hidden=8)
    prompt = trainer._make_prompt()
    model = sum(p.numel() for p in trainer.backbone.model.parameters())
    mlp = 32 * 8 + 8 + 8 * 32 + 32
    expected = {("prompt", "none"): 3 * 32, ("prompt", "mlp"): 3 * 32 + mlp,
                ("joint", "none"): 3 * 32 + model, ("full", "none"): model}[(regime, reparam)]
    assert _trainable(trainer, prompt) == expected
    assert trainer._parameter_counts(prompt)["trainable"] == expected


def test_training_lowers_loss_and_writes_the_run(tmp_path, tiny_tokenizer, sib_dir):
    trainer = _trainer(tmp_path, tiny_tokenizer, sib_dir, epochs=4, shots=8)
    metrics = trainer.run(progress=False)
    log = [json.loads(line) for line in (tmp_path / rd.LOG).read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2, 3, 4]
    assert log[-1]["train_loss"] < log[0]["train_loss"] - 0.5
    assert metrics["val_loss"] == min(r["val_loss"] for r in log)
    run = rd.load_run(tmp_path)
    assert run.peft_prompt.shape == (3, 32)
    assert run.config["text_cache_used"] and run.config["parameters"]["trainable"] == 96
    assert run.config["cpu_matmul"] == cpu_matmul_backend()  # which library computed the fp32 products
    sample = json.loads((tmp_path / rd.SAMPLE).read_text())
    assert len(sample["train_index_ids"]) == 56 and len(sample["validation_index_ids"]) == 14
    assert not (tmp_path / rd.CHECKPOINT).exists()


def test_epoch_selection_by_loss_or_by_accuracy():
    first = {"epoch": 1, "val_loss": 1.0, "val_accuracy": 0.5}
    assert improves(first, {}) and improves(first, {}, "val_accuracy")
    lower_loss_lower_acc = {"epoch": 2, "val_loss": 0.9, "val_accuracy": 0.4}
    assert improves(lower_loss_lower_acc, first) and not improves(lower_loss_lower_acc, first, "val_accuracy")
    higher_acc_higher_loss = {"epoch": 3, "val_loss": 1.2, "val_accuracy": 0.6}
    assert improves(higher_acc_higher_loss, first, "val_accuracy") and not improves(higher_acc_higher_loss, first)
    tie = {"epoch": 4, "val_accuracy": 0.5}  # equal accuracy: the lower loss wins
    assert improves({**tie, "val_loss": 0.8}, first, "val_accuracy")
    assert not improves({**tie, "val_loss": 1.0}, first, "val_accuracy")
    text = {"epoch": 2, "val_loss": 0.5, "val_accuracy": None}  # text-to-text: the loss decides
    assert improves(text, {**first, "val_accuracy": None}, "val_accuracy")
    with pytest.raises(ValueError):
        improves(first, first, "val_f1")


@pytest.mark.parametrize("select", ["val_loss", "val_accuracy"])
def test_trainer_keeps_the_epoch_it_is_asked_for(tmp_path, tiny_tokenizer, sib_dir, select):
    metrics = _trainer(tmp_path, tiny_tokenizer, sib_dir, epochs=4, shots=8, select=select).run(progress=False)
    log = [json.loads(line) for line in (tmp_path / rd.LOG).read_text().splitlines()]
    best = log[0]
    for record in log[1:]:
        best = record if improves(record, best, select) else best
    assert metrics["best_epoch"] == best["epoch"]
    key = {"val_loss": lambda r: (r["val_loss"],), "val_accuracy": lambda r: (-r["val_accuracy"], r["val_loss"])}
    assert min(key[select](r) for r in log) == key[select](best)


def test_default_prompt_init_is_vocabulary_and_the_papers_stays_an_option(tmp_path, tiny_tokenizer, sib_dir):
    assert TrainConfig().init == "vocab"  # measured: docs/backbones.md, "Defaults and what was tried"
    trainer = _trainer(tmp_path, tiny_tokenizer, sib_dir)
    rows = trainer.backbone.model.get_input_embeddings().weight.detach().float()
    prompt = trainer._make_prompt().forward().detach().float()
    assert all(any(torch.equal(p, r) for r in rows) for p in prompt)  # each row a vocabulary embedding
    uniform = _trainer(tmp_path / "u", tiny_tokenizer, sib_dir, init="uniform")._make_prompt().forward().detach()
    assert uniform.abs().max() <= 0.5 and not any(torch.equal(p, r) for p in uniform for r in rows)


def test_runs_written_before_select_existed_read_as_selected_by_loss():
    old = {k: v for k, v in TrainConfig().to_dict().items() if k != "select"}
    assert TrainConfig.from_dict(old).select == "val_loss"
    assert "select" not in TrainConfig(select="val_loss").identity()  # old run ids unchanged
    assert TrainConfig(select="val_accuracy").identity()["select"] == "val_accuracy"


def test_cached_and_uncached_training_give_the_same_prompt(tmp_path, tiny_tokenizer, sib_dir):
    a = _trainer(tmp_path / "a", tiny_tokenizer, sib_dir).run(progress=False)
    b = _trainer(tmp_path / "b", tiny_tokenizer, sib_dir, text_cache=False).run(progress=False)
    assert a["val_loss"] == pytest.approx(b["val_loss"], rel=FP32)
    prompt_a, prompt_b = rd.load_run(tmp_path / "a").peft_prompt, rd.load_run(tmp_path / "b").peft_prompt
    assert_close_scaled(prompt_a, prompt_b)


@pytest.mark.parametrize("settings", [dict(reparam="none"), dict(reparam="mlp"),
                                      dict(reparam="none", optimizer="adafactor", max_grad_norm=0.5)],
                         ids=["none", "mlp", "adafactor-clipped"])
def test_interrupted_run_resumes_to_identical_numbers(tmp_path, tiny_tokenizer, sib_dir, monkeypatch, settings):
    settings = dict(epochs=3, reparam_hidden=8, **settings)
    full = _trainer(tmp_path / "full", tiny_tokenizer, sib_dir, **settings)
    expected = full.run(progress=False)

    broken = _trainer(tmp_path / "cut", tiny_tokenizer, sib_dir, **settings)
    original = Trainer._epoch

    def crash_in_third_epoch(self, epoch, *args):
        if epoch == 2:
            raise KeyboardInterrupt
        return original(self, epoch, *args)

    monkeypatch.setattr(Trainer, "_epoch", crash_in_third_epoch)
    with pytest.raises(KeyboardInterrupt):
        broken.run(progress=False)
    assert (tmp_path / "cut" / rd.CHECKPOINT).exists() and not (tmp_path / "cut" / rd.METRICS).exists()
    monkeypatch.setattr(Trainer, "_epoch", original)
    resumed = _trainer(tmp_path / "cut", tiny_tokenizer, sib_dir, **settings).run(progress=False)
    assert resumed == expected
    def numbers(path):  # the log without wall-clock seconds
        return [{k: v for k, v in json.loads(line).items() if k != "train_seconds"} for line in
                (path / rd.LOG).read_text().splitlines()]

    assert numbers(tmp_path / "cut") == numbers(tmp_path / "full") and len(numbers(tmp_path / "cut")) == 3


@pytest.mark.parametrize("regime", ["joint", "full"])
def test_joint_and_full_regimes_save_their_model(tmp_path, tiny_tokenizer, sib_dir, regime):
    trainer = _trainer(tmp_path, tiny_tokenizer, sib_dir, regime=regime, lr=1e-3, epochs=1)
    before = {k: v.clone() for k, v in trainer.backbone.model.state_dict().items()}
    trainer.run(progress=False)
    run = rd.load_run(tmp_path)
    assert run.model_dir is not None and not run.config["text_cache_used"]
    assert (run.peft_prompt is None) == (regime == "full")
    after = trainer.backbone.model.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)


def test_prefix_placement_trains_on_the_ordinary_path(tmp_path, tiny_tokenizer, sib_dir):
    metrics = _trainer(tmp_path, tiny_tokenizer, sib_dir, placement="prefix", epochs=1).run(progress=False)
    assert not rd.load_run(tmp_path).config["text_cache_used"] and metrics["best_epoch"] == 1


def test_finished_run_with_other_config_is_refused(tmp_path, tiny_tokenizer, sib_dir):
    _trainer(tmp_path, tiny_tokenizer, sib_dir, epochs=1).run(progress=False)
    from xlpeft.errors import XlpeftError

    with pytest.raises(XlpeftError, match="another configuration"):
        _trainer(tmp_path, tiny_tokenizer, sib_dir, epochs=2).run(progress=False)


@pytest.mark.parametrize("frozen_dropout", [False, True])
def test_frozen_model_dropout_only_when_asked(tmp_path, tiny_tokenizer, sib_dir, frozen_dropout):
    trainer = _trainer(tmp_path, tiny_tokenizer, sib_dir, frozen_dropout=frozen_dropout)
    assert trainer.cached is not frozen_dropout  # a cache cannot resample dropout
    trainer._set_mode(True)
    assert trainer.backbone.model.training is frozen_dropout
    trainer._set_mode(False)
    assert not trainer.backbone.model.training


def test_an_interrupted_run_does_not_resume_on_other_weights(tmp_path, tiny_tokenizer, sib_dir, monkeypatch):
    """Issue 18: a prompt trained on one copy of a model must not continue on another copy of it."""
    from xlpeft.errors import XlpeftError

    original = Trainer._epoch
    monkeypatch.setattr(Trainer, "_epoch", lambda self, epoch, *args: (_ for _ in ()).throw(KeyboardInterrupt)
                        if epoch == 1 else original(self, epoch, *args))
    with pytest.raises(KeyboardInterrupt):
        _trainer(tmp_path, tiny_tokenizer, sib_dir, epochs=2).run(progress=False)
    monkeypatch.setattr(Trainer, "_epoch", original)
    other = Trainer(TrainConfig(model="tiny", shots=4, prompt_length=3, epochs=2, lr=0.05, batch_size=4), tmp_path,
                    data_dir=str(sib_dir), backbone=make_backbone("llama", tiny_tokenizer, seed=1))
    with pytest.raises(XlpeftError, match="resume where the same weights load"):
        other.run(progress=False)


# ---------------------------------------------------------------- issue 21: --max-grad-norm, --optimizer


def _norms_at_step(monkeypatch, optimizer_class) -> list[float]:
    """The global gradient norm of everything the optimizer trains, as its step() sees it."""
    norms, original = [], optimizer_class.step

    def step(self, *args, **kwargs):
        grads = [p.grad for group in self.param_groups for p in group["params"] if p.grad is not None]
        norms.append(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])).item())
        return original(self, *args, **kwargs)

    monkeypatch.setattr(optimizer_class, "step", step)
    return norms


def test_max_grad_norm_bounds_the_gradient_the_optimizer_sees(tmp_path, tiny_tokenizer, sib_dir, monkeypatch):
    norms = _norms_at_step(monkeypatch, torch.optim.AdamW)
    _trainer(tmp_path / "free", tiny_tokenizer, sib_dir, epochs=1).run(progress=False)
    free, norms[:] = list(norms), []
    _trainer(tmp_path / "clipped", tiny_tokenizer, sib_dir, epochs=1, max_grad_norm=1e-3).run(progress=False)
    assert len(norms) == len(free) == 7  # 28 training sentences, batches of 4
    assert min(free) > 1e-2  # without clipping the gradients are far larger than the bound ...
    assert max(norms) <= 1e-3 * (1 + 1e-5)  # ... with it none exceeds it
    assert norms[0] == pytest.approx(1e-3, rel=1e-5)  # clipped to the bound, not zeroed
    assert rd.load_run(tmp_path / "clipped").train.max_grad_norm == 1e-3


def test_max_grad_norm_must_be_positive(tmp_path, tiny_tokenizer, sib_dir):
    from xlpeft.errors import XlpeftError

    with pytest.raises(XlpeftError, match="--max-grad-norm must be positive"):
        _trainer(tmp_path, tiny_tokenizer, sib_dir, max_grad_norm=0.0)


def test_adafactor_trains_with_the_runs_lr_and_weight_decay(tmp_path, tiny_tokenizer, sib_dir, monkeypatch):
    from transformers.optimization import Adafactor

    norms = _norms_at_step(monkeypatch, Adafactor)  # Adafactor, not AdamW, takes the steps
    trainer = _trainer(tmp_path, tiny_tokenizer, sib_dir, epochs=4, shots=8, optimizer="adafactor", weight_decay=1e-5)
    trainer.run(progress=False)
    assert len(norms) == 4 * 14
    log = [json.loads(line) for line in (tmp_path / rd.LOG).read_text().splitlines()]
    assert log[-1]["train_loss"] < log[0]["train_loss"] - 0.3
    assert rd.load_run(tmp_path).train.optimizer == "adafactor"


def test_make_optimizer_settles_adafactor_as_the_method_b_paper_used_it():
    from xlpeft.training.optim import make_optimizer

    weight = torch.nn.Parameter(torch.zeros(3, 4))
    optimizer = make_optimizer("adafactor", [weight], 0.5, 1e-5)
    group = optimizer.param_groups[0]
    assert (group["lr"], group["weight_decay"]) == (0.5, 1e-5)
    assert not group["scale_parameter"] and not group["relative_step"] and not group["warmup_init"]
    assert isinstance(make_optimizer("adamw", [weight], 0.5, 1e-5), torch.optim.AdamW)
    with pytest.raises(ValueError, match="unknown optimizer"):
        make_optimizer("sgd", [weight], 0.5, 0.0)


def test_runs_written_before_the_optimizer_options_keep_their_defaults_and_ids():
    # a config.json written before the options existed lacks them, and every field added after them (template)
    old = {k: v for k, v in TrainConfig().to_dict().items() if k not in ("max_grad_norm", "optimizer", "template")}
    loaded = TrainConfig.from_dict(old)  # a config.json written before the options existed
    assert (loaded.max_grad_norm, loaded.optimizer) == (None, "adamw")
    earlier_added = {"task": "sib200", "source_data": "local", "select": "val_loss"}  # ADDED_LATER before them
    old_identity = {k: v for k, v in old.items() if k != "device" and not (k in earlier_added and v == earlier_added[k])}
    assert loaded.identity() == old_identity  # what the run id hashes: unchanged
    assert TrainConfig(max_grad_norm=1.0).identity()["max_grad_norm"] == 1.0
    assert TrainConfig(optimizer="adafactor").identity()["optimizer"] == "adafactor"
