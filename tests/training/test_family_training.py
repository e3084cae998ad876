"""Training and evaluating on encoders and encoder-decoders: what trains, what stays frozen, round trips."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import make_encoder, make_seq2seq

from xlpeft import runs as rd
from xlpeft.config import TrainConfig
from xlpeft.data.sib200 import LABELS
from xlpeft.errors import XlpeftError
from xlpeft.evaluation.predict import head_alone, predict_heads_alone, predict_uncached
from xlpeft.metrics.classification import classification_metrics
from xlpeft.training.trainer import Trainer

CASES = {
    # name: (backbone factory args, config overrides, expected trainable parameters)
    "xlmr-mlm-prefix": (("xlm-roberta", True), {"placement": "prefix"}, 3 * 32),
    "bert-linear-prompt": (("bert", False), {"placement": "prefix"}, 3 * 32 + 32 * 7 + 7),
    "bert-linear-head-only": (("bert", False), {"prompt_length": 0}, 32 * 7 + 7),
    "mt5-label-strings": (("mt5", None), {"placement": "prefix"}, 3 * 32),
}


def _backbone(tokenizer, family, mlm):
    return make_seq2seq(tokenizer) if family == "mt5" else make_encoder(tokenizer, family=family, mlm=mlm)


def _trainer(out, tokenizer, sib_dir, family, mlm, **overrides):
    config = TrainConfig(**{"model": "tiny", "shots": 4, "prompt_length": 3, "epochs": 2, "lr": 0.05, "batch_size": 4,
                            **overrides})
    return Trainer(config, out, data_dir=str(sib_dir), backbone=_backbone(tokenizer, family, mlm))


@pytest.mark.parametrize("case", list(CASES))
def test_only_prompt_and_head_train_and_the_run_reloads_with_its_validation_numbers(tmp_path, special_tokenizer,
                                                                                     sib_dir, case):
    (family, mlm), overrides, trainable = CASES[case]
    trainer = _trainer(tmp_path, special_tokenizer, sib_dir, family, mlm, **overrides)
    frozen = {k: v.clone() for k, v in trainer.backbone.model.state_dict().items()}
    metrics = trainer.run(progress=False)
    run = rd.load_run(tmp_path)
    assert run.config["parameters"]["trainable"] == trainable
    assert run.config["backbone_kind"] == ("seq2seq" if family == "mt5" else "encoder")
    assert not run.config["text_cache_used"]
    for k, v in trainer.backbone.model.state_dict().items():
        assert torch.equal(v, frozen[k]), f"frozen weight {k} changed"
    assert (run.peft_prompt is None) == (overrides.get("prompt_length") == 0)
    assert (run.head is not None) == (mlm is False)
    # evaluating the saved run on the source validation sample reproduces the best epoch's accuracy
    sample = trainer._sample().validation
    preds = predict_uncached(trainer.backbone, run, sample.texts, batch_size=3)
    assert classification_metrics(sample.labels, preds, len(LABELS))["accuracy"] == pytest.approx(metrics["val_accuracy"])
    # a head trained alone reads features computed once, in training and in evaluation, with the same result
    assert run.config["feature_cache_used"] == head_alone(trainer.backbone, run) == (case == "bert-linear-head-only")
    if head_alone(trainer.backbone, run):
        assert predict_heads_alone(trainer.backbone, [run], sample.texts, batch_size=5)[run.name] == preds


def test_head_alone_needs_a_linear_head(tmp_path, special_tokenizer, sib_dir):
    with pytest.raises(XlpeftError, match="leaves nothing to train"):
        _trainer(tmp_path, special_tokenizer, sib_dir, "xlm-roberta", True, prompt_length=0)


def test_encoder_training_lowers_the_loss(tmp_path, special_tokenizer, sib_dir):
    trainer = _trainer(tmp_path, special_tokenizer, sib_dir, "bert", False, epochs=4, shots=8, lr=0.02)
    trainer.run(progress=False)
    log = [json.loads(line) for line in (tmp_path / rd.LOG).read_text().splitlines()]
    assert log[-1]["train_loss"] < log[0]["train_loss"]

