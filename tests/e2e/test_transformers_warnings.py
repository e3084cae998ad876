"""xlpeft calls transformers through its current API only: no deprecation or future warning, as a Python
warning or through transformers' logger (``logger.warning_once``), on the cached and uncached training and
evaluation paths of causal, encoder and encoder-decoder models (issue 17: ``past_key_values`` is removed in
transformers 5.40, and deprecated names show up in evaluation logs long before)."""

import logging
import warnings

import pytest
import torch
from conftest import make_backbone, make_encoder, make_seq2seq
from transformers.utils import logging as hf_logging

from xlpeft import runs as rd
from xlpeft.config import TrainConfig
from xlpeft.evaluation import evaluate as ev
from xlpeft.heads.generation import build_text_to_text
from xlpeft.training.trainer import Trainer


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)


@pytest.fixture
def transformers_warnings_fail():
    """Python warnings become errors; transformers' logger records at WARNING are collected (its
    warning_once cache is cleared, so that a message another test already triggered is logged again)."""
    logger = logging.getLogger("transformers")
    handler = _Records()
    logger.addHandler(handler)
    hf_logging.logging.Logger.warning_once.cache_clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield handler.records
    logger.removeHandler(handler)


def _backbone(kind, tiny_tokenizer, special_tokenizer):
    if kind == "encoder":
        return make_encoder(special_tokenizer)
    if kind == "seq2seq":
        return make_seq2seq(special_tokenizer)
    return make_backbone(kind, tiny_tokenizer)


@pytest.mark.parametrize("kind", ["llama", "gemma3", "xglm", "encoder", "seq2seq"])
@pytest.mark.parametrize("text_cache", [True, False])
def test_training_and_evaluation_raise_no_transformers_warning(tmp_path, tiny_tokenizer, special_tokenizer, sib_dir,
                                                               monkeypatch, transformers_warnings_fail, kind,
                                                               text_cache):
    backbone = _backbone(kind, tiny_tokenizer, special_tokenizer)
    config = TrainConfig(model=backbone.name, shots=2, prompt_length=3, epochs=1, lr=0.05, batch_size=4,
                         text_cache=text_cache)
    Trainer(config, tmp_path / "run", data_dir=str(sib_dir), backbone=backbone).run(progress=False)
    monkeypatch.setattr(ev, "load_backbone", lambda key, device: backbone)
    options = ev.EvalOptions(split="dev", text_cache=text_cache)
    ev.evaluate([rd.load_run(tmp_path / "run")], ["fra_Latn"], str(sib_dir), tmp_path / "out.csv", options,
                progress=False)
    assert [record.getMessage() for record in transformers_warnings_fail] == []


@pytest.mark.parametrize("kind", ["llama", "gemma3", "seq2seq"])
def test_text_to_text_training_and_generation_raise_no_transformers_warning(tiny_tokenizer, special_tokenizer, kind,
                                                                           transformers_warnings_fail):
    backbone = _backbone(kind, tiny_tokenizer, special_tokenizer)
    model = build_text_to_text(backbone, "prefix", prompt_length=3, max_length=32)
    ids, prompt = model.tokenize(["Rain.", "Football season starts."]), torch.zeros(3, 32, requires_grad=True)
    model.loss(ids, prompt, model.target_ids(["PER: Ada", "travel"])).backward()
    model.generate(ids, prompt.detach(), max_new_tokens=3)
    assert [record.getMessage() for record in transformers_warnings_fail] == []
