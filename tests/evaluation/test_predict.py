"""Evaluation follows training's rules: the text cache and a head trained alone are decided in one place each
(heads/text_cache.text_cache_exact, heads/classifier.head_alone), and each run reads its own text budget."""

import pandas as pd
from conftest import make_backbone

from xlpeft import runs as rd
from xlpeft.config import TrainConfig
from xlpeft.evaluation.predict import (
    Plan,
    cached_text_ids,
    classifier_for_run,
    predict_cached,
    predict_uncached,
    uses_cache,
)
from xlpeft.training.trainer import Trainer

PREFIX = "query: "


def test_a_text_prefix_run_is_cached_in_training_and_in_evaluation_alike(tmp_path, tiny_tokenizer, sib_dir):
    """A text prefix is part of the text, before the suffix prompt, so the cache is exact with it (text_cache.py).
    Training cached such a run while evaluation refused the cache for any text prefix (and tokenized the cached
    texts without it): the rule was decided twice and the copies disagreed."""
    backbone = make_backbone("llama", tiny_tokenizer)
    config = TrainConfig(model="tiny", shots=4, prompt_length=3, epochs=1, lr=0.05, batch_size=4, text_prefix=PREFIX)
    Trainer(config, tmp_path, data_dir=str(sib_dir), backbone=backbone).run(progress=False)
    run = rd.load_run(tmp_path)
    assert run.config["text_cache_used"]
    assert uses_cache(backbone, run, text_cache=True) and not uses_cache(backbone, run, text_cache=False)

    texts = list(pd.read_csv(sib_dir / "fra_Latn" / "test.tsv", sep="\t")["text"][:24])
    ids = cached_text_ids(backbone, [run], texts)
    prefix_ids = tiny_tokenizer(PREFIX + texts[0], add_special_tokens=False)["input_ids"]
    assert ids == classifier_for_run(backbone, run).tokenize(texts) and ids[0][:3] == prefix_ids[:3]
    cached = predict_cached(backbone, [run], ids, Plan(chunk_sentences=5, prompts_per_pass=1))
    assert cached[run.name] == predict_uncached(backbone, run, texts, batch_size=8)
