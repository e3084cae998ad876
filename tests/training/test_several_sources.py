"""Training on several source languages: each language's validation recorded, the pooled one selecting, on a tiny
Llama and real SIB-200 rows."""

import json

import pytest
from conftest import make_backbone

from xlpeft import runs as rd
from xlpeft.config import TrainConfig
from xlpeft.training.trainer import Trainer

SOURCES = ("eng_Latn", "fra_Latn")


def _trainer(out, tokenizer, sib_dir, **overrides):
    settings = dict(model="tiny", source=",".join(SOURCES), shots=2, prompt_length=3, epochs=1, lr=0.05, batch_size=4)
    return Trainer(TrainConfig(**{**settings, **overrides}), out, data_dir=str(sib_dir),
                   backbone=make_backbone("llama", tokenizer))


def test_each_languages_validation_is_its_own_validation(tmp_path, tiny_tokenizer, sib_dir):
    """The per-language numbers are what validating that language alone gives (the one-language path), and the
    pooled ones their means weighted by the languages' examples."""
    trainer = _trainer(tmp_path, tiny_tokenizer, sib_dir, batch_size=3)  # 7 inputs a language: batches of 3, 3, 1
    sample = trainer._sample()
    prompt = trainer._make_prompt()
    record = trainer._validate_epoch(trainer._inputs(sample.validation_parts()), prompt)
    sizes = {language: len(sample.samples[language].validation) for language in SOURCES}
    assert sizes == {"eng_Latn": 7, "fra_Latn": 7}  # ceil(2/4) = 1 per class, 7 classes
    for language in SOURCES:
        alone = trainer._validate_epoch(trainer._inputs(sample.samples[language].validation), prompt)
        assert record["val_by_language"][language] == pytest.approx(alone, rel=1e-5)
    for key in ("val_loss", "val_accuracy"):
        weighted = sum(record["val_by_language"][lang][key] * n for lang, n in sizes.items()) / sum(sizes.values())
        assert record[key] == pytest.approx(weighted, rel=1e-6)


def test_a_run_on_several_sources_records_each_languages_validation_and_sample(tmp_path, tiny_tokenizer, sib_dir):
    metrics = _trainer(tmp_path, tiny_tokenizer, sib_dir).run(progress=False)
    [epoch] = [json.loads(line) for line in (tmp_path / rd.LOG).read_text().splitlines()]
    assert set(epoch["val_by_language"]) == set(SOURCES)  # JSON keys are written sorted
    assert all({"val_loss", "val_accuracy", "val_macro_f1"} <= set(v) for v in epoch["val_by_language"].values())
    assert metrics["val_by_language"] == epoch["val_by_language"] and metrics["val_loss"] == epoch["val_loss"]
    sample = json.loads((tmp_path / rd.SAMPLE).read_text())
    assert sample["source"] == "eng_Latn,fra_Latn" and set(sample["languages"]) == set(SOURCES)
    for record in sample["languages"].values():
        assert len(record["train_index_ids"]) == 14 and set(record["train_counts"].values()) == {2}
    run = rd.load_run(tmp_path)
    assert run.train.source == "eng_Latn,fra_Latn"


def test_a_single_source_run_records_as_before(tmp_path, tiny_tokenizer, sib_dir):
    """One language: no per-language record, sample.json's keys and the sampled ids as main wrote them."""
    metrics = _trainer(tmp_path, tiny_tokenizer, sib_dir, source="eng_Latn", shots=4).run(progress=False)
    [epoch] = [json.loads(line) for line in (tmp_path / rd.LOG).read_text().splitlines()]
    assert "val_by_language" not in epoch and "val_by_language" not in metrics
    sample = json.loads((tmp_path / rd.SAMPLE).read_text())
    assert set(sample) == {"task", "source", "source_data", "seed", "train_index_ids", "validation_index_ids",
                           "validation_per_class"}
    assert sample["train_index_ids"][:4] == [598, 1514, 1598, 1507]  # main at f0e8578, shots 4, seed 0
    assert sample["validation_index_ids"][:3] == [612, 764, 9]
