"""Training: regimes' trainable parameters, loss goes down, seeds reproduce, interrupted runs resume."""

import json

import pytest
import torch
from conftest import make_backbone
from numerics import FP32, assert_close_scaled

from xlpeft import runs as rd
from xlpeft.config import ADDED_LATER, TrainConfig
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


@pytest.mark.parametrize("regime, reparam", [("prompt", "none"), ("prompt", "mlp"), ("joint", "none"), ("full", "none"),
                                            ("prompt", "lstm"), ("joint", "mlp")])
def test_exact_trainable_parameter_counts(tmp_path, tiny_tokenizer, sib_dir, regime, reparam):
    trainer = _trainer(tmp_path, tiny_tokenizer, sib_dir, regime=regime, reparam=reparam, reparam_hidden=8,
                       reparam_affine="auto")
    prompt = trainer._make_prompt()
    model = sum(p.numel() for p in trainer.backbone.model.parameters())
    mlp = 32 * 8 + 8 + 8 * 32 + 32
    affine = 2 * 32  # --reparam-affine auto: the LayerNorm's weight and bias in joint runs only
    lstm = 2 * (4 * 8 * 32 + 4 * 8 * 8 + 2 * 4 * 8) + 2 * (4 * 8 * 16 + 4 * 8 * 8 + 2 * 4 * 8) + 16 * 16 + 16 + 16 * 32 + 32
    expected = {("prompt", "none"): 3 * 32, ("prompt", "mlp"): 3 * 32 + mlp,
                ("joint", "none"): 3 * 32 + model, ("full", "none"): model, ("prompt", "lstm"): 3 * 32 + lstm,
                ("joint", "mlp"): 3 * 32 + mlp + affine + model}[(regime, reparam)]
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


@pytest.mark.parametrize("reparam", ["none", "lstm"])
def test_cached_and_uncached_training_give_the_same_prompt(tmp_path, tiny_tokenizer, sib_dir, reparam):
    settings = dict(reparam=reparam, reparam_hidden=8)
    a = _trainer(tmp_path / "a", tiny_tokenizer, sib_dir, **settings).run(progress=False)
    b = _trainer(tmp_path / "b", tiny_tokenizer, sib_dir, text_cache=False, **settings).run(progress=False)
    assert rd.load_run(tmp_path / "a").config["text_cache_used"] and not rd.load_run(tmp_path / "b").config["text_cache_used"]
    assert a["val_loss"] == pytest.approx(b["val_loss"], rel=FP32)
    prompt_a, prompt_b = rd.load_run(tmp_path / "a").peft_prompt, rd.load_run(tmp_path / "b").peft_prompt
    assert_close_scaled(prompt_a, prompt_b)


@pytest.mark.parametrize("settings", [dict(reparam="none"), dict(reparam="mlp"),
                                      dict(reparam="none", optimizer="adafactor", max_grad_norm=0.5),
                                      dict(reparam="lstm"), dict(reparam="mlp", regime="joint", lr=1e-3, reparam_affine="on")],
                         ids=["none", "mlp", "adafactor-clipped", "lstm", "joint-mlp-affine"])
def test_interrupted_run_resumes_to_identical_numbers(tmp_path, tiny_tokenizer, sib_dir, monkeypatch, settings):
    settings = dict(epochs=3, reparam_hidden=8, **settings)
    full = _trainer(tmp_path / "full", tiny_tokenizer, sib_dir, **settings)
    expected = full.run(progress=False)

    broken = _trainer(tmp_path / "cut", tiny_tokenizer, sib_dir, **settings)
    original = Trainer._train_interval

    def crash_in_third_epoch(self, step, *args):
        if step == 2 * 7:  # 28 training sentences, batches of 4
            raise KeyboardInterrupt
        return original(self, step, *args)

    monkeypatch.setattr(Trainer, "_train_interval", crash_in_third_epoch)
    with pytest.raises(KeyboardInterrupt):
        broken.run(progress=False)
    assert (tmp_path / "cut" / rd.CHECKPOINT).exists() and not (tmp_path / "cut" / rd.METRICS).exists()
    monkeypatch.setattr(Trainer, "_train_interval", original)
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

    original = Trainer._train_interval
    monkeypatch.setattr(Trainer, "_train_interval", lambda self, step, *args: (_ for _ in ()).throw(KeyboardInterrupt)
                        if step == 7 else original(self, step, *args))  # the second epoch
    with pytest.raises(KeyboardInterrupt):
        _trainer(tmp_path, tiny_tokenizer, sib_dir, epochs=2).run(progress=False)
    monkeypatch.setattr(Trainer, "_train_interval", original)
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
    earlier_added = {"task": "sib200", "source_data": "local", "select": "val_loss"}  # ADDED_LATER before them
    # a config.json written before the options existed: without them and without the fields added since
    old = {k: v for k, v in TrainConfig().to_dict().items() if k not in ADDED_LATER or k in earlier_added}
    loaded = TrainConfig.from_dict(old)
    assert (loaded.max_grad_norm, loaded.optimizer) == (None, "adamw")
    old_identity = {k: v for k, v in old.items() if k != "device" and not (k in earlier_added and v == earlier_added[k])}
    assert loaded.identity() == old_identity  # what the run id hashes: unchanged
    assert TrainConfig(max_grad_norm=1.0).identity()["max_grad_norm"] == 1.0
    assert TrainConfig(optimizer="adafactor").identity()["optimizer"] == "adafactor"


# ---------------------------------------------------------------- issue 21: --max-steps, --eval-every


def _log(path) -> list[dict]:
    return [json.loads(line) for line in (path / rd.LOG).read_text().splitlines()]


def _lrs_at_step(monkeypatch) -> list[float]:
    """The learning rate of each AdamW step, as the step uses it: one entry per optimizer step taken."""
    lrs, original = [], torch.optim.AdamW.step

    def step(self, *args, **kwargs):
        lrs.append(self.param_groups[0]["lr"])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.AdamW, "step", step)
    return lrs


def _training_batches(monkeypatch) -> list[list[int]]:
    """The sentence indices of each training batch (the loss computed with the head in training mode)."""
    batches, original = [], Trainer._loss

    def loss(self, data, idx, prompt):
        if self.classifier.training:
            batches.append(list(idx))
        return original(self, data, idx, prompt)

    monkeypatch.setattr(Trainer, "_loss", loss)
    return batches


def test_max_steps_takes_exactly_that_many_steps_on_a_schedule_over_them(tmp_path, tiny_tokenizer, sib_dir, monkeypatch):
    lrs, batches = _lrs_at_step(monkeypatch), _training_batches(monkeypatch)
    metrics = _trainer(tmp_path / "steps", tiny_tokenizer, sib_dir, max_steps=10, warmup_ratio=0.2).run(progress=False)
    assert len(lrs) == 10  # epochs=2 (14 steps) is replaced by the budget
    # linear warm-up over int(0.2 * 10) = 2 steps, then linearly down to 0 at step 10, by hand
    assert lrs == pytest.approx([0.05 * (k / 2 if k < 2 else (10 - k) / 8) for k in range(10)], rel=1e-12, abs=1e-15)
    # without --eval-every: validated at the epoch's end (7 steps) and after the last step
    assert [(r["step"], r["epoch"]) for r in _log(tmp_path / "steps")] == [(7, 1.0), (10, 1.429)]
    assert metrics["best_step"] in (7, 10)
    stepped = list(batches)
    assert sorted(i for batch in stepped[:7] for i in batch) == list(range(28))  # the first epoch: every sentence once
    batches[:] = []
    _trainer(tmp_path / "epochs", tiny_tokenizer, sib_dir, epochs=2).run(progress=False)
    assert stepped == batches[:10]  # the data cycle in the epochs' seeded orders


@pytest.mark.parametrize("select", ["val_loss", "val_accuracy"])
def test_eval_every_validates_every_n_steps_and_keeps_the_best(tmp_path, tiny_tokenizer, sib_dir, monkeypatch, select):
    prompts, original = [], Trainer._validate_epoch

    def validate(self, data, prompt):  # the prompt each evaluation sees
        prompts.append(prompt().detach().clone())
        return original(self, data, prompt)

    monkeypatch.setattr(Trainer, "_validate_epoch", validate)
    metrics = _trainer(tmp_path, tiny_tokenizer, sib_dir, epochs=2, eval_every=4, select=select).run(progress=False)
    log = _log(tmp_path)
    assert [r["step"] for r in log] == [4, 8, 12, 14] and len(prompts) == 4  # 14 steps: every 4th and the last
    best = 0
    for i, record in enumerate(log[1:], 1):
        best = i if improves(record, log[best], select) else best
    assert (metrics["best_step"], metrics["val_loss"]) == (log[best]["step"], log[best]["val_loss"])
    assert torch.equal(rd.load_run(tmp_path).peft_prompt, prompts[best])  # the kept prompt is the best evaluation's


def test_a_step_budget_of_whole_epochs_trains_what_the_epochs_train(tmp_path, tiny_tokenizer, sib_dir):
    _trainer(tmp_path / "epochs", tiny_tokenizer, sib_dir, epochs=2).run(progress=False)
    _trainer(tmp_path / "steps", tiny_tokenizer, sib_dir, max_steps=14, eval_every=7).run(progress=False)
    assert torch.equal(rd.load_run(tmp_path / "steps").peft_prompt, rd.load_run(tmp_path / "epochs").peft_prompt)
    assert [r["val_loss"] for r in _log(tmp_path / "steps")] == [r["val_loss"] for r in _log(tmp_path / "epochs")]


def test_an_interrupted_step_budget_run_resumes_inside_an_epoch_to_identical_weights(tmp_path, tiny_tokenizer, sib_dir,
                                                                                     monkeypatch):
    """XGLM's dropout (0.1) runs in the joint regime, so the resumed run must also draw the same dropout masks."""
    settings = dict(family="xglm", regime="joint", lr=1e-3, max_steps=12, eval_every=5)
    expected = _trainer(tmp_path / "full", tiny_tokenizer, sib_dir, **settings).run(progress=False)
    original = Trainer._train_interval
    monkeypatch.setattr(Trainer, "_train_interval", lambda self, step, *args: (_ for _ in ()).throw(KeyboardInterrupt)
                        if step == 10 else original(self, step, *args))  # checkpointed at step 10: 3 steps into epoch 2
    with pytest.raises(KeyboardInterrupt):
        _trainer(tmp_path / "cut", tiny_tokenizer, sib_dir, **settings).run(progress=False)
    assert [r["step"] for r in _log(tmp_path / "cut")] == [5, 10] and (tmp_path / "cut" / rd.CHECKPOINT).exists()
    monkeypatch.setattr(Trainer, "_train_interval", original)
    assert _trainer(tmp_path / "cut", tiny_tokenizer, sib_dir, **settings).run(progress=False) == expected

    def numbers(path):  # the log without wall-clock seconds, and every weight file
        log = [{k: v for k, v in record.items() if k != "train_seconds"} for record in _log(path)]
        return log, {p.relative_to(path): p.read_bytes() for p in sorted(path.rglob("*.safetensors"))}

    assert numbers(tmp_path / "cut") == numbers(tmp_path / "full")
    assert len(numbers(tmp_path / "full")[1]) >= 2  # the prompt and the model


@pytest.mark.parametrize("settings, message", [(dict(max_steps=0), "--max-steps must be at least 1 .got 0."),
                                               (dict(max_steps=-5), "--max-steps must be at least 1 .got -5."),
                                               (dict(eval_every=0), "--eval-every must be at least 1 .got 0.")])
def test_a_step_budget_below_one_is_refused_with_the_fix(tmp_path, tiny_tokenizer, sib_dir, settings, message):
    from xlpeft.errors import XlpeftError

    with pytest.raises(XlpeftError, match=message + ".*leave it out"):
        _trainer(tmp_path, tiny_tokenizer, sib_dir, **settings)


def test_runs_written_before_step_budgets_keep_their_epochs_and_ids():
    old = {k: v for k, v in TrainConfig().to_dict().items() if k not in ("max_steps", "eval_every")}
    loaded = TrainConfig.from_dict(old)  # a config.json written before the options existed
    assert (loaded.max_steps, loaded.eval_every) == (None, None)
    assert loaded.identity() == TrainConfig().identity() and "max_steps" not in loaded.identity()  # run ids unchanged
    paper = TrainConfig(max_steps=50_000, eval_every=1000).identity()
    assert (paper["max_steps"], paper["eval_every"]) == (50_000, 1000)


def test_step_budget_validates_every_n_steps_and_after_the_last():
    from xlpeft.training.budget import StepBudget

    budget = StepBudget.of_steps(12, 5, 0.1)
    assert [s for s in range(1, 13) if budget.due(s)] == [5, 10, 12] and budget.warmup == 1
    assert [budget.next_evaluation(s) for s in (0, 4, 5, 10)] == [5, 5, 10, 12]
    epochs = StepBudget.of_epochs(3, 7, 0.1, None)
    assert (epochs.total, epochs.eval_every) == (21, 7) and [s for s in range(1, 22) if epochs.due(s)] == [7, 14, 21]


# ---------------------------------------------------------------- issue 21: --reparam lstm, --reparam-affine


@pytest.mark.parametrize("reparam, regime, given, settled", [
    ("mlp", "joint", "auto", "on"), ("residual", "joint", "auto", "on"), ("mlp", "prompt", "auto", "off"),
    ("mlp", "prompt", "on", "on"), ("mlp", "joint", "off", "off"), ("none", "joint", "on", "off"),
    ("lstm", "joint", "auto", "off"), ("mlp", "full", "auto", "off")])
def test_reparam_affine_is_settled_to_what_the_run_trains(reparam, regime, given, settled):
    """auto is the reference's rule (LayerNorm affine trained exactly when the model is); runs without the MLP's
    LayerNorm store off, so a run's identity names what it trains."""
    assert TrainConfig(reparam=reparam, regime=regime, reparam_affine=given).reparam_affine == settled
    assert TrainConfig().reparam_affine == "off"  # the default: today's runs unchanged


def test_unknown_reparam_affine_is_refused():
    from xlpeft.errors import XlpeftError

    with pytest.raises(XlpeftError, match="reparam_affine must be one of off, on, auto"):
        TrainConfig(reparam="mlp", reparam_affine="yes")


def test_runs_written_before_reparam_affine_keep_their_numbers_and_ids():
    old = {k: v for k, v in TrainConfig(reparam="mlp", regime="joint").to_dict().items() if k != "reparam_affine"}
    loaded = TrainConfig.from_dict(old)  # a joint MLP run's config.json from before the option
    assert loaded.reparam_affine == "off"  # its LayerNorm had no affine parameters
    assert "reparam_affine" not in loaded.identity()  # its run id unchanged
    assert TrainConfig(reparam="mlp", regime="joint", reparam_affine="auto").identity()["reparam_affine"] == "on"


def test_affine_layernorm_trains_with_the_prompt_in_a_joint_run(tmp_path, tiny_tokenizer, sib_dir, monkeypatch):
    """--reparam-affine auto in a joint run: the LayerNorm's weight and bias sit in the prompt's optimizer group
    (the prompt's lr, not --lr-model), receive gradients, move away from identity, and are folded into the saved
    prompt."""
    trainer = _trainer(tmp_path, tiny_tokenizer, sib_dir, regime="joint", reparam="mlp", reparam_hidden=8,
                       reparam_affine="auto", lr=1e-2, lr_model=1e-4, epochs=2)
    prompt = trainer._make_prompt()
    groups = trainer._set_trainable(prompt)
    norm = prompt.mlp.norm
    assert groups[0]["lr"] == 1e-2 and {id(norm.weight), id(norm.bias)} <= {id(p) for p in groups[0]["params"]}
    assert all(id(p) not in {id(norm.weight), id(norm.bias)} for g in groups[1:] for p in g["params"])
    train = trainer._inputs(trainer._sample().train)
    loss, _ = trainer._loss(train, list(range(4)), prompt)
    loss.backward()
    assert norm.weight.grad.abs().sum() > 0 and norm.bias.grad.abs().sum() > 0

    made, original = [], Trainer._make_prompt
    monkeypatch.setattr(Trainer, "_make_prompt", lambda self: made.append(original(self)) or made[-1])
    run_dir = tmp_path / "run"
    trainer = _trainer(run_dir, tiny_tokenizer, sib_dir, regime="joint", reparam="mlp", reparam_hidden=8,
                       reparam_affine="auto", lr=1e-2, lr_model=1e-4, epochs=2)
    trainer.run(progress=False)
    best = made[-1]  # the prompt _finish loaded the kept epoch into and saved
    assert not torch.equal(best.mlp.norm.weight, torch.ones(32)) and not torch.equal(best.mlp.norm.bias, torch.zeros(32))
    assert_close_scaled(rd.load_run(run_dir).peft_prompt.float(), best().detach())
    assert rd.load_run(run_dir).config["parameters"]["reparam_mlp"] == 32 * 8 + 8 + 8 * 32 + 32 + 2 * 32
