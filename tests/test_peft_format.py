"""Prompts move between xlpeft and PEFT: same files, same logits, on all three backbone kinds."""

from __future__ import annotations

import json

import pytest
import torch
from peft import PeftModel, PromptTuningConfig, get_peft_model

from conftest import make_backbone, make_encoder, make_seq2seq
from xlpeft.composition.classifier import build_classifier
from xlpeft.evaluation.predict import predict_uncached
from xlpeft.experiments.run_dir import load_run
from xlpeft.prompts.peft_format import TASK_TYPES, save_peft_prompt

TEXTS = ["The minister spoke about the election results today.", "Football season starts.", "Rain."]
L = 4


def _peft(backbone, prompt):
    """PEFT's prompt tuning on ``backbone`` holding xlpeft's prompt (scaled, as PEFT stores it)."""
    config = PromptTuningConfig(task_type=TASK_TYPES[backbone.kind], num_virtual_tokens=L, num_attention_heads=4,
                                num_layers=2, token_dim=backbone.hidden_size, num_transformer_submodules=1)
    peft_model = get_peft_model(backbone.model, config).eval()
    with torch.no_grad():
        peft_model.prompt_encoder["default"].embedding.weight.copy_(prompt * backbone.embed_scale)
    return peft_model


@pytest.mark.parametrize("family", ["llama", "xglm"])
def test_causal_prefix_prompt_gives_pefts_logits(tiny_tokenizer, family):
    backbone = make_backbone(family, tiny_tokenizer)
    prompt = torch.randn(L, 32)
    ours = build_classifier(backbone, "prefix", L, 64)
    ids = ours.tokenize(TEXTS)
    logits = ours.outputs(ids, prompt)
    peft_model = _peft(backbone, prompt)
    for row, text in enumerate(ids):
        seq = torch.tensor([text + [backbone.eos_id]])
        theirs = peft_model(input_ids=seq, attention_mask=torch.ones_like(seq)).logits[0, L + len(text) - 1]
        torch.testing.assert_close(logits[row], theirs, atol=1e-5, rtol=0)


def test_encoder_start_prompt_gives_pefts_logits(special_tokenizer):
    backbone = make_encoder(special_tokenizer)
    tok = special_tokenizer
    prompt = torch.randn(L, 32)
    ours = build_classifier(backbone, "start", L, 64)
    ids = ours.tokenize(TEXTS)
    logits = ours.outputs(ids, prompt)
    peft_model = _peft(backbone, prompt)
    for row, text in enumerate(ids):
        seq = torch.tensor([[tok.cls_token_id, *text, tok.mask_token_id, tok.sep_token_id]])
        theirs = peft_model(input_ids=seq, attention_mask=torch.ones_like(seq)).logits[0, L + len(text) + 1]
        torch.testing.assert_close(logits[row], theirs, atol=1e-5, rtol=0)


def test_seq2seq_prompt_gives_pefts_label_scores(special_tokenizer):
    backbone = make_seq2seq(special_tokenizer)
    prompt = torch.randn(L, 32)
    ours = build_classifier(backbone, "prefix", L, 64)
    ids = ours.tokenize(TEXTS)
    scores = ours.outputs(ids, prompt)
    peft_model = _peft(backbone, prompt)
    for row, text in enumerate(ids):
        seq = torch.tensor([text + [backbone.eos_id]])
        for k in range(len(ours.strings.words)):
            target = ours.strings.token_ids[k][: int(ours.strings.lengths[k])]
            logits = peft_model(input_ids=seq, attention_mask=torch.ones_like(seq), labels=target[None]).logits[0]
            expected = logits.log_softmax(-1)[torch.arange(len(target)), target].sum()
            torch.testing.assert_close(scores[row, k], expected, atol=1e-4, rtol=0)


@pytest.mark.parametrize("kind", ["causal", "encoder", "seq2seq"])
def test_saved_prompt_loads_into_peft_and_pefts_adapter_loads_into_xlpeft(tmp_path, tiny_tokenizer, special_tokenizer,
                                                                          kind):
    make = {"causal": lambda: make_backbone("xglm", tiny_tokenizer), "encoder": lambda: make_encoder(special_tokenizer),
            "seq2seq": lambda: make_seq2seq(special_tokenizer)}[kind]
    backbone = make()
    prompt = torch.randn(L, 32)
    save_peft_prompt(tmp_path / "ours", prompt, backbone, base_model="tiny")
    config = json.loads((tmp_path / "ours" / "adapter_config.json").read_text())
    assert config["peft_type"] == "PROMPT_TUNING" and config["num_transformer_submodules"] == 1
    loaded = PeftModel.from_pretrained(backbone.model, tmp_path / "ours")
    torch.testing.assert_close(loaded.get_prompt_embedding_to_save("default"), prompt * backbone.embed_scale)

    # the other way: PEFT trains/saves, xlpeft reads the directory as a run (placement 'start')
    theirs = _peft(make(), prompt)
    theirs.peft_config["default"].base_model_name_or_path = "tiny"
    theirs.save_pretrained(tmp_path / "theirs")
    run = load_run(tmp_path / "theirs")
    assert run.config["train"]["placement"] == "start" and run.prompt_length == L
    torch.testing.assert_close(run.prompt_for(backbone), prompt)


def test_peft_run_predicts_like_pefts_model(tmp_path, special_tokenizer):
    """A PEFT adapter directory evaluates through xlpeft with PEFT's own numbers."""
    backbone = make_encoder(special_tokenizer)
    prompt = torch.randn(L, 32)
    peft_model = _peft(make_encoder(special_tokenizer), prompt)
    peft_model.peft_config["default"].base_model_name_or_path = "tiny"
    peft_model.save_pretrained(tmp_path)
    run = load_run(tmp_path)
    preds = predict_uncached(backbone, run, TEXTS, batch_size=2)
    clf = build_classifier(backbone, "start", L, 128)
    ids = clf.tokenize(TEXTS)
    tok = special_tokenizer
    for row, text in enumerate(ids):
        seq = torch.tensor([[tok.cls_token_id, *text, tok.mask_token_id, tok.sep_token_id]])
        logits = peft_model(input_ids=seq, attention_mask=torch.ones_like(seq)).logits[0, L + len(text) + 1]
        assert preds[row] == int(clf.scores(logits[None])[0].argmax())


def test_a_peft_directory_reads_whole_texts_as_peft_does(tmp_path, special_tokenizer):
    """Issue 18: texts longer than the default max_length were cut without a word, so xlpeft's predictions of a
    PEFT prompt differed from PEFT's own. Now nothing is cut but at the model's context, and cuts are counted."""
    from xlpeft.evaluation.predict import text_counts
    from xlpeft.tasks import Examples

    backbone = make_encoder(special_tokenizer)
    torch.manual_seed(1)
    peft_model = _peft(make_encoder(special_tokenizer), torch.randn(L, 32))
    peft_model.peft_config["default"].base_model_name_or_path = "tiny"
    peft_model.save_pretrained(tmp_path)
    run = load_run(tmp_path)
    tok = special_tokenizer
    texts = [" ".join(["election results and football season"] * 12), TEXTS[0]]  # the first: > 128 tokens
    ids = tok(texts, add_special_tokens=False)["input_ids"]
    assert 128 < len(ids[0]) < 300 - 1 - L - 3  # XLM-R: positions start after the pad id (0)
    preds = predict_uncached(backbone, run, texts, batch_size=2)
    clf = build_classifier(backbone, "start", L, 128)
    for row, text in enumerate(ids):
        seq = torch.tensor([[tok.cls_token_id, *text, tok.mask_token_id, tok.sep_token_id]])
        logits = peft_model(input_ids=seq, attention_mask=torch.ones_like(seq)).logits[0, L + len(text) + 1]
        assert preds[row] == int(clf.scores(logits[None])[0].argmax())
    counts = text_counts(backbone, run, None, Examples("eng_Latn", "test", [0, 1], texts, labels=[0, 0]))
    assert counts.n_truncated == 0 and counts.max_length == 300 - 1 - L - 3
